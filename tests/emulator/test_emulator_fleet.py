"""The emulator's registered devices: made up (``--fleet``) or read from a CSV file
(``--devices``), their status, ``getbyimei`` and latest datapoints, a product without the list
permission, the gate's throttles and faults on the device calls, and the admin call that changes
the fleet between two runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from dispatcher import emulator as emulator_module
from dispatcher.cli.commands import main
from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.registry import Device, device_id, made_up, read_devices
from dispatcher.emulator.server import Emulator, Faults, Fleet, Product, serve
from dispatcher.emulator.transport import EmulatorTransport
from tests.support.clocks import Clock

NOW = 1767225600.0  # 2026-01-01 08:00:00 in UTC+8
KEY = {"api-key": "secret-key"}
EXACT = Fleet(wake_every_s=60, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=7)
WINDOW = {"expired_time": "2026-01-02T08:00:00"}
A, B, C = "864000000000001", "864000000000002", "864000000000003"


@asynccontextmanager
async def session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with serve(emulator) as url, aiohttp.ClientSession(url) as s:
        yield s


async def call(
    s: aiohttp.ClientSession,
    method: str,
    path: str,
    headers: Mapping[str, str] = KEY,
    body: object = None,
    **query: str,
) -> Any:
    async with s.request(method, path, params=query, headers=headers, json=body) as resp:
        if resp.content_type != "application/json":
            return resp.status, await resp.text()
        return await resp.json()


def devices(*imeis: str, product: str | None = None) -> list[Device]:
    return [Device(imei, NOW - 86400 * n, (f"n:{n}",), n % 2 == 0, product=product)
            for n, imei in enumerate(imeis)]  # fmt: skip


# -- made up and read ----------------------------------------------------------------------------


def test_a_made_up_fleet_is_the_same_for_the_same_seed_and_spread_over_a_year() -> None:
    fleet = made_up(200, seed=3, now=NOW)
    assert fleet == made_up(200, seed=3, now=NOW)
    assert fleet != made_up(200, seed=4, now=NOW)
    assert len({d.imei for d in fleet}) == 200 and len({d.id for d in fleet}) == 200
    assert all(len(d.imei) == 15 and d.imei != d.id for d in fleet)
    cities = {t for d in fleet for t in d.tags if t.startswith("city:")}
    assert {"city:hz", "city:sz"} <= cities
    assert 0 < sum(d.online for d in fleet) < 200
    ages = [NOW - d.created_at for d in fleet]
    assert min(ages) >= 0 and max(ages) <= 365 * 86400 and max(ages) > 180 * 86400
    assert {d.firmware for d in fleet} == {"2.4.0"}


def test_a_devices_file_gives_each_column(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text(
        "imei,tags,online,created,firmware,title\n"
        f"{A},city:hz;batch:2025a,false,2025-03-01 09:30:00,2.3.9,pump\n"
        f"{B},city:sz|batch:2025b,,,,\n"
        f"{C}\n",
        encoding="utf-8",
    )
    a, b, c = read_devices(path, now=NOW)
    assert (a.tags, a.online, a.create_time, a.firmware, a.title) == (
        ("city:hz", "batch:2025a"), False, "2025-03-01 09:30:00", "2.3.9", "pump")  # fmt: skip
    assert (b.tags, b.online, b.created_at, b.firmware, b.title) == (
        ("city:sz", "batch:2025b"), True, NOW, "2.4.0", B)  # fmt: skip
    assert (c.tags, c.product) == ((), None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("serial\n1\n", "fleet.csv:1: the first column must be imei"),
        ("imei,colour\n", "fleet.csv:1: unknown columns ['colour']"),
        (f"imei,online\n{A},maybe\n", "fleet.csv:2: online must be true or false"),
        (f"imei,created\n{A},yesterday\n", "fleet.csv:2: created must be YYYY-MM-DD HH:MM:SS"),
        ("imei\n\n12345\n", "fleet.csv:3: a device's imei must be 15 digits"),
        (f"imei\n{A}\n{A}\n", f"fleet.csv:3: imei {A} is listed twice"),
        (f"imei,product\n{A},pa\n", "fleet.csv:2: product 'pa': the emulator serves no products"),
    ],
)
def test_a_wrong_devices_file_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_devices(path, now=NOW)


def test_the_emulator_command_registers_the_fleet_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[Fleet, list[Device]]] = []

    def run(host: str, port: int, faults: Faults, *, fleet: Fleet, devices: Any, **_: Any) -> None:
        seen.append((fleet, list(devices)))

    monkeypatch.setattr(emulator_module, "run", run)
    path = tmp_path / "fleet.csv"
    path.write_text(f"imei,firmware\n{A},1.0.0\n", encoding="utf-8")
    flags = ["--fleet", "5", "--devices", str(path), "--firmware", "2.0.0",
             "--firmware-target", "3.0.0", "--seed", "2"]  # fmt: skip
    result = CliRunner().invoke(main, ["emulator", *flags])
    assert result.exit_code == 0, result.output
    [(fleet, registered)] = seen
    assert (fleet.firmware, fleet.firmware_target) == ("2.0.0", "3.0.0")
    assert [d.imei for d in registered[:5]] == [d.imei for d in made_up(5, seed=2, now=NOW)]
    assert {d.firmware for d in registered[:5]} == {"2.0.0"}
    assert (registered[5].imei, registered[5].firmware) == (A, "1.0.0")
    path.write_text("imei,online\n1,2\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["emulator", "--devices", str(path)])
    assert bad.exit_code == 2 and "fleet.csv:2:" in bad.output and "Traceback" not in bad.output
    missing = CliRunner().invoke(main, ["emulator", "--devices", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "none.csv: cannot be read" in missing.output


# -- status, getbyimei, datapoints ----------------------------------------------------------------


async def test_status_answers_the_known_ids_and_refuses_more_than_1000() -> None:
    emulator = Emulator(clock=Clock(NOW), devices=devices(A, B))
    ids = [device_id(A), device_id(B), "123"]
    async with session(emulator) as s:
        doc = await call(s, "GET", "/devices/status", devIds=",".join(ids))
        over = await call(s, "GET", "/devices/status", devIds=",".join(["1"] * 1001))
        empty = await call(s, "GET", "/devices/status")
    assert doc["data"] == {"total_count": 2, "devices": [
        {"id": device_id(A), "title": A, "online": True},
        {"id": device_id(B), "title": B, "online": False}]}  # fmt: skip
    assert over["errno"] == 3 and empty["errno"] == 3


async def test_getbyimei_answers_the_id_and_errno_1_for_a_device_not_in_the_product() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, devices=devices(A, B), fleet=EXACT)
    query = {"imei": A, "obj_id": "3", "obj_inst_id": "0", "res_id": "4", **WINDOW}
    async with session(emulator) as s:
        before = await call(s, "GET", "/devices/getbyimei", imei=A)
        assert (await call(s, "POST", "/nbiot/execute/offline", **query))["errno"] == 0
        clock.now = NOW + 130
        after = await call(s, "GET", "/devices/getbyimei", imei=A)
        unknown = await call(s, "GET", "/devices/getbyimei", imei=C)
        malformed = await call(s, "GET", "/devices/getbyimei", imei="12")
    assert before["data"] == {"id": device_id(A), "online": True, "observ_status": False}
    assert after["data"] == {"id": device_id(A), "online": True, "observ_status": True}
    assert (unknown["errno"], malformed["errno"]) == (1, 3)


async def test_datapoints_appear_once_a_device_woke_and_carry_its_firmware_version() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, devices=devices(A, B), fleet=EXACT)
    ids = f"{device_id(A)},{device_id(B)}"
    query = {"imei": A, "obj_id": "3", "obj_inst_id": "0", "res_id": "4", **WINDOW}
    async with session(emulator) as s:
        never = await call(s, "GET", "/devices/datapoints", devIds=ids)
        assert (await call(s, "POST", "/nbiot/execute/offline", **query))["errno"] == 0
        clock.now = NOW + 130  # at least one wake of A (once a minute)
        doc = await call(s, "GET", "/devices/datapoints", devIds=ids)
        over = await call(s, "GET", "/devices/datapoints", devIds=",".join(["1"] * 501))
    assert [d["datastreams"] for d in never["data"]["devices"]] == [[], []]
    a, b = doc["data"]["devices"]
    assert (a["id"], a["title"], b["datastreams"]) == (device_id(A), A, [])
    streams = {d["id"]: d["value"] for d in a["datastreams"]}
    assert streams == {"3_0_3": "2.4.0", "5_0_3": "0", "5_0_5": "0"}
    [wake] = {d["at"] for d in a["datastreams"]}
    shown = await_admin(emulator)
    assert wake == shown[A]["last_wake"]
    assert over["errno"] == 3


def await_admin(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {d["imei"]: d for d in emulator.fleet.shown(None)}


# -- permission, gate -----------------------------------------------------------------------------


async def test_a_product_without_the_list_permission_answers_its_errno_on_every_device_call() -> (
    None
):
    products = {"pa": Product(api_key="ka", list_errno=1),
                "pb": Product(api_key="kb", answer_shape="code")}  # fmt: skip
    registered = devices(A, product="pa") + devices(B, product="pb")
    emulator = Emulator(clock=Clock(NOW), products=products, devices=registered)
    async with session(emulator) as s:
        refused = [
            await call(s, "GET", path, {"api-key": "ka"}, devIds=device_id(A), imei=A)
            for path in ("/devices", "/devices/status", "/devices/getbyimei", "/devices/datapoints")
        ]
        allowed = await call(s, "GET", "/devices", {"api-key": "kb"})
    assert [doc["errno"] for doc in refused] == [1, 1, 1, 1]
    assert allowed["code"] == 0 and allowed["data"]["total_count"] == 1
    assert next(iter(allowed["data"]["devices"][0]["auth_info"])) == B  # only its own devices


async def test_the_device_calls_pass_the_throttles_and_the_faults() -> None:
    mono = Clock(1000.0)
    products = {"pa": Product(api_key="ka", throttle_rps=1)}
    emulator = Emulator(clock=Clock(NOW), monotonic=mono, products=products,
                        devices=devices(A, product="pa"))  # fmt: skip
    async with session(emulator) as s:
        first = await call(s, "GET", "/devices", {"api-key": "ka"})
        second = await call(s, "GET", "/devices", {"api-key": "ka"})
        mono.now += 1.5
        third = await call(s, "GET", "/devices", {"api-key": "ka"})
        emulator.faults = Faults(html_status=502)
        proxied = await call(s, "GET", "/devices", {"api-key": "ka"})
    assert (first["errno"], second["errno"], third["errno"]) == (0, 7, 0)
    assert proxied[0] == 502
    assert emulator.stats()["calls"]["devices"] == 4  # type: ignore[index]


# -- admin ---------------------------------------------------------------------------------------


async def test_the_admin_put_changes_what_the_list_returns() -> None:
    emulator = Emulator(clock=Clock(NOW), devices=devices(A, B))
    async with session(emulator) as s:
        before = await call(s, "GET", "/devices", tag="n:0")
        change = {
            "devices": [
                {
                    "imei": C,
                    "tags": ["n:0"],
                    "online": False,
                    "firmware": "1.9.0",
                    "created": "2026-01-01 09:00:00",
                }
            ],
            "remove": [B],
            "retag": {A: ["n:1"]},
        }
        shown = await call(s, "PUT", "/_emulator/devices", body=change)
        after = await call(s, "GET", "/devices", tag="n:0")
        everyone = await call(s, "GET", "/devices")
        wrong = await call(s, "PUT", "/_emulator/devices", body={"retag": {B: ["x"]}})
        listed = await call(s, "GET", "/_emulator/devices")
        unknown = await call(s, "GET", "/_emulator/devices", product="pz")
    assert [next(iter(d["auth_info"])) for d in before["data"]["devices"]] == [A]
    assert [next(iter(d["auth_info"])) for d in after["data"]["devices"]] == [C]
    assert sorted(next(iter(d["auth_info"])) for d in everyone["data"]["devices"]) == [A, C]
    assert {d["imei"]: (d["tags"], d["firmware"]) for d in shown["devices"]} == {
        A: (["n:1"], "2.4.0"), C: (["n:0"], "1.9.0")}  # fmt: skip
    assert wrong[0] == 400 and "no such registered device" in wrong[1]
    assert [d["imei"] for d in listed["devices"]] == [A, C]
    assert unknown[0] == 404


def test_the_products_file_sets_list_errno_and_the_fleet_fills_each_product(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[dict[str, Product], list[Device]]] = []

    def run(*_: Any, products: dict[str, Product], devices: Any, **__: Any) -> None:
        seen.append((products, list(devices)))

    monkeypatch.setattr(emulator_module, "run", run)
    monkeypatch.setenv("KA", "key-a")
    monkeypatch.setenv("KB", "key-b")
    config = tmp_path / "products.yaml"
    config.write_text("pa: {api_key_env: KA, list_errno: 1}\npb: {api_key_env: KB}\n")
    path = tmp_path / "fleet.csv"
    path.write_text(f"imei,product\n{A},pb\n", encoding="utf-8")
    flags = ["--products", str(config), "--fleet", "2", "--devices", str(path)]
    result = CliRunner().invoke(main, ["emulator", *flags])
    assert result.exit_code == 0, result.output
    [(products, registered)] = seen
    assert (products["pa"].list_errno, products["pb"].list_errno) == (1, None)
    assert [(d.product, d.imei) for d in registered] == [
        ("pa", "864000000000000"), ("pa", "864000000000001"),
        ("pb", "864000000000002"), ("pb", "864000000000003"), ("pb", A)]  # fmt: skip
    path.write_text(f"imei\n{A}\n", encoding="utf-8")
    unnamed = CliRunner().invoke(main, ["emulator", *flags])
    assert unnamed.exit_code == 2 and "fleet.csv:2: product: name one of pa, pb" in unnamed.output


async def test_the_device_calls_answer_through_the_in_process_transport() -> None:
    emulator = Emulator(clock=Clock(NOW), devices=devices(A, B))
    transport = EmulatorTransport(emulator)
    answer = await transport.send("GET", "http://emulator/devices?tag=n:1", KEY, None)
    assert answer.status == 200 and answer.body is not None
    doc = orjson.loads(answer.body)
    assert [d["id"] for d in doc["data"]["devices"]] == [device_id(B)]
