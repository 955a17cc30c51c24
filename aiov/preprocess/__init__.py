"""``openvino.preprocess``: describe the user's tensors and the steps between them and the model;
``PrePostProcessor.build()`` makes the steps nodes of the model's graph."""

from __future__ import annotations

from ._enums import ColorFormat, PaddingMode, ResizeAlgorithm
from ._ppp import (
    InputInfo,
    InputModelInfo,
    InputTensorInfo,
    OutputInfo,
    OutputModelInfo,
    OutputTensorInfo,
    PostProcessSteps,
    PrePostProcessor,
    PreProcessSteps,
)

__all__ = [
    "ColorFormat",
    "InputInfo",
    "InputModelInfo",
    "InputTensorInfo",
    "OutputInfo",
    "OutputModelInfo",
    "OutputTensorInfo",
    "PaddingMode",
    "PostProcessSteps",
    "PrePostProcessor",
    "PreProcessSteps",
    "ResizeAlgorithm",
]
