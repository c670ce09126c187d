"""The exit code of a run that finished: commands handed to a retry job (``retried``) are sent by
that job, and are no problem of this one: accepted and handed over is exit 0, as the docs'
exit codes (docs/running.md) say; a rejected or failed command left in the job is still exit 3."""

from __future__ import annotations

from pathlib import Path

from dispatcher.emulator.server import Emulator, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import dispatcher_async, invoke
from tests.support.e2e import fleet
from tests.support.retry import make_ledger, write_job


async def test_a_finished_job_whose_rest_was_handed_to_a_retry_job_exits_0(
    tmp_path: Path,
) -> None:
    devices = fleet(4, start=900)
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    ledger_path = make_ledger(job_path, ["delivered", "failed", "delivered", "pending"])
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert made.exit_code == 0, made.stderr
    emulator = Emulator()
    async with serve(emulator) as url:
        again = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        # A device added to the job afterwards: this run sends it, and ends with the rest
        # accepted or handed over.
        added = fleet(1, start=950)[0]
        write_job(tmp_path / "fleet.yaml", [*devices, added])
        grown = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert again.code == 0, again.stderr
    assert "the job is finished" in again.stderr
    assert grown.code == 0, grown.stderr
    assert [c.imei for c in emulator.accepted()] == [added]
    with Ledger.open(ledger_path, read_only=True) as ledger:
        counts = {s: n for s, n in ledger.counts().items() if n}
    assert counts == {Status.ACCEPTED: 3, Status.RETRIED: 2}


async def test_a_finished_job_with_a_rejected_command_still_exits_3(tmp_path: Path) -> None:
    devices = fleet(3, start=960)
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    make_ledger(job_path, ["delivered", "rejected", "delivered"])
    emulator = Emulator()
    async with serve(emulator) as url:
        again = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert again.code == 3, again.stderr
    assert "the job is finished" in again.stderr
