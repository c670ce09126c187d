"""Targets from OneNET end to end: a job's targets_query resolved against the emulator's device
list (its registered devices), frozen at the first run, a rerun after the fleet changed (the
emulator's admin PUT), --refresh-targets, --dry-run, the refusal off a terminal, a query that
matches nothing and a product without the list permission; and ``dispatcher devices -o``."""

from __future__ import annotations

import asyncio
import base64
import csv
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from dispatcher.app.events import Quiet
from dispatcher.app.running import RunOutcome, RunRequest, run
from dispatcher.config import Settings, load_settings
from dispatcher.emulator import Device
from dispatcher.emulator.server import Emulator, Product, serve
from dispatcher.errors import NothingToDo, TargetsUnresolved
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import dispatcher_async, no_traceback
from tests.support.e2e import API_KEY, emulator_in_thread, fast_settings, imei

NORTH = [imei(n) for n in range(0, 12)]
SOUTH = [imei(n) for n in range(100, 108)]
JOB = (
    "job: reboot-north\n"
    "defaults: {obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}\n"
    "targets_query: {tag: north}\n"
)


def devices(imeis: list[str], tag: str) -> list[Device]:
    created = time.time() - 86400
    return [Device(i, created, tags=(tag, "meters")) for i in imeis]


class Notes(Quiet):
    """The notes and warnings a use case gives its observer, kept to read."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def warn(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ONENET_API_KEY", API_KEY)
    path = tmp_path / "north.yaml"
    path.write_text(JOB, encoding="utf-8")
    return path


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(devices=[*devices(NORTH, "north"), *devices(SOUTH, "south")])


@pytest.fixture
def url(emulator: Emulator) -> Iterator[str]:
    with emulator_in_thread(emulator) as base:
        yield base


def settings_for(url: str) -> Settings:
    return fast_settings().with_overrides(base_url=url)


def no_command(emulator: Emulator) -> bool:
    """Whether the emulator got no command (its device list may have been read)."""
    return emulator.stats()["posts"] == 0 and emulator.accepted() == []


def sent_to(emulator: Emulator) -> list[str]:
    return sorted(c.imei for c in emulator.accepted())


def change_fleet(url: str, body: dict[str, object]) -> None:
    async def put() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"{url}/_emulator/devices", json=body) as answer,
        ):
            assert answer.status == 200, await answer.text()

    asyncio.run(put())


def first_run(url: str, job: Path, **changes: object) -> RunOutcome:
    return run(settings_for(url), RunRequest(job, **changes))  # type: ignore[arg-type]


def test_a_query_of_a_tag_sends_to_exactly_those_devices_and_freezes_them(
    job: Path, emulator: Emulator, url: str
) -> None:
    outcome = first_run(url, job)
    assert outcome.result is not None and outcome.result.counts[Status.ACCEPTED] == 12
    assert sent_to(emulator) == sorted(NORTH)
    assert outcome.targets is not None
    assert (outcome.targets.devices, outcome.targets.pages, outcome.targets.calls) == (12, 1, 1)
    with Ledger.open(outcome.ledger, read_only=True) as ledger:
        frozen = ledger.frozen_targets()
    assert [t.imei for t in frozen] == [t.imei for t in frozen if t.imei in NORTH]
    assert sorted(t.imei for t in frozen) == sorted(NORTH)
    assert all(t.device_id and t.device_id != t.imei for t in frozen)  # the platform's id


def test_a_rerun_after_the_fleet_changed_sends_nothing_new_and_says_plus_and_minus(
    job: Path, emulator: Emulator, url: str
) -> None:
    first_run(url, job)
    added = [imei(n) for n in range(200, 203)]
    change_fleet(
        url,
        {
            "devices": [{"imei": i, "tags": ["north"]} for i in added],
            "remove": NORTH[:2],
        },
    )
    notes = Notes()
    with pytest.raises(NothingToDo):
        run(settings_for(url), RunRequest(job), events=notes)
    assert sent_to(emulator) == sorted(NORTH)  # the frozen list: no surprise sends
    assert any("would add +3" in n and "drop -2" in n for n in notes.notes), notes.notes


def test_refresh_targets_sends_exactly_the_added_devices_once(
    job: Path, emulator: Emulator, url: str
) -> None:
    first_run(url, job)
    added = [imei(n) for n in range(200, 203)]
    change_fleet(url, {"devices": [{"imei": i, "tags": ["north"]} for i in added]})
    outcome = first_run(url, job, refresh_targets=True)
    assert outcome.result is not None and outcome.result.counts[Status.ACCEPTED] == 15
    assert sent_to(emulator) == sorted([*NORTH, *added])
    with pytest.raises(NothingToDo):  # the added ones are frozen now
        first_run(url, job, refresh_targets=True)
    assert len(emulator.accepted()) == 15


def test_a_dry_run_resolves_the_query_and_sends_and_freezes_nothing(
    job: Path, emulator: Emulator, url: str
) -> None:
    notes = Notes()
    outcome = run(settings_for(url), RunRequest(job, dry_run=True), events=notes)
    assert outcome.dry_run and outcome.targets is not None and outcome.targets.devices == 12
    assert no_command(emulator)
    assert not outcome.ledger.exists()
    assert any("12 devices of product (default) (tag=north)" in n for n in notes.notes)


def test_a_query_matching_nothing_is_a_clear_error_and_sends_nothing(
    tmp_path: Path, job: Path, emulator: Emulator, url: str
) -> None:
    job.write_text(JOB.replace("tag: north", "tag: west, online: false"), encoding="utf-8")
    with pytest.raises(TargetsUnresolved) as caught:
        first_run(url, job)
    assert str(caught.value) == (
        "the query matched no device of product (default): tag=west, online=false"
    )
    assert no_command(emulator)


def test_a_product_without_the_list_permission_names_the_product_and_errno(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERS_KEY", "meters-key")
    emulator = Emulator(
        products={"meters": Product(api_key="meters-key", list_errno=1)},
        devices=[replace(d, product="meters") for d in devices(NORTH, "north")],
    )
    path = tmp_path / "north.yaml"
    path.write_text(JOB.replace("{tag: north}", "{tag: north, product: meters}"), "utf-8")
    with emulator_in_thread(emulator) as base:
        s = settings_for(base)
        settings = replace(s, products={"meters": {"onenet": {"api_key_env": "METERS_KEY"}}})
        with pytest.raises(TargetsUnresolved) as caught:
            run(settings, RunRequest(path))
    assert caught.value.errno == 1
    assert "device list of product meters (errno 1)" in str(caught.value)
    assert "meters-key" not in str(caught.value)
    assert no_command(emulator)


async def test_off_a_terminal_run_refuses_without_yes_and_sends_with_it(
    tmp_path: Path, emulator: Emulator
) -> None:
    (tmp_path / "north.yaml").write_text(JOB, encoding="utf-8")
    async with serve(emulator) as base:
        refused = await dispatcher_async(
            "run", "north.yaml", "--base-url", base, cwd=tmp_path, key=API_KEY
        )
        assert refused.code == 2, refused.stderr
        assert "12 devices of product (default) (tag=north) to send to" in refused.stderr
        assert "confirm with --yes; nothing was sent" in refused.stderr
        assert no_command(emulator) and not (tmp_path / "north.yaml.ledger.db").exists()
        sent = await dispatcher_async(
            "run", "north.yaml", "--base-url", base, "--yes", cwd=tmp_path, key=API_KEY
        )
    assert sent.code == 0, sent.stderr
    assert sent_to(emulator) == sorted(NORTH)
    assert no_traceback(refused.stdout, refused.stderr, sent.stdout, sent.stderr)


async def test_devices_writes_a_csv_of_the_tagged_devices(
    tmp_path: Path, emulator: Emulator
) -> None:
    async with serve(emulator) as base:
        done = await dispatcher_async(
            "devices", "--base-url", base, "--tag", "south", "-o", "fleet.csv",
            cwd=tmp_path, key=API_KEY,
        )  # fmt: skip
        empty = await dispatcher_async(
            "devices", "--base-url", base, "--tag", "west", cwd=tmp_path, key=API_KEY
        )
    assert done.code == 0, done.stderr
    with (tmp_path / "fleet.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["imei"] for r in rows) == sorted(SOUTH)
    assert all("south" in r["#tags"].split(";") for r in rows)
    assert "8 devices of product (default) (tag=south) written to fleet.csv" in done.stderr
    assert empty.code == 0 and "0 devices of product (default) (tag=west)" in empty.stderr
    assert no_traceback(done.stderr, empty.stderr)


ACCESS_KEY = base64.b64encode(b"studio-access-key-for-tests").decode()


def test_the_newer_platform_lists_by_offset_and_filters_the_tag_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDIO_KEY", ACCESS_KEY)
    many = [imei(n) for n in range(300, 450)]  # 150 devices: two pages of the list
    fleet = [
        replace(d, product="studio")
        for d in [*devices(many[:40], "north"), *devices(many[40:], "south")]
    ]
    emulator = Emulator(
        products={"studio": Product(access_key=ACCESS_KEY, res="products/abc123")},
        devices=fleet,
    )
    job = tmp_path / "north.yaml"
    job.write_text(JOB, encoding="utf-8")
    config = tmp_path / "c.yaml"
    with emulator_in_thread(emulator) as base:
        config.write_text(
            f"onenet:\n  platform: iot-api\n  base_url: {base}\n  token:\n"
            "    access_key_env: STUDIO_KEY\n    res: products/abc123\n",
            encoding="utf-8",
        )
        fast = fast_settings()
        settings = replace(load_settings(config), retry=fast.retry, reliability=fast.reliability)
        outcome = run(settings, RunRequest(job))
    assert outcome.targets is not None
    assert (outcome.targets.devices, outcome.targets.found) == (40, 40)
    assert outcome.targets.calls == 2  # every device of the product listed: 150 in 2 pages
    assert sent_to(emulator) == sorted(many[:40])
