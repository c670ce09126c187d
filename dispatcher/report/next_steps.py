"""What to do next after a run, a status read or a verify: the commands that move the job on.

One rule set, read by every place that ends with advice (``run``, ``status``, ``verify``, the demo,
the HTML page and the notifications), so they never disagree. From a ledger's :class:`Summary`:

1. commands not sent yet, in flight or in doubt -> ``run JOB`` again (it resumes; nothing twice);
2. accepted commands whose delivery is still open -> ``status LEDGER --watch``;
3. devices of a job of steps verify found not on target -> ``retry-failed LEDGER
   --not-verified -o RETRY`` (it holds the commands that did not get through too; a job
   without steps has no such retry: rule 4 applies), those whose time to verify is not over
   -> ``verify LEDGER --watch`` (they may still report);
4. else commands that did not get through (refused, failed, expired, held back) or whose
   delivery expired or failed -> ``retry-failed LEDGER -o RETRY``;
   then a retry job the hand-over names that is not in place -> ``retry-failed LEDGER -o
   RETRY`` (the same command writes it again);
5. a job with ``verify:`` never judged, its delivery settled -> ``verify LEDGER``.

What a retry job took over (``retry-failed``'s hand-over) is no problem of this job's any more:
rule 4 counts only what was not handed over, so it never advises a retry that would write nothing.

A run stopped by a rollout rule with commands waiting on OneNET adds ``cancel LEDGER`` (withdraw
what the platform still holds before the job is fixed). Nothing left to do gives no step.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import Status, VerifyState
from dispatcher.report.summary import Summary

__all__ = ["After", "NextStep", "flag_in", "next_steps", "resume_argv", "retry_job_path"]

_NOT_SENT: Final = (Status.PENDING, Status.IN_FLIGHT, Status.IN_DOUBT)
_NOT_THROUGH: Final = (Status.REJECTED, Status.FAILED, Status.EXPIRED, Status.SKIPPED)
_DELIVERY_LOST: Final = (DeliveryState.EXPIRED, DeliveryState.FAILED)


@dataclass(frozen=True, slots=True)
class NextStep:
    """One command to run next, and why (a short clause: "12 commands failed")."""

    argv: tuple[str, ...]
    why: str

    @property
    def command(self) -> str:
        """The command as a shell line (quoted where needed)."""
        return shlex.join(self.argv)


def resume_argv(argv: Sequence[str], ledger: LedgerAddress) -> tuple[str, ...]:
    """The command that resumes a run typed as ``argv`` (without the program's name): its flags
    kept, its ``--ledger`` as resolved (a placeholder such as ``{date}`` filled again would name
    a new ledger, and send the whole job again)."""
    shown: list[str] = []
    skip = given = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ledger" or arg.startswith("--ledger="):
            skip, given = arg == "--ledger", True
            continue
        shown.append(arg)
    return ("dispatcher", *shown, *(("--ledger", str(ledger)) if given else ()))


def flag_in(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` (``--config``) a command line was given (its last), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(f"{flag}="):
            found = arg.removeprefix(f"{flag}=")
    return found


def retry_job_path(ledger: LedgerAddress) -> Path:
    """Where a retry job of ``ledger`` is suggested: ``<job>-retry.yaml`` beside the ledger (a
    job of a PostgreSQL ledger: in the working directory)."""
    if isinstance(ledger, PostgresAddress):
        return Path(f"{Path(ledger.name).stem}-retry.yaml")
    job = Path(ledger.name.removesuffix(".ledger.db")).stem
    return ledger.with_name(f"{job}-retry.yaml")


@dataclass(frozen=True, slots=True)
class After:
    """What the next commands are made of besides the ledger's figures: how the command before
    was given and where the job stands. One value, handed by the command line, the use cases'
    notices and the HTML page alike."""

    job: str | None = None  # the job file (for a resume; None: no resume step)
    config: str | None = None  # the --config the commands that talk to OneNET take
    base_url: str | None = None  # and the --base-url: they go where the command before went
    resume: tuple[str, ...] | None = None  # the run as typed (its flags kept), for ``run JOB``
    has_verify: bool = False  # the job has a ``verify:`` section
    rollout_stopped: bool = False  # the latest run was stopped by a rollout rule
    verify_open: bool = False  # devices verify found not on target may still report


def next_steps(
    summary: Summary, ledger: LedgerAddress, after: After | None = None
) -> tuple[NextStep, ...]:
    """The commands that move the job of ``ledger`` on, most urgent first (none: it is done),
    from its figures and ``after`` (how the command before was given; None: nothing known)."""
    after = After() if after is None else after
    job, config, base_url, resume = after.job, after.config, after.base_url, after.resume
    has_verify, rollout_stopped = after.has_verify, after.rollout_stopped
    verify_open = after.verify_open
    counts = summary.by_status
    steps: list[NextStep] = []
    with_config = (*(("--config", config) if config else ()),
                   *(("--base-url", base_url) if base_url else ()))  # fmt: skip
    name = str(ledger)

    unsent = sum(counts.get(s.value, 0) for s in _NOT_SENT) + summary.unregistered
    if unsent and (job is not None or resume) and not rollout_stopped:
        doubt = counts.get(Status.IN_DOUBT.value, 0)
        why = f"{_n(unsent, 'command')} not sent yet" + (f" ({doubt:,} in doubt)" if doubt else "")
        again = tuple(resume) if resume else _run_again(str(job), ledger, with_config)
        steps.append(NextStep(again, why + ": run resumes"))

    delivery = summary.delivery
    open_ = 0 if delivery is None else delivery.open
    if rollout_stopped and open_:
        steps.append(
            NextStep(
                ("dispatcher", "cancel", name, *with_config),
                f"{_n(open_, 'command')} still wait on OneNET: withdraw them before fixing the job",
            )
        )
    elif open_:
        steps.append(
            NextStep(
                ("dispatcher", "status", name, "--watch", *with_config),
                f"{_n(open_, 'command')} not delivered yet: watch until"
                f" {'it is' if open_ == 1 else 'they are'}",
            )
        )

    # What a retry job took over is no problem of this job's any more (its own ledger says).
    through = sum(counts.get(s.value, 0) for s in _NOT_THROUGH) - summary.handed_over
    lost = 0 if delivery is None else sum(delivery.commands[s] for s in _DELIVERY_LOST)
    lost -= 0 if delivery is None else delivery.handed
    compliance = summary.compliance
    behind = to_report = 0
    if compliance is not None:
        states = compliance.by_state
        to_report = states.get(VerifyState.NOT_YET, 0) + states.get(VerifyState.NEVER_SEEN, 0)
        behind = states.get(VerifyState.FAILED, 0)
        behind += 0 if verify_open else states.get(VerifyState.NOT_YET, 0)
    retry = ("dispatcher", "retry-failed", name, "-o", str(retry_job_path(ledger)))
    # Once a retry job took devices over, this ledger's verdicts on them stay as they were (the
    # retry job's own verify judges them): advising --not-verified again would write nothing.
    if behind and summary.stepped and not summary.retry_jobs:
        # Verify judged the devices: a job of those not on target holds the commands that did
        # not get through as well (their steps not done), so it is the one step to take.
        steps.append(
            NextStep(
                (*retry[:3], "--not-verified", *retry[3:]),
                f"{_n(behind, 'device')} not on target: a job to take them through again",
            )
        )
    elif through or lost:
        parts = [f"{_n(through, 'command')} did not get through"] if through else []
        if lost:
            parts.append(f"{_n(lost, 'delivery', 'deliveries')} expired or failed")
        them = "it" if through + lost == 1 else "them"
        steps.append(NextStep(retry, " and ".join(parts) + f": a job of {them} to send again"))
    for path, n in summary.retry_jobs.items():
        # A retry job's own ledger says what became of what it took over; whether it ran, and
        # on which ledger, this one cannot know (advising a run could send it all again). One
        # not in place (deleted, or a retry-failed stopped before it was) is written again.
        if not Path(path).is_file():
            steps.append(
                NextStep(
                    ("dispatcher", "retry-failed", name, "-o", path),
                    f"{_n(n, 'command')} handed to {path}, which is not there: write it again",
                )
            )
    if verify_open and to_report:
        steps.append(
            NextStep(
                ("dispatcher", "verify", name, "--watch", *with_config),
                f"{_n(to_report, 'device')} still to report: verify until each is on target"
                " or its time to verify is over",
            )
        )
    if has_verify and compliance is None and not open_ and not unsent:
        steps.append(
            NextStep(
                ("dispatcher", "verify", name, *with_config),
                "the devices were not judged yet: read what they report",
            )
        )
    return tuple(steps)


def _run_again(job: str, ledger: LedgerAddress, lane: tuple[str, ...]) -> tuple[str, ...]:
    """``dispatcher run JOB``, with ``--ledger`` when the ledger is not the one the job's run
    opens by default (without it, the run would open a new ledger and send everything again):
    a PostgreSQL ledger is always named, with its job."""
    if isinstance(ledger, PostgresAddress):
        return ("dispatcher", "run", job, "--ledger", str(ledger), *lane)
    default = os.path.abspath(default_ledger_path(Path(job)))
    whole = os.path.abspath(ledger)  # as the job's path is: the command works from anywhere
    own = () if whole == default else ("--ledger", whole)
    return ("dispatcher", "run", job, *own, *lane)


def _n(n: int, one: str, many: str | None = None) -> str:
    """``n`` with its noun, singular for one."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
