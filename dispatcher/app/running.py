"""The run use case: validate a job, bind it to its ledger, and send what is not done yet (or,
as a dry run, work out the plan and send nothing).

May import: errors, config, job, ledger, run, times, app.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from dispatcher.app.events import Driver, Events, Quiet, run_plainly
from dispatcher.app.figures import each_command, plan_figures
from dispatcher.app.keys import LaneKeys, default_keys, lane_keys, product_problems
from dispatcher.app.paths import (
    earlier_ledgers,
    job_ledger,
    ledger_path_for,
    ledger_to_resume,
    resumable,
)
from dispatcher.app.planning import canary_cannot_be_delivered, planned
from dispatcher.app.resources import closing
from dispatcher.app.send import all_through, send_job
from dispatcher.app.targeting import Confirm, JobTargets, targets_of
from dispatcher.app.verify_checks import platform_problems
from dispatcher.config import Settings
from dispatcher.errors import (
    BrokeOff,
    ConfigError,
    DispatcherError,
    JobInvalid,
    LedgerError,
    NothingToDo,
    Refused,
    RolloutAborted,
    RunAborted,
)
from dispatcher.job.model import Job, Reading, Validation, load_job, validate_job
from dispatcher.job.plan import Plan
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.occurrences import Occurrence
from dispatcher.ledger.opening import discard_ledger, ledger_exists, open_ledger
from dispatcher.ledger.store import FINAL, LedgerStore
from dispatcher.notify import EventKind, Notice, Notifier, ledger_notice
from dispatcher.report.next_steps import After, flag_in, resume_argv
from dispatcher.run.binding import bind_job, preview_binding
from dispatcher.run.state import RunResult, RunStats
from dispatcher.times import BEIJING

__all__ = ["RunOutcome", "RunRequest", "run"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What to run, and how: the job file, its ledger (None: next to the job; placeholders such
    as ``{date}`` resume the job's unfinished ledger), and the run's options."""

    job: Path
    ledger: LedgerAddress | None = None
    config: str | None = None  # the config file's name, for messages about its products
    strict: bool = False  # warnings are errors
    reconcile: bool = True  # look in-doubt commands up in OneNET's history
    resend_in_doubt: bool = False  # with reconcile False: send them again (at-least-once)
    accept_changes: bool = False  # send commands edited since the ledger recorded them
    dry_run: bool = False  # work out the plan, send nothing
    rollout: Mapping[str, Any] = field(default_factory=dict)  # rollout_from_flags's, by name
    start_at: str | None = None  # a scheduled start in place of the job's
    refresh_targets: bool = False  # take the devices a targets_query adds today (as new commands)
    reading: Reading | None = None  # how a CSV or sheet job file is read (None: as found)
    # The command line as typed (no program name): the next command a notice says resumes the
    # run with the same flags; (): ``dispatcher run JOB``, its ledger named when not the default.
    argv: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended: its ledger, and the run's result (None: a dry run, or stopped before its
    scheduled start, when nothing was sent)."""

    ledger: LedgerAddress
    result: RunResult | None
    dry_run: bool = False
    errnos: tuple[tuple[int, str, int], ...] = ()  # by errno, when a rollout rule stopped it
    by_product: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    targets: JobTargets | None = None  # what a targets_query found, and what was frozen


def run(
    settings: Settings,
    request: RunRequest,
    *,
    events: Events | None = None,
    drive: Driver = run_plainly,
    confirm: Confirm | None = None,
) -> RunOutcome:
    """Run the job of ``request`` against the settings' OneNET; JobInvalid (nothing sent) when
    the job has errors, NothingToDo when every command is final already, BrokeOff when the run
    broke off midway (some commands may have been sent). A job with a targets_query is sent to
    its frozen devices (app/targeting.py); devices about to be frozen are sent to only once
    ``confirm`` says yes (None: go ahead), else Refused."""
    events = Quiet() if events is None else events
    # One lane: its key is checked before all else; with products, once the job says which.
    keys = LaneKeys({}) if request.dry_run else default_keys(settings, events)
    notifier = Notifier.of(settings.notify, secret=events.secret)
    job = load_job(request.job, request.reading)
    plan = planned(job.plan, request.rollout, request.start_at)
    late = canary_cannot_be_delivered(job, plan)
    if late:
        events.warn(late)
    now = time.time()
    start = now if plan.start_at is None else max(now, plan.start_at.timestamp())
    started = datetime.fromtimestamp(start, BEIJING)
    earlier: list[Occurrence] = []
    if request.ledger is not None:
        path = ledger_path_for(request.ledger, job_path=job.path, start=started)
        earlier = earlier_ledgers(request.ledger, path)  # with placeholders: what it matches
    else:
        path = job_ledger(job.path, settings.ledger.url)
    targets = None
    if request.refresh_targets and job.query is None:
        events.warn(f"--refresh-targets: {request.job} has no targets_query: nothing to refresh")
    if job.query is not None and not any(not p.warning for p in job.problems):
        # (a job whose file has errors is refused by its validation, OneNET not asked)
        refresh = request.refresh_targets
        job, targets = targets_of(job, path, settings, refresh=refresh, events=events, drive=drive)
    # Resuming: times that passed since the job was first run are not errors (a passed
    # valid_time is dropped, a passed expired_time is recorded as expired). Times are checked
    # against the start: a scheduled job's relative times count from then.
    resuming = ledger_exists(path) or resumable(earlier, job.path)
    checked = validate_job(
        job,
        at=started,
        strict=request.strict,
        on_problem=events.problem,
        past_times="warn" if resuming else "error",
    )
    unknown = product_problems(checked, settings, request.config)
    unknown += platform_problems(job, checked.products, settings)
    for problem in unknown:
        events.problem(problem)
    if not checked.ok or unknown:
        errors = checked.errors + len(unknown)
        raise JobInvalid(f"{request.job}: {errors} error(s): nothing was sent", tuple(unknown))
    if request.ledger is not None and earlier:
        path = ledger_to_resume(
            earlier,
            path,
            given=request.ledger,
            job_path=job.path,
            fingerprint=checked.fingerprint,
            events=events,
        )
        resuming = ledger_exists(path)
    if request.dry_run:
        _dry_run(job, checked, plan, path, settings, now, request.accept_changes, events)
        return RunOutcome(path, None, dry_run=True, targets=targets)
    if targets is not None and targets.to_freeze and confirm is not None and not confirm(targets):
        n = len(targets.to_freeze)
        raise Refused(f"{n:,} devices of {targets.label} not confirmed: nothing was sent")
    if settings.products:
        keys = lane_keys(settings, checked.products, events)
    ledger = _open_for_the_run(path, settings)
    with closing(ledger):
        _bind(ledger, job, checked, request.accept_changes, events)
        if targets is not None and targets.to_freeze:
            ledger.freeze_targets(targets.to_freeze)
        if start > now:
            events.validated(job, checked)
            canary = plan.rollout.canary is not None
            events.plan(
                plan, plan_figures(job, checked, settings, path, ledger, canary=canary), now
            )
        stats = RunStats(total=checked.commands)
        judged_before = ledger.canary_covered_before(None)  # a canary of this job passed before
        try:
            result = drive(
                lambda stop: send_job(
                    job,
                    ledger,
                    settings,
                    keys,
                    events=events,
                    stop=stop,
                    stats=stats,
                    reconcile=request.reconcile,
                    resend_in_doubt=request.resend_in_doubt,
                    rollout=plan.rollout,
                    start_at=start if start > now else None,
                )
            )
        except ConfigError:
            raise  # a lane's token cannot be made: nothing was sent
        except DispatcherError as exc:
            advice = (
                ""
                if "run the same command again" in str(exc)
                else (
                    "; once fixed, run the same command again: commands marked in flight are"
                    " looked up before anything is sent again"
                )
            )
            raise BrokeOff(
                f"the run broke off, and some commands may have been sent: {exc}{advice}"
            ) from exc
        if result is None:
            ledger.close()
            if not resuming:  # made for this run, which never began: the next is a first run too
                discard_ledger(path)
            return RunOutcome(path, None, targets=targets)
        aborted = isinstance(result.aborted, RolloutAborted)
        errnos = tuple(ledger.errno_groups()) if aborted else ()
        by_product = ledger.product_counts()
        canary = plan.rollout.canary is not None and not judged_before
        notices = _notices(notifier, ledger, path, job, request, result, canary=canary)
    if notices:  # after the run, the ledger closed: the run never waits on a webhook
        drive(lambda stop: notifier.deliver(notices, warn=events.warn, until=stop.wait))
    return RunOutcome(path, result, errnos=errnos, by_product=by_product, targets=targets)


def _notices(
    notifier: Notifier,
    ledger: LedgerStore,
    path: LedgerAddress,
    job: Job,
    request: RunRequest,
    result: RunResult,
    *,
    canary: bool,
) -> list[Notice]:
    """What the run's end tells the targets: finished (a pause after a good canary too) or
    aborted (a rollout rule or a breaker), nothing for a run a signal stopped; and, when this
    run judged the job's first canary, its verdict."""
    found: list[tuple[EventKind, str | None, bool | None]] = []
    stopped = result.aborted
    if canary and (ledger.canary_covered_before(None) or result.paused):
        found.append((EventKind.CANARY_VERDICT, result.paused, True))
    elif canary and isinstance(stopped, RolloutAborted):
        found.append((EventKind.CANARY_VERDICT, stopped.reason, False))
    if isinstance(stopped, RunAborted):
        found.append((EventKind.RUN_ABORTED, stopped.reason, None))
    elif result.stop_reason is None:
        found.append((EventKind.RUN_FINISHED, result.paused, None))
    typed = request.argv
    after = After(
        job=str(request.job),
        config=request.config,
        base_url=flag_in(typed, "--base-url"),
        resume=resume_argv(typed, path) if typed else None,
        has_verify=job.verify is not None,
        rollout_stopped=isinstance(stopped, RolloutAborted),
    )
    return [
        ledger_notice(kind, ledger, path, after, reason=reason, passed=passed)
        for kind, reason, passed in found
        if notifier.wanted(kind)
    ]  # fmt: skip


def _bind(
    ledger: LedgerStore, job: Job, checked: Validation, accept_changes: bool, events: Events
) -> None:
    """Bind the ledger to the job, saying what an edit changed; NothingToDo when the job is
    finished, JobChangedError when the edit is refused."""
    binding = bind_job(
        ledger,
        job,
        fingerprint=checked.fingerprint,
        total=checked.commands,
        accept_changes=accept_changes,
    )
    events.bound(job, binding)
    counts = ledger.counts()
    final = sum(counts[s] for s in FINAL)
    if final < checked.commands or final < sum(counts.values()):
        return
    parts = ", ".join(f"{counts[s]:,} {s.value}" for s in FINAL if counts[s])
    raise NothingToDo(
        f"{job.source}: the job is finished ({parts}): nothing to send",
        through=all_through(counts, handed=ledger.handed_over()),
    )


def _open_for_the_run(path: LedgerAddress, settings: Settings) -> LedgerStore:
    """The run's ledger, opened (made if new) and locked; a file's directory made first."""
    if isinstance(path, Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"{path.parent}: cannot make the ledger's directory: {exc.strerror or exc}"
            ) from exc
    return open_ledger(path, synchronous=settings.ledger.synchronous)


def _dry_run(
    job: Job,
    checked: Validation,
    plan: Plan,
    path: LedgerAddress,
    settings: Settings,
    now: float,
    accept_changes: bool,
    events: Events,
) -> None:
    """The plan worked out as the run works it out, from the job, the config and the ledger
    (read, never written); an edit the run would refuse is refused the same way."""
    events.validated(job, checked)
    ledger = open_ledger(path, read_only=True) if ledger_exists(path) else None
    edited: frozenset[str] = frozenset()
    if ledger is None:
        figures = plan_figures(
            job, checked, settings, path, None, canary=plan.rollout.canary is not None
        )
    else:
        with closing(ledger):
            binding = preview_binding(
                ledger, job, fingerprint=checked.fingerprint, accept_changes=accept_changes
            )
            diff = binding.diff
            events.bound(job, replace(binding, diff=None if diff is None or diff.same else diff))
            if diff is not None and diff.changed:
                # The edited commands whose ledger version is final: the run sends them again.
                every = ledger.compare(each_command(job), apply=False, sample=diff.changed)
                edited = frozenset(
                    c.command.key for c in every.changed_examples if c.row.status in FINAL
                )
            figures = plan_figures(
                job, checked, settings, path, ledger, edited=edited,
                canary=plan.rollout.canary is not None,
            )  # fmt: skip
    events.plan(plan, figures, now)
