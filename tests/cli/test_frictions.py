"""The small frictions of every screen, each fixed and pinned by a test named for it: a status
of a job file, the demo's hint, the watch's rounds, progress off a terminal, the summary's
wording, the progress line at 80 columns, and where a dry run's commands would go."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support.cli import ROOT, dispatcher_process, invoke
from tests.support.push import write_job


def test_status_of_a_job_file_leaves_no_lock_file_beside_it(tmp_path: Path) -> None:
    job = write_job(tmp_path, ["869975031234568"])
    result = invoke("status", job, "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    # The job file names its ledger beside it (as verify reads it): none was written yet.
    assert f"{job}.ledger.db: no such ledger" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["push.yaml"]


def test_status_of_a_file_that_is_no_ledger_leaves_no_lock_file_beside_it(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("not a database, but notes\n", encoding="utf-8")
    result = invoke("status", notes, "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert f"{notes} is not a dispatcher ledger" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    assert notes.read_text(encoding="utf-8") == "not a database, but notes\n"


def test_the_demo_suggests_writing_the_html_page_to_a_file(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "small.yaml", tmp_path / "jobs")
    done = dispatcher_process("demo", "--job", "jobs/small.yaml", cwd=tmp_path, key=None)
    assert done.code == 0, done.stderr
    assert "dispatcher report .demo/small.ledger.db --format html -o report.html" in done.stderr
    # Every report command the demo suggests writes a file: none would print a page or a CSV.
    suggested = re.findall(r"dispatcher report \S+ .*", done.stderr)
    assert suggested and all(" -o " in line for line in suggested)
    assert "<html" not in done.stdout.lower()
    # It ends as run does: with the next command for its ledger (the fleet leaves some asleep).
    assert (
        done.stderr.rstrip()
        .splitlines()[-1]
        .startswith("next: dispatcher retry-failed .demo/small.ledger.db")
    )
