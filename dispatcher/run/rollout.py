"""Safe rollouts: a canary first, a pace that ramps up while results stay good, abort rules.

The canary is a few commands drawn evenly across the job (not its first rows: those are often one
site, one batch of devices). They are sent first; with ``wait: delivered`` the run then follows
their delivery (status rounds, as ``dispatcher status``) until every canary device is final or
``timeout`` ran out. The canary fails when any of its commands was refused with one of the abort
rule's errnos, or when more of it failed than ``abort.max_failure_rate`` allows (20 % when the
job sets no rate): refused, failed, and with ``wait: delivered`` failed on the device, expired, or
still not delivered at the timeout, over the canary's commands (one in doubt, expired or not sent
counts as failed: not known to be good is not good). A failing canary stops the
run before anything else is sent; a good one is recorded in the ledger, so a rerun does not send
it again, and ``then: pause`` ends the run there (exit 0) for someone to look.

The guard watches every outcome of the run's sends: the ramp raises the lane's pace
(``start_per_second`` times ``factor`` after each ``every_accepted`` accepted, up to the
configured rate; the adaptive slow-down works under it: the lower wins), and the abort rules stop
it (an errno of ``on_errnos`` at once; ``max_failure_rate`` once ``min_decided`` commands were
decided). A stopped rollout marks every command not sent ``skipped``, with the rule that fired.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from dispatcher.errors import RolloutAborted, RunAborted
from dispatcher.job.plan import Abort, Canary, Rollout
from dispatcher.ledger.records import DeliveryState, Row, Status
from dispatcher.run.lane import Lane

__all__ = [
    "CANARY_MAX_FAILURE_RATE",
    "CanaryVerdict",
    "Guard",
    "canary_positions",
    "judge_canary",
]

log = logging.getLogger(__name__)

CANARY_MAX_FAILURE_RATE: Final = 0.2  # a canary's failure share allowed when the job sets none
_UNLIMITED: Final = 1e6  # requests per second: a ramp without a configured rate stops here
_BAD_DELIVERY: Final = frozenset(
    {DeliveryState.FAILED, DeliveryState.EXPIRED, DeliveryState.CANCELLED}
)


def canary_positions(total: int, canary: Canary) -> frozenset[int]:
    """The job positions (0-based, in file order) of the canary's commands: evenly spread, the
    middle of each of ``count`` equal stretches of the job."""
    n = canary.count(total)
    return frozenset(min(total - 1, math.floor((k + 0.5) * total / n)) for k in range(n))


@dataclass(frozen=True, slots=True)
class CanaryVerdict:
    """What the canary came to: its counts, and why it failed (None: it went well)."""

    commands: int
    decided: int
    failures: int
    failed_because: str | None
    errnos: dict[int, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # the commands judged


def judge_canary(rows: Sequence[Row], canary: Canary, abort: Abort | None) -> CanaryVerdict:
    """The verdict on the canary's rows as the ledger holds them (after the wait)."""
    delivered = canary.wait == "delivered"
    decided = failures = undecided = 0
    errnos: Counter[int] = Counter()
    stopping = abort.on_errnos if abort is not None else frozenset()
    fired: list[str] = []
    for row in rows:
        if row.status is Status.ACCEPTED:
            decided += 1
            state = row.delivery
            if delivered and state in _BAD_DELIVERY | {
                DeliveryState.UNREAD,
                DeliveryState.WAITING,
                DeliveryState.SENT,
            }:
                failures += 1
        elif row.status in (Status.REJECTED, Status.FAILED):
            decided += 1
            failures += 1
            if row.errno is not None:
                errnos[row.errno] += 1
                if row.errno in stopping:
                    fired.append(f"errno {row.errno} ({row.error or 'refused'})")
        else:  # in doubt, expired, not sent: not known to be good is not good
            undecided += 1
    limit = CANARY_MAX_FAILURE_RATE
    if abort is not None and abort.max_failure_rate is not None:
        limit = abort.max_failure_rate
    why = None
    what = "failed on delivery or refused" if delivered else "refused or failed"
    bad, whole = failures + undecided, decided + undecided
    if fired:
        why = f"the canary got {fired[0]}, which abort.on_errnos stops on"
    elif decided == 0:
        why = f"none of the canary's {len(rows)} commands was decided (no answer from OneNET)"
    elif bad / whole > limit:
        left = f", {undecided} of them undecided (in doubt, expired, not sent)" if undecided else ""
        why = (
            f"{bad} of the canary's {whole} commands {what}{left}"
            f" ({bad / whole:.0%}, more than {limit:.0%})"
        )
    return CanaryVerdict(len(rows), whole, bad, why, dict(errnos), [r.key for r in rows])


class Guard:
    """The ramp and the abort rules, fed with every outcome of the run's sends."""

    def __init__(
        self,
        rollout: Rollout,
        lane: Lane,
        ceiling: float | None,
        on_abort: Callable[[RunAborted], None],
    ) -> None:
        self.rollout, self.lane, self.ceiling, self.on_abort = rollout, lane, ceiling, on_abort
        self.accepted = self.decided = self.failures = 0
        self.errnos: Counter[int] = Counter()
        self.fired: str | None = None  # the rule that stopped the run
        self._step = -1
        if rollout.ramp is not None:
            self._ramp()

    def observe(self, status: Status, errno: int | None) -> None:
        """One outcome of a send."""
        if status is Status.ACCEPTED:
            self.accepted += 1
            self.decided += 1
            if self.rollout.ramp is not None:
                self._ramp()
        elif status in (Status.REJECTED, Status.FAILED):
            self.decided += 1
            self.failures += 1
            if errno is not None:
                self.errnos[errno] += 1
        else:
            return
        self._check(status, errno)

    def _ramp(self) -> None:
        ramp = self.rollout.ramp
        assert ramp is not None
        step = self.accepted // ramp.every_accepted
        if step == self._step:
            return
        self._step = step
        rate = ramp.rate(self.accepted, self.ceiling)
        if rate is not None and self.ceiling is not None and rate >= self.ceiling:
            rate = self.ceiling
        elif rate is not None and rate >= _UNLIMITED:  # no configured rate: the ramp is done
            rate = None
        self.lane.limit_to(rate)
        log.info("ramp: pace %s/s after %d accepted", "unlimited" if rate is None else rate, step)

    def _check(self, status: Status, errno: int | None) -> None:
        abort = self.rollout.abort
        if abort is None or self.fired is not None:
            return
        if errno is not None and errno in abort.on_errnos:  # refused, or failed on retries
            self._fire(f"abort.on_errnos: OneNET answered errno {errno}")
            return
        rate = abort.max_failure_rate
        if rate is not None and self.decided >= abort.min_decided:
            share = self.failures / self.decided
            if share > rate:
                self._fire(
                    f"abort.max_failure_rate: {self.failures} of {self.decided} decided commands"
                    f" refused or failed ({share:.1%}, more than {rate:.1%})"
                )

    def _fire(self, rule: str) -> None:
        self.fired = rule
        self.on_abort(RolloutAborted(f"the rollout stopped: {rule}"))
