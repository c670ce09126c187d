"""``dispatcher verify`` end to end against the emulator's simulated fleet: a firmware job of
steps run, the devices woken, every device judged from its read of 3/0/3 as the emulator holds
it, the verdicts in the ledger and first in the report; --watch ends; a verify on a resource no
command reads, and datapoints on the newer platform, refused with a clear message."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import aiohttp

from dispatcher.emulator.server import Emulator, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import VerifyState
from tests.support.cli import dispatcher_async, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fleet, write_config
from tests.support.push import FLEET

DEVICES = 20
VERIFY = 'verify:\n  read: 3/0/3\n  expect: "2.4.1"\n'


def firmware_job(
    directory: Path, imeis: list[str], verify: str = VERIFY, read: bool = True
) -> Path:
    """fw.yaml: write 5/0/1, execute 5/0/2, (read 3/0/3) on every device, and ``verify``."""
    targets = "".join(f'  - imei: "{i}"\n' for i in imeis)
    steps = (
        "steps:\n"
        '  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.4.1.bin"}}\n'
        "  - {op: execute, obj_id: 5, res_id: 2}\n"
        + ("  - {op: read, obj_id: 3, res_id: 3}\n" if read else "")
    )
    path = directory / "fw.yaml"
    path.write_text(
        "job: fw\ndefaults:\n  obj_inst_id: 0\n  expired_time: '+10m'\n  trigger: [update]\n"
        f"{steps}{verify}targets:\n{targets}",
        encoding="utf-8",
    )
    return path


def verdicts(directory: Path) -> dict[str, VerifyState]:
    with Ledger.open(directory / "fw.yaml.ledger.db", read_only=True) as ledger:
        return {r.imei: r.state for r in ledger.verify_results()}


async def emulator_versions(url: str) -> dict[str, str]:
    """Each device's firmware version (3/0/3) as the emulator holds it (GET /_emulator/devices)."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_emulator/devices") as got:
        listed = await got.json()
    return {d["imei"]: d["firmware"] for d in listed["devices"]}


async def test_verify_counts_agree_with_the_emulators_devices(tmp_path: Path) -> None:
    imeis = fleet(DEVICES)
    firmware_job(tmp_path, imeis)
    write_config(tmp_path)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=FLEET)
    async with serve(emulator) as url:
        sent = await online(url, tmp_path, "run", "fw.yaml")
        assert sent.code == 0, sent.stderr
        early = await online(url, tmp_path, "verify", "fw.yaml")
        assert early.code == 3, early.stderr  # nothing read yet: never seen, not final
        assert set(verdicts(tmp_path).values()) == {VerifyState.NEVER_SEEN}
        assert "--watch" in early.stderr
        clock.shift = 700.0  # the devices that wake have woken; every window has closed
        done = await online(url, tmp_path, "verify", "fw.yaml.ledger.db")
        versions = await emulator_versions(url)
    found = verdicts(tmp_path)
    assert set(found) == set(imeis)
    updated = {i for i in imeis if versions[i] == "2.4.1"}
    assert {i for i, s in found.items() if s is VerifyState.ON_TARGET} == updated
    assert updated and len(updated) < DEVICES  # the fleet has sleepers and failing devices
    assert Counter(found.values())[VerifyState.FAILED] == DEVICES - len(updated)
    assert done.code == 1, done.stderr
    assert "on target" in done.stdout and "Devices not on target" in done.stdout
    assert "retry-failed fw.yaml.ledger.db --not-verified -o fw-retry.yaml" in done.stderr
    assert "history pages" in done.stderr
    report = await dispatcher_async("report", "fw.yaml.ledger.db", cwd=tmp_path)
    assert report.code == 0, report.stderr
    assert report.stdout.index("Compliance") < report.stdout.index("Ledger summary")


async def test_datapoints_agree_with_the_emulators_devices_and_send_nothing(
    tmp_path: Path,
) -> None:
    imeis = fleet(DEVICES)
    firmware_job(tmp_path, imeis, verify=VERIFY + "  source: datapoints\n", read=False)
    write_config(tmp_path)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=FLEET)
    async with serve(emulator) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
        clock.shift = 700.0
        before = dict(emulator.stats()["calls"])  # type: ignore[arg-type]
        done = await online(url, tmp_path, "verify", "fw.yaml")
        again = await online(url, tmp_path, "verify", "fw.yaml")
        calls = dict(emulator.stats()["calls"])  # type: ignore[arg-type]
        versions = await emulator_versions(url)
    made = {k: n - before.get(k, 0) for k, n in calls.items() if n != before.get(k, 0)}
    # A probe (a history page) and one datapoints call a verify, each id looked up once (kept
    # for the next verify), and no command created.
    assert made == {"history": 2, "getbyimei": DEVICES, "datapoints": 2}, made
    found = verdicts(tmp_path)
    updated = {i for i in imeis if versions[i] == "2.4.1"}
    assert {i for i, s in found.items() if s is VerifyState.ON_TARGET} == updated
    # The others read their old version (not yet) or never reported (never seen): their windows
    # have closed, so they are final; nothing read says a step failed (status was not read).
    assert (
        Counter(found.values())[VerifyState.NOT_YET]
        and not Counter(found.values())[VerifyState.FAILED]
    )
    assert updated and done.code == again.code == 3, done.stderr
    assert "20 device look-ups, 1 datapoint calls, 1 probe" in done.stderr
    assert "0 device look-ups, 1 datapoint calls, 1 probe" in again.stderr
    assert "time to verify is over" in done.stderr


async def test_watch_ends_once_every_device_is_final(tmp_path: Path) -> None:
    imeis = fleet(6)
    firmware_job(tmp_path, imeis)
    write_config(tmp_path)
    quick = replace(FLEET, wake_every_s=2, answer_delay_s=0.5, never_wake=0.0, device_errors=0.0)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=quick)
    async with serve(emulator) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
        clock.shift = 30.0
        watched = await online(url, tmp_path, "verify", "fw.yaml", "--watch", "--interval", "0.2")
    assert watched.code == 0, watched.stderr
    assert set(verdicts(tmp_path).values()) == {VerifyState.ON_TARGET}
    assert "every device is on target" in watched.stderr


async def test_a_verify_of_a_resource_no_command_reads_is_refused(tmp_path: Path) -> None:
    imeis = fleet(2)
    job = firmware_job(tmp_path, imeis, verify="", read=False)
    write_config(tmp_path)
    async with serve(Emulator()) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
        job.write_text(job.read_text() + VERIFY, encoding="utf-8")  # said after the run
        refused = await online(url, tmp_path, "verify", "fw.yaml")
    assert refused.code == 1
    assert refused.stderr == (
        "error: fw.yaml:13: verify.read: 3/0/3: no step reads it; add a read step of 3/0/3"
        " (or 3/0, or 3), or use source: datapoints\n"
    )
    assert "Traceback" not in refused.stderr


async def test_datapoints_on_the_newer_platform_is_refused(tmp_path: Path) -> None:
    imeis = fleet(2)
    firmware_job(tmp_path, imeis, verify=VERIFY + "  source: datapoints\n", read=False)
    write_config(tmp_path)
    async with serve(Emulator()) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
    newer = (
        "onenet:\n  platform: iot-api\n  base_url: http://127.0.0.1:9\n"
        "  token: {access_key_env: ACCESS_KEY, res: products/p1}\n"
    )
    (tmp_path / "newer.yaml").write_text(newer, encoding="utf-8")
    refused = await dispatcher_async(
        "verify", "fw.yaml", "--config", "newer.yaml", cwd=tmp_path,
        env={"ACCESS_KEY": "c2VjcmV0LWFjY2Vzcy1rZXk="},
    )  # fmt: skip
    assert refused.code == 1, refused.stderr
    assert "verify.source: datapoints reads GET /devices/datapoints" in refused.stderr
    assert "use source: command with a read step of 3/0/3" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_validate_and_run_refuse_datapoints_on_the_newer_platform_before_sending(
    tmp_path: Path,
) -> None:
    firmware_job(tmp_path, fleet(2), verify=VERIFY + "  source: datapoints\n", read=False)
    newer = (
        "onenet:\n  platform: iot-api\n  base_url: http://127.0.0.1:9\n"
        "  token: {access_key_env: ACCESS_KEY, res: products/p1}\n"
    )
    (tmp_path / "newer.yaml").write_text(newer, encoding="utf-8")
    env = {"ACCESS_KEY": "c2VjcmV0LWFjY2Vzcy1rZXk="}
    for command in ("validate", "run"):
        refused = await dispatcher_async(
            command, "fw.yaml", "--config", "newer.yaml", cwd=tmp_path, env=env
        )
        assert refused.code == 1, (command, refused.stderr)
        said = refused.stdout + refused.stderr
        assert "verify.source: datapoints reads GET /devices/datapoints, which only" in said
        assert "verify.source: verify.source" not in said
        assert "Traceback" not in said
    # Nothing was sent: run stopped before it made a ledger (its address is unreachable anyway).
    assert not (tmp_path / "fw.yaml.ledger.db").exists()


async def test_a_job_without_verify_or_without_a_ledger_is_refused(tmp_path: Path) -> None:
    firmware_job(tmp_path, fleet(2), verify="")
    write_config(tmp_path)
    unrun = await dispatcher_async("verify", "fw.yaml", "--config", "config.yaml", cwd=tmp_path)
    assert unrun.code == 1
    assert unrun.stderr == (
        "error: fw.yaml: its ledger fw.yaml.ledger.db does not exist: run the job first\n"
    )
    async with serve(Emulator()) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
        refused = await online(url, tmp_path, "verify", "fw.yaml.ledger.db")
    assert refused.code == 1
    assert "verify: the job says nothing to verify: add verify: {read: 3/0/3" in refused.stderr
