"""The real dispatcher against the real emulator over loopback sockets: every parameter reaches
the server as the job file says, the ledger holds the server's uuids and never the key, times on
OneNET's clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.store import Status
from dispatcher.times import BEIJING, format_onenet, parse_onenet
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    fast_settings,
    fleet,
    imei,
    run_against,
    write_csv_job,
)
from tests.support.ledger import ledger_rows


def _in_beijing(seconds_from_now: float) -> str:
    moment = datetime.now(BEIJING) + timedelta(seconds=seconds_from_now)
    return format_onenet(moment)


def _files_of(ledger_path: Path) -> bytes:
    """The bytes of a ledger and its companions (-wal, -shm, .lock)."""
    return b"".join(p.read_bytes() for p in ledger_path.parent.glob(ledger_path.name + "*"))


async def test_every_parameter_reaches_the_server_as_the_job_file_says(tmp_path: Path) -> None:
    valid_at, expired_at = _in_beijing(3600), _in_beijing(2 * 86400)
    job_path = tmp_path / "params.yaml"
    job_path.write_text(
        "job: params\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  expired_time: '+1d'\n"
        "targets:\n"
        f"  - imei: '{imei(1)}'\n"
        f"  - imei: '{imei(2)}'\n"
        "    args: 'fw=2.4.1;md5=9e107d'\n"
        "    retry: 7\n"
        "    timeout: 12\n"
        "    trigger_msg: 4\n"
        f"  - imei: '{imei(3)}'\n"
        f"    valid_time: '{valid_at}'\n"
        f"    expired_time: '{expired_at}'\n"
        "    trigger: [register, notify]\n"
        f"  - imei: '{imei(4)}'\n"
        "    obj_inst_id: 2\n"
        "    res_id: 10\n"
        "    valid_time: '+30m'\n"
        "    args: 'report_interval=300'\n"
        "    retry: 0\n"
        "    timeout: 40\n",
        encoding="utf-8",
    )
    emulator = Emulator()
    before = time.time()
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())
    after = time.time()

    assert result.complete
    held = {c.imei: c for c in emulator.accepted()}
    commands = list(load_job(job_path).commands())
    assert sorted(held) == sorted(c.imei for c in commands)
    for command in commands:
        got = held[command.imei]
        assert (got.obj_id, got.obj_inst_id, got.res_id) == (
            command.obj_id,
            command.obj_inst_id,
            command.res_id,
        )
        assert got.args == command.args
        assert (got.retry, got.timeout, got.trigger_msg) == (
            command.retry,
            command.timeout,
            command.trigger_msg,
        )
    # defaults: OneNET's own (retry 3, timeout 25, trigger 7) where the job gives none
    assert (held[imei(1)].retry, held[imei(1)].timeout, held[imei(1)].trigger_msg) == (3, 25, 7)
    assert held[imei(1)].args is None
    assert (held[imei(2)].retry, held[imei(2)].timeout, held[imei(2)].trigger_msg) == (7, 12, 4)
    assert held[imei(3)].trigger_msg == 5
    assert (held[imei(4)].obj_inst_id, held[imei(4)].res_id) == (2, 10)
    # absolute times as written, relative ones counted from the moment of sending
    assert (held[imei(3)].valid_time, held[imei(3)].expired_time) == (valid_at, expired_at)
    for n, field, offset in ((1, "expired_time", 86400), (4, "valid_time", 1800)):
        sent = parse_onenet(getattr(held[imei(n)], field)).timestamp()
        assert int(before) + offset <= sent <= after + offset


async def test_valid_time_is_sent_only_when_the_job_gives_one(tmp_path: Path) -> None:
    valid_at = _in_beijing(7200)
    job_path = tmp_path / "valid.yaml"
    job_path.write_text(
        "defaults: {obj_id: 5, obj_inst_id: 0, res_id: 2, expired_time: '+1d'}\n"
        "targets:\n"
        f"  - imei: '{imei(10)}'\n"
        f"  - imei: '{imei(11)}'\n"
        f"    valid_time: '{valid_at}'\n",
        encoding="utf-8",
    )
    emulator = Emulator()
    async with serve(emulator) as url:
        await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    held = {c.imei: c for c in emulator.accepted()}
    assert held[imei(10)].valid_time is None  # no valid_time parameter at all
    assert held[imei(11)].valid_time == valid_at
    rows = {r.command.imei: r for r in ledger_rows(tmp_path / "l.db")}
    assert rows[imei(10)].sent_valid_time is None
    assert rows[imei(11)].sent_valid_time == valid_at


async def test_ledger_uuids_are_exactly_the_servers(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(200))
    emulator = Emulator()
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    assert result.counts[Status.ACCEPTED] == 200
    assert_exactly_once(emulator, tmp_path / "l.db", expected=200)


async def test_the_api_key_is_never_written_to_the_ledger(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(50))
    emulator = Emulator(Faults(fail_rate=0.2, cut_after_rate=0.1, seed=2))
    async with serve(emulator) as url:
        await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    written = _files_of(tmp_path / "l.db")
    assert len(written) > 0
    assert API_KEY.encode() not in written


async def test_relative_times_use_onenets_clock_when_it_is_far_ahead(tmp_path: Path) -> None:
    # OneNET's clock is three days ahead: times relative to this machine's clock would all have
    # passed there (errno 5006); the run reads OneNET's clock first and counts from it.
    job_path = write_csv_job(tmp_path, fleet(5), expired_time="+1d")
    ahead = 3 * 86400
    emulator = Emulator(clock=lambda: time.time() + ahead)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    assert result.complete
    assert result.stats.clock_offset is not None and abs(result.stats.clock_offset - ahead) < 2
    for cmd in emulator.accepted():
        assert abs(cmd.expired_at - (cmd.created_at + 86400)) < 3


async def test_an_expired_time_passed_on_onenets_clock_is_expired_locally_not_sent(
    tmp_path: Path,
) -> None:
    # Absolute, one day ahead of this machine, but OneNET's clock is already three days ahead.
    job_path = write_csv_job(tmp_path, fleet(5), expired_time=_in_beijing(86400))
    emulator = Emulator(clock=lambda: time.time() + 3 * 86400)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    rows = ledger_rows(tmp_path / "l.db")
    assert {(r.status, r.attempts) for r in rows} == {(Status.EXPIRED, 0)}
    assert emulator.stats()["posts"] == 0
    assert result.stats.expired == 5 and not result.complete
