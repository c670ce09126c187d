"""Running a command's coroutine: on uvloop when installed, with SIGINT and SIGTERM turned into a
graceful stop (the first finishes in-flight commands, a second stops at once)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from dispatcher.cli import console
from dispatcher.run.runner import Stop

__all__ = ["run_with_signals"]

T = TypeVar("T")


def run_with_signals(start: Callable[[Stop], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when installed; the first SIGINT/SIGTERM stops gracefully, a second at once."""
    # Every request allocates a few hundred short-lived objects: with the default threshold the
    # cycle collector runs every few requests and keeps walking the long-lived imports. Setting
    # those aside (gc.freeze) and collecting the young generation less often saves about a tenth
    # of the CPU per command (make bench), for a few MB of garbage held a little longer.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        return _loop_runner(_guarded(start))
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _guarded(start: Callable[[Stop], Coroutine[Any, Any, T]]) -> Callable[[], Awaitable[T]]:
    """``start`` with signal handlers installed around it."""

    async def guarded() -> T:
        stop = Stop()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            name = signal.Signals(signum).name
            if stop.requested:
                console.warn(f"{name} again: stopping now; in-flight commands will be reconciled")
                stop.request(f"interrupted by {name}", immediate=True)
            else:
                console.warn(f"{name}: finishing in-flight commands (again to stop at once)")
                stop.request(f"interrupted by {name}")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await start(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return guarded


def _loop_runner(main_coro: Callable[[], Awaitable[T]]) -> T:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_as_coro(main_coro))


async def _as_coro(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()
