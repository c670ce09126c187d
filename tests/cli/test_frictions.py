"""The small frictions of every screen, each fixed and pinned by a test named for it: a status
of a job file, the demo's hint, the watch's rounds, progress off a terminal, the summary's
wording, the progress line at 80 columns, and where a dry run's commands would go."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console

from dispatcher.cli import console
from dispatcher.cli.delivery_view import RoundProgress, round_line
from dispatcher.cli.progress_view import ProgressLine, ticking
from dispatcher.emulator.server import Emulator, serve
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import Status
from dispatcher.report.render import DELIVERY_LINES, DELIVERY_MEANING, STATUS_LINES
from dispatcher.run.state import RunResult, RunStats
from dispatcher.run.status import StatusRound
from tests.support.cli import ROOT, dispatcher_process, invoke, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fleet, write_config
from tests.support.push import FLEET, write_job


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


def test_the_run_summary_words_send_failures_apart_from_delivery_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stats = RunStats(total=10, accepted=6, rejected=1, failed=2, expired=1, requests=12)
    counts = {Status.ACCEPTED: 6, Status.REJECTED: 1, Status.FAILED: 2, Status.EXPIRED: 1}
    console.summary_line(RunResult(1, counts, stats, total=10))
    job, this_run = capsys.readouterr().out.splitlines()
    assert job == (
        "job: 10 commands: 6 accepted, 1 rejected, 2 failed to send, 1 not sent (window passed)"
    )
    assert "1 rejected, 1 not sent (window passed), 2 failed to send," in this_run
    # A delivery that failed or expired, as status and the report say it a few lines below.
    sent_words = {STATUS_LINES[Status.FAILED], STATUS_LINES[Status.EXPIRED]}
    delivery_words = {DELIVERY_LINES[DeliveryState.FAILED], DELIVERY_LINES[DeliveryState.EXPIRED]}
    assert delivery_words == {"delivery failed", "delivery expired"}
    assert not sent_words & delivery_words
    assert "never woke" in DELIVERY_MEANING[DeliveryState.EXPIRED]


def test_a_watch_round_line_says_the_delivery_counts_as_well_as_what_moved() -> None:
    states = dict.fromkeys(DeliveryState, 0) | {
        DeliveryState.DELIVERED: 2025,
        DeliveryState.WAITING: 816,
        DeliveryState.FAILED: 66,
    }
    now = DeliveryBreakdown(states, dict(states), 0, 0, [])
    done = StatusRound(commands=3000, devices=3000, read=3000, changed=391)
    line = round_line(2, done, now)
    assert line.startswith("round 2: read 3,000 of 3,000 commands on 3,000 devices, 391 moved")
    assert line.endswith("; now 816 waiting, 2,025 delivered, 66 delivery failed")


async def test_status_watch_rounds_say_delivered_and_waiting(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(5))
    write_config(tmp_path)
    async with serve(Emulator(clock=ShiftedClock(), fleet=FLEET)) as url:
        assert (await online(url, tmp_path, "run", "push.yaml")).code == 0
        done = await online(url, tmp_path, "status", "push.yaml.ledger.db")
    assert done.code == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("round 1:")]
    assert "5 moved" in line and line.endswith("; now 5 waiting")


def test_a_dry_run_shows_where_the_commands_would_go(tmp_path: Path) -> None:
    job = write_job(tmp_path, ["869975031234568"])
    production = invoke("run", job, "--dry-run", key=None)
    assert production.exit_code == 0, production.stderr
    assert "  send to   https://api.heclouds.com (production OneNET)" in production.stderr
    local = invoke("run", job, "--dry-run", "--base-url", "http://127.0.0.1:8080", key=None)
    assert local.exit_code == 0, local.stderr
    assert "  send to   http://127.0.0.1:8080\n" in local.stderr


def _shown(line: ProgressLine, width: int) -> str:
    out = Console(width=width, record=True, color_system=None)
    out.print(line)
    return out.export_text()


@pytest.mark.parametrize("failed", [0, 7])
def test_at_80_columns_the_progress_line_keeps_done_total_rate_and_eta(failed: int) -> None:
    stats = RunStats(total=3000, started_at=100.0)
    stats.ledger = {Status.ACCEPTED: 1200 - failed, Status.FAILED: failed}
    line = ProgressLine(stats, clock=lambda: 160.0)  # a minute in: 20/s, 1,800 left
    narrow = _shown(line, 80)
    assert narrow.count("\n") == 1 and len(narrow.rstrip("\n")) <= 80
    for kept in ("1,200/3,000", "20/s", "ETA 1m30s", "accepted"):
        assert kept in narrow
    # A failure that happened is kept; counters at zero are the first to go.
    assert ("failed 7" in narrow) == bool(failed)
    assert "in doubt" not in narrow
    wide = _shown(line, 200)
    assert "in doubt 0" in wide and "40.0%" in wide and "━" in wide


def test_a_run_off_a_terminal_says_its_progress_in_plain_lines_now_and_then(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run from cron writes to a log: not a live line (escape codes), nor silence for minutes.
    monkeypatch.setattr("dispatcher.cli.progress_view.PLAIN_EVERY_S", 0.05)
    stats = RunStats(total=3000, started_at=0.0)
    stats.ledger = {Status.ACCEPTED: 1200}
    line = ProgressLine(stats, clock=lambda: 60.0)
    assert line.plain() == (
        "progress: 1,200/3,000  40.0%  20/s  accepted 1,200 · rejected 0 · failed 0"
        " · in doubt 0  ETA 1m30s"
    )
    err = ""
    with console.live_progress(stats):  # stderr is captured: no terminal
        for _ in range(500):  # a line every 0.05 s: the first comes long before 10 s
            err += capsys.readouterr().err
            if err.count("progress: ") >= 2:
                break
            threading.Event().wait(0.02)
        stats.ledger = {Status.ACCEPTED: 3000}
    assert err.count("progress: 1,200/3,000") >= 2, err
    assert "\x1b" not in err  # plain text, no live line's escape codes
    assert ProgressLine(stats).plain() is None  # all done: the summary says the rest


def test_plain_status_off_a_terminal_says_its_progress_every_few_seconds() -> None:
    progress = RoundProgress(clock=iter([0.0, 0.0, 30.0, 60.0]).__next__)
    progress.start(1, StatusRound(commands=1200, devices=600, read=300, changed=12))
    progress.round.done_devices = 200  # type: ignore[union-attr]
    said: list[str] = []
    two = threading.Event()
    ticks = iter([False, False, True])  # two pauses pass, then the block is over

    def say(text: str) -> None:
        said.append(text)
        if len(said) == 2:
            two.set()

    with ticking(progress.plain, say, wait=lambda _: next(ticks)):
        assert two.wait(timeout=30)
    assert said == [
        "round 1: 200/600 devices, 300 read, 12 moved, 0 unreadable; ETA 1m00s",
        "round 1: 200/600 devices, 300 read, 12 moved, 0 unreadable; ETA 2m00s",
    ]
    progress.round.done_devices = 600  # type: ignore[union-attr]
    assert progress.plain() is None  # between rounds: nothing moves, nothing said
