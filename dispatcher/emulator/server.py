"""A local stand-in for OneNET's NB-IoT cached-command API (aiohttp.web), with fault injection.

It checks every request as OneNET documents it, answers with the documented errnos, remembers what
it accepted, and can fail on purpose: HTTP 500, throttling (errno 7 or HTTP 429 with Retry-After),
connections cut before or after a command is stored, added latency, answers cut in half, gzip (and
gzip bombs), a skewed clock, requests never answered, and a proxy's HTML error pages. It is the
test double of the suite, the target of the benchmarks and a sandbox for users, so the request
path is kept short: each fault is one attribute test, and answer shaping runs only when set.

With a ``Fleet`` whose ``wake_every_s`` is set, devices behind it take the commands (devices.py),
advanced lazily when a device's commands are asked about; without one, commands wait forever.

Every call is served under both platforms' paths: ``/nbiot/...`` (header ``api-key``) and the
newer platform's ``/nb-iot/...`` (header ``authorization``, a signed token). Without ``products``,
``/nbiot`` takes any non-empty api-key (or ``Faults.api_key``), ``/nb-iot`` any well-formed token
not past its ``et`` (there is no access key to check its sign with). With ``products``
(products.py), each call is some product's, found by its api-key or its token's ``res`` (whose
sign is checked with that product's access key); the product's devices, throttle and answer shape
apply, and ``Faults.api_key`` does not.

The device calls (the lists, status, datapoints) and their admin calls are fleet_routes.py's;
the other admin calls (no api-key: stats, arrivals, faults) are admin.py's.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Final

from aiohttp import web

from dispatcher.emulator import history
from dispatcher.emulator.admin import add_admin_routes
from dispatcher.emulator.checks import check_execute, check_read, check_write
from dispatcher.emulator.devices import Devices, Fleet
from dispatcher.emulator.faults import Shaper, cut, gzip_bomb, html_page
from dispatcher.emulator.firmware import Firmware
from dispatcher.emulator.fleet_routes import add_fleet_routes
from dispatcher.emulator.fleet_view import FleetView
from dispatcher.emulator.gate import Gate
from dispatcher.emulator.products import ANYONE, Caller, Product, Tenant
from dispatcher.emulator.registry import Device, Registry
from dispatcher.emulator.replies import JSON, error
from dispatcher.emulator.state import (
    AUTH_FAILED,
    BAD_PARAM,
    Faults,
    Shape,
    Store,
    StoredCommand,
)

__all__ = ["Device", "Emulator", "Faults", "Fleet", "Product", "StoredCommand", "serve"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A follow-up call's answer for a device whose request passed the shared checks (history.py).
FollowUp = Callable[[Store, str, web.Request, Caller], web.Response]
# A create call's checks (checks.py): the query, the body, the server's now, the imeis outside
# the product and a fresh uuid -> the command to store, or an errno.
Check = Callable[[Mapping[str, str], bytes, float, Container[str], str], StoredCommand | int]
# The accepted answer, by shape, with the uuid to fill in.
_ACCEPTED: Final[dict[Shape, bytes]] = {
    "errno": b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}',
    "code": b'{"code":0,"msg":"succ","data":{"uuid":"%s"}}',
}
_PLATFORMS: Final = (("/nbiot", False), ("/nb-iot", True))  # path prefix, signed token or not


def _check_read_call(
    query: Mapping[str, str], body: bytes, now: float, foreign: Container[str], uuid: str
) -> StoredCommand | int:
    """A cached read's checks; it takes no body."""
    return check_read(query, now, foreign, uuid) if not body.strip() else BAD_PARAM


class Emulator:
    """OneNET's cached-command API in memory; ``app()`` serves it, read methods serve tests;
    ``devices`` are registered in their products, and ``fleet`` reads them (fleet_view.py)."""

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
        products: Mapping[str, Product] | None = None,
        devices: Iterable[Device] = (),
    ) -> None:
        self._clock = clock  # the server's "now" for valid_time/expired_time checks
        self._monotonic = monotonic  # arrivals and the throttle window
        self._sleep = sleep
        self._store = Store(keep_records=keep_records)
        self._arrivals: deque[float] = deque(maxlen=max_arrivals)
        self._gate = Gate(self._store, monotonic, products, max_arrivals)
        # None without products: then every call is checked as before products existed
        self._tenants = self._gate.tenants
        registry, spec = Registry(devices), fleet or Fleet()
        firmware = Firmware(registry.firmware, spec.firmware, spec.firmware_target)
        names = None if self._tenants is None else list(self._tenants)
        # the registered devices, their firmware and what reached them (fleet_view.py)
        self.fleet = FleetView(registry, firmware, self._store, self.advance, self._now, names)
        # None when devices are off: then nothing on any path looks at them
        self._devices = Devices(spec, firmware) if spec.on else None
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

    def wake_sleepers(self) -> int:
        """Devices that never woke start waking now (devices.py); how many."""
        self.advance()
        now = self._clock() + self._faults.clock_offset_s
        return 0 if self._devices is None else self._devices.wake_sleepers(now)

    # -- read methods for tests --------------------------------------------------------------

    def accepted(self) -> list[StoredCommand]:
        """Every stored command, in the order accepted (cancelled ones show send_status 2)."""
        return list(self._store.commands.values())

    def commands_for(self, imei: str) -> list[StoredCommand]:
        """The imei's stored commands, oldest first."""
        return list(self._store.for_imei(imei))

    def arrivals(self, product: str | None = None) -> list[float]:
        """Monotonic arrival time of each create call (the latest ``max_arrivals``); of one
        product's (admitted or not) when ``product`` names one."""
        if product is None:
            return list(self._arrivals)
        tenant = (self._tenants or {}).get(product)
        if tenant is None:
            raise ValueError(f"the emulator serves no product {product!r}")
        return list(tenant.arrivals)

    def stats(self) -> dict[str, object]:
        """Counters: posts, accepted, rejected by errno, throttled, faults, duplicates, reads,
        stored commands by send_status, and by product: its create calls' posts, accepted,
        throttled and auth_failed (errno 1: a bad key or token, or a device outside it)."""
        self.advance()
        counters = self._store.counters()
        tenants = self._tenants or {}
        counters["products"] = {name: tenant.counters() for name, tenant in tenants.items()}
        return counters

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this emulator's state."""
        app = web.Application()
        add = app.router.add_route
        for prefix, iot in _PLATFORMS:
            creator, follow_up = self._creator, self._follow_up
            add("POST", f"{prefix}/execute/offline", creator(check_execute, iot))
            add("POST", f"{prefix}/offline", creator(check_write, iot))
            add("GET", f"{prefix}/offline", creator(_check_read_call, iot))
            add("GET", f"{prefix}/offline/history", follow_up(history.listing, "history", iot))
            add(
                "GET",
                f"{prefix}/offline/history/{{uuid}}",
                follow_up(history.detail, "detail", iot),
            )
            piecewise = follow_up(history.piecewise, "piecewise", iot)
            add("GET", f"{prefix}/offline/history/{{uuid}}/piecewise", piecewise)
            # "all" before {uuid}, so that it wins
            cancel_all = follow_up(history.cancel_all, "cancel_all", iot)
            add("PUT", f"{prefix}/offline/cancel/all", cancel_all)
            add("PUT", f"{prefix}/offline/cancel/all/", cancel_all)  # as real clients call it
            add(
                "PUT", f"{prefix}/offline/cancel/{{uuid}}", follow_up(history.cancel, "cancel", iot)
            )
        add_admin_routes(app.router, self)
        add_fleet_routes(app.router, self)
        return app

    def shaped(self, handler: Handler, *, reads: bool = True) -> Handler:
        """``handler`` with the answer-shaping faults applied to its answers when they are set."""

        async def handle(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            if self._shaping and isinstance(response, web.Response):
                return self._shaper.shape(response, self._faults, reads, self._rng)
            return response

        return handle

    def _creator(self, check: Check, iot: bool) -> Handler:
        """A create call's route (execute, write, read): ``_create`` with ``check``, shaped."""

        async def handle(request: web.Request) -> web.Response:
            return await self._create(request, check, iot)

        return self.shaped(handle, reads=False)

    def _follow_up(self, answer: FollowUp, kind: str, iot: bool) -> Handler:
        """A follow-up call's route: counted by ``kind``, the shared checks, then ``answer``,
        shaped."""

        async def handle(request: web.Request) -> web.Response:
            early, imei, caller = await self._read_call(request, iot, kind)
            if early is not None:
                return early
            if self._devices is not None:
                now = self._clock() + self._faults.clock_offset_s
                self._devices.advance(self._store, imei, now)
            return answer(self._store, imei, request, caller)

        return self.shaped(handle)

    def _now(self) -> float:
        """The server's now (its clock, with the faults' offset)."""
        return self._clock() + self._faults.clock_offset_s

    async def _delay(self, faults: Faults) -> None:
        delay = faults.latency_ms
        if faults.latency_jitter_ms:
            delay += self._rng.uniform(0.0, faults.latency_jitter_ms)
        self._store.faults["latency"] += 1
        await self._sleep(delay / 1000.0)

    async def _create(self, request: web.Request, check: Check, iot: bool) -> web.Response:
        """A create call (execute, write, read): the faults, then ``check``, then the store."""
        store = self._store
        store.posts += 1
        arrived = self._monotonic()
        self._arrivals.append(arrived)
        identify = iot or self._tenants is not None
        tenant: Tenant | None = None
        let_in = True
        if identify:
            tenant, let_in = self._gate.identify(request, iot, self._now())
            if tenant is not None:
                tenant.posts += 1
                tenant.arrivals.append(arrived)
        shape: Shape = "errno" if tenant is None else tenant.shape
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
        if not (let_in if identify else self._gate.key_ok(request, faults)):
            store.reject(AUTH_FAILED)
            if tenant is not None:
                tenant.auth_failed += 1
            return error(AUTH_FAILED, shape)
        if faults.throttle_rps is not None or (
            tenant is not None and tenant.product.throttle_rps is not None
        ):
            throttled = self._gate.throttle_full(faults, tenant)
            if throttled is not None:
                return throttled
        result = check(
            request.query,
            body,
            self._clock() + faults.clock_offset_s,
            faults.foreign_imeis if tenant is None else tenant.outside(faults.foreign_imeis),
            str(uuid.uuid4()),
        )
        if isinstance(result, int):
            store.reject(result)
            if tenant is not None and result == AUTH_FAILED:  # a device outside the product
                tenant.auth_failed += 1
            return error(result, shape)
        if tenant is not None:
            result = replace(result, product=tenant.name)
            tenant.accepted += 1
        store.add(result)
        if faults.cut_after_rate and rng.random() < faults.cut_after_rate:
            store.faults["cut_after"] += 1
            return cut(request)
        answer = _ACCEPTED[shape] % result.uuid.encode()
        if faults.truncate_rate and rng.random() < faults.truncate_rate:
            store.count_fault("truncate")
            return web.Response(body=answer[: len(answer) // 2], content_type=JSON)
        if faults.bomb_bytes:
            store.count_fault("gzip_bomb")
            return await gzip_bomb(answer, faults.bomb_bytes)
        return web.Response(body=answer, content_type=JSON)

    async def admit(
        self, request: web.Request, iot: bool, kind: str, *, throttle: bool = True
    ) -> tuple[web.Response | None, Tenant | None]:
        """What every call but a create passes, counted as a read of ``kind``: the faults (those
        of reads), the api-key or token, and the throttles. Returns (an early answer or None to
        go on, the caller's product)."""
        store, faults, rng = self._store, self._faults, self._rng
        store.reads += 1
        store.calls[kind] = store.calls.get(kind, 0) + 1
        if faults.html_status is not None:
            return self._shaper.html(faults.html_status), None
        if faults.latency_ms or faults.latency_jitter_ms:
            await self._delay(faults)
        if faults.affect_reads:
            if faults.hang_rate and rng.random() < faults.hang_rate:
                return await self._shaper.hang(request), None
            if faults.fail_rate and rng.random() < faults.fail_rate:
                store.faults["http500"] += 1
                return html_page(500), None
            if faults.cut_before_rate and rng.random() < faults.cut_before_rate:
                store.faults["cut_before"] += 1
                return cut(request), None
        tenant: Tenant | None = None
        if iot or self._tenants is not None:
            tenant, let_in = self._gate.identify(request, iot, self._now())
            if not let_in:
                return error(AUTH_FAILED, "errno" if tenant is None else tenant.shape), None
        elif not self._gate.key_ok(request, faults):
            return error(AUTH_FAILED), None
        if throttle and (
            faults.throttle_rps is not None
            or (tenant is not None and tenant.product.throttle_rps is not None)
        ):
            return self._gate.throttle_full(faults, tenant), tenant
        return None, tenant

    async def _read_call(
        self, request: web.Request, iot: bool, kind: str
    ) -> tuple[web.Response | None, str, Caller]:
        """What history/detail/cancel share: ``admit`` (no throttle), then the imei. Returns
        (early answer, imei, who the answer is for)."""
        early, tenant = await self.admit(request, iot, kind, throttle=False)
        if early is not None:
            return early, "", ANYONE
        caller = ANYONE if tenant is None else tenant.caller
        imei = request.query.get("imei", "")
        if len(imei) != 15 or not (imei.isascii() and imei.isdigit()):
            return error(BAD_PARAM, caller.shape), "", ANYONE
        faults = self._faults
        outside = faults.foreign_imeis if tenant is None else tenant.outside(faults.foreign_imeis)
        if imei in outside:
            return error(AUTH_FAILED, caller.shape), "", ANYONE
        return None, imei, caller


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
