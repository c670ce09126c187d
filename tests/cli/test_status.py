"""``dispatcher status``: delivery states read from the emulator's simulated fleet, mapped and
stored; the fewest calls; --watch until final; exit codes; unreadable states.

The emulator's clock runs ahead of the real one by a shift the test moves: the devices behind it
wake on that clock, and the dispatcher reads it from the Date header, as it would OneNET's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from click.testing import Result as CliResult

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.records import Delivery, DeliveryState, Row, delivery_state
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import JobRecord, Result, Status
from dispatcher.onenet.answers import (
    CONFIRM_STATUS,
    confirm_status_name,
    history_item,
)
from tests.support.cli import dispatcher_async, invoke as shared_invoke, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fleet, write_config
from tests.support.ledger import ledger_rows, make_command, write_outcomes
from tests.support.push import FLEET, two_per_device_job

DEVICES = 24


def agrees_with_emulator(rows: list[Row], emulator: Emulator) -> list[str]:
    """The keys whose stored delivery differs from what the emulator holds."""
    held = {c.uuid: c for c in emulator.accepted()}
    wrong = []
    for row in rows:
        assert row.uuid is not None
        cmd = held[row.uuid]
        raw = cmd.history_item(emulator._store.deliveries.get(cmd.uuid))
        item = history_item({**raw, "cmd_uuid": row.uuid}, row.command.imei)
        same = (row.send_status, row.confirm_status) == (item.send_status, item.confirm_status)
        if not same or (row.send_time is None) != (item.send_time is None):
            wrong.append(row.key)
    return wrong


async def test_each_send_status_is_read_mapped_and_stored_with_one_history_call_per_device(
    tmp_path: Path,
) -> None:
    imeis = fleet(DEVICES)
    job = two_per_device_job(tmp_path, imeis)
    write_config(tmp_path)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=FLEET)
    ledger = tmp_path / "push.yaml.ledger.db"
    seen: Counter[int] = Counter()
    async with serve(emulator) as url:
        sent = await online(url, tmp_path, "run", str(job.name))
        assert sent.code == 0, sent.stderr
        # Two commands of the job cancelled on the server meanwhile (by hand, say).
        async with aiohttp.ClientSession(url, headers={"api-key": "k"}) as session:
            for row in ledger_rows(ledger)[:2]:
                path = f"/nbiot/offline/cancel/{row.uuid}"
                async with session.put(path, params={"imei": row.command.imei}) as resp:
                    assert (await resp.json())["errno"] == 0
        for shift in (0.0, 75.0, 700.0):  # waiting; woken, some sent, some answered; expired
            clock.shift = shift
            open_before = [r for r in ledger_rows(ledger) if r.delivery in _OPEN]
            calls_before = dict(emulator.stats()["calls"])  # type: ignore[arg-type]
            done = await online(url, tmp_path, "status", ledger.name)
            assert done.code == 0, done.stderr
            rows = ledger_rows(ledger)
            assert agrees_with_emulator(rows, emulator) == []
            seen.update(r.send_status for r in rows if r.send_status is not None)
            calls = emulator.stats()["calls"]
            assert isinstance(calls, dict)
            answered_now = [
                r for r in rows
                if r.key in {o.key for o in open_before} and r.send_status in (5, 6)
            ]  # fmt: skip
            devices_asked = len({r.command.imei for r in open_before})
            # One probe page, one history page per device with open commands, one detail per
            # command the device has just answered: nothing else.
            assert calls.get("history", 0) - calls_before.get("history", 0) == devices_asked + 1
            assert calls.get("detail", 0) - calls_before.get("detail", 0) == len(answered_now)
            assert calls.get("cancel_all", 0) == 0
    assert set(seen) == {1, 2, 3, 4, 5, 6}
    final = ledger_rows(ledger)
    assert all(r.delivery not in _OPEN for r in final)
    delivered = [r for r in final if r.send_status == 5]
    assert delivered and all(
        r.cmd_result == "OK" and r.confirm_status == "SUCCESS" for r in delivered
    )
    failed = [r for r in final if r.send_status == 6]
    assert failed and all(r.confirm_status not in (None, "SUCCESS") for r in failed)
    assert "delivered" in done.stdout and "devices" in done.stdout


_OPEN = (DeliveryState.UNREAD, DeliveryState.WAITING, DeliveryState.SENT)


async def test_watch_polls_until_every_command_is_final(tmp_path: Path) -> None:
    imeis = fleet(6)
    job = two_per_device_job(tmp_path, imeis, expired="+2m")
    write_config(tmp_path)
    # Devices wake every 2 s; commands expire after two minutes of the emulator's clock, which
    # the test moves ahead while the watch polls.
    quick = replace(FLEET, wake_every_s=2, answer_delay_s=0.5, never_wake=0.34)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=quick)
    async with serve(emulator) as url:
        assert (await online(url, tmp_path, "run", job.name)).code == 0
        clock.shift = 30.0
        early = await online(url, tmp_path, "status", "push.yaml.ledger.db")
        assert early.code == 0
        # What is not final yet is said by the next command, as every command ends.
        assert "next: dispatcher status push.yaml.ledger.db --watch" in early.stderr
        clock.shift = 200.0  # past every window: the sleeping devices' commands expire
        watched = await online(
            url, tmp_path, "status", "push.yaml.ledger.db", "--watch", "--interval", "0.2"
        )
    assert watched.code == 0, watched.stderr
    rows = ledger_rows(tmp_path / "push.yaml.ledger.db")
    states = Counter(r.delivery for r in rows)
    assert set(states) <= {DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.EXPIRED}
    assert states[DeliveryState.EXPIRED] >= 2  # the devices that never wake
    assert "round 1" in watched.stderr


async def test_watch_ends_with_the_round_that_found_every_command_final(tmp_path: Path) -> None:
    imeis = fleet(4)
    job = two_per_device_job(tmp_path, imeis, expired="+2m")
    write_config(tmp_path)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=replace(FLEET, wake_every_s=2, answer_delay_s=0.5))
    async with serve(emulator) as url:
        assert (await online(url, tmp_path, "run", job.name)).code == 0
        clock.shift = 600.0  # every device woke or its window closed: all final on OneNET
        # An hour between rounds: the watch ends with its first round, not an hour later.
        watched = await online(
            url, tmp_path, "status", "push.yaml.ledger.db", "--watch", "--interval", "3600"
        )
    assert watched.code == 0, watched.stderr
    assert "round 1" in watched.stderr and "round 2" not in watched.stderr
    assert not any(r.delivery in _OPEN for r in ledger_rows(tmp_path / "push.yaml.ledger.db"))


async def test_unreadable_states_exit_3_and_readable_ones_are_kept(tmp_path: Path) -> None:
    imeis = fleet(4)
    job = two_per_device_job(tmp_path, imeis)
    write_config(tmp_path)
    emulator = Emulator(fleet=FLEET)
    async with serve(emulator) as url:
        assert (await online(url, tmp_path, "run", job.name)).code == 0
        # Every follow-up call now fails: the states cannot be read.
        emulator.faults = Faults(fail_rate=1.0, affect_reads=True, seed=1)
        broken = await online(url, tmp_path, "status", "push.yaml.ledger.db")
        emulator.faults = Faults()
        fixed = await online(url, tmp_path, "status", "push.yaml.ledger.db")
    assert broken.code == 3, broken.stderr
    assert "Traceback" not in broken.stderr
    assert fixed.code == 0, fixed.stderr
    assert all(r.send_status == 1 for r in ledger_rows(tmp_path / "push.yaml.ledger.db"))


async def test_status_of_a_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    write_config(tmp_path)
    done = await dispatcher_async(
        "status", "nowhere.ledger.db", "--config", "config.yaml", cwd=tmp_path
    )
    assert done.code == 1
    assert "no such ledger" in done.stderr and "Traceback" not in done.stderr


async def test_interval_without_watch_is_a_usage_error(tmp_path: Path) -> None:
    done = await dispatcher_async("status", "x.db", "--interval", "2", cwd=tmp_path)
    assert done.code == 2
    assert "--interval needs --watch" in done.stderr


@pytest.mark.parametrize(
    ("send_status", "state"),
    [
        (None, DeliveryState.UNREAD),
        (1, DeliveryState.WAITING),
        (2, DeliveryState.CANCELLED),
        (3, DeliveryState.SENT),
        (4, DeliveryState.EXPIRED),
        (5, DeliveryState.DELIVERED),
        (6, DeliveryState.FAILED),
        (7, DeliveryState.FAILED),
        (8, DeliveryState.FAILED),
        (99, DeliveryState.FAILED),
    ],
)
def test_every_send_status_has_its_delivery_state(
    send_status: int | None, state: DeliveryState
) -> None:
    assert delivery_state(send_status) is state


@pytest.mark.parametrize(
    ("given", "name"),
    [(0, "SUCCESS"), ("5", "TIME_OUT"), (12, "OFFLINE"), ("TIME_OUT", "TIME_OUT"), (42, "42"),
     (None, None), ("", None)],
)  # fmt: skip
def test_a_confirm_status_given_by_code_is_stored_by_name(given: object, name: str | None) -> None:
    assert confirm_status_name(given) == name
    assert len(CONFIRM_STATUS) == 14


def test_a_send_status_given_as_a_string_is_read_as_its_number() -> None:
    item = history_item({"cmd_uuid": "u1", "send_status": "5", "confirm_status": 0}, "86")
    assert (item.send_status, item.confirm_status) == (5, "SUCCESS")


def test_accepted_rows_only_have_a_delivery_state(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.register([make_command(1)])
        (row,) = ledger.rows()
    assert row.status is Status.PENDING and row.delivery is None


# --- what status shows and opens, in-process --------------------------------------------------


@pytest.fixture
def in_process() -> Iterator[Callable[..., CliResult]]:
    """The CLI in-process (no OneNET is called: nothing is left to read); the log handler and
    the secret it installs are undone after the test."""

    def invoke(*args: str | Path) -> CliResult:
        return shared_invoke(*args, key="test-key-status")

    yield invoke


def test_status_shows_job_paths_and_device_answers_as_written(
    tmp_path: Path, in_process: Callable[..., CliResult]
) -> None:
    job_path = str(tmp_path / "jobs[v2]" / "fleet.yaml")
    with Ledger.open(tmp_path / "l.db") as ledger:
        cmds = [make_command(d) for d in range(2)]
        ledger.register(cmds)
        write_outcomes(ledger, [Result(c.key, Status.ACCEPTED, 0, "", f"u{n}", 1, 1000.0, 1.0)
             for n, c in enumerate(cmds)],
        )  # fmt: skip
        ledger.record_delivery(
            [Delivery(c.key, 6, "[/b]", None, None, None, 2000.0) for c in cmds]
        )  # both final: nothing is left to ask OneNET
        ledger.set_job(JobRecord(job_path, "fleet", "0" * 32, 2))
    result = in_process("status", tmp_path / "l.db", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 0, result.stderr
    assert f"job {job_path}: delivery by device" in result.stdout
    assert "device answers: [/b] 2" in result.stdout


def test_status_refuses_an_empty_file_and_leaves_it_empty(
    tmp_path: Path, in_process: Callable[..., CliResult]
) -> None:
    empty = tmp_path / "touched.db"
    empty.touch()
    result = in_process("status", empty)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {empty} is empty, not a ledger")
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["touched.db"]


def test_status_refuses_a_ledger_that_holds_no_commands(
    tmp_path: Path, in_process: Callable[..., CliResult]
) -> None:
    Ledger.open(tmp_path / "l.db").close()
    result = in_process("status", tmp_path / "l.db")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {tmp_path / 'l.db'} holds no commands: nothing to read"
    )
    assert "Traceback" not in result.stderr
