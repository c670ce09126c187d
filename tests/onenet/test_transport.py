"""The transport seam: MockTransport and the Response value, the aiohttp transport over real
loopback sockets (never a request sent twice, never a redirect followed), and the emulator as an
in-process transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import pytest

from dispatcher.emulator import Emulator, EmulatorTransport, Faults
from dispatcher.onenet import (
    MAX_BODY,
    AiohttpTransport,
    AnswerLost,
    MockTransport,
    NotSent,
    OfflineRequest,
    OneNetClient,
    ReadTimeout,
    Request,
    Response,
    Verdict,
)
from tests.support.onenet import offline

IMEI = "861234567890123"
OK = b'{"errno":0,"error":"succ","data":{"uuid":"42742677-adc3-54ca-83a1-5aaaf71482f8"}}'


def execute() -> OfflineRequest:
    return offline(
        imei=IMEI, obj_id=3201, obj_inst_id=0, res_id=5750, expired_time="2099-01-01T00:00:00",
        args="go", retry=2, timeout=30, trigger_msg=5,
    )  # fmt: skip


# -- MockTransport and Response ---------------------------------------------------------------


def test_a_response_keeps_the_headers_the_client_reads_under_their_canonical_names() -> None:
    answer = Response(200, b"", {"date": "D", "RETRY-AFTER": "3", "content-type": "x", "X-A": "1"})
    assert dict(answer.headers) == {"Date": "D", "Retry-After": "3", "Content-Type": "x"}
    with pytest.raises(AttributeError):
        answer.status = 500  # type: ignore[misc]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_mock_transport_hands_the_request_to_its_handler_sync_or_async(
    asynchronous: bool,
) -> None:
    seen: list[Request] = []

    def answer(request: Request) -> Response:
        seen.append(request)
        return Response(200, OK)

    async def answer_later(request: Request) -> Response:
        return answer(request)

    transport = MockTransport(answer_later if asynchronous else answer)
    outcome = await OneNetClient(transport, "http://onenet.test", "k").create(execute())
    assert outcome.verdict is Verdict.ACCEPTED
    [request] = seen
    assert (request.method, request.body) == ("POST", b'{"args":"go"}')
    assert request.url.startswith("http://onenet.test/nbiot/execute/offline?imei=" + IMEI)
    assert request.headers == {"api-key": "k", "Content-Type": "application/json"}


async def test_mock_transport_gives_a_body_over_max_body_as_none() -> None:
    transport = MockTransport(lambda request: Response(200, b" " * (MAX_BODY + 1)))
    answer = await transport.send("GET", "http://onenet.test/", {}, None)
    assert answer.body is None and answer.status == 200


@pytest.mark.parametrize(
    ("failure", "verdict", "reached"),
    [(NotSent("ClientConnectorError: refused"), Verdict.TRANSIENT, False),
     (AnswerLost("ServerDisconnectedError: gone"), Verdict.IN_DOUBT, True),
     (ReadTimeout("TimeoutError"), Verdict.IN_DOUBT, True)],
)  # fmt: skip
async def test_a_handler_plays_failures_as_the_transport_reports_them(
    failure: Exception, verdict: Verdict, reached: bool
) -> None:
    def fail(request: Request) -> Response:
        raise failure

    outcome = await OneNetClient(MockTransport(fail), "http://x", "k").create(execute())
    assert (outcome.verdict, outcome.reached) == (verdict, reached)
    assert str(failure) in outcome.error


# -- the aiohttp transport over loopback ----------------------------------------------------------


@asynccontextmanager
async def http_server(answers: list[bytes | None]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A keep-alive HTTP server: the n-th request gets ``answers[n]``, None cuts the connection
    after reading the request; yields its URL and the request lines it read."""
    lines: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines.append(head.split(b"\r\n", 1)[0])
                answer = answers[len(lines) - 1] if len(lines) <= len(answers) else None
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", lines


def http_ok(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )


async def test_a_get_on_a_kept_alive_connection_that_breaks_is_never_sent_again() -> None:
    # aiohttp alone sends a GET again on a new connection when a kept-alive one breaks under it:
    # a cached read would be created twice. The transport reports it in doubt, once sent.
    server = http_server([http_ok(b"{}"), None, http_ok(b"{}")])
    async with server as (url, lines), aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session)
        first = await transport.send("GET", url + "/a", {}, None)
        with pytest.raises(AnswerLost, match="ServerDisconnectedError"):
            await transport.send("GET", url + "/b", {}, None)
    assert first.status == 200
    assert lines == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]


async def test_a_post_on_a_kept_alive_connection_that_breaks_is_in_doubt_and_sent_once() -> None:
    # A POST goes without the no-resend middleware (aiohttp sends only idempotent methods again):
    # its disconnect is still in doubt, and the request went out once.
    server = http_server([http_ok(b"{}"), None, http_ok(b"{}")])
    async with server as (url, lines), aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session)
        first = await transport.send("POST", url + "/a", {}, None)  # the server reads no body
        with pytest.raises(AnswerLost, match="ServerDisconnectedError"):
            await transport.send("POST", url + "/b", {}, None)
    assert first.status == 200
    assert lines == [b"POST /a HTTP/1.1", b"POST /b HTTP/1.1"]


async def test_aiohttp_alone_sends_such_a_get_again_which_is_why_the_transport_stops_it() -> None:
    # If this starts failing, aiohttp no longer retries on its own: the middleware in
    # aiohttp_transport.py may go (the test above keeps the guarantee either way).
    server = http_server([http_ok(b"{}"), None, http_ok(b"{}")])
    async with server as (url, lines), aiohttp.ClientSession() as session:
        async with session.get(url + "/a") as resp:
            await resp.read()
        async with session.get(url + "/b") as resp:
            await resp.read()
    assert lines == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1", b"GET /b HTTP/1.1"]


async def test_a_redirect_is_returned_as_it_is_never_followed() -> None:
    moved = http_ok(b"", "302 Found", b"Location: /elsewhere\r\n")
    async with (
        http_server([moved]) as (url, lines),
        AiohttpTransport.open(timeout_s=5) as transport,
    ):
        answer = await transport.send("POST", url + "/a", {}, b"x")
    assert answer.status == 302
    assert lines == [b"POST /a HTTP/1.1"]


async def test_a_refused_connection_is_not_sent() -> None:
    async with http_server([]) as (url, _):
        pass  # closed: nothing listens there any more
    async with AiohttpTransport.open(timeout_s=5.0) as transport:
        with pytest.raises(NotSent, match="ClientConnectorError"):
            await transport.send("GET", url + "/a", {}, None)


# -- the emulator in-process ---------------------------------------------------------------------


async def test_the_emulator_answers_in_process_as_over_a_socket() -> None:
    emulator = Emulator()
    client = OneNetClient(EmulatorTransport(emulator), "http://emulator.test", "k")
    outcome = await client.create(execute())
    items = await client.history(IMEI, datetime(2000, 1, 1, tzinfo=UTC))
    assert outcome.verdict is Verdict.ACCEPTED and outcome.server_date is not None
    assert [i.uuid for i in items] == [outcome.uuid]
    assert [c.uuid for c in emulator.accepted()] == [outcome.uuid]


@pytest.mark.parametrize(
    ("faults", "verdict", "stored", "error"),
    [(Faults(cut_after_rate=1.0), Verdict.IN_DOUBT, 1, "answer lost: ServerDisconnectedError"),
     (Faults(cut_before_rate=1.0), Verdict.IN_DOUBT, 0, "answer lost: ServerDisconnectedError"),
     (Faults(html_status=407), Verdict.TRANSIENT, 0, "HTTP 407 (text/html): not a OneNET answer"),
     (Faults(bomb_bytes=32 * MAX_BODY), Verdict.IN_DOUBT, 1, "HTTP 200: answer larger than"),
     (Faults(compress=True), Verdict.ACCEPTED, 1, ""),
     (Faults(hang_rate=1.0), Verdict.IN_DOUBT, 0, "no answer in time: TimeoutError")],
)  # fmt: skip
async def test_the_emulators_faults_reach_the_client_in_process(
    faults: Faults, verdict: Verdict, stored: int, error: str
) -> None:
    emulator = Emulator(faults)
    transport = EmulatorTransport(emulator, timeout_s=0.05 if faults.hang_rate else 30.0)
    outcome = await OneNetClient(transport, "http://emulator.test", "k").create(execute())
    assert outcome.verdict is verdict
    assert outcome.error.startswith(error)
    assert len(emulator.accepted()) == stored


async def test_a_path_the_emulator_does_not_serve_is_misrouted() -> None:
    transport = EmulatorTransport(Emulator())
    outcome = await OneNetClient(transport, "http://emulator.test/v2", "k").create(execute())
    assert (outcome.verdict, outcome.misrouted, outcome.http_status) == (
        Verdict.TRANSIENT,
        True,
        404,
    )
