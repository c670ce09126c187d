"""Exactly-once when the world is messy: broken answers, a wrong address or proxy, OneNET's clock
off by minutes, look-alike commands, a hung server. The real dispatcher against the emulator over
loopback; each case once broke the promise that every command is sent once and kept."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.config import Settings
from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import MisroutedError, ServerHungError
from dispatcher.job.model import load_job, validate_job
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.times import BEIJING, format_onenet
from tests.support.cli import Done, dispatcher_async, finished, started
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    fast_settings,
    fleet,
    imei,
    run_against,
    write_config,
    write_csv_job,
)
from tests.support.ledger import ledger_rows
from tests.support.waiting import until

pytestmark = pytest.mark.slow


def _timeout(settings: Settings, seconds: float) -> Settings:
    return dataclasses.replace(
        settings, retry=dataclasses.replace(settings.retry, request_timeout_s=seconds)
    )


def _in_beijing(seconds_from_now: float) -> str:
    return format_onenet(datetime.fromtimestamp(time.time() + seconds_from_now, BEIJING))


# -- answers that are not OneNET's ----------------------------------------------------------------


async def test_a_truncated_success_answer_is_looked_up_never_resent(tmp_path: Path) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(100)), tmp_path / "l.db"
    emulator = Emulator(Faults(truncate_rate=0.3, seed=5))
    async with serve(emulator) as url:
        result = await run_against(url, job_path, ledger_path, fast_settings())

    assert emulator.stats()["faults"]["truncate"] > 10  # type: ignore[index]
    assert result.stats.reconciled == emulator.stats()["faults"]["truncate"]  # type: ignore[index]
    assert_exactly_once(emulator, ledger_path, expected=100)


async def test_a_gzip_bomb_answer_is_capped_and_its_command_kept_once(tmp_path: Path) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(10)), tmp_path / "l.db"
    emulator = Emulator(Faults(bomb_bytes=8 << 20))  # every success inflates to 8 MB
    async with serve(emulator) as url:
        result = await run_against(url, job_path, ledger_path, fast_settings())

    assert result.stats.reconciled == 10  # each answer was dropped unread, each command found
    assert_exactly_once(emulator, ledger_path, expected=10)


@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
async def test_a_wrong_base_path_trips_a_breaker_that_names_the_url(
    tmp_path: Path, probe: bool
) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(200)), tmp_path / "l.db"
    settings = fast_settings(concurrency=8, breaker_threshold=10)
    emulator = Emulator()
    async with serve(emulator) as url:
        result = await run_against(url + "/v2", job_path, ledger_path, settings, probe=probe)

    assert isinstance(result.aborted, MisroutedError)
    assert f"{url}/v2/nbiot/" in result.aborted.reason
    assert "HTTP 404" in result.aborted.reason
    assert emulator.accepted() == []
    assert {r.status for r in ledger_rows(ledger_path)} <= {Status.PENDING}  # sent again later


async def test_a_proxy_page_in_front_stops_the_run_with_exit_4(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(30))
    emulator = Emulator(Faults(html_status=407))
    async with serve(emulator) as url:
        done = await _cli("run", str(job_path), "--base-url", url, cwd=tmp_path)

    assert done.code == 4, done.stderr
    assert "HTTP 407" in done.stderr and "onenet.base_url" in done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.stats()["posts"] == 0


# -- OneNET's clock -------------------------------------------------------------------------------


async def test_with_onenet_six_minutes_behind_lost_answers_are_found_not_resent(
    tmp_path: Path,
) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(100)), tmp_path / "l.db"
    emulator = Emulator(Faults(clock_offset_s=-360, cut_after_rate=0.3, seed=2))
    settings = dataclasses.replace(
        fast_settings(),
        reliability=dataclasses.replace(fast_settings().reliability, reconcile_lookback_s=60),
    )
    async with serve(emulator) as url:
        result = await run_against(url, job_path, ledger_path, settings)

    assert result.stats.clock_offset is not None and abs(result.stats.clock_offset + 360) < 2
    assert result.stats.reconciled > 10
    assert_exactly_once(emulator, ledger_path, expected=100)


async def test_with_onenet_six_minutes_ahead_relative_valid_times_are_accepted(
    tmp_path: Path,
) -> None:
    job_path = write_csv_job(tmp_path, fleet(20), valid_time="+5m", expired_time="+1h")
    emulator = Emulator(Faults(clock_offset_s=360))
    notes: list[str] = []
    async with serve(emulator) as url:
        result = await run_against(
            url, job_path, tmp_path / "l.db", fast_settings(), notify=notes.append
        )

    assert result.complete
    assert any("OneNET's clock is 6m" in n and "ahead" in n for n in notes), notes
    for cmd in emulator.accepted():  # five minutes after OneNET's now, not after ours
        assert 295 <= cmd.valid_at - cmd.created_at <= 305


async def test_a_clock_offset_is_shown_as_a_warning_with_its_size(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(3))
    emulator = Emulator(Faults(clock_offset_s=-125))
    async with serve(emulator) as url:
        done = await _cli("run", str(job_path), "--base-url", url, cwd=tmp_path)

    assert done.code == 0, done.stderr
    assert re.search(r"warning: OneNET's clock is 2m0[456]s behind this machine's", done.stderr)


async def test_a_resume_after_an_absolute_valid_time_passed_is_not_refused(tmp_path: Path) -> None:
    job_path = write_csv_job(
        tmp_path, fleet(4), valid_time=_in_beijing(-120), expired_time=_in_beijing(3600)
    )
    job = load_job(job_path)
    checked = validate_job(job, past_times="allow")
    ledger_path = tmp_path / "l.db"
    with Ledger.open(ledger_path) as ledger:  # an earlier run, when the valid_time was ahead
        ledger.register(list(job.commands()))
        ledger.set_job(
            JobRecord(str(job_path.resolve()), job.name, checked.fingerprint, checked.commands)
        )
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await _cli(
            "run", str(job_path), "--ledger", str(ledger_path), "--base-url", url, cwd=tmp_path
        )

    assert done.code == 0, done.stdout + done.stderr
    assert "has passed" in done.stdout  # said, as a warning
    assert [c.valid_time for c in emulator.accepted()] == [None] * 4


# -- look-alike commands --------------------------------------------------------------------------


async def test_commands_that_differ_only_in_res_id_are_never_given_each_others_uuid(
    tmp_path: Path,
) -> None:
    device = imei(7)
    job_path = tmp_path / "twins.yaml"
    job_path.write_text(
        "job: twins\n"
        "defaults:\n  obj_id: 5\n  obj_inst_id: 0\n  args: go\n"
        f"  expired_time: '{_in_beijing(86400)}'\n"
        f"targets:\n  - imei: '{device}'\n    res_id: 2\n"
        f"  - imei: '{device}'\n    res_id: 10\n",
        encoding="utf-8",
    )
    ledger_path = tmp_path / "l.db"
    emulator = Emulator(Faults(cut_after_rate=1.0))  # both created, both answers lost
    async with serve(emulator) as url:
        result = await run_against(url, job_path, ledger_path, fast_settings())

    rows = ledger_rows(ledger_path)
    assert {r.status for r in rows} == {Status.IN_DOUBT}  # the history cannot tell them apart
    assert all("cannot tell apart" in r.error for r in rows)
    assert all(r.uuid is None for r in rows)
    assert len(emulator.accepted()) == 2  # and neither was sent again
    assert not result.complete


# -- a hung server --------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
async def test_a_hung_server_trips_a_breaker(tmp_path: Path, probe: bool) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(100)), tmp_path / "l.db"
    threshold, concurrency = 5, 4
    settings = _timeout(
        fast_settings(concurrency=concurrency, breaker_threshold=threshold), seconds=0.3
    )
    emulator = Emulator(Faults(hang_rate=1.0, affect_reads=probe))
    async with serve(emulator) as url:
        result = await run_against(url, job_path, ledger_path, settings, probe=probe)

    assert isinstance(result.aborted, ServerHungError)
    rows = ledger_rows(ledger_path)
    doubtful = [r for r in rows if r.status is Status.IN_DOUBT]
    if probe:
        assert doubtful == [] and emulator.stats()["posts"] == 0
    else:  # those sent may exist: they wait for the next run's look-up, never resent blindly
        assert threshold <= len(doubtful) <= threshold + concurrency
    assert {r.status for r in rows} <= {Status.PENDING, Status.IN_DOUBT}


# -- stopping, as a person sees it ----------------------------------------------------------------


async def test_a_second_ctrl_c_stops_at_once_in_the_consoles_voice(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(50))
    emulator = Emulator(Faults(hang_rate=1.0))  # no send is ever answered
    async with serve(emulator) as url:
        args = ("run", str(job_path), "--base-url", url, *_online(tmp_path))
        async with started(*args, cwd=tmp_path, key=API_KEY) as proc:
            await until(lambda: _posts(emulator) >= 4)
            proc.send_signal(signal.SIGINT)
            await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            done = await finished(proc, 20)

    text = done.stderr
    assert done.code == 130, text
    assert "warning: SIGINT again: stopping now" in text
    assert "warning: stopped at once" in text
    assert not re.search(r"^\d{4}-\d\d-\d\d .* (WARNING|ERROR) ", text, re.MULTILINE), text
    rows = ledger_rows(job_path.with_name(job_path.name + ".ledger.db"))
    assert {r.status for r in rows} <= {Status.PENDING, Status.IN_DOUBT}


# -- the command line -----------------------------------------------------------------------------


def _posts(emulator: Emulator) -> int:
    posts = emulator.stats()["posts"]
    assert isinstance(posts, int)
    return posts


def _online(cwd: Path) -> tuple[str, ...]:
    """The flags of a run in ``cwd``: its config (small backoffs), no progress bar."""
    return ("--config", str(write_config(cwd)), "--no-progress")


async def _cli(*args: str, cwd: Path) -> Done:
    return await dispatcher_async(*args, *_online(cwd), cwd=cwd, key=API_KEY, within=60)
