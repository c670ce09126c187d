"""The newer platform's tokens are dated on OneNET's clock: a OneNET whose clock is ahead of ours
never sees a token lapse mid-run, a token it refused as lapsed is signed again on its clock and
sent once more, and errno 1 on a token lane blames the access key or the token, not an api-key.

The emulator's ``clock_offset_s`` puts its now (token expiry, Date headers, times) that many
seconds ahead of its clock."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dispatcher.config import load_settings
from dispatcher.emulator.server import Emulator, Faults, Product, serve
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.store import Status
from dispatcher.onenet.aiohttp_transport import AiohttpTransport
from dispatcher.onenet.answers import Outcome, Verdict
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.client import OfflineRequest, OneNetClient
from dispatcher.run.lane import Lane
from tests.support.cli import Done, dispatcher_async
from tests.support.clocks import Clock
from tests.support.e2e import fast_settings, fleet, write_csv_job
from tests.support.ledger import ledger_rows
from tests.support.onenet import Routes, offline

ACCESS_KEY = base64.b64encode(b"studio-access-key-for-tests").decode()
WRONG_KEY = base64.b64encode(b"another product's access key").decode()
RES = "products/abc123"
NOW = 1767225600.0  # 2026-01-01 00:00:00 UTC
IMEI = fleet(1)[0]


def execute() -> OfflineRequest:
    return offline(
        imei=IMEI, obj_id=5, obj_inst_id=0, res_id=2, expired_time="2026-01-03T00:00:00",
        args="fw", retry=2, timeout=30, trigger_msg=7,
    )  # fmt: skip


def studio(offset_s: float = 0.0, clock: Clock | None = None) -> Emulator:
    return Emulator(
        clock=clock or Clock(NOW),
        products={"studio": Product(access_key=ACCESS_KEY, res=RES)},
        faults=Faults(clock_offset_s=offset_s),
    )


def token_client(
    session: aiohttp.ClientSession, url: str, *, lifetime_s: float = 90.0, key: str = ACCESS_KEY
) -> OneNetClient:
    source = TokenSource(key, RES, lifetime_s=lifetime_s, clock=Clock(NOW))
    return OneNetClient(AiohttpTransport(session), url, platform="iot-api", token=source)


def posts(emulator: Emulator) -> dict[str, int]:
    products: Any = emulator.stats()["products"]
    counters: dict[str, int] = products["studio"]
    return counters


# -- the token and OneNET's now ---------------------------------------------------------------


def test_a_token_is_dated_and_renewed_on_the_now_it_is_given() -> None:
    token = TokenSource(ACCESS_KEY, RES, lifetime_s=60, clock=Clock(NOW))
    first = token.header(NOW + 120.0)  # OneNET's now, two minutes ahead of ours
    assert token.et == int(NOW) + 180
    assert token.header(NOW + 120.0 + 48.0) == first  # 12 s left: min(300, 60 / 5) = 12
    assert token.header(NOW + 120.0 + 48.5) != first
    assert (token.et, token.renewals) == (int(NOW + 120.0 + 48.5) + 60, 1)


async def test_a_lane_that_read_onenets_clock_sends_tokens_onenet_takes_at_once() -> None:
    emulator = studio(offset_s=120.0)
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        client = token_client(session, url)
        lane = Lane.of(client, fast_settings())
        lane.clock.observe(NOW + 120.0, NOW, NOW)  # a Date read off an answer
        outcome = await client.create(execute())
    assert outcome.verdict is Verdict.ACCEPTED
    assert posts(emulator) == {"posts": 1, "accepted": 1, "throttled": 0, "auth_failed": 0}


async def test_a_token_refused_as_lapsed_on_onenets_clock_is_signed_again_and_sent_once_more() -> (
    None
):
    emulator = studio(offset_s=120.0)
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        client = token_client(session, url)
        first = await client.create(execute())
        second = await client.create(execute())
        later = await client.history(IMEI, datetime.fromtimestamp(NOW, UTC))
    assert (first.verdict, second.verdict) == (Verdict.ACCEPTED, Verdict.ACCEPTED)
    # Only the very first token (dated on our clock, OneNET's not yet read) was refused.
    assert posts(emulator) == {"posts": 3, "accepted": 2, "throttled": 0, "auth_failed": 1}
    assert [item.uuid for item in later] == [first.uuid, second.uuid]
    assert client.server_clock is not None
    assert 119.0 <= client.server_clock.offset <= 121.0


async def test_a_follow_up_call_refused_for_a_lapsed_token_is_asked_again() -> None:
    emulator = studio(offset_s=120.0)
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        items = await token_client(session, url).history(IMEI, datetime.fromtimestamp(NOW, UTC))
        cancel = await token_client(session, url).cancel(IMEI, "no-such-uuid")
    assert items == []
    assert cancel.refusal is not None and cancel.refusal.errno != 1


async def test_a_wrong_access_key_is_not_sent_again_with_a_fresh_token() -> None:
    emulator = studio()
    lapsed = studio(offset_s=120.0)
    async with aiohttp.ClientSession() as session:
        async with serve(emulator) as url:
            wrong = await token_client(session, url, key=WRONG_KEY).create(execute())
            with pytest.raises(OneNetUnavailable) as caught:
                await token_client(session, url, key=WRONG_KEY).history(
                    IMEI, datetime.fromtimestamp(NOW, UTC)
                )
        async with serve(lapsed) as url:
            wrong_late = await token_client(session, url, key=WRONG_KEY).create(execute())
    for outcome in (wrong, wrong_late):
        assert (outcome.verdict, outcome.errno) == (Verdict.REJECTED, 1)
    assert caught.value.errno == 1
    # A token that was good by OneNET's clock is not sent again; one that had lapsed, once.
    assert posts(emulator)["posts"] == 1
    assert posts(lapsed) == {"posts": 2, "accepted": 0, "throttled": 0, "auth_failed": 2}


# -- errno 1 on a token lane --------------------------------------------------------------------


def test_the_breaker_of_a_token_lane_blames_the_access_key_or_token(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "onenet:\n  platform: iot-api\n  base_url: http://127.0.0.1:9\n  token:\n"
        f"    access_key_env: STUDIO_KEY\n    res: {RES}\n",
        encoding="utf-8",
    )
    settings = load_settings(tmp_path / "c.yaml")

    token = TokenSource(ACCESS_KEY, RES, clock=Clock(NOW))
    client = OneNetClient(Routes().transport, "http://127.0.0.1:9", platform="iot-api", token=token)
    lane = Lane.of(client, settings)  # a breaker needs no calls
    refused = Outcome(Verdict.REJECTED, errno=1, error="auth failed", http_status=200)
    reasons = [lane.observe(refused, f"key-{n}") for n in range(10)]
    why = reasons[-1]
    assert why is not None
    assert "access key or token" in why.reason and "STUDIO_KEY" in why.reason
    assert "api-key" not in why.reason


# -- the real command line against a OneNET whose clock is ahead ------------------------------


CONFIG = """\
onenet:
  platform: iot-api
  base_url: {url}
  token: {{access_key_env: STUDIO_KEY, res: {res}, lifetime: {lifetime}}}
limits: {{rate_per_second: 4, concurrency: 8, adaptive: false}}
retry: {{max_attempts: 10, initial_backoff_s: 0.001, max_backoff_s: 0.01, request_timeout_s: 10}}
reliability: {{settle_s: 0.2, stop_grace_s: 10}}
ledger: {{synchronous: normal, batch_size: 50}}
"""


async def run_ahead(
    tmp_path: Path, *, offset_s: float, lifetime: str, devices: int, key: str = ACCESS_KEY
) -> tuple[Done, Emulator]:
    """``dispatcher run`` of one command per device against a OneNET ``offset_s`` ahead."""
    emulator = Emulator(
        products={"studio": Product(access_key=ACCESS_KEY, res=RES)},
        faults=Faults(clock_offset_s=offset_s),
    )
    job = write_csv_job(tmp_path, fleet(devices))
    async with serve(emulator) as url:
        config = CONFIG.format(url=url, res=RES, lifetime=lifetime)
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
        done = await dispatcher_async(
            "run",
            job.name,
            "--config",
            "config.yaml",
            cwd=tmp_path,
            key=None,
            env={"STUDIO_KEY": key},
            within=240,
        )
    return done, emulator


async def test_a_run_with_onenet_55s_ahead_and_minute_tokens_has_no_command_refused(
    tmp_path: Path,
) -> None:
    # 32 commands at 4/s: 8 s, past the moment (5 s in) a minute's token dated on our clock
    # lapses at a OneNET 55 s ahead, and well before its renewal on ours (48 s in). (20 s ahead,
    # as first seen, lapses 40 s in: the same defect, only later.)
    done, emulator = await run_ahead(tmp_path, offset_s=55.0, lifetime="60s", devices=32)
    assert done.code == 0, done.stderr
    assert posts(emulator)["auth_failed"] == 0
    rows = ledger_rows(tmp_path / "fleet.yaml.ledger.db")
    assert [r.status for r in rows] == [Status.ACCEPTED] * 32
    assert {r.uuid for r in rows} == {c.uuid for c in emulator.accepted()}


async def test_a_run_with_onenet_120s_ahead_and_90s_tokens_is_accepted(tmp_path: Path) -> None:
    done, emulator = await run_ahead(tmp_path, offset_s=120.0, lifetime="90s", devices=12)
    assert done.code == 0, done.stderr
    assert "api-key" not in done.stderr
    # The probe's first token, made before any answer showed OneNET's clock, was refused and
    # signed again: no command was.
    assert posts(emulator) == {"posts": 12, "accepted": 12, "throttled": 0, "auth_failed": 0}
    rows = ledger_rows(tmp_path / "fleet.yaml.ledger.db")
    assert [r.status for r in rows] == [Status.ACCEPTED] * 12


async def test_a_wrong_access_key_blames_the_access_key_or_token_not_an_api_key(
    tmp_path: Path,
) -> None:
    done, emulator = await run_ahead(
        tmp_path, offset_s=0.0, lifetime="1h", devices=12, key=WRONG_KEY
    )
    assert done.code == 4, done.stderr
    assert "errno 1 (auth failed)" in done.stderr
    assert "access key or token" in done.stderr and "STUDIO_KEY" in done.stderr
    assert "api-key" not in done.stderr
    assert emulator.accepted() == []
