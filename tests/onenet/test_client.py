"""OneNetClient and classify(): every answer and every failure becomes the right Outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, given, settings, strategies as st
from yarl import URL

from dispatcher.emulator.server import Emulator, Faults, serve as serve_emulator
from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import (
    AiohttpTransport,
    AnswerLost,
    ConnectTimeout,
    MockTransport,
    ReadTimeout,
    Request,
    Response,
)
from dispatcher.onenet.client import (
    MAX_BODY,
    MAX_RETRY_AFTER,
    CancelResult,
    ExecuteRequest,
    Misrouted,
    OneNetClient,
    Outcome,
    Verdict,
    classify,
    parse_retry_after,
)
from tests.support.onenet import Routes, sent

BASE = "http://onenet.test"
KEY = "k3y-S3CRET-0123456789abcdef"
UUID = "42742677-adc3-54ca-83a1-5aaaf71482f8"
EXECUTE = re.compile(r"^http://onenet\.test/nbiot/execute/offline\?.*$")
BEIJING = timezone(timedelta(hours=8))


def answer(errno: int = 0, error: str = "succ", data: object = None) -> bytes:
    return orjson.dumps({"errno": errno, "error": error, "data": data})


def request(**changes: Any) -> ExecuteRequest:
    fields: dict[str, Any] = {
        "imei": "861234567890123",
        "obj_id": 3201,
        "obj_inst_id": 0,
        "res_id": 5750,
        "expired_time": "2030-01-02T03:04:05",
        "valid_time": "2030-01-01T00:00:00",
        "args": "reboot now",
        "retry": 2,
        "timeout": 30,
        "trigger_msg": 5,
    }
    fields.update(changes)
    return ExecuteRequest(**fields)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# -- classify: the errno table ----------------------------------------------------------------


def test_errno_zero_with_uuid_is_accepted() -> None:
    outcome = classify(200, answer(data={"uuid": UUID}), {})
    assert outcome == Outcome(Verdict.ACCEPTED, uuid=UUID, errno=0, http_status=200)


@pytest.mark.parametrize(
    "data",
    [None, {}, {"uuid": ""}, {"uuid": 42}, {"uuid": None}, {"uuid": ["x"]}, {"uuid": "a b"},
     {"uuid": "x" * 200}, {"uuid": "\n"}, [UUID], UUID],
)  # fmt: skip
def test_errno_zero_without_a_usable_uuid_is_in_doubt_never_accepted(data: object) -> None:
    outcome = classify(200, answer(data=data), {})
    assert outcome.verdict is Verdict.IN_DOUBT
    assert outcome.uuid is None
    assert outcome.errno == 0


@pytest.mark.parametrize("text", ["succ", "success", "anything at all"])
def test_success_is_told_by_errno_not_by_text(text: str) -> None:
    assert classify(200, answer(error=text, data={"uuid": UUID}), {}).verdict is Verdict.ACCEPTED
    assert classify(200, answer(3, "succ"), {}).verdict is Verdict.REJECTED


@pytest.mark.parametrize(
    ("errno", "verdict", "throttled"),
    [
        (1, Verdict.REJECTED, False),
        (3, Verdict.REJECTED, False),
        (14, Verdict.REJECTED, False),
        (16, Verdict.REJECTED, False),
        (2001, Verdict.REJECTED, False),
        (5006, Verdict.REJECTED, False),
        (5106, Verdict.REJECTED, False),
        (12345, Verdict.REJECTED, False),
        (-1, Verdict.REJECTED, False),
        (7, Verdict.TRANSIENT, True),
        (5117, Verdict.TRANSIENT, False),
        (5108, Verdict.RETRY_ONCE, False),
    ],
)
def test_each_errno_class_leads_to_its_verdict(
    errno: int, verdict: Verdict, throttled: bool
) -> None:
    outcome = classify(200, answer(errno, f"text of {errno}"), {})
    assert outcome.verdict is verdict
    assert outcome.errno == errno  # old aliases (14, 16) recorded as given
    assert outcome.error == f"text of {errno}"
    assert outcome.throttled is throttled
    assert outcome.uuid is None


def test_http_429_is_transient_and_throttled_with_retry_after_seconds() -> None:
    outcome = classify(429, b"Too Many Requests", {"Retry-After": "7"})
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.throttled
    assert outcome.retry_after == 7.0
    assert outcome.http_status == 429


def test_retry_after_as_http_date_is_seconds_from_now() -> None:
    now = 1_900_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    outcome = classify(429, b"", {"retry-after": date}, now=now)
    assert outcome.retry_after == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), (" 12 ", 12.0), ("1.5", 1.5), ("99999999", MAX_RETRY_AFTER),
     ("1e999", MAX_RETRY_AFTER), ("soon", None), ("-5", None), ("", None), ("٣", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_values_are_parsed_or_ignored(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, 1_900_000_000.0) == seconds


def test_any_retry_after_marks_the_answer_throttled() -> None:
    outcome = classify(503, b"busy", {"Retry-After": "2"})
    assert (outcome.verdict, outcome.throttled, outcome.retry_after) == (
        Verdict.TRANSIENT,
        True,
        2.0,
    )
    assert classify(503, b"busy", {}).throttled is False


@pytest.mark.parametrize("status", [500, 503, 599])
def test_server_errors_are_transient_whatever_the_body(status: int) -> None:
    outcome = classify(status, answer(data={"uuid": UUID}), {})
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.http_status == status


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_that_passed_the_request_on_leaves_the_command_in_doubt(status: int) -> None:
    # 502: OneNET's answer was broken; 504: none came in time. Either way it may exist.
    outcome = classify(status, b"<html><h1>Bad Gateway</h1></html>", {"Content-Type": "text/html"})
    assert outcome.verdict is Verdict.IN_DOUBT
    assert not outcome.misrouted


def test_gateway_timeout_is_in_doubt_because_the_request_went_through() -> None:
    assert classify(504, b"<html>504 Gateway Time-out</html>", {}).verdict is Verdict.IN_DOUBT


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b'{"errno": 0, "error": "succ", "data": {"uuid": "4274',  # truncated
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"errno"',
        b"null",
        b"[" * 5000,  # deeper than the parser allows
    ],
)
def test_2xx_bodies_that_are_not_a_json_object_are_in_doubt(body: bytes) -> None:
    # OneNET took the request and answered something unusable: the command may exist.
    outcome = classify(200, body, {})
    assert outcome.verdict is Verdict.IN_DOUBT
    assert (outcome.uuid, outcome.misrouted) == (None, False)
    assert outcome.error.startswith("HTTP 200: answer ")


@pytest.mark.parametrize(
    "doc",
    [{"errno": "3"}, {"errno": None}, {"errno": True}, {"errno": 3.5}, {"errno": [0]},
     {"error": "succ"}, {"errno": 2**70}, {"errno": 2**40}, {"errno": {"code": 0}}],
)  # fmt: skip
def test_2xx_errno_of_the_wrong_type_is_in_doubt(doc: dict[str, object]) -> None:
    outcome = classify(200, json.dumps(doc).encode(), {})
    assert outcome.verdict is Verdict.IN_DOUBT
    assert (outcome.uuid, outcome.errno, outcome.misrouted) == (None, None, False)


@pytest.mark.parametrize(
    "doc",
    [{"errno": "0", "data": {"uuid": UUID}}, {"errno": 0.0}, {"errno": False},
     {"data": {"uuid": UUID}}],
)  # fmt: skip
def test_malformed_success_is_in_doubt_not_resent_blindly(doc: dict[str, object]) -> None:
    outcome = classify(200, orjson.dumps(doc), {})
    assert outcome.verdict is Verdict.IN_DOUBT
    assert outcome.uuid is None


def test_errno_zero_outside_2xx_is_never_accepted() -> None:
    assert classify(302, answer(data={"uuid": UUID}), {}).verdict is Verdict.IN_DOUBT


PROXY_PAGE = b"<html><head><title>407 Proxy Authentication Required</title></head></html>"


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        (404, {"Content-Type": "text/html"}, b"<html>Not Found</html>",
         "HTTP 404 (text/html): not a OneNET answer"),
        (403, {"content-type": "text/html; charset=utf-8"}, b"<html>Forbidden</html>",
         "HTTP 403 (text/html): not a OneNET answer"),
        (407, {"Content-Type": "text/html"}, PROXY_PAGE,
         "HTTP 407 (text/html): not a OneNET answer"),
        (301, {}, b"", "HTTP 301 (no content type): not a OneNET answer"),
        (400, {"Content-Type": "text/plain"}, b'{"errno": 0, "err',
         "HTTP 400 (text/plain): not a OneNET answer"),
    ],
)  # fmt: skip
def test_non_json_3xx_and_4xx_answers_are_misrouted_and_transient(
    status: int, headers: dict[str, str], body: bytes, error: str
) -> None:
    outcome = classify(status, body, headers)
    assert (outcome.verdict, outcome.misrouted) == (Verdict.TRANSIENT, True)
    assert (outcome.error, outcome.http_status, outcome.uuid) == (error, status, None)


@pytest.mark.parametrize(
    "doc", [{"message": "Not Found"}, {"errno": "1"}, {"errno": None}, [1], "oops", None]
)
def test_json_4xx_answers_without_an_integer_errno_are_misrouted(doc: object) -> None:
    outcome = classify(404, orjson.dumps(doc), {"Content-Type": "application/json"})
    assert (outcome.verdict, outcome.misrouted) == (Verdict.TRANSIENT, True)
    assert outcome.error == (
        "HTTP 404 (application/json): not a OneNET answer (JSON without an integer errno)"
    )


@pytest.mark.parametrize(
    ("status", "verdict"), [(500, Verdict.TRANSIENT), (502, Verdict.IN_DOUBT),
                            (504, Verdict.IN_DOUBT), (429, Verdict.TRANSIENT)]
)  # fmt: skip
def test_5xx_and_429_html_pages_are_never_misrouted(status: int, verdict: Verdict) -> None:
    outcome = classify(status, b"<html>error</html>", {"Content-Type": "text/html"})
    assert (outcome.verdict, outcome.misrouted) == (verdict, False)


def test_2xx_and_4xx_answers_with_an_integer_errno_are_onenets() -> None:
    assert classify(404, answer(3, "parameter required"), {}).misrouted is False
    assert classify(200, b"<html>maintenance</html>", {}).misrouted is False


def test_the_date_header_becomes_the_server_date() -> None:
    when = 1_900_000_000.0
    date = format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True)
    assert classify(200, answer(data={"uuid": UUID}), {"Date": date}).server_date == when
    assert classify(503, b"", {"date": date}).server_date == when
    assert classify(200, answer(data={"uuid": UUID}), {}).server_date is None
    assert classify(200, answer(), {"Date": "yesterday, around noon"}).server_date is None


def test_business_errors_on_4xx_keep_their_errno() -> None:
    outcome = classify(403, answer(1, "auth failed"), {})
    assert (outcome.verdict, outcome.errno, outcome.http_status) == (Verdict.REJECTED, 1, 403)


def test_long_error_text_is_cut() -> None:
    assert len(classify(200, answer(3, "x" * 5000), {}).error) == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
answer_docs = st.fixed_dictionaries(
    {},
    optional={
        "errno": st.sampled_from([0, 1, 7, 5108, 5117, "0", 0.0, None, True]) | json_values,
        "error": json_values,
        "data": st.fixed_dictionaries({}, optional={"uuid": json_values}) | json_values,
    },
)
statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 404, 429, 500, 503, 504]) | st.integers(
    0, 1000
)
header_sets = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "Content-Type"]), st.text(max_size=40)
)


def assert_sound(status: int, body: bytes, outcome: Outcome) -> None:
    assert isinstance(outcome, Outcome)
    assert isinstance(outcome.verdict, Verdict)
    if outcome.verdict is Verdict.ACCEPTED:
        doc = orjson.loads(body)
        assert 200 <= status < 300
        assert type(doc["errno"]) is int and doc["errno"] == 0
        assert outcome.uuid is not None and outcome.uuid == doc["data"]["uuid"]
        assert re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}", outcome.uuid)
    else:
        assert outcome.uuid is None
    if outcome.retry_after is not None:
        assert 0.0 <= outcome.retry_after <= MAX_RETRY_AFTER


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statuses, st.binary(max_size=300), header_sets)
def test_classify_never_raises_on_arbitrary_bytes(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    assert_sound(status, body, classify(status, body, headers))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statuses, answer_docs, header_sets)
def test_classify_never_accepts_without_a_proper_uuid(
    status: int, doc: dict[str, object], headers: dict[str, str]
) -> None:
    body = json.dumps(doc).encode()
    assert_sound(status, body, classify(status, body, headers))


# -- execute_offline over aioresponses ----------------------------------------------------------


async def test_every_parameter_goes_in_the_query_exactly_as_given(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    outcome = await OneNetClient(routes.transport, BASE + "/", KEY).execute_offline(request())
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
    await OneNetClient(routes.transport, BASE, KEY).execute_offline(
        request(valid_time=None, args=None)
    )
    [(_, url, kwargs)] = sent(routes)
    assert "valid_time" not in url.query
    assert kwargs["data"] is None
    assert "Content-Type" not in kwargs["headers"]


async def test_values_that_need_escaping_are_escaped(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    req = request(imei="86 12&x=1", expired_time="2030-01-02 03:04:05")
    await OneNetClient(routes.transport, BASE, KEY).execute_offline(req)
    [(_, url, _)] = sent(routes)
    assert url.query["imei"] == "86 12&x=1"
    assert url.query["expired_time"] == "2030-01-02 03:04:05"
    assert "x" not in url.query


async def test_args_are_sent_as_json_text_whatever_they_hold(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}))
    args = 'cfg {"a": 1} \\ "quoted" \u4e2d\u6587'
    await OneNetClient(routes.transport, BASE, KEY).execute_offline(request(args=args))
    [(_, _, kwargs)] = sent(routes)
    assert orjson.loads(kwargs["data"]) == {"args": args}


async def test_args_that_cannot_be_encoded_are_rejected_without_sending(routes: Routes) -> None:
    outcome = await OneNetClient(routes.transport, BASE, KEY).execute_offline(
        request(args="\ud800")
    )
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
    outcome = await OneNetClient(routes.transport, BASE, KEY).execute_offline(request())
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
        outcome = await OneNetClient(AiohttpTransport(session), BASE, KEY).execute_offline(
            request()
        )
    assert outcome.verdict is verdict
    assert outcome.error
    assert outcome.uuid is None


async def test_the_api_key_never_appears_in_an_error(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(1, f"auth failed for key {KEY}"))
    routes.post(
        EXECUTE, exception=AnswerLost(f"ClientOSError: [Errno 1] broken while sending {KEY}")
    )
    client = OneNetClient(routes.transport, BASE, KEY)
    first = await client.execute_offline(request())
    second = await client.execute_offline(request())
    assert first.verdict is Verdict.REJECTED and second.verdict is Verdict.IN_DOUBT
    for outcome in (first, second):
        assert KEY not in outcome.error
        assert "***" in outcome.error


# -- execute_offline over real loopback sockets ------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return head + (await reader.readexactly(int(length.group(1))) if length else b"")


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
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).execute_offline(
            request()
        )
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
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).execute_offline(
            request()
        )
    assert outcome.verdict is Verdict.IN_DOUBT  # OneNET answered: the command may exist
    assert outcome.error == f"HTTP 200: answer larger than {MAX_BODY} bytes"


async def test_connection_refused_is_transient_and_never_reached_the_server() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), f"http://127.0.0.1:{port}", KEY)
        outcome = await client.execute_offline(request())
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.reached is False
    assert KEY not in outcome.error


async def test_connection_cut_after_the_request_arrived_is_in_doubt() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()  # accepted, perhaps, but the answer never leaves

    server, base = await serve(handler)
    async with server, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).execute_offline(
            request()
        )
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
        outcome = await OneNetClient(AiohttpTransport(session), base, KEY).execute_offline(
            request()
        )
    assert outcome.verdict is Verdict.IN_DOUBT


# -- follow-up calls -------------------------------------------------------------------------

HISTORY = re.compile(r"^http://onenet\.test/nbiot/offline/history\?.*$")


def history_item(n: int) -> dict[str, object]:
    return {
        "cmd_uuid": f"uuid-{n}",
        "type": "EXECUTE",
        "imei": "861234567890123",
        "create_time": "2030-01-01 10:00:00",
        "valid_time": "2030-01-01 10:00:00",
        "expired_time": "2030-01-02 10:00:00",
        "send_status": 1,
        "remain": 3,
        "trigger_msg": 7,
    }


def paged(total: int, listed: int | None = None) -> Callable[[Request], Response]:
    def respond(req: Request) -> Response:
        url = URL(req.url, encoded=True)
        page, per_page = int(url.query["page"]), int(url.query["per_page"])
        first = (page - 1) * per_page
        items = [history_item(n) for n in range(first, min(first + per_page, listed or total))]
        body = answer(data={"total_count": total, "items": items})
        return Response(200, body)

    return respond


async def test_history_reads_every_page_with_times_formatted_for_onenet(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(250), repeat=True)
    start = datetime(2030, 1, 1, 2, 0, 0, tzinfo=UTC)
    items = await OneNetClient(routes.transport, BASE, KEY).history("861234567890123", start, start)
    assert [i.uuid for i in items] == [f"uuid-{n}" for n in range(250)]
    urls = [url for _, url, _ in sent(routes)]
    assert sorted(u.query["page"] for u in urls) == ["1", "2", "3"]
    for u in urls:
        assert u.query["start"] == u.query["end"] == "2030-01-01T10:00:00"
        assert (u.query["imei"], u.query["per_page"]) == ("861234567890123", "100")
    first = items[0]
    assert first.type == "EXECUTE" and first.send_status == 1 and first.trigger_msg == 7
    assert first.expired_time == datetime(2030, 1, 2, 10, 0, 0, tzinfo=BEIJING)


async def test_history_stops_at_a_short_page_and_needs_no_end(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(100), repeat=True)
    start = datetime(2030, 1, 1, 10, 0, 0, tzinfo=BEIJING)
    items = await OneNetClient(routes.transport, BASE, KEY).history("861234567890123", start)
    assert len(items) == 100
    [(_, url, kwargs)] = sent(routes)
    assert "end" not in url.query
    assert kwargs["headers"] == {"api-key": KEY}


async def test_history_that_ends_before_its_total_is_unavailable(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(150, listed=120), repeat=True)
    with pytest.raises(OneNetUnavailable, match="120 of 150"):
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )


@pytest.mark.parametrize(
    "body",
    [
        answer(1, "auth failed"),
        b"<html>oops</html>",
        answer(data={"items": "none"}),
        answer(data={"total_count": 1, "items": [{"type": "EXECUTE"}]}),
        answer(data={"items": [{**history_item(1), "expired_time": "tomorrow"}]}),
        answer(data={"items": [{**history_item(1), "send_status": "waiting"}]}),
    ],
)
async def test_history_without_a_usable_answer_is_unavailable(routes: Routes, body: bytes) -> None:
    routes.get(HISTORY, body=body)
    with pytest.raises(OneNetUnavailable) as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert KEY not in str(caught.value)


async def test_history_network_trouble_is_unavailable_without_the_key(routes: Routes) -> None:
    routes.get(HISTORY, exception=AnswerLost("ServerDisconnectedError: Server disconnected"))
    with pytest.raises(OneNetUnavailable, match="history") as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert KEY not in str(caught.value)


async def test_detail_returns_the_command_with_its_args(routes: Routes) -> None:
    detail = {**history_item(1), "args": "reboot now"}
    del detail["cmd_uuid"]
    routes.get(
        f"{BASE}/nbiot/offline/history/{UUID}?imei=861234567890123", body=answer(data=detail)
    )
    got = await OneNetClient(routes.transport, BASE, KEY).detail("861234567890123", UUID)
    assert got["args"] == "reboot now"


async def test_detail_with_an_errno_is_unavailable_and_names_it(routes: Routes) -> None:
    routes.get(f"{BASE}/nbiot/offline/history/{UUID}?imei=1", body=answer(3, "bad uuid"))
    with pytest.raises(OneNetUnavailable, match="errno 3 bad uuid"):
        await OneNetClient(routes.transport, BASE, KEY).detail("1", UUID)


async def test_cancel_says_cancelled_or_carries_the_refusing_errno(routes: Routes) -> None:
    url = f"{BASE}/nbiot/offline/cancel/{UUID}?imei=861234567890123"
    routes.put(url, body=answer())
    routes.put(url, body=answer(5006, "system logic limit"))
    client = OneNetClient(routes.transport, BASE, KEY)
    done = await client.cancel("861234567890123", UUID)
    refused = await client.cancel("861234567890123", UUID)
    assert done == CancelResult(UUID, cancelled=True, http_status=200)
    assert (refused.uuid, refused.cancelled, refused.http_status) == (UUID, False, 200)
    assert refused.refusal is not None
    assert (refused.refusal.verdict, refused.refusal.errno) == (Verdict.REJECTED, 5006)
    routes.put(url, exception=AnswerLost("ClientConnectionError: reset"))
    with pytest.raises(OneNetUnavailable):
        await client.cancel("861234567890123", UUID)


async def test_follow_ups_answered_by_a_proxy_page_raise_misrouted(routes: Routes) -> None:
    page = {"status": 403, "body": b"<html>Forbidden</html>", "content_type": "text/html"}
    routes.get(HISTORY, **page)
    routes.get(f"{BASE}/nbiot/offline/history/{UUID}?imei=1", **page)
    client = OneNetClient(routes.transport, BASE, KEY)
    with pytest.raises(Misrouted) as history:
        await client.history("861234567890123", datetime.now(BEIJING))
    with pytest.raises(Misrouted) as detail:
        await client.detail("1", UUID)
    assert str(history.value) == "history: HTTP 403 (text/html): not a OneNET answer"
    assert str(detail.value) == "detail: HTTP 403 (text/html): not a OneNET answer"
    assert history.value.misrouted is True
    assert isinstance(history.value, OneNetUnavailable)


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"<html>maintenance</html>"), (502, b"<html>Bad Gateway</html>"),
     (404, answer(5006, "system logic limit"))],
)  # fmt: skip
async def test_follow_ups_answered_by_onenet_or_a_gateway_are_not_misrouted(
    routes: Routes, status: int, body: bytes
) -> None:
    routes.get(HISTORY, status=status, body=body, content_type="text/html")
    with pytest.raises(OneNetUnavailable) as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert not isinstance(caught.value, Misrouted)


def test_execute_url_is_the_base_and_path_without_query_or_key() -> None:
    client = OneNetClient(MockTransport(lambda req: Response(500)), BASE + "/", KEY)
    assert client.execute_url == "http://onenet.test/nbiot/execute/offline"


# -- OneNET's clock: probe and the dates of follow-up answers --------------------------------

DATE = "Wed, 01 May 2024 04:00:00 GMT"
DATE_UNIX = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC).timestamp()


async def test_probe_asks_for_one_history_item_and_is_accepted_with_the_server_date(
    routes: Routes,
) -> None:
    routes.get(HISTORY, body=answer(data={"total_count": 0, "items": []}), headers={"Date": DATE})
    start = datetime(2030, 1, 1, 2, 0, 0, tzinfo=UTC)
    outcome = await OneNetClient(routes.transport, BASE, KEY).probe("861234567890123", start)
    assert outcome == Outcome(Verdict.ACCEPTED, errno=0, http_status=200, server_date=DATE_UNIX)
    [(method, url, kwargs)] = sent(routes)
    assert (method, url.path) == ("GET", "/nbiot/offline/history")
    assert dict(url.query) == {
        "imei": "861234567890123",
        "start": "2030-01-01T10:00:00",
        "page": "1",
        "per_page": "1",
    }
    assert kwargs["headers"] == {"api-key": KEY}


@pytest.mark.parametrize(
    ("status", "body", "verdict", "errno"),
    [(200, answer(1, "auth failed"), Verdict.REJECTED, 1),
     (200, answer(7, "service internal error"), Verdict.TRANSIENT, 7),
     (200, b"<html>maintenance</html>", Verdict.IN_DOUBT, None),
     (404, b"<html>Not Found</html>", Verdict.TRANSIENT, None),
     (302, answer(), Verdict.IN_DOUBT, 0)],
)  # fmt: skip
async def test_probe_answers_other_than_success_are_judged_as_execute_answers(
    routes: Routes,
    status: int,
    body: bytes,
    verdict: Verdict,
    errno: int | None,
) -> None:
    routes.get(HISTORY, status=status, body=body, headers={"Date": DATE})
    outcome = await OneNetClient(routes.transport, BASE, KEY).probe(
        "861234567890123", datetime.now(UTC)
    )
    assert (outcome.verdict, outcome.errno, outcome.uuid) == (verdict, errno, None)
    assert outcome.server_date == DATE_UNIX


async def test_probe_network_failures_are_outcomes_never_raised(routes: Routes) -> None:
    routes.get(HISTORY, exception=ConnectTimeout("ConnectionTimeoutError: connect timed out"))
    routes.get(HISTORY, exception=AnswerLost("ServerDisconnectedError: Server disconnected"))
    routes.get(HISTORY, exception=ReadTimeout("SocketTimeoutError: Timeout on reading data"))
    client = OneNetClient(routes.transport, BASE, KEY)
    refused, cut, late = [await client.probe("861234567890123", datetime.now(UTC)) for _ in "abc"]
    assert (refused.verdict, refused.reached) == (Verdict.TRANSIENT, False)
    assert (cut.verdict, cut.reached, cut.timed_out) == (Verdict.IN_DOUBT, True, False)
    assert (late.verdict, late.timed_out) == (Verdict.IN_DOUBT, True)


async def test_probe_reads_the_emulators_offset_clock() -> None:
    now = 1_900_000_000.0
    emulator = Emulator(Faults(clock_offset_s=-7200.0), clock=lambda: now)
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).probe(
            "861234567890123", datetime.fromtimestamp(now, UTC)
        )
    assert (outcome.verdict, outcome.uuid) == (Verdict.ACCEPTED, None)
    assert outcome.server_date == now - 7200.0


async def test_history_awaits_before_page_ahead_of_each_page_and_reports_each_date(
    routes: Routes,
) -> None:
    events: list[str] = []
    pages = paged(250)

    def respond(req: Request) -> Response:
        page = URL(req.url, encoded=True).query["page"]
        events.append(f"page {page}")
        result = pages(req)
        return Response(result.status, result.body, {"Date": f"Wed, 01 May 2024 04:00:0{page} GMT"})

    async def before_page() -> None:
        events.append("pace")

    dates: list[float] = []
    routes.get(HISTORY, callback=respond, repeat=True)
    items = await OneNetClient(routes.transport, BASE, KEY).history(
        "861234567890123", datetime.now(UTC), before_page=before_page, on_date=dates.append
    )
    assert len(items) == 250
    assert events == ["pace", "page 1", "pace", "page 2", "pace", "page 3"]
    assert dates == [DATE_UNIX + 1, DATE_UNIX + 2, DATE_UNIX + 3]


async def test_detail_reports_the_server_date_even_when_the_answer_is_an_error(
    routes: Routes,
) -> None:
    url = f"{BASE}/nbiot/offline/history/{UUID}?imei=1"
    routes.get(url, body=answer(data={"args": "x"}), headers={"Date": DATE})
    routes.get(url, body=answer(3, "bad uuid"), headers={"Date": DATE})
    routes.get(url, body=answer(data={"args": "x"}), headers={"Date": "not a date"})
    dates: list[float] = []
    client = OneNetClient(routes.transport, BASE, KEY)
    assert (await client.detail("1", UUID, on_date=dates.append))["args"] == "x"
    with pytest.raises(OneNetUnavailable):
        await client.detail("1", UUID, on_date=dates.append)
    await client.detail("1", UUID, on_date=dates.append)
    assert dates == [DATE_UNIX, DATE_UNIX]


async def test_execute_outcome_carries_the_server_date(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}), headers={"Date": DATE})
    outcome = await OneNetClient(routes.transport, BASE, KEY).execute_offline(request())
    assert (outcome.uuid, outcome.server_date) == (UUID, DATE_UNIX)


# -- a hung server, timeouts ------------------------------------------------------------------


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
        outcome = await OneNetClient(AiohttpTransport(session), BASE, KEY).execute_offline(
            request()
        )
    assert (outcome.verdict, outcome.reached, outcome.timed_out) == (verdict, reached, timed_out)


async def test_a_server_that_never_answers_is_in_doubt_and_timed_out() -> None:
    emulator = Emulator(Faults(hang_rate=1.0))
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve_emulator(emulator) as url, aiohttp.ClientSession(timeout=timeout) as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).execute_offline(request())
    assert (outcome.verdict, outcome.timed_out, outcome.reached) == (Verdict.IN_DOUBT, True, True)
    assert outcome.error.startswith("no answer in time: ")
    assert emulator.accepted() == []


# -- answers from the emulator's faults ------------------------------------------------------


def emulator_request() -> ExecuteRequest:
    return request(valid_time=None, expired_time="2099-01-01T00:00:00")


async def test_a_truncated_answer_is_in_doubt_and_the_command_exists() -> None:
    emulator = Emulator(Faults(truncate_rate=1.0))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).execute_offline(
            emulator_request()
        )
    assert (outcome.verdict, outcome.misrouted) == (Verdict.IN_DOUBT, False)
    assert re.fullmatch(r"HTTP 200: answer is not JSON \(\d+ bytes\)", outcome.error)
    assert len(emulator.accepted()) == 1


async def test_a_proxy_page_in_front_is_misrouted_for_execute_and_follow_ups() -> None:
    emulator = Emulator(Faults(html_status=407))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        outcome = await client.execute_offline(emulator_request())
        with pytest.raises(Misrouted, match="history: HTTP 407 "):
            await client.history("861234567890123", datetime.now(UTC))
    assert (outcome.verdict, outcome.misrouted) == (Verdict.TRANSIENT, True)
    assert outcome.error == "HTTP 407 (text/html): not a OneNET answer"
    assert emulator.accepted() == []


async def test_gzip_answers_are_inflated_and_read() -> None:
    emulator = Emulator(Faults(compress=True, affect_reads=True))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        outcome = await client.execute_offline(emulator_request())
        items = await client.history("861234567890123", datetime(2000, 1, 1, tzinfo=UTC))
    assert outcome.verdict is Verdict.ACCEPTED
    assert [item.uuid for item in items] == [outcome.uuid]


BOMB = 32 * MAX_BODY  # inflated bytes; about 32 KB compressed


async def test_a_gzip_bomb_answer_is_in_doubt_and_never_inflated_whole() -> None:
    emulator = Emulator(Faults(bomb_bytes=BOMB))
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, KEY)
        first = await client.execute_offline(emulator_request())  # builds the bomb once
        tracemalloc.start()
        try:
            second = await client.execute_offline(emulator_request())
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


# -- masking the key --------------------------------------------------------------------------


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
    outcome = await OneNetClient(routes.transport, BASE, "test").execute_offline(request())
    assert outcome.error == masked


async def test_a_key_is_masked_percent_encoded_in_a_url_too(routes: Routes) -> None:
    key = "Ab+cd/Ef=="
    routes.post(EXECUTE, body=answer(1, f"bad url ?api-key=Ab%2Bcd%2FEf%3D%3D&x=1 and {key}."))
    outcome = await OneNetClient(routes.transport, BASE, key).execute_offline(request())
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
