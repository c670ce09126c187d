"""The benchmark suite end to end at tiny sizes: every row is there and every figure reads.

No timing is asserted: only that each measurement ran, the emulator checks passed, and the
table and the JSON carry numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: import it from the repository
    sys.path.insert(0, str(REPO))

from benchmarks.suite import busiest_window  # noqa: E402  # needs the path above

TINY = ["--n", "120", "--naive-n", "30", "--validate-n", "300", "--run-n", "150"]
TINY += ["--pacing-n", "20", "--rate", "50"]
NUMBER = re.compile(r"^[+-]?[\d,]+(\.\d+)?( \([\d.]+x\))?$")
CONTENDERS = ("bare aiohttp loop", "dispatcher", "naive script")
SCALE_ROWS = (
    "`dispatcher validate`",
    "bare `csv.DictReader` pass",
    "`dispatcher run`, no rate limit",
    "`dispatcher run --rate 50`",
)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *TINY, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "results.md").read_text(encoding="utf-8") in done.stdout
    return out


@pytest.mark.slow
def test_table_has_a_row_of_numbers_for_each_contender(bench_out: Path) -> None:
    lines = (bench_out / "results.md").read_text(encoding="utf-8").splitlines()
    rows = {_cells(line)[0]: _cells(line) for line in lines if line.startswith("| ")}
    for name in CONTENDERS:
        cells = rows[name]
        assert len(cells) == 6
        for cell in cells[2:]:
            assert NUMBER.match(cell), (name, cell)
    assert rows["naive script"][1] == "30, scaled to 120"


@pytest.mark.slow
def test_scale_rows_are_all_there_and_checks_passed(bench_out: Path) -> None:
    text = (bench_out / "results.md").read_text(encoding="utf-8")
    rows = {_cells(line)[0]: _cells(line) for line in text.splitlines() if line.startswith("| ")}
    for name in SCALE_ROWS:
        assert NUMBER.match(rows[name][2].split(" (")[0]), rows[name]
        assert NUMBER.match(rows[name][3].split(" (")[0]), rows[name]
    assert "150 of 150, 0 duplicates" in rows["`dispatcher run`, no rate limit"][4]
    assert "pacing error" in rows["`dispatcher run --rate 50`"][4]
    assert "Machine: " in text and "Python " in text


@pytest.mark.slow
def test_json_holds_every_measurement_with_passing_checks(bench_out: Path) -> None:
    doc = json.loads((bench_out / "results.json").read_text(encoding="utf-8"))
    assert doc["ok"] is True and doc["errors"] == []
    assert [c["name"] for c in doc["contenders"]] == list(CONTENDERS)
    for c in doc["contenders"]:
        assert c["check"]["ok"] and c["cpu_s"] > 0 and c["peak_rss_mb"] > 0
    assert doc["validate"]["rows"] == 300
    assert doc["big_run"]["ledger_bytes"] > 0 and doc["big_run"]["check"]["accepted"] == 150
    assert doc["pacing"]["check"]["accepted"] == 20
    assert doc["pacing"]["busiest_1s_window"] >= 1
    assert set(doc["startup_cpu_s"]) == set(CONTENDERS)


@pytest.mark.slow
def test_work_files_are_removed_after_the_run(bench_out: Path) -> None:
    left = [p.name for p in (bench_out / "work").iterdir()]
    assert not [name for name in left if name.endswith((".csv", ".db"))]


def test_busiest_window_counts_arrivals_in_any_half_open_second() -> None:
    assert busiest_window([]) == 0
    assert busiest_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert busiest_window([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]) == 5
    assert busiest_window([3.0, 0.1, 0.2]) == 2
