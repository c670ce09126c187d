"""The OneNET client: one aiohttp session and its calls; answers are judged by ``classify``.

``execute_offline`` and ``probe`` never raise for network trouble: every answer, and every failure
to get one, becomes an ``Outcome``. A failure before the request could have left (connect refused,
DNS, connect timeout) is ``transient``; one after it may have reached OneNET (disconnect, read
timeout, broken body) is ``in_doubt``, to be settled against the history rather than sent again.

The follow-up calls (``history``, ``detail``) raise ``OneNetUnavailable`` when they get no usable
answer, ``Misrouted`` when what answered is not OneNET. Bodies are read up to ``MAX_BODY`` bytes
*after* inflating, so a small compressed answer cannot fill the memory.

Two platforms (docs/onenet-api.md): ``onenet`` (``/nbiot/...``, header ``api-key``) and the newer
``iot-api`` (``/nb-iot/...``, header ``authorization`` with a signed token from a ``TokenSource``,
taken per request so that it is renewed during a long run). The api-key, the access key and the
token's sign travel only in their header and are never put into a message.

Tokens are dated on OneNET's clock, ``server_clock`` (the run's lane reads OneNET's clock into
the same one): OneNET judges a token's ``et`` by its own clock. Until that clock has been read
(the first answer) a token is dated on ours; when OneNET refuses a request with errno 1 (auth
failed) and the answer's Date shows that the token had lapsed by its clock, the Date is read into
``server_clock`` and the request is sent once more with a token dated on it. That is safe: a
refused request created nothing (the check of the token comes before anything is done), so it
cannot make a command twice. A second errno 1 is the key's, or the device's, and stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final, Literal
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet.answers import (
    MAX_RETRY_AFTER,
    HistoryItem,
    Outcome,
    Verdict,
    answer_errno,
    answer_text,
    classify,
    classify_oversized,
    history_item,
    listed_uuid,
    misrouted_error,
    parse_http_date,
    parse_retry_after,
)
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.requests import (
    CancelResult,
    ExecuteRequest,
    ReadRequest,
    WriteRequest,
    WriteValue,
)
from dispatcher.times import ServerClock, format_onenet

__all__ = [
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "CancelResult",
    "ExecuteRequest",
    "HistoryItem",
    "Misrouted",
    "OneNetClient",
    "Outcome",
    "Platform",
    "ReadRequest",
    "TokenSource",
    "Verdict",
    "WriteRequest",
    "WriteValue",
    "classify",
    "parse_retry_after",
]

Platform = Literal["onenet", "iot-api"]

MAX_BODY: Final = 1 << 20  # bytes, after inflating; OneNET's answers are tiny, this is not one
PER_PAGE: Final = 100  # history items per page (the most OneNET's list calls give)
MAX_PAGES: Final = 1000  # a history longer than this is not trusted to be complete
_CHUNK: Final = 65536  # bytes read at a time when the size is not known up front

# Query values that need no percent-encoding (IMEIs, OneNET timestamps).
_QUERY_SAFE = re.compile(r"[0-9A-Za-z:._~-]*")
# Characters a key can be made of (base64 and token alphabets): a key next to one of them is
# part of a longer word, not the key, and is left alone when masking.
_KEY_CHARS = "A-Za-z0-9_+/=-"


class Misrouted(OneNetUnavailable):
    """A follow-up call was answered by something that is not OneNET (a wrong base path, a
    proxy's page): nothing was done there."""

    def __init__(self, message: str, *, misrouted: bool = True) -> None:
        super().__init__(message)
        self.misrouted = misrouted


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY (not read further, connection closed).

    A compressed answer's Content-Length is its compressed size, so its inflated size is counted
    while reading: aiohttp (3.14) inflates at most one read buffer per chunk it receives and
    pauses the socket until the chunk is consumed, so stopping here stops the inflating too.
    """
    length = resp.content_length
    if length is not None and "Content-Encoding" not in resp.headers:
        if length > MAX_BODY:
            resp.close()
            return None
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    content = resp.content
    while chunk := await content.read(_CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            resp.close()  # drop the rest: neither read nor inflated
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _query_value(value: str) -> str:
    """A query value percent-encoded as sent (unchanged when it needs no escaping, as usual)."""
    return value if _QUERY_SAFE.fullmatch(value) else quote(value, safe=":")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}"[:300] if text else name


def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """The secrets as whole tokens (also percent-encoded, as in a URL query), or None if none."""
    forms = {form for key in secrets for form in (re.escape(key), re.escape(quote(key, safe="")))}
    if not forms:
        return None
    # Longest first, so that a secret is masked whole when another is a part of it.
    alternatives = "|".join(sorted(forms, key=lambda form: (-len(form), form)))
    # After "=" counts as a token start: a key is masked in "?api-key=KEY&...".
    return re.compile(rf"(?:(?<==)|(?<![{_KEY_CHARS}]))(?:{alternatives})(?![{_KEY_CHARS}])")


class OneNetClient:
    """OneNET's cached-command API over one aiohttp session (the caller owns it and its timeout).

    ``platform="onenet"``: ``/nbiot/...`` with header ``api-key``; ``"iot-api"``: the newer
    platform, ``/nb-iot/...`` with header ``authorization`` from ``token`` (required there),
    dated on ``server_clock`` (OneNET's clock; by default a new one over the token's clock).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str = "",
        *,
        platform: Platform = "onenet",
        token: TokenSource | None = None,
        server_clock: ServerClock | None = None,
    ) -> None:
        if platform == "onenet":
            if token is not None:
                raise ValueError("a token is for platform 'iot-api'; 'onenet' takes an api-key")
            prefix = "/nbiot"
        elif platform == "iot-api":
            if token is None:
                raise ValueError("platform 'iot-api' needs a token (a TokenSource)")
            prefix = "/nb-iot"
        else:
            raise ValueError(f"platform {str(platform)[:20]!r} is not 'onenet' or 'iot-api'")
        # aiohttp sends a GET or PUT again, once, when a kept-alive connection breaks under it
        # (RFC 9112's retry of idempotent requests). OneNET's cached read is created by a GET:
        # sent again, a device would be asked twice. Every retry here is the caller's own
        # decision (in doubt: settled against the history). aiohttp's TestClient sets the same.
        session._retry_connection = False
        self._session = session
        self.platform: Platform = platform
        self._base = base_url.rstrip("/")
        self._root = self._base + prefix  # every call's path starts here
        self._key = api_key
        self._token = token
        self._token_header = ""  # the token the header dicts were last built from
        self._token_et = 0  # its et
        if token is not None and server_clock is None:
            server_clock = ServerClock(token.clock)
        self.server_clock = server_clock
        """OneNET's clock as its answers show it, the one tokens are dated on (None on the
        ``onenet`` platform unless given): a lane over this client reads OneNET's clock into it."""
        # the access key and the current sign (none yet: the token is made on first use)
        self._token_secrets = token.secrets() if token is not None else ()
        self._secrets = tuple(dict.fromkeys(((api_key,) if api_key else ()) + self._token_secrets))
        self._mask = _secrets_pattern(self._secrets)
        self._execute = self._root + "/execute/offline?imei="
        # The header dicts, built once (for iot-api: again whenever the token changes).
        self._key_only = {"api-key": api_key}
        self._with_body = {"api-key": api_key, "Content-Type": "application/json"}

    @property
    def execute_url(self) -> str:
        """The URL execute commands are posted to: base URL and path, no query, no key."""
        return self._root + "/execute/offline"

    def _headers(self, body: bytes | None) -> Mapping[str, str]:
        """The headers of a request (with a body: its content type too), the token renewed
        first when it is near its ``et`` on OneNET's clock."""
        if self._token is not None:
            self._renew(self._token)
        return self._key_only if body is None else self._with_body

    def _renew(self, token: TokenSource) -> None:
        """The header dicts and the masks follow the token: rebuilt only when it changed."""
        clock = self.server_clock
        header = token.header(None if clock is None else clock.now())
        if header == self._token_header:
            return
        self._token_header = header
        self._token_et = token.et or 0
        self._key_only = {"authorization": header}
        self._with_body = {"authorization": header, "Content-Type": "application/json"}
        # An answer to a request sent just before the renewal may echo the previous sign.
        previous, self._token_secrets = self._token_secrets, token.secrets()
        api_key = (self._key,) if self._key else ()
        self._secrets = tuple(dict.fromkeys((*api_key, *self._token_secrets, *previous)))
        self._mask = _secrets_pattern(self._secrets)

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        """Create one cached execute command; never raises for network trouble."""
        url = (
            f"{self._execute}{req.imei}&obj_id={req.obj_id}&obj_inst_id={req.obj_inst_id}"
            f"&res_id={req.res_id}&expired_time={req.expired_time}&retry={req.retry}"
            f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
        )
        values = req.imei + req.expired_time
        if req.valid_time is not None:
            url += "&valid_time=" + req.valid_time
            values += req.valid_time
        if not _QUERY_SAFE.fullmatch(values):
            url = self._execute_url_escaped(req)
        if req.args is None:
            return await self._send("POST", url, None)
        try:
            body = orjson.dumps({"args": req.args})
        except TypeError:
            return Outcome(Verdict.REJECTED, error="args cannot be encoded as JSON text")
        return await self._send("POST", url, body)

    async def write_offline(self, req: WriteRequest) -> Outcome:
        """Create one cached write; never raises for network trouble."""
        query = (
            f"imei={_query_value(req.imei)}&obj_id={req.obj_id}&obj_inst_id={req.obj_inst_id}"
            f"&mode={req.mode}{self._window_query(req)}"
        )
        try:
            body = orjson.dumps({"data": [v.item() for v in req.values]})
        except TypeError:
            return Outcome(Verdict.REJECTED, error="a value cannot be encoded as JSON")
        return await self._send("POST", f"{self._root}/offline?{query}", body)

    async def read_offline(self, req: ReadRequest) -> Outcome:
        """Create one cached read; never raises for network trouble."""
        query = f"imei={_query_value(req.imei)}&obj_id={req.obj_id}"
        if req.obj_inst_id is not None:
            query += f"&obj_inst_id={req.obj_inst_id}"
            if req.res_id is not None:
                query += f"&res_id={req.res_id}"
        if req.bin2hex:
            query += "&bin2hex=true"
        query += self._window_query(req)
        return await self._send("GET", f"{self._root}/offline?{query}", None)

    @staticmethod
    def _window_query(req: WriteRequest | ReadRequest) -> str:
        """The window and delivery parameters every cached command takes."""
        query = (
            f"&expired_time={_query_value(req.expired_time)}&retry={req.retry}"
            f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
        )
        if req.valid_time is not None:
            query += "&valid_time=" + _query_value(req.valid_time)
        return query

    async def probe(self, imei: str, start: datetime) -> Outcome:
        """One cheap authenticated call (a one-item history page): ACCEPTED (uuid None) when
        OneNET answers errno 0, else judged as an execute answer; carries OneNET's clock in
        ``server_date``. Never raises for network trouble."""
        url = (
            f"{self._root}/offline/history?imei={_query_value(imei)}"
            f"&start={_query_value(format_onenet(start))}&page=1&per_page=1"
        )
        outcome = await self._send("GET", url, None)
        status = outcome.http_status
        if outcome.errno == 0 and status is not None and 200 <= status < 300:
            return replace(outcome, verdict=Verdict.ACCEPTED, uuid=None, error="")
        return outcome

    async def _send(self, method: str, url: str, body: bytes | None) -> Outcome:
        """One call whose every answer or failure is an Outcome; sent once more with a new token
        when OneNET refused it because the token had lapsed by OneNET's clock."""
        headers = self._headers(body)
        et, sent = self._token_et, self._local()
        outcome = await self._attempt(method, url, body, headers)
        if self._lapsed(outcome.errno, outcome.server_date, et, sent):
            outcome = await self._attempt(method, url, body, self._headers(body))
        return outcome

    def _local(self) -> float:
        """Our clock as ``server_clock`` reads it (0.0 without one: nothing to date)."""
        clock = self.server_clock
        return 0.0 if clock is None else clock.local()

    def _lapsed(self, errno: int | None, server_date: float | None, et: int, sent: float) -> bool:
        """Whether an errno 1 (auth failed) was the token's lapsing on OneNET's clock: the
        answer's Date (the server's time, truncated to the second) at or past the ``et`` of the
        token the request carried. Then OneNET's clock is read from that answer (the request
        left at ``sent``) and the token renewed on it; True when the renewed token is newer, and
        the request is to be sent once more with it."""
        clock, token = self.server_clock, self._token
        if token is None or clock is None or errno != 1 or server_date is None:
            return False
        if server_date < et:  # the token was still good by OneNET's clock: the key, or the device
            return False
        clock.observe(server_date, sent, clock.local())
        self._renew(token)
        return self._token_et > et

    async def _attempt(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Outcome:
        """One request whose every answer or failure is an Outcome."""
        try:
            async with self._session.request(
                method, URL(url, encoded=True), data=body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await _read_capped(resp)
                if raw is None:
                    outcome = classify_oversized(resp.status, resp.headers, MAX_BODY)
                else:
                    outcome = classify(resp.status, raw, resp.headers)
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.InvalidURL,
        ) as exc:
            # Nothing left this host: safe to send again.
            error = self._clean("not sent: " + _describe(exc))
            return Outcome(Verdict.TRANSIENT, error=error, reached=False)
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError and SocketTimeoutError too
            # Sent, and no answer in time: OneNET may be working on it; only its history can tell.
            error = self._clean("no answer in time: " + _describe(exc))
            return Outcome(Verdict.IN_DOUBT, error=error, timed_out=True)
        except (aiohttp.ClientError, OSError) as exc:
            # The request may have reached OneNET; only its history can tell.
            return Outcome(Verdict.IN_DOUBT, error=self._clean("answer lost: " + _describe(exc)))
        if outcome.error and outcome.verdict is not Verdict.ACCEPTED:
            error = self._clean(outcome.error)
            if error != outcome.error:
                return replace(outcome, error=error)
        return outcome

    def _execute_url_escaped(self, req: ExecuteRequest) -> str:
        url = (
            f"{self._execute}{_query_value(req.imei)}&obj_id={req.obj_id}"
            f"&obj_inst_id={req.obj_inst_id}&res_id={req.res_id}"
            f"&expired_time={_query_value(req.expired_time)}&retry={req.retry}"
            f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
        )
        if req.valid_time is not None:
            url += "&valid_time=" + _query_value(req.valid_time)
        return url

    async def history(
        self,
        imei: str,
        start: datetime,
        end: datetime | None = None,
        *,
        before_page: Callable[[], Awaitable[None]] | None = None,
        on_date: Callable[[float], None] | None = None,
        lenient: bool = False,
    ) -> list[HistoryItem]:
        """Every cached command of ``imei`` created from ``start`` (to ``end``), all pages, oldest
        first; raises OneNetUnavailable when any page cannot be had or read.

        ``before_page`` is awaited before each page is asked for (the caller's pace);
        ``on_date`` gets the server's clock (unix seconds) from each answer's Date header.
        ``lenient``: an item whose fields cannot be read (another job's, say) is listed by its
        uuid alone, every other field None, instead of making the whole list unreadable; for a
        caller that asks about its own uuids only (status), never for matching (reconcile).
        """
        query = f"imei={_query_value(imei)}&start={_query_value(format_onenet(start))}"
        if end is not None:
            query += f"&end={_query_value(format_onenet(end))}"
        items: list[HistoryItem] = []
        seen: set[str] = set()
        for page in range(1, MAX_PAGES + 1):
            url = f"{self._root}/offline/history?{query}&page={page}&per_page={PER_PAGE}&sort=ASC"
            if before_page is not None:
                await before_page()
            data = await self._call("GET", url, "history", on_date)
            if type(data) is not dict or type(data.get("items")) is not list:
                raise OneNetUnavailable(f"history of {imei}: answer without an item list")
            listed: list[object] = data["items"]
            for raw in listed:
                item = self._item(raw, imei, lenient)
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

    @staticmethod
    def _item(raw: object, imei: str, lenient: bool) -> HistoryItem:
        try:
            return history_item(raw, imei)
        except OneNetUnavailable:
            uuid = listed_uuid(raw) if lenient else None
            if uuid is None:
                raise
            return HistoryItem(uuid, "", imei, None, None, None, None, None)

    async def detail(
        self, imei: str, uuid: str, *, on_date: Callable[[float], None] | None = None
    ) -> dict[str, object]:
        """One cached command with its ``args``; OneNetUnavailable without a usable answer.

        ``on_date`` gets the server's clock (unix seconds) from the answer's Date header.
        """
        url = f"{self._root}/offline/history/{quote(uuid, safe='')}?imei={_query_value(imei)}"
        data = await self._call("GET", url, "detail", on_date)
        if type(data) is not dict:
            raise OneNetUnavailable(f"detail of {uuid}: answer without a command")
        return data

    async def cancel(self, imei: str, uuid: str) -> CancelResult:
        """Cancel a waiting command: ``cancelled``, or the ``refusal`` with the errno's verdict
        (e.g. REJECTED when it was already sent); raises OneNetUnavailable on network trouble."""
        url = f"{self._root}/offline/cancel/{quote(uuid, safe='')}?imei={_query_value(imei)}"
        status, raw, headers = await self._exchange("PUT", url, "cancel")
        outcome = (
            classify_oversized(status, headers, MAX_BODY)
            if raw is None
            else classify(status, raw, headers)
        )
        if outcome.errno == 0 and 200 <= status < 300:
            return CancelResult(uuid, True, status, outcome.server_date)
        error = self._clean(outcome.error)
        refusal = outcome if error == outcome.error else replace(outcome, error=error)
        return CancelResult(uuid, False, status, outcome.server_date, refusal)

    async def _exchange(
        self, method: str, url: str, what: str
    ) -> tuple[int, bytes | None, Mapping[str, str]]:
        """(status, body or None when too large, headers); OneNetUnavailable on network trouble.
        Asked once more with a new token when OneNET refused a token that had lapsed by its
        clock (as ``_send``)."""
        headers = self._headers(None)
        et, sent = self._token_et, self._local()
        answer = await self._fetch(method, url, what, headers)
        status, raw, got = answer
        if self._token is not None and raw is not None:
            judged = classify(status, raw, got)
            if self._lapsed(judged.errno, judged.server_date, et, sent):
                answer = await self._fetch(method, url, what, self._headers(None))
        return answer

    async def _fetch(
        self, method: str, url: str, what: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes | None, Mapping[str, str]]:
        """One request's (status, body or None when too large, headers)."""
        try:
            async with self._session.request(
                method, URL(url, encoded=True), headers=headers, allow_redirects=False
            ) as resp:
                raw = await _read_capped(resp)
                return resp.status, raw, resp.headers
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OneNetUnavailable(self._clean(f"{what}: {_describe(exc)}")) from exc

    async def _call(
        self, method: str, url: str, what: str, on_date: Callable[[float], None] | None
    ) -> object:
        """The ``data`` of a successful answer; OneNetUnavailable (Misrouted) otherwise."""
        status, raw, headers = await self._exchange(method, url, what)
        if on_date is not None:
            date = headers.get("Date")
            when = parse_http_date(date) if date else None
            if when is not None:
                on_date(when)
        foreign = not 200 <= status < 300 and status < 500 and status != 429
        wait = headers.get("Retry-After")
        # What a throttling answer asks of the lane, whatever its body.
        throttled = status == 429 or wait is not None
        retry_after = parse_retry_after(wait) if wait is not None else None
        if raw is None:
            if foreign:
                detail = f"larger than {MAX_BODY} bytes"
                raise Misrouted(f"{what}: {misrouted_error(status, headers, detail)}")
            raise OneNetUnavailable(
                f"{what}: HTTP {status}, answer larger than {MAX_BODY} bytes",
                throttled=throttled,
                retry_after=retry_after,
            )
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if foreign:
                raise Misrouted(f"{what}: {misrouted_error(status, headers)}") from None
            raise OneNetUnavailable(
                f"{what}: HTTP {status}, answer is not JSON",
                throttled=throttled,
                retry_after=retry_after,
            ) from None
        errno = answer_errno(doc, status) if type(doc) is dict else None
        if type(errno) is not int:
            if foreign:
                detail = "JSON without an integer errno"
                raise Misrouted(f"{what}: {misrouted_error(status, headers, detail)}")
            raise OneNetUnavailable(
                f"{what}: HTTP {status}, answer without an integer errno",
                throttled=throttled,
                retry_after=retry_after,
            )
        if errno != 0:
            text = self._clean(answer_text(doc))
            judged = classify(status, raw, headers)
            raise OneNetUnavailable(
                f"{what}: HTTP {status}, errno {errno} {text}".rstrip(),
                errno=errno,
                # A business errno (auth failed, a bad parameter) stays what it is: asking again
                # cannot help; a backlog or an internal error may pass.
                retryable=judged.verdict in (Verdict.TRANSIENT, Verdict.RETRY_ONCE),
                throttled=judged.throttled,
                retry_after=judged.retry_after,
            )
        return doc.get("data")

    def _clean(self, text: str) -> str:
        """``text`` with the api-key, the access key and the token's sign masked where they
        stand as whole tokens."""
        pattern = self._mask
        if pattern is None or ("%" not in text and not any(s in text for s in self._secrets)):
            return text
        return pattern.sub("***", text)
