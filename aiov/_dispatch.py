"""The callback dispatcher for the sync API: one thread drains a completion port and
runs the Python callbacks of finished jobs, in batches. Workers never run Python."""

from __future__ import annotations

import atexit
import itertools
import sys
import threading

from . import _core


class Dispatcher:
    def __init__(self):
        self.port = _core.CompletionPort()
        self._handlers = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._thread = None

    def register(self, handler) -> int:
        """A token whose completions call ``handler()`` on the dispatcher thread."""
        token = next(self._tokens)
        self._handlers[token] = handler
        if self._thread is None:
            self._start()
        return token

    def unregister(self, token: int):
        self._handlers.pop(token, None)

    @property
    def thread(self):
        return self._thread

    def refuse_wait(self, what: str):
        """Raises if called on the dispatcher thread: ``what`` would wait for a completion
        that only this thread can deliver, i.e. forever (a wait inside a callback)."""
        thread = self._thread
        if thread is not None and thread.ident == threading.get_ident():
            raise RuntimeError(
                f"{what} inside a completion callback would wait forever: callbacks "
                "run on aiov's one dispatcher thread, which delivers the completion "
                "it would wait for. Wait outside the callback"
            )

    def _start(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aiov-dispatcher", daemon=True)
                self._thread.start()

    def _run(self):
        port, handlers = self.port, self._handlers
        while True:
            tokens = port.wait_drain(-1)  # GIL released while blocked
            if not tokens and port.closed:
                return
            for token in tokens:
                handler = handlers.get(token)
                if handler is None:
                    continue
                try:
                    handler()
                except BaseException as exc:  # a handler bug must not stop other callbacks
                    print(f"aiov: error in completion handler: {exc!r}", file=sys.stderr)

    def close(self):
        self.port.close()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)


dispatcher = Dispatcher()
atexit.register(dispatcher.close)
