"""The command line: the only place that prints, installs signal handlers and picks exit codes.

Exit codes: 0 every command accepted (or the job file is valid); 1 job file, config or ledger
invalid, nothing sent; 2 usage error; 3 finished, but some commands rejected, failed, expired or in
doubt; 4 stopped by a breaker (a wrong api-key, address or server); 5 the run broke off (the ledger
could not be written, e.g. a full disk): some commands may have been sent, run again once fixed;
130 stopped by a signal (resume by running the same command).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import aiohttp
import click

from dispatcher import __version__
from dispatcher.cli import console
from dispatcher.config import Settings, api_key_from_env, load_settings, plain_http_warning
from dispatcher.errors import ConfigError, DispatcherError
from dispatcher.job.model import Job, load_job, validate_job
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.store import FINAL, Ledger, Status
from dispatcher.onenet.client import OneNetClient
from dispatcher.report.summary import summarize, write_export
from dispatcher.run.binding import Binding, JobChangedError, bind_job, describe_change
from dispatcher.run.runner import RunResult, RunStats, Stop, run_job
from dispatcher.times import parse_timespec

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_BREAKER, EXIT_BROKEN = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130

T = TypeVar("T")


P = ParamSpec("P")


def _interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """A Ctrl-C outside a run's own handling (reading and checking the job) ends quietly, 130."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            console.note("interrupted; the same command goes on from where it stopped")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    console.error(message)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-v info, -vv debug).")
@click.version_option(version=__version__, prog_name="dispatcher")
def main(verbose: int) -> None:
    """Send a cached LwM2M execute command to a whole NB-IoT fleet through OneNET."""
    console.setup_logging(verbose)


@main.command()
@click.argument("jobfiles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--at", "at_text", metavar="TIME", help="Check times against this planned start.")
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. an IMEI check digit) as errors.")
@_interruptible
def validate(jobfiles: tuple[Path, ...], at_text: str | None, strict: bool) -> None:
    """Check job files without sending anything; report every problem as FILE:LINE: FIELD."""
    at = _planned_start(at_text)
    invalid = False
    for path in jobfiles:
        try:
            job = load_job(path)
            result = validate_job(job, at=at, strict=strict, on_problem=console.problem)
        except DispatcherError as exc:
            console.error(str(exc))
            invalid = True
            continue
        console.validation(job, result)
        invalid = invalid or not result.ok
    sys.exit(EXIT_INVALID if invalid else EXIT_OK)


def _planned_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        spec = parse_timespec(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    if spec.at is None:
        raise click.BadParameter(
            "give an absolute time, e.g. 2026-12-01T02:00:00", param_hint="--at"
        )
    return spec.at


@main.command()
@click.argument("jobfile", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file.")
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    help="Results ledger (default: <job file>.ledger.db next to the job file).",
)
@click.option("--rate", type=float, help="Requests per second at most (0: no limit).")
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
@_interruptible
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
) -> None:
    """Validate JOBFILE, then send every command not yet done, recording each outcome."""
    if resend_in_doubt and not no_reconcile:
        raise click.UsageError("--resend-in-doubt needs --no-reconcile")
    try:
        settings = load_settings(config_path)
    except DispatcherError as exc:
        _fail(str(exc))
    try:
        settings = settings.with_overrides(
            rate="keep" if rate is None else rate, concurrency=concurrency, base_url=base_url
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc).removeprefix("command line: ")) from None
    try:
        api_key = api_key_from_env(settings)
        console.redact(api_key)
        warning = plain_http_warning(settings.onenet.base_url)
        if warning:
            console.warn(warning)
        job = load_job(jobfile)
        path = ledger_path or default_ledger_path(job.path)
        # Resuming: times that passed since the job was first run are not errors (a passed
        # valid_time is dropped, a passed expired_time is recorded as expired).
        resuming = path.exists()
        checked = validate_job(
            job,
            strict=strict,
            on_problem=console.problem,
            past_times="warn" if resuming else "error",
        )
        if not checked.ok:
            _fail(f"{jobfile}: {checked.errors} error(s): nothing was sent")
        ledger = Ledger.open(path, synchronous=settings.ledger.synchronous)
    except DispatcherError as exc:
        _fail(str(exc))
    try:
        binding = bind_job(
            ledger,
            job,
            fingerprint=checked.fingerprint,
            total=checked.commands,
            accept_changes=accept_changes,
        )
        _tell_binding(job, binding)
        finished = _finished(job, ledger, checked.commands)
        if finished is not None:
            ledger.close()
            sys.exit(EXIT_OK if finished else EXIT_INCOMPLETE)
    except JobChangedError as exc:
        for change in exc.diff.changed_examples:
            console.note(describe_change(change))
        if exc.diff.changed > len(exc.diff.changed_examples):
            console.note(f"... and {exc.diff.changed - len(exc.diff.changed_examples):,} more")
        ledger.close()
        _fail(str(exc))
    except DispatcherError as exc:
        ledger.close()
        _fail(str(exc))
    try:
        stats = RunStats(total=checked.commands)
        result = _run_async(
            lambda stop: _dispatch(
                job,
                ledger,
                settings,
                api_key=api_key,
                stop=stop,
                stats=stats,
                reconcile=not no_reconcile,
                resend_in_doubt=resend_in_doubt,
                progress=progress,
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
        _fail(
            f"the run broke off, and some commands may have been sent: {exc}{advice}",
            EXIT_BROKEN,
        )
    ledger.close()
    sys.exit(_finish(result, resume=" ".join(["dispatcher", *sys.argv[1:]])))


def _tell_binding(job: Job, binding: Binding) -> None:
    """Say what an edited or moved job changed in its ledger."""
    if binding.moved_from is not None:
        console.note(f"{job.source}: the job file moved (it was {binding.moved_from})")
    diff = binding.diff
    if diff is None:
        return
    if diff.changed:
        console.note(
            f"{job.source}: {diff.changed:,} edited command(s) will be sent as new commands;"
            " their earlier versions are kept as they were"
        )
    if diff.removed:
        console.note(
            f"{job.source}: {diff.removed:,} command(s) of the ledger are no longer in the job"
            " file: they are kept in the ledger as removed and not sent"
        )
        for row in diff.removed_examples[:5]:
            console.note(f"  removed: {row.source}:{row.line}: imei {row.imei}")
    if diff.returned:
        console.note(f"{job.source}: {diff.returned:,} removed command(s) are back in the job")


def _finished(job: Job, ledger: Ledger, total: int) -> bool | None:
    """None while some command of the job has no final outcome; else say so, and whether every
    command was accepted."""
    counts = ledger.counts()
    final = sum(counts[s] for s in FINAL)
    if final < total or final < sum(counts.values()):
        return None
    parts = ", ".join(f"{counts[s]:,} {s.value}" for s in FINAL if counts[s])
    console.note(f"{job.source}: the job is finished ({parts}): nothing to send")
    return counts[Status.ACCEPTED] == final


async def _dispatch(
    job: Job,
    ledger: Ledger,
    settings: Settings,
    *,
    api_key: str,
    stop: Stop,
    stats: RunStats,
    reconcile: bool = True,
    resend_in_doubt: bool = False,
    progress: bool | None = None,
) -> RunResult:
    timeout = aiohttp.ClientTimeout(
        total=settings.retry.request_timeout_s,
        sock_connect=min(10.0, settings.retry.request_timeout_s),
    )
    connector = aiohttp.TCPConnector(limit=settings.limits.concurrency, ttl_dns_cache=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        client = OneNetClient(session, settings.onenet.base_url, api_key)
        with console.live_progress(stats, enabled=progress):
            return await run_job(
                job,
                client,
                ledger,
                settings,
                stop=stop,
                stats=stats,
                reconcile_in_doubt=reconcile,
                resend_in_doubt=resend_in_doubt,
                notify=console.warn,
            )


def _finish(result: RunResult, *, resume: str | None) -> int:
    """The closing lines of a run, and its exit code; ``resume`` is the command that resumes it."""
    console.summary_line(result)
    if result.aborted is not None:
        console.error(result.aborted.reason)
        return EXIT_BREAKER
    if result.stop_reason is not None:
        console.note(
            f"stopped ({result.stop_reason})" + (f"; to resume: {resume}" if resume else "")
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if result.complete else EXIT_INCOMPLETE


def _run_async(start: Callable[[Stop], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when installed; the first SIGINT/SIGTERM stops gracefully, a second at once."""
    # Every request allocates a few hundred short-lived objects: with the default threshold the
    # cycle collector runs every few requests and keeps walking the long-lived imports. Setting
    # those aside (gc.freeze) and collecting the young generation less often saves about a tenth
    # of the CPU per command (make bench), for a few MB of garbage held a little longer.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        return _loop_runner(_guarded(start))
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _guarded(start: Callable[[Stop], Coroutine[Any, Any, T]]) -> Callable[[], Awaitable[T]]:
    """``start`` with signal handlers installed around it."""

    async def guarded() -> T:
        stop = Stop()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            name = signal.Signals(signum).name
            if stop.requested:
                console.warn(f"{name} again: stopping now; in-flight commands will be reconciled")
                stop.request(f"interrupted by {name}", immediate=True)
            else:
                console.warn(f"{name}: finishing in-flight commands (again to stop at once)")
                stop.request(f"interrupted by {name}")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await start(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return guarded


def _loop_runner(main_coro: Callable[[], Awaitable[T]]) -> T:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_as_coro(main_coro))


async def _as_coro(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


@main.command()
@click.argument("ledger_path", metavar="LEDGER", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl", "json"]),
    default="table",
    show_default=True,
    help="table: a summary; csv/jsonl/json: every command, on stdout.",
)
def report(ledger_path: Path, fmt: str) -> None:
    """Summarize a results ledger, or export every command's outcome."""
    if not ledger_path.exists():
        _fail(f"{ledger_path}: no such ledger")
    try:
        ledger = Ledger.open(ledger_path, read_only=True)
    except DispatcherError as exc:
        _fail(str(exc))
    try:
        if fmt == "table":
            console.summary_table(summarize(ledger))
        else:
            write_export(ledger, fmt, sys.stdout)  # type: ignore[arg-type]  # checked by Choice
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except DispatcherError as exc:
        _fail(str(exc))
    finally:
        ledger.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--fail-rate", default=0.0, type=click.FloatRange(0, 1), help="HTTP 500 share.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0), help="Added latency.")
@click.option("--latency-jitter-ms", default=0.0, type=click.FloatRange(0), help="Plus 0..this.")
@click.option(
    "--throttle",
    "throttle_rps",
    type=click.FloatRange(0, min_open=True),
    help="Admit at most this many requests per second; throttle the rest.",
)
@click.option(
    "--throttle-mode",
    type=click.Choice(["errno7", "http429"]),
    default="errno7",
    show_default=True,
    help="How throttling is answered.",
)
@click.option("--retry-after", default=1.0, type=click.FloatRange(0), help="429's Retry-After.")
@click.option(
    "--cut-before",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests cut before they are processed.",
)
@click.option(
    "--cut-after",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests accepted, then cut before the answer.",
)
@click.option("--api-key-env", help="Accept only the key in this environment variable.")
@click.option("--foreign-imei", multiple=True, help="An IMEI outside the product (errno 1).")
@click.option("--seed", type=int, help="Make the injected faults reproducible.")
@click.option(
    "--truncate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests accepted, then answered with half the JSON body.",
)
@click.option("--gzip", "gzip_answers", is_flag=True, help="Gzip every answer, asked or not.")
@click.option(
    "--gzip-bomb",
    "bomb_bytes",
    default=0,
    metavar="BYTES",
    type=click.IntRange(0, 1 << 32),
    help="Pad accepted answers with whitespace to BYTES, then gzip them.",
)
@click.option(
    "--clock-offset",
    default=0.0,
    metavar="SECONDS",
    type=float,
    help="The server's clock (checks, create_time, Date) runs this far ahead (or behind, < 0).",
)
@click.option(
    "--hang",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Share of requests read, then never answered.",
)
@click.option(
    "--html-error",
    "html_status",
    metavar="STATUS",
    type=click.IntRange(300, 599),
    help="Answer every API call with an HTML page of this status, as a proxy in front would.",
)
def emulator(
    host: str,
    port: int,
    fail_rate: float,
    latency_ms: float,
    latency_jitter_ms: float,
    throttle_rps: float | None,
    throttle_mode: str,
    retry_after: float,
    cut_before: float,
    cut_after: float,
    api_key_env: str | None,
    foreign_imei: tuple[str, ...],
    seed: int | None,
    truncate: float,
    gzip_answers: bool,
    bomb_bytes: int,
    clock_offset: float,
    hang: float,
    html_status: int | None,
) -> None:
    """Serve a local stand-in for OneNET's cached-command API, with fault injection."""
    from dispatcher import emulator as emu

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env) or _fail(f"{api_key_env} is not set", EXIT_USAGE)
        console.redact(api_key)
    faults = emu.Faults(
        fail_rate=fail_rate,
        cut_before_rate=cut_before,
        cut_after_rate=cut_after,
        throttle_rps=throttle_rps,
        throttle_mode=throttle_mode,  # type: ignore[arg-type]  # checked by Choice
        throttle_retry_after=retry_after,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        seed=seed,
        api_key=api_key,
        foreign_imeis=frozenset(foreign_imei),
        truncate_rate=truncate,
        hang_rate=hang,
        html_status=html_status,
        compress=gzip_answers,
        bomb_bytes=bomb_bytes,
        clock_offset_s=clock_offset,
    )
    try:
        emu.run(host, port, faults, ready=lambda url: console.note(f"OneNET emulator on {url}"))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    except KeyboardInterrupt:
        console.note("emulator stopped")


DEMO_JOB = Path("jobs/example.yaml")


@main.command()
@click.option(
    "--job",
    "jobfile",
    type=click.Path(path_type=Path),
    default=DEMO_JOB,
    show_default=True,
    help="The job to run.",
)
@click.option("--rate", default=1000.0, show_default=True, help="Requests per second at most.")
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="Inject server errors and lost answers, to show they end accepted.",
)
def demo(jobfile: Path, rate: float, faults: bool) -> None:
    """Run a job against the built-in OneNET emulator, with progress and the report."""
    from dispatcher import emulator as emu

    ledger_path = Path(".demo") / (jobfile.stem + ".ledger.db")
    ledger_path.parent.mkdir(exist_ok=True)
    for stale in ledger_path.parent.glob(ledger_path.name + "*"):
        stale.unlink()
    try:
        job = load_job(jobfile)
        checked = validate_job(job, on_problem=console.problem)
        if not checked.ok:
            _fail(f"{jobfile}: {checked.errors} error(s): nothing was sent")
        console.validation(job, checked)
        try:
            settings = Settings().with_overrides(rate=rate, concurrency=32)
        except ConfigError as exc:
            raise click.UsageError(str(exc).removeprefix("command line: ")) from None
        settings = dataclasses.replace(
            settings, reliability=dataclasses.replace(settings.reliability, settle_s=0.5)
        )
        ledger = Ledger.open(ledger_path, synchronous="normal")
    except DispatcherError as exc:
        _fail(str(exc))
    injected = emu.Faults(fail_rate=0.03, cut_after_rate=0.005, seed=7) if faults else emu.Faults()
    stats = RunStats(total=checked.commands)

    async def start(stop: Stop) -> RunResult:
        server = emu.Emulator(injected)
        async with emu.serve(server) as url:
            console.note(f"OneNET emulator on {url}; faults: {_describe(injected)}")
            settings_here = settings.with_overrides(base_url=url)
            result = await _dispatch(
                job, ledger, settings_here, api_key="demo-key", stop=stop, stats=stats
            )
            dup = server.stats().get("duplicates", 0)
            console.note(f"emulator holds {len(server.accepted()):,} commands, {dup} duplicated")
            return result

    result = _run_async(start)
    console.summary_table(summarize(ledger))
    ledger.close()
    console.note(f"every outcome: dispatcher report {ledger_path} --format csv")
    sys.exit(_finish(result, resume=None))  # a demo starts afresh each time


def _describe(faults: Any) -> str:
    shown = []
    if faults.fail_rate:
        shown.append(f"HTTP 500 on {faults.fail_rate:.0%}")
    if faults.cut_after_rate:
        shown.append(f"answers lost after accepting on {faults.cut_after_rate:.1%}")
    return ", ".join(shown) or "none"
