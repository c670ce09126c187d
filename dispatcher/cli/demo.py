"""``dispatcher demo``: a job run against the built-in emulator, with progress and the report."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from dispatcher.cli import console
from dispatcher.cli.exits import fail
from dispatcher.cli.run_command import end_of_run, send_job
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import ConfigError, DispatcherError
from dispatcher.job.model import load_job, validate_job
from dispatcher.ledger.store import Ledger
from dispatcher.report import summarize
from dispatcher.run.state import RunResult, RunStats, Stop

__all__ = ["demo"]

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
    except DispatcherError as exc:
        fail(str(exc))
    injected = emu.Faults(fail_rate=0.03, cut_after_rate=0.005, seed=7) if faults else emu.Faults()
    stats = RunStats(total=checked.commands)

    async def start(stop: Stop) -> RunResult:
        server = emu.Emulator(injected)
        async with emu.serve(server) as url:
            console.note(f"OneNET emulator on {url}; faults: {_describe(injected)}")
            settings_here = settings.with_overrides(base_url=url)
            result = await send_job(
                job, ledger, settings_here, api_key="demo-key", stop=stop, stats=stats
            )
            dup = server.stats().get("duplicates", 0)
            console.note(f"emulator holds {len(server.accepted()):,} commands, {dup} duplicated")
            return result

    result = run_with_signals(start)
    console.summary_table(summarize(ledger))
    ledger.close()
    console.note(f"every outcome: dispatcher report {ledger_path} --format csv")
    sys.exit(end_of_run(result, resume=None))  # a demo starts afresh each time


def _describe(faults: Any) -> str:
    shown = []
    if faults.fail_rate:
        shown.append(f"HTTP 500 on {faults.fail_rate:.0%}")
    if faults.cut_after_rate:
        shown.append(f"answers lost after accepting on {faults.cut_after_rate:.1%}")
    return ", ".join(shown) or "none"
