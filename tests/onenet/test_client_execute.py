"""OneNetClient.create (an execute): the request exactly as OneNET documents it, and every answer or
failure an Outcome, over a scripted transport and over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses

from dispatcher.onenet import (
    AiohttpTransport,
    AnswerLost,
)
from dispatcher.onenet.client import (
    MAX_BODY,
    OneNetClient,
    Verdict,
)
from tests.support.client_calls import (
    BASE,
    EXECUTE,
    KEY,
    UUID,
    answer,
    read_request,
    request,
    serve,
)
from tests.support.onenet import Routes, sent


async def test_every_parameter_goes_in_the_query_exactly_as_given(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    outcome = await OneNetClient(routes.transport, BASE + "/", KEY).create(request())
    assert outcome.verdict is Verdict.ACCEPTED and outcome.uuid == UUID
    [(method, url, kwargs)] = sent(routes)
    assert method == "POST" and url.path == "/nbiot/execute/offline"
    assert dict(url.query) == {
        "imei": "861234567890123",
        "obj_id": "3201",
        "obj_inst_id": "0",
        "res_id": "5750",
        "expired_time": "2030-01-02T03:04:05",
        "valid_time": "2030-01-01T00:00:00",
        "retry": "2",
        "timeout": "30",
        "trigger_msg": "5",
    }
    assert orjson.loads(kwargs["data"]) == {"args": "reboot now"}
    assert kwargs["headers"]["api-key"] == KEY
    assert kwargs["headers"]["Content-Type"] == "application/json"


async def test_valid_time_and_args_are_left_out_when_not_given(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    await OneNetClient(routes.transport, BASE, KEY).create(request(valid_time=None, args=None))
    [(_, url, kwargs)] = sent(routes)
    assert "valid_time" not in url.query
    assert kwargs["data"] is None
    assert "Content-Type" not in kwargs["headers"]


async def test_values_that_need_escaping_are_escaped(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    req = request(imei="86 12&x=1", expired_time="2030-01-02 03:04:05")
    await OneNetClient(routes.transport, BASE, KEY).create(req)
    [(_, url, _)] = sent(routes)
    assert url.query["imei"] == "86 12&x=1"
    assert url.query["expired_time"] == "2030-01-02 03:04:05"
    assert "x" not in url.query


async def test_args_are_sent_as_json_text_whatever_they_hold(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    args = 'cfg {"a": 1} \\ "quoted" \u4e2d\u6587'
    await OneNetClient(routes.transport, BASE, KEY).create(request(args=args))
    [(_, _, kwargs)] = sent(routes)
    assert orjson.loads(kwargs["data"]) == {"args": args}


async def test_args_that_cannot_be_encoded_are_rejected_without_sending(routes: Routes) -> None:
    outcome = await OneNetClient(routes.transport, BASE, KEY).create(request(args="\ud800"))
    assert outcome.verdict is Verdict.REJECTED
    assert sent(routes) == []


@pytest.mark.parametrize(
    ("status", "body", "headers", "verdict"),
    [
        (200, answer(5108, "rpc response error"), {}, Verdict.RETRY_ONCE),
        (200, answer(1, "auth failed"), {}, Verdict.REJECTED),
        (429, b"slow down", {"Retry-After": "3"}, Verdict.TRANSIENT),
        (500, b"<html>Internal Server Error</html>", {}, Verdict.TRANSIENT),
        (200, b"<html>maintenance</html>", {}, Verdict.IN_DOUBT),
        (404, b"<html>Not Found</html>", {"Content-Type": "text/html"}, Verdict.TRANSIENT),
        (200, answer(data={}), {}, Verdict.IN_DOUBT),
    ],
)
async def test_answers_are_classified_over_the_wire(
    routes: Routes,
    status: int,
    body: bytes,
    headers: dict[str, str],
    verdict: Verdict,
) -> None:
    routes.post(EXECUTE, status=status, body=body, headers=headers)
    outcome = await OneNetClient(routes.transport, BASE, KEY).create(request())
    assert outcome.verdict is verdict
    assert outcome.http_status == status


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (aiohttp.ConnectionTimeoutError("connect timed out"), Verdict.TRANSIENT),
        (aiohttp.InvalidURL("http://bad host"), Verdict.TRANSIENT),
        (aiohttp.ServerDisconnectedError(), Verdict.IN_DOUBT),
        (aiohttp.ClientPayloadError("Response payload is not completed"), Verdict.IN_DOUBT),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), Verdict.IN_DOUBT),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), Verdict.IN_DOUBT),
        (TimeoutError(), Verdict.IN_DOUBT),
        (aiohttp.ClientConnectionError("Connection lost"), Verdict.IN_DOUBT),
    ],
)
async def test_network_failures_before_sending_are_transient_after_are_in_doubt(
    session: aiohttp.ClientSession, exc: Exception, verdict: Verdict
) -> None:
    with aioresponses() as mocked:  # aiohttp's own errors, as its session raises them
        mocked.post(EXECUTE, exception=exc)
        outcome = await OneNetClient(AiohttpTransport(session), BASE, KEY).create(request())
    assert outcome.verdict is verdict
    assert outcome.error
    assert outcome.uuid is None


async def test_the_api_key_never_appears_in_an_error(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(1, f"auth failed for key {KEY}"))
    routes.post(
        EXECUTE, exception=AnswerLost(f"ClientOSError: [Errno 1] broken while sending {KEY}")
    )
    client = OneNetClient(routes.transport, BASE, KEY)
    first = await client.create(request())
    second = await client.create(request())
    assert first.verdict is Verdict.REJECTED and second.verdict is Verdict.IN_DOUBT
    for outcome in (first, second):
        assert KEY not in outcome.error
        assert "***" in outcome.error


async def test_the_request_on_the_wire_is_exactly_as_given() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        body = answer(data={"uuid": UUID})
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).create(request())
    assert outcome.uuid == UUID
    [raw] = seen
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n")[0] == (
        b"POST /nbiot/execute/offline?imei=861234567890123&obj_id=3201&obj_inst_id=0"
        b"&res_id=5750&expired_time=2030-01-02T03:04:05&retry=2&timeout=30&trigger_msg=5"
        b"&valid_time=2030-01-01T00:00:00 HTTP/1.1"
    )
    assert b"\r\napi-key: " + KEY.encode() + b"\r\n" in head + b"\r\n"
    assert b"\r\nContent-Type: application/json\r\n" in head + b"\r\n"
    assert body == b'{"args":"reboot now"}'


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * MAX_BODY),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",  # no length: read until the cap
    ],
)
async def test_a_huge_2xx_body_is_in_doubt_and_not_read_whole(head: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        chunk = b"x" * 65536
        try:
            for _ in range(40):  # 2.5 MB, more than the client will take
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).create(request())
    assert outcome.verdict is Verdict.IN_DOUBT  # OneNET answered: the command may exist
    assert outcome.error == f"HTTP 200: answer larger than {MAX_BODY} bytes"


async def test_connection_refused_is_transient_and_never_reached_the_server() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), f"http://127.0.0.1:{port}", KEY)
        outcome = await client.create(request())
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.reached is False
    assert KEY not in outcome.error


async def test_connection_cut_after_the_request_arrived_is_in_doubt() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()  # accepted, perhaps, but the answer never leaves

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).create(request())
    assert outcome.verdict is Verdict.IN_DOUBT
    assert outcome.reached is True


async def test_a_body_cut_short_is_in_doubt() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n{"errno":0,"error":"su')
        await writer.drain()
        writer.close()

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).create(request())
    assert outcome.verdict is Verdict.IN_DOUBT
