"""The device-list calls (onenet/devices.py): the legacy ``GET /devices`` with its filters and
100 a page, the IMEI as the key of ``auth_info`` (an object or a JSON text), the platform id kept;
the newer ``GET /device/list`` with offset and limit and the filters applied here; both answer
envelopes; an errno as a typed error carrying it."""

from __future__ import annotations

import re
from datetime import datetime

import orjson
import pytest
from yarl import URL

from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import TokenSource
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.devices import Device, DeviceLister, Filters
from dispatcher.times import BEIJING
from tests.support.device_lists import (
    BASE,
    fleet,
    imei_of,
    legacy_list,
    legacy_lister,
    newer_list,
    refusal,
)
from tests.support.iot_api import ACCESS_KEY, RES
from tests.support.onenet import Routes

DEVICES = re.compile(r"http://onenet\.test/devices\?.*")
LIST = re.compile(r"http://onenet\.test/device/list\?.*")


async def test_a_legacy_page_sends_every_filter_and_100_a_page() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(3)))
    filters = Filters(
        tag="meters",
        online=False,
        key_words="met er",
        created_after=datetime(2026, 1, 1, tzinfo=BEIJING),
        created_before=datetime(2026, 2, 1, 8, 30, tzinfo=BEIJING),
    )
    await legacy_lister(routes).page(filters, 3)
    (request,) = routes.sent
    url = URL(request.url, encoded=True)
    assert url.path == "/devices"
    assert dict(url.query) == {
        "key_words": "met er",
        "tag": "meters",
        "online": "false",
        "begin": "2026-01-01T00:00:00",
        "end": "2026-02-01T08:30:00",
        "page": "3",
        "per_page": "100",
    }
    assert request.headers["api-key"] == "test-key"


async def test_a_legacy_device_is_its_auth_info_key_with_its_platform_id() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(2, tag_every=1)))
    page = await legacy_lister(routes).page(Filters(), 1)
    assert page.devices[0] == Device(
        imei_of(0), "1000", "meter-0", True, ("meters",), "2026-01-01 10:00:00"
    )
    assert (page.listed, page.total, page.last) == (2, 2, True)


async def test_auth_info_given_as_json_text_is_read_and_a_device_without_one_left_out() -> None:
    items = [
        {"id": 7, "title": "a", "auth_info": orjson.dumps({imei_of(7): "x"}).decode()},
        {"id": 8, "title": "no imei", "auth_info": None},
        {"id": 9, "title": "not json", "auth_info": "{"},
    ]
    routes = Routes()
    body = {"errno": 0, "error": "succ", "data": {"devices": items, "total_count": 3}}
    routes.get(DEVICES, body=orjson.dumps(body))
    page = await legacy_lister(routes).page(Filters(), 1)
    assert [(d.imei, d.id) for d in page.devices] == [(imei_of(7), "7")]
    assert page.listed == 3  # what OneNET listed, for the paging


async def test_an_errno_is_a_typed_error_carrying_it_without_the_key() -> None:
    routes = Routes()
    routes.get(DEVICES, body=refusal(1, "auth failed for test-key"))
    with pytest.raises(OneNetUnavailable) as caught:
        await legacy_lister(routes).page(Filters(), 1)
    assert caught.value.errno == 1
    assert not caught.value.retryable
    assert "auth failed" in str(caught.value)
    assert "test-key" not in str(caught.value)


async def test_the_newer_envelope_code_msg_is_read_on_the_legacy_list_too() -> None:
    routes = Routes()
    body = {"code": 0, "msg": "ok", "data": {"devices": fleet(1), "total_count": 1}}
    routes.get(DEVICES, body=orjson.dumps(body))
    page = await legacy_lister(routes).page(Filters(), 1)
    assert [d.imei for d in page.devices] == [imei_of(0)]


async def test_an_answer_without_a_device_list_is_an_error() -> None:
    routes = Routes()
    routes.get(DEVICES, body=orjson.dumps({"errno": 0, "error": "succ", "data": {}}))
    with pytest.raises(OneNetUnavailable, match="without a device list"):
        await legacy_lister(routes).page(Filters(), 1)


def newer_lister(routes: Routes) -> DeviceLister:
    client = OneNetClient(
        routes.transport, BASE, platform="iot-api", token=TokenSource(ACCESS_KEY, RES)
    )
    return DeviceLister(client, "abc123")


async def test_the_newer_list_pages_by_offset_and_filters_here() -> None:
    routes = Routes()
    routes.get(LIST, callback=newer_list(fleet(250)), repeat=True)
    lister = newer_lister(routes)
    page = await lister.page(Filters(tag="meters", online=True), 2)
    url = URL(routes.sent[0].url, encoded=True)
    assert dict(url.query) == {"product_id": "abc123", "offset": "100", "limit": "100"}
    assert "authorization" in routes.sent[0].headers
    assert page.listed == 100 and page.total == 250
    # devices 100..199 listed; kept: tagged meters (even) and online (multiple of 3)
    assert [d.imei for d in page.devices] == [imei_of(i) for i in range(102, 200, 6)]
    assert page.devices[0].id == "dev-1102"


async def test_the_newer_list_filters_key_words_and_creation_time_here() -> None:
    routes = Routes()
    routes.get(LIST, callback=newer_list(fleet(30)), repeat=True)
    filters = Filters(
        key_words="dev-100",
        created_after=datetime(2026, 1, 3, tzinfo=BEIJING),
        created_before=datetime(2026, 1, 9, tzinfo=BEIJING),
    )
    page = await newer_lister(routes).page(filters, 1)
    assert [d.id for d in page.devices] == [f"dev-100{i}" for i in range(2, 8)]


def test_the_newer_list_needs_a_product_id() -> None:
    client = OneNetClient(
        Routes().transport, BASE, platform="iot-api", token=TokenSource(ACCESS_KEY, RES)
    )
    with pytest.raises(ValueError, match="product_id"):
        DeviceLister(client)


@pytest.mark.parametrize("number", [0, 10_001])
async def test_a_page_outside_1_to_10000_is_refused(number: int) -> None:
    with pytest.raises(ValueError, match="10000"):
        await legacy_lister(Routes()).page(Filters(), number)
