"""A local stand-in for OneNET's NB-IoT cached-command API (aiohttp.web), with fault injection.

It checks every request as OneNET documents it, answers with the documented errnos, remembers what
it accepted, and can fail on purpose: HTTP 500, throttling (errno 7 or HTTP 429 with Retry-After),
connections cut before or after a command is stored, added latency, answers cut in half, gzip (and
gzip bombs), a skewed clock, requests never answered, and a proxy's HTML error pages. It is the
test double of the suite, the target of the benchmarks and a sandbox for users, so the request
path is kept short: each fault is one attribute test, and answer shaping runs only when set.

Admin endpoints (no api-key): GET /_emulator/stats, GET /_emulator/arrivals, PUT /_emulator/faults.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import fields, replace

import orjson
from aiohttp import web

from dispatcher.emulator.faults import Shaper, cut, gzip_bomb, html_page
from dispatcher.emulator.state import (
    AUTH_FAILED,
    BAD_PARAM,
    BUSY,
    ERRNO_TEXT,
    LOGIC_LIMIT,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    Faults,
    Store,
    StoredCommand,
    check_execute,
    format_answer_time,
    parse_id,
    parse_request_time,
)

__all__ = ["Emulator", "Faults", "StoredCommand", "run", "serve"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON = "application/json"
_ERROR_BODIES = {
    errno: orjson.dumps({"errno": errno, "error": text, "data": None})
    for errno, text in ERRNO_TEXT.items()
}


def _answer(data: object = None) -> web.Response:
    return web.Response(
        body=orjson.dumps({"errno": 0, "error": "succ", "data": data}), content_type=_JSON
    )


def _error(errno: int) -> web.Response:
    return web.Response(body=_ERROR_BODIES[errno], content_type=_JSON)


class Emulator:
    """OneNET's cached-command API in memory; ``app()`` serves it, read methods serve tests."""

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_arrivals: int = 1_000_000,
        keep_records: bool = True,
    ) -> None:
        self._clock = clock  # the server's "now" for valid_time/expired_time checks
        self._monotonic = monotonic  # arrivals and the throttle window
        self._sleep = sleep
        self._store = Store(keep_records=keep_records)
        self._arrivals: deque[float] = deque(maxlen=max_arrivals)
        self._admitted: deque[float] = deque()  # POSTs past the throttle, for its sliding window
        self._faults = Faults()
        self._rng = random.Random()
        self._shaping = False  # whether answers need a Date, gzip or truncation after the fact
        self._shaper = Shaper(clock, self._store)
        self.faults = faults or Faults()

    @property
    def faults(self) -> Faults:
        """The faults in force; setting new ones also reseeds the random source."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)
        # A Date header is set when the server's now is not the real clock's (aiohttp's own).
        self._shaping = bool(
            faults.clock_offset_s
            or self._clock is not time.time
            or faults.compress
            or (faults.affect_reads and faults.truncate_rate)
        )

    def release_hung(self) -> None:
        """Let every request held by ``hang_rate`` go (its connection is cut); serve() does this
        before it shuts down."""
        self._shaper.release()

    # -- read methods for tests --------------------------------------------------------------

    def accepted(self) -> list[StoredCommand]:
        """Every stored command, in the order accepted (cancelled ones show send_status 2)."""
        return list(self._store.commands.values())

    def commands_for(self, imei: str) -> list[StoredCommand]:
        """The imei's stored commands, oldest first."""
        return list(self._store.for_imei(imei))

    def arrivals(self) -> list[float]:
        """Monotonic arrival time of each POST (the latest ``max_arrivals``)."""
        return list(self._arrivals)

    def stats(self) -> dict[str, object]:
        """Counters: posts, accepted, rejected by errno, throttled, faults, duplicates, reads."""
        return self._store.counters()

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this emulator's state."""
        app = web.Application()
        add = app.router.add_route
        add("POST", "/nbiot/execute/offline", self._shaped(self._execute, reads=False))
        add("GET", "/nbiot/offline/history", self._shaped(self._history))
        add("GET", "/nbiot/offline/history/{uuid}", self._shaped(self._detail))
        add("GET", "/nbiot/offline/history/{uuid}/piecewise", self._shaped(self._piecewise))
        # "all" before {uuid}, so that it wins
        add("PUT", "/nbiot/offline/cancel/all", self._shaped(self._cancel_all))
        add("PUT", "/nbiot/offline/cancel/{uuid}", self._shaped(self._cancel))
        add("GET", "/_emulator/stats", self._admin_stats)
        add("GET", "/_emulator/arrivals", self._admin_arrivals)
        add("PUT", "/_emulator/faults", self._admin_faults)
        return app

    def _shaped(self, handler: Handler, *, reads: bool = True) -> Handler:
        """``handler`` with the answer-shaping faults applied to its answers when they are set."""

        async def handle(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            if self._shaping and isinstance(response, web.Response):
                return self._shaper.shape(response, self._faults, reads, self._rng)
            return response

        return handle

    async def _delay(self, faults: Faults) -> None:
        delay = faults.latency_ms
        if faults.latency_jitter_ms:
            delay += self._rng.uniform(0.0, faults.latency_jitter_ms)
        self._store.faults["latency"] += 1
        await self._sleep(delay / 1000.0)

    def _key_ok(self, request: web.Request, faults: Faults) -> bool:
        key = request.headers.get("api-key")
        return bool(key) and (faults.api_key is None or key == faults.api_key)

    def _throttled(self, rps: float) -> bool:
        """True if one more POST would exceed ``rps`` in the sliding window (GCRA-free: a deque)."""
        limit, window = (math.floor(rps), 1.0) if rps >= 1 else (1, 1.0 / rps)
        now = self._monotonic()
        admitted = self._admitted
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        if len(admitted) >= limit:
            return True
        admitted.append(now)
        return False

    def _throttle_answer(self, faults: Faults) -> web.Response:
        self._store.throttled += 1
        if faults.throttle_mode == "errno7":
            return _error(BUSY)
        return web.Response(
            status=429,
            text="429 Too Many Requests",
            headers={"Retry-After": f"{faults.throttle_retry_after:g}"},
        )

    async def _execute(self, request: web.Request) -> web.Response:
        store = self._store
        store.posts += 1
        self._arrivals.append(self._monotonic())
        faults = self._faults
        body = await request.read()  # read first, so a cut leaves no unread bytes (no RST)
        if faults.html_status is not None:  # a proxy in front answers: OneNET never sees it
            return self._shaper.html(faults.html_status)
        rng = self._rng
        if faults.hang_rate and rng.random() < faults.hang_rate:
            return await self._shaper.hang(request)
        if faults.latency_ms or faults.latency_jitter_ms:
            await self._delay(faults)
        if faults.fail_rate and rng.random() < faults.fail_rate:
            store.faults["http500"] += 1
            return html_page(500)
        if faults.cut_before_rate and rng.random() < faults.cut_before_rate:
            store.faults["cut_before"] += 1
            return cut(request)
        if not self._key_ok(request, faults):
            store.reject(AUTH_FAILED)
            return _error(AUTH_FAILED)
        if faults.throttle_rps is not None and self._throttled(faults.throttle_rps):
            return self._throttle_answer(faults)
        result = check_execute(
            request.query,
            body,
            self._clock() + faults.clock_offset_s,
            faults.foreign_imeis,
            str(uuid.uuid4()),
        )
        if isinstance(result, int):
            store.reject(result)
            return _error(result)
        store.add(result)
        if faults.cut_after_rate and rng.random() < faults.cut_after_rate:
            store.faults["cut_after"] += 1
            return cut(request)
        answer = b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % result.uuid.encode()
        if faults.truncate_rate and rng.random() < faults.truncate_rate:
            store.count_fault("truncate")
            return web.Response(body=answer[: len(answer) // 2], content_type=_JSON)
        if faults.bomb_bytes:
            store.count_fault("gzip_bomb")
            return await gzip_bomb(answer, faults.bomb_bytes)
        return web.Response(body=answer, content_type=_JSON)

    async def _read_call(self, request: web.Request) -> tuple[web.Response | None, str]:
        """What history/detail/cancel share: faults, api-key, imei. Returns (early answer, imei)."""
        self._store.reads += 1
        faults = self._faults
        if faults.html_status is not None:
            return self._shaper.html(faults.html_status), ""
        if faults.latency_ms or faults.latency_jitter_ms:
            await self._delay(faults)
        if faults.affect_reads:
            if faults.hang_rate and self._rng.random() < faults.hang_rate:
                return await self._shaper.hang(request), ""
            if faults.fail_rate and self._rng.random() < faults.fail_rate:
                self._store.faults["http500"] += 1
                return (
                    html_page(500),
                    "",
                )
            if faults.cut_before_rate and self._rng.random() < faults.cut_before_rate:
                self._store.faults["cut_before"] += 1
                return cut(request), ""
        if not self._key_ok(request, faults):
            return _error(AUTH_FAILED), ""
        imei = request.query.get("imei", "")
        if len(imei) != 15 or not (imei.isascii() and imei.isdigit()):
            return _error(BAD_PARAM), ""
        if imei in faults.foreign_imeis:
            return _error(AUTH_FAILED), ""
        return None, imei

    async def _history(self, request: web.Request) -> web.Response:
        early, imei = await self._read_call(request)
        if early is not None:
            return early
        query = request.query
        start = parse_request_time(query.get("start", ""))
        end_text = query.get("end")
        end = math.inf if end_text is None else parse_request_time(end_text)
        page = parse_id(query.get("page", "1"))
        per_page = parse_id(query.get("per_page", str(PER_PAGE_DEFAULT)))
        sort = query.get("sort", "DESC").upper()
        if start is None or end is None or page is None or per_page is None:
            return _error(BAD_PARAM)
        if sort not in ("ASC", "DESC"):
            return _error(BAD_PARAM)
        if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
            return _error(LOGIC_LIMIT)
        # create_time is shown to the second, so it is compared to the second
        found = [
            cmd for cmd in self._store.for_imei(imei) if start <= math.floor(cmd.created_at) <= end
        ]
        if sort == "DESC":
            found.reverse()
        first = (page - 1) * per_page
        items = [cmd.history_item() for cmd in found[first : first + per_page]]
        return _answer(
            {"total_count": len(found), "page": page, "per_page": per_page, "items": items}
        )

    async def _detail(self, request: web.Request) -> web.Response:
        early, imei = await self._read_call(request)
        if early is not None:
            return early
        cmd = self._store.find(imei, request.match_info["uuid"])
        if cmd is None:  # not documented; an unknown uuid is taken as a broken constraint
            return _error(LOGIC_LIMIT)
        item = cmd.history_item()
        del item["cmd_uuid"]
        item["args"] = cmd.args
        return _answer(item)

    async def _piecewise(self, request: web.Request) -> web.Response:
        early, imei = await self._read_call(request)
        if early is not None:
            return early
        cmd = self._store.find(imei, request.match_info["uuid"])
        if cmd is None:
            return _error(LOGIC_LIMIT)
        return _answer([{"log": "command cached", "time": format_answer_time(cmd.created_at)}])

    async def _cancel(self, request: web.Request) -> web.Response:
        early, imei = await self._read_call(request)
        if early is not None:
            return early
        cmd = self._store.find(imei, request.match_info["uuid"])
        if cmd is None or not self._store.cancel(cmd):  # only a waiting command can be cancelled
            return _error(LOGIC_LIMIT)
        return _answer(None)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        early, imei = await self._read_call(request)
        if early is not None:
            return early
        cancel = self._store.cancel
        succ = [cmd.uuid for cmd in list(self._store.for_imei(imei)) if cancel(cmd)]
        return _answer({"succ": succ, "failed": [], "total": len(succ)})

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.stats(), option=orjson.OPT_NON_STR_KEYS), content_type=_JSON
        )

    async def _admin_arrivals(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.arrivals()), content_type=_JSON)

    async def _admin_faults(self, request: web.Request) -> web.Response:
        """Replace some fault settings: a JSON object of Faults fields (foreign_imeis as a list)."""
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of Faults fields")
            unknown = set(changes) - {f.name for f in fields(Faults)}
            if unknown:
                raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
            self.faults = replace(self._faults, **changes)
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            return web.Response(status=400, text=str(exc))
        payload = {f.name: getattr(self._faults, f.name) for f in fields(Faults)}
        payload["foreign_imeis"] = sorted(self._faults.foreign_imeis)
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)


@asynccontextmanager
async def serve(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``emulator`` on host:port (0: any free port); yields the base URL, cleans up after."""
    runner = web.AppRunner(
        emulator.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        emulator.release_hung()  # or the shutdown would wait for them (shutdown_timeout)
        await runner.cleanup()


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    faults: Faults | None = None,
    *,
    ready: Callable[[str], None] | None = None,
    keep_records: bool = True,
) -> None:
    """Serve an emulator until interrupted (KeyboardInterrupt goes up); calls ``ready(url)``."""

    async def main() -> None:
        emulator = Emulator(faults, keep_records=keep_records)
        async with serve(emulator, host, port) as url:
            if ready is not None:
                ready(url)
            await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        runner.run(main())


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: the "fast" extra
    except ImportError:
        return None
    return uvloop.new_event_loop
