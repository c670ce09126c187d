"""classify(): every answer (status, body, headers) becomes the right Outcome, whatever the bytes;
the errno table, throttling, gateways, misrouted pages."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.onenet.client import (
    MAX_RETRY_AFTER,
    Outcome,
    Verdict,
    classify,
    parse_retry_after,
)
from tests.support.client_calls import (
    UUID,
    answer,
)


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
