"""The emulator's device lists over real loopback sockets: the legacy ``GET /devices`` (paging,
every filter, the limits) and the newer platform's ``GET /device/list`` (token, product_id,
offset and limit, its answer shape)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given, settings, strategies as st

from dispatcher.emulator.device_lists import Page, legacy_query
from dispatcher.emulator.registry import Device, device_id, parse_beijing
from dispatcher.emulator.server import Emulator, Product, serve
from tests.support.clocks import Clock

NOW = 1767225600.0  # 2026-01-01 08:00:00 in UTC+8
KEY = {"api-key": "secret-key"}
ACCESS = base64.b64encode(b"product A's access key").decode()


def at(text: str) -> float:
    when = parse_beijing(text)
    assert when is not None
    return when


# seven devices: two cities, two batches, some offline, created over 2025
FLEET = [
    Device("864000000000001", at("2025-01-05 10:00:00"), ("city:hz", "batch:2025a"), True),
    Device("864000000000002", at("2025-02-05 10:00:00"), ("city:sz", "batch:2025a"), False),
    Device("864000000000003", at("2025-03-05 10:00:00"), ("city:hz", "batch:2025b"), True),
    Device("864000000000004", at("2025-04-05 10:00:00"), ("city:hz",), False, title="meter-4"),
    Device("864000000000005", at("2025-05-05 10:00:00"), ("city:sz",), True, title="meter-5"),
    Device("864000000000006", at("2025-06-05 10:00:00"), (), True, title="pump-6"),
    Device("864000000000007", at("2025-06-05 10:00:00"), ("city:hz",), True),
]


def token(res: str = "products/pa", et: int = int(NOW) + 3600) -> dict[str, str]:
    message = f"{et}\nsha1\n{res}\n2022-05-01".encode()
    sign = base64.b64encode(hmac.new(base64.b64decode(ACCESS), message, hashlib.sha1).digest())
    q = quote(res, safe="")
    return {"authorization": f"version=2022-05-01&res={q}&et={et}&method=sha1&sign="
            + quote(sign.decode(), safe="")}  # fmt: skip


@asynccontextmanager
async def session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with serve(emulator) as url, aiohttp.ClientSession(url) as s:
        yield s


async def get(
    s: aiohttp.ClientSession, path: str, headers: Mapping[str, str] = KEY, **query: str
) -> Any:
    async with s.get(path, params=query, headers=headers) as resp:
        assert resp.status == 200
        return await resp.json()


def imeis(doc: Any) -> list[str]:
    return [next(iter(d["auth_info"])) for d in doc["data"]["devices"]]


def ends(*numbers: int) -> list[str]:
    return [f"86400000000000{n}" for n in numbers]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(clock=Clock(NOW), devices=FLEET)


async def test_a_device_is_listed_with_its_platform_id_and_its_imei_as_the_auth_info_key(
    emulator: Emulator,
) -> None:
    async with session(emulator) as s:
        doc = await get(s, "/devices", per_page="1")
    assert doc["errno"] == 0
    data = doc["data"]
    assert (data["total_count"], data["page"], data["per_page"]) == (7, 1, 1)
    [first] = data["devices"]
    assert first == {
        "id": device_id("864000000000001"),
        "title": "864000000000001",
        "online": True,
        "tags": ["city:hz", "batch:2025a"],
        "auth_info": {"864000000000001": FLEET[0].imsi},
        "protocol": "LWM2M",
        "create_time": "2025-01-05 10:00:00",
        "location": None,
        "other": {},
    }
    assert first["id"].isdigit() and first["id"] != "864000000000001"
    assert device_id("864000000000001") == first["id"]  # the same IMEI, the same id


async def test_pages_meet_every_device_once_in_creation_order(emulator: Emulator) -> None:
    seen: list[str] = []
    async with session(emulator) as s:
        for page in ("1", "2", "3", "4"):
            seen += imeis(await get(s, "/devices", page=page, per_page="3"))
    # devices 6 and 7 share a create_time: ordered by id then, the same on every page
    tied = sorted(ends(6, 7), key=lambda imei: int(device_id(imei)))
    assert seen == [*ends(1, 2, 3, 4, 5), *tied]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"tag": "city:hz"}, [1, 3, 4, 7]),
        ({"tag": "batch:2025a"}, [1, 2]),
        ({"tag": "city:bj"}, []),
        ({"online": "true"}, [1, 3, 5, 6, 7]),
        ({"online": "false"}, [2, 4]),
        ({"online": "false", "tag": "city:hz"}, [4]),
        ({"key_words": "meter"}, [4, 5]),
        ({"key_words": "pump-6"}, [6]),
        ({"key_words": "86400000000000"}, [1, 2, 3, 4, 5, 6, 7]),
        ({"key_words": "864000000000003"}, [3]),
        ({"begin": "2025-03-05T10:00:00"}, [3, 4, 5, 6, 7]),
        ({"end": "2025-03-05 10:00:00"}, [1, 2, 3]),
        ({"begin": "2025-02-01T00:00:00", "end": "2025-04-30T00:00:00"}, [2, 3, 4]),
        ({"device_id": f"{device_id(ends(2)[0])},{device_id(ends(5)[0])}"}, [2, 5]),
        ({"auth_info": ends(4)[0]}, [4]),
    ],
)
async def test_each_filter_selects_exactly_its_devices(
    emulator: Emulator, query: dict[str, str], expected: list[int]
) -> None:
    async with session(emulator) as s:
        doc = await get(s, "/devices", **query)
    assert doc["errno"] == 0
    assert sorted(imeis(doc)) == ends(*expected)
    assert doc["data"]["total_count"] == len(expected)


async def test_a_key_word_matches_the_start_of_the_platform_id(emulator: Emulator) -> None:
    wanted = device_id(ends(3)[0])
    async with session(emulator) as s:
        doc = await get(s, "/devices", key_words=wanted[:4])
    assert ends(3)[0] in imeis(doc)
    assert all(d["id"].startswith(wanted[:4]) for d in doc["data"]["devices"])


@pytest.mark.parametrize(
    "query",
    [
        {"online": "yes"},
        {"online": "True"},
        {"page": "0"},
        {"page": "10001"},
        {"page": "x"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"begin": "2025-13-01T00:00:00"},
        {"end": "yesterday"},
        {"device_id": "abc"},
        {"device_id": ",".join(str(n) for n in range(101))},
    ],
)
async def test_a_malformed_or_out_of_range_value_is_errno_3(
    emulator: Emulator, query: dict[str, str]
) -> None:
    async with session(emulator) as s:
        doc = await get(s, "/devices", **query)
    assert (doc["errno"], doc["data"]) == (3, None)


async def test_the_limits_themselves_are_accepted(emulator: Emulator) -> None:
    async with session(emulator) as s:
        last = await get(s, "/devices", page="10000", per_page="100")
        default = await get(s, "/devices")
    assert last["errno"] == 0 and last["data"]["devices"] == []
    assert last["data"]["total_count"] == 7
    assert default["data"]["per_page"] == 30 and len(default["data"]["devices"]) == 7


async def test_the_list_needs_the_api_key(emulator: Emulator) -> None:
    async with session(emulator) as s:
        doc = await get(s, "/devices", headers={})
    assert doc["errno"] == 1


async def test_without_registered_devices_the_devices_are_those_commands_named() -> None:
    emulator = Emulator(clock=Clock(NOW))
    query = {"obj_id": "3", "obj_inst_id": "0", "res_id": "4",
             "expired_time": "2026-01-02T08:00:00"}  # fmt: skip
    async with session(emulator) as s:
        empty = await get(s, "/devices")
        for imei in ends(2, 1, 2):
            async with s.post("/nbiot/execute/offline", params={"imei": imei, **query},
                              headers=KEY) as resp:  # fmt: skip
                assert (await resp.json())["errno"] == 0
        doc = await get(s, "/devices")
    assert empty["data"] == {"total_count": 0, "page": 1, "per_page": 30, "devices": []}
    assert sorted(imeis(doc)) == ends(1, 2)
    assert {d["create_time"] for d in doc["data"]["devices"]} == {"2026-01-01 08:00:00"}


def newer(devices: Sequence[Device] = FLEET, **product: Any) -> Emulator:
    products = {"pa": Product(access_key=ACCESS, res="products/pa", **product)}
    return Emulator(
        clock=Clock(NOW), products=products, devices=[replace(d, product="pa") for d in devices]
    )


async def test_the_newer_list_pages_by_offset_and_limit_in_the_products_shape() -> None:
    emulator = newer(answer_shape="code")
    async with session(emulator) as s:
        first = await get(s, "/device/list", token(), product_id="pa", offset="0", limit="4")
        rest = await get(s, "/device/list", token(), product_id="pa", offset="4", limit="100")
    assert first["code"] == 0 and first["data"]["total"] == 7
    listed = first["data"]["list"] + rest["data"]["list"]
    assert sorted(d["imei"] for d in listed) == ends(1, 2, 3, 4, 5, 6, 7)
    assert len(first["data"]["list"]) == 4
    assert first["data"]["list"][1] == {
        "name": "864000000000002",
        "status": 0,
        "imei": "864000000000002",
        "imsi": FLEET[1].imsi,
        "create_time": "2025-02-05 10:00:00",
        "tags": ["city:sz", "batch:2025a"],
    }
    assert {d["status"] for d in listed} == {0, 1}


async def test_the_newer_list_filters_by_device_name() -> None:
    async with session(newer()) as s:
        doc = await get(s, "/device/list", token(), product_id="pa", device_name="meter")
    assert [d["imei"] for d in doc["data"]["list"]] == ends(4, 5)


@pytest.mark.parametrize(
    ("query", "errno"),
    [
        ({"product_id": "pb"}, 1),  # not the token's product
        ({}, 3),  # product_id missing
        ({"product_id": "pa", "limit": "0"}, 3),
        ({"product_id": "pa", "limit": "101"}, 3),
        ({"product_id": "pa", "offset": "-1"}, 3),
    ],
)
async def test_the_newer_list_refuses_a_wrong_product_or_range(
    query: dict[str, str], errno: int
) -> None:
    async with session(newer()) as s:
        doc = await get(s, "/device/list", token(), **query)
    assert doc["errno"] == errno


async def test_the_newer_list_needs_a_valid_token() -> None:
    async with session(newer()) as s:
        expired = await get(s, "/device/list", token(et=int(NOW) - 1), product_id="pa")
        unsigned = await get(s, "/device/list", KEY, product_id="pa")
    assert expired["errno"] == 1 and unsigned["errno"] == 1


@settings(max_examples=25, deadline=None)
@given(per_page=st.integers(1, 9), count=st.integers(0, 20))
def test_any_page_size_pages_through_every_device_once(per_page: int, count: int) -> None:
    devices = [Device(f"8640000000{n:05d}", NOW - n % 4, ()) for n in range(count)]
    seen: list[str] = []
    for page in range(1, count // per_page + 3):
        got = legacy_query({"page": str(page), "per_page": str(per_page)}, devices)
        assert isinstance(got, Page) and got.total == count
        seen += [d.imei for d in got.devices]
    assert sorted(seen) == sorted(d.imei for d in devices) and len(set(seen)) == count
