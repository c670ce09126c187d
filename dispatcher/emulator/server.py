"""A local stand-in for OneNET's NB-IoT cached-command API (aiohttp.web), with fault injection.

It checks every request as OneNET documents it, answers with the documented errnos, remembers what
it accepted, and can fail on purpose: HTTP 500, throttling (errno 7 or HTTP 429 with Retry-After),
connections cut before or after a command is stored, added latency, answers cut in half, gzip (and
gzip bombs), a skewed clock, requests never answered, and a proxy's HTML error pages. It is the
test double of the suite, the target of the benchmarks and a sandbox for users, so the request
path is kept short: each fault is one attribute test, and answer shaping runs only when set.

With a ``Fleet`` whose ``wake_every_s`` is set, devices behind it take the commands (devices.py),
advanced lazily when a device's commands are asked about; without one, commands wait forever.

Admin endpoints (no api-key): GET /_emulator/stats, GET /_emulator/arrivals, PUT /_emulator/faults.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import fields, replace

import orjson
from aiohttp import web

from dispatcher.emulator import history
from dispatcher.emulator.checks import check_execute, check_read, check_write
from dispatcher.emulator.devices import Devices, Fleet
from dispatcher.emulator.faults import Shaper, cut, gzip_bomb, html_page
from dispatcher.emulator.replies import JSON, error
from dispatcher.emulator.state import (
    AUTH_FAILED,
    BAD_PARAM,
    BUSY,
    Faults,
    Store,
    StoredCommand,
)

__all__ = ["Emulator", "Faults", "Fleet", "StoredCommand", "run", "serve"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A follow-up call's answer for a device whose request passed the shared checks (history.py).
FollowUp = Callable[[Store, str, web.Request], web.Response]
# A create call's checks (checks.py): the query, the body, the server's now, the foreign imeis
# and a fresh uuid -> the command to store, or an errno.
Check = Callable[[Mapping[str, str], bytes, float, frozenset[str], str], StoredCommand | int]


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
        fleet: Fleet | None = None,
    ) -> None:
        # None when devices are off: then nothing on any path looks at them
        self._devices = Devices(fleet) if fleet is not None and fleet.on else None
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

    def advance(self) -> None:
        """Every device's wakes, answers and expiries up to the server's now (no-op without
        devices); follow-up calls do this for their device, ``stats()`` for all."""
        if self._devices is not None:
            self._devices.advance_all(self._store, self._clock() + self._faults.clock_offset_s)

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
        """Counters: posts, accepted, rejected by errno, throttled, faults, duplicates, reads,
        stored commands by send_status."""
        self.advance()
        return self._store.counters()

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this emulator's state."""
        app = web.Application()
        add = app.router.add_route
        add("POST", "/nbiot/execute/offline", self._shaped(self._execute, reads=False))
        add("POST", "/nbiot/offline", self._shaped(self._write, reads=False))
        add("GET", "/nbiot/offline", self._shaped(self._read, reads=False))
        follow_up = self._follow_up
        add("GET", "/nbiot/offline/history", follow_up(history.listing, "history"))
        add("GET", "/nbiot/offline/history/{uuid}", follow_up(history.detail, "detail"))
        add(
            "GET",
            "/nbiot/offline/history/{uuid}/piecewise",
            follow_up(history.piecewise, "piecewise"),
        )
        # "all" before {uuid}, so that it wins
        add("PUT", "/nbiot/offline/cancel/all", follow_up(history.cancel_all, "cancel_all"))
        add("PUT", "/nbiot/offline/cancel/{uuid}", follow_up(history.cancel, "cancel"))
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

    def _follow_up(self, answer: FollowUp, kind: str) -> Handler:
        """A follow-up call's route: counted by ``kind``, the shared checks, then ``answer``,
        shaped."""
        calls = self._store.calls

        async def handle(request: web.Request) -> web.Response:
            calls[kind] = calls.get(kind, 0) + 1
            early, imei = await self._read_call(request)
            if early is not None:
                return early
            if self._devices is not None:
                now = self._clock() + self._faults.clock_offset_s
                self._devices.advance(self._store, imei, now)
            return answer(self._store, imei, request)

        return self._shaped(handle)

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
            return error(BUSY)
        return web.Response(
            status=429,
            text="429 Too Many Requests",
            headers={"Retry-After": f"{faults.throttle_retry_after:g}"},
        )

    async def _execute(self, request: web.Request) -> web.Response:
        return await self._create(request, check_execute)

    async def _write(self, request: web.Request) -> web.Response:
        return await self._create(request, check_write)

    async def _read(self, request: web.Request) -> web.Response:
        def read(
            query: Mapping[str, str], body: bytes, now: float, foreign: frozenset[str], uuid: str
        ) -> StoredCommand | int:
            return check_read(query, now, foreign, uuid) if not body.strip() else BAD_PARAM

        return await self._create(request, read)

    async def _create(self, request: web.Request, check: Check) -> web.Response:
        """A create call (execute, write, read): the faults, then ``check``, then the store."""
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
            return error(AUTH_FAILED)
        if faults.throttle_rps is not None and self._throttled(faults.throttle_rps):
            return self._throttle_answer(faults)
        result = check(
            request.query,
            body,
            self._clock() + faults.clock_offset_s,
            faults.foreign_imeis,
            str(uuid.uuid4()),
        )
        if isinstance(result, int):
            store.reject(result)
            return error(result)
        store.add(result)
        if faults.cut_after_rate and rng.random() < faults.cut_after_rate:
            store.faults["cut_after"] += 1
            return cut(request)
        answer = b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % result.uuid.encode()
        if faults.truncate_rate and rng.random() < faults.truncate_rate:
            store.count_fault("truncate")
            return web.Response(body=answer[: len(answer) // 2], content_type=JSON)
        if faults.bomb_bytes:
            store.count_fault("gzip_bomb")
            return await gzip_bomb(answer, faults.bomb_bytes)
        return web.Response(body=answer, content_type=JSON)

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
                return html_page(500), ""
            if faults.cut_before_rate and self._rng.random() < faults.cut_before_rate:
                self._store.faults["cut_before"] += 1
                return cut(request), ""
        if not self._key_ok(request, faults):
            return error(AUTH_FAILED), ""
        imei = request.query.get("imei", "")
        if len(imei) != 15 or not (imei.isascii() and imei.isdigit()):
            return error(BAD_PARAM), ""
        if imei in faults.foreign_imeis:
            return error(AUTH_FAILED), ""
        return None, imei

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.stats(), option=orjson.OPT_NON_STR_KEYS), content_type=JSON
        )

    async def _admin_arrivals(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.arrivals()), content_type=JSON)

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
        return web.Response(body=orjson.dumps(payload), content_type=JSON)


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
    fleet: Fleet | None = None,
) -> None:
    """Serve an emulator until interrupted (KeyboardInterrupt goes up); calls ``ready(url)``."""

    async def main() -> None:
        emulator = Emulator(faults, keep_records=keep_records, fleet=fleet)
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
