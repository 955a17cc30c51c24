"""Color conversions as graph nodes: YUV (NV12, I420) to RGB/BGR, and between the interleaved formats."""

from __future__ import annotations

import numpy as np

from .. import opset as ops
from .._errors import InputError
from .._types import Type
from ._enums import ColorFormat

# BT.601 limited range, as OpenVINO's NV12toRGB/I420toRGB: [Y-16, U-128, V-128] @ this -> [R, G, B]
_YUV_OFFSET = np.array([16, 128, 128], np.float32)
_YUV_TO_RGB = np.array([[1.164, 1.164, 1.164], [0.0, -0.391, 2.018], [1.596, -0.813, 0.0]], np.float32)


def _static(dim, what):
    if dim < 0:
        raise InputError(f"convert_color: the {what} of the YUV image must be static")
    return dim


def _rows(port, start, stop):
    return ops.slice(port, [start], [stop], [1], [1]).output(0)


def _yuv_planes(ports, color):
    """(y [N,H,W,1], uv [N,H/2,W/2,2], H, W) from the planes of a NV12/I420 tensor (NHWC)."""
    shape = list(ports[0].get_partial_shape())
    rows = _static(shape[1]._engine(), "height")
    w = _static(shape[2]._engine(), "width")
    single = color in (ColorFormat.NV12_SINGLE_PLANE, ColorFormat.I420_SINGLE_PLANE)
    h = rows * 2 // 3 if single else rows
    if h % 2 or w % 2:
        raise InputError(f"convert_color: a {color.name} image needs an even height and width, got {h}x{w}")
    if color == ColorFormat.NV12_SINGLE_PLANE:
        y, uv = _rows(ports[0], 0, h), _rows(ports[0], h, rows)
    elif color == ColorFormat.I420_SINGLE_PLANE:
        y = _rows(ports[0], 0, h)
        u, v = _rows(ports[0], h, h + h // 4), _rows(ports[0], h + h // 4, rows)
        half = [0, h // 2, w // 2, 1]
        uv = ops.concat([ops.reshape(u, half, True), ops.reshape(v, half, True)], 3).output(0)
    elif color == ColorFormat.NV12_TWO_PLANES:
        y, uv = ports
    else:
        y, u, v = ports
        uv = ops.concat([u, v], 3).output(0)
    return y, ops.reshape(uv, [0, h // 2, w // 2, 2], True).output(0), h, w


def yuv_to_rgb(ports, color, dst):
    y, uv, h, w = _yuv_planes(ports, color)
    etype = y.get_element_type()
    yf, uvf = (ops.convert(p, "f32") if etype != Type.f32 else p for p in (y, uv))
    # each U,V sample covers 2x2 pixels: repeat it along H and W by broadcasting
    uvf = ops.reshape(uvf, [0, h // 2, 1, w // 2, 1, 2], True)
    uvf = ops.multiply(uvf, np.ones([1, 1, 2, 1, 2, 1], np.float32))
    uvf = ops.reshape(uvf, [0, h, w, 2], True)
    yuv = ops.subtract(ops.concat([yf, uvf], 3), _YUV_OFFSET)
    matrix = _YUV_TO_RGB if dst == ColorFormat.RGB else _YUV_TO_RGB[:, ::-1]
    rgb = ops.clamp(ops.matmul(yuv, np.ascontiguousarray(matrix)), 0.0, 255.0)  # clamped for floats too
    if etype.integral:
        rgb = ops.convert(ops.round(rgb), etype)
    elif etype != Type.f32:
        rgb = ops.convert(rgb, etype)
    return rgb.output(0)


def reverse_axis(port, axis):
    """The channels of `port` along `axis` in reverse order."""
    return ops.slice(port, [-1], [np.iinfo(np.int64).min], [-1], [axis]).output(0)


def interleaved(port, color, dst, channel_axis):
    """RGB <-> BGR, and RGBX/BGRX to RGB/BGR (the fourth channel dropped)."""
    if color in (ColorFormat.RGBX, ColorFormat.BGRX):
        port = ops.slice(port, [0], [3], [1], [channel_axis]).output(0)
        color = ColorFormat.RGB if color == ColorFormat.RGBX else ColorFormat.BGR
    if color != dst:
        port = reverse_axis(port, channel_axis)
    return port


def convert(ports, color, dst, channel_axis):
    """The port(s) of a `color` image converted to `dst` (RGB or BGR)."""
    if dst not in (ColorFormat.RGB, ColorFormat.BGR):
        raise InputError(f"convert_color: aiov converts to RGB or BGR, not {dst.name}")
    if color in (
        ColorFormat.NV12_SINGLE_PLANE,
        ColorFormat.NV12_TWO_PLANES,
        ColorFormat.I420_SINGLE_PLANE,
        ColorFormat.I420_THREE_PLANES,
    ):
        return yuv_to_rgb(ports, color, dst)
    if color in (ColorFormat.RGB, ColorFormat.BGR, ColorFormat.RGBX, ColorFormat.BGRX):
        if channel_axis is None:
            raise InputError("convert_color: the tensor layout must name its channels ('C')")
        return interleaved(ports[0], color, dst, channel_axis)
    raise InputError(f"convert_color: cannot convert from {color.name} to {dst.name}")
