"""What became of each command in the reports: delivery columns and tables, OneNET's texts shown
as written (never as markup), a ledger of an older schema."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import orjson
from click.testing import CliRunner
from rich.console import Console

from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, JobRecord, Result, Status
from dispatcher.report.export import EXPORT_FIELDS, write_export
from dispatcher.report.render import delivery_table, render_delivery
from dispatcher.report.summary import summarize
from tests.support.ledger import make_command, write_outcomes

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
    # A delivery's failure is worded apart from a send's ("failed to send").
    assert list(lines) == [
        "delivery", "waiting", "sent", "delivered", "delivery expired", "delivery failed",
        "cancelled", "not read yet", "all", "not accepted",
    ]  # fmt: skip
    assert lines["not accepted"] == "1 1"  # the pending command, on a device of its own
    assert lines["delivered"] == "0 1"  # its device counts under its unread command
    assert lines["not read yet"] == "1 (25.0%) 1"  # the device of a delivered and an unread one
    assert (lines["delivery failed"], lines["cancelled"], lines["sent"]) == (
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
