"""A FastAPI service on aiov, written as a user would: the model is compiled once in the app's
lifespan (off the event loop), each request awaits `compiled(x)` (never blocking the loop, so
one worker serves many clients at once), and shutdown closes the model after the requests in
flight have finished.

    python examples/fastapi_service.py --port 8000
    curl -s localhost:8000/predict -H 'content-type: application/json' \\
         -d '{"images": [[0.0, 0.1, ...784 numbers...]]}'

For a standard protocol (KServe v2, as Triton speaks) with metrics and batching, use
`python -m aiov serve MODEL` instead (docs/serving.md)."""

import argparse
import contextlib

import numpy as np

try:
    import uvicorn
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel
except ImportError as e:
    raise SystemExit(f"this example needs FastAPI and uvicorn ({e}): pip install 'aiov[serve]' fastapi") from None

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

rng = np.random.default_rng(0)
W1 = rng.standard_normal((784, 256)).astype(np.float32) * 0.05
W2 = rng.standard_normal((256, 10)).astype(np.float32) * 0.05


def build_model():
    image = ops.parameter([-1, 784], np.float32, name="images")
    probs = ops.softmax(ops.matmul(ops.relu(ops.matmul(image, ops.constant(W1))), ops.constant(W2)), axis=1)
    model = ov.Model(probs, [image], "mlp")
    model.outputs[0].tensor.set_names({"probs"})
    return model


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.compiled = await aio.compile_model(build_model(), "CPU")  # compiles in a worker thread
    yield
    await app.state.compiled.aclose()  # the requests in flight have finished by now


app = FastAPI(lifespan=lifespan)


class Images(BaseModel):
    images: list[list[float]]


@app.post("/predict")
async def predict(body: Images):
    x = np.asarray(body.images, np.float32)
    if x.ndim != 2 or x.shape[1] != 784:
        raise HTTPException(400, f"images must be rows of 784 numbers, got shape {list(x.shape)}")
    probs = (await app.state.compiled(x))["probs"]  # other requests run while this one waits
    return {"classes": probs.argmax(1).tolist(), "probs": probs.tolist()}


@app.get("/health")
async def health():
    return {"ok": True}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
