"""The loop's last turn end to end against the emulator's simulated fleet: a firmware job of steps
run, the devices woken, ``dispatcher verify``, then the retry it suggests (``retry-failed
--not-verified``): the retry job holds exactly the devices not on target, and validates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dispatcher.emulator.server import Emulator, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import VerifyState
from tests.support.cli import invoke, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fleet, write_config
from tests.support.push import FLEET

JOB = (
    "job: fw\n"
    "defaults:\n  obj_inst_id: 0\n  expired_time: '+10m'\n  trigger: [update]\n"
    "steps:\n"
    '  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.4.1.bin"}}\n'
    "  - {op: execute, obj_id: 5, res_id: 2}\n"
    "  - {op: read, obj_id: 3, res_id: 3}\n"
    'verify:\n  read: 3/0/3\n  expect: "2.4.1"\n'
)


async def test_the_retry_verify_suggests_holds_the_devices_not_on_target(tmp_path: Path) -> None:
    imeis = fleet(20, start=3000)
    targets = "".join(f'  - imei: "{i}"\n' for i in imeis)
    (tmp_path / "fw.yaml").write_text(f"{JOB}targets:\n{targets}", encoding="utf-8")
    write_config(tmp_path)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=FLEET)
    async with serve(emulator) as url:
        sent = await online(url, tmp_path, "run", "fw.yaml")
        assert sent.code == 0, sent.stderr
        clock.shift = 700.0  # the devices that wake have woken; every window has closed
        await online(url, tmp_path, "status", "fw.yaml.ledger.db")
        verified = await online(url, tmp_path, "verify", "fw.yaml.ledger.db")
    assert "retry-failed fw.yaml.ledger.db --not-verified -o fw-retry.yaml" in verified.stderr
    with Ledger.open(tmp_path / "fw.yaml.ledger.db", read_only=True) as ledger:
        states = {r.imei: r.state for r in ledger.verify_results()}
    not_on_target = {i for i, s in states.items() if s is not VerifyState.ON_TARGET}
    assert not_on_target and len(not_on_target) < len(imeis)

    made = invoke(
        "retry-failed", tmp_path / "fw.yaml.ledger.db", "--not-verified", "-o",
        tmp_path / "fw-retry.yaml",
    )  # fmt: skip

    assert made.exit_code == 0, made.stderr
    retry = load_job(tmp_path / "fw-retry.yaml")
    assert {t.values[0] for t in retry.targets} == not_on_target, made.stderr
    original = load_job(tmp_path / "fw.yaml").verify
    assert retry.verify is not None and original is not None
    assert replace(retry.verify, line=0, read_line=0) == replace(original, line=0, read_line=0)
    assert invoke("validate", tmp_path / "fw-retry.yaml").exit_code == 0
