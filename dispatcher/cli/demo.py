"""``dispatcher demo``: the whole loop against the built-in emulator and its simulated fleet:
validate, push with live progress, watch the deliveries arrive (two days of the fleet's time in
a few rounds), then the report. A fleet update (a job with a targets_query, steps that wait for
delivery, or a verify:) runs the closed loop of demo_loop.py instead."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Final

import click

from dispatcher.app.clients import open_lane
from dispatcher.app.keys import LaneKeys
from dispatcher.app.send import send_job
from dispatcher.cli import console
from dispatcher.cli.demo_loop import FLEET, TimeLapse, describe_faults
from dispatcher.cli.exits import fail
from dispatcher.cli.next_view import show_next, steps_of
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.report_view import write_report_file
from dispatcher.cli.run_view import end_of_run
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import ConfigError, DispatcherError
from dispatcher.job.model import load_job, validate_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore
from dispatcher.report import summarize
from dispatcher.report.render import DELIVERY_LINES
from dispatcher.run.binding import bind_job
from dispatcher.run.state import RunStats, Stop
from dispatcher.run.status import Watch

__all__ = ["closing_hints", "demo"]

DEMO_JOB = Path("jobs/example.yaml")


@click.command()
@click.option(
    "--job",
    "jobfile",
    type=click.Path(path_type=Path),
    default=DEMO_JOB,
    show_default=True,
    help="The job to run.",
)
@click.option(
    "--rate",
    default=1000.0,
    type=FiniteFloat(min=0),
    show_default=True,
    help="Requests per second at most.",
)
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="Inject server errors and lost answers, to show they end accepted.",
)
@click.option(
    "--meters",
    default=3_000,
    type=click.IntRange(1, 100_000),
    show_default=True,
    help="Meters in the simulated product, for a fleet-update job (a targets_query).",
)
def demo(jobfile: Path, rate: float, faults: bool, meters: int) -> None:
    """Run a job against the built-in OneNET emulator, with progress and the report."""
    from dispatcher import emulator as emu

    ledger_path = Path(".demo") / (jobfile.stem + ".ledger.db")
    ledger_path.parent.mkdir(exist_ok=True)
    for stale in ledger_path.parent.glob(ledger_path.name + "*"):
        stale.unlink()
    try:
        job = load_job(jobfile)
        if job.query is not None or job.verify is not None or job.gated:
            # A fleet update: the closed loop (query, gated steps, verify, retry).
            from dispatcher.cli.demo_loop import closed_loop

            sys.exit(closed_loop(jobfile, rate, faults, Settings(), meters=meters))
        checked = validate_job(job, on_problem=console.problem)
        if not checked.ok:
            fail(f"{jobfile}: {checked.errors} error(s): nothing was sent")
        console.validation(job, checked)
        try:
            settings = Settings().with_overrides(rate=rate, concurrency=32)
        except ConfigError as exc:
            raise click.UsageError(str(exc).removeprefix("command line: ")) from None
        settings = dataclasses.replace(
            settings, reliability=dataclasses.replace(settings.reliability, settle_s=0.5)
        )
        ledger = Ledger.open(ledger_path, synchronous="normal")
        bind_job(ledger, job, fingerprint=checked.fingerprint, total=checked.commands)
    except DispatcherError as exc:
        fail(str(exc))
    injected = emu.Faults(fail_rate=0.03, cut_after_rate=0.005, seed=7) if faults else emu.Faults()
    stats = RunStats(total=checked.commands)

    clock = TimeLapse()

    async def start(stop: Stop) -> int:
        server = emu.Emulator(injected, clock=clock, fleet=FLEET)
        async with emu.serve(server) as url:
            console.note(f"OneNET emulator on {url}; faults: {describe_faults(injected)}")
            settings_here = settings.with_overrides(base_url=url)
            keys = LaneKeys({"": (settings_here, "demo-key")})
            result = await send_job(
                job, ledger, settings_here, keys, events=ConsoleEvents(), stop=stop, stats=stats
            )
            assert result is not None  # no scheduled start: it always runs
            dup = server.stats().get("duplicates", 0)
            console.note(f"emulator holds {len(server.accepted()):,} commands, {dup} duplicated")
            code = end_of_run(result, resume=None)  # a demo starts afresh each time
            if result.stop_reason is None and result.aborted is None:
                await _watch_deliveries(ledger, settings_here, clock, stop)
            return code

    code = run_with_signals(start)
    console.summary_table(summarize(ledger))
    page = ledger_path.with_name(jobfile.stem + ".report.html")
    write_report_file(ledger, "html", page)
    steps = steps_of(ledger, ledger_path)
    ledger.close()
    for line in closing_hints(ledger_path, page):
        console.note(line)
    show_next(steps)
    sys.exit(code)


def closing_hints(ledger: Path, page: Path) -> list[str]:
    """Where the demo's report is, and the commands that write it and every outcome to a file
    (an HTML page or a CSV of thousands of rows is no terminal's reading)."""
    return [
        f"the HTML report: {page}",
        f"  write it again: dispatcher report {ledger} --format html -o report.html",
        f"  every outcome:  dispatcher report {ledger} --format csv -o outcomes.csv",
    ]


# How far the fleet's clock has moved at each status round: past the job's valid_time (+10m),
# through the devices' first hourly wakes, then past the expired_time (+2d).
_LAPSE: Final = (("11 minutes", 660.0), ("40 minutes", 2400.0), ("70 minutes", 4200.0),
                 ("2 days", 2 * 86400.0 + 600.0))  # fmt: skip


async def _watch_deliveries(
    ledger: LedgerStore, settings: Settings, clock: TimeLapse, stop: Stop
) -> None:
    """``dispatcher status`` rounds while the fleet's clock jumps ahead, then the breakdown."""
    console.note("watching deliveries (dispatcher status --watch), the fleet's clock in leaps:")
    async with open_lane(settings, "demo-key") as lane:
        watcher = Watch(
            lane,
            settings,
            ledger,
            stop=stop,
            clock=time.time,
        )
        start = clock.ahead  # where the run left the fleet's clock
        for label, ahead in _LAPSE:
            if stop.requested:
                return
            clock.ahead = start + ahead
            rounds = watcher.rounds
            await watcher.run(watch=False, interval_s=0.0)
            if watcher.rounds > rounds:
                b = ledger.delivery_breakdown()
                console.note(
                    f"  +{label}: "
                    + ", ".join(
                        f"{b.devices[s]:,} {name}"
                        for s, name in DELIVERY_LINES.items()
                        if b.devices[s]
                    )
                    + " (devices)"
                )
