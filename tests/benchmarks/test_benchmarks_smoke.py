"""The benchmark suite end to end at tiny sizes: every row is there and every figure reads.

No timing is asserted: only that each measurement ran, the emulator checks passed, and the
table and the JSON carry numbers.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: import it from the repository
    sys.path.insert(0, str(REPO))

from benchmarks.cubic_limiter import CubicCalculator, RateClocker  # noqa: E402
from benchmarks.gen_fleet import FLEET_FIELDS, write_fleet_csv  # noqa: E402
from benchmarks.gen_steps import write_steps_jobs  # noqa: E402
from benchmarks.pg_cluster import missing  # noqa: E402
from benchmarks.records import busiest_window  # noqa: E402  # needs the path above
from benchmarks.throttled import follow_times, per_second, replay_admissions  # noqa: E402

TINY = ["--n", "120", "--naive-n", "30", "--validate-n", "200,300", "--run-n", "150"]
TINY += ["--pacing-n", "20", "--rate", "50", "--steps", "3"]
# against a throttling server: one rate and one mode, and a changing limit of 1-second steps
TINY += ["--throttle-rps", "100", "--throttle-n", "150", "--throttle-rates", "1"]
TINY += ["--throttle-modes", "errno7", "--follow-step-s", "1"]
TINY += ["--loop-fleet", "0"]  # the closed loop's counts are test_loop_counts.py's
TINY += ["--ledger-rounds", "1"]  # one pair of ledger runs (test_ledgers.py: more rounds)
THROTTLED_ROWS = ("dispatcher, rate 100/s (1R)", "AWS SDK adaptive retry (CUBIC), unlimited")
PERCENT = re.compile(r"^\d+\.\d%")
NUMBER = re.compile(r"^[+-]?[\d,]+(\.\d+)?( \([\d.]+x\))?$")
RATIO = re.compile(r"^\d+\.\d\dx$")
MEGABYTES = re.compile(r"^[\d,.]+ MB$")
VERDICT = re.compile(r"^(met|not met \([\d,.]+(x| MB) over\))$")
VALIDATE_ROWS = (200, 300)
LONG, SHORT = "long args, relative times", "short args, absolute times"
JOBS = (LONG, SHORT)  # each size of validate, in this order
CONTENDERS = (  # (contender, job): the table's first two cells
    ("bare aiohttp loop", LONG),
    ("dispatcher", LONG),
    ("naive script", LONG),
    ("bare aiohttp loop", SHORT),
    ("dispatcher", SHORT),
)
STEPS_ROW = "`dispatcher run`, a job of steps"
PLAIN_ROW = "`dispatcher run`, the same commands without steps"
SCALE_ROWS = (
    "`dispatcher validate`",
    "bare `csv.DictReader` pass",
    STEPS_ROW,
    PLAIN_ROW,
    "`dispatcher run`, no rate limit",
    "`dispatcher run --rate 50`",
)
_CPU = "client CPU per command ≤ 1.3x the bare aiohttp loop, {} (120 commands, concurrency 64, "
_VALIDATE = "`validate` CPU ≤ 5x a bare csv.DictReader pass, {:,} rows (7 columns, {})"
NO_POSTGRESQL = missing()  # why the ledger runs are skipped here (None: they run)
_PG = "client CPU per command with a PostgreSQL ledger ≤ 1.5x with a SQLite ledger"
TARGET_ROWS = (
    _CPU.format(LONG) + "no limit)",
    _CPU.format(SHORT) + "no limit)",
    *(_VALIDATE.format(n, job) for n in VALIDATE_ROWS for job in JOBS),
    *([] if NO_POSTGRESQL else [f"{_PG} (120 commands, median of 1 paired rounds)"]),
    "`run` CPU of a job of 3 steps x 2 devices ≤ 2x the same 6 commands without steps",
    *(f"peak RSS < 100 MB, `validate` {n:,} rows, {job}" for n in VALIDATE_ROWS for job in JOBS),
    "peak RSS < 100 MB, `run` 150 commands",
)
UTC8 = timezone(timedelta(hours=8))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_rows(text: str) -> list[list[str]]:
    return [_cells(line) for line in text.splitlines() if line.startswith("| ")]


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
def test_table_has_a_row_of_numbers_for_each_contender_on_each_job_shape(bench_out: Path) -> None:
    rows = _table_rows((bench_out / "results.md").read_text(encoding="utf-8"))
    contenders = [cells for cells in rows if (cells[0], cells[1]) in CONTENDERS]
    assert [(cells[0], cells[1]) for cells in contenders] == list(CONTENDERS)
    for cells in contenders:
        assert len(cells) == 7
        for cell in cells[3:]:
            assert NUMBER.match(cell), cells
    assert contenders[2][2] == "30, scaled to 120"  # the naive script
    assert [cells[2] for cells in contenders if cells[0] != "naive script"] == ["120"] * 4


@pytest.mark.slow
def test_scale_rows_are_all_there_and_checks_passed(bench_out: Path) -> None:
    text = (bench_out / "results.md").read_text(encoding="utf-8")
    rows = {_cells(line)[0]: _cells(line) for line in text.splitlines() if line.startswith("| ")}
    assert "| measurement | size | wall s | CPU s | peak RSS MB | result |" in text
    for name in SCALE_ROWS:
        assert len(rows[name]) == 6, rows[name]
        for cell in rows[name][2:5]:  # wall s, CPU s, peak RSS MB
            assert NUMBER.match(cell), rows[name]
    assert "150 of 150, 0 duplicates" in rows["`dispatcher run`, no rate limit"][5]
    assert "pacing error" in rows["`dispatcher run --rate 50`"][5]
    assert rows[STEPS_ROW][1] == "3 steps x 2 devices" and rows[PLAIN_ROW][1] == "6 commands"
    for name in (STEPS_ROW, PLAIN_ROW):
        assert "emulator accepted 6 of 6, 0 duplicates" in rows[name][5], rows[name]
    assert "Machine: " in text and "Python " in text


@pytest.mark.slow
def test_scale_table_has_a_validate_row_and_a_dictreader_row_per_size_and_shape(
    bench_out: Path,
) -> None:
    rows = _table_rows((bench_out / "results.md").read_text(encoding="utf-8"))
    sizes = [f"{n:,} rows, 7 columns, {job}" for n in VALIDATE_ROWS for job in JOBS]
    validate = [cells for cells in rows if cells[0] == "`dispatcher validate`"]
    plain = [cells for cells in rows if cells[0] == "bare `csv.DictReader` pass"]
    assert [cells[1] for cells in validate] == sizes == [cells[1] for cells in plain]
    for cells in validate:
        assert re.match(r"^[\d.]+ \([\d.]+x\)$", cells[3]), cells  # CPU s, with its ratio
        assert cells[5] == "valid"
    assert [cells[5] for cells in plain] == [f"{n:,} rows" for n in VALIDATE_ROWS for _ in JOBS]


@pytest.mark.slow
def test_targets_table_has_each_target_with_a_figure_and_a_verdict(bench_out: Path) -> None:
    text = (bench_out / "results.md").read_text(encoding="utf-8")
    assert "**Targets**\n\n| target | measured | verdict |\n|---|---:|---|\n" in text
    assert text.index("| contender |") < text.index("**Targets**") < text.index("| measurement |")
    rows = {cells[0]: cells for cells in _table_rows(text)}
    for name in TARGET_ROWS:
        cells = rows[name]
        assert len(cells) == 3, cells
        assert (RATIO if "CPU" in name else MEGABYTES).match(cells[1]), cells
        assert VERDICT.match(cells[2]), cells


@pytest.mark.slow
def test_json_holds_every_measurement_with_passing_checks(bench_out: Path) -> None:
    doc = json.loads((bench_out / "results.json").read_text(encoding="utf-8"))
    assert doc["ok"] is True and doc["errors"] == []
    assert [(c["name"], c["job"]) for c in doc["contenders"]] == list(CONTENDERS)
    assert [c["shape"] for c in doc["contenders"]] == ["long"] * 3 + ["short"] * 2
    for c in doc["contenders"]:
        assert c["check"]["ok"] and c["cpu_s"] > 0 and c["peak_rss_mb"] > 0
    assert [(v["rows"], v["columns"], v["shape"]) for v in doc["validate"]] == [
        (n, 7, shape) for n in VALIDATE_ROWS for shape in ("long", "short")
    ]
    for v in doc["validate"]:
        assert v["cpu_x"] == v["dispatcher"]["cpu_s"] / v["dictreader"]["cpu_s"] > 0
        assert v["wall_x"] > 0 and v["dispatcher"]["returncode"] == 0
    targets = doc["targets"]
    assert targets["client_cpu_x_at_most"] == 1.3 and targets["validate_cpu_x_at_most"] == 5.0
    assert targets["peak_rss_mb_below"] == 100.0 and targets["steps_cpu_x_at_most"] == 2.0
    assert [t["target"] for t in targets["measured"]] == list(TARGET_ROWS)
    assert len(targets["missed"]) == sum(not t["met"] for t in targets["measured"])
    assert doc["big_run"]["ledger_bytes"] > 0 and doc["big_run"]["check"]["accepted"] == 150
    assert doc["pacing"]["check"]["accepted"] == 20
    steps = doc["steps"]
    assert (steps["steps"], steps["devices"], steps["commands"]) == (3, 2, 6)
    for run in (steps["with_steps"], steps["without_steps"]):
        assert run["check"]["ok"] and run["check"]["accepted"] == 6 and run["returncode"] == 0
    assert steps["cpu_x"] == steps["with_steps"]["cpu_s"] / steps["without_steps"]["cpu_s"] > 0
    assert doc["pacing"]["busiest_1s_window"] >= 1
    assert set(doc["startup_cpu_s"]) == {name for name, _ in CONTENDERS}


@pytest.mark.slow
def test_ledger_runs_are_in_the_table_and_the_json_or_reported_skipped(bench_out: Path) -> None:
    text = (bench_out / "results.md").read_text(encoding="utf-8")
    ledgers = json.loads((bench_out / "results.json").read_text(encoding="utf-8"))["ledgers"]
    if NO_POSTGRESQL:
        assert f"side by side**: skipped: {NO_POSTGRESQL}." in text
        assert ledgers["skipped"] == NO_POSTGRESQL and ledgers["runs"] == []
        return
    rows = {cells[0]: cells for cells in _table_rows(text)}
    sqlite = rows["SQLite file (`synchronous=full`)"]
    pg = rows["PostgreSQL job (local cluster, fsync on)"]
    assert NUMBER.match(sqlite[1]) and NUMBER.match(sqlite[2]) and "1 of 1 ok" in sqlite[5]
    assert NUMBER.match(pg[1]) and NUMBER.match(pg[2]) and NUMBER.match(pg[4]), pg
    assert "1 of 1 ok" in pg[5]
    assert [(r["ledger"], r["round"]) for r in ledgers["runs"]] == [
        ("sqlite", 1),
        ("postgresql", 1),
    ]
    assert all(r["check"]["ok"] and r["check"]["accepted"] == 120 for r in ledgers["runs"])


@pytest.mark.slow
def test_work_files_are_removed_after_the_run(bench_out: Path) -> None:
    left = [p.name for p in (bench_out / "work").iterdir()]
    assert not [name for name in left if name.endswith((".csv", ".yaml", ".db"))]


def test_busiest_window_counts_arrivals_in_any_half_open_second() -> None:
    assert busiest_window([]) == 0
    assert busiest_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert busiest_window([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]) == 5
    assert busiest_window([3.0, 0.1, 0.2]) == 2


@pytest.mark.slow
def test_throttled_table_has_a_row_for_each_client_and_each_change(bench_out: Path) -> None:
    text = (bench_out / "results.md").read_text(encoding="utf-8")
    assert "**Pacing against a server that admits R/s** (R = 100/s" in text
    rows = {_cells(line)[0]: _cells(line) for line in text.splitlines() if line.startswith("| ")}
    for name in THROTTLED_ROWS:
        cells = rows[name]
        assert len(cells) == 8 and cells[1] == "errno 7", cells
        assert NUMBER.match(cells[2]) and PERCENT.match(cells[3]) and PERCENT.match(cells[4])
        assert NUMBER.match(cells[5]) and NUMBER.match(cells[6]) and cells[7], cells
    for change in ("start: 100/s", "100 -> 50/s", "50 -> 100/s"):
        assert len(rows[change]) == 6, rows[change]
    assert "calls per device" in text


@pytest.mark.slow
def test_json_throttled_runs_have_consistent_counts(bench_out: Path) -> None:
    doc = json.loads((bench_out / "results.json").read_text(encoding="utf-8"))
    runs = doc["throttled"]
    assert [(t["client"], t["rate"], t["mode"]) for t in runs] == [
        ("dispatcher", 100.0, "errno7"),
        ("cubic", 0.0, "errno7"),
    ]
    for t in runs:
        assert t["commands"] == 150 and t["limit"] == 100.0 and t["consistent"]
        assert t["accepted"] == t["client_accepted"] and t["duplicates"] == 0
        assert t["client_accepted"] + t["failed"] == 150
        assert t["accepted"] + t["throttled"] <= t["posts"]
        assert t["span_s"] > 0 and t["used_pct"] > 0 and 0 <= t["throttled_pct"] <= 100
        assert (t["failed"] == 0) == (t["returncode"] == 0)
        assert isinstance(t["targets"]["missed"], list)
    status = runs[0]["status"]
    assert status["devices"] == 150 and status["history_calls"] >= 150
    assert status["calls_per_device"] >= 1 and status["returncode"] == 0
    f = doc["follow"]
    assert f["consistent"] and f["commands"] == 300 and f["rate"] == 200.0
    assert [c["after"] for c in f["changes"]] == [100.0, 50.0, 100.0]
    assert [c["before"] for c in f["changes"]] == [None, 100.0, 50.0]
    assert f["replayed_admissions"] == f["accepted"] == 300 - f["failed"]
    assert sum(f["admitted_per_s"]) == f["replayed_admissions"]
    assert sum(f["arrived_per_s"]) == f["posts"]
    for c in f["changes"]:
        assert all(0 <= n <= 100 for n in c["admitted_per_s"])


def test_replayed_throttle_admits_floor_rps_in_any_sliding_second() -> None:
    arrivals = [i / 8 for i in range(24)]  # 8/s for 3 s (eighths: exact in binary)
    assert replay_admissions(arrivals, [(0.0, 100.0)]) == arrivals
    four = replay_admissions(arrivals, [(0.0, 4.0)])
    assert four == [k + j / 8 for k in range(3) for j in range(4)]
    # From t = 2 the limit is 2/s: the window still holds 1.125 to 1.375 (1.0 left at 2.0), so
    # the next admission waits until only one of them is in the last second.
    changed = replay_admissions(arrivals, [(0.0, 4.0), (2.0, 2.0)])
    assert changed == [*four[:8], 2.25, 2.375]


def test_follow_times_count_whole_seconds_from_the_change() -> None:
    admitted = sorted([10 + i / 50 for i in range(50)] + [11 + i / 95 for i in range(95)])
    admitted += [12 + i / 100 for i in range(100)] + [13 + i / 80 for i in range(80)]
    first, settled, counts = follow_times(admitted, 10.0, 100.0, 3)
    assert counts == (50, 95, 100) and first == 2 and settled == 2
    first, settled, counts = follow_times(admitted, 10.0, 100.0, 4)
    assert counts == (50, 95, 100, 80) and first == 2 and settled is None
    assert follow_times([], 0.0, 10.0, 2) == (None, None, (0, 0))
    assert per_second([0.5, 1.0, 1.9, 3.2], 0.0) == (1, 2, 0, 1)


def test_cubic_port_matches_botocore_figures() -> None:
    cubic = CubicCalculator(starting_max_rate=0, start_time=0.0)
    assert cubic.error_received(100.0, 10.0) == pytest.approx(70.0)  # beta 0.7
    k = (100 * (1 - 0.7) / 0.4) ** (1 / 3)
    assert cubic.success_received(10.0 + k) == pytest.approx(100.0)  # back at W_max after K
    assert cubic.success_received(10.0) == pytest.approx(70.0)
    now = [100.2]
    clocker = RateClocker(lambda: now[0])  # its first bucket starts at floor(100.2) = 100
    for _ in range(9):
        clocker.record()
    now[0] = 100.6  # bucket 100.5: ten responses over 0.5 s = 20/s, smoothed by 0.8
    assert clocker.record() == pytest.approx(16.0)


def _fleet(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_short_shape_is_the_same_fleet_with_short_args_and_absolute_times_ahead(
    tmp_path: Path,
) -> None:
    now = datetime(2030, 5, 1, 12, 0, 0, tzinfo=UTC8)
    write_fleet_csv(tmp_path / "long.csv", 400)
    write_fleet_csv(tmp_path / "short.csv", 400, shape="short", now=now)
    long, short = _fleet(tmp_path / "long.csv"), _fleet(tmp_path / "short.csv")
    assert list(short[0]) == list(FLEET_FIELDS) and len(short) == len(long) == 400
    same = ("imei", "obj_id", "obj_inst_id", "res_id", "retry", "timeout", "trigger_msg")
    assert [[row[k] for k in same] for row in short] == [[row[k] for k in same] for row in long]
    assert all(len(row["args"]) <= 6 for row in short)
    assert all(len(row["args"]) >= 30 for row in long)
    assert {row["expired_time"] for row in long} == {"+2d", "+3d"}
    assert {row["expired_time"] for row in short} == {"2030-05-04 12:00:00", "2030-05-05 12:00:00"}
    # the rows with a valid_time are the same rows in both shapes, a day ahead in the short one
    assert [row["valid_time"] == "" for row in short] == [row["valid_time"] == "" for row in long]
    assert {row["valid_time"] for row in short} == {"", "2030-05-02 12:00:00"}


def test_long_shape_is_the_default(tmp_path: Path) -> None:
    write_fleet_csv(tmp_path / "default.csv", 300)
    write_fleet_csv(tmp_path / "long.csv", 300, shape="long")
    assert (tmp_path / "default.csv").read_bytes() == (tmp_path / "long.csv").read_bytes()
    with pytest.raises(ValueError, match="shape"):
        write_fleet_csv(tmp_path / "other.csv", 3, shape="medium")


def _command(fields: dict[str, object]) -> tuple[object, ...]:
    return tuple(sorted((k, str(v)) for k, v in fields.items()))


def test_steps_job_sends_the_plain_jobs_commands_each_distinct(tmp_path: Path) -> None:
    with_steps, plain = tmp_path / "steps.yaml", tmp_path / "plain.yaml"
    write_steps_jobs(with_steps, plain, 7, 3)
    steps_doc = yaml.safe_load(with_steps.read_text(encoding="utf-8"))
    plain_doc = yaml.safe_load(plain.read_text(encoding="utf-8"))
    assert steps_doc["defaults"] == plain_doc["defaults"] and "steps" not in plain_doc
    assert {step["op"] for step in steps_doc["steps"]} == {"execute", "write"}
    sent = [
        _command({"imei": target["imei"], **step})
        for step in steps_doc["steps"]
        for target in steps_doc["targets"]
    ]
    listed = [_command(target) for target in plain_doc["targets"]]
    assert sent == listed and len(set(listed)) == 7 * 3


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["long", "short"])
def test_each_shape_and_each_steps_job_validates(tmp_path: Path, shape: str) -> None:
    fleet, with_steps, plain = tmp_path / "fleet.csv", tmp_path / "s.yaml", tmp_path / "p.yaml"
    write_fleet_csv(fleet, 50, shape=shape)
    write_steps_jobs(with_steps, plain, 4, 2)
    expected = {fleet: "50 valid commands", with_steps: "8 valid commands", plain: "8 valid"}
    for path, found in expected.items():
        done = subprocess.run(
            [sys.executable, "-m", "dispatcher", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert f"valid; {found}" in done.stdout and "0 warnings" in done.stdout, done.stdout
