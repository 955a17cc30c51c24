"""examples/imap_pipeline.py on trio: a producer task sends frames into a memory channel,
`aio.imap` reads the channel (any async iterable works) with at most 8 frames in flight, and
the ordered results go to a sink through a second channel. A deadline cancels what is left."""

import numpy as np

try:
    import trio
except ImportError as e:
    raise SystemExit(f"this example runs on trio, which is not installed ({e}): pip install 'aiov[trio]'") from None

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

N_FRAMES = 300
rng = np.random.default_rng(2)
W = rng.standard_normal((3 * 32 * 32, 10)).astype(np.float32) * 0.02


# The frames and their reference labels, made before the loop runs (numpy work of the example
# itself, which would otherwise hold the loop).
FRAMES = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(N_FRAMES)]
EXPECTED = [int((f.reshape(1, -1) @ W).argmax()) for f in FRAMES]


def build_model():
    frame = ops.parameter([1, 3, 32, 32], np.float32, name="frame")
    scores = ops.matmul(ops.reshape(frame, [1, 3 * 32 * 32]), ops.constant(W))
    return ov.Model(ops.softmax(scores, axis=1), [frame], "classifier")


async def main(frames, expected):
    compiled = await aio.compile_model(build_model(), "CPU")
    frame_send, frame_receive = trio.open_memory_channel(4)
    label_send, label_receive = trio.open_memory_channel(16)
    labels = []

    async def camera():
        async with frame_send:
            for frame in frames:
                await frame_send.send(frame)  # waits while imap is 8 frames ahead

    async def classify():
        async with frame_receive, label_send:
            async for results in aio.imap(compiled, frame_receive, concurrency=8):
                await label_send.send(int(results[0].argmax()))

    async def sink():
        async with label_receive:
            async for label in label_receive:
                labels.append(label)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(camera)
        nursery.start_soon(classify)
        nursery.start_soon(sink)
    assert labels == expected
    print(f"trio imap pipeline: {len(labels)} frames classified in order, e.g. {labels[:8]}")

    # A deadline around a stream: the jobs in flight when it expires are cancelled.
    seen = 0
    with trio.move_on_after(60):
        async for _ in aio.imap(compiled, frames, concurrency=8):
            seen += 1
    print(f"within the deadline: {seen} frames")
    await compiled.aclose()


if __name__ == "__main__":
    trio.run(main, FRAMES, EXPECTED)
