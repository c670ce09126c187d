"""The closing lines of a run, the commands to run next, and its exit code: shared by ``run``
and ``demo``."""

from __future__ import annotations

import shlex

from dispatcher.app.send import all_through
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_BREAKER, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK
from dispatcher.cli.next_view import show_next, steps_of_path
from dispatcher.errors import RolloutAborted
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.store import Status
from dispatcher.report.next_steps import After, flag_in
from dispatcher.run.state import RunResult

__all__ = ["end_of_run"]


def end_of_run(
    result: RunResult,
    *,
    resume: str | None,
    errnos: list[tuple[int, str, int]] | None = None,
    ledger: LedgerAddress | None = None,
) -> int:
    """The closing lines of a run, then the commands to run next, and its exit code; ``resume``
    is the command that resumes it (its ``--config`` is passed on), ``errnos`` the breakdown
    shown when a rollout rule stopped it; ``ledger``: the run's, read for the next commands."""
    console.summary_line(result)
    for name, why in result.lanes.items():
        said = "finished" if why is None else f"stopped: {why.removeprefix(f'product {name}: ')}"
        console.note(f"product {name}: {said}")
    code, resume_said = _how_it_ended(result, resume, errnos or [])
    if ledger is not None:
        typed = shlex.split(resume) if resume else None
        after = After(
            config=flag_in(typed or [], "--config"),
            base_url=flag_in(typed or [], "--base-url"),
            resume=tuple(typed) if typed else None,
            rollout_stopped=isinstance(result.aborted, RolloutAborted),
        )
        steps = steps_of_path(ledger, after)
        # The line above said the resume already (with why the run stopped): not twice.
        show_next([s for s in steps if not (resume_said and list(s.argv) == typed)])
    return code


def _how_it_ended(
    result: RunResult, resume: str | None, errnos: list[tuple[int, str, int]]
) -> tuple[int, bool]:
    """The lines that say how the run ended; its exit code, and whether they said ``resume``."""
    if result.aborted is not None:
        console.error(result.aborted.reason)
        for errno, text, n in errnos:
            if errno != 0:
                console.note(f"  errno {errno} ({text or 'no text'}): {n:,}")
        if resume:  # a rollout rule's stop is the job's to fix; a breaker's, the key's or address's
            fix = "the job" if isinstance(result.aborted, RolloutAborted) else "what stopped it"
            console.note(f"fix {fix}, then run again to go on: {resume}")
        return EXIT_BREAKER, bool(resume)
    if result.paused is not None:
        console.note(result.paused + (f"; to go on: {resume}" if resume else ""))
        return EXIT_OK, bool(resume)
    if result.stop_reason is not None:
        console.note(
            f"stopped ({result.stop_reason})" + (f"; to resume: {resume}" if resume else "")
        )
        return EXIT_INTERRUPTED, bool(resume)
    through = all_through(result.counts, result.unregistered, result.handed)
    held = result.counts.get(Status.SKIPPED, 0)
    if not through and held:
        console.note(
            f"{held:,} commands were not sent (held back after a step before them did not get"
            " through, or skipped by a rollout rule)"
        )
    return (EXIT_OK if through else EXIT_INCOMPLETE), False
