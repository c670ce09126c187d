"""The emulator's answer-shaping faults: truncation, gzip and bombs, its clock's offset, hangs,
a proxy's HTML, reads affected only when asked."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from dispatcher import emulator as emulator_module
from dispatcher.cli.commands import main
from dispatcher.emulator.server import Emulator, Faults, serve
from tests.support.clocks import NOW, Clock
from tests.support.emulator_api import (
    ARGS_BODY,
    EXECUTE,
    IMEI,
    KEY,
    Api,
    execute_params,
)
from tests.support.waiting import until


@pytest.fixture
async def raw(emulator: Emulator) -> AsyncIterator[Api]:
    """An Api whose session leaves gzip answers compressed."""
    async with (
        serve(emulator) as url,
        aiohttp.ClientSession(url, auto_decompress=False) as session,
    ):
        yield Api(session)


HISTORY = "/nbiot/offline/history"
HISTORY_PARAMS = {"imei": IMEI, "start": "2024-05-01T00:00:00"}


def accepted_body(uuid: str) -> bytes:
    return b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % uuid.encode()


def fault_count(emulator: Emulator, name: str) -> int:
    faults = emulator.stats()["faults"]
    assert isinstance(faults, dict)
    return int(faults.get(name, 0))


async def test_truncate_stores_the_command_and_answers_half_its_json_body(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(truncate_rate=1.0)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    [cmd] = emulator.accepted()
    full = accepted_body(cmd.uuid)
    assert (status, body) == (200, full[: len(full) // 2])
    assert headers["Content-Length"] == str(len(body))  # complete, but broken
    assert headers["Content-Type"].startswith("application/json")
    assert fault_count(emulator, "truncate") == 1


async def test_gzip_encodes_every_answer_whether_asked_or_not(raw: Api, emulator: Emulator) -> None:
    emulator.faults = Faults(compress=True)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    _, rejected_headers, rejected = await raw.raw("POST", EXECUTE, execute_params(imei="1"))
    [cmd] = emulator.accepted()
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == accepted_body(cmd.uuid)
    assert rejected_headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(rejected))["errno"] == 3


async def test_gzip_bomb_pads_the_accepted_answer_with_whitespace_before_compressing(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(bomb_bytes=3_000_000)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    [cmd] = emulator.accepted()
    inflated = gzip.decompress(body)
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert len(body) < 30_000 and len(inflated) == 3_000_000
    assert inflated.strip() == accepted_body(cmd.uuid)
    assert orjson.loads(inflated)["data"]["uuid"] == cmd.uuid
    assert fault_count(emulator, "gzip_bomb") == 1


async def test_clock_offset_moves_the_servers_now_and_its_date_header(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(clock_offset_s=-3600.0)  # the server's now is 11:00, not 12:00
    date = format_datetime(datetime.fromtimestamp(NOW - 3600, UTC), usegmt=True)
    assert (await api.post(valid_time="2024-05-01T10:59:59"))[1]["errno"] == 5006
    async with api.session.post(
        EXECUTE, params=execute_params(valid_time="2024-05-01T11:30:00"), headers=KEY
    ) as resp:
        assert (await resp.json())["errno"] == 0
        assert resp.headers["Date"] == date
    [cmd] = emulator.accepted()
    assert cmd.created_at == NOW - 3600
    async with api.session.get(HISTORY, params=HISTORY_PARAMS, headers=KEY) as resp:
        doc = await resp.json()
        assert resp.headers["Date"] == date
    assert doc["data"]["items"][0]["create_time"] == "2024-05-01 11:00:00"
    later = {"imei": IMEI, "start": "2024-05-01T11:00:01"}  # after the server's now
    assert (await api.get(HISTORY, **later))["data"]["items"] == []


async def test_answers_carry_the_date_of_the_emulators_clock(api: Api, clock: Clock) -> None:
    clock.now = NOW + 90
    async with api.session.get(HISTORY, params=HISTORY_PARAMS, headers=KEY) as resp:
        assert resp.headers["Date"] == "Wed, 01 May 2024 04:01:30 GMT"


async def test_hang_reads_the_request_stores_nothing_and_never_answers(
    emulator: Emulator,
) -> None:
    emulator.faults = Faults(hang_rate=1.0)
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve(emulator) as url, aiohttp.ClientSession(url, timeout=timeout) as session:
        with pytest.raises(aiohttp.ServerTimeoutError):
            await Api(session).post()
    assert emulator.accepted() == []
    assert emulator.stats()["posts"] == 1
    assert fault_count(emulator, "hang") == 1


async def test_serve_lets_hung_requests_go_when_it_stops() -> None:
    emulator = Emulator(Faults(hang_rate=1.0))
    async with aiohttp.ClientSession() as session:
        async with serve(emulator) as url:
            pending = asyncio.create_task(Api(session).call("POST", url + EXECUTE, {}))
            await until(lambda: fault_count(emulator, "hang") == 1, interval=0)
        # Let go rather than cancelled at the end of the shutdown timeout:
        assert fault_count(emulator, "hang_released") == 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending


async def test_html_error_answers_every_api_call_and_stores_nothing(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(html_status=407)
    answers = [
        await api.post(headers={}),  # a proxy in front: not even the key is looked at
        await api.call("GET", HISTORY, HISTORY_PARAMS),
        await api.call("GET", f"{HISTORY}/some-uuid", {"imei": IMEI}),
        await api.call("PUT", "/nbiot/offline/cancel/all", {"imei": IMEI}),
    ]
    for status, text in answers:
        assert status == 407
        assert text.startswith("<html>") and "407 Proxy Authentication Required" in text
    assert emulator.accepted() == []
    assert fault_count(emulator, "html") == 4


async def test_truncate_and_gzip_reach_reads_only_with_affect_reads(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(truncate_rate=1.0, compress=True)
    _, headers, body = await raw.raw("GET", HISTORY, HISTORY_PARAMS)
    assert "Content-Encoding" not in headers
    assert orjson.loads(body)["errno"] == 0
    emulator.faults = Faults(truncate_rate=1.0, compress=True, affect_reads=True)
    _, headers, body = await raw.raw("GET", HISTORY, HISTORY_PARAMS)
    assert headers["Content-Encoding"] == "gzip"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(gzip.decompress(body))


async def test_hang_reaches_reads_only_with_affect_reads(emulator: Emulator) -> None:
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve(emulator) as url, aiohttp.ClientSession(url, timeout=timeout) as session:
        api = Api(session)
        emulator.faults = Faults(hang_rate=1.0)
        assert (await api.get(HISTORY, **HISTORY_PARAMS))["errno"] == 0
        emulator.faults = Faults(hang_rate=1.0, affect_reads=True)
        with pytest.raises(aiohttp.ServerTimeoutError):
            await api.get(HISTORY, **HISTORY_PARAMS)
    assert fault_count(emulator, "hang") == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truncate_rate": 1.5}, "truncate_rate"),
        ({"hang_rate": -0.1}, "hang_rate"),
        ({"html_status": 200}, "html_status"),
        ({"html_status": 600}, "html_status"),
        ({"bomb_bytes": -1}, "bomb_bytes"),
        ({"clock_offset_s": float("nan")}, "clock_offset_s"),
    ],
)
def test_answer_faults_reject_impossible_settings(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**changes)


async def test_admin_faults_endpoint_sets_the_answer_faults(api: Api, emulator: Emulator) -> None:
    changes = {
        "truncate_rate": 0.25,
        "hang_rate": 0.5,
        "html_status": 403,
        "compress": True,
        "bomb_bytes": 1000,
        "clock_offset_s": -90,
    }
    async with api.session.put("/_emulator/faults", json=changes) as resp:
        assert resp.status == 200
        shown = await resp.json()
    assert {name: shown[name] for name in changes} == changes
    assert (emulator.faults.html_status, emulator.faults.clock_offset_s) == (403, -90)
    async with api.session.put("/_emulator/faults", json={"html_status": 99}) as resp:
        assert resp.status == 400
    assert emulator.faults.html_status == 403


def test_emulator_command_turns_the_answer_fault_flags_into_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Faults] = []

    def run(host: str, port: int, faults: Faults, **_: Any) -> None:
        seen.append(faults)

    monkeypatch.setattr(emulator_module, "run", run)
    flags = ["--truncate", "0.1", "--gzip", "--gzip-bomb", "300000000", "--clock-offset",
             "-120.5", "--hang", "0.2", "--html-error", "407"]  # fmt: skip
    result = CliRunner().invoke(main, ["emulator", *flags])
    assert result.exit_code == 0, result.output
    [faults] = seen
    assert (faults.truncate_rate, faults.compress, faults.bomb_bytes) == (0.1, True, 300_000_000)
    assert (faults.clock_offset_s, faults.hang_rate, faults.html_status) == (-120.5, 0.2, 407)
    assert CliRunner().invoke(main, ["emulator"]).exit_code == 0
    assert seen[1] == Faults()


@pytest.mark.parametrize(
    "flags", [["--html-error", "200"], ["--hang", "2"], ["--truncate", "-1"], ["--gzip-bomb", "-5"]]
)
def test_emulator_command_refuses_impossible_answer_faults(
    monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    monkeypatch.setattr(emulator_module, "run", lambda *a, **k: None)
    assert CliRunner().invoke(main, ["emulator", *flags]).exit_code == 2
