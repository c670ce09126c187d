"""The newer OneNET platform (iot-api): every call under /nb-iot with a signed token, the key and
the sign never in a message, both answer shapes, and the client against the emulator."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import orjson
import pytest

from dispatcher.emulator.server import Emulator, Faults, Product, serve
from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import (
    AiohttpTransport,
    AnswerLost,
    MockTransport,
    Request,
    Response,
    TokenSource,
    Transport,
)
from dispatcher.onenet.client import (
    OfflineRequest,
    OneNetClient,
    Outcome,
    Verdict,
    WriteValue,
    classify,
)
from tests.support.clocks import Clock
from tests.support.iot_api import (
    ACCESS_KEY,
    NOW,
    RES,
    VECTORS,
    by_hand,
)
from tests.support.onenet import Routes, offline, sent

IMEI = "861234567890123"
BASE = "http://iot.test"
UUID = "42742677-adc3-54ca-83a1-5aaaf71482f8"


def execute(**changes: Any) -> OfflineRequest:
    fields: dict[str, Any] = {
        "imei": IMEI,
        "obj_id": 3201,
        "obj_inst_id": 0,
        "res_id": 5750,
        "expired_time": "2026-01-03T00:00:00",
        "valid_time": None,
        "args": "reboot",
        "retry": 2,
        "timeout": 30,
        "trigger_msg": 7,
    }
    fields.update(changes)
    return offline(**fields)


def write() -> OfflineRequest:
    return offline(
        "write", imei=IMEI, obj_id=3, obj_inst_id=0, res_id=None, mode=1,
        values=(WriteValue(14, "UTC+08"),), expired_time="2026-01-03T00:00:00",
        retry=2, timeout=30, trigger_msg=7,
    )  # fmt: skip


def read() -> OfflineRequest:
    return offline(
        "read", imei=IMEI, obj_id=3, obj_inst_id=0, res_id=3,
        expired_time="2026-01-03T00:00:00", retry=2, timeout=30, trigger_msg=7,
    )  # fmt: skip


def answer(errno: int = 0, error: str = "succ", data: object = None) -> bytes:
    return orjson.dumps({"errno": errno, "error": error, "data": data})


def code_answer(code: int = 0, msg: str = "succ", data: object = None) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": data})


ANY_URL = re.compile(r"^http://iot\.test/.*$")


def iot_client(
    transport: Transport, clock: Clock, base: str = BASE, key: str = ACCESS_KEY
) -> tuple[OneNetClient, TokenSource]:
    token = TokenSource(key, RES, method="sha256", clock=clock)
    return OneNetClient(transport, base, platform="iot-api", token=token), token


async def test_every_call_goes_under_nb_iot_with_the_token_and_no_api_key(routes: Routes) -> None:
    for method in ("POST", "GET", "PUT"):
        routes.add(method, ANY_URL, body=answer(data={"uuid": UUID}), repeat=True)
    client, token = iot_client(routes.transport, Clock(NOW))
    assert client.execute_url == "http://iot.test/nb-iot/execute/offline"
    await client.create(execute())
    await client.create(write())
    await client.create(read())
    await client.probe(IMEI, datetime.now(UTC))
    await client.cancel(IMEI, UUID)
    with pytest.raises(OneNetUnavailable):  # the mock's data is not a history page
        await client.history(IMEI, datetime.now(UTC))
    await client.detail(IMEI, UUID)
    calls = sent(routes)
    assert sorted((method, url.path) for method, url, _ in calls) == [
        ("GET", "/nb-iot/offline"),
        ("GET", "/nb-iot/offline/history"),
        ("GET", "/nb-iot/offline/history"),
        ("GET", f"/nb-iot/offline/history/{UUID}"),
        ("POST", "/nb-iot/execute/offline"),
        ("POST", "/nb-iot/offline"),
        ("PUT", f"/nb-iot/offline/cancel/{UUID}"),
    ]
    for method, _, kwargs in calls:
        headers = dict(kwargs["headers"])
        assert headers.pop("authorization") == token.header()
        assert headers in ({}, {"Content-Type": "application/json"}), method


async def test_the_header_follows_the_token_when_it_is_renewed(routes: Routes) -> None:
    routes.post(ANY_URL, body=answer(data={"uuid": UUID}), repeat=True)
    clock = Clock(NOW)
    client, token = iot_client(routes.transport, clock)
    await client.create(execute())
    await client.create(execute(args=None))
    clock.now += 3500.0  # within 300 s of et: the next call renews
    await client.create(execute())
    headers = [kwargs["headers"]["authorization"] for _, _, kwargs in sent(routes)]
    assert headers[0] == headers[1] != headers[2]
    assert token.renewals == 1
    assert headers[2] == token.header()


def test_the_platform_and_its_credentials_are_checked() -> None:
    session = MockTransport(lambda req: Response(500))
    token = TokenSource(ACCESS_KEY, RES)
    with pytest.raises(ValueError, match="'iot-api' needs a token"):
        OneNetClient(session, BASE, platform="iot-api")
    with pytest.raises(ValueError, match="a token is for platform 'iot-api'"):
        OneNetClient(session, BASE, "k", token=token)
    with pytest.raises(ValueError, match="is not 'onenet' or 'iot-api'"):
        OneNetClient(session, BASE, "k", platform="nbiot")
    onenet = OneNetClient(session, BASE + "/", "k")
    assert onenet.execute_url == "http://iot.test/nbiot/execute/offline"


def _secrets_of(token: TokenSource) -> list[str]:
    signed = token.secrets()[-2]
    return [ACCESS_KEY, signed, quote(signed, safe="")]


async def test_the_access_key_and_the_sign_are_masked_in_outcomes_and_exceptions(
    routes: Routes,
) -> None:
    def echo(req: Request) -> Response:
        header = req.headers["authorization"]
        encoded = header.rsplit("=", 1)[-1]
        text = f"bad token {header} for key {ACCESS_KEY}; sign {unquote(encoded)} ({encoded})"
        return Response(200, answer(1, text))

    routes.post(ANY_URL, callback=echo, repeat=True)
    routes.get(ANY_URL, callback=echo, repeat=True)
    client, token = iot_client(routes.transport, Clock(NOW - 3600.0))  # et = ET: the sha256 vector
    outcome = await client.create(execute())
    with pytest.raises(OneNetUnavailable) as caught:
        await client.history(IMEI, datetime.now(UTC))
    secrets = _secrets_of(token)
    assert secrets[1] == VECTORS["sha256"]  # holds "+", "/" and "=": encoded, it differs
    assert outcome.verdict is Verdict.REJECTED
    for text in (outcome.error, str(caught.value)):
        assert "***" in text
        assert [s for s in secrets if s in text] == []


async def test_a_sign_in_a_network_error_is_masked_and_so_is_the_one_before_renewal(
    routes: Routes,
) -> None:
    clock = Clock(NOW)
    client, token = iot_client(routes.transport, clock)
    routes.post(ANY_URL, body=answer(data={"uuid": UUID}))
    await client.create(execute())  # the first token
    old = _secrets_of(token)
    clock.now += 3500.0  # the next call renews it
    signed = by_hand("sha256", int(clock.now) + 3600)
    new = [signed, quote(signed, safe="")]
    problem = f"connection reset while sending sign={old[2]} ({old[1]}), now {new[0]} {new[1]}"
    routes.post(ANY_URL, exception=AnswerLost(f"ClientOSError: [Errno 104] {problem}"))
    routes.put(
        ANY_URL, exception=AnswerLost(f"ClientOSError: [Errno 104] {problem} key {ACCESS_KEY}")
    )
    outcome = await client.create(execute())
    with pytest.raises(OneNetUnavailable) as caught:
        await client.cancel(IMEI, UUID)
    assert outcome.verdict is Verdict.IN_DOUBT
    assert token.renewals == 1 and token.secrets()[1] == signed
    for text in (outcome.error, str(caught.value)):
        assert text.count("***") >= 4
        assert [s for s in {*old, *new} if s in text] == []


@pytest.mark.parametrize(
    ("doc", "verdict", "errno"),
    [
        ({"code": 0, "msg": "succ", "data": {"uuid": UUID}}, Verdict.ACCEPTED, 0),
        ({"code": 1, "msg": "auth failed", "data": None}, Verdict.REJECTED, 1),
        ({"code": 7, "msg": "busy"}, Verdict.TRANSIENT, 7),
        ({"code": 5117, "msg": "rpc error"}, Verdict.TRANSIENT, 5117),
        ({"code": 5108, "msg": "rpc response error"}, Verdict.RETRY_ONCE, 5108),
        ({"code": 0, "msg": "succ", "data": {}}, Verdict.IN_DOUBT, 0),
        ({"code": "0", "data": {"uuid": UUID}}, Verdict.IN_DOUBT, None),
        ({"errno": 3, "error": "parameter required", "code": 0, "data": {"uuid": UUID}},
         Verdict.REJECTED, 3),
        ({"errno": 0, "error": "succ", "code": 3, "data": {"uuid": UUID}}, Verdict.ACCEPTED, 0),
        ({"errno": None, "code": 0, "data": {"uuid": UUID}}, Verdict.IN_DOUBT, None),
    ],
)  # fmt: skip
def test_a_code_is_an_errno_and_an_errno_wins_over_a_code(
    doc: dict[str, object], verdict: Verdict, errno: int | None
) -> None:
    outcome = classify(200, orjson.dumps(doc), {})
    assert (outcome.verdict, outcome.errno) == (verdict, errno)
    assert outcome.throttled is (errno == 7)
    if verdict is Verdict.REJECTED:
        assert outcome.error == (doc.get("error") or doc.get("msg"))


def test_a_gateways_code_that_echoes_its_http_status_is_not_onenets() -> None:
    page = orjson.dumps({"code": 404, "msg": "Not Found"})
    outcome = classify(404, page, {"Content-Type": "application/json"})
    assert (outcome.verdict, outcome.misrouted, outcome.errno) == (Verdict.TRANSIENT, True, None)
    business = classify(403, code_answer(1, "auth failed"), {})
    assert (business.verdict, business.errno, business.misrouted) == (Verdict.REJECTED, 1, False)


async def test_follow_ups_read_the_code_shape(routes: Routes) -> None:
    item = {"cmd_uuid": UUID, "type": "EXECUTE", "imei": IMEI, "send_status": 1,
            "create_time": "2026-01-01 08:00:00", "valid_time": "2026-01-01 08:00:00",
            "expired_time": "2026-01-03 08:00:00", "trigger_msg": 7}  # fmt: skip
    routes.get(
        re.compile(r"^http://iot\.test/nb-iot/offline/history\?.*$"),
        body=code_answer(data={"total_count": 1, "items": [item]}),
    )
    detail_url = f"{BASE}/nb-iot/offline/history/{UUID}?imei={IMEI}"
    routes.get(detail_url, body=code_answer(3, "parameter required"))
    cancel_url = f"{BASE}/nb-iot/offline/cancel/{UUID}?imei={IMEI}"
    routes.put(cancel_url, body=code_answer())
    routes.put(cancel_url, body=code_answer(5006, "system logic limit"))
    client, _ = iot_client(routes.transport, Clock(NOW))
    [listed] = await client.history(IMEI, datetime.now(UTC))
    with pytest.raises(OneNetUnavailable, match="errno 3 parameter required") as caught:
        await client.detail(IMEI, UUID)
    done = await client.cancel(IMEI, UUID)
    refused = await client.cancel(IMEI, UUID)
    assert (listed.uuid, listed.send_status) == (UUID, 1)
    assert (caught.value.errno, caught.value.retryable) == (3, False)
    assert done.cancelled
    assert refused.refusal is not None
    assert (refused.cancelled, refused.refusal.errno, refused.refusal.error) == (
        False,
        5006,
        "system logic limit",
    )


@pytest.mark.parametrize("shape", ["errno", "code"])
async def test_every_call_is_accepted_end_to_end_on_the_emulator(shape: str) -> None:
    clock = Clock(NOW)
    product = Product(access_key=ACCESS_KEY, res=RES, answer_shape=shape)
    emulator = Emulator(clock=clock, products={"fleet": product})
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        client, _ = iot_client(AiohttpTransport(session), clock, url)
        created: list[Outcome] = [
            await client.create(execute()),
            await client.create(write()),
            await client.create(read()),
        ]
        probe = await client.probe(IMEI, datetime.fromtimestamp(NOW - 60, UTC))
        items = await client.history(IMEI, datetime.fromtimestamp(NOW - 60, UTC))
        detail = await client.detail(IMEI, created[0].uuid or "")
        cancelled = await client.cancel(IMEI, created[1].uuid or "")
        again = await client.cancel(IMEI, created[1].uuid or "")
        late = await client.create(execute(expired_time="2025-12-31T00:00:00"))
    assert [o.verdict for o in created] == [Verdict.ACCEPTED] * 3
    assert (probe.verdict, probe.errno) == (Verdict.ACCEPTED, 0)
    assert [i.uuid for i in items] == [o.uuid for o in created]
    assert [i.type for i in items] == ["EXECUTE", "WRITE", "READ"]
    assert detail["args"] == "reboot"
    assert cancelled.cancelled
    assert again.refusal is not None and again.refusal.errno == 5006  # no longer waiting
    assert (late.verdict, late.errno, late.error) == (Verdict.REJECTED, 5006, "system logic limit")
    assert {cmd.product for cmd in emulator.accepted()} == {"fleet"}
    assert [cmd.send_status for cmd in emulator.accepted()] == [1, 2, 1]


async def test_a_wrong_access_key_is_errno_1_and_a_lapsed_token_is_signed_again() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, products={"fleet": Product(access_key=ACCESS_KEY, res=RES)})
    wrong_key = base64.b64encode(b"another product's key").decode()
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        stale, _ = iot_client(
            AiohttpTransport(session), Clock(NOW - 3600.0), url
        )  # et == the server's now
        wrong, _ = iot_client(AiohttpTransport(session), clock, url, key=wrong_key)
        outcomes = [await c.create(execute()) for c in (stale, wrong)]
        with pytest.raises(OneNetUnavailable) as caught:
            await wrong.history(IMEI, datetime.fromtimestamp(NOW, UTC))
        emulator.faults = Faults(clock_offset_s=3601.0)  # the server is ahead: any token is old
        fresh, _ = iot_client(AiohttpTransport(session), clock, url)
        ahead = await fresh.create(execute())
        emulator.faults = Faults()
        fine = await fresh.create(execute())
    # A token that lapsed by the server's clock (its Date at or past et) is refused once, then
    # signed again on that clock and taken; a wrong key's is refused, and stays refused.
    assert [o.verdict for o in (outcomes[0], ahead, fine)] == [Verdict.ACCEPTED] * 3
    assert (outcomes[1].verdict, outcomes[1].errno, outcomes[1].error) == (
        Verdict.REJECTED,
        1,
        "auth failed",
    )
    assert (caught.value.errno, caught.value.retryable) == (1, False)
    assert emulator.stats()["products"] == {
        "fleet": {"posts": 6, "accepted": 3, "throttled": 0, "auth_failed": 3}
    }


async def test_the_onenet_platform_on_the_same_emulator_still_uses_the_api_key() -> None:
    emulator = Emulator(
        clock=Clock(NOW),
        products={
            "old": Product(api_key="old-key"),
            "new": Product(access_key=ACCESS_KEY, res=RES),
        },
    )
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        old = await OneNetClient(AiohttpTransport(session), url, "old-key").create(execute())
        wrong = await OneNetClient(AiohttpTransport(session), url, ACCESS_KEY).create(execute())
        new, _ = iot_client(AiohttpTransport(session), Clock(NOW), url)
        signed = await new.create(execute())
    assert (old.verdict, wrong.errno, signed.verdict) == (Verdict.ACCEPTED, 1, Verdict.ACCEPTED)
    assert [cmd.product for cmd in emulator.accepted()] == ["old", "new"]
