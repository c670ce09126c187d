"""The job's commands into the ledger: registered in batches on the ledger's thread, and streamed
from there to the fan-out with their status (those to send), in the job's order.

May import: job, ledger, model, run (recovery's Item). Never cli, app, report or emulator.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator

from dispatcher.job.model import Command, Job
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import FINAL, TO_SEND, LedgerStore
from dispatcher.run.recovery import Item

__all__ = ["count_commands", "register_all", "registered", "stream_to_send"]


def registered(ledger: LedgerStore, job: Job, size: int) -> Iterator[list[Item]]:
    """On the ledger thread: every command of ``job`` registered, ``size`` at a time, with its
    status before (new ones: pending)."""
    commands = job.commands()
    try:
        while batch := list(itertools.islice(commands, size)):
            yield list(zip(batch, ledger.register(batch), strict=True))
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


async def stream_to_send(
    recorder: Recorder,
    every: Iterator[Command],
    step: int | None,
    size: int,
    skipped: Callable[[str], None],
) -> AsyncIterator[Item]:
    """The job's commands (``every``; of one step, or all) registered ``size`` at a time, those
    to send given with their status in the ledger; ``skipped`` is told the key of each already
    final. The caller closes ``every`` (on the ledger thread) once the fan-out is done."""
    commands = every if step is None else (c for c in every if c.step == step)
    # Reading, checking and registering a batch all run on the ledger thread, so the event loop
    # keeps sending meanwhile.
    while batch := await recorder.call(_register_next, recorder.ledger, commands, size):
        for command, status in batch:
            if status in TO_SEND:
                yield command, status
            elif status in FINAL:
                skipped(command.key)


def _register_next(ledger: LedgerStore, commands: Iterator[Command], size: int) -> list[Item]:
    """The next ``size`` commands of the job, registered, with their status in the ledger."""
    batch = list(itertools.islice(commands, size))
    return list(zip(batch, ledger.register(batch), strict=True)) if batch else []
