"""Small models shared by the sync API tests (built in code with the opset builders)."""
import numpy as np

import aiov as ov
import aiov.opset13 as ops


def add_model(shape=(8,), names=("input_0", "input_1"), out_name="result_0"):
    """out = input_0 + input_1; tensor names set on inputs and the output."""
    a = ops.parameter(list(shape), np.float32, name=names[0])
    b = ops.parameter(list(shape), np.float32, name=names[1])
    model = ov.Model(ops.add(a, b), [a, b])
    model.outputs[0].tensor.set_names({out_name})
    return model


def two_output_model():
    """x -> (x * 2, x + 1), outputs named "double" and "plus_one"; input [2, 3] "x"."""
    x = ops.parameter([2, 3], np.float32, name="x")
    model = ov.Model([ops.multiply(x, 2.0), ops.add(x, 1.0)], [x])
    model.outputs[0].tensor.set_names({"double"})
    model.outputs[1].tensor.set_names({"plus_one"})
    return model


def scale_model(n=4, factor=3.0):
    """x[n] -> x * factor, input "x", output "y"."""
    x = ops.parameter([n], np.float32, name="x")
    model = ov.Model(ops.multiply(x, factor), [x])
    model.outputs[0].tensor.set_names({"y"})
    return model


def failing_model():
    """x[?] reshaped to a constant [2, 3]: fails at run time unless x has 6 elements;
    otherwise returns x.reshape(2, 3) + 0 (as f32)."""
    x = ops.parameter([-1], np.float32, name="x")
    model = ov.Model(ops.reshape(x, [2, 3]), [x])
    model.outputs[0].tensor.set_names({"y"})
    return model


def heavy_model(layers=4, size=1024, dynamic_batch=True, seed=0, same_weight=False):
    """A matmul chain (relu(x @ W_i)), each W a size x size f32 constant; tens of ms per
    inference at batch 256 on two cores. Returns (model, weights)."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([-1 if dynamic_batch else 256, size], np.float32, name="x")
    h = x
    weights = []
    for i in range(layers):
        if i == 0 or not same_weight:
            w = (rng.standard_normal((size, size)) * (1.0 / np.sqrt(size))).astype(np.float32)
        weights.append(w)
        h = ops.relu(ops.matmul(h, ops.constant(w)))
    return ov.Model(h, [x]), weights


def heavy_reference(x, weights):
    h = x.astype(np.float64)
    for w in weights:
        h = np.maximum(h @ w.astype(np.float64), 0)
    return h


def folding_model(folds=3, size=1024, seed=1):
    """A static-shape model whose constant matmul chain is folded at compile time, so that
    compile_model itself does tens of ms of work."""
    rng = np.random.default_rng(seed)
    x = ops.parameter([1, size], np.float32, name="x")
    w = ops.constant((rng.standard_normal((size, size)) * 0.03).astype(np.float32))
    for _ in range(folds):
        w = ops.matmul(w, ops.constant((rng.standard_normal((size, size)) * 0.03).astype(np.float32)))
    return ov.Model(ops.matmul(x, w), [x])
