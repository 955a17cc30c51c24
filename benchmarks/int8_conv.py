"""One QDQ convolution node, aiov next to OpenVINO (printed, never asserted).

Each shape is a model of its own as onnxruntime's ``quantize_static`` writes one convolution:
the f32 NCHW input quantized to u8, the convolution by per-channel s8 filters with an int32
bias, a Relu, and the result quantized to u8 again. aiov runs it as ``aiov.Quantize``, a
layout Transpose and one ``aiov.QuantizedConv`` (the direct integer kernels of
``kernels/conv_int8``), OpenVINO as its own int8 convolution. Printed per thread count: the
convolution node's median time over profiled runs (PERF_COUNT) in each, so the reorders and
quantizations around it are left out.

The default shapes are the stems of MobileNetV2 (3x3/2) and ResNet-50 (7x7/2) over 3
channels, and ResNet-50's 3x3 convolutions, plain and strided. Under load, prefer one thread
(``--threads 1``): a second thread's share depends on what else the machine runs.

    python benchmarks/int8_conv.py [--threads 1,2] [--runs 100] [--shapes 3x224-32k3s2p1,...]
"""

import argparse
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table, try_import  # noqa: E402

# C x H(=W) - outputs k kernel s stride p padding
SHAPES = [
    "3x224-32k3s2p1",  # MobileNetV2's stem
    "3x224-64k7s2p3",  # ResNet-50's stem
    "64x56-64k3s1p1",
    "128x28-128k3s1p1",
    "256x14-256k3s1p1",
    "512x7-512k3s1p1",
    "128x56-128k3s2p1",
    "256x28-256k3s2p1",
    "512x14-512k3s2p1",
]


def parse_shape(text):
    channels, rest = text.split("x")
    size, rest = rest.split("-")
    outputs, rest = rest.split("k")
    kernel, rest = rest.split("s")
    stride, pad = rest.split("p")
    return int(channels), int(size), int(outputs), int(kernel), int(stride), int(pad)


def qdq_conv(channels, size, outputs, kernel, stride, pad):
    """The model and its input (seeded: the same bytes each run)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = []

    def constant(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))

    constant("x_scale", np.float32(0.02))
    constant("x_zero", np.uint8(120))
    constant("w", rng.integers(-127, 128, (outputs, channels, kernel, kernel)).astype(np.int8))
    w_scale = (rng.uniform(0.5, 1.5, outputs) * 2e-3).astype(np.float32)
    constant("w_scale", w_scale)
    constant("w_zero", np.zeros(outputs, np.int8))
    constant("b", rng.integers(-2000, 2000, outputs).astype(np.int32))
    constant("b_scale", (w_scale * np.float32(0.02)).astype(np.float32))
    constant("b_zero", np.zeros(outputs, np.int32))
    constant("y_scale", np.float32(0.05))
    constant("y_zero", np.uint8(0))
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero"], ["bd"], axis=0),
        helper.make_node(
            "Conv",
            ["xd", "wd", "bd"],
            ["conv"],
            name="conv",
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("QuantizeLinear", ["relu", "y_scale", "y_zero"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"]),
    ]
    out = (size + 2 * pad - kernel) // stride + 1
    graph = helper.make_graph(
        nodes,
        "qdq_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs, out, out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = np.random.default_rng(1).standard_normal((1, channels, size, size)).astype(np.float32)
    return model, x


def conv_node_us(infer, profile, is_conv, runs):
    """Median of the convolution node's time over `runs` profiled inferences (after 3 warm-ups)."""
    for _ in range(3):
        infer()
    times = []
    for _ in range(runs):
        infer()
        times.append(sum(us for name, kind, us in profile() if is_conv(name, kind)))
    return statistics.median(times)


def measure(shape, threads, runs, openvino):
    import aiov

    model, x = qdq_conv(*parse_shape(shape))
    proto = model.SerializeToString()
    compiled = aiov.compile_model(proto, "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def aiov_profile():
        for info in request.get_profiling_info():
            yield info.node_name, info.exec_type, info.real_time.total_seconds() * 1e6

    row = [shape, threads, conv_node_us(lambda: request.infer({"x": x}), aiov_profile, _aiov_conv, runs)]
    if openvino is None:
        return row + [None]
    with tempfile.TemporaryDirectory(prefix="aiov_int8_conv_") as tmp:
        path = os.path.join(tmp, "conv.onnx")
        with open(path, "wb") as fh:
            fh.write(proto)
        ov_compiled = openvino.Core().compile_model(
            path, "CPU", {"PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": threads}
        )
    ov_request = ov_compiled.create_infer_request()

    def ov_profile():
        for info in ov_request.profiling_info:
            yield info.node_name, info.node_type, info.real_time.total_seconds() * 1e6

    return row + [conv_node_us(lambda: ov_request.infer({"x": x}), ov_profile, _ov_conv, runs)]


def _aiov_conv(name, kind):
    return kind.startswith("aiov_QuantizedConv")


def _ov_conv(name, kind):
    # (its reorders around the convolution carry the node's name too)
    return kind == "Convolution"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--runs", type=int, default=100, help="profiled inferences per median")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma list of CxH-OkKsSpP")
    args = parser.parse_args(argv)
    openvino = try_import("openvino")
    rows = []
    for shape in args.shapes.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            shape_row = measure(shape, threads, args.runs, openvino)
            mine, theirs = shape_row[2], shape_row[3]
            rows.append(
                [
                    shape,
                    str(threads),
                    f"{mine:,.1f}",
                    "-" if theirs is None else f"{theirs:,.1f}",
                    "-" if theirs is None else f"{mine / theirs:.2f}",
                ]
            )
    print_table(["shape", "threads", "aiov us", "openvino us", "aiov/ov"], rows)


if __name__ == "__main__":
    main()
