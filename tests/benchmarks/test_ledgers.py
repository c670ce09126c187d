"""The ledger measurement: the same run into a SQLite ledger and into a PostgreSQL ledger on a
cluster of the benchmark's own, round by round.

No timing is asserted: only that each run is there, paired and checked by the emulator, that the
figures are the medians and ratios of those runs, and that a machine without PostgreSQL gets the
measurement reported as skipped. The end-to-end run skips without PostgreSQL's binaries unless
``DISPATCHER_REQUIRE_POSTGRESQL=1`` (as tests/support/postgres.py does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: import it from the repository
    sys.path.insert(0, str(REPO))

from benchmarks.ledgers import POSTGRESQL, SQLITE, LedgerCompare, LedgerRun  # noqa: E402
from benchmarks.pg_cluster import missing  # noqa: E402
from benchmarks.procs import Measured  # noqa: E402
from benchmarks.records import Check  # noqa: E402
from benchmarks.report_ledgers import TITLE, ledger_json, ledger_rows  # noqa: E402

REQUIRE = os.environ.get("DISPATCHER_REQUIRE_POSTGRESQL") == "1"
N, ROUNDS = 60, 2


def need_postgresql() -> None:
    """Skip when PostgreSQL's binaries are missing (a failure when they are required)."""
    reason = missing()
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"DISPATCHER_REQUIRE_POSTGRESQL=1 but {reason}")
    pytest.skip(reason)


def _run(ledger: str, round_: int, cpu_s: float, wall_s: float, server: float | None) -> LedgerRun:
    measured = Measured(("dispatcher",), 0, wall_s, cpu_s, cpu_s / 10, 60.0, "", "")
    return LedgerRun(ledger, round_, measured, Check(100, 100, 0, 100), 0.5, server)


def test_figures_are_medians_and_ratios_of_the_paired_rounds() -> None:
    runs = (
        _run(SQLITE, 1, 1.0, 2.0, None),
        _run(POSTGRESQL, 1, 1.2, 3.0, 0.4),
        _run(SQLITE, 2, 2.0, 2.0, None),
        _run(POSTGRESQL, 2, 2.2, 2.0, 0.2),
        _run(SQLITE, 3, 1.0, 4.0, None),
        _run(POSTGRESQL, 3, 1.4, 4.0, 0.3),
    )
    found = LedgerCompare(100, 3, runs, "15.18")
    assert found.cpu_ratios() == pytest.approx([1.2, 1.1, 1.4])
    assert found.cpu_x == pytest.approx(1.2) and found.wall_x == pytest.approx(1.0)
    assert found.cpu_per_1k(SQLITE) == pytest.approx(10.0)  # median 1.0 s over 100 commands
    assert found.cpu_per_1k(POSTGRESQL) == pytest.approx(14.0)
    assert found.server_per_1k() == pytest.approx(3.0)
    assert found.total_ratios() == pytest.approx([1.6, 1.2, 1.7]) and found.ok
    rows = ledger_rows(found)
    assert rows[0].startswith(TITLE) and "PostgreSQL 15.18" in rows[0]
    assert any(row.startswith("| PostgreSQL job") and "(1.20x)" in row for row in rows)


def test_a_failed_check_makes_the_measurement_not_ok() -> None:
    bad = LedgerRun(SQLITE, 1, _run(SQLITE, 1, 1.0, 1.0, None).run, Check(100, 99, 1, 100), 0.1)
    assert not LedgerCompare(100, 1, (bad, _run(POSTGRESQL, 1, 1.0, 1.0, 0.1))).ok


def test_without_postgresql_the_measurement_is_reported_as_skipped_with_the_reason() -> None:
    skipped = LedgerCompare(500, 1, skipped="PostgreSQL is not installed")
    assert ledger_rows(skipped) == [f"{TITLE}: skipped: PostgreSQL is not installed.", ""]
    doc = ledger_json(skipped)
    assert doc["skipped"] == "PostgreSQL is not installed" and doc["runs"] == [] and doc["ok"]
    assert "cpu_x" not in doc and skipped.ok and not skipped.measured


@pytest.fixture(scope="module")
def ledgers_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    need_postgresql()
    out = tmp_path_factory.mktemp("ledgers")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "benchmarks", "--ledgers-only", "--n", str(N)]
    argv += ["--ledger-rounds", str(ROUNDS), "--out", str(out)]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return (out / "results.md").read_text(encoding="utf-8"), doc


@pytest.mark.slow
def test_ledgers_only_alternates_sqlite_and_postgresql_runs_each_checked(
    ledgers_only: tuple[str, dict[str, Any]],
) -> None:
    _, doc = ledgers_only
    ledgers = doc["ledgers"]
    assert doc["ok"] and ledgers["ok"] and ledgers["skipped"] is None
    order = [(r["ledger"], r["round"]) for r in ledgers["runs"]]
    assert order == [(SQLITE, 1), (POSTGRESQL, 1), (SQLITE, 2), (POSTGRESQL, 2)]
    for r in ledgers["runs"]:
        assert r["returncode"] == 0 and r["cpu_s"] > 0
        assert r["check"] == {"expected": N, "accepted": N, "duplicates": 0, "posts": N, "ok": True}
        assert (r["server_cpu_s"] is None) == (r["ledger"] == SQLITE)
    assert all(r["server_cpu_s"] > 0 for r in ledgers["runs"] if r["ledger"] == POSTGRESQL)
    assert len(ledgers["cpu_x_per_round"]) == ROUNDS and ledgers["cpu_x"] > 0
    assert "contenders" in doc and doc["contenders"] == []  # nothing else ran


@pytest.mark.slow
def test_ledgers_only_table_has_a_row_per_ledger_and_the_target(
    ledgers_only: tuple[str, dict[str, Any]],
) -> None:
    text, _ = ledgers_only
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    sqlite = next(r for r in rows if r.startswith("| SQLite file"))
    pg = next(r for r in rows if r.startswith("| PostgreSQL job"))
    assert f"{ROUNDS} of {ROUNDS} ok" in sqlite and f"{ROUNDS} of {ROUNDS} ok" in pg
    assert "x) |" in pg and "none (in the client)" in sqlite
    target = next(r for r in rows if "with a PostgreSQL ledger" in r)
    assert f"({N:,} commands, median of {ROUNDS} paired rounds)" in target
    assert "fsync on, synchronous_commit on" in text
