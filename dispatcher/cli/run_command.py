"""``dispatcher run``: validate a job, bind it to its ledger, and send what is not done yet; and
what the demo shares with it (sending over one aiohttp session with live progress, the closing
lines and exit code of a run)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click

from dispatcher.cli import console
from dispatcher.cli.binding_view import tell_binding, tell_refused_edit
from dispatcher.cli.dry_run import plan_figures, show_dry_run
from dispatcher.cli.exits import (
    EXIT_BREAKER,
    EXIT_BROKEN,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    interruptible,
)
from dispatcher.cli.lanes import settings_and_key
from dispatcher.cli.ledger_paths import earlier_ledgers, ledger_to_resume, resumable
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.plan_options import ledger_path_for, plan_options, planned, resume_command
from dispatcher.cli.plan_view import Countdown, plan_lines, show_plan, wait_for_start
from dispatcher.cli.products import LaneKeys, lane_keys, open_clients, product_problems
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError, RolloutAborted
from dispatcher.job.model import Job, Validation, load_job, validate_job
from dispatcher.job.plan import Plan, Rollout
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.occurrences import Occurrence
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.sqlite_files import discard
from dispatcher.ledger.store import FINAL, LedgerStore, Status
from dispatcher.run.binding import JobChangedError, bind_job
from dispatcher.run.runner import run_job
from dispatcher.run.state import RunResult, RunStats, Stop
from dispatcher.times import BEIJING, format_onenet

__all__ = ["end_of_run", "run", "send_job"]


@click.command()
@click.argument("jobfile", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file.")
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    help="Results ledger (default: <job file>.ledger.db next to the job file).",
)
@click.option("--rate", type=FiniteFloat(min=0), help="Requests per second at most (0: no limit).")
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Requests in flight at most.")
@click.option("--base-url", help="OneNET API base URL (e.g. the emulator's).")
@click.option("--strict", is_flag=True, help="Treat job-file warnings as errors.")
@click.option("--no-reconcile", is_flag=True, help="Do not look up in-doubt commands in history.")
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="With --no-reconcile: resend in-doubt commands (at-least-once).",
)
@click.option(
    "--accept-changes",
    is_flag=True,
    help="Send commands edited since the ledger recorded them as new commands.",
)
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
@click.option("--dry-run", is_flag=True, help="Validate and show the plan; send nothing.")
@plan_options
@interruptible
def run(
    jobfile: Path,
    config_path: Path | None,
    ledger_path: Path | None,
    rate: float | None,
    concurrency: int | None,
    base_url: str | None,
    strict: bool,
    no_reconcile: bool,
    resend_in_doubt: bool,
    accept_changes: bool,
    progress: bool | None,
    dry_run: bool,
    plan_flags: dict[str, Any],
) -> None:
    """Validate JOBFILE, then send every command not yet done, recording each outcome."""
    if resend_in_doubt and not no_reconcile:
        raise click.UsageError("--resend-in-doubt needs --no-reconcile")
    # One lane: its key is checked before all else; with products, once the job says which.
    settings, api_key = settings_and_key(
        config_path, rate=rate, concurrency=concurrency, base_url=base_url, need_key=not dry_run
    )
    try:
        job = load_job(jobfile)
    except DispatcherError as exc:
        fail(str(exc))
    plan = planned(job.plan, plan_flags)
    late = _canary_cannot_be_delivered(job, plan)
    if late:
        console.warn(late)
    now = time.time()
    start = now if plan.start_at is None else max(now, plan.start_at.timestamp())
    started = datetime.fromtimestamp(start, BEIJING)
    earlier: list[Occurrence] = []
    if ledger_path is not None:
        path = ledger_path_for(ledger_path, job_path=job.path, start=started)
        earlier = earlier_ledgers(ledger_path, path)  # with placeholders: what it matches
    else:
        path = default_ledger_path(job.path)
    try:
        # Resuming: times that passed since the job was first run are not errors (a passed
        # valid_time is dropped, a passed expired_time is recorded as expired). Times are
        # checked against the start: a scheduled job's relative times count from then.
        resuming = path.exists() or resumable(earlier, job.path)
        checked = validate_job(
            job,
            at=started,
            strict=strict,
            on_problem=console.problem,
            past_times="warn" if resuming else "error",
        )
        unknown = product_problems(
            checked, settings, None if config_path is None else str(config_path)
        )
        for problem in unknown:
            console.problem(problem)
        if not checked.ok or unknown:
            errors = checked.errors + len(unknown)
            fail(f"{jobfile}: {errors} error(s): nothing was sent")
        if ledger_path is not None and earlier:
            path = ledger_to_resume(
                earlier, path, given=ledger_path, job_path=job.path, fingerprint=checked.fingerprint
            )
            resuming = path.exists()
        if dry_run:
            show_dry_run(job, checked, plan, path, settings, now, accept_changes=accept_changes)
        keys = (
            lane_keys(settings, checked.products)
            if settings.products
            else LaneKeys({"": (settings, api_key)})
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        ledger = Ledger.open(path, synchronous=settings.ledger.synchronous)
    except DispatcherError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path.parent}: cannot make the ledger's directory: {exc.strerror or exc}")
    fresh = not resuming
    _bind(ledger, job, checked, accept_changes)
    if start > now:
        console.validation(job, checked)
        figures = plan_figures(
            job, checked, settings, path, ledger, canary=plan.rollout.canary is not None
        )
        show_plan(plan_lines(plan, figures, now))
    try:
        stats = RunStats(total=checked.commands)
        result = run_with_signals(
            lambda stop: send_job(
                job,
                ledger,
                settings,
                keys=keys,
                stop=stop,
                stats=stats,
                reconcile=not no_reconcile,
                resend_in_doubt=resend_in_doubt,
                progress=progress,
                rollout=plan.rollout,
                start_at=start if start > now else None,
            ),
        )
    except DispatcherError as exc:
        with contextlib.suppress(DispatcherError):
            ledger.close()
        advice = (
            ""
            if "run the same command again" in str(exc)
            else (
                "; once fixed, run the same command again: commands marked in flight are looked up"
                " before anything is sent again"
            )
        )
        fail(
            f"the run broke off, and some commands may have been sent: {exc}{advice}",
            EXIT_BROKEN,
        )
    if result is None:
        ledger.close()
        if fresh:  # made for this run, which never began: the next one is a first run too
            discard(path)
        console.note("stopped before the scheduled start: nothing was sent")
        sys.exit(EXIT_INTERRUPTED)
    errnos = ledger.errno_groups() if isinstance(result.aborted, RolloutAborted) else []
    by_product = ledger.product_counts()
    ledger.close()
    if set(by_product) - {""}:  # the job's share of each product
        for product, states in by_product.items():
            parts = ", ".join(f"{n:,} {s.replace('_', ' ')}" for s, n in states.items())
            console.note(f"product {product or '(default)'}: {parts}")
    sys.exit(end_of_run(result, resume=resume_command(sys.argv[1:], path), errnos=errnos))


def _canary_cannot_be_delivered(job: Job, plan: Plan) -> str | None:
    """Why a canary judged on delivery would fail whatever the devices do: its commands may
    not be delivered before its timeout (a window, or a valid_time later than the timeout)."""
    canary = plan.rollout.canary
    if canary is None or canary.wait != "delivered":
        return None
    if plan.window is not None:
        return (
            "rollout.canary.wait is delivered, but the commands wait for the daily window"
            f" {plan.window.text}: a canary timeout of {canary.timeout_s:g}s may end before it"
            " opens, and the canary would fail"
        )
    commands = job.commands()
    try:
        first = next(commands, None)
    except DispatcherError:
        first = None
    finally:
        commands.close()
    valid = None if first is None else first.valid_time
    if (
        valid is not None
        and valid.offset is not None
        and valid.offset.total_seconds() >= (canary.timeout_s)
    ):
        return (
            f"rollout.canary.wait is delivered, but valid_time {valid.text} starts delivery after"
            f" the canary's timeout ({canary.timeout_s:g}s): the canary would fail"
        )
    return None


def _bind(ledger: LedgerStore, job: Job, checked: Validation, accept_changes: bool) -> None:
    """Bind the ledger to the job, saying what an edit changed; exit when there is nothing to
    do (the job is finished) or the edit is refused."""
    try:
        binding = bind_job(
            ledger,
            job,
            fingerprint=checked.fingerprint,
            total=checked.commands,
            accept_changes=accept_changes,
        )
        tell_binding(job, binding)
        finished = _already_finished(job, ledger, checked.commands)
        if finished is not None:
            ledger.close()
            sys.exit(EXIT_OK if finished else EXIT_INCOMPLETE)
    except JobChangedError as exc:
        tell_refused_edit(exc)
        ledger.close()
        fail(str(exc))
    except DispatcherError as exc:
        ledger.close()
        fail(str(exc))


def _already_finished(job: Job, ledger: LedgerStore, total: int) -> bool | None:
    """None while some command of the job has no final outcome; else say so, and whether every
    command was accepted."""
    counts = ledger.counts()
    final = sum(counts[s] for s in FINAL)
    if final < total or final < sum(counts.values()):
        return None
    parts = ", ".join(f"{counts[s]:,} {s.value}" for s in FINAL if counts[s])
    console.note(f"{job.source}: the job is finished ({parts}): nothing to send")
    return all_through(counts, handed=ledger.handed_over())


async def send_job(
    job: Job,
    ledger: LedgerStore,
    settings: Settings,
    *,
    api_key: str = "",
    keys: LaneKeys | None = None,
    stop: Stop,
    stats: RunStats,
    reconcile: bool = True,
    resend_in_doubt: bool = False,
    progress: bool | None = None,
    rollout: Rollout | None = None,
    start_at: float | None = None,
) -> RunResult | None:
    """Send ``job`` to the settings' OneNET, with live progress: over one aiohttp session with
    ``api_key``, or one per lane of ``keys`` (a product each); with ``start_at`` (unix seconds),
    only from then: None when stopped before it came."""
    if start_at is not None:
        shown = format_onenet(datetime.fromtimestamp(start_at, BEIJING))
        console.note(f"waiting for the start at {shown} (UTC+8); Ctrl-C cancels, nothing is sent")
        with console.live(Countdown(start_at, time.time), enabled=progress):
            if not await wait_for_start(start_at, stop):
                return None
        console.note("the scheduled start has come: sending")
    if keys is None:
        keys = LaneKeys({"": (settings, api_key)})
    async with open_clients(keys) as clients:
        default = clients.get("")
        products = {name: (client, keys.lanes[name][0]) for name, client in clients.items() if name}
        with console.live_progress(stats, enabled=progress):
            return await run_job(
                job,
                default if default is not None else next(iter(clients.values())),
                ledger,
                settings,
                stop=stop,
                stats=stats,
                reconcile_in_doubt=reconcile,
                resend_in_doubt=resend_in_doubt,
                rollout=rollout,
                notify=console.warn,
                inform=console.note,
                products=products or None,
                default_lane=default is not None,
            )


def end_of_run(
    result: RunResult, *, resume: str | None, errnos: list[tuple[int, str, int]] | None = None
) -> int:
    """The closing lines of a run, and its exit code; ``resume`` is the command that resumes it,
    ``errnos`` the breakdown shown when a rollout rule stopped it."""
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
    return EXIT_OK if through else EXIT_INCOMPLETE


# The outcomes that are no problem of the job: accepted, or handed to a retry job (retried), which
# sends them, and whose own run says how that went.
_THROUGH: Final = frozenset({Status.ACCEPTED, Status.RETRIED})


def all_through(counts: Mapping[Status, int], unregistered: int = 0, handed: int = 0) -> bool:
    """Whether a job of these counts needs nothing more of anyone (exit 0): every command
    accepted, or handed to a retry job (``handed`` of them kept their rejected or expired
    outcome here when they were)."""
    others = sum(n for s, n in counts.items() if s not in _THROUGH)
    return unregistered == 0 and others - handed == 0
