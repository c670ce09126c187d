"""The verify use case: is the fleet on the target version? Each device of a ledger's job judged
against the job's ``verify:`` (on target, not yet, failed, never seen) from what it reads, the
verdicts written to the ledger; with ``watch``, rounds until every device is final.

The ledger may be given as its job file (its default ledger beside it, as ``run`` writes it);
the ``verify:`` section is read from the job file the ledger records. Refused before anything is
asked of OneNET: a job without ``verify:`` or with a wrong one, ``source: command`` when no
command of the job reads the resource, and ``source: datapoints`` on the newer platform (it has
no ``GET /devices/datapoints``).

May import: errors, config, job, ledger, onenet, run, app.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dispatcher.app.clients import open_session
from dispatcher.app.events import Driver, Events, Quiet, run_plainly
from dispatcher.app.keys import default_keys, lane_keys
from dispatcher.app.paths import job_ledger
from dispatcher.app.resources import existing_ledger
from dispatcher.app.verify_checks import newer_platform
from dispatcher.app.watching import status_title
from dispatcher.config import Settings
from dispatcher.errors import (
    BrokeOff,
    ConfigError,
    DispatcherError,
    JobFileError,
    LedgerError,
    RunAborted,
)
from dispatcher.job.model import load_job
from dispatcher.job.rows import Problem
from dispatcher.job.verifyspec import VerifySource, VerifySpec, uncovered_problem
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import ledger_exists
from dispatcher.ledger.store import LedgerStore, VerifyResult, VerifyState
from dispatcher.notify import EventKind, Notifier, ledger_notice
from dispatcher.report.next_steps import After
from dispatcher.run.lane import Lane
from dispatcher.run.probe import check_lane
from dispatcher.run.state import Stop
from dispatcher.run.verify import reads_it
from dispatcher.run.verify_rounds import Verifier, VerifyCalls, VerifyLane, VerifyRound

__all__ = ["JOB_SUFFIXES", "VerifyOutcome", "VerifyRequest", "ledger_of", "verify"]

JOB_SUFFIXES = (".yaml", ".yml", ".csv")  # a path so named is a job file, not a ledger
_PROBE_ROWS = 1000  # rows looked at for the probe's devices


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """The ledger (or its job file) to verify; one round, or (``watch``) rounds ``interval_s``
    apart until every device is final."""

    ledger: LedgerAddress
    watch: bool = False
    interval_s: float = 30.0
    config: str | None = None  # the config file's name, for the next command a notice says


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """What verify found: the ledger's title and path, the job's spec, every device's verdict
    (the last round's), whether all are final, the calls made, and a stop's reason."""

    title: str
    ledger: LedgerAddress
    job: Path
    spec: VerifySpec
    results: tuple[VerifyResult, ...]
    final: bool
    calls: VerifyCalls
    rounds: int
    unreadable: int = 0
    last_error: str = ""
    stopped: str | None = None

    def counts(self) -> dict[VerifyState, int]:
        """Devices by state (every state present)."""
        found = dict.fromkeys(VerifyState, 0)
        for r in self.results:
            found[r.state] += 1
        return found

    def calls_per_device(self) -> float:
        """Calls made per device verified (0 when there is none)."""
        return self.calls.total / len(self.results) if self.results else 0.0


def ledger_of(path: LedgerAddress, shared: str | None = None) -> LedgerAddress:
    """The ledger a path names: itself, or the ledger a job file's run opens by default (the
    file beside it, or its job in the PostgreSQL ledger ``shared``: the config's
    ``ledger.url``)."""
    if isinstance(path, Path) and path.suffix.lower() in JOB_SUFFIXES:
        return job_ledger(path, shared)
    return path


def verify(
    settings: Settings,
    request: VerifyRequest,
    *,
    events: Events | None = None,
    drive: Driver = run_plainly,
    on_round: Callable[[int, VerifyRound], None] | None = None,
) -> VerifyOutcome:
    """Judge every device of the ledger's job against its ``verify:`` (module docstring).

    LedgerError (no such ledger), JobFileError (no or a wrong ``verify:``, a resource no
    command reads), ConfigError (datapoints on the newer platform, a product's key), BrokeOff
    when reading broke off (the verdicts of the rounds done are kept).
    """
    events = Quiet() if events is None else events
    notifier = Notifier.of(settings.notify, secret=events.secret)
    path = ledger_of(request.ledger, settings.ledger.url)
    if path != request.ledger and not ledger_exists(path):
        raise LedgerError(f"{request.ledger}: its ledger {path} does not exist: run the job first")
    with existing_ledger(path, settings) as ledger:
        job_path = _job_path(request.ledger, ledger)
        spec = _spec(job_path)
        if spec.source is VerifySource.COMMAND and not any(
            reads_it(spec, r) for r in ledger.rows(retired=False)
        ):
            raise _job_error(uncovered_problem(spec, str(job_path), "command of the job"))
        products = sorted(ledger.product_counts()) if settings.products else []
        keys = lane_keys(settings, products, events) if products else default_keys(settings, events)
        if spec.source is VerifySource.DATAPOINTS:
            for name, (lane_settings, _) in keys.lanes.items():
                if lane_settings.onenet.platform != "onenet":
                    raise ConfigError(newer_platform(spec, name, bool(products)))

        async def rounds(stop: Stop) -> tuple[Verifier, VerifyRound]:
            async with contextlib.AsyncExitStack() as stack:
                lanes: dict[str | None, VerifyLane] = {}
                calls = VerifyCalls()
                for name, (lane_settings, key) in keys.lanes.items():
                    client = await stack.enter_async_context(open_session(lane_settings, key))
                    lane = Lane.of(client, lane_settings)
                    # OneNET's clock (the windows are on it), and a wrong key or address found
                    # at once: as status does.
                    imeis = _devices(ledger, name if products else None, lane_settings)
                    probe = await check_lane(
                        lane, imeis, settings=lane_settings, stop=stop, sleep=asyncio.sleep,
                        clock=time.time,
                    )  # fmt: skip
                    calls.probes += 1
                    if probe.why is not None:
                        raise probe.why
                    lanes[name if products else None] = VerifyLane(lane, client, lane_settings)
                verifier = Verifier(
                    spec, ledger, lanes, stop, time.time, on_round=on_round, calls=calls
                )
                last = await verifier.run(watch=request.watch, interval_s=request.interval_s)
                return verifier, last

        try:
            verifier, last = drive(rounds)
            title = status_title(ledger)
        except (ConfigError, RunAborted):
            raise  # a lane's token cannot be made, or its probe found the key or address wrong
        except DispatcherError as exc:
            raise BrokeOff(f"verify broke off: {exc}; the verdicts recorded are kept") from exc
        # Told once verify ends by itself: its one round, or the last of --watch's.
        told = not verifier.stop.requested and notifier.wanted(EventKind.VERIFY_FINISHED)
        kind = EventKind.VERIFY_FINISHED
        notices = (
            [
                ledger_notice(
                    kind,
                    ledger,
                    path,
                    # As the screen advises: devices not final may still report.
                    After(config=request.config, has_verify=True, verify_open=not last.final),
                )
            ]
            if told
            else []
        )
    if notices:
        drive(lambda stop: notifier.deliver(notices, warn=events.warn, until=stop.wait))
    stop = verifier.stop
    return VerifyOutcome(
        title, path, job_path, spec, tuple(last.results), last.final, verifier.calls,
        verifier.rounds, last.unreadable, last.last_error,
        stop.reason if stop.requested else None,
    )  # fmt: skip


def _devices(ledger: LedgerStore, product: str | None, settings: Settings) -> list[str]:
    """A few devices of the lane (``product``; None: any) for its probe."""
    rows = (
        r for r in ledger.rows(retired=False) if product is None or r.command.product == product
    )
    first = itertools.islice(rows, _PROBE_ROWS)
    return list(dict.fromkeys(r.command.imei for r in first))[
        : settings.reliability.breaker_threshold
    ]


def _job_path(given: LedgerAddress, ledger: LedgerStore) -> Path:
    """The job file whose ``verify:`` applies: the one given, else the one the ledger records."""
    if isinstance(given, Path) and given.suffix.lower() in JOB_SUFFIXES:
        return given
    record = ledger.job()
    if record is None:
        raise LedgerError(
            f"{ledger.path} records no job file: give the job file (dispatcher verify JOB.yaml)"
        )
    return Path(record.path)


def _spec(job_path: Path) -> VerifySpec:
    """The job's ``verify:``; JobFileError when it has none or a wrong one."""
    job = load_job(job_path)
    wrong = [p for p in job.problems if p.field.startswith("verify") and not p.warning]
    if wrong:
        raise _job_error(wrong[0])
    if job.verify is None:
        raise JobFileError(
            job.source, 0, "verify",
            'the job says nothing to verify: add verify: {read: 3/0/3, expect: "2.4.1"}',
        )  # fmt: skip
    return job.verify


def _job_error(problem: Problem) -> JobFileError:
    return JobFileError(problem.file, problem.line, problem.field, problem.message)
