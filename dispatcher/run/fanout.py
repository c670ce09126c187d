"""The paced fan-out: many items, one operation, a bounded pool of workers in one TaskGroup.

Every OneNET call of a run goes through it: the sends (sending.py) and the history look-ups
(reconcile.py) today; status polls, cancels and cached writes plug in as operations. An
*operation* is an async callable taking one item: it waits for its lane's pace, makes its call
with its own retry policy (a create is retried only when nothing was created; a query or a cancel
may be retried freely), and records what came of it. The fan-out owns the concurrency and the stop:

- when ``taking()`` turns False (a graceful stop), no new item is started; those started finish;
- an immediate stop cancels the workers at once, and so does a graceful one whose ``grace_s`` ran
  out: each operation's cancellation handler records what it must (a request on the wire is in
  doubt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TypeVar

from dispatcher.run.state import Stop

__all__ = ["fan_out"]

T = TypeVar("T")


class _CutShort(Exception):
    """Raised inside the pool's TaskGroup to cancel the workers."""


async def fan_out(
    items: AsyncIterable[T] | Iterable[T],
    operation: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    stop: Stop,
    taking: Callable[[], bool],
    grace_s: float | None,
) -> bool:
    """Run ``operation`` on every item ``workers`` at a time; True when cut short by a stop.

    ``grace_s`` None: only an immediate stop cancels the workers.
    """
    queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=max(1, workers) * 4)
    cut = False
    try:
        async with asyncio.TaskGroup() as tg:
            producer = tg.create_task(_produce(items, queue, workers, taking))
            watcher = tg.create_task(_watch(stop, grace_s))
            pool = [tg.create_task(_work(queue, operation, taking)) for _ in range(workers)]
            await asyncio.gather(*pool)
            producer.cancel()
            watcher.cancel()
    except* _CutShort:
        cut = True
    return cut


async def _produce(
    items: AsyncIterable[T] | Iterable[T],
    queue: asyncio.Queue[T | None],
    workers: int,
    taking: Callable[[], bool],
) -> None:
    if isinstance(items, AsyncIterable):
        async for item in items:
            if not taking():
                break
            await queue.put(item)
    else:
        for item in items:
            if not taking():
                break
            await queue.put(item)
    for _ in range(workers):
        await queue.put(None)


async def _watch(stop: Stop, grace_s: float | None) -> None:
    if grace_s is None:
        await stop.wait_immediate()
    else:
        await stop.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await stop.wait_immediate()
    raise _CutShort


async def _work(
    queue: asyncio.Queue[T | None],
    operation: Callable[[T], Awaitable[None]],
    taking: Callable[[], bool],
) -> None:
    while taking():
        item = await queue.get()
        if item is None:
            return
        await operation(item)
