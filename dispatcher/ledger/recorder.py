"""The async face of the ledger: one dedicated thread, group commits.

SQLite calls block, and with ``synchronous=full`` a commit waits for the disk. So every ledger call
runs on one worker thread (the connection is used by one thread at a time), and writes are grouped:
in-flight marks and outcomes that arrive while a commit is running go into the next one. A worker
awaits its in-flight mark (it must be on disk before the request goes out, so that a crash can never
hide a sent command); outcomes are queued and written in the next group without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dispatcher.ledger.store import InFlight, LedgerStore, Result

__all__ = ["Recorder"]

T = TypeVar("T")


class Recorder:
    """Runs ledger calls on one thread and writes in-flight marks and outcomes in groups."""

    def __init__(self, ledger: LedgerStore) -> None:
        self.ledger = ledger
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._marks: list[InFlight] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._results: list[Result] = []
        self._wake = asyncio.Event()
        self._closing = False

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` (a ledger method) on the ledger thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def mark_in_flight(self, mark: InFlight) -> None:
        """Write the mark and return once it is committed."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marks.append(mark)
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def flush(self) -> None:
        """Return once everything queued so far is committed."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    def record(self, result: Result) -> None:
        """Queue an outcome for the next group commit."""
        self._results.append(result)
        self._wake.set()

    async def run(self) -> None:
        """The flusher: commit whatever has gathered, until closed and drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._marks or self._results or self._waiters:
                # A commit that has started finishes even if this task is cancelled; its error
                # reaches the waiters (and this task, when not cancelled), so a commit left to
                # finish alone has its error taken, not reported as never retrieved.
                commit = asyncio.ensure_future(self._flush())
                commit.add_done_callback(_taken)
                await asyncio.shield(commit)
            if self._closing and not (self._marks or self._results):
                return

    async def _flush(self) -> None:
        marks, waiters, results = self._marks, self._waiters, self._results
        self._marks, self._waiters, self._results = [], [], []
        try:
            if marks or results:  # a flush with nothing queued has nothing to wait for
                await self.call(self._write, marks, results)
        except BaseException as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, marks: list[InFlight], results: list[Result]) -> None:
        self.ledger.write_batch(marks, results)

    async def close(self) -> None:
        """Ask the flusher to drain and stop (it is awaited by its TaskGroup)."""
        self._closing = True
        self._wake.set()

    def drain_sync(self) -> None:
        """Last resort after cancellation: write what is left, on this thread, and stop the pool."""
        self._pool.shutdown(wait=True)
        marks, results = self._marks, self._results
        self._marks, self._results = [], []
        for waiter in self._waiters:
            with contextlib.suppress(asyncio.InvalidStateError):
                waiter.cancel()
        self._waiters = []
        self._write(marks, results)


def _taken(task: asyncio.Future[None]) -> None:
    """Mark a finished commit's error as seen (its waiters were given it already)."""
    if not task.cancelled():
        task.exception()
