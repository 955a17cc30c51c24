"""aiov.aio: the awaitable twin of aiov's sync API, for asyncio, uvloop and trio (via anyio).

    from aiov import aio
    compiled = await aio.compile_model(model_or_path, "CPU", config)  # compiles off the loop
    results = await compiled(inputs)      # any number of callers; at most max_requests run
    request = compiled.create_infer_request()
    results = await request.infer(inputs)
    job = request.start_async(inputs); results = await job
    queue = aio.AsyncInferQueue(compiled, jobs=0)
    queue.set_callback(f)          # f(request, userdata) on the loop thread; may be async def
    job = await queue.start_async(inputs, userdata)   # suspends while all jobs are busy
    await queue.wait_all()
    async for results in aio.imap(compiled, inputs, concurrency=8): ...  # in input order
    compiled = await aio.compile_model(model, "BATCH:CPU(32)")   # concurrent callers batched

Workers finish jobs without the GIL and push a token to the completion port of the loop that
started the job; one drain on the loop thread resolves every finished job. Every aio object
exposes its sync twin as ``.sync``. docs/async.md describes the bridge per backend and what
cancelling each verb does.
"""

from __future__ import annotations

from ._bridge import backend_name, current_bridge
from ._compiled import CompiledModel, Core, compile_model, read_model
from ._job import InferJob
from ._queue import AsyncInferQueue
from ._request import InferRequest
from ._streams import imap

__all__ = [
    "AsyncInferQueue",
    "CompiledModel",
    "Core",
    "InferJob",
    "InferRequest",
    "backend_name",
    "compile_model",
    "current_bridge",
    "imap",
    "read_model",
]
