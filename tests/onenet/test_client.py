"""OneNetClient against a hung server and the emulator's faults (cut, gzip, bombs, proxy pages),
the key masked in every message, and refused queries."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tracemalloc
import zlib
from datetime import UTC, datetime

import aiohttp
import pytest
from aioresponses import aioresponses

from dispatcher.emulator.server import Emulator, Faults, serve as serve_emulator
from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import (
    AiohttpTransport,
)
from dispatcher.onenet.client import (
    MAX_BODY,
    Misrouted,
    OfflineRequest,
    OneNetClient,
    Verdict,
)
from tests.support.client_calls import (
    BASE,
    BEIJING,
    EXECUTE,
    HISTORY,
    KEY,
    UUID,
    answer,
    history_item,
    read_request,
    request,
    serve,
)
from tests.support.onenet import Routes


@pytest.mark.parametrize(
    ("exc", "verdict", "reached", "timed_out"),
    [
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
         Verdict.IN_DOUBT, True, True),
        (aiohttp.ServerTimeoutError("read timed out"), Verdict.IN_DOUBT, True, True),
        (TimeoutError(), Verdict.IN_DOUBT, True, True),
        (aiohttp.ConnectionTimeoutError("connect timed out"), Verdict.TRANSIENT, False, False),
        (aiohttp.ServerDisconnectedError(), Verdict.IN_DOUBT, True, False),
    ],
)  # fmt: skip
async def test_no_answer_in_time_is_in_doubt_and_timed_out_but_a_connect_timeout_is_not(
    session: aiohttp.ClientSession,
    exc: Exception,
    verdict: Verdict,
    reached: bool,
    timed_out: bool,
) -> None:
    with aioresponses() as mocked:  # aiohttp's own errors, as its session raises them
        mocked.post(EXECUTE, exception=exc)
        outcome = await OneNetClient(AiohttpTransport(session), BASE, KEY).create(request())
    assert (outcome.verdict, outcome.reached, outcome.timed_out) == (verdict, reached, timed_out)


async def test_a_server_that_never_answers_is_in_doubt_and_timed_out() -> None:
    emulator = Emulator(Faults(hang_rate=1.0))
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve_emulator(emulator) as url, aiohttp.ClientSession(timeout=timeout) as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).create(request())
    assert (outcome.verdict, outcome.timed_out, outcome.reached) == (Verdict.IN_DOUBT, True, True)
    assert outcome.error.startswith("no answer in time: ")
    assert emulator.accepted() == []


def emulator_request() -> OfflineRequest:
    return request(valid_time=None, expired_time="2099-01-01T00:00:00")


async def test_a_truncated_answer_is_in_doubt_and_the_command_exists() -> None:
    emulator = Emulator(Faults(truncate_rate=1.0))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).create(emulator_request())
    assert (outcome.verdict, outcome.misrouted) == (Verdict.IN_DOUBT, False)
    assert re.fullmatch(r"HTTP 200: answer is not JSON \(\d+ bytes\)", outcome.error)
    assert len(emulator.accepted()) == 1


async def test_a_proxy_page_in_front_is_misrouted_for_execute_and_follow_ups() -> None:
    emulator = Emulator(Faults(html_status=407))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        outcome = await client.create(emulator_request())
        with pytest.raises(Misrouted, match="history: HTTP 407 "):
            await client.history("861234567890123", datetime.now(UTC))
    assert (outcome.verdict, outcome.misrouted) == (Verdict.TRANSIENT, True)
    assert outcome.error == "HTTP 407 (text/html): not a OneNET answer"
    assert emulator.accepted() == []


async def test_gzip_answers_are_inflated_and_read() -> None:
    emulator = Emulator(Faults(compress=True, affect_reads=True))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        outcome = await client.create(emulator_request())
        items = await client.history("861234567890123", datetime(2000, 1, 1, tzinfo=UTC))
    assert outcome.verdict is Verdict.ACCEPTED
    assert [item.uuid for item in items] == [outcome.uuid]


BOMB = 32 * MAX_BODY  # inflated bytes; about 32 KB compressed


async def test_a_gzip_bomb_answer_is_in_doubt_and_never_inflated_whole() -> None:
    emulator = Emulator(Faults(bomb_bytes=BOMB))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        first = await client.create(emulator_request())  # builds the bomb once
        tracemalloc.start()
        try:
            second = await client.create(emulator_request())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    for outcome in (first, second):
        assert outcome.verdict is Verdict.IN_DOUBT  # the command was stored
        assert outcome.error == f"HTTP 200: answer larger than {MAX_BODY} bytes"
    assert len(emulator.accepted()) == 2
    assert peak < 4 * MAX_BODY  # inflating it whole would take BOMB bytes


async def test_a_gzip_bomb_follow_up_answer_is_unavailable_and_never_inflated_whole() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(b" " * MAX_BODY) for _ in range(32)) + packer.flush()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(bomb), bomb)
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        tracemalloc.start()
        try:
            with pytest.raises(OneNetUnavailable, match=f"larger than {MAX_BODY} bytes"):
                await OneNetClient(AiohttpTransport(session), base, KEY).detail("1", UUID)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * MAX_BODY


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("latest test run", "latest *** run"),
        ("testing attested tests", "testing attested tests"),
        ("test", "***"),
        ("GET /x?api-key=test&imei=1 failed", "GET /x?api-key=***&imei=1 failed"),
        ("header api-key: test was refused", "header api-key: *** was refused"),
        ("test-run test_case test/x test+1", "test-run test_case test/x test+1"),
    ],
)
async def test_a_short_key_is_masked_only_where_it_stands_as_a_whole_token(
    routes: Routes, text: str, masked: str
) -> None:
    routes.post(EXECUTE, body=answer(1, text))
    outcome = await OneNetClient(routes.transport, BASE, "test").create(request())
    assert outcome.error == masked


async def test_a_key_is_masked_percent_encoded_in_a_url_too(routes: Routes) -> None:
    key = "Ab+cd/Ef=="
    routes.post(EXECUTE, body=answer(1, f"bad url ?api-key=Ab%2Bcd%2FEf%3D%3D&x=1 and {key}."))
    outcome = await OneNetClient(routes.transport, BASE, key).create(request())
    assert outcome.error == "bad url ?api-key=***&x=1 and ***."


async def test_a_lenient_history_lists_an_unreadable_item_by_its_uuid_alone(routes: Routes) -> None:
    broken = {**history_item(2), "create_time": 1764600000, "send_status": "sent"}
    body = answer(data={"total_count": 2, "items": [history_item(1), broken]})
    routes.get(HISTORY, body=body, repeat=True)
    client = OneNetClient(routes.transport, BASE, KEY)
    with pytest.raises(OneNetUnavailable):  # matching needs every field: the strict list fails
        await client.history("861234567890123", datetime.now(BEIJING))
    items = await client.history("861234567890123", datetime.now(BEIJING), lenient=True)
    assert [(i.uuid, i.send_status, i.create_time is None) for i in items] == [
        ("uuid-1", 1, False),
        ("uuid-2", None, True),
    ]


@pytest.mark.parametrize(
    ("status", "body", "retryable", "throttled"),
    [
        (200, answer(errno=1, error="auth failed"), False, False),
        (200, answer(errno=3, error="parameter required"), False, False),
        (200, answer(errno=7, error="service internal error"), True, True),
        (429, b"slow down", True, True),
        (503, b"<html>busy</html>", True, False),
    ],
)
async def test_a_query_refused_says_whether_asking_again_can_help(
    routes: Routes,
    status: int,
    body: bytes,
    retryable: bool,
    throttled: bool,
) -> None:
    routes.get(HISTORY, status=status, body=body, headers={"Retry-After": "3"} if throttled else {})
    with pytest.raises(OneNetUnavailable) as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert (caught.value.retryable, caught.value.throttled) == (retryable, throttled)
    assert caught.value.retry_after == (3.0 if throttled else None)
