"""The emulator's products and the newer platform's paths, over real loopback sockets: who is let
in (api-key or signed token), whose devices, per-product throttles, answer shapes, counters."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from dispatcher.emulator.server import Emulator, Faults, Product, serve
from tests.support.clocks import Clock

NOW = 1767225600.0  # 2026-01-01 08:00:00 in UTC+8
IMEI = "861234567890123"
OTHER_IMEI = "869876543210987"
KEY_A = base64.b64encode(b"product A's access key").decode()
KEY_B = base64.b64encode(b"product B's access key").decode()
RES_A, RES_B = "products/pa", "products/pb"
ARGS = b'{"args": "reboot"}'


def token(
    key: str,
    res: str,
    et: int = int(NOW) + 3600,
    method: str = "sha1",
    version: str = "2022-05-01",
    *,
    encode: bool = True,
) -> dict[str, str]:
    """An authorization header, signed by hand as the newer platform documents it."""
    message = f"{et}\n{method}\n{res}\n{version}".encode()
    digest = hmac.new(base64.b64decode(key), message, getattr(hashlib, method)).digest()
    signed = base64.b64encode(digest).decode()
    q = (lambda v: quote(v, safe="")) if encode else (lambda v: v)
    header = f"version={q(version)}&res={q(res)}&et={et}&method={q(method)}&sign={q(signed)}"
    return {"authorization": header}


def params(**changes: str) -> dict[str, str]:
    base = {
        "imei": IMEI,
        "obj_id": "3",
        "obj_inst_id": "0",
        "res_id": "4",
        "expired_time": "2026-01-02T08:00:00",
    }
    return {**base, **changes}


@dataclass
class Api:
    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, path, params=query or {}, data=body, headers=headers
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def create(
        self, headers: Mapping[str, str], prefix: str = "/nb-iot", **changes: str
    ) -> Any:
        status, doc = await self.call(
            "POST", f"{prefix}/execute/offline", headers, params(**changes), ARGS
        )
        assert status == 200
        return doc

    async def errno(
        self, headers: Mapping[str, str], prefix: str = "/nb-iot", **changes: str
    ) -> int:
        doc = await self.create(headers, prefix, **changes)
        return int(doc["errno"] if "errno" in doc else doc["code"])


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def mono() -> Clock:
    return Clock(500.0)


@pytest.fixture
def products() -> dict[str, Product]:
    return {
        "a": Product(api_key="key-a", access_key=KEY_A, res=RES_A),
        "b": Product(api_key="key-b", access_key=KEY_B, res=RES_B, imeis=frozenset({OTHER_IMEI})),
    }


@pytest.fixture
def emulator(clock: Clock, mono: Clock, products: dict[str, Product]) -> Emulator:
    return Emulator(clock=clock, monotonic=mono, products=products)


@pytest.fixture
async def api(emulator: Emulator) -> AsyncIterator[Api]:
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        yield Api(session)


# -- who is let in ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256"])
async def test_a_token_signed_with_the_products_access_key_is_let_in(
    api: Api, emulator: Emulator, method: str
) -> None:
    doc = await api.create(token(KEY_A, RES_A, method=method))
    assert (doc["errno"], doc["error"]) == (0, "succ")
    [cmd] = emulator.accepted()
    assert (cmd.uuid, cmd.product) == (doc["data"]["uuid"], "a")


@pytest.mark.parametrize(
    "headers",
    [
        token(KEY_B, RES_A),  # signed with another product's key
        token(KEY_A, "products/unknown"),
        token(KEY_A, RES_A, version="2099-01-01"),
        token(KEY_A, RES_A, et=int(NOW)),  # its et has come
        {"authorization": token(KEY_A, RES_A)["authorization"].replace("&method=", "&x=")},
        {"authorization": token(KEY_A, RES_A)["authorization"] + "&et=1"},
        {"authorization": "Bearer abc"},
        {"authorization": ""},
        {},
        {"api-key": "key-a"},  # the old platform's header on the new platform's path
    ],
)
async def test_a_bad_token_is_auth_failed(
    api: Api, emulator: Emulator, headers: dict[str, str]
) -> None:
    doc = await api.create(headers)
    assert (doc["errno"], doc["error"]) == (1, "auth failed")
    assert emulator.accepted() == []


async def test_a_sign_with_an_unencoded_plus_reads_as_a_space_and_fails(api: Api) -> None:
    et = next(
        et
        for et in range(int(NOW) + 3600, int(NOW) + 4600)
        if "+" in token(KEY_A, RES_A, et, encode=False)["authorization"]
    )
    assert await api.errno(token(KEY_A, RES_A, et, encode=False)) == 1
    assert await api.errno(token(KEY_A, RES_A, et)) == 0


async def test_a_token_expires_on_the_servers_clock_and_its_offset(
    api: Api, emulator: Emulator, clock: Clock
) -> None:
    headers = token(KEY_A, RES_A, et=int(NOW) + 60)
    assert await api.errno(headers) == 0
    emulator.faults = Faults(clock_offset_s=60.0)
    assert await api.errno(headers) == 1
    emulator.faults = Faults()
    clock.now += 61
    assert await api.errno(headers) == 1


async def test_each_product_is_found_by_its_own_api_key_on_the_old_paths(
    api: Api, emulator: Emulator
) -> None:
    assert await api.errno({"api-key": "key-a"}, "/nbiot") == 0
    assert await api.errno({"api-key": "key-b"}, "/nbiot", imei=OTHER_IMEI) == 0
    assert await api.errno({"api-key": "key-c"}, "/nbiot") == 1
    assert await api.errno(token(KEY_A, RES_A), "/nbiot") == 1  # a token is for /nb-iot
    assert [cmd.product for cmd in emulator.accepted()] == ["a", "b"]


# -- whose devices, whose commands ------------------------------------------------------------


async def test_an_imei_outside_the_products_devices_is_auth_failed(api: Api) -> None:
    b = token(KEY_B, RES_B)
    assert await api.errno(b, imei=IMEI) == 1
    assert await api.errno(b, imei=IMEI, obj_id="x") == 3  # malformed comes first
    assert await api.errno(b, imei=OTHER_IMEI) == 0
    assert await api.errno(token(KEY_A, RES_A), imei=IMEI) == 0  # a's devices: any
    query = {"imei": IMEI, "start": "2026-01-01T00:00:00"}
    status, doc = await api.call("GET", "/nb-iot/offline/history", b, query)
    assert (status, doc["errno"]) == (200, 1)


async def test_a_product_sees_and_cancels_only_its_own_commands(
    api: Api, emulator: Emulator
) -> None:
    a, b = token(KEY_A, RES_A), token(KEY_B, RES_B)
    uuid_a = (await api.create(a, imei=OTHER_IMEI))["data"]["uuid"]
    uuid_b = (await api.create(b, imei=OTHER_IMEI))["data"]["uuid"]
    query = {"imei": OTHER_IMEI, "start": "2026-01-01T00:00:00"}
    _, listed = await api.call("GET", "/nb-iot/offline/history", a, query)
    assert [item["cmd_uuid"] for item in listed["data"]["items"]] == [uuid_a]
    assert listed["data"]["total_count"] == 1
    one = {"imei": OTHER_IMEI}
    _, foreign = await api.call("GET", f"/nb-iot/offline/history/{uuid_b}", a, one)
    _, refused = await api.call("PUT", f"/nb-iot/offline/cancel/{uuid_b}", a, one)
    _, everything = await api.call("PUT", "/nb-iot/offline/cancel/all", a, one)
    assert (foreign["errno"], refused["errno"]) == (5006, 5006)
    assert everything["data"] == {"succ": [uuid_a], "failed": [], "total": 1}
    assert {cmd.uuid: cmd.send_status for cmd in emulator.accepted()} == {uuid_a: 2, uuid_b: 1}


# -- throttles, answer shapes, counters ----------------------------------------------------------


async def test_each_product_has_its_own_throttle(clock: Clock, mono: Clock) -> None:
    products = {
        "slow": Product(api_key="slow", throttle_rps=2),
        "loud": Product(api_key="loud", throttle_rps=1, throttle_mode="http429"),
        "free": Product(api_key="free"),
    }
    emulator = Emulator(
        Faults(throttle_retry_after=3), clock=clock, monotonic=mono, products=products
    )
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        api = Api(session)
        slow = [await api.errno({"api-key": "slow"}, "/nbiot") for _ in range(3)]
        free = [await api.errno({"api-key": "free"}, "/nbiot") for _ in range(5)]
        assert await api.errno({"api-key": "loud"}, "/nbiot") == 0
        status, text = await api.call(
            "POST", "/nbiot/execute/offline", {"api-key": "loud"}, params(), ARGS
        )
        mono.now += 1.0  # the window slides
        later = await api.errno({"api-key": "slow"}, "/nbiot")
    assert (slow, free, later) == ([0, 0, 7], [0] * 5, 0)
    assert (status, text) == (429, "429 Too Many Requests")
    stats = emulator.stats()
    assert stats["throttled"] == 2
    assert stats["products"] == {
        "slow": {"posts": 4, "accepted": 3, "throttled": 1, "auth_failed": 0},
        "loud": {"posts": 2, "accepted": 1, "throttled": 1, "auth_failed": 0},
        "free": {"posts": 5, "accepted": 5, "throttled": 0, "auth_failed": 0},
    }


async def test_a_code_product_answers_code_and_msg_everywhere(clock: Clock) -> None:
    product = Product(access_key=KEY_A, res=RES_A, answer_shape="code", throttle_rps=1)
    emulator = Emulator(clock=clock, monotonic=Clock(1.0), products={"new": product})
    headers = token(KEY_A, RES_A)
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        api = Api(session)
        accepted = await api.create(headers)
        throttled = await api.create(headers)
        refused = await api.create(token(KEY_B, RES_A))
        uuid = accepted["data"]["uuid"]
        path = f"/nb-iot/offline/history/{uuid}"
        _, detail = await api.call("GET", path, headers, {"imei": IMEI})
        _, bad = await api.call("GET", "/nb-iot/offline/history", headers, {"imei": "1"})
    assert accepted == {"code": 0, "msg": "succ", "data": {"uuid": uuid}}
    assert throttled == {"code": 7, "msg": "service internal error", "data": None}
    assert refused == {"code": 1, "msg": "auth failed", "data": None}
    assert (detail["code"], detail["msg"], detail["data"]["args"]) == (0, "succ", "reboot")
    assert "errno" not in detail
    assert bad == {"code": 3, "msg": "parameter required", "data": None}


async def test_arrivals_of_one_product_count_every_create_admitted_or_not(
    api: Api, emulator: Emulator, mono: Clock
) -> None:
    for t, headers in [(500.0, token(KEY_A, RES_A)), (500.5, token(KEY_B, RES_A)),
                       (501.0, token(KEY_B, RES_B)), (502.0, {"api-key": "nobody"})]:  # fmt: skip
        mono.now = t
        await api.create(headers, "/nb-iot" if "authorization" in headers else "/nbiot")
    assert emulator.arrivals() == [500.0, 500.5, 501.0, 502.0]
    assert emulator.arrivals("a") == [500.0, 500.5]  # a bad sign still names its product
    assert emulator.arrivals("b") == [501.0]
    async with api.session.get("/_emulator/arrivals", params={"product": "a"}) as resp:
        assert await resp.json() == [500.0, 500.5]
    async with api.session.get("/_emulator/arrivals", params={"product": "zzz"}) as resp:
        assert resp.status == 404
    with pytest.raises(ValueError, match="no product 'zzz'"):
        emulator.arrivals("zzz")
    counted = emulator.stats()["products"]
    assert counted == {
        "a": {"posts": 2, "accepted": 1, "throttled": 0, "auth_failed": 1},
        "b": {"posts": 1, "accepted": 0, "throttled": 0, "auth_failed": 1},  # IMEI is not b's
    }


# -- the newer platform's paths without products -----------------------------------------------


async def test_without_products_every_call_is_served_under_nb_iot_for_any_fresh_token(
    clock: Clock,
) -> None:
    emulator = Emulator(Faults(api_key="only-for-nbiot"), clock=clock)
    headers = token(KEY_A, "userid/42")
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        api = Api(session)
        execute = (await api.create(headers))["data"]["uuid"]
        window = {"imei": IMEI, "obj_id": "3", "obj_inst_id": "0", "expired_time": "2026-01-02"}
        window["expired_time"] += "T08:00:00"
        body = b'{"data": [{"res_id": 14, "val": "UTC+08"}]}'
        query = {**window, "mode": "1"}
        _, written = await api.call("POST", "/nb-iot/offline", headers, query, body)
        _, read = await api.call("GET", "/nb-iot/offline", headers, {**window, "res_id": "14"})
        one = {"imei": IMEI}
        start = {"imei": IMEI, "start": "2026-01-01T00:00:00"}
        _, listed = await api.call("GET", "/nb-iot/offline/history", headers, start)
        _, detail = await api.call("GET", f"/nb-iot/offline/history/{execute}", headers, one)
        _, log = await api.call("GET", f"/nb-iot/offline/history/{execute}/piecewise", headers, one)
        _, cancelled = await api.call("PUT", f"/nb-iot/offline/cancel/{execute}", headers, one)
        _, rest = await api.call("PUT", "/nb-iot/offline/cancel/all", headers, one)
        expired = await api.errno(token(KEY_A, "userid/42", et=int(NOW) - 1))
        malformed = await api.errno({"authorization": "version=2022-05-01"})
        old_path = await api.errno({"api-key": "only-for-nbiot"}, "/nbiot")
    assert (written["errno"], read["errno"]) == (0, 0)
    assert listed["data"]["total_count"] == 3
    assert detail["data"]["args"] == "reboot"
    assert log["data"][0]["log"] == "command cached"
    assert (cancelled["errno"], rest["data"]["total"]) == (0, 2)
    assert (expired, malformed, old_path) == (1, 1, 0)
    assert [cmd.product for cmd in emulator.accepted()] == [None] * 4
    assert emulator.stats()["products"] == {}


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs an api_key, or an access_key"),
        ({"access_key": KEY_A}, "access_key and res come together"),
        ({"api_key": "k", "res": RES_A}, "access_key and res come together"),
        ({"access_key": "not base64!", "res": RES_A}, "must be base64"),
        ({"access_key": KEY_A, "res": "devices/x"}, "res must be userid/<uid>"),
        ({"api_key": "k", "throttle_rps": 0}, "throttle_rps must be positive"),
        ({"api_key": "k", "throttle_mode": "drop"}, "throttle_mode must be"),
        ({"api_key": "k", "answer_shape": "xml"}, "answer_shape must be"),
    ],
)
def test_impossible_products_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Product(**settings)


def test_products_that_share_a_key_or_a_res_are_refused() -> None:
    with pytest.raises(ValueError, match="'a' and 'b' share a key"):
        Emulator(products={"a": Product(api_key="k"), "b": Product(api_key="k")})
    same_res = {
        "a": Product(access_key=KEY_A, res=RES_A),
        "b": Product(access_key=KEY_B, res=RES_A),
    }
    with pytest.raises(ValueError, match="'a' and 'b' share products/pa"):
        Emulator(products=same_res)
    with pytest.raises(ValueError, match="at least one product"):
        Emulator(products={})
    assert Product(api_key="k", imeis=[IMEI]).imeis == frozenset({IMEI})
