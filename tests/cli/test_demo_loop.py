"""``dispatcher demo --job jobs/firmware-update.yaml``: the closed loop of a fleet update against
the built-in emulator, on a small product whose devices all wake (the full demo's sleepers hold a
run for its windows: two days of the fleet's time, a minute of ours). What it says is checked
against the emulator's own record: the devices the query picked, the order each device got its
steps in, the versions they run."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from dispatcher import emulator as emu
from dispatcher.cli.demo_loop import FLEET, closed_loop
from dispatcher.config import Settings
from dispatcher.ledger.sqlite import Ledger

ROOT = Path(__file__).resolve().parents[2]
METERS = 30


def test_the_fleet_update_loop_agrees_with_the_emulators_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "firmware-update.yaml", tmp_path / "jobs")
    seen: list[emu.Emulator] = []
    fleet = dataclasses.replace(FLEET, never_wake=0.0, device_errors=0.1)

    code = closed_loop(
        Path("jobs/firmware-update.yaml"),
        1000.0,
        True,
        Settings(),
        meters=METERS,
        fleet=fleet,
        seen=seen.append,
    )

    said_all = capsys.readouterr()
    out = said_all.out + said_all.err  # notes go to stderr, tables to stdout
    assert code in (0, 3)  # 3: devices whose write failed are held back (a run left incomplete)
    [server] = seen
    devices = server.fleet.shown(None)
    meters = {str(d["imei"]) for d in devices if "meter" in d["tags"]}  # type: ignore[operator]
    assert len(meters) == METERS
    # The query picked the meters, and only them: the gateways were never sent a command.
    work = Path(".demo/firmware-update")
    ledger = Ledger.open(work / "firmware-update.yaml.ledger.db")
    try:
        assert {t.imei for t in ledger.frozen_targets()} == meters
    finally:
        ledger.close()
    assert {c.imei for c in server.accepted()} <= meters
    # No device ran the Update before its Package URI, and none ran a step twice.
    for imei in meters:
        state = server.fleet.firmware.get(imei)
        assert state is not None and not state.execute_before_write
        ran = Counter((d.type, d.path) for d in state.delivered if d.ok)
        assert max(ran.values(), default=0) <= 1, (imei, ran)
    assert server.stats()["duplicates"] == 0
    # Verify's count is the emulator's own.
    updated = sum(d["firmware"] == "2.4.1" for d in devices)
    said = re.search(r"the fleet: (\d+) of (\d+) meters verified on 2\.4\.1; the emulator's own"
                     r" devices: (\d+) run 2\.4\.1", out)  # fmt: skip
    assert said is not None, out
    assert (int(said[1]), int(said[2]), int(said[3])) == (updated, METERS, updated)
    assert 0 < updated < METERS  # error devices exist in this fleet: the count is not trivial
    assert (work / "firmware-update.yaml.report.html").is_file()
