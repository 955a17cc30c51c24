"""Scaling aiov out with Ray Serve: every replica runs aiov's Open Inference Protocol v2 app
(`aiov.serve.create_app`, the same app `python -m aiov serve` runs), with automatic batching
when this aiov has it; Ray's proxy spreads HTTP requests over the replicas, on one machine or
a cluster.

    pip install 'aiov[ray]'
    python examples/ray_serve.py --replicas 2 --port 8000     # starts Ray locally, serves, queries itself

Scaling: `num_replicas` (or `autoscaling_config`) sets how many replica processes serve the
model; each replica's aiov engine uses the CPUs Ray gives it (`ray_actor_options`), so on a
many-core node give each replica a few cores and run several replicas, and on a cluster Ray
places replicas on every node. docs/serving.md compares this with KServe."""

import argparse
import asyncio
import time

import numpy as np

try:
    from ray import serve
except ImportError as e:
    raise SystemExit(f"this example needs Ray Serve ({e}): pip install 'aiov[ray]'") from None

import aiov as ov
import aiov.opset13 as ops

SEED = 0
SIZES = (64, 128, 10)


def build_model():
    """A small MLP with seeded weights: every replica builds the same model (no file to ship)."""
    rng = np.random.default_rng(SEED)
    x = ops.parameter([-1, SIZES[0]], np.float32, name="x")
    h = x
    for i, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        h = ops.matmul(h, ops.constant((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)))
        if i < len(SIZES) - 2:
            h = ops.relu(h)
    model = ov.Model(h, [x], "mlp")
    model.outputs[0].tensor.set_names({"scores"})
    return model


def reference(x):
    rng = np.random.default_rng(SEED)
    h = x.astype(np.float64)
    for i, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        h = h @ (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        if i < len(SIZES) - 2:
            h = np.maximum(h, 0)
    return h


def batching_available(batch):
    try:
        ov.compile_model(build_model(), f"BATCH:CPU({batch})", {"AUTO_BATCH_TIMEOUT": 1})
    except Exception:
        return False
    return True


def build_replica_app(batch=8, batch_timeout_ms=2):
    """Runs on each replica when it starts: aiov's v2 app, batching if available, answering
    with the replica's id in a header (to see the requests spread)."""
    from aiov.serve import create_app

    batching = batch if batch and batching_available(batch) else None
    app = create_app({"mlp": build_model()}, batch=batching, batch_timeout=batch_timeout_ms if batching else None)
    replica = serve.get_replica_context().replica_id.unique_id

    async def with_replica_header(scope, receive, send):
        async def tagged(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-aiov-replica", replica.encode())]
            await send(message)

        await app(scope, receive, tagged)

    return with_replica_header


def deployment(replicas=2, batch=8, batch_timeout_ms=2):
    """The Ray Serve application: ``replicas`` copies of the aiov app behind Ray's proxy."""

    def builder():  # evaluated on each replica as it starts
        return build_replica_app(batch, batch_timeout_ms)

    return serve.deployment(
        serve.ingress(builder)(),
        name="aiov",
        num_replicas=replicas,
        max_ongoing_requests=64,  # aiov suspends callers beyond its request pool; Ray need not queue
        ray_actor_options={"num_cpus": 0},  # the engine's threads are aiov's; Ray only places the process
    ).bind()


async def query(url, n):
    """``n`` concurrent v2 infer requests; returns the replica ids that answered."""
    import httpx

    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1 + i % 3, SIZES[0])).astype(np.float32) for i in range(n)]
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(x):
            body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
            response = await client.post("/v2/models/mlp/infer", json=body)
            response.raise_for_status()
            out = response.json()["outputs"][0]
            got = np.asarray(out["data"], np.float32).reshape(out["shape"])
            # Replicas may multiply in bf16 (aiov's default on CPUs with bf16 units): ~3 digits.
            assert np.allclose(got, reference(x), rtol=2e-2, atol=2e-2), "a replica answered wrongly"
            return response.headers["x-aiov-replica"]

        return await asyncio.gather(*(one(x) for x in xs))


def main():
    import ray

    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--batch", type=int, default=8, help="automatic batching per replica, when available")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(deployment(args.replicas, args.batch), route_prefix="/")
        status = serve.status().applications["default"].deployments["aiov"]
        print(f"ray serve: {status.replica_states} after {time.perf_counter() - started:.1f} s")
        url = f"http://127.0.0.1:{args.port}"
        replicas = asyncio.run(query(url, args.requests))
        counts = {r: replicas.count(r) for r in sorted(set(replicas))}
        print(f"ray serve: {len(replicas)} requests answered by {len(counts)} replicas {sorted(counts.values())}")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
