"""What a use case tells its caller while it works, and how its async part is driven.

``Events`` is the observer a use case reports to: problems found in a job file, notes, warnings,
the secrets to keep off any screen, what binding a job to its ledger changed, the plan, and live
progress. The command line's console implements it (cli/observer.py); the library default,
``Quiet``, only logs. ``Driver`` runs the coroutine of a use case with a ``Stop`` of its own: the
command line's turns SIGINT and SIGTERM into a graceful stop (cli/signals.py), ``run_plainly``
just runs it.

May import: job, ledger (delivery), run (state), app.figures; never cli.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from dispatcher.app.cancel_plan import CancelPlan, LaneCancelled
    from dispatcher.app.figures import PlanFigures
    from dispatcher.job.model import Job, Problem, Validation
    from dispatcher.job.plan import Plan
    from dispatcher.ledger.delivery import DeliveryBreakdown
    from dispatcher.run.binding import Binding
    from dispatcher.run.state import RunStats, Stop
    from dispatcher.run.status import StatusRound

__all__ = ["Driver", "Events", "Quiet", "run_plainly"]

log = logging.getLogger("dispatcher.app")

T = TypeVar("T")


class Driver(Protocol):
    """How a use case's coroutine is run: given the coroutine's start (which takes the stop to
    obey), its result. (Stop is named as a string: the run package, and aiohttp with it, is
    loaded only when used.)"""

    def __call__(self, start: Callable[[Stop], Coroutine[Any, Any, T]]) -> T:
        """Run ``start`` with a stop of the driver's own; its result."""
        ...


class Events(Protocol):
    """The observer of a use case: what it found, decided and did, as it goes."""

    def problem(self, problem: Problem) -> None:
        """A job-file problem (an error, or a warning when ``problem.warning``)."""

    def note(self, message: str) -> None:
        """Something worth saying, one line."""

    def warn(self, message: str) -> None:
        """Something that may need attention, one line."""

    def secret(self, value: str) -> None:
        """A secret (a key) read for this use case: never to be shown from now on."""

    def validated(self, job: Job, checked: Validation) -> None:
        """The summary of a job's validation (shown before a plan)."""

    def bound(self, job: Job, binding: Binding) -> None:
        """What binding the job to its ledger changed (or, in a dry run, would)."""

    def plan(self, plan: Plan, figures: PlanFigures, now: float) -> None:
        """The plan of a run: what it sends, at what pace, from when."""

    def progress(self, stats: RunStats) -> AbstractContextManager[None]:
        """Live progress of the sending, while the block runs."""

    def waiting(self, start_at: float) -> AbstractContextManager[None]:
        """A wait for a scheduled start (unix seconds), while the block runs."""

    def reading(self, several: bool) -> AbstractContextManager[None]:
        """Rounds of reading delivery states (on ``several`` lanes at once), while the block
        runs."""

    def round_started(self, number: int, progress: StatusRound) -> None:
        """A round of reading began (one lane only); ``progress`` fills as it goes."""

    def round_read(
        self, lane: str, number: int, result: StatusRound, now: DeliveryBreakdown | None = None
    ) -> None:
        """A round of reading ended; ``lane`` names the lane when there are several (""),
        ``now`` is where the job's deliveries stand after it."""

    def states_read(self, result: StatusRound) -> None:
        """The states of the commands to cancel were read (one lane's)."""

    def cancel_plan(self, plan: CancelPlan) -> None:
        """What cancel found: what it can cancel, and what it leaves as it is."""

    def lane_cancelled(self, done: LaneCancelled) -> None:
        """A lane's cancels are over."""


class Quiet:
    """The library's default observer: problems, notes and warnings go to the log; nothing is
    shown live."""

    def problem(self, problem: Problem) -> None:
        """A problem as a log line (warning level for errors, info for warnings)."""
        log.log(logging.INFO if problem.warning else logging.WARNING, "%s", problem)

    def note(self, message: str) -> None:
        """An info log line."""
        log.info("%s", message)

    def warn(self, message: str) -> None:
        """A warning log line."""
        log.warning("%s", message)

    def secret(self, value: str) -> None:
        """Nothing: the library never writes a key into its log lines."""

    def validated(self, job: Job, checked: Validation) -> None:
        """An info log line with the counts."""
        log.info("%s: %d commands, %d errors", job.path, checked.commands, checked.errors)

    def bound(self, job: Job, binding: Binding) -> None:
        """Nothing: the ledger holds what changed."""

    def plan(self, plan: Plan, figures: PlanFigures, now: float) -> None:
        """An info log line with the count to send."""
        log.info("plan: %d commands to send", figures.to_send)

    @contextlib.contextmanager
    def progress(self, stats: RunStats) -> Iterator[None]:
        """Nothing shown."""
        yield

    @contextlib.contextmanager
    def waiting(self, start_at: float) -> Iterator[None]:
        """Nothing shown."""
        yield

    @contextlib.contextmanager
    def reading(self, several: bool) -> Iterator[None]:
        """Nothing shown."""
        yield

    def round_started(self, number: int, progress: StatusRound) -> None:
        """Nothing: the round's end is logged."""

    def round_read(
        self, lane: str, number: int, result: StatusRound, now: DeliveryBreakdown | None = None
    ) -> None:
        """An info log line with what the round read."""
        log.info("%sround %d: %d read, %d moved", lane, number, result.read, result.changed)

    def states_read(self, result: StatusRound) -> None:
        """An info log line with what was read."""
        log.info("state read: %d read, %d moved", result.read, result.changed)

    def cancel_plan(self, plan: CancelPlan) -> None:
        """An info log line with the commands that can be cancelled."""
        log.info("%s: %d waiting commands can be cancelled", plan.title, plan.waiting)

    def lane_cancelled(self, done: LaneCancelled) -> None:
        """An info log line with the counts."""
        report = done.report
        log.info("cancelled %d; refused %d", len(report.cancelled), len(report.refused))


def run_plainly(start: Callable[[Stop], Coroutine[Any, Any, T]]) -> T:
    """Run ``start`` on a new event loop with a stop of its own (no signal handlers)."""
    from dispatcher.run.state import Stop

    return asyncio.run(start(Stop()))
