"""The models a server serves: how a name and a source (a file, an ``aiov.Model``, a compiled
model) become a ``ServedModel``, compiled off the event loop, optionally on the automatic
batching device."""

from __future__ import annotations

import os
import re

from .. import aio
from .._compiled import CompiledModel as _SyncCompiled
from ._tensors import Port

VERSION = "1"  # one version per model; the protocol's version routes accept only this one
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ServeError(RuntimeError):
    """The server cannot start: a bad model argument, a model that does not load."""


class ServedModel:
    """A compiled model under a name, with the protocol's view of its inputs and outputs.
    ``owned``: the server compiled it, so the server closes it at shutdown."""

    def __init__(self, name: str, compiled, owned: bool = False):
        check_name(name)
        if isinstance(compiled, _SyncCompiled):
            compiled = aio.CompiledModel(compiled)
        if not isinstance(compiled, aio.CompiledModel):
            raise ServeError(f"model {name!r}: an aiov compiled model expected, got {type(compiled).__name__}")
        self.name = name
        self.version = VERSION
        self.compiled = compiled
        self.owned = owned
        self.inputs = {}
        for i, port in enumerate(compiled.inputs):
            p = Port(port, i, "input")
            self.inputs[p.name] = p
        self.outputs = {}
        for i, port in enumerate(compiled.outputs):
            p = Port(port, i, "output")
            self.outputs[p.name] = p
        self.in_flight = 0  # awaited inferences, for the queue-depth gauge
        self.metrics = None  # its metrics, once a server serves it

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "aiov",
            "inputs": [p.metadata() for p in self.inputs.values()],
            "outputs": [p.metadata() for p in self.outputs.values()],
        }


def check_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ServeError(f"a model name is letters, digits, '_', '.' and '-' (it is part of URLs), got {name!r}")


def parse_model_args(args) -> dict:
    """``["mlp.onnx", "enc=models/bert.xml"]`` -> ``{"mlp": "mlp.onnx", "enc": "models/bert.xml"}``:
    a model is named by its file stem, or NAME=PATH."""
    models = {}
    for arg in args:
        name, sep, path = arg.partition("=")
        if not sep or os.sep in name:
            name, path = os.path.splitext(os.path.basename(arg))[0], arg
        check_name(name)
        if name in models:
            raise ServeError(f"two models are named {name!r}: name them with NAME=PATH")
        if not os.path.isfile(path):
            raise ServeError(f"model {name!r}: no such file {path!r}")
        models[name] = path
    return models


def batch_device(device: str, batch) -> str:
    return f"BATCH:{device}({batch})" if batch else device


async def load_model(name, source, device="CPU", config=None, batch=None, batch_timeout=None) -> ServedModel:
    """Compiles ``source`` (a path, an ``aiov.Model``, or a compiled model, served as is) in a
    worker thread. ``batch``: compile on ``BATCH:<device>(batch)`` with ``AUTO_BATCH_TIMEOUT``
    ``batch_timeout`` (ms), so concurrent requests are joined into batches."""
    check_name(name)
    if isinstance(source, ServedModel):
        return source
    if isinstance(source, (aio.CompiledModel, _SyncCompiled)):
        return ServedModel(name, source)
    config = dict(config or {})
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ServeError(f"batch must be an int >= 1, got {batch!r}")
        if batch_timeout is not None:
            config["AUTO_BATCH_TIMEOUT"] = int(batch_timeout)
    elif batch_timeout is not None:
        raise ServeError("a batch timeout needs a batch size (--batch N)")
    target = batch_device(device, batch)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        compiled = await aio.Core().compile_model(source, target, config)
    except Exception as e:
        what = source if isinstance(source, str) else type(source).__name__
        if batch is not None:
            raise ServeError(
                f"model {name!r}: automatic batching (--batch {batch}, device {target!r}) failed: {e}. "
                "This aiov may not support automatic batching: serve without --batch"
            ) from e
        raise ServeError(f"model {name!r}: cannot load {what}: {e}") from e
    return ServedModel(name, compiled, owned=True)
