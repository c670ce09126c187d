"""The closing lines of a run and its exit code: shared by ``run`` and ``demo``."""

from __future__ import annotations

import shlex
from pathlib import Path

from dispatcher.app.send import all_through
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_BREAKER, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK
from dispatcher.errors import RolloutAborted
from dispatcher.ledger.store import Status
from dispatcher.run.state import RunResult

__all__ = ["end_of_run"]


def end_of_run(
    result: RunResult,
    *,
    resume: str | None,
    errnos: list[tuple[int, str, int]] | None = None,
    ledger: Path | None = None,
) -> int:
    """The closing lines of a run, and its exit code; ``resume`` is the command that resumes it,
    ``errnos`` the breakdown shown when a rollout rule stopped it; ``ledger``: the run's, named
    in the next command when steps were held back."""
    console.summary_line(result)
    for name, why in result.lanes.items():
        said = "finished" if why is None else f"stopped: {why.removeprefix(f'product {name}: ')}"
        console.note(f"product {name}: {said}")
    if result.aborted is not None:
        console.error(result.aborted.reason)
        for errno, text, n in errnos or []:
            if errno != 0:
                console.note(f"  errno {errno} ({text or 'no text'}): {n:,}")
        if isinstance(result.aborted, RolloutAborted) and resume:
            console.note(f"fix the job, then run again to go on: {resume}")
        return EXIT_BREAKER
    if result.paused is not None:
        console.note(result.paused + (f"; to go on: {resume}" if resume else ""))
        return EXIT_OK
    if result.stop_reason is not None:
        console.note(
            f"stopped ({result.stop_reason})" + (f"; to resume: {resume}" if resume else "")
        )
        return EXIT_INTERRUPTED
    through = all_through(result.counts, result.unregistered, result.handed)
    held = result.counts.get(Status.SKIPPED, 0)
    if not through and held and ledger is not None:
        job = Path(ledger.name.removesuffix(".ledger.db")).stem
        retry = [
            "dispatcher",
            "retry-failed",
            str(ledger),
            "-o",
            str(ledger.with_name(f"{job}-retry.yaml")),
        ]
        console.note(
            f"{held:,} commands were not sent (held back after a step before them did not get"
            f" through, or skipped by a rollout rule); next: {shlex.join(retry)}"
        )
    return EXIT_OK if through else EXIT_INCOMPLETE
