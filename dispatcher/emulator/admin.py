"""The emulator's admin endpoints (no api-key): GET /_emulator/stats, GET /_emulator/arrivals
(``?product=`` for one product's), PUT /_emulator/faults (a JSON object of Faults fields).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Protocol

import orjson
from aiohttp import web

from dispatcher.emulator.replies import JSON
from dispatcher.emulator.state import Faults

__all__ = ["Administered", "add_admin_routes"]


class Administered(Protocol):
    """What the admin endpoints read and set of an emulator."""

    faults: Faults

    def stats(self) -> dict[str, object]:
        """Its counters."""
        ...

    def arrivals(self, product: str | None = None) -> list[float]:
        """Its arrival times (ValueError: no such product)."""
        ...


def add_admin_routes(router: web.UrlDispatcher, emulator: Administered) -> None:
    """Serve ``emulator``'s counters, arrival times and faults under ``/_emulator/``."""

    async def stats(request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(emulator.stats(), option=orjson.OPT_NON_STR_KEYS), content_type=JSON
        )

    async def arrivals(request: web.Request) -> web.Response:
        try:
            arrivals = emulator.arrivals(request.query.get("product"))
        except ValueError as exc:
            return web.Response(status=404, text=str(exc))
        return web.Response(body=orjson.dumps(arrivals), content_type=JSON)

    async def faults(request: web.Request) -> web.Response:
        """Replace some fault settings (foreign_imeis as a list); the faults now in force."""
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of Faults fields")
            unknown = set(changes) - {f.name for f in fields(Faults)}
            if unknown:
                raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
            emulator.faults = replace(emulator.faults, **changes)
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            return web.Response(status=400, text=str(exc))
        payload = {f.name: getattr(emulator.faults, f.name) for f in fields(Faults)}
        payload["foreign_imeis"] = sorted(emulator.faults.foreign_imeis)
        return web.Response(body=orjson.dumps(payload), content_type=JSON)

    router.add_route("GET", "/_emulator/stats", stats)
    router.add_route("GET", "/_emulator/arrivals", arrivals)
    router.add_route("PUT", "/_emulator/faults", faults)
