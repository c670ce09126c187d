"""Ledger summaries and exports: exact figures, every format parsed back, and no secret anywhere."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Status
from dispatcher.report.export import EXPORT_FIELDS, write_export
from dispatcher.report.render import render_table
from dispatcher.report.summary import summarize
from dispatcher.times import parse_timespec
from tests.support.ledger import make_command, write_outcomes
from tests.support.report_ledgers import plain_job
from tests.support.reports import (
    fill_known,
)


def _nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1]


def test_summary_counts_every_status_and_errno(ledger: Ledger) -> None:
    fill_known(ledger)
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
    fill_known(ledger)
    summary = summarize(ledger)
    assert summary.attempts == 135 + 15 * 3 + 35 + 5 * 6 + 3
    assert summary.retries == 15 * 2 + 5 * 5
    assert (summary.first_at, summary.last_at) == (1000.0, 1194.0)
    assert summary.throughput == pytest.approx(195 / 194.0)


def test_summary_latency_percentiles_are_nearest_rank(ledger: Ledger) -> None:
    latencies = fill_known(ledger)
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
    fill_known(ledger)
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


def test_the_table_tells_errno_1_of_foreign_devices_from_a_wrong_key(tmp_path: Path) -> None:
    def table(ledger: Ledger) -> str:
        console = Console(record=True, width=160, color_system=None)
        console.print(render_table(summarize(ledger)))
        return " ".join(console.export_text().split())

    with Ledger.open(tmp_path / "mixed.ledger.db") as ledger:
        plain_job(ledger, 300, foreign=(19, 29, 39))  # OneNET accepted the rest on the same key
        assert "errno 1 (auth failed): device not in this product (the key works:" in table(ledger)
    with Ledger.open(tmp_path / "none.ledger.db") as ledger:
        cmds = [make_command(i) for i in range(3)]
        ledger.register(cmds)
        write_outcomes(
            ledger,
            [Result(c.key, Status.REJECTED, 1, "auth failed", None, 1, 1.0, 9.0) for c in cmds],
        )
        assert "errno 1 (auth failed): key wrong or not this product's" in table(ledger)
