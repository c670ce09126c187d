"""A notice in words (a title and at most eight lines, English or Chinese, naming the job, the
counts, what needs attention and the next command), and a notice read from a ledger with the
next command the report's one rule set gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.ledger.sqlite import Ledger
from dispatcher.notify import EventKind, Notice, ledger_notice, message
from dispatcher.notify.messages import MAX_LINES
from dispatcher.report.next_steps import After
from tests.support.e2e import fleet
from tests.support.retry import make_ledger, write_job

FULL = Notice(
    EventKind.CANARY_VERDICT,
    job="jobs/meters.yaml",
    ledger="jobs/meters.yaml.ledger.db",
    counts=(("accepted", 2), ("rejected", 2), ("skipped", 16)),
    attention=(("not_through", 18), ("delivery_open", 2)),
    next_command="dispatcher cancel jobs/meters.yaml.ledger.db",
    reason="2 of the canary's 4 commands refused or failed (50%, more than 10%)",
    passed=False,
    at=1_765_000_000.0,
)


@pytest.mark.parametrize("event", list(EventKind))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_every_message_is_a_title_and_at_most_eight_lines(event: EventKind, language: str) -> None:
    said = message(replace(FULL, event=event), language)
    assert said.title.startswith("dispatcher")
    assert 1 <= len(said.lines) <= MAX_LINES
    assert any("jobs/meters.yaml" in line for line in said.lines)
    assert any("dispatcher cancel jobs/meters.yaml.ledger.db" in line for line in said.lines)


def test_the_english_message_names_job_counts_attention_and_next_command() -> None:
    said = message(FULL, "en")
    assert said.title == "dispatcher: canary failed"
    assert said.lines == (
        "Job: jobs/meters.yaml",
        "Commands: 2 accepted, 2 rejected, 16 skipped",
        "Reason: 2 of the canary's 4 commands refused or failed (50%, more than 10%)",
        "Needs attention: 18 did not get through, 2 not delivered yet",
        "Next: dispatcher cancel jobs/meters.yaml.ledger.db",
        "Ledger: jobs/meters.yaml.ledger.db",
        "At: 2025-12-06 13:46:40 (UTC+8)",
    )


def test_the_chinese_message_says_the_same_in_chinese() -> None:
    said = message(FULL, "zh")
    assert said.title == "dispatcher\uff1a金丝雀未通过"
    assert said.lines[1] == "命令\uff1a2 已接受\uff0c2 被拒绝\uff0c16 已跳过"
    assert said.lines[3] == "需要关注\uff1a18 条未发出\uff0c2 条尚未送达"
    assert said.lines[4] == "下一步\uff1adispatcher cancel jobs/meters.yaml.ledger.db"


def test_a_job_with_nothing_left_says_so() -> None:
    done = Notice(EventKind.RUN_FINISHED, "j.yaml", "j.yaml.ledger.db", (("accepted", 5),))
    assert "Next: nothing left to do" in message(done, "en").lines
    assert "下一步\uff1a无需操作" in message(done, "zh").lines


def test_a_run_notice_from_the_ledger_advises_what_the_report_advises(tmp_path: Path) -> None:
    job = write_job(tmp_path / "fleet.yaml", fleet(4))
    path = make_ledger(job, ["delivered", "rejected", "waiting", "pending"])
    with Ledger.open(path, read_only=True) as ledger:
        notice = ledger_notice(EventKind.RUN_FINISHED, ledger, path, After(job=str(job)))
        watched = ledger_notice(EventKind.WATCH_FINISHED, ledger, path)
    assert notice.counts == (("pending", 1), ("accepted", 2), ("rejected", 1))
    assert notice.attention == (("not_through", 1), ("not_sent", 1), ("delivery_open", 1))
    assert notice.next_command == f"dispatcher run {job}"  # first: send what is not sent yet
    assert notice.job == str(job)
    assert watched.counts == (("waiting", 1), ("delivered", 1))
    assert watched.next_command == f"dispatcher status {path} --watch"
