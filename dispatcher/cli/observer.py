"""The console as the observer of a use case (app/events.py): problems on stdout, notes and
warnings on stderr, every secret masked, the plan and live progress shown on a terminal."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from dispatcher.app.figures import PlanFigures
from dispatcher.cli import console
from dispatcher.cli.binding_view import tell_binding
from dispatcher.cli.delivery_view import RoundProgress, round_line
from dispatcher.cli.plan_view import Countdown, plan_lines, show_plan
from dispatcher.job.model import Job, Problem, Validation
from dispatcher.job.plan import Plan
from dispatcher.run.binding import Binding
from dispatcher.run.state import RunStats
from dispatcher.run.status import StatusRound

if TYPE_CHECKING:
    from dispatcher.app.cancel_plan import CancelPlan, LaneCancelled
    from dispatcher.ledger.delivery import DeliveryBreakdown

__all__ = ["ConsoleEvents"]

_EXAMPLES = 5  # refused or unanswered commands named one by one


class ConsoleEvents:
    """What a use case says, on the console; ``live``: live views (None: on a terminal)."""

    def __init__(self, live: bool | None = None) -> None:
        self.live = live
        self.rounds = RoundProgress()

    def problem(self, problem: Problem) -> None:
        """FILE:LINE: FIELD: message, on stdout."""
        console.problem(problem)

    def note(self, message: str) -> None:
        """A note on stderr."""
        console.note(message)

    def warn(self, message: str) -> None:
        """A warning on stderr."""
        console.warn(message)

    def secret(self, value: str) -> None:
        """Masked in every line from now on."""
        console.redact(value)

    def validated(self, job: Job, checked: Validation) -> None:
        """The validation summary, on stdout."""
        console.validation(job, checked)

    def bound(self, job: Job, binding: Binding) -> None:
        """What binding changed, as notes."""
        tell_binding(job, binding)

    def plan(self, plan: Plan, figures: PlanFigures, now: float) -> None:
        """The plan, under a heading, on stderr."""
        show_plan(plan_lines(plan, figures, now))

    def progress(self, stats: RunStats) -> AbstractContextManager[None]:
        """The live progress line."""
        return console.live_progress(stats, enabled=self.live)

    def waiting(self, start_at: float) -> AbstractContextManager[None]:
        """The countdown to the start."""
        return console.live(Countdown(start_at, time.time), enabled=self.live)

    def reading(self, several: bool) -> AbstractContextManager[None]:
        """The live view of the round being read (one lane only)."""
        return console.live(
            self.rounds, enabled=False if several else self.live, plain=self.rounds.plain
        )

    def round_started(self, number: int, progress: StatusRound) -> None:
        """The live view follows the new round."""
        self.rounds.start(number, progress)

    def round_read(
        self, lane: str, number: int, result: StatusRound, now: DeliveryBreakdown | None = None
    ) -> None:
        """What the round read, and where the deliveries stand, as a note."""
        console.note(lane + round_line(number, result, now))

    def states_read(self, result: StatusRound) -> None:
        """What the reading of the states found, as a note."""
        console.note(round_line(1, result).replace("round 1", "state read", 1))

    def cancel_plan(self, plan: CancelPlan) -> None:
        """What will be cancelled, and what is left as it is."""
        console.note(
            f"{plan.title}: {plan.waiting:,} waiting commands on {plan.devices:,}"
            " devices can be cancelled"
        )
        if plan.states:
            parts = ", ".join(f"{n:,} {s.value}" for s, n in plan.states)
            console.note(f"left as they are: {parts}")
        if plan.in_doubt:
            console.warn(
                f"{plan.in_doubt:,} commands are in doubt (OneNET may hold them, under a uuid"
                " not known yet): `dispatcher run` on the job settles them; then cancel again"
            )
        if plan.unsent:
            console.warn(
                f"{plan.unsent:,} commands were never sent: running the job again would send"
                " them; take them out of the job file first"
            )

    def lane_cancelled(self, done: LaneCancelled) -> None:
        """The closing lines of a lane's cancels."""
        report = done.report
        console.show(
            f"cancelled {len(report.cancelled):,}; refused {len(report.refused):,}"
            f" (no longer waiting); not cancelled {len(report.unanswered):,}"
            + (f"; {report.not_asked:,} not asked (stopped)" if report.not_asked else "")
        )
        for key, why, status in report.refused[:_EXAMPLES]:
            now = "unknown" if status is None else f"send_status {status}"
            console.note(f"  refused: {key}: {why} (now {now})")
        for key, why in report.unanswered[:_EXAMPLES]:
            console.note(f"  not cancelled: {key}: {why}")
        if done.stopped is not None:
            console.note(f"stopped ({done.stopped}); the same command cancels the rest")
