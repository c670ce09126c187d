"""A summary's shares: of the whole job, or of the ledger without a job record; retired rows apart;
no object kept per row."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc

import orjson
from rich.console import Console

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import JobRecord, Result, Status
from dispatcher.report.export import write_export
from dispatcher.report.render import render_table
from dispatcher.report.summary import summarize
from tests.support.ledger import make_command, write_outcomes
from tests.support.reports import (
    fill_known,
)


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
    fill_known(ledger)
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
