"""``dispatcher cancel``: this job's waiting commands cancelled one by one, delivered ones and
another job's commands untouched, the confirmation, and the answers a cancel can get."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from dispatcher.emulator.server import Emulator, serve
from dispatcher.ledger.records import Row
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.transport import AnswerLost, ReadTimeout, TransportError
from dispatcher.run.cancel import CancelReport, cancel_waiting
from dispatcher.run.lane import Lane
from dispatcher.run.state import Stop
from tests.support.cli import dispatcher_async
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fast_settings, fleet, write_config
from tests.support.ledger import ledger_rows, make_command, write_outcomes
from tests.support.onenet import Routes
from tests.support.push import FLEET, two_per_device_job

# Devices wake once a minute and answer at once; half of them never wake.
SLEEPY = replace(FLEET, never_wake=0.5, device_errors=0.0, answer_delay_s=1)


def server_status(emulator: Emulator) -> dict[str, int]:
    emulator.advance()  # the devices move when looked at
    return {c.uuid: c.send_status for c in emulator.accepted()}


async def test_cancel_cancels_this_jobs_waiting_commands_only(tmp_path: Path) -> None:
    imeis = fleet(10)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    job_a = two_per_device_job(tmp_path / "a", imeis, expired="+1d")
    job_b = two_per_device_job(tmp_path / "b", imeis, expired="+1d")
    for folder in ("a", "b"):
        write_config(tmp_path / folder)
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=SLEEPY)
    async with serve(emulator) as url:
        opts = ("--config", "config.yaml", "--base-url", url)
        assert (await dispatcher_async("run", job_a.name, *opts, cwd=tmp_path / "a")).code == 0
        clock.shift = 90.0  # the devices that wake have woken and run job a's commands
        assert (await dispatcher_async("run", job_b.name, *opts, cwd=tmp_path / "b")).code == 0
        before = server_status(emulator)
        done = await dispatcher_async(
            "cancel", "push.yaml.ledger.db", "--yes", *opts, cwd=tmp_path / "a"
        )
        after = server_status(emulator)
        calls = emulator.stats()["calls"]
    assert done.code == 0, done.stderr
    rows_a = ledger_rows(tmp_path / "a" / "push.yaml.ledger.db")
    rows_b = ledger_rows(tmp_path / "b" / "push.yaml.ledger.db")
    a_uuids = {r.uuid for r in rows_a}
    # Job a: what was waiting is cancelled; what was delivered is untouched.
    assert {before[u] for u in a_uuids} == {1, 5}
    for uuid in a_uuids:
        assert after[uuid] == (2 if before[uuid] == 1 else before[uuid])
    assert Counter(r.send_status for r in rows_a) == Counter(after[u] for u in a_uuids)
    cancelled = [r for r in rows_a if r.send_status == 2]
    assert cancelled and all(
        r.cancelled_at is not None and r.cancel_error is None for r in cancelled
    )
    # Job b: untouched, every command still waiting; cancel/all never called.
    assert {after[r.uuid] for r in rows_b if r.uuid} == {1}
    assert isinstance(calls, dict) and calls.get("cancel_all", 0) == 0
    assert calls.get("cancel", 0) == len(cancelled)
    assert "delivered" in done.stderr  # reported as left as it is


async def test_cancel_with_imei_cancels_only_that_device(tmp_path: Path) -> None:
    imeis = fleet(3)
    job = two_per_device_job(tmp_path, imeis, expired="+1d")
    write_config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        opts = ("--config", "config.yaml", "--base-url", url)
        assert (await dispatcher_async("run", job.name, *opts, cwd=tmp_path)).code == 0
        done = await dispatcher_async(
            "cancel", "push.yaml.ledger.db", "--imei", imeis[1], "--yes", *opts, cwd=tmp_path
        )
        by_imei = Counter((c.imei, c.send_status) for c in emulator.accepted())
    assert done.code == 0, done.stderr
    assert by_imei == {(imeis[0], 1): 2, (imeis[1], 2): 2, (imeis[2], 1): 2}


async def test_cancel_off_a_terminal_needs_yes_and_cancels_nothing(tmp_path: Path) -> None:
    job = two_per_device_job(tmp_path, fleet(2), expired="+1d")
    write_config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        opts = ("--config", "config.yaml", "--base-url", url)
        assert (await dispatcher_async("run", job.name, *opts, cwd=tmp_path)).code == 0
        done = await dispatcher_async("cancel", "push.yaml.ledger.db", *opts, cwd=tmp_path)
        unknown = await dispatcher_async(
            "cancel", "push.yaml.ledger.db", "--imei", "860000000000000", "--yes", *opts,
            cwd=tmp_path,
        )  # fmt: skip
        calls = emulator.stats()["calls"]
    assert done.code == 2 and "--yes" in done.stderr
    assert unknown.code == 2 and "not a device of this job" in unknown.stderr
    assert isinstance(calls, dict) and calls.get("cancel", 0) == 0
    assert {c.send_status for c in emulator.accepted()} == {1}


# -- the answers a cancel can get: the real client over a scripted transport -----------------


Answer = str | TransportError  # a cancel's answer: OK, REFUSED, BUSY, or lost on the wire
OK, REFUSED, BUSY = "ok", "refused", "busy"
_BODIES = {
    OK: (200, b'{"errno": 0, "error": "succ"}'),
    REFUSED: (200, b'{"errno": 5006, "error": "not waiting"}'),  # already sent, say
    BUSY: (503, b"<html>busy</html>"),  # worth asking again
}


def scripted(cancels: dict[str, list[Answer]], states: dict[str, int]) -> Routes:
    """The real client's OneNET for these tests: each uuid's cancel answers in order, and the
    send_status its detail reads (a uuid without one: the detail answers HTTP 500)."""
    routes = Routes()
    for uuid, answers in cancels.items():
        for answer in answers:
            url = re.compile(rf".*/nbiot/offline/cancel/{uuid}\?.*")
            if isinstance(answer, TransportError):
                routes.put(url, exception=answer)
            else:
                status, body = _BODIES[answer]
                kind = "application/json" if status == 200 else "text/html"
                routes.put(url, status=status, body=body, content_type=kind)
    for uuid in cancels:
        url = re.compile(rf".*/nbiot/offline/history/{uuid}\?.*")
        if uuid in states:
            detail = {"errno": 0, "error": "succ", "data": {"send_status": states[uuid]}}
            routes.get(url, body=json.dumps(detail), repeat=True)
        else:
            routes.get(url, status=500, body=b"<html>oops</html>", repeat=True)
    return routes


def asked(routes: Routes, uuid: str) -> int:
    """How many cancels of ``uuid`` the client sent."""
    return sum(1 for r in routes.sent if r.method == "PUT" and f"/cancel/{uuid}?" in r.url)


def _cancel_rows(tmp_path: Path, n: int) -> tuple[list[Row], Ledger]:
    """A ledger of ``n`` accepted commands, uuids u0, u1, ..."""
    ledger = Ledger.open(tmp_path / "l.db")
    cmds = [make_command(i) for i in range(n)]
    ledger.register(cmds)
    write_outcomes(
        ledger,
        [Result(c.key, Status.ACCEPTED, 0, "", f"u{i}", 1, 1.0, 1.0) for i, c in enumerate(cmds)],
    )
    return list(ledger.rows()), ledger


async def _cancel_scripted(
    rows: list[Row], ledger: Ledger, routes: Routes
) -> tuple[CancelReport, dict[str | None, Row]]:
    """Cancel ``rows`` through the real client over ``routes``; the report, and the rows as then
    stored by uuid."""
    settings = fast_settings()
    client = OneNetClient(routes.transport, "http://onenet.test", "test-key")
    report = await cancel_waiting(
        rows,
        Lane.of(client, settings),
        settings,
        ledger=ledger,
        stop=Stop(),
        clock=lambda: 50.0,
    )
    stored = {r.uuid: r for r in ledger.rows()}
    ledger.close()
    return report, stored


async def test_a_refused_cancel_records_the_state_then_read_and_a_lost_answer_is_settled(
    tmp_path: Path,
) -> None:
    routes = scripted(
        cancels={
            "u0": [OK],
            "u1": [REFUSED],  # sent to the device meanwhile
            # the first answer lost, the second refused: the detail says it was cancelled
            "u2": [AnswerLost("answer lost"), REFUSED],
            "u3": [BUSY, OK],
        },
        states={"u1": 3, "u2": 2},
    )
    rows, ledger = _cancel_rows(tmp_path, 4)
    report, stored = await _cancel_scripted(rows, ledger, routes)
    assert sorted(report.cancelled) == sorted([rows[0].key, rows[2].key, rows[3].key])
    assert [(k, s) for k, _, s in report.refused] == [(rows[1].key, 3)]
    assert stored["u1"].send_status == 3 and stored["u1"].cancel_error == "refused: not waiting"
    assert all(
        stored[u].send_status == 2 and stored[u].cancel_error is None for u in ("u0", "u2", "u3")
    )
    assert asked(routes, "u2") == 2 and asked(routes, "u3") == 2


async def test_a_cancel_refused_while_still_waiting_or_lost_to_a_timeout_is_settled_by_the_detail(
    tmp_path: Path,
) -> None:
    lost = ReadTimeout("TimeoutError")  # a timeout is never asked again: the detail settles it
    routes = scripted(
        cancels={
            "u0": [REFUSED],  # errno 5006, yet the detail says it still waits
            "u1": [lost],  # OneNET cancelled it, and the answer never came
            "u2": [lost],  # no answer, and the detail cannot be read either
        },
        states={"u0": 1, "u1": 2},
    )
    rows, ledger = _cancel_rows(tmp_path, 3)
    report, stored = await _cancel_scripted(rows, ledger, routes)
    assert report.cancelled == [rows[1].key]
    assert sorted(k for k, _ in report.unanswered) == sorted([rows[0].key, rows[2].key])
    assert report.refused == []
    assert stored["u1"].send_status == 2 and stored["u1"].cancel_error is None
    assert stored["u0"].send_status == 1 and "refused" in (stored["u0"].cancel_error or "")
    assert asked(routes, "u1") == 1  # a timeout is not asked again
