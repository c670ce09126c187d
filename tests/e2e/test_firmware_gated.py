"""The shipped firmware update (jobs/firmware-update.yaml, its steps and waits as they are) run
against the emulator's devices and firmware model on virtual time, for a few meters of its fleet:
no device gets the Update before its Package URI was delivered, the devices that took both run
2.4.1, and those whose write never arrived or failed are held back on 2.4.0 with the reason."""

from __future__ import annotations

import itertools
from pathlib import Path

from dispatcher.emulator.devices import REGISTER, UPDATE, Fleet
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.gated import Gated, poll_settings, sent_by_device

ROOT = Path(__file__).resolve().parents[2]
METERS = 24


def _shipped_job(directory: Path) -> tuple[Path, list[str]]:
    """jobs/firmware-update.yaml as shipped, for the first ``METERS`` meters of its fleet."""
    fleet_rows = (ROOT / "jobs" / "example-fleet.csv").read_text(encoding="utf-8").splitlines()
    imeis = fleet_rows[1 : METERS + 1]
    (directory / "meters.csv").write_text("imei\n" + "\n".join(imeis) + "\n", encoding="utf-8")
    text = (ROOT / "jobs" / "firmware-update.yaml").read_text(encoding="utf-8")
    assert "targets_csv: example-fleet.csv\n" in text
    job = directory / "firmware-update.yaml"
    job.write_text(text.replace("example-fleet.csv", "meters.csv"), encoding="utf-8")
    return job, imeis


async def test_the_shipped_firmware_update_never_updates_before_the_uri_arrived(
    tmp_path: Path,
) -> None:
    job, imeis = _shipped_job(tmp_path)
    devices = Fleet(
        wake_every_s=3600,
        wake_jitter=0.9,
        never_wake=0.15,
        device_errors=0.1,
        uplinks=((UPDATE, 0.8), (REGISTER, 0.2)),
        answer_delay_s=5,
        seed=11,
    )
    gated = Gated(devices)
    result = await gated.run(job, tmp_path / "fw.db", poll_settings(600.0))
    assert result.stop_reason is None
    sent = await sent_by_device(gated, imeis)
    shown = {d["imei"]: d for d in gated.emulator.fleet.shown(None)}
    with Ledger.open(tmp_path / "fw.db", read_only=True) as ledger:
        rows = {(r.command.imei, r.command.step): r for r in ledger.rows()}
    updated = held = 0
    for imei in imeis:
        made = sent[imei]
        assert shown[imei]["execute_before_write"] is False
        for before, after in itertools.pairwise(made[:3]):  # write, execute, then the reads
            assert before.send_status == 5 and before.confirmed is not None
            assert after.created >= before.confirmed
        if len(made) == 4:  # the write and the Update delivered: the reads went out
            assert [m.type for m in made] == ["WRITE", "EXECUTE", "READ", "READ"]
            assert shown[imei]["firmware"] == "2.4.1"
            updated += 1
        else:
            assert [m.type for m in made] == ["WRITE"]  # the Update was never sent
            assert shown[imei]["firmware"] == "2.4.0"
            why = rows[imei, 2].error
            assert rows[imei, 2].status is Status.SKIPPED
            assert why.startswith("held back: step 1 (write 5/0/1) "), why
            assert {rows[imei, s].error for s in (3, 4)} == {why}
            held += 1
    assert updated and held  # the seed's fleet has both
