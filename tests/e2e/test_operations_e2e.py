"""Write, read and steps end to end: the real dispatcher against the emulator over loopback, as
OneNET documents the calls (the emulator checks each body), with lost answers reconciled by the
history's type, and a step held back until the one before is accepted."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import orjson

from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.server import Emulator, Faults, Fleet, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.store import Status
from dispatcher.run.runner import RunResult
from tests.support.cli import dispatcher_async, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import API_KEY, fast_settings, fleet, run_against, write_config
from tests.support.ledger import ledger_rows

DEVICES = 12


def job_file(directory: Path, name: str, head: str, imeis: list[str]) -> Path:
    """A YAML job: ``head`` (defaults, steps), then a targets_csv of ``imeis``."""
    csv_path = directory / f"{name}.csv"
    csv_path.write_text("imei\n" + "".join(f"{i}\n" for i in imeis), encoding="utf-8")
    path = directory / f"{name}.yaml"
    path.write_text(f"job: {name}\n{head}targets_csv: {csv_path.name}\n", encoding="utf-8")
    return path


WRITE = """\
defaults:
  op: write
  obj_id: 3311
  obj_inst_id: 0
  mode: replace
  values: {5850: true, 5851: 40}
  expired_time: +1d
  trigger: [update]
"""
READ = """\
defaults:
  op: read
  obj_id: 3
  obj_inst_id: 0
  res_id: 3
  expired_time: +1d
  trigger: [register, update]
"""
FIRMWARE = """\
steps:
  - {op: write, obj_id: 5, obj_inst_id: 0, values: {1: "coap://fw.example/2.4.1.bin"}}
  - {op: execute, obj_id: 5, obj_inst_id: 0, res_id: 2}
defaults: {expired_time: +2d, trigger: [register, update]}
"""


def counts(result: RunResult) -> dict[Status, int]:
    """The ledger's counts that are not 0."""
    return {status: n for status, n in result.counts.items() if n}


def held_once(emulator: Emulator) -> Counter[tuple[object, ...]]:
    """Commands the server holds more than once (device, type, ids, body): none, always."""
    held = Counter(
        (c.imei, c.type, c.obj_id, c.obj_inst_id, c.res_id, c.args) for c in emulator.accepted()
    )
    return Counter({k: n for k, n in held.items() if n > 1})


async def test_a_write_job_reaches_the_server_as_onenet_documents_it(tmp_path: Path) -> None:
    imeis = fleet(DEVICES)
    job = job_file(tmp_path, "lights", WRITE, imeis)
    emulator = Emulator(faults=Faults(api_key=API_KEY))
    async with serve(emulator) as url:
        result = await run_against(url, job, tmp_path / "l.db", fast_settings())
    assert counts(result) == {Status.ACCEPTED: DEVICES}
    stored = emulator.accepted()
    assert sorted(c.imei for c in stored) == sorted(imeis)
    for c in stored:
        assert (c.type, c.obj_id, c.obj_inst_id, c.mode) == ("WRITE", 3311, 0, 1)
        assert orjson.loads(c.args or "") == [
            {"res_id": 5850, "val": True},
            {"res_id": 5851, "val": 40},
        ]
    rows = ledger_rows(tmp_path / "l.db")
    assert {(r.command.op, r.command.mode) for r in rows} == {("write", 1)}
    assert {r.uuid for r in rows} == {c.uuid for c in stored}


async def test_a_read_job_reaches_the_server_with_only_the_ids_it_names(tmp_path: Path) -> None:
    imeis = fleet(4)
    job = job_file(tmp_path, "whole", READ.replace("  obj_inst_id: 0\n  res_id: 3\n", ""), imeis)
    emulator = Emulator()
    async with serve(emulator) as url:
        result = await run_against(url, job, tmp_path / "r.db", fast_settings())
    assert counts(result) == {Status.ACCEPTED: 4}
    assert {(c.type, c.obj_id, c.obj_inst_id, c.res_id) for c in emulator.accepted()} == {
        ("READ", 3, None, None)
    }
    rows = ledger_rows(tmp_path / "r.db")
    assert {(r.command.op, r.command.obj_inst_id, r.command.res_id) for r in rows} == {
        ("read", None, None)
    }


async def test_lost_answers_of_each_kind_are_settled_by_the_history_never_sent_twice(
    tmp_path: Path,
) -> None:
    # One device, three commands with the same window and trigger: only the history's type
    # tells the write, the read and the execute apart.
    imeis = fleet(20)
    head = (
        "defaults: {expired_time: +1d, trigger: [update], obj_id: 5, obj_inst_id: 0}\n"
        "targets:\n"
        + "".join(
            f'  - {{imei: "{i}", op: write, values: {{1: "coap://fw/{i}"}}}}\n'
            f'  - {{imei: "{i}", op: read, res_id: 3}}\n'
            f'  - {{imei: "{i}", res_id: 2}}\n'
            for i in imeis
        )
    )
    path = tmp_path / "mixed.yaml"
    path.write_text(f"job: mixed\n{head}", encoding="utf-8")
    emulator = Emulator(faults=Faults(cut_after_rate=0.4, seed=11))
    async with serve(emulator) as url:
        result = await run_against(url, path, tmp_path / "m.db", fast_settings())
    assert counts(result) == {Status.ACCEPTED: 60}
    assert emulator.stats()["faults"]["cut_after"] > 5  # type: ignore[index]
    assert not held_once(emulator)
    rows = ledger_rows(tmp_path / "m.db")
    assert len(emulator.accepted()) == 60
    by_uuid = {c.uuid: c for c in emulator.accepted()}
    for row in rows:  # each row holds the uuid of its own kind of command
        assert by_uuid[row.uuid].type == row.command.op.upper()
    assert Counter(
        r.command.op for r in rows if r.reconciled
    )  # some of them were found, not resent
    assert {r.command.op for r in rows if r.reconciled} == {"write", "read", "execute"}


async def test_a_failed_first_step_holds_back_the_second_and_the_rest_go_in_order(
    tmp_path: Path,
) -> None:
    imeis = fleet(8)
    foreign = imeis[3]  # not in the key's product: its write is refused (errno 1)
    job = job_file(tmp_path, "fw", FIRMWARE, imeis)
    emulator = Emulator(faults=Faults(foreign_imeis=frozenset({foreign})))
    ledger = tmp_path / "fw.db"
    async with serve(emulator) as url:
        first = await run_against(url, job, ledger, fast_settings())
        again = await run_against(url, job, ledger, fast_settings())
    assert counts(first) == {Status.ACCEPTED: 14, Status.REJECTED: 1, Status.SKIPPED: 1}
    rows = {(r.command.imei, r.command.step): r for r in ledger_rows(ledger)}
    held = rows[foreign, 2]
    assert held.status is Status.SKIPPED
    assert held.error == "held back: step 1 (write 5/0/1) is rejected, not accepted"
    assert held.attempts == 0 and held.uuid is None
    assert rows[foreign, 1].errno == 1
    for imei in imeis:
        if imei == foreign:
            assert emulator.commands_for(imei) == []
            continue
        write, execute = emulator.commands_for(imei)  # in the order created
        assert (write.type, execute.type) == ("WRITE", "EXECUTE")
        assert (rows[imei, 1].uuid, rows[imei, 2].uuid) == (write.uuid, execute.uuid)
    # The rerun sends nothing: the write stays refused, so the execute stays held back.
    assert counts(again) == counts(first)
    assert len(emulator.accepted()) == 14


async def test_a_read_value_comes_back_through_status_into_the_report(tmp_path: Path) -> None:
    imeis = fleet(5)
    job = job_file(tmp_path, "inventory", READ, imeis)
    write_config(tmp_path)
    clock = ShiftedClock()
    devices = Fleet(wake_every_s=60, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5)
    emulator = Emulator(clock=clock, fleet=devices)
    async with serve(emulator) as url:
        sent = await online(url, tmp_path, "run", job.name)
        assert sent.code == 0, sent.stderr
        clock.shift = 120.0  # every device woke, was asked, and answered
        read = await online(url, tmp_path, "status", "inventory.yaml.ledger.db")
        assert read.code == 0, read.stderr
        report = await dispatcher_async(
            "report", "inventory.yaml.ledger.db", "--format", "csv", cwd=tmp_path
        )
    assert report.code == 0, report.stderr
    lines = list(csv.DictReader(io.StringIO(report.stdout)))
    assert sorted(r["imei"] for r in lines) == sorted(imeis)  # one row per device
    # The emulator's devices run its fleet's default firmware until an update is delivered.
    assert {(r["op"], r["obj_id"], r["res_id"], r["cmd_result"]) for r in lines} == {
        ("read", "3", "3", "2.4.0")
    }


async def test_a_read_whose_answer_is_lost_is_asked_for_once_and_is_in_doubt(
    tmp_path: Path,
) -> None:
    # A cached read is created by a GET: a broken connection must not make the HTTP library
    # send it again on its own (aiohttp does that for GETs on kept-alive connections).
    job = job_file(tmp_path, "inventory", READ, fleet(3))
    emulator = Emulator(faults=Faults(cut_after_rate=1.0))
    settings = fast_settings(concurrency=1)
    async with serve(emulator) as url:
        result = await run_against(url, job, tmp_path / "r.db", settings, reconcile_in_doubt=False)
    assert counts(result) == {Status.IN_DOUBT: 3}
    assert emulator.stats()["posts"] == 3  # creates, the GET of a read too
    assert len(emulator.accepted()) == 3


async def test_retry_failed_writes_a_refused_write_again_with_its_values(tmp_path: Path) -> None:
    imeis = fleet(3)
    job = job_file(tmp_path, "lights", WRITE, imeis)
    emulator = Emulator(faults=Faults(foreign_imeis=frozenset({imeis[1]})))
    async with serve(emulator) as url:
        await run_against(url, job, tmp_path / "l.db", fast_settings())
    for name in ("again.csv", "again.yaml"):  # the CSV refused first: nothing handed over
        done = await dispatcher_async("retry-failed", "l.db", "-o", name, cwd=tmp_path)
        if name.endswith(".csv"):  # two values in one write: a CSV row holds one
            assert done.code == 2 and "one resource per row" in done.stderr
            continue
        assert done.code == 0, done.stderr
        (retried,) = load_job(tmp_path / name).commands()
        (original,) = [c for c in load_job(job).commands() if c.imei == imeis[1]]
        same = ("imei", "op", "obj_id", "obj_inst_id", "res_id", "args", "mode")
        assert [getattr(retried, f) for f in same] == [getattr(original, f) for f in same]


async def test_retry_failed_starts_a_job_with_steps_again_where_a_device_left_off(
    tmp_path: Path,
) -> None:
    imeis = fleet(2)
    job = job_file(tmp_path, "fw", FIRMWARE, imeis)
    emulator = Emulator(faults=Faults(foreign_imeis=frozenset({imeis[0]})))
    async with serve(emulator) as url:
        await run_against(url, job, tmp_path / "fw.db", fast_settings())
    done = await dispatcher_async("retry-failed", "fw.db", "-o", "again.yaml", cwd=tmp_path)
    assert done.code == 0, done.stderr
    again = load_job(tmp_path / "again.yaml")
    assert [(t.values[0], t.from_step) for t in again.targets] == [(imeis[0], 1)]
    assert [c.step for c in again.commands()] == [1, 2]
