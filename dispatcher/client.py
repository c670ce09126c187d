"""The OneNET client: one aiohttp session, four calls, and the errno table (``classify``), once.

``execute_offline`` never raises for network trouble: every answer, and every failure to get one,
becomes an ``Outcome``. A failure before the request could have left (connect refused, DNS, connect
timeout) is ``transient``; one after it may have reached OneNET (disconnect, read timeout, broken
body) is ``in_doubt``, to be settled against the history rather than sent again.

The follow-up calls (``history``, ``detail``) raise ``OneNetUnavailable`` when they get no usable
answer. The api-key travels only in the ``api-key`` header and is never put into a message.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from dispatcher.errors import OneNetUnavailable
from dispatcher.times import format_onenet, parse_onenet

__all__ = [
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "ExecuteRequest",
    "HistoryItem",
    "OneNetClient",
    "Outcome",
    "Verdict",
    "classify",
    "parse_retry_after",
]

MAX_BODY: Final = 1 << 20  # bytes; OneNET's answers are tiny, anything this big is not one
MAX_RETRY_AFTER: Final = 600.0  # seconds; a longer Retry-After is taken as this long
PER_PAGE: Final = 100  # history items per page (the most OneNET's list calls give)
MAX_PAGES: Final = 1000  # a history longer than this is not trusted to be complete
_ERROR_TEXT: Final = 200  # characters of OneNET's error text kept

# A uuid worth recording: OneNET's are 8-4-4-4-12 hex; anything token-like passes, nothing else.
_UUID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
# Query values that need no percent-encoding (IMEIs, OneNET timestamps).
_PLAIN = re.compile(r"[0-9A-Za-z:._~-]*")
_INT32 = range(-(2**31), 2**31)


class Verdict(StrEnum):
    """What an answer means for the command that was sent."""

    ACCEPTED = "accepted"  # errno 0 with a uuid
    REJECTED = "rejected"  # any errno not retried (errno 1 included: the breaker looks at errno)
    TRANSIENT = "transient"  # HTTP 429/5xx, errno 7, 5117, connect failed, non-JSON body: retry
    RETRY_ONCE = "retry_once"  # errno 5108: retried once, then rejected
    IN_DOUBT = "in_doubt"  # the request may have reached OneNET but the answer was lost


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


@dataclass(frozen=True, slots=True)
class ExecuteRequest:
    """One POST, every value final (times already resolved and formatted)."""

    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    expired_time: str
    valid_time: str | None
    args: str | None
    retry: int
    timeout: int
    trigger_msg: int


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


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 10.2.3), or None."""
    text = value.strip()
    try:
        seconds = float(text) if text.isascii() and text[:1].isdigit() else None
    except ValueError:
        seconds = None
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(text)
            if when.tzinfo is None:  # "-0000": UTC, source unknown (RFC 5322 3.3)
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError, OSError):
            return None
        seconds = max(seconds, 0.0)
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER if seconds > 0 else None
    return min(seconds, MAX_RETRY_AFTER)


def classify(
    status: int, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> Outcome:
    """Turn one HTTP answer into an Outcome: the errno table, in one place (never raises).

    ``now`` (unix seconds) is only used for a Retry-After given as an HTTP-date.
    """
    hint = headers.get("Retry-After") or headers.get("retry-after")
    retry_after = parse_retry_after(hint, now) if hint else None
    throttled = bool(hint)
    if status == 429:
        return Outcome(Verdict.TRANSIENT, None, None, "HTTP 429", status, retry_after, True)
    if status == 504:
        # A gateway gave up waiting for OneNET: the request went through, the command may exist.
        return Outcome(Verdict.IN_DOUBT, None, None, "HTTP 504", status, retry_after, throttled)
    if status >= 500:
        return Outcome(
            Verdict.TRANSIENT, None, None, f"HTTP {status}", status, retry_after, throttled
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        error = f"HTTP {status}: answer is not JSON ({len(body)} bytes)"
        return Outcome(Verdict.TRANSIENT, None, None, error, status, retry_after, throttled)
    if type(doc) is not dict:
        error = f"HTTP {status}: answer is not a JSON object"
        return Outcome(Verdict.TRANSIENT, None, None, error, status, retry_after, throttled)
    errno = doc.get("errno")
    ok_status = 200 <= status < 300
    if errno == 0 and type(errno) is int:
        data = doc.get("data")
        uuid = data.get("uuid") if type(data) is dict else None
        if ok_status and type(uuid) is str and _UUID.fullmatch(uuid):
            return Outcome(Verdict.ACCEPTED, uuid, 0, "", status, retry_after, throttled)
        # Success said, but no command id to record: the command probably exists; find it.
        error = f"HTTP {status}: errno 0 without a usable uuid"
        return Outcome(Verdict.IN_DOUBT, None, 0, error, status, retry_after, throttled)
    text = doc.get("error")
    text = text[:_ERROR_TEXT] if type(text) is str else ""
    if type(errno) is not int or errno not in _INT32:
        if ok_status and _looks_created(errno, doc.get("data")):
            error = f"HTTP {status}: success-like answer with a malformed errno"
            return Outcome(Verdict.IN_DOUBT, None, None, error, status, retry_after, throttled)
        error = f"HTTP {status}: answer without an integer errno"
        return Outcome(Verdict.TRANSIENT, None, None, error, status, retry_after, throttled)
    if errno == 7:
        return Outcome(Verdict.TRANSIENT, None, 7, text, status, retry_after, True)
    if errno == 5117:
        return Outcome(Verdict.TRANSIENT, None, 5117, text, status, retry_after, throttled)
    if errno == 5108:
        return Outcome(Verdict.RETRY_ONCE, None, 5108, text, status, retry_after, throttled)
    return Outcome(Verdict.REJECTED, None, errno, text, status, retry_after, throttled)


def _looks_created(errno: object, data: object) -> bool:
    """Whether a malformed answer still reads as a success (errno "0", or a uuid in data)."""
    if errno in ("0", 0.0, False):
        return True
    return type(data) is dict and data.get("uuid") not in (None, "")


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY (not read further)."""
    length = resp.content_length
    if length is not None:
        return await resp.read() if length <= MAX_BODY else None
    chunks: list[bytes] = []
    size = 0
    content = resp.content
    while chunk := await content.read(65536):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _plain(value: str) -> str:
    """A query value as sent: unchanged when it needs no escaping (the usual case)."""
    return value if _PLAIN.fullmatch(value) else quote(value, safe=":")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}"[:300] if text else name


class OneNetClient:
    """OneNET's cached-command API over one aiohttp session (the caller owns it and its timeout)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._execute = self._base + "/nbiot/execute/offline?imei="
        self._key_only = {"api-key": api_key}
        self._with_body = {"api-key": api_key, "Content-Type": "application/json"}

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        """Create one cached execute command; never raises for network trouble."""
        url = (
            f"{self._execute}{req.imei}&obj_id={req.obj_id}&obj_inst_id={req.obj_inst_id}"
            f"&res_id={req.res_id}&expired_time={req.expired_time}&retry={req.retry}"
            f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
        )
        plain = req.imei + req.expired_time
        if req.valid_time is not None:
            url += "&valid_time=" + req.valid_time
            plain += req.valid_time
        if not _PLAIN.fullmatch(plain):
            url = self._execute_url_escaped(req)
        if req.args is None:
            body, headers = None, self._key_only
        else:
            try:
                body = orjson.dumps({"args": req.args})
            except TypeError:
                return Outcome(Verdict.REJECTED, error="args cannot be encoded as JSON text")
            headers = self._with_body
        try:
            async with self._session.post(
                URL(url, encoded=True), data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await _read_capped(resp)
                status = resp.status
                if raw is None:
                    error = f"HTTP {status}: answer larger than {MAX_BODY} bytes"
                    return Outcome(Verdict.TRANSIENT, error=error, http_status=status)
                outcome = classify(status, raw, resp.headers)
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.InvalidURL,
        ) as exc:
            # Nothing left this host: safe to send again.
            error = self._clean("not sent: " + _describe(exc))
            return Outcome(Verdict.TRANSIENT, error=error, reached=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The request may have reached OneNET; only its history can tell.
            return Outcome(Verdict.IN_DOUBT, error=self._clean("answer lost: " + _describe(exc)))
        if outcome.error and outcome.verdict is not Verdict.ACCEPTED and self._key in outcome.error:
            return _replace_error(outcome, self._clean(outcome.error))
        return outcome

    def _execute_url_escaped(self, req: ExecuteRequest) -> str:
        url = (
            f"{self._base}/nbiot/execute/offline?imei={_plain(req.imei)}&obj_id={req.obj_id}"
            f"&obj_inst_id={req.obj_inst_id}&res_id={req.res_id}"
            f"&expired_time={_plain(req.expired_time)}&retry={req.retry}"
            f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
        )
        if req.valid_time is not None:
            url += "&valid_time=" + _plain(req.valid_time)
        return url

    async def history(
        self, imei: str, start: datetime, end: datetime | None = None
    ) -> list[HistoryItem]:
        """Every cached command of ``imei`` created from ``start`` (to ``end``), all pages, oldest
        first; raises OneNetUnavailable when any page cannot be had or read."""
        query = f"imei={_plain(imei)}&start={_plain(format_onenet(start))}"
        if end is not None:
            query += f"&end={_plain(format_onenet(end))}"
        items: list[HistoryItem] = []
        seen: set[str] = set()
        for page in range(1, MAX_PAGES + 1):
            url = (
                f"{self._base}/nbiot/offline/history?{query}"
                f"&page={page}&per_page={PER_PAGE}&sort=ASC"
            )
            data = await self._call("GET", url, "history")
            if type(data) is not dict or type(data.get("items")) is not list:
                raise OneNetUnavailable(f"history of {imei}: answer without an item list")
            listed: list[object] = data["items"]
            for raw in listed:
                item = _history_item(raw, imei)
                if item.uuid not in seen:  # pages can shift while read: keep each command once
                    seen.add(item.uuid)
                    items.append(item)
            total = data.get("total_count")
            if len(listed) < PER_PAGE or (type(total) is int and len(items) >= total):
                if type(total) is int and len(items) < total:
                    raise OneNetUnavailable(
                        f"history of {imei}: {len(items)} of {total} commands listed"
                    )
                return items
        raise OneNetUnavailable(f"history of {imei}: more than {MAX_PAGES} pages")

    async def detail(self, imei: str, uuid: str) -> dict[str, object]:
        """One cached command with its ``args``; OneNetUnavailable without a usable answer."""
        url = f"{self._base}/nbiot/offline/history/{quote(uuid, safe='')}?imei={_plain(imei)}"
        data = await self._call("GET", url, "detail")
        if type(data) is not dict:
            raise OneNetUnavailable(f"detail of {uuid}: answer without a command")
        return data

    async def cancel(self, imei: str, uuid: str) -> Outcome:
        """Cancel a waiting command: ACCEPTED (with its uuid) when cancelled, else the errno's
        verdict (e.g. REJECTED when it was already sent); raises OneNetUnavailable on network
        trouble."""
        url = f"{self._base}/nbiot/offline/cancel/{quote(uuid, safe='')}?imei={_plain(imei)}"
        status, raw, headers = await self._exchange("PUT", url, "cancel")
        outcome = classify(status, raw, headers)
        if outcome.errno == 0 and 200 <= status < 300:
            return Outcome(Verdict.ACCEPTED, uuid, 0, "", status)
        if outcome.error and self._key in outcome.error:
            return _replace_error(outcome, self._clean(outcome.error))
        return outcome

    async def _exchange(
        self, method: str, url: str, what: str
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            async with self._session.request(
                method, URL(url, encoded=True), headers=self._key_only, allow_redirects=False
            ) as resp:
                raw = await _read_capped(resp)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OneNetUnavailable(self._clean(f"{what}: {_describe(exc)}")) from exc
        if raw is None:
            raise OneNetUnavailable(f"{what}: answer larger than {MAX_BODY} bytes")
        return status, raw, ({"Retry-After": retry_after} if retry_after else {})

    async def _call(self, method: str, url: str, what: str) -> object:
        """The ``data`` of a successful answer; OneNetUnavailable otherwise."""
        status, raw, _ = await self._exchange(method, url, what)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise OneNetUnavailable(f"{what}: HTTP {status}, answer is not JSON") from None
        errno = doc.get("errno") if type(doc) is dict else None
        if type(errno) is not int:
            raise OneNetUnavailable(f"{what}: HTTP {status}, answer without an integer errno")
        if errno != 0:
            text = doc.get("error")
            text = self._clean(text[:_ERROR_TEXT]) if type(text) is str else ""
            raise OneNetUnavailable(f"{what}: HTTP {status}, errno {errno} {text}".rstrip())
        return doc.get("data")

    def _clean(self, text: str) -> str:
        """``text`` with the api-key masked, should anything have echoed it."""
        return text.replace(self._key, "***") if self._key else text


def _replace_error(outcome: Outcome, error: str) -> Outcome:
    return Outcome(
        outcome.verdict,
        outcome.uuid,
        outcome.errno,
        error,
        outcome.http_status,
        outcome.retry_after,
        outcome.throttled,
    )


def _history_item(raw: object, imei: str) -> HistoryItem:
    """Check one history item; OneNetUnavailable when it cannot be trusted for matching."""
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
    )


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


def _int(raw: dict[str, object], key: str, uuid: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is int:
        return int(value)
    raise OneNetUnavailable(f"history item {uuid}: {key} {str(value)[:40]!r} is not an integer")
