"""The closed loop's counts in the benchmark suite at small sizes: the device lists of a fleet,
a job of steps gated on delivery, and verify by each source, each counted by the emulator.

Counts, not times: the figures are exact for a fleet and a wake schedule, so they are checked
against what they must be (a page per 100 devices found, every device updated and on target,
nothing sent by verify); no timing is asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: import it from the repository
    sys.path.insert(0, str(REPO))

from benchmarks.loop import ListCount, LoopResults  # noqa: E402  # needs the path above
from benchmarks.procs import Measured  # noqa: E402
from benchmarks.report_loop import loop_rows  # noqa: E402

FLEET, DEVICES = 300, 8
SMALL = ["--loop-only", "--loop-fleet", str(FLEET), "--loop-devices", str(DEVICES)]
SMALL += ["--loop-wake-s", "0.5", "--loop-poll-s", "0.2"]
_RUN = Measured(("dispatcher",), 0, 1.0, 0.5, 0.1, 50.0, "", "")


@pytest.fixture(scope="module")
def loop_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("loop")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *SMALL, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return (out / "results.md").read_text(encoding="utf-8"), doc["loop"]


@pytest.mark.slow
def test_device_lists_read_a_page_per_100_devices_found(
    loop_out: tuple[str, dict[str, Any]],
) -> None:
    _, loop = loop_out
    whole, tag, query = loop["lists"]
    assert (whole["found"], whole["pages"], whole["pages_per_1k_devices"]) == (FLEET, 3, 10.0)
    assert 0 < tag["found"] < FLEET
    assert tag["found"] == tag["expected"] == query["found"]  # the query finds what devices does
    for listed in (tag, query):
        assert listed["pages"] == math.ceil(listed["found"] / 100)


@pytest.mark.slow
def test_gated_steps_update_every_device_in_order_and_count_their_status_reads(
    loop_out: tuple[str, dict[str, Any]],
) -> None:
    _, loop = loop_out
    steps = loop["steps"]
    assert steps["accepted"] == DEVICES * 3
    assert (steps["updated"], steps["out_of_order"]) == (DEVICES, 0)
    # each device's gated steps were each seen delivered: at least a history page each
    assert steps["history"] >= DEVICES * steps["gated"]
    reads = steps["history"] + steps["detail"]
    assert steps["status_reads_per_device_per_step"] == pytest.approx(reads / (DEVICES * 3))
    assert steps["status_reads_per_device_per_gated_step"] == pytest.approx(reads / (DEVICES * 2))


@pytest.mark.slow
def test_verify_by_each_source_puts_every_device_on_target_without_sending(
    loop_out: tuple[str, dict[str, Any]],
) -> None:
    _, loop = loop_out
    found = {(v["source"], v["targets"]): v for v in loop["verify"]}
    assert set(found) == {
        ("command", "targets_query"),
        ("datapoints", "targets_query"),
        ("datapoints", "targets_csv"),
    }
    for v in found.values():
        assert v["verdicts"] == {"on_target": DEVICES}
        assert (v["sent"], v["exit_code"]) == (0, 0)
        assert v["calls_per_device"] == pytest.approx(sum(v["calls"].values()) / DEVICES)
    command = found["command", "targets_query"]["calls"]
    assert "datapoints" not in command
    assert command["detail"] == DEVICES  # each read's cmd_result, once
    frozen, by_imei = found["datapoints", "targets_query"], found["datapoints", "targets_csv"]
    assert frozen["calls"]["datapoints"] == by_imei["calls"]["datapoints"] == 1  # 500 a call
    assert "getbyimei" not in frozen["calls"]  # the frozen fleet's platform ids are taken
    assert by_imei["calls"]["getbyimei"] == DEVICES  # one look-up per device listed by IMEI
    assert loop["ok"] is True


@pytest.mark.slow
def test_results_md_has_a_row_per_count_with_its_ratio(
    loop_out: tuple[str, dict[str, Any]],
) -> None:
    text, _ = loop_out
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| the closed loop | size | OneNET calls (counted by the emulator) | ratio |" in rows
    assert "**10.0** per 1,000 devices found |" in text
    assert sum("per device per step (" in row for row in rows) == 1
    assert sum("`dispatcher verify --watch`, `source: " in row for row in rows) == 3


def test_pages_per_1000_devices_is_ten_for_full_pages_and_more_for_a_part_page() -> None:
    full = ListCount("all", 2_000, 2_000, 2_000, 20, _RUN)
    part = ListCount("tag", 2_000, 412, 412, 5, _RUN)
    assert (full.per_1k, full.least, full.ok) == (10.0, 20, True)
    assert (part.least, round(part.per_1k, 1)) == (5, 12.1)
    assert not ListCount("short", 2_000, 412, 400, 4, _RUN).ok  # a matching device not found


def test_no_loop_rows_when_the_loop_did_not_run() -> None:
    assert loop_rows(None) == []
    assert loop_rows(LoopResults([])) == []
    rows = loop_rows(LoopResults([ListCount("all", 300, 300, 300, 3, _RUN)]))
    assert rows[2].startswith("| all | 300 of 300 devices | 3 device-list pages")
