"""``dispatcher demo --job`` of a fleet update (a job with a ``targets_query:``, steps that wait
for delivery, or a ``verify:``): the closed loop against the built-in emulator, through the same
use cases as the commands: the fleet found by its query, the canary and the steps gated on
delivery while the fleet's clock runs ahead, verify, a retry of the stragglers once the sleepers
are back in coverage, verify again, and the HTML pages with the compliance first.

The emulator serves in a thread of its own (its fleet's clock, ``TimeLapse``, leaps ahead
while a run waits for the devices); the use cases run here, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from dispatcher import emulator as emu
from dispatcher.app import (
    RetryRequest,
    RunRequest,
    StatusRequest,
    VerifyRequest,
    retry_failed as retry_use_case,
    run as run_use_case,
    status as status_use_case,
    verify as verify_use_case,
)
from dispatcher.app.targeting import JobTargets
from dispatcher.cli import console
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.report_view import write_report_file
from dispatcher.cli.run_view import end_of_run
from dispatcher.cli.signals import run_with_signals
from dispatcher.cli.verify_command import show_verify
from dispatcher.config import Settings
from dispatcher.emulator.devices import Fleet
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import VerifyState

__all__ = ["FLEET", "TimeLapse", "closed_loop", "demo_devices", "describe_faults"]

KEY_ENV: Final = "DISPATCHER_DEMO_KEY"  # the demo's own variable: a real key is never sent
METERS: Final = 3_000
GATEWAYS: Final = 200  # devices of the product the query leaves out (not tagged "meter")
# The fleet behind both demos: devices wake about hourly; 4% never wake (out of coverage; the
# closed loop brings them back), 2% answer with an error (a fault a retry does not fix).
FLEET: Final = Fleet(
    wake_every_s=3600, never_wake=0.04, device_errors=0.02, answer_delay_s=5, seed=7
)
# While a run waits for its devices, the fleet's clock leaps this far this often: small leaps,
# so that a valid_time the run works out is still ahead of the fleet's clock when it arrives.
_LEAP_S: Final = 60.0
_LEAP_EVERY_S: Final = 0.02
_POLL_S: Final = 0.1  # the run's delivery polls meanwhile
_SETTLE_S: Final = 3 * 86400.0  # the fleet's time let pass before verify: every window closed


class TimeLapse:
    """The emulator's clock: the real one plus the fleet's time let pass, leaping while on."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self.leaping = threading.Event()

    def __call__(self) -> float:
        return time.time() + self.ahead

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The fleet's clock leaps ahead while the block runs."""
        self.leaping.set()
        try:
            yield
        finally:
            self.leaping.clear()

    async def leap(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await asyncio.sleep(_LEAP_EVERY_S)
            if self.leaping.is_set():
                self.ahead += _LEAP_S


def demo_devices(now: float, count: int = METERS) -> list[emu.Device]:
    """The product's registered devices: ``count`` meters tagged "meter" (and a city and a
    batch) on firmware 2.4.0, and ``GATEWAYS`` gateways the query must leave out."""
    meters = emu.made_up(count, seed=7, now=now)
    gateways = emu.made_up(GATEWAYS, seed=8, now=now, first=count)
    return [
        *(dataclasses.replace(d, tags=("meter", *d.tags)) for d in meters),
        *(
            dataclasses.replace(d, tags=("gateway", *d.tags), title=f"gw-{n}")
            for n, d in enumerate(gateways)
        ),
    ]


class _Served:
    """The emulator served on a loopback port from a thread of its own."""

    def __init__(self, server: emu.Emulator, clock: TimeLapse) -> None:
        self.server, self.clock = server, clock
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="demo-emulator", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> _Served:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        async def main() -> None:
            self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
            async with emu.serve(self.server) as url:
                self.url = url
                self._ready.set()
                await self.clock.leap(self._done)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()


def closed_loop(
    jobfile: Path,
    rate: float,
    faults: bool,
    settings: Settings,
    *,
    meters: int = METERS,
    fleet: Fleet = FLEET,
    seen: Callable[[emu.Emulator], None] | None = None,
) -> int:
    """The whole loop of a fleet update (module docstring) for ``meters`` meters; the exit code
    of its runs (the verdicts are shown: a device a retry cannot fix is the fleet's, not the
    demo's); ``meters``, ``fleet``: the simulated product; ``seen`` is shown the emulator
    at the end."""
    work = Path(".demo") / jobfile.stem
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    job = work / jobfile.name
    shutil.copy(jobfile, job)
    ledger = job.with_name(job.name + ".ledger.db")
    injected = emu.Faults(fail_rate=0.03, cut_after_rate=0.005, seed=7) if faults else emu.Faults()
    clock = TimeLapse()
    server = emu.Emulator(
        injected, clock=clock, fleet=fleet, devices=demo_devices(time.time(), meters)
    )
    os.environ[KEY_ENV] = "demo-key"
    with _Served(server, clock) as served:
        console.note(
            f"OneNET emulator on {served.url}: {meters:,} meters and {GATEWAYS} gateways"
            f" on firmware 2.4.0; faults: {describe_faults(injected)}; the fleet's clock runs"
            " ahead while the runs wait (a time lapse: OneNET's clock shows ahead)"
        )
        here = _settings(settings, served.url, rate)
        console.note(
            "1. the fleet from OneNET's device list, a canary, the steps gated on delivery"
        )
        code = _run(here, job, ledger, clock, server)
        console.note(
            "2. status and verify: what became of each command, what each device reads (the"
            " fleet's clock three days on)"
        )
        clock.ahead += _SETTLE_S
        _, on_target = _verify(here, ledger)
        pages = [_page(ledger)]
        woken = server.wake_sleepers()
        console.note(
            f"3. the stragglers: {woken} meters out of coverage are back; retry-failed"
            " --not-verified writes a job of the steps each did not finish"
        )
        retry_job = job.with_name(f"{job.stem}-retry{job.suffix}")
        retried = retry_use_case(RetryRequest(ledger, retry_job, not_verified=True))
        if retried.written is None:
            console.note("nothing to retry")
        else:
            console.note(
                f"{retry_job}: {retried.written.commands:,} commands for"
                f" {retried.written.devices:,} devices, each from its first step not done"
            )
            retry_ledger = retry_job.with_name(retry_job.name + ".ledger.db")
            code = max(code, _run(here, retry_job, retry_ledger, clock, server))
            clock.ahead += _SETTLE_S
            console.note("4. verify the retry")
            _, more = _verify(here, retry_ledger)
            pages.append(_page(retry_ledger))
            on_target += more
        updated = sum(d["firmware"] == "2.4.1" for d in server.fleet.shown(None))
        if seen is not None:  # a test looks at the emulator's own record before it stops
            seen(server)
    console.note(
        f"the fleet: {on_target:,} of {meters:,} meters verified on 2.4.1; the emulator's own"
        f" devices: {updated:,} run 2.4.1"
    )
    for page in pages:
        console.note(f"the HTML report, compliance first: {page}")
    if code:
        console.note(
            f"exit {code}, as run's: {meters - on_target:,} meters are not on target (held back:"
            " their steps failed on the device); the next command for them is above"
        )
    return code


def _settings(settings: Settings, url: str, rate: float) -> Settings:
    here = settings.with_overrides(base_url=url, rate=rate, concurrency=32)
    reliability = dataclasses.replace(here.reliability, settle_s=0.5, delivery_poll_s=_POLL_S)
    onenet = dataclasses.replace(here.onenet, api_key_env=KEY_ENV)
    return dataclasses.replace(here, reliability=reliability, onenet=onenet)


def _run(
    settings: Settings, job: Path, ledger: Path, clock: TimeLapse, server: emu.Emulator
) -> int:
    def yes(targets: JobTargets) -> bool:
        console.note(
            f"send to {len(targets.to_freeze):,} devices of {targets.label}"
            f" ({targets.filters})? yes (the demo answers)"
        )
        return True

    with clock.running():
        outcome = run_use_case(
            settings,
            RunRequest(job, ledger=ledger),
            events=ConsoleEvents(),
            drive=run_with_signals,
            confirm=yes,
        )
    dup = server.stats().get("duplicates", 0)
    console.note(f"emulator holds {len(server.accepted()):,} commands, {dup} duplicated")
    assert outcome.result is not None  # no scheduled start: it always runs
    return end_of_run(outcome.result, resume=None)


def _verify(settings: Settings, ledger: Path) -> tuple[int, int]:
    """A status round (every command's delivery, for the report), then verify's rounds and
    what it shows; verify's exit code and the devices on target."""
    status_use_case(
        settings, StatusRequest(ledger), events=ConsoleEvents(None), drive=run_with_signals
    )
    outcome = verify_use_case(
        settings, VerifyRequest(ledger), events=ConsoleEvents(None), drive=run_with_signals
    )
    code = show_verify(outcome, None)
    return code, outcome.counts()[VerifyState.ON_TARGET]


def _page(ledger_path: Path) -> Path:
    """The ledger's HTML page written beside it."""
    ledger = Ledger.open(ledger_path)
    try:
        page = ledger_path.with_name(ledger_path.name.removesuffix(".ledger.db") + ".report.html")
        write_report_file(ledger, "html", page)
    finally:
        ledger.close()
    return page


def describe_faults(faults: emu.Faults) -> str:
    """The injected faults, for people."""
    shown = []
    if faults.fail_rate:
        shown.append(f"HTTP 500 on {faults.fail_rate:.0%}")
    if faults.cut_after_rate:
        shown.append(f"answers lost after accepting on {faults.cut_after_rate:.1%}")
    return ", ".join(shown) or "none"
