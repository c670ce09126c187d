"""The job's commands into the ledger: registered in batches on the ledger's thread, and streamed
from there to the fan-out with their status (those to send), in the job's order.

A job without steps is read once while it is sent: each batch registered, then sent. A job of
steps is read once before its first step: every command registered and queued in the ledger
(``queue_all``), and each step sent from the ledger's queue (``LedgerStore.queued``).

May import: job, ledger, model, run (recovery's Item). Never cli, app, report or emulator.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable, Iterator

from dispatcher.job.model import Command, Job
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import FINAL, TO_SEND, LedgerStore
from dispatcher.run.recovery import Item

__all__ = [
    "Batch",
    "count_commands",
    "next_queued",
    "next_registered",
    "next_to_send",
    "queue_all",
    "register_all",
    "registered",
    "to_send",
]

Batch = Callable[[], list[Item]]
"""The next commands to stream (on the ledger thread), each with its status; [] at the end."""


def registered(ledger: LedgerStore, job: Job, size: int) -> Iterator[list[Item]]:
    """On the ledger thread: every command of ``job`` registered, ``size`` at a time, with its
    status before (new ones: pending)."""
    commands = job.commands()
    try:
        while items := _register_next(ledger, commands, size):
            yield items
    finally:
        commands.close()


def register_all(ledger: LedgerStore, job: Job, size: int) -> None:
    """On the ledger thread: register every command of ``job`` (those new become pending)."""
    for _ in registered(ledger, job, size):
        pass


def count_commands(job: Job) -> int:
    """How many commands the job has (of its lane's product, when it names one)."""
    commands = job.commands()
    try:
        return sum(1 for _ in commands)
    finally:
        commands.close()


def queue_all(ledger: LedgerStore, job: Job, size: int) -> int:
    """On the ledger thread: the one pass over a job of steps: every command of ``job``
    registered and queued to send, ``size`` per transaction; how many."""
    n = 0
    commands = job.commands()
    try:
        while batch := list(itertools.islice(commands, size)):
            ledger.queue(batch)
            n += len(batch)
    finally:
        commands.close()
    return n


def next_registered(ledger: LedgerStore, commands: Iterator[Command], size: int) -> Batch:
    """A reader of the job's next ``size`` commands, registered, each with its status."""
    return functools.partial(_register_next, ledger, commands, size)


def next_queued(queued: Iterator[Item], size: int) -> Batch:
    """A reader of the next ``size`` queued commands (LedgerStore.queued), with their status."""
    return functools.partial(_take, queued, size)


def to_send(batch: list[Item], skipped: Callable[[str], None]) -> list[Item]:
    """Those of ``batch`` to send, with their status; ``skipped`` is told the key of each
    already final."""
    found: list[Item] = []
    for command, status in batch:
        if status in TO_SEND:
            found.append((command, status))
        elif status in FINAL:
            skipped(command.key)
    return found


def next_to_send(
    recorder: Recorder, batches: Batch, skipped: Callable[[str], None]
) -> Callable[[], Awaitable[list[Item]]]:
    """A reader of the next commands of ``batches`` to send (read on the ledger thread, batch by
    batch, until one is empty), with their status in the ledger; [] at the end; ``skipped`` as
    :func:`to_send`'s."""

    async def more() -> list[Item]:
        # Reading, checking and registering a batch all run on the ledger thread, so the event
        # loop keeps sending meanwhile.
        while batch := await recorder.call(batches):
            if found := to_send(batch, skipped):
                return found
        return []

    return more


def _take(items: Iterator[Item], size: int) -> list[Item]:
    return list(itertools.islice(items, size))


def _register_next(ledger: LedgerStore, commands: Iterator[Command], size: int) -> list[Item]:
    """The next ``size`` commands of the job, registered, with their status in the ledger."""
    batch = list(itertools.islice(commands, size))
    return list(zip(batch, ledger.register(batch), strict=True)) if batch else []
