"""CompiledModel: a model planned for the engine, and the requests that run it."""

from __future__ import annotations

import logging
import threading

from . import _batching, _core, _log, _properties
from ._errors import InputError
from ._graph import ConstOutput
from ._inputs import IoSpec
from ._request import InferRequest
from ._results import OVDict


class CompiledModel:
    """Created by ``Core.compile_model`` or ``aiov.compile_model``."""

    def __init__(self, model, config=None, _batch=None, _optimized=None, _packed=None):
        # Compile a snapshot: later edits of `model` (names, reshape) do not leak in. A model
        # read from a blob comes with its optimized graph (engine nodes: parameters, outputs,
        # sinks) and the weights packed for it, and is nobody else's, so it is taken as it is.
        self._model = model.clone() if _optimized is None else model
        self._config = _properties.defaults()
        self._config.update(_properties.normalize(config))
        # Fixed now, so get_property reports what the compiled model runs.
        precision = _properties.inference_precision(self._config)
        self._config[_properties.INFERENCE_PRECISION_HINT] = precision
        params, outs, sinks = self._model._engine_graph()
        # The engine describes the plans it builds only while they would be logged.
        self._log_plans = _log.logger.isEnabledFor(logging.DEBUG)
        self._native = _core.new_compiled_model(  # GIL released while planning
            params,
            outs,
            self._config[_properties.INFERENCE_NUM_THREADS],
            bool(self._config[_properties.PERF_COUNT]),
            self._config[_properties.PLAN_CACHE_BYTES],
            precision,
            sinks,
            self._log_plans,
            _optimized,
            _packed,
        )
        inputs = [ConstOutput(p.get_node(), p.get_index()) for p in self._model.inputs]
        outputs = [ConstOutput(r.get_node(), r.get_index()) for r in self._model.outputs]
        self._spec = IoSpec(inputs, outputs)
        self._idle_requests = []  # reused by __call__; list.pop/append are atomic under the GIL
        # Automatic batching (device "BATCH:CPU(N)" as `_batch`, or the THROUGHPUT hint).
        self._batching = _batching.attach(self, _batch)
        self._batcher = self._batching.batcher if self._batching is not None else None
        # A stateful model's __call__ runs on one request (its state is the compiled model's,
        # as in OpenVINO), one call at a time.
        self._state_request = None
        self._state_lock = threading.Lock() if self._native.variables else None
        if self._log_plans:
            self._spec.plans_to_log = self
            _log.log_built_plans(self)

    @property
    def inputs(self) -> list:
        return list(self._spec.inputs)

    @property
    def outputs(self) -> list:
        return list(self._spec.outputs)

    def input(self, key=None) -> ConstOutput:
        return self._spec.in_ports.port(key)

    def output(self, key=None) -> ConstOutput:
        return self._spec.out_ports.port(key)

    def create_infer_request(self) -> InferRequest:
        return InferRequest(self)

    def infer_new_request(self, inputs=None) -> OVDict:
        """Runs one inference on a fresh request (safe from any thread)."""
        return InferRequest(self).infer(inputs)

    def __call__(
        self, inputs=None, share_inputs: bool = True, share_outputs: bool = False, decode_strings: bool = True
    ) -> OVDict:
        """One synchronous inference on every input of the model (a missing input is an
        error). Safe from many threads at once: a call that finds the cached request busy
        uses another one (a stateful model's calls take turns on its one request)."""
        if self._state_lock is not None:
            with self._state_lock:
                return self._stateful_request()._infer(inputs, share_inputs, share_outputs, True)
        pool = self._idle_requests
        try:
            request = pool.pop()
        except IndexError:
            request = InferRequest(self)
        try:
            # Every input must come with the call: the pooled request still holds the
            # previous caller's values, which must never stand in for an omitted one.
            return request._infer(inputs, share_inputs, share_outputs, True)
        finally:
            pool.append(request)

    @property
    def _infer_request(self):
        """The request the next call runs on, which (without concurrent calls) is the one the
        last call ran on: OpenVINO's attribute of that name, read by code that inspects the
        tensors of a call."""
        if self._state_lock is not None:
            return self._stateful_request()
        if not self._idle_requests:
            self._idle_requests.append(InferRequest(self))
        return self._idle_requests[-1]

    def get_runtime_model(self):
        return self._model

    def get_property(self, key):
        if _properties._key(key) == _batching.BATCH_STATS:
            return _batching.stats_of(self)
        if _properties._key(key) == "NETWORK_NAME":  # properties.model_name: the compiled model's name
            return self._model.get_friendly_name()
        return _properties.read(self._config, key)

    def set_property(self, properties: dict):
        props = _properties.normalize(properties)
        for key in props:
            if key in (
                _properties.INFERENCE_NUM_THREADS,
                _properties.PERF_COUNT,
                _properties.PLAN_CACHE_BYTES,
                _properties.INFERENCE_PRECISION_HINT,
            ):
                raise InputError(f"{key} is fixed at compile time; pass it to compile_model")
        self._config.update(props)
        if _properties.AUTO_BATCH_TIMEOUT in props and self._batching is not None:
            self._batching.set_timeout(props[_properties.AUTO_BATCH_TIMEOUT])

    def export_model(self, model_stream=None):
        """The compiled model as a blob for ``Core.import_model``: returned as bytes, or
        written to ``model_stream`` (a binary stream). See aiov/_blob.py for its format."""
        from . import _blob

        return _blob.write_stream(_blob.pack(self), model_stream)

    def release_memory(self):
        self._idle_requests.clear()

    def _stateful_request(self) -> InferRequest:
        if self._state_request is None:
            self._state_request = InferRequest(self)
        return self._state_request

    def query_state(self) -> list:
        """The variables of the request ``__call__`` runs on (empty for a stateless model)."""
        if self._state_lock is None:
            return []
        with self._state_lock:
            return self._stateful_request().query_state()

    def reset_state(self) -> None:
        if self._state_lock is not None:
            with self._state_lock:
                self._stateful_request().reset_state()

    def __repr__(self):
        ins = "\n".join(map(repr, self._spec.inputs))
        outs = "\n".join(map(repr, self._spec.outputs))
        return f"<CompiledModel:\ninputs[\n{ins}\n]\noutputs[\n{outs}\n]>"
