"""`asyncio.run` that a signal ends cleanly: the coroutine is cancelled, the loop closed, then the signal acts.

A SIGINT/SIGTERM/SIGHUP handler that raises (KeyboardInterrupt) in the middle of an
event loop leaves tasks whose exceptions are never retrieved and coroutines collected
after their loop is gone: Python prints a traceback for each. Here the signal only
cancels the running coroutine; once the loop is closed, the handler that was installed
before (the program's own, or the default) gets the signal as if it had just arrived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

__all__ = ["run", "STOP_SIGNALS"]

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion; a stop signal cancels it and is delivered once the loop is closed."""
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(coroutine)  # signals are only ever handled on the main thread
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    received: list[tuple[int, FrameType | None]] = []
    task: asyncio.Task[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append((signum, frame))
        if len(received) == 1 and task is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    result: Any = None
    try:
        for sig, before in previous.items():
            if before is not signal.SIG_IGN:
                signal.signal(sig, on_signal)
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            task = loop.create_task(coroutine)
            if received:  # arrived before the task existed
                task.cancel()
            try:
                result = loop.run_until_complete(task)
            except asyncio.CancelledError:
                if not received:
                    raise
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
    if received:
        _deliver(*received[0], previous[received[0][0]])
    return result


def _deliver(signum: int, frame: FrameType | None, handler: Any) -> None:
    """What the signal would have done had the loop not been running."""
    if callable(handler):
        handler(signum, frame)
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
