"""Running the app on uvicorn with a graceful shutdown a load balancer can see.

uvicorn alone, on SIGTERM, closes its listening socket at once: a readiness probe then gets
"connection refused", not an answer, and the requests in flight race the shutdown. This server
first drains: ``/v2/health/ready`` answers 503 and new inferences are refused with 503 while
the ones in flight finish (at most ``timeout_graceful_shutdown`` seconds); only then does
uvicorn's own shutdown close the sockets and the models. A second signal stops at once."""

from __future__ import annotations

import time

import uvicorn

from ._app import server_state


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` for an app of ``create_app``: SIGTERM/SIGINT drain it first."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self._state = server_state(config.app)  # the app object itself (not an import string)
        self._drain_deadline = None

    def handle_exit(self, sig, frame):
        # A signal handler: only flags here, the ticks of uvicorn's main loop act on them.
        if self._drain_deadline is None and not self.should_exit:
            self._drain_deadline = time.monotonic() + (self.config.timeout_graceful_shutdown or 30.0)
            self._state.drain()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        if self._drain_deadline is None:
            return False
        left = self._drain_deadline - time.monotonic()
        if self._state.active and left > 0:
            return False
        # Drained (or out of time): uvicorn's shutdown waits only for what is left.
        self.config.timeout_graceful_shutdown = max(left, 0.1)
        return True
