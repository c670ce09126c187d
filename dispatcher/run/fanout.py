"""The paced fan-out: many items, one operation, a bounded pool of workers in one TaskGroup.

Every OneNET call of a run goes through it: the sends (sending.py) and the history look-ups
(reconcile.py) today; status polls, cancels and cached writes plug in as operations. An
*operation* is an async callable taking one item: it waits for its lane's pace, makes its call
with its own retry policy (a create is retried only when nothing was created; a query or a cancel
may be retried freely), and records what came of it. The fan-out owns the concurrency and the stop:

- the workers take their items from one shared iterator, in order; ``more()`` (if given) reads
  the next batch while the current one is sent, and the first worker to run out takes it in
  ([] ends the items): a job streamed from the ledger needs no producer and no queue;
- when ``taking()`` turns False (a graceful stop), no new item is started; those started finish;
- an immediate stop cancels the workers at once, and so does a graceful one whose ``grace_s`` ran
  out: each operation's cancellation handler records what it must (a request on the wire is in
  doubt).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Final, Generic, TypeVar

from dispatcher.run.state import Stop

__all__ = ["More", "fan_out"]

T = TypeVar("T")

More = Callable[[], Awaitable[Iterable[T]]]
"""The next batch of items, awaited once the ones before are all taken; empty: no more."""


class _CutShort(Exception):
    """Raised inside the pool's TaskGroup to cancel the workers."""


async def fan_out(
    items: Iterable[T],
    operation: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    stop: Stop,
    taking: Callable[[], bool],
    grace_s: float | None,
    more: More[T] | None = None,
) -> bool:
    """Run ``operation`` on every item (``items``, then each batch of ``more``) ``workers`` at
    a time; True when cut short by a stop.

    ``grace_s`` None: only an immediate stop cancels the workers.
    """
    cut = False
    try:
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(_watch(stop, grace_s))
            shared = _Shared(iter(items), more, tg)
            pool = [tg.create_task(_work(shared, operation, taking)) for _ in range(workers)]
            try:
                await asyncio.gather(*pool)
            finally:
                shared.close()
            watcher.cancel()
    except* _CutShort:
        cut = True
    return cut


class _Shared(Generic[T]):
    """The items the workers share: the current batch's iterator; the next batch is read while
    this one is sent (a task of the pool's TaskGroup), so that the workers rarely wait for it."""

    __slots__ = ("_lock", "_more", "_next", "_tg", "items")

    def __init__(self, items: Iterator[T], more: More[T] | None, tg: asyncio.TaskGroup) -> None:
        self.items = items
        self._more, self._tg = more, tg
        self._lock = asyncio.Lock()
        self._next: asyncio.Task[Iterable[T]] | None = None
        if more is not None:
            self._next = tg.create_task(_batch(more))

    async def refill(self) -> bool:
        """The next batch in place (one worker waits for it; the others wait for that one);
        False once there is none."""
        if self._next is None:
            return False
        async with self._lock:
            first = next(self.items, _END)
            if first is not _END:  # another worker refilled it meanwhile
                self.items = itertools.chain((first,), self.items)  # type: ignore[arg-type]
                return True
            if self._next is None:
                return False
            batch = list(await self._next)
            if not batch or self._more is None:
                self._next = None
                return False
            self._next = self._tg.create_task(_batch(self._more))
            self.items = iter(batch)
            return True

    def close(self) -> None:
        """No more batches: a batch read ahead is not waited for."""
        if self._next is not None:
            self._next.cancel()
            self._next = None


async def _batch(more: More[T]) -> Iterable[T]:
    return await more()


_END: Final = object()


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
    shared: _Shared[T], operation: Callable[[T], Awaitable[None]], taking: Callable[[], bool]
) -> None:
    while taking():
        item = next(shared.items, _END)
        if item is _END:
            if not await shared.refill():
                return
            continue
        await operation(item)  # type: ignore[arg-type]  # not _END: an item
