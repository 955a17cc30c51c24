"""The enums of ``openvino.preprocess``: color formats, resize algorithms, padding modes."""

from __future__ import annotations

import enum


class ColorFormat(enum.Enum):
    UNDEFINED = 0
    NV12_SINGLE_PLANE = 1
    NV12_TWO_PLANES = 2
    I420_SINGLE_PLANE = 3
    I420_THREE_PLANES = 4
    RGB = 5
    BGR = 6
    GRAY = 7
    RGBX = 8
    BGRX = 9


class ResizeAlgorithm(enum.Enum):
    RESIZE_LINEAR = 0
    RESIZE_CUBIC = 1
    RESIZE_NEAREST = 2
    RESIZE_BILINEAR_PILLOW = 3
    RESIZE_BICUBIC_PILLOW = 4


class PaddingMode(enum.Enum):
    CONSTANT = 0
    EDGE = 1
    REFLECT = 2
    SYMMETRIC = 3


# planes of the YUV formats: (sub-name, share of the height, share of the width, channels)
YUV_PLANES = {
    ColorFormat.NV12_TWO_PLANES: (("y", 1, 1, 1), ("uv", 2, 2, 2)),
    ColorFormat.I420_THREE_PLANES: (("y", 1, 1, 1), ("u", 2, 2, 1), ("v", 2, 2, 1)),
}
SINGLE_PLANE_YUV = (ColorFormat.NV12_SINGLE_PLANE, ColorFormat.I420_SINGLE_PLANE)
# channels of the interleaved formats
CHANNELS = {ColorFormat.RGB: 3, ColorFormat.BGR: 3, ColorFormat.RGBX: 4, ColorFormat.BGRX: 4, ColorFormat.GRAY: 1}
