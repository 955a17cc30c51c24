"""aiov: an asyncio-native inference toolkit with OpenVINO's Python API on its own engine.

``import aiov as ov`` runs OpenVINO code; ``from aiov import aio`` gives awaitable twins."""

from __future__ import annotations

import sys
import types as _pytypes

__version__ = "0.1.0"

import atexit  # noqa: E402

from . import _core  # noqa: E402
from ._environment import check_environment as _check_environment  # noqa: E402

_check_environment()

# Registered first, so it runs after every other atexit handler: from then on threads coming
# back from the engine park instead of re-taking the GIL (which would abort the process).
atexit.register(_core.begin_exit)
from . import (  # noqa: E402
    helpers,
    layout_helpers,  # noqa: E402
    op,
    opset,
    preprocess,
    properties,
    utils,
)
from ._any import OVAny, RTMap  # noqa: E402
from ._compiled import CompiledModel  # noqa: E402
from ._coordinates import AxisVector, Coordinate, CoordinateDiff, Strides  # noqa: E402
from ._errors import BusyError, CancelledError, InputError, JobError, PortError  # noqa: E402
from ._graph import ConstOutput, Input, Node, Output  # noqa: E402
from ._graph import TensorDescriptor as DescriptorTensor  # noqa: E402  (OpenVINO's name for a port's tensor)
from ._info import info  # noqa: E402
from ._layout import Layout, get_batch, set_batch  # noqa: E402
from ._model import Model  # noqa: E402
from ._queue import AsyncInferQueue  # noqa: E402
from ._request import InferRequest, ProfilingInfo  # noqa: E402
from ._results import OVDict  # noqa: E402
from ._runtime import Core, compile_model  # noqa: E402
from ._symbol import Symbol  # noqa: E402
from ._tensor import Tensor  # noqa: E402
from ._types import Dimension, PartialShape, Shape, Type  # noqa: E402
from ._version import Version, get_version  # noqa: E402


class Extension:
    """OpenVINO's base class for custom-op extensions; aiov refuses them (Core.add_extension)."""


def tensor_from_file(path) -> Tensor:
    """A 1-D u8 Tensor holding the bytes of the file at ``path``."""
    import numpy as np

    return Tensor(np.fromfile(str(path), dtype=np.uint8))


def save_model(model, output_model, compress_to_fp16: bool = False):
    """Writes ``model`` as OpenVINO IR: ``path.xml`` plus ``path.bin``."""
    from .frontends.ir import save_ir

    if model is None:
        raise AttributeError("'model' argument is required and cannot be None.")
    save_ir(model, output_model)


def serialize(model, xml_path, bin_path=None):
    from .frontends.ir import save_ir

    save_ir(model, xml_path, bin_path)


def _alias_modules():
    # OpenVINO code imports opsets by version (aiov.opset13, aiov.runtime.opset12):
    # they are all the one registry-backed opset.
    this = sys.modules[__name__]
    runtime = _pytypes.ModuleType(__name__ + ".runtime", "OpenVINO-compatible namespace")
    for name in (
        "Core",
        "Model",
        "CompiledModel",
        "InferRequest",
        "AsyncInferQueue",
        "Tensor",
        "Type",
        "Shape",
        "PartialShape",
        "Dimension",
        "OVDict",
        "compile_model",
        "save_model",
        "OVAny",
        "RTMap",
        "properties",
        "op",
        "utils",
        "Layout",
        "layout_helpers",
        "Symbol",
        "Strides",
        "AxisVector",
        "Coordinate",
        "CoordinateDiff",
        "get_version",
        "tensor_from_file",
        "get_batch",
        "set_batch",
        "serialize",
        "Extension",
    ):
        setattr(runtime, name, getattr(this, name))
    sys.modules[runtime.__name__] = runtime
    this.runtime = runtime
    for version in range(1, 17):
        alias = f"opset{version}"
        sys.modules[f"{__name__}.{alias}"] = opset
        sys.modules[f"{__name__}.runtime.{alias}"] = opset
        setattr(this, alias, opset)
        setattr(runtime, alias, opset)


_alias_modules()

__all__ = [
    "AsyncInferQueue",
    "BusyError",
    "CancelledError",
    "CompiledModel",
    "ConstOutput",
    "Core",
    "Dimension",
    "AxisVector",
    "Coordinate",
    "CoordinateDiff",
    "DescriptorTensor",
    "Extension",
    "Layout",
    "Strides",
    "Symbol",
    "Version",
    "get_batch",
    "get_version",
    "info",
    "layout_helpers",
    "set_batch",
    "tensor_from_file",
    "InferRequest",
    "Input",
    "OVAny",
    "RTMap",
    "op",
    "preprocess",
    "properties",
    "utils",
    "InputError",
    "JobError",
    "Model",
    "Node",
    "OVDict",
    "Output",
    "PartialShape",
    "PortError",
    "ProfilingInfo",
    "Shape",
    "Tensor",
    "Type",
    "compile_model",
    "helpers",
    "opset",
    "save_model",
]
