"""Quickstart: build a small MLP with the opset builders, compile it on aiov's engine and run
it three ways: a direct call, an InferRequest, and an AsyncInferQueue with a callback."""

import numpy as np

import aiov as ov
import aiov.opset13 as ops

rng = np.random.default_rng(0)
w1 = rng.standard_normal((784, 256)).astype(np.float32) * 0.05
b1 = rng.standard_normal(256).astype(np.float32) * 0.05
w2 = rng.standard_normal((256, 10)).astype(np.float32) * 0.05

image = ops.parameter([-1, 784], np.float32, name="image")
hidden = ops.relu(ops.add(ops.matmul(image, ops.constant(w1)), ops.constant(b1)))
logits = ops.matmul(hidden, ops.constant(w2))
probs = ops.softmax(logits, axis=1)
model = ov.Model(probs, [image], "mlp")
model.outputs[0].tensor.set_names({"probs"})

core = ov.Core()
compiled = core.compile_model(model, "CPU")
# Like OpenVINO, aiov multiplies in bf16 by default on CPUs with bf16 units (AMX, AVX512_BF16):
# about three significant digits. {"INFERENCE_PRECISION_HINT": "f32"} asks for full precision.
precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
atol = 1e-5 if precision in ("f32", "float32") else 2e-2

batch = rng.standard_normal((4, 784)).astype(np.float32)
expected = np.maximum(batch @ w1 + b1, 0) @ w2
expected = np.exp(expected - expected.max(1, keepdims=True))
expected /= expected.sum(1, keepdims=True)

# 1. Direct call: reuses one request internally.
probs_direct = compiled(batch)["probs"]
assert np.allclose(probs_direct, expected, atol=atol)
print(f"direct call ({precision}), predicted classes:", probs_direct.argmax(1))

# 2. An InferRequest, started asynchronously, then waited for.
request = compiled.create_infer_request()
request.start_async({"image": batch})
request.wait()
assert np.allclose(request.get_output_tensor().data, expected, atol=atol)
print(f"request latency: {request.latency:.3f} ms")

# 3. A queue of jobs with a callback per finished job.
queue = ov.AsyncInferQueue(compiled, jobs=4)
done = {}
queue.set_callback(lambda req, i: done.__setitem__(i, req.get_output_tensor().data.argmax(1)))
for i in range(16):
    queue.start_async({0: batch[i % 4 : i % 4 + 1]}, userdata=i)
queue.wait_all()
assert sorted(done) == list(range(16))
print("queue finished", len(done), "jobs; engine:", core.get_property("CPU", "FULL_DEVICE_NAME"))
