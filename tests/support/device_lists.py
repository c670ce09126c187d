"""Device lists for tests of the client's list calls and of resolving a query: a fleet of
devices, and ``Routes`` callbacks that answer either platform's list from it (paged as OneNET
pages, the legacy list filtering on its side as OneNET does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from yarl import URL

from dispatcher.onenet import Request, Response
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.devices import DeviceLister
from tests.support.e2e import imei as imei_of
from tests.support.onenet import Routes

__all__ = ["BASE", "fleet", "imei_of", "legacy_list", "legacy_lister", "newer_list", "refusal"]

BASE = "http://onenet.test"
_JSON = {"Content-Type": "application/json"}


def fleet(n: int, *, tag_every: int = 2, online_every: int = 3) -> list[dict[str, Any]]:
    """``n`` legacy devices: every ``tag_every``-th tagged ``meters``, every
    ``online_every``-th online, ids 1000+i, created a day apart from 2026-01-01."""
    return [
        {
            "id": str(1000 + i),
            "title": f"meter-{i}",
            "online": i % online_every == 0,
            "tags": ["meters"] if i % tag_every == 0 else ["lamps"],
            "auth_info": {imei_of(i): f"46000{i:010d}"},
            "protocol": "LWM2M",
            "create_time": f"2026-01-{1 + i % 28:02d} 10:00:00",
        }
        for i in range(n)
    ]


def legacy_list(
    devices: list[dict[str, Any]], *, total: bool = True
) -> Callable[[Request], Response]:
    """Answer ``GET /devices`` from ``devices``: tag and online filtered, paged by page and
    per_page (at most 100)."""

    def answer(request: Request) -> Response:
        q = URL(request.url, encoded=True).query
        chosen = [
            d
            for d in devices
            if ("tag" not in q or q["tag"] in d["tags"])
            and ("online" not in q or str(d["online"]).lower() == q["online"])
        ]
        page, per_page = int(q["page"]), min(int(q.get("per_page", "30")), 100)
        items = chosen[(page - 1) * per_page : page * per_page]
        data: dict[str, Any] = {"page": page, "per_page": per_page, "devices": items}
        if total:
            data["total_count"] = len(chosen)
        body = {"errno": 0, "error": "succ", "data": data}
        return Response(200, orjson.dumps(body), _JSON)

    return answer


def newer_list(devices: list[dict[str, Any]]) -> Callable[[Request], Response]:
    """Answer ``GET /device/list`` of the newer platform from ``devices`` (legacy-shaped, turned
    into its items: name, imei, status), paged by offset and limit, in its {code, msg} shape."""

    def answer(request: Request) -> Response:
        q = URL(request.url, encoded=True).query
        offset, limit = int(q["offset"]), int(q["limit"])
        items = [
            {
                "name": f"dev-{d['id']}",
                "imei": next(iter(d["auth_info"])),
                "status": 1 if d["online"] else 0,
                "tags": d["tags"],
                "create_time": d["create_time"],
            }
            for d in devices[offset : offset + limit]
        ]
        body = {"code": 0, "msg": "succ", "data": {"list": items, "total": len(devices)}}
        return Response(200, orjson.dumps(body), _JSON)

    return answer


def refusal(errno: int = 1, text: str = "auth failed") -> bytes:
    """A legacy answer refusing the call with ``errno``."""
    return orjson.dumps({"errno": errno, "error": text})


def legacy_lister(routes: Routes) -> DeviceLister:
    """The legacy list over ``routes`` with an api-key."""
    return DeviceLister(OneNetClient(routes.transport, BASE, "test-key"))
