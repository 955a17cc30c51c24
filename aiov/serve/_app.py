"""The ASGI app: the Open Inference Protocol v2 REST routes over ``ServedModel``s, and /metrics.

Inference is ``await compiled(inputs)`` on the event loop; decoding and encoding bodies larger
than ``offload_bytes`` run in a worker thread so a big tensor never stalls other requests.
While a request's inference runs, the handler also listens for the client's disconnect and
cancels the inference when it comes (the native job stops at its next node)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio
import anyio.to_thread
import sniffio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from .._errors import InputError
from ._metrics import Metrics
from ._models import ServedModel, load_model
from ._tensors import ProtocolError, decode_inputs, encode_response, requested_outputs, split_body

DEFAULT_MAX_BODY_BYTES = 64 << 20
DEFAULT_OFFLOAD_BYTES = 1 << 20
HEADER_LENGTH = "inference-header-content-length"
_CLIENT_CLOSED = 499  # nginx's status for "the client closed the request": nobody reads it


class _Server:
    """The state the routes share: the models, the metrics, the limits, readiness."""

    def __init__(self, max_body_bytes, offload_bytes):
        self.models = {}
        self.metrics = Metrics()
        self.max_body_bytes = max_body_bytes
        self.offload_bytes = offload_bytes
        self.loaded = False  # the lifespan has compiled the models
        self.draining = False  # shutting down: not ready, new inferences refused
        self.active = 0  # infer requests being handled (body read to response made)

    @property
    def ready(self) -> bool:
        return self.loaded and not self.draining

    def drain(self):
        """Starts a graceful shutdown: readiness answers 503 (a load balancer stops sending
        here) and new infer requests get 503, while the ones already in flight finish;
        ``active`` reaches 0 once they have."""
        self.draining = True

    def add(self, served: ServedModel):
        if served.name in self.models:
            raise ValueError(f"two models are named {served.name!r}")
        self.models[served.name] = served
        served.metrics = self.metrics.add_model(served)

    def model(self, request) -> ServedModel:
        name = request.path_params["name"]
        served = self.models.get(name)
        if served is None:
            raise ProtocolError(f"no model {name!r}; this server has {sorted(self.models)}", 404)
        version = request.path_params.get("version")
        if version is not None and version != served.version:
            raise ProtocolError(f"model {name!r} has no version {version!r}; its versions are {[served.version]}", 404)
        return served

    # ---- health and metadata ----
    async def live(self, request):
        return JSONResponse({"live": True})

    async def ready_(self, request):
        return JSONResponse({"ready": self.ready}, 200 if self.ready else 503)

    async def server_metadata(self, request):
        return JSONResponse({"name": "aiov", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def model_metadata(self, request):
        return JSONResponse(self.model(request).metadata())

    async def model_ready(self, request):
        served = self.model(request)
        return JSONResponse({"name": served.name, "ready": self.ready}, 200 if self.ready else 503)

    async def metrics_(self, request):
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # ---- inference ----
    async def infer(self, request: Request):
        served = self.model(request)
        if self.draining:
            served.metrics.requests.inc()
            served.metrics.failures["unavailable"].inc()
            raise ProtocolError("the server is shutting down: send the request to another replica", 503)
        self.active += 1
        self.metrics.requests_active.inc()
        try:
            return await self._infer(served, request)
        finally:
            self.active -= 1
            self.metrics.requests_active.dec()

    async def _infer(self, served, request: Request):
        m = served.metrics
        m.requests.inc()
        started = time.perf_counter()
        try:
            body = await self._read_body(request)
            decoded = await self._offload(len(body), _decode, served, body, request.headers.get(HEADER_LENGTH))
            feeds, chosen, response = decoded
            first = feeds.get(0)
            if first is not None and first.ndim:
                m.request_batch.observe(first.shape[0])
            finished, results = await self._run(served, feeds, request.receive)
            if not finished:
                m.failures["cancelled"].inc()
                return Response(status_code=_CLIENT_CLOSED)
            content, json_length = await self._offload(
                sum(r.nbytes for r in results.values()), encode_response, response, results, chosen
            )
        except ClientDisconnect:
            m.failures["cancelled"].inc()
            return Response(status_code=_CLIENT_CLOSED)
        except ProtocolError as e:
            m.failures["too_large" if e.status == 413 else "bad_request"].inc()
            raise
        except InputError as e:  # the engine's own check of the inputs (e.g. a dim out of bounds)
            m.failures["bad_request"].inc()
            raise ProtocolError(f"model {served.name!r}: {e}") from e
        except Exception as e:
            m.failures["error"].inc()
            raise ProtocolError(f"model {served.name!r} failed: {type(e).__name__}: {e}", 500) from e
        m.request_latency.observe(time.perf_counter() - started)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    async def _read_body(self, request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"the request body has {declared} bytes; this server takes at most {limit}", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"the request body exceeds this server's limit of {limit} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _offload(self, size, fn, *args):
        if size > self.offload_bytes:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)

    async def _run(self, served, feeds, receive):
        """``(True, results)``, or ``(False, None)`` if the client disconnected first (the
        inference is then cancelled)."""
        m = served.metrics
        cap = served.compiled.max_requests
        served.in_flight += 1
        m.in_flight.inc()
        m.queue_depth.set(max(0, served.in_flight - cap))
        started = time.perf_counter()
        try:
            outcome = await until_disconnect(served.compiled, feeds, receive)
        finally:
            served.in_flight -= 1
            m.in_flight.dec()
            m.queue_depth.set(max(0, served.in_flight - cap))
        if outcome[0]:
            m.compute_latency.observe(time.perf_counter() - started)
        return outcome


async def until_disconnect(compiled, feeds, receive):
    """``(True, await compiled(feeds))``, or ``(False, None)`` when ``receive`` (the request's
    ASGI receive, its body already read) reports the client's disconnect first; the inference
    is then cancelled. A cancellation from elsewhere propagates."""
    if sniffio.current_async_library() == "asyncio":
        return await _until_disconnect_asyncio(compiled, feeds, receive)
    return await _until_disconnect_anyio(compiled, feeds, receive)


async def _wait_disconnect(receive) -> bool:
    """True once the client has disconnected; False if the server's receive failed (then
    nothing is known, and the inference is left to finish)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        return False
    return True


async def _until_disconnect_asyncio(compiled, feeds, receive):
    """A watcher task cancels this one on disconnect (cheaper than a task group: hot path)."""
    task = asyncio.current_task()
    disconnected = []

    async def watch():
        if await _wait_disconnect(receive):
            disconnected.append(True)
            task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return True, await compiled(feeds)
    except asyncio.CancelledError:
        if not disconnected:
            raise
        if hasattr(task, "uncancel"):  # Python >= 3.11: this cancellation is handled
            task.uncancel()
        return False, None
    finally:
        watcher.cancel()


async def _until_disconnect_anyio(compiled, feeds, receive):
    """The same on any backend anyio runs (trio, under an ASGI server such as hypercorn)."""
    outcome = {}
    async with anyio.create_task_group() as tg:

        async def watch():
            if await _wait_disconnect(receive):
                tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            outcome["results"] = await compiled(feeds)
        except Exception as e:  # raised below, outside the task group (no ExceptionGroup)
            outcome["error"] = e
        tg.cancel_scope.cancel()
    if "error" in outcome:
        raise outcome["error"]
    if "results" not in outcome:
        return False, None
    return True, outcome["results"]


def _decode(served, body, header_length):
    request, binary = split_body(body, header_length)
    feeds = decode_inputs(request, binary, served.inputs, served.name)
    chosen = requested_outputs(request, served.outputs, served.name)
    response = {"model_name": served.name, "model_version": served.version}
    if "id" in request:
        response["id"] = request["id"]
    return feeds, chosen, response


def server_state(app) -> _Server:
    """The state of an app made by ``create_app``: its models, metrics and readiness."""
    state = getattr(getattr(app, "state", None), "aiov", None)
    if not isinstance(state, _Server):
        raise TypeError(f"an app made by aiov.serve.create_app expected, got {type(app).__name__}")
    return state


def _counted(server, route, endpoint):
    """The endpoint, counting its answers (and answering ProtocolError as JSON)."""
    counter = server.metrics.http_requests

    async def handle(request):
        try:
            response = await endpoint(request)
        except ProtocolError as e:
            response = JSONResponse({"error": str(e)}, e.status)
        counter.labels(route, str(response.status_code)).inc()
        return response

    return handle


def create_app(
    models,
    *,
    device: str = "CPU",
    config: dict = None,
    batch: int = None,
    batch_timeout: int = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    offload_bytes: int = DEFAULT_OFFLOAD_BYTES,
) -> Starlette:
    """An ASGI app serving ``models`` over the Open Inference Protocol v2 (REST).

    ``models``: ``{name: source}``, where a source is a model file, an ``aiov.Model``, an
    ``aiov.CompiledModel`` / ``aio.CompiledModel`` (served as is) or a ``ServedModel``; or a
    list of ``ServedModel``. Sources that need compiling are compiled at startup (the app's
    lifespan) on ``device`` with ``config``; with ``batch`` N on ``BATCH:<device>(N)`` with
    ``AUTO_BATCH_TIMEOUT`` = ``batch_timeout`` ms. Models the app compiled are closed at
    shutdown, after the requests in flight have finished. The app's state is
    ``app.state.aiov`` (``.models``, ``.metrics.registry``)."""
    if isinstance(models, dict):
        pending = dict(models)
    else:
        pending = {}
        for served in models:
            if not isinstance(served, ServedModel):
                raise TypeError(f"models: a dict of name -> source, or ServedModels; got {type(served).__name__}")
            pending[served.name] = served
    server = _Server(max_body_bytes, offload_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for name, source in pending.items():
            server.add(await load_model(name, source, device, config, batch, batch_timeout))
        server.loaded, server.draining = True, False
        try:
            yield
        finally:
            server.loaded = False
            models = list(server.models.values())
            server.models.clear()  # the app may be started again (its lifespan run anew)
            for served in models:
                if served.owned:
                    await served.compiled.aclose()

    v = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        ("/v2/health/live", server.live, ["GET"]),
        ("/v2/health/ready", server.ready_, ["GET"]),
        ("/v2", server.server_metadata, ["GET"]),
        (v, server.model_metadata, ["GET"]),
        (versioned, server.model_metadata, ["GET"]),
        (v + "/ready", server.model_ready, ["GET"]),
        (versioned + "/ready", server.model_ready, ["GET"]),
        (v + "/infer", server.infer, ["POST"]),
        (versioned + "/infer", server.infer, ["POST"]),
        ("/metrics", server.metrics_, ["GET"]),
    ]
    app = Starlette(
        routes=[Route(path, _counted(server, path, endpoint), methods=methods) for path, endpoint, methods in routes],
        lifespan=lifespan,
    )
    app.state.aiov = server
    return app
