"""The OneNET client: its calls over a ``Transport``; answers are judged by ``classify``.

``create`` and ``probe`` never raise for network trouble: every answer, and every failure
to get one, becomes an ``Outcome``. A failure before the request could have left (the transport's
``NotSent``: connect refused, DNS, connect timeout) is ``transient``; one after it may have reached
OneNET (``AnswerLost``: disconnect, read timeout, broken body) is ``in_doubt``, to be settled
against the history rather than sent again.

The follow-up calls (``history``, ``detail``) raise ``OneNetUnavailable`` when they get no usable
answer, ``Misrouted`` when what answered is not OneNET (follow_ups.py). The transport reads
bodies up to ``MAX_BODY`` bytes *after* inflating, so a small compressed answer cannot fill the
memory; every URL is built in urls.py, and every message masked by masking.py.

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

May import: errors, times, onenet's other modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final, Literal

import orjson

from dispatcher.clock import ServerClock
from dispatcher.errors import OneNetUnavailable
from dispatcher.model.command import Op
from dispatcher.onenet.answers import (
    MAX_RETRY_AFTER,
    HistoryItem,
    Outcome,
    Verdict,
    classify,
    classify_oversized,
    history_item,
    listed_uuid,
    parse_http_date,
    parse_retry_after,
)
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.follow_ups import Misrouted, follow_up_data
from dispatcher.onenet.masking import Mask
from dispatcher.onenet.requests import (
    CancelResult,
    OfflineRequest,
    WriteValue,
)
from dispatcher.onenet.transport import (
    MAX_BODY,
    AnswerLost,
    NotSent,
    ReadTimeout,
    Response,
    Transport,
    TransportError,
)
from dispatcher.onenet.urls import PER_PAGE, Urls

__all__ = [
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "CancelResult",
    "HistoryItem",
    "Misrouted",
    "OfflineRequest",
    "OneNetClient",
    "Outcome",
    "Platform",
    "TokenSource",
    "Verdict",
    "WriteValue",
    "classify",
    "parse_retry_after",
]

Platform = Literal["onenet", "iot-api"]

MAX_PAGES: Final = 1000  # a history longer than this is not trusted to be complete
_JSON: Final = "application/json"


class OneNetClient:
    """OneNET's cached-command API over a ``Transport`` (the caller owns it and its timeout).

    ``platform="onenet"``: ``/nbiot/...`` with header ``api-key``; ``"iot-api"``: the newer
    platform, ``/nb-iot/...`` with header ``authorization`` from ``token`` (required there),
    dated on ``server_clock`` (OneNET's clock; by default a new one over the token's clock).
    """

    def __init__(
        self,
        transport: Transport,
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
        self._transport = transport
        self.platform: Platform = platform
        self.base_url = base_url.rstrip("/")
        """OneNET's address without the cached-command prefix (the device lists are under it)."""
        self._urls = Urls(base_url.rstrip("/") + prefix)
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
        self._clean = Mask((api_key, *self._token_secrets))
        # The header dicts, built once (for iot-api: again whenever the token changes).
        self._key_only = {"api-key": api_key}
        self._with_body = {"api-key": api_key, "Content-Type": _JSON}

    @property
    def execute_url(self) -> str:
        """The URL execute commands are posted to: base URL and path, no query, no key."""
        return self._urls.execute

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
        self._with_body = {"authorization": header, "Content-Type": _JSON}
        # An answer to a request sent just before the renewal may echo the previous sign.
        previous, self._token_secrets = self._token_secrets, token.secrets()
        self._clean = Mask((self._key, *self._token_secrets, *previous))

    async def create(self, req: OfflineRequest) -> Outcome:
        """Create one cached command (an execute, a write or a read, by its operation); never
        raises for network trouble."""
        c = req.command
        url = self._urls.offline(req)
        if c.op is Op.READ:
            return await self._send("GET", url, None)
        if c.op is Op.WRITE:
            try:
                body = orjson.dumps({"data": [v.item() for v in c.values]})
            except TypeError:
                return Outcome(Verdict.REJECTED, error="a value cannot be encoded as JSON")
            return await self._send("POST", url, body)
        if c.args is None:
            return await self._send("POST", url, None)
        try:
            body = orjson.dumps({"args": c.args})
        except TypeError:
            return Outcome(Verdict.REJECTED, error="args cannot be encoded as JSON text")
        return await self._send("POST", url, body)

    async def probe(self, imei: str, start: datetime) -> Outcome:
        """One cheap authenticated call (a one-item history page): ACCEPTED (uuid None) when
        OneNET answers errno 0, else judged as an execute answer; carries OneNET's clock in
        ``server_date``. Never raises for network trouble."""
        outcome = await self._send("GET", self._urls.probe(imei, start), None)
        status = outcome.http_status
        if outcome.errno == 0 and status is not None and 200 <= status < 300:
            return replace(outcome, verdict=Verdict.ACCEPTED, uuid=None, error="")
        return outcome

    async def _send(self, method: str, url: str, body: bytes | None) -> Outcome:
        """One call whose every answer or failure is an Outcome; sent once more with a new token
        when OneNET refused it because the token had lapsed by OneNET's clock."""
        if self._token is None:  # an api-key: nothing to renew, nothing that lapses
            return await self._attempt(
                method, url, body, self._key_only if body is None else self._with_body
            )
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
            answer = await self._transport.send(method, url, headers, body)
        except NotSent as exc:
            # Nothing left this host: safe to send again.
            return Outcome(Verdict.TRANSIENT, error=self._clean(f"not sent: {exc}"), reached=False)
        except ReadTimeout as exc:
            # Sent, and no answer in time: OneNET may be working on it; only its history can tell.
            error = self._clean(f"no answer in time: {exc}")
            return Outcome(Verdict.IN_DOUBT, error=error, timed_out=True)
        except AnswerLost as exc:
            # The request may have reached OneNET; only its history can tell.
            return Outcome(Verdict.IN_DOUBT, error=self._clean(f"answer lost: {exc}"))
        raw = answer.body
        if raw is None:
            outcome = classify_oversized(answer.status, answer.headers, MAX_BODY)
        else:
            outcome = classify(answer.status, raw, answer.headers)
        if outcome.error and outcome.verdict is not Verdict.ACCEPTED:
            error = self._clean(outcome.error)
            if error != outcome.error:
                return replace(outcome, error=error)
        return outcome

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
        items: list[HistoryItem] = []
        seen: set[str] = set()
        for page in range(1, MAX_PAGES + 1):
            if before_page is not None:
                await before_page()
            url = self._urls.history(imei, start, end, page)
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
        data = await self._call("GET", self._urls.detail(imei, uuid), "detail", on_date)
        if type(data) is not dict:
            raise OneNetUnavailable(f"detail of {uuid}: answer without a command")
        return data

    async def fetch(self, url: str, what: str) -> object:
        """The ``data`` of a GET of ``url`` (built in urls.py, under ``base_url``), with this
        client's authentication; OneNetUnavailable (carrying the errno) otherwise."""
        return await self._call("GET", url, what, None)

    async def cancel(self, imei: str, uuid: str) -> CancelResult:
        """Cancel a waiting command: ``cancelled``, or the ``refusal`` with the errno's verdict
        (e.g. REJECTED when it was already sent); raises OneNetUnavailable on network trouble."""
        answer = await self._exchange("PUT", self._urls.cancel(imei, uuid), "cancel")
        status, raw, headers = answer.status, answer.body, answer.headers
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

    async def _exchange(self, method: str, url: str, what: str) -> Response:
        """One follow-up's answer; OneNetUnavailable on network trouble. Asked once more with a
        new token when OneNET refused a token that had lapsed by its clock (as ``_send``)."""
        headers = self._headers(None)
        et, sent = self._token_et, self._local()
        answer = await self._fetch(method, url, what, headers)
        if self._token is not None and answer.body is not None:
            judged = classify(answer.status, answer.body, answer.headers)
            if self._lapsed(judged.errno, judged.server_date, et, sent):
                answer = await self._fetch(method, url, what, self._headers(None))
        return answer

    async def _fetch(
        self, method: str, url: str, what: str, headers: Mapping[str, str]
    ) -> Response:
        """One request's answer; OneNetUnavailable without one (caused by a TimeoutError when
        none came in time, or no connection could be made in time)."""
        try:
            return await self._transport.send(method, url, headers, None)
        except TransportError as exc:
            raise OneNetUnavailable(self._clean(f"{what}: {exc}")) from exc

    async def _call(
        self, method: str, url: str, what: str, on_date: Callable[[float], None] | None
    ) -> object:
        """The ``data`` of a successful answer; OneNetUnavailable (Misrouted) otherwise."""
        answer = await self._exchange(method, url, what)
        if on_date is not None:
            date = answer.headers.get("Date")
            when = parse_http_date(date) if date else None
            if when is not None:
                on_date(when)
        return follow_up_data(answer, what, self._clean)
