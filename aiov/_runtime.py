"""Core: reads and compiles models; the module-level compile_model helper."""

from __future__ import annotations

import os

from . import _batching, _core, _properties
from ._compiled import CompiledModel
from ._errors import InputError
from ._graph import openvino_type_name
from ._log import timed
from ._model import Model

_DEVICES = ("CPU", "AUTO")


def _check_device(device_name):
    name = "AUTO" if device_name is None else str(device_name)
    if name.startswith("BATCH"):
        _batching.parse_device(name)
        return name
    base = name.split(":")[0].split("(")[0]
    if base not in _DEVICES and not all(part in _DEVICES for part in name.replace("AUTO:", "").split(",")):
        raise InputError(f"device {name!r} is not available: aiov runs on 'CPU' (or 'AUTO')")
    return name


class Core:
    """Entry point: ``Core().compile_model(model_or_path, "CPU", config)``."""

    def __init__(self, xml_config_file: str = ""):
        self._config = _properties.defaults()

    @property
    def available_devices(self) -> list:
        return ["CPU"]

    def get_available_devices(self) -> list:
        return ["CPU"]

    def get_versions(self, device_name: str = "CPU") -> dict:
        from . import __version__
        from ._version import Version

        _check_device(device_name)
        return {"CPU": Version(__version__, "aiov CPU engine")}

    def unload_plugin(self, device_name: str) -> None:
        """OpenVINO unloads a device's plugin library (reloaded on next use); aiov's CPU engine is
        part of aiov itself, so there is nothing to unload: only the device name is checked."""
        _check_device(device_name)

    def add_extension(self, extension):
        """OpenVINO loads custom-op libraries and Python Extension classes here; aiov's ops come only
        from its own registry, so any extension is refused rather than ignored."""
        raise RuntimeError(f"aiov does not load extensions: its ops come from its own op registry (got {extension!r})")

    def read_model(self, model, weights=None, config=None, *, weights_dir=None) -> Model:
        """Reads an OpenVINO IR or ONNX model: a path, ONNX bytes, an IR's xml as str/bytes or a file
        object (then `weights` are bytes, an array, a Tensor, a file object or a path).

        ``config`` applies to this read only. ``weights_dir`` (aiov only): the directory an ONNX
        model's external data is read from. A path defaults to the model file's directory; bytes
        carry no directory, so a model given as bytes with external data needs it. Locations must
        stay inside that directory (no absolute paths, '..', symbolic links or special files)."""
        from .frontends import read_model as _read

        if not isinstance(model, (str, os.PathLike, bytes, bytearray)) and not hasattr(model, "read"):
            raise TypeError(f"Provided python object type {type(model)} isn't supported as 'model' argument.")
        if hasattr(weights, "read"):
            weights = weights.read()  # a file object
        given = _properties.normalize(config)
        _properties.apply_log_level(given)
        if given.get("CACHE_DIR"):
            os.makedirs(given["CACHE_DIR"], exist_ok=True)
        source = model if isinstance(model, (str, os.PathLike)) and len(str(model)) < 300 else type(model).__name__
        with timed(f"read_model {os.fspath(source) if isinstance(source, os.PathLike) else source}"):
            return _read(model, weights, weights_dir, {**self._config, **given}[_properties.ENABLE_MMAP])

    def compile_model(self, model, device_name: str = None, config: dict = None, *, weights=None) -> CompiledModel:
        """`model`: a Model, or what read_model reads (with `weights` for an IR xml given in memory).
        With CACHE_DIR set, a model file compiled before is read from its cached blob
        (``compiled.get_property("LOADED_FROM_CACHE")``). ``device_name`` "BATCH:CPU(N)" (or
        "BATCH:CPU") batches concurrent jobs, as the THROUGHPUT hint does (see aiov/_batching.py
        and docs/async.md)."""
        device_name, config = _batching.batch_target(device_name, config)
        _, batch = _batching.parse_device(_check_device(device_name))
        merged = {k: v for k, v in self._config.items()}
        given = _properties.normalize(config)
        _properties.apply_log_level(given)
        merged.update(given)
        if isinstance(model, (str, os.PathLike)) and merged.get("CACHE_DIR"):
            with timed(f"compile_model {os.fspath(model)} (CACHE_DIR)"):
                return _compile_cached(self, os.fspath(model), merged, batch)
        if isinstance(model, (str, os.PathLike, bytes, bytearray)) or hasattr(model, "read"):
            model = self.read_model(model, weights, {_properties.ENABLE_MMAP: merged[_properties.ENABLE_MMAP]})
        if not isinstance(model, Model):
            raise InputError(f"compile_model takes a Model or a path, got {type(model).__name__}")
        with timed(f"compile_model {model.get_friendly_name()}", lambda: _compile_summary(model)):
            return CompiledModel(model, merged, batch)

    def query_model(self, model, device_name: str = "CPU", config=None) -> dict:
        supported = {openvino_type_name(t) for t in _core.op_types()} | {"Parameter", "Constant", "Result"}
        return {op.get_friendly_name(): "CPU" for op in model.get_ordered_ops() if op.get_type_name() in supported}

    def get_property(self, device_name, key=None):
        if key is None:
            device_name, key = "CPU", device_name
        return _properties.read(self._config, key)

    def set_property(self, device_name=None, properties=None):
        if properties is None:
            device_name, properties = "CPU", device_name
        given = _properties.normalize(properties)
        _properties.apply_log_level(given)
        self._config.update(given)

    def import_model(self, model_stream, device_name: str = "CPU", config: dict = None) -> CompiledModel:
        """A CompiledModel from what ``CompiledModel.export_model`` wrote (bytes or a binary
        stream); the blob is checked (format, lengths, checksum) before anything is read."""
        from . import _blob

        _check_device(device_name)
        extra = _properties.normalize(config)
        loaded = _blob.unpack(_blob.read_stream(model_stream), extra, "the imported blob")
        merged = {k: v for k, v in self._config.items()}
        merged.update(_properties.normalize(loaded.config))
        merged.update(extra)
        return CompiledModel(loaded.model, merged, _optimized=loaded.optimized, _packed=loaded.packed)


def _compile_cached(core, path, config, batch=None) -> CompiledModel:
    from . import _blob

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    key = _blob.cache_key(path, config)
    cached = _blob.load_cached(config["CACHE_DIR"], key, config)
    if cached is not None:
        compiled = CompiledModel(cached.model, config, batch, _optimized=cached.optimized, _packed=cached.packed)
        compiled._config["LOADED_FROM_CACHE"] = True
        _blob.refresh_after_first_run(config["CACHE_DIR"], key, compiled)
        return compiled
    compiled = CompiledModel(core.read_model(path), config, batch)
    _blob.store_cached(config["CACHE_DIR"], key, compiled)
    _blob.refresh_after_first_run(config["CACHE_DIR"], key, compiled)
    compiled._config["LOADED_FROM_CACHE"] = False
    return compiled


def _compile_summary(model) -> str:
    ops = sum(1 for _ in model.get_ordered_ops())
    return f"{ops} ops, {_core.pool_size()} workers, GEMM ISA {_core.gemm_isa()}, bf16 ISA {_core.gemm_bf16_isa()}"


def compile_model(model, device_name: str = "AUTO", config: dict = None) -> CompiledModel:
    """Compile without creating a Core first (AUTO picks the CPU)."""
    return Core().compile_model(model, device_name, config)
