"""What one OneNET answer means: ``Verdict``, ``Outcome`` and ``classify`` (the errno table), once;
and ``history_item``, one history list item checked.

The rules, from OneNET's documentation (see docs/onenet-api.md) and from what a fleet meets
in front of it (gateways, proxies, a wrong base path):

- A usable answer is a JSON object with an integer ``errno``; 0 with a uuid is a created command.
  The newer platform may answer ``{"code", "msg", "data"}`` instead: a ``code`` is an errno, with
  the same meanings; a body with both is read by its ``errno`` (``answer_errno``, ``answer_text``).
- A 2xx answer that is not usable (broken JSON, HTML, no errno, errno 0 without a uuid, too big)
  came from OneNET after it took the request: the command may exist, so it is ``in_doubt``.
- A 3xx/4xx answer without an integer errno did not come from OneNET (an HTML 404 from a wrong
  path, a proxy's 403/407): nothing was created; it is ``transient`` and ``misrouted``.
- 429 is throttling; 502 and 504 are in doubt (a gateway passed the request on and got a broken
  answer, or none in time); other 5xx are transient.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Final

import orjson

from dispatcher.errors import OneNetUnavailable
from dispatcher.times import parse_onenet

__all__ = [
    "CONFIRM_STATUS",
    "MAX_RETRY_AFTER",
    "HistoryItem",
    "Outcome",
    "Verdict",
    "answer_errno",
    "answer_text",
    "classify",
    "classify_oversized",
    "command_result",
    "confirm_status_name",
    "detail_item",
    "history_item",
    "listed_uuid",
    "misrouted_error",
    "parse_http_date",
    "parse_retry_after",
]

MAX_RETRY_AFTER: Final = 600.0  # seconds; a longer Retry-After is taken as this long
_ERROR_TEXT: Final = 200  # characters of OneNET's error text kept

# A uuid worth recording: OneNET's are 8-4-4-4-12 hex; anything token-like passes, nothing else.
_UUID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
_INT32 = range(-(2**31), 2**31)
_NOT_JSON: Final = object()


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One cached command as OneNET's history lists it."""

    uuid: str
    type: str
    imei: str
    create_time: datetime | None
    valid_time: datetime | None
    expired_time: datetime | None
    send_status: int | None
    trigger_msg: int | None
    send_time: datetime | None = None  # when it was sent to the device
    confirm_time: datetime | None = None  # when the device answered
    confirm_status: str | None = None  # the device's answer by name (SUCCESS, TIME_OUT, ...)


class Verdict(StrEnum):
    """What an answer means for the command that was sent."""

    ACCEPTED = "accepted"  # errno 0 with a uuid
    REJECTED = "rejected"  # any errno not retried (errno 1 included: the breaker looks at errno)
    TRANSIENT = "transient"  # HTTP 429/5xx, errno 7, 5117, connect failed, misrouted: retry
    RETRY_ONCE = "retry_once"  # errno 5108: retried once, then rejected
    IN_DOUBT = "in_doubt"  # the request may have reached OneNET but no usable answer came back


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result, decided once by ``classify`` (or by the network failure)."""

    verdict: Verdict
    uuid: str | None = None
    errno: int | None = None
    error: str = ""  # errno text, or what went wrong (never contains the api-key)
    http_status: int | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header
    throttled: bool = False  # HTTP 429, errno 7, or Retry-After: slow the whole pool
    reached: bool = True  # False: no connection to OneNET could be made (nothing was sent)
    misrouted: bool = False  # a 3xx/4xx that is not OneNET's (wrong path, a proxy): not created
    timed_out: bool = False  # sent, but no answer within the session's timeout (in doubt)
    server_date: float | None = None  # unix seconds, from the answer's Date header


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 10.2.3), or None."""
    text = value.strip()
    try:
        seconds = float(text) if text.isascii() and text[:1].isdigit() else None
    except ValueError:
        seconds = None
    if seconds is None:
        when = parse_http_date(text)
        if when is None:
            return None
        seconds = max(when - (time.time() if now is None else now), 0.0)
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER if seconds > 0 else None
    return min(seconds, MAX_RETRY_AFTER)


@lru_cache(maxsize=16)  # a server's Date changes once a second: most answers hit the cache
def parse_http_date(text: str) -> float | None:
    """Unix seconds from an HTTP date (RFC 9110 5.6.7, e.g. a Date header), or None."""
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": UTC, source unknown (RFC 5322 3.3)
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def _header(headers: Mapping[str, str], name: str, lower: str) -> str | None:
    return headers.get(name) or headers.get(lower)


def _content_type(headers: Mapping[str, str]) -> str:
    value = _header(headers, "Content-Type", "content-type")
    kind = value.split(";", 1)[0].strip().lower()[:60] if value else ""
    return kind or "no content type"


def answer_errno(doc: Mapping[str, object], status: int) -> object:
    """The errno field of a decoded answer object, as given (an int is yet to be checked):
    its ``errno``, else its ``code`` (the newer platform's shape); a body with both is read by
    its ``errno``.

    A ``code`` equal to a non-2xx HTTP status is that status echoed by whatever answered (a
    gateway's ``{"code": 404, "msg": "Not Found"}``), not one of OneNET's errnos: None.
    """
    if "errno" in doc:
        return doc["errno"]
    code = doc.get("code")
    if type(code) is int and code == status and not 200 <= status < 300:
        return None
    return code


def answer_text(doc: Mapping[str, object]) -> str:
    """The error text of a decoded answer object (``error``, or the newer shape's ``msg``), cut
    to 200 characters; empty when there is none."""
    text = doc.get("error") if "errno" in doc else doc.get("msg")
    return text[:_ERROR_TEXT] if type(text) is str else ""


def misrouted_error(status: int, headers: Mapping[str, str], detail: str = "") -> str:
    """The error text of an answer that is not OneNET's, e.g. 'HTTP 404 (text/html): not a
    OneNET answer'."""
    text = f"HTTP {status} ({_content_type(headers)}): not a OneNET answer"
    return f"{text} ({detail})" if detail else text


def classify(
    status: int, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> Outcome:
    """Turn one HTTP answer into an Outcome: the errno table, in one place (never raises).

    ``now`` (unix seconds) is only used for a Retry-After given as an HTTP-date.
    """
    hint = _header(headers, "Retry-After", "retry-after")
    retry_after = parse_retry_after(hint, now) if hint else None
    date = _header(headers, "Date", "date")
    verdict, uuid, errno, error, misrouted = _judge(status, body, headers)
    return Outcome(
        verdict,
        uuid,
        errno,
        error,
        status,
        retry_after,
        bool(hint) or status == 429 or errno == 7,
        misrouted=misrouted,
        server_date=parse_http_date(date) if date else None,
    )


def _judge(
    status: int, body: bytes, headers: Mapping[str, str]
) -> tuple[Verdict, str | None, int | None, str, bool]:
    """(verdict, uuid, errno, error, misrouted) of one answer."""
    if status == 429:
        return Verdict.TRANSIENT, None, None, "HTTP 429", False
    if status in (502, 504):
        # A gateway passed the request on to OneNET and got a broken answer (502) or none in time
        # (504): the request went through, the command may exist.
        return Verdict.IN_DOUBT, None, None, f"HTTP {status}", False
    if status >= 500:
        return Verdict.TRANSIENT, None, None, f"HTTP {status}", False
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = _NOT_JSON
    errno = answer_errno(doc, status) if type(doc) is dict else None
    ok_status = 200 <= status < 300
    if type(errno) is not int or errno not in _INT32:
        if not ok_status:
            # Every OneNET answer carries an errno: this one came from something else.
            detail = "" if doc is _NOT_JSON else "JSON without an integer errno"
            return Verdict.TRANSIENT, None, None, misrouted_error(status, headers, detail), True
        if doc is _NOT_JSON:
            error = f"HTTP {status}: answer is not JSON ({len(body)} bytes)"
        elif type(doc) is not dict:
            error = f"HTTP {status}: answer is not a JSON object"
        else:
            error = f"HTTP {status}: answer without an integer errno"
        # OneNET took the request and its answer is unusable: the command may have been created.
        return Verdict.IN_DOUBT, None, None, error, False
    if errno == 0:
        data = doc.get("data")
        uuid = data.get("uuid") if type(data) is dict else None
        if ok_status and type(uuid) is str and _UUID.fullmatch(uuid):
            return Verdict.ACCEPTED, uuid, 0, "", False
        # Success said, but no command id to record: the command probably exists; find it.
        return Verdict.IN_DOUBT, None, 0, f"HTTP {status}: errno 0 without a usable uuid", False
    text = answer_text(doc)
    if errno == 7 or errno == 5117:
        return Verdict.TRANSIENT, None, errno, text, False
    if errno == 5108:
        return Verdict.RETRY_ONCE, None, errno, text, False
    return Verdict.REJECTED, None, errno, text, False


def classify_oversized(status: int, headers: Mapping[str, str], limit: int) -> Outcome:
    """An answer whose body was larger than ``limit`` bytes (not read whole), as ``classify``
    would judge an unusable body with this status."""
    if status >= 500 or status == 429:
        return classify(status, b"", headers)
    outcome = classify(status, b"\x00", headers)  # the verdict of a non-JSON body
    if outcome.misrouted:
        error = misrouted_error(status, headers, f"larger than {limit} bytes")
    else:
        error = f"HTTP {status}: answer larger than {limit} bytes"
    return replace(outcome, error=error)


def history_item(raw: object, imei: str) -> HistoryItem:
    """One history list item, checked; OneNetUnavailable when it cannot be trusted for matching."""
    if type(raw) is not dict or type(raw.get("cmd_uuid")) is not str or not raw["cmd_uuid"]:
        raise OneNetUnavailable(f"history of {imei}: an item without a cmd_uuid")
    uuid: str = raw["cmd_uuid"]
    kind = raw.get("type")
    owner = raw.get("imei")
    return HistoryItem(
        uuid=uuid,
        type=kind if type(kind) is str else "",
        imei=owner if type(owner) is str else imei,
        create_time=_time(raw, "create_time", uuid),
        valid_time=_time(raw, "valid_time", uuid),
        expired_time=_time(raw, "expired_time", uuid),
        send_status=_int(raw, "send_status", uuid),
        trigger_msg=_int(raw, "trigger_msg", uuid),
        # Delivery times only inform: one OneNET wrote oddly is left out, not fatal to the list.
        send_time=_time_or_none(raw, "send_time"),
        confirm_time=_time_or_none(raw, "confirm_time"),
        confirm_status=confirm_status_name(raw.get("confirm_status")),
    )


def detail_item(raw: dict[str, object], imei: str, uuid: str) -> tuple[HistoryItem, str | None]:
    """A command's detail as a history item, with its ``cmd_result`` as text (None when the
    device has not answered); OneNetUnavailable when its fields cannot be trusted."""
    item = history_item({**raw, "cmd_uuid": uuid}, imei)
    return item, command_result(raw.get("cmd_result"))


_RESULT_TEXT: Final = 2048  # characters of a cmd_result kept (a payload is at most 2 KB)


def command_result(value: object) -> str | None:
    """A ``cmd_result`` as text: a string as given, any other JSON value as JSON; capped."""
    if value is None:
        return None
    text = value if type(value) is str else orjson.dumps(value).decode()
    return text[:_RESULT_TEXT]


# confirm_status codes and their names (docs/onenet-api.md): OneNET gives either.
CONFIRM_STATUS: Final = (
    "SUCCESS", "METHOD_NOT_ALLOWED", "FORBIDDEN", "NOT_FOUND", "INTERNAL_SERVER_ERROR", "TIME_OUT",
    "REQ_PARAM_ERROR", "RESP_ERROR", "UNAUTHORIZED", "BAD_REQUEST", "NOT_ACCEPTABLE",
    "UNSUPPORTED_CONTENT_FORMAT", "OFFLINE", "ADDR_OCCUPIED",
)  # fmt: skip


def confirm_status_name(value: object) -> str | None:
    """A confirm_status by name: a code (an int or a digit string) becomes its name, a name
    stays as given (capped), an unknown code is kept as its number; None when absent."""
    if value is None or value == "":
        return None
    if type(value) is str and value.strip().isdigit():
        value = int(value.strip())
    if type(value) is int:
        return CONFIRM_STATUS[value] if 0 <= value < len(CONFIRM_STATUS) else str(value)
    return str(value)[:64]


def listed_uuid(raw: object) -> str | None:
    """The uuid of a history item OneNET listed, when it has one (whatever its other fields)."""
    if type(raw) is dict and type(raw.get("cmd_uuid")) is str and raw["cmd_uuid"]:
        return str(raw["cmd_uuid"])
    return None


def _time(raw: dict[str, object], key: str, uuid: str) -> datetime | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is str:
        try:
            return parse_onenet(value)
        except ValueError:
            pass
    raise OneNetUnavailable(f"history item {uuid}: {key} {str(value)[:40]!r} is not a time")


def _time_or_none(raw: dict[str, object], key: str) -> datetime | None:
    value = raw.get(key)
    if type(value) is str and value:
        try:
            return parse_onenet(value)
        except ValueError:
            return None
    return None


def _int(raw: dict[str, object], key: str, uuid: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is int:
        return int(value)
    if type(value) is str and value.strip().isdigit():  # numbers sometimes come as strings
        return int(value.strip())
    raise OneNetUnavailable(f"history item {uuid}: {key} {str(value)[:40]!r} is not an integer")
