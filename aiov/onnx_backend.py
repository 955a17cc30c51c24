"""onnx.backend.base.Backend for aiov, so ONNX's own test cases (and tools built on the
backend API) run models on aiov's engine."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from ._runtime import Core

_SUPPORTED_DEVICES = ("CPU",)


def _as_array(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


class AiovRep(BackendRep):
    """A compiled ONNX model: ``run(inputs)`` returns the outputs in graph order."""

    def __init__(self, compiled, input_names, output_names):
        self._compiled = compiled
        self._inputs = input_names
        self._outputs = output_names

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = {k: _as_array(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = {k: _as_array(v) for k, v in zip(self._inputs, inputs)}
        results = self._compiled(feeds, share_inputs=False)
        return tuple(results[name] for name in self._outputs)


class AiovBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        from .frontends.onnx import supported_ops

        ops = set(supported_ops())
        return all(n.op_type in ops for n in model.graph.node)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        if not cls.supports_device(device):
            raise RuntimeError(f"aiov runs on CPU, not {device!r}")
        data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
        proto = model if isinstance(model, onnx.ModelProto) else onnx.load_model_from_string(model)
        initializers = {i.name for i in proto.graph.initializer}
        inputs = [i.name for i in proto.graph.input if i.name not in initializers]
        outputs = [o.name for o in proto.graph.output]
        return AiovRep(Core().compile_model(data, "CPU"), inputs, outputs)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().split(":")[0] in _SUPPORTED_DEVICES


prepare = AiovBackend.prepare
run_model = AiovBackend.run_model
supports_device = AiovBackend.supports_device


def node_test_cases():
    """Every node test case the installed onnx package generates (its own operator suite).

    onnx 1.20 takes no argument; earlier releases (the last for Python 3.9 is 1.19) take the one
    op type to keep, where an empty one keeps them all."""
    import inspect
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if inspect.signature(collect_testcases).parameters:
            return collect_testcases("")
        return collect_testcases()
