"""Ledger summaries and exports: exact figures, every format parsed back, and no secret anywhere."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from rich.console import Console

from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, InFlight, JobRecord, Result, Status
from dispatcher.report.export import EXPORT_FIELDS, write_export
from dispatcher.report.render import delivery_table, render_delivery, render_table
from dispatcher.report.summary import summarize
from dispatcher.times import parse_timespec
from tests.support.ledger import make_command, write_outcomes


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "job.ledger.db", synchronous="normal") as opened:
        yield opened


def _fill_known(ledger: Ledger) -> list[float]:
    """200 commands with known outcomes; returns the latencies recorded."""
    cmds = [make_command(i) for i in range(200)]
    ledger.register(cmds)
    ledger.write_batch(
        [InFlight(c.key, 1000.0 + i, None, "2024-05-01T16:00:00", 1) for i, c in enumerate(cmds)
         if i < 195],
        (),
    )  # fmt: skip
    results, latencies = [], []
    for i, c in enumerate(cmds[:193]):
        at = 1000.0 + i + 0.25
        if i < 150:
            attempts, latency = (3 if i % 10 == 0 else 1), float(i + 1)
            results.append(
                Result(c.key, Status.ACCEPTED, 0, "succ", f"u{i}", attempts, at, latency)
            )
        elif i < 175:
            text = "system logic limit" if i < 170 else "logic limit"
            results.append(Result(c.key, Status.REJECTED, 5006, text, None, 1, at, 200.0 + i))
        elif i < 185:
            results.append(Result(c.key, Status.REJECTED, 1, "auth failed", None, 1, at, 300.0 + i))
        elif i < 190:
            results.append(Result(c.key, Status.FAILED, None, "HTTP 500", None, 6, at, None))
        else:
            results.append(
                Result(c.key, Status.IN_DOUBT, None, "connection cut", None, 1, at, None)
            )
        if results[-1].latency_ms is not None:
            latencies.append(results[-1].latency_ms)
    reconciled = [
        Result(c.key, Status.ACCEPTED, 0, "", f"r{c.key}", 0, 99999.0, None, True)
        for c in cmds[193:195]
    ]
    write_outcomes(ledger, results + reconciled)
    first = ledger.start_run("jobs/fleet.csv", {})
    ledger.finish_run(first, {}, None)
    second = ledger.start_run("jobs/fleet.csv", {})
    ledger.finish_run(second, {}, "interrupted (SIGINT)")
    return latencies


def _nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1]


def test_summary_counts_every_status_and_errno(ledger: Ledger) -> None:
    _fill_known(ledger)
    summary = summarize(ledger)
    assert summary.total == 200
    assert summary.by_status == {
        "pending": 5, "in_flight": 0, "accepted": 152, "rejected": 35, "failed": 5, "in_doubt": 3,
        "expired": 0, "retried": 0, "skipped": 0,
    }  # fmt: skip
    assert summary.by_errno == {5006: 25, 1: 10}
    assert list(summary.by_errno) == [5006, 1]
    assert summary.errno_text == {5006: "system logic limit", 1: "auth failed"}
    assert (summary.reconciled, summary.runs, summary.stop_reason) == (2, 2, "interrupted (SIGINT)")


def test_summary_attempts_retries_and_throughput(ledger: Ledger) -> None:
    _fill_known(ledger)
    summary = summarize(ledger)
    assert summary.attempts == 135 + 15 * 3 + 35 + 5 * 6 + 3
    assert summary.retries == 15 * 2 + 5 * 5
    assert (summary.first_at, summary.last_at) == (1000.0, 1194.0)
    assert summary.throughput == pytest.approx(195 / 194.0)


def test_summary_latency_percentiles_are_nearest_rank(ledger: Ledger) -> None:
    latencies = _fill_known(ledger)
    summary = summarize(ledger)
    assert len(latencies) == 185
    assert summary.p50_ms == _nearest_rank(latencies, 50) == 93.0
    assert summary.p95_ms == _nearest_rank(latencies, 95) == 475.0
    assert summary.p99_ms == _nearest_rank(latencies, 99) == 483.0


def test_percentiles_of_one_to_a_thousand(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(1000)]
    ledger.register(cmds)
    order = sorted(range(1000), key=lambda i: (i * 7919) % 1000)  # latencies in scrambled order
    write_outcomes(ledger, [Result(c.key, Status.ACCEPTED, 0, "", "u", 1, 1.0, float(order[i] + 1))
         for i, c in enumerate(cmds)],
    )  # fmt: skip
    summary = summarize(ledger)
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (500.0, 950.0, 990.0)


def test_summary_of_an_empty_ledger(ledger: Ledger) -> None:
    summary = summarize(ledger)
    assert summary.total == 0
    assert set(summary.by_status.values()) == {0}
    assert (summary.p50_ms, summary.throughput, summary.first_at, summary.stop_reason) == (
        None, None, None, None,
    )  # fmt: skip
    assert (summary.p95_ms, summary.p99_ms) == (None, None)


def test_summary_table_shows_the_figures(ledger: Ledger) -> None:
    _fill_known(ledger)
    summary = summarize(ledger)
    console = Console(record=True, width=100, color_system=None)
    console.print(render_table(summary))
    text = console.export_text()
    assert "accepted" in text
    assert "152 (76.0%)" in text
    assert "errno 5006 (system logic limit)" in text
    assert "248 (55 retries)" in text
    assert "93 / 475 / 483 ms" in text
    assert "interrupted (SIGINT)" in text
    assert "1970-01-01T08:16:40+08:00" in text  # the first attempt, in OneNET's zone


def _small_ledger(ledger: Ledger) -> None:
    cmds = [
        make_command(0, valid_time=parse_timespec("2030-01-02 03:04:05"), args='set "a,b"\n二'),
        make_command(1, args=None),
        make_command(2),
    ]
    ledger.register(cmds)
    ledger.write_batch([InFlight(cmds[0].key, 1700000000.5, "2030-01-02T03:04:05",
                                 "2030-01-02T09:04:05", 1)], ())  # fmt: skip
    write_outcomes(
        ledger, [Result(cmds[0].key, Status.ACCEPTED, 0, "succ", "uuid-0", 2, 1700000001.25, 12.5)]
    )
    write_outcomes(ledger, [Result(cmds[1].key, Status.REJECTED, 5006, "system logic limit", None,
                                   1, 1700000002.0, 8.0)])  # fmt: skip


_FIRST = {
    "imei": "860000000000000",
    "obj_id": 3200,
    "obj_inst_id": 0,
    "res_id": 5750,
    "args": 'set "a,b"\n二',
    "status": "accepted",
    "errno": 0,
    "error": "succ",
    "uuid": "uuid-0",
    "attempts": 2,
    "source": "jobs/fleet.yaml:10",
    "valid_time": "2030-01-02 03:04:05",
    "expired_time": "+6h",
    "sent_valid_time": "2030-01-02T03:04:05",
    "sent_expired_time": "2030-01-02T09:04:05",
    "first_attempt_at": "2023-11-15T06:13:20.500+08:00",
    "last_attempt_at": "2023-11-15T06:13:21.250+08:00",
    "latency_ms": 12.5,
    "reconciled": False,
    "retry": 3,
    "timeout": 25,
    "trigger_msg": 7,
    "key": make_command(0, args='set "a,b"\n二').key,
    "retired": None,
    "send_status": None,
    "confirm_status": None,
    "send_time": None,
    "confirm_time": None,
    "cmd_result": None,
    "delivery": "unread",
    "status_checked_at": None,
    "cancelled_at": None,
    "cancel_error": None,
    "retried_in": None,
    "op": "execute",
    "mode": None,
    "step": None,
    "product": None,
}


def test_jsonl_export_parses_back_row_by_row(ledger: Ledger) -> None:
    _small_ledger(ledger)
    out = io.StringIO()
    assert write_export(ledger, "jsonl", out) == 3
    lines = out.getvalue().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert records[0] == _FIRST
    assert list(records[0]) == list(EXPORT_FIELDS)
    assert [r["status"] for r in records] == ["accepted", "rejected", "pending"]
    assert (records[1]["args"], records[1]["errno"], records[2]["first_attempt_at"]) == (
        None, 5006, None,
    )  # fmt: skip


def test_json_export_is_one_array_equal_to_the_jsonl_rows(ledger: Ledger) -> None:
    _small_ledger(ledger)
    as_json, as_jsonl = io.StringIO(), io.StringIO()
    write_export(ledger, "json", as_json)
    write_export(ledger, "jsonl", as_jsonl)
    records = json.loads(as_json.getvalue())
    assert records == [json.loads(line) for line in as_jsonl.getvalue().splitlines()]
    assert records[0] == _FIRST


def test_csv_export_quotes_commas_newlines_quotes_and_unicode(ledger: Ledger) -> None:
    _small_ledger(ledger)
    out = io.StringIO(newline="")
    assert write_export(ledger, "csv", out) == 3
    assert '"set ""a,b""\n二"' in out.getvalue()
    header, *rows = csv.reader(io.StringIO(out.getvalue(), newline=""))
    assert tuple(header) == EXPORT_FIELDS
    first = dict(zip(header, rows[0], strict=True))
    expected = {k: "" if v is None else str(v) for k, v in _FIRST.items()}
    expected["reconciled"] = "false"
    expected["expired_time"] = "'+6h"  # a text a spreadsheet would read as a formula
    assert first == expected
    assert (rows[1][header.index("args")], rows[1][header.index("errno")]) == ("", "5006")
    assert len(rows) == 3


def test_exports_of_an_empty_ledger_are_valid(ledger: Ledger) -> None:
    outs = {fmt: io.StringIO() for fmt in ("csv", "jsonl", "json")}
    for fmt, out in outs.items():
        assert write_export(ledger, fmt, out) == 0  # type: ignore[arg-type]
    assert json.loads(outs["json"].getvalue()) == []
    assert outs["jsonl"].getvalue() == ""
    assert outs["csv"].getvalue().strip() == ",".join(EXPORT_FIELDS)


def test_an_unknown_export_format_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        write_export(ledger, "xml", io.StringIO())  # type: ignore[arg-type]


def test_the_api_key_reaches_neither_the_ledger_nor_any_report(tmp_path: Path) -> None:
    secret = "k3y-0f-the-pr0duct"
    path = tmp_path / "job.ledger.db"
    settings = {"onenet": {"base_url": "http://127.0.0.1:1", "api_key": secret}, "api_key": secret}
    with Ledger.open(path) as ledger:
        run_id = ledger.start_run("jobs/fleet.csv", settings)
        _small_ledger(ledger)
        ledger.finish_run(run_id, {"accepted": 1, "api-key": secret}, None)
        outputs: list[str] = []
        for fmt in ("csv", "jsonl", "json"):
            out = io.StringIO()
            write_export(ledger, fmt, out)
            outputs.append(out.getvalue())
        console = Console(record=True, width=120, color_system=None)
        console.print(render_table(summarize(ledger)))
        outputs.append(console.export_text())
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert "job.ledger.db-wal" in files
    assert not [o for o in outputs if secret in o]
    assert not [name for name, data in files.items() if secret.encode() in data]
    assert b"127.0.0.1" in files["job.ledger.db"] + files["job.ledger.db-wal"]


def _table_lines(ledger: Ledger) -> list[str]:
    """The table's lines, borders dropped and spaces squeezed: 'accepted 200 (2.0%)'."""
    console = Console(record=True, width=100, color_system=None)
    console.print(render_table(summarize(ledger)))
    return [" ".join(line.replace("│", " ").split()) for line in console.export_text().splitlines()]


def _line(lines: list[str], label: str) -> str:
    (found,) = [line for line in lines if line.startswith(label)]
    return found


def test_shares_are_of_the_whole_job_when_a_run_stopped_early(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(210)]
    ledger.register(cmds)
    write_outcomes(ledger, [Result(c.key, Status.ACCEPTED, 0, "", f"u{i}", 1, 1.0, 5.0)
                            for i, c in enumerate(cmds[:200])])  # fmt: skip
    ledger.set_job(JobRecord("/jobs/fleet.csv", "fleet", "ab", 10_000))
    summary = summarize(ledger)
    assert (summary.total, summary.job_total, summary.unregistered) == (210, 10_000, 9_790)
    text = _table_lines(ledger)
    assert _line(text, "commands") == "commands 10,000"
    assert _line(text, "accepted") == "accepted 200 (2.0%)"
    assert _line(text, "pending") == "pending 10 (0.1%)"
    assert _line(text, "not registered yet") == "not registered yet 9,790 (97.9%)"
    statuses = [i for i, line in enumerate(text) if line.startswith(("pending", "expired"))]
    assert text.index(_line(text, "not registered yet")) > max(statuses)


def test_without_a_job_record_shares_are_of_the_ledger_and_nothing_is_unregistered(
    ledger: Ledger,
) -> None:
    _fill_known(ledger)
    summary = summarize(ledger)
    assert (summary.job_total, summary.unregistered) == (None, 0)
    assert not [line for line in _table_lines(ledger) if "not registered" in line]
    ledger.set_job(JobRecord("/jobs/fleet.csv", "fleet", "ab", 150))  # fewer than it holds
    assert summarize(ledger).unregistered == 0


def test_retired_rows_are_counted_apart_from_the_job(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(10)]
    ledger.register(cmds)
    write_outcomes(ledger, [Result(c.key, Status.ACCEPTED, 0, "", f"u{i}", 1, 1.0, 5.0)
                            for i, c in enumerate(cmds)])  # fmt: skip
    edited = [dataclasses.replace(c, retry=0) for c in cmds[:3]]
    ledger.compare([*edited, *cmds[3:8]], apply=True)  # 3 edited, 2 removed
    summary = summarize(ledger)
    assert summary.total == 8
    assert (summary.by_status["accepted"], summary.by_status["pending"]) == (5, 3)
    assert summary.retired == {"removed": 2, "changed": 3}
    assert summary.attempts == 5  # figures are of the job's rows
    text = _table_lines(ledger)
    assert _line(text, "removed from the job") == "removed from the job 2"
    assert _line(text, "replaced by an edit") == "replaced by an edit 3"
    assert _line(text, "accepted") == "accepted 5 (62.5%)"


def test_exports_say_which_rows_are_retired(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    ledger.register(cmds)
    ledger.compare([dataclasses.replace(cmds[0], timeout=5), cmds[1]], apply=True)
    out = io.StringIO()
    assert write_export(ledger, "jsonl", out) == 4
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["key"], r["retired"]) for r in records] == [
        (f"{cmds[0].key}~1", "changed"), (cmds[1].key, None), (cmds[2].key, "removed"),
        (cmds[0].key, None),
    ]  # fmt: skip


def test_summarize_keeps_no_object_per_row(ledger: Ledger) -> None:
    for start in range(0, 20_000, 5000):
        cmds = [make_command(i) for i in range(start, start + 5000)]
        ledger.register(cmds)
        write_outcomes(
            ledger,
            [Result(c.key, Status.ACCEPTED, 0, "", "u", 1, float(i), float(i % 97))
             for i, c in enumerate(cmds)],
        )  # fmt: skip
    tracemalloc.start()
    try:
        summary = summarize(ledger)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.by_status["accepted"] == 20_000
    assert peak < 3_000_000  # one fetch of latencies at most; 20,000 rows held: over 8 MB


_DELIVERY_COLUMNS = (
    "send_status", "confirm_status", "send_time", "confirm_time", "cmd_result", "delivery",
    "status_checked_at", "cancelled_at", "cancel_error", "retried_in",
)  # fmt: skip


def test_delivery_columns_follow_the_earlier_columns_in_order() -> None:
    assert EXPORT_FIELDS[: EXPORT_FIELDS.index("retired") + 1] == (
        "imei", "obj_id", "obj_inst_id", "res_id", "args", "status", "errno", "error", "uuid",
        "attempts", "source", "valid_time", "expired_time", "sent_valid_time", "sent_expired_time",
        "first_attempt_at", "last_attempt_at", "latency_ms", "reconciled", "retry", "timeout",
        "trigger_msg", "key", "retired",
    )  # fmt: skip
    delivery = EXPORT_FIELDS.index("retired") + 1
    assert EXPORT_FIELDS[delivery : delivery + len(_DELIVERY_COLUMNS)] == _DELIVERY_COLUMNS
    assert EXPORT_FIELDS[delivery + len(_DELIVERY_COLUMNS) :] == ("op", "mode", "step", "product")


def _delivered_ledger(ledger: Ledger) -> list[str]:
    """Five commands: delivered, device error, cancelled, a refused cancel, rejected."""
    cmds = [make_command(i) for i in range(5)]
    ledger.register(cmds)
    write_outcomes(ledger, [Result(c.key, Status.ACCEPTED, 0, "succ", f"u{i}", 1, 1000.0, 5.0)
         for i, c in enumerate(cmds[:4])]
        + [Result(cmds[4].key, Status.REJECTED, 1, "auth failed", None, 1, 1000.0, 5.0)],
    )  # fmt: skip
    ledger.record_delivery(
        [
            Delivery(cmds[0].key, 5, "SUCCESS", "2024-05-01 10:00:00", "2024-05-01 10:00:02",
                     "fw=2.4.1", 1700000000.0),
            Delivery(cmds[1].key, 6, "TIME_OUT", "2024-05-01 10:00:00", "2024-05-01 10:00:30",
                     None, 1700000000.0),
            Delivery(cmds[3].key, 3, None, "2024-05-01 10:00:00", None, None, 1700000000.0),
        ]
    )  # fmt: skip
    ledger.record_cancel([(cmds[2].key, None, 1), (cmds[3].key, "errno 5006: not waiting", 3)])
    return [c.key for c in cmds]


def test_exports_hold_what_became_of_each_command(ledger: Ledger) -> None:
    keys = _delivered_ledger(ledger)
    out = io.StringIO()
    write_export(ledger, "jsonl", out)
    by_key = {r["key"]: r for r in map(orjson.loads, out.getvalue().splitlines())}
    done, device_error, cancelled, refused, rejected = (by_key[k] for k in keys)
    assert {k: done[k] for k in _DELIVERY_COLUMNS} == {
        "send_status": 5, "confirm_status": "SUCCESS", "send_time": "2024-05-01 10:00:00",
        "confirm_time": "2024-05-01 10:00:02", "cmd_result": "fw=2.4.1", "delivery": "delivered",
        "status_checked_at": "2023-11-15T06:13:20.000+08:00", "cancelled_at": None,
        "cancel_error": None, "retried_in": None,
    }  # fmt: skip
    assert (device_error["delivery"], device_error["confirm_status"]) == ("failed", "TIME_OUT")
    assert (cancelled["delivery"], cancelled["send_status"], cancelled["cancel_error"]) == (
        "cancelled", 2, None,
    )  # fmt: skip
    assert cancelled["cancelled_at"] is not None
    assert (refused["delivery"], refused["cancel_error"]) == ("sent", "errno 5006: not waiting")
    assert (rejected["delivery"], rejected["send_status"]) == (None, None)


def test_csv_and_json_exports_carry_the_delivery_columns_too(ledger: Ledger) -> None:
    keys = _delivered_ledger(ledger)
    as_csv, as_json = io.StringIO(newline=""), io.StringIO()
    write_export(ledger, "csv", as_csv)
    write_export(ledger, "json", as_json)
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(as_csv.getvalue(), newline=""))}
    assert (rows[keys[0]]["send_status"], rows[keys[0]]["delivery"]) == ("5", "delivered")
    assert (rows[keys[4]]["delivery"], rows[keys[4]]["cmd_result"]) == ("", "")
    records = {r["key"]: r for r in json.loads(as_json.getvalue())}
    assert records[keys[1]]["confirm_time"] == "2024-05-01 10:00:30"
    assert list(records[keys[1]]) == list(EXPORT_FIELDS)


def _delivery_lines(ledger: Ledger) -> dict[str, str]:
    """The delivery table's rows, borders dropped: {'delivered': '1 (25.0%) 1'}."""
    table = render_delivery(summarize(ledger))
    assert table is not None
    console = Console(record=True, width=100, color_system=None)
    console.print(table)
    cells = [line.replace("┃", "│").split("│") for line in console.export_text().splitlines()]
    return {c[1].strip(): " ".join(" ".join(c[2:]).split()) for c in cells if len(c) == 5}


def test_the_summary_counts_devices_by_delivery_with_their_commands(ledger: Ledger) -> None:
    _delivered_ledger(ledger)
    extra = make_command(9, imei="860000000000000")  # a second command to the delivered device
    ledger.register([extra])
    write_outcomes(ledger, [Result(extra.key, Status.ACCEPTED, 0, "", "u9", 1, 1.0, 5.0)])
    lines = _delivery_lines(ledger)
    assert list(lines) == [
        "delivery", "waiting", "sent", "delivered", "expired", "failed", "cancelled",
        "not read yet", "all", "not accepted",
    ]  # fmt: skip
    assert lines["not accepted"] == "1 1"  # the pending command, on a device of its own
    assert lines["delivered"] == "0 1"  # its device counts under its unread command
    assert lines["not read yet"] == "1 (25.0%) 1"  # the device of a delivered and an unread one
    assert (lines["failed"], lines["cancelled"], lines["sent"]) == (
        "1 (25.0%) 1", "1 (25.0%) 1", "1 (25.0%) 1",
    )  # fmt: skip
    assert lines["all"] == "4 5"


def test_the_delivery_table_leaves_out_not_read_yet_once_everything_was_read(
    ledger: Ledger,
) -> None:
    keys = _delivered_ledger(ledger)
    ledger.record_delivery([Delivery(keys[3], 5, "SUCCESS", None, None, None, 2.0)])
    lines = _delivery_lines(ledger)
    assert "not read yet" not in lines
    assert lines["delivered"] == "2 (50.0%) 2"


def test_no_delivery_table_before_any_command_was_accepted(ledger: Ledger) -> None:
    ledger.register([make_command(0)])
    summary = summarize(ledger)
    assert summary.delivery is not None and summary.delivery.not_held == 1
    assert render_delivery(summary) is None


MARKUP = "[/b] [i]x[/i]"  # as markup, rich raises on the first and styles the rest


def _markup_ledger(ledger: Ledger) -> None:
    """An accepted command the device answered "[/b]", a refusal and a stop reason of markup,
    and a job under a directory named ``jobs[v2]``."""
    cmds = [make_command(i) for i in range(2)]
    ledger.register(cmds)
    write_outcomes(
        ledger,
        [
            Result(cmds[0].key, Status.ACCEPTED, 0, "succ", "u0", 1, 1000.0, 5.0),
            Result(cmds[1].key, Status.REJECTED, 5006, f"limit {MARKUP}", None, 1, 1000.0, 5.0),
        ],
    )
    ledger.record_delivery([Delivery(cmds[0].key, 6, "[/b]", None, None, None, 2000.0)])
    ledger.set_job(JobRecord("/srv/jobs[v2]/fleet.yaml", "fleet", "ab", 2))
    ledger.finish_run(ledger.start_run("/srv/jobs[v2]/fleet.yaml", {}), {}, f"stopped {MARKUP}")


def test_the_report_table_shows_onenet_texts_as_written_never_as_markup(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    with Ledger.open(path, synchronous="normal") as ledger:
        _markup_ledger(ledger)
    result = CliRunner().invoke(main, ["report", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"errno 5006 (limit {MARKUP})" in result.stdout
    assert f"stopped {MARKUP}" in result.stdout


def test_a_delivery_table_title_is_shown_as_written(ledger: Ledger) -> None:
    _markup_ledger(ledger)
    console = Console(record=True, width=200, color_system=None)
    console.print(delivery_table(ledger.delivery_breakdown(), "job /srv/jobs[v2]/a [/b].yaml"))
    assert "job /srv/jobs[v2]/a [/b].yaml" in console.export_text()


def test_a_ledger_of_an_older_schema_names_the_command_that_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    with Ledger.open(path, synchronous="normal") as ledger:
        ledger.register([make_command(0)])
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    conn.close()
    result = CliRunner().invoke(main, ["report", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"run `dispatcher status {path}`" in result.stderr
    assert "or `dispatcher run` on its job" in result.stderr
    assert "Traceback" not in result.stderr
