"""examples/imap_pipeline.py on trio: a producer task sends frames into a memory channel,
`aio.imap` reads the channel (any async iterable works) with at most 8 frames in flight, and
the ordered results go to a sink through a second channel. A deadline cancels what is left.

Frame i is filled with the value i and the model measures a frame's mean brightness, so the
results in frame order are simply 0, 1, 2, ..."""

import numpy as np

try:
    import trio
except ImportError as e:
    raise SystemExit(f"this example runs on trio, which is not installed ({e}): pip install 'aiov[trio]'") from None

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

N_FRAMES = 300


def build_model():
    frame = ops.parameter([1, 3, 32, 32], np.float32, name="frame")
    return ov.Model(ops.reduce_mean(frame, [1, 2, 3]), [frame], "brightness")


async def main():
    compiled = await aio.compile_model(build_model(), "CPU")
    frame_send, frame_receive = trio.open_memory_channel(4)
    level_send, level_receive = trio.open_memory_channel(16)
    levels = []

    async def camera():
        async with frame_send:
            for i in range(N_FRAMES):
                await frame_send.send(np.full((1, 3, 32, 32), i, np.float32))  # waits while imap is 8 ahead

    async def measure():
        async with frame_receive, level_send:
            async for results in aio.imap(compiled, frame_receive, concurrency=8):
                await level_send.send(int(results[0][0]))

    async def sink():
        async with level_receive:
            async for level in level_receive:
                levels.append(level)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(camera)
        nursery.start_soon(measure)
        nursery.start_soon(sink)
    assert levels == list(range(N_FRAMES))
    print(f"trio imap pipeline: {len(levels)} frames measured in order, e.g. {levels[:8]}")

    # A deadline around a stream: the jobs in flight when it expires are cancelled.
    frames = [np.full((1, 3, 32, 32), i, np.float32) for i in range(N_FRAMES)]
    seen = 0
    with trio.move_on_after(60):
        async for _ in aio.imap(compiled, frames, concurrency=8):
            seen += 1
    print(f"within the deadline: {seen} frames")
    await compiled.aclose()


if __name__ == "__main__":
    trio.run(main)
