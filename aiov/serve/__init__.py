"""aiov.serve: an inference server speaking the Open Inference Protocol v2 (the KServe v2 REST
protocol Triton and OpenVINO Model Server speak), as an ASGI app (Starlette; run it on uvicorn).

    from aiov.serve import DrainingServer, create_app
    app = create_app({"mlp": "mlp.onnx"}, batch=8, batch_timeout=2)
    DrainingServer(uvicorn.Config(app)).run()   # or uvicorn.run(app), without the drain

or ``python -m aiov serve mlp.onnx [NAME=PATH ...] --port 8000``. Routes: ``/v2/health/live``,
``/v2/health/ready``, ``/v2``, ``/v2/models/NAME[/versions/1]``, ``.../ready``, ``.../infer``
(JSON tensors and the binary tensor data extension), and Prometheus metrics at ``/metrics``.
docs/serving.md describes the protocol, the flags and deploying as a KServe predictor.
Needs the ``aiov[serve]`` extra (starlette, uvicorn, prometheus_client)."""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"aiov.serve needs the 'serve' extra: pip install 'aiov[serve]' ({e})") from e

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._models import ServedModel, ServeError, load_model, parse_model_args
from ._server import DrainingServer
from ._tensors import ProtocolError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DrainingServer",
    "ProtocolError",
    "ServeError",
    "ServedModel",
    "create_app",
    "load_model",
    "parse_model_args",
]
