"""The newer OneNET platform (iot-api): the signed token, and the client on ``/nb-iot/...`` with
``authorization``, against aioresponses and the emulator; both answer shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
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
    sign,
    token_header,
)
from dispatcher.onenet.client import (
    ExecuteRequest,
    OneNetClient,
    Outcome,
    ReadRequest,
    Verdict,
    WriteRequest,
    WriteValue,
    classify,
)
from tests.support.onenet import Routes, sent

ACCESS_KEY = "c2VjcmV0LWFjY2Vzcy1rZXktZm9yLXRlc3Rz"  # base64 of b"secret-access-key-for-tests"
RES = "products/abc123"
ET = 1767225600  # 2026-01-01 00:00:00 UTC
NOW = float(ET)
IMEI = "861234567890123"
BASE = "http://iot.test"
UUID = "42742677-adc3-54ca-83a1-5aaaf71482f8"
# HMAC(base64decode(ACCESS_KEY), "1767225600\n<method>\nproducts/abc123\n2022-05-01"), base64:
# computed with `openssl dgst -<method> -mac HMAC -macopt hexkey:... -binary | base64`.
VECTORS = {
    "md5": "EtOHXxAApcAWe6rpDaIb6Q==",
    "sha1": "JgeDsbYtUyb/59NZf4mTKE2VceE=",
    "sha256": "/bouZ8KItTlMtlNED92WW53DTbWtFXfd/zeruaq+GIE=",
}


@dataclass
class Clock:
    """A settable clock, for the token and for the emulator's server time."""

    now: float

    def __call__(self) -> float:
        return self.now


def by_hand(method: str, et: int, res: str = RES, version: str = "2022-05-01") -> str:
    key = base64.b64decode(ACCESS_KEY)
    message = f"{et}\n{method}\n{res}\n{version}".encode()
    return base64.b64encode(hmac.new(key, message, getattr(hashlib, method)).digest()).decode()


def execute(**changes: Any) -> ExecuteRequest:
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
    return ExecuteRequest(**fields)


def write() -> WriteRequest:
    return WriteRequest(
        IMEI, 3, 0, 1, (WriteValue(14, "UTC+08"),), "2026-01-03T00:00:00", None, 2, 30, 7
    )


def read() -> ReadRequest:
    return ReadRequest(IMEI, 3, 0, 3, "2026-01-03T00:00:00", None, 2, 30, 7)


def answer(errno: int = 0, error: str = "succ", data: object = None) -> bytes:
    return orjson.dumps({"errno": errno, "error": error, "data": data})


def code_answer(code: int = 0, msg: str = "succ", data: object = None) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": data})


# -- the signature and the header -------------------------------------------------------------


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256"])
def test_the_sign_matches_a_fixed_vector_and_the_formula_by_hand(method: str) -> None:
    assert sign(ACCESS_KEY, RES, ET, method, "2022-05-01") == VECTORS[method]
    assert by_hand(method, ET) == VECTORS[method]
    assert sign(ACCESS_KEY, "userid/42", ET + 1, method, "2020-05-29") == by_hand(
        method, ET + 1, "userid/42", "2020-05-29"
    )


def test_the_header_url_encodes_every_value() -> None:
    header = token_header(ACCESS_KEY, RES, ET, "sha256", "2022-05-01")
    assert header == (
        "version=2022-05-01&res=products%2Fabc123&et=1767225600&method=sha256"
        "&sign=%2FbouZ8KItTlMtlNED92WW53DTbWtFXfd%2Fzeruaq%2BGIE%3D"
    )
    device = token_header(ACCESS_KEY, "products/p1/devices/d 1", ET, "sha1", "2022-05-01")
    assert "&res=products%2Fp1%2Fdevices%2Fd%201&" in device


def test_a_token_is_made_on_first_use_and_kept_until_renewal_is_due() -> None:
    clock = Clock(NOW)
    token = TokenSource(ACCESS_KEY, RES, clock=clock)
    assert (token.et, token.renewals) == (None, 0)
    assert token.secrets() == (ACCESS_KEY,)  # no sign yet; the key needs no encoding
    first = token.header()
    assert first == token_header(ACCESS_KEY, RES, ET + 3600, "sha1", "2022-05-01")
    assert token.et == ET + 3600
    clock.now = NOW + 3300  # exactly 300 s left: not yet
    assert token.header() == first
    clock.now = NOW + 3300.5  # less than 300 s left: a new token
    second = token.header()
    assert second != first
    assert (token.renewals, token.et) == (1, ET + 3300 + 3600)
    assert token.header() is second


def test_a_short_token_is_renewed_a_fifth_of_its_lifetime_ahead() -> None:
    clock = Clock(NOW + 0.25)
    token = TokenSource(ACCESS_KEY, RES, method="sha256", lifetime_s=100, clock=clock)
    token.header()
    assert token.et == ET + 100  # int(now + lifetime)
    clock.now = NOW + 80.0  # 20 s left: the margin is min(300, 100 / 5) = 20
    token.header()
    assert token.renewals == 0
    clock.now = NOW + 80.5
    token.header()
    assert (token.renewals, token.et) == (1, ET + 180)


def test_the_secrets_are_the_key_and_the_current_sign_raw_and_encoded() -> None:
    token = TokenSource(ACCESS_KEY, RES, method="sha256", lifetime_s=3600, clock=lambda: NOW - 3600)
    token.header()
    signed = VECTORS["sha256"]
    assert token.secrets() == (ACCESS_KEY, signed, quote(signed, safe=""))


@pytest.mark.parametrize(
    "key", ["not base64!", "", "c2VjcmV0LW", "wrong-key-with-dashes", "c2Vj cmV0", "密钥"]
)
def test_an_access_key_that_is_not_base64_is_refused_without_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match="access key is not base64") as caught:
        TokenSource(key, RES)
    assert not key or key not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        sign(key, RES, ET, "sha1", "2022-05-01")
    assert not key or key not in str(caught.value)


@pytest.mark.parametrize("method", ["sha512", "SHA1", "hmac-sha1", ""])
def test_an_unknown_method_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match="is not one of md5, sha1, sha256") as caught:
        TokenSource(ACCESS_KEY, RES, method=method)
    assert ACCESS_KEY not in str(caught.value)
    with pytest.raises(ValueError, match="'\\*\\*\\*' is not one of") as caught:
        TokenSource(ACCESS_KEY, RES, method=ACCESS_KEY)  # arguments in the wrong place
    with pytest.raises(ValueError, match="is not one of"):
        sign(ACCESS_KEY, RES, ET, method, "2022-05-01")


@pytest.mark.parametrize(
    "res",
    ["products/", "products", "devices/d1", "products/a/b", "userid/", "userid/1/devices/x",
     "products/p/devices/", "products/p 1", "products/a\nb", "/products/abc", ACCESS_KEY],
)  # fmt: skip
def test_a_res_that_names_no_resource_is_refused_without_the_key(res: str) -> None:
    with pytest.raises(ValueError, match="is not userid/<uid>, products/<pid>") as caught:
        TokenSource(ACCESS_KEY, res)
    assert ACCESS_KEY not in str(caught.value)


@pytest.mark.parametrize("res", ["userid/123456", "products/abc123", "products/p1/devices/dev-01"])
def test_the_three_kinds_of_res_are_accepted(res: str) -> None:
    assert f"&res={quote(res, safe='')}&" in TokenSource(ACCESS_KEY, res).header()


@pytest.mark.parametrize("lifetime", [59.9, 0, -1, float("nan"), float("inf")])
def test_a_lifetime_under_a_minute_is_refused(lifetime: float) -> None:
    with pytest.raises(ValueError, match="at least 60 seconds"):
        TokenSource(ACCESS_KEY, RES, lifetime_s=lifetime)


# -- the client's paths and header (a scripted transport) ---------------------------------------


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
    await client.execute_offline(execute())
    await client.write_offline(write())
    await client.read_offline(read())
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
    await client.execute_offline(execute())
    await client.execute_offline(execute(args=None))
    clock.now += 3500.0  # within 300 s of et: the next call renews
    await client.execute_offline(execute())
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


# -- the key and the sign never reach a message ---------------------------------------------------


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
    outcome = await client.execute_offline(execute())
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
    await client.execute_offline(execute())  # the first token
    old = _secrets_of(token)
    clock.now += 3500.0  # the next call renews it
    signed = by_hand("sha256", int(clock.now) + 3600)
    new = [signed, quote(signed, safe="")]
    problem = f"connection reset while sending sign={old[2]} ({old[1]}), now {new[0]} {new[1]}"
    routes.post(ANY_URL, exception=AnswerLost(f"ClientOSError: [Errno 104] {problem}"))
    routes.put(
        ANY_URL, exception=AnswerLost(f"ClientOSError: [Errno 104] {problem} key {ACCESS_KEY}")
    )
    outcome = await client.execute_offline(execute())
    with pytest.raises(OneNetUnavailable) as caught:
        await client.cancel(IMEI, UUID)
    assert outcome.verdict is Verdict.IN_DOUBT
    assert token.renewals == 1 and token.secrets()[1] == signed
    for text in (outcome.error, str(caught.value)):
        assert text.count("***") >= 4
        assert [s for s in {*old, *new} if s in text] == []


# -- both answer shapes ----------------------------------------------------------------------


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


# -- the client against the emulator, end to end --------------------------------------------


@pytest.mark.parametrize("shape", ["errno", "code"])
async def test_every_call_is_accepted_end_to_end_on_the_emulator(shape: str) -> None:
    clock = Clock(NOW)
    product = Product(access_key=ACCESS_KEY, res=RES, answer_shape=shape)
    emulator = Emulator(clock=clock, products={"fleet": product})
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        client, _ = iot_client(AiohttpTransport(session), clock, url)
        created: list[Outcome] = [
            await client.execute_offline(execute()),
            await client.write_offline(write()),
            await client.read_offline(read()),
        ]
        probe = await client.probe(IMEI, datetime.fromtimestamp(NOW - 60, UTC))
        items = await client.history(IMEI, datetime.fromtimestamp(NOW - 60, UTC))
        detail = await client.detail(IMEI, created[0].uuid or "")
        cancelled = await client.cancel(IMEI, created[1].uuid or "")
        again = await client.cancel(IMEI, created[1].uuid or "")
        late = await client.execute_offline(execute(expired_time="2025-12-31T00:00:00"))
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
        outcomes = [await c.execute_offline(execute()) for c in (stale, wrong)]
        with pytest.raises(OneNetUnavailable) as caught:
            await wrong.history(IMEI, datetime.fromtimestamp(NOW, UTC))
        emulator.faults = Faults(clock_offset_s=3601.0)  # the server is ahead: any token is old
        fresh, _ = iot_client(AiohttpTransport(session), clock, url)
        ahead = await fresh.execute_offline(execute())
        emulator.faults = Faults()
        fine = await fresh.execute_offline(execute())
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
        old = await OneNetClient(AiohttpTransport(session), url, "old-key").execute_offline(
            execute()
        )
        wrong = await OneNetClient(AiohttpTransport(session), url, ACCESS_KEY).execute_offline(
            execute()
        )
        new, _ = iot_client(AiohttpTransport(session), Clock(NOW), url)
        signed = await new.execute_offline(execute())
    assert (old.verdict, wrong.errno, signed.verdict) == (Verdict.ACCEPTED, 1, Verdict.ACCEPTED)
    assert [cmd.product for cmd in emulator.accepted()] == ["old", "new"]
