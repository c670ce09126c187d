"""A notice in words: a title and at most eight short lines, in English or Chinese.

The figures keep the ledger's names for statuses and states, said in the target's language; a
reason a run stopped is said as the run said it (English: it quotes OneNET and the job file).

May import: times, notify.events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from dispatcher.notify.events import EventKind, Notice
from dispatcher.times import BEIJING, format_onenet

__all__ = ["MAX_LINES", "Message", "message"]

MAX_LINES: Final = 8


@dataclass(frozen=True, slots=True)
class Message:
    """What a target shows: a title and a few lines (the next command among them)."""

    title: str
    lines: tuple[str, ...]

    def text(self) -> str:
        """Title and lines as plain text, one a line."""
        return "\n".join((self.title, *self.lines))


@dataclass(frozen=True, slots=True)
class _Words:
    titles: Mapping[str, str]
    passed: str
    failed: str
    job: str
    commands: str
    counts: Mapping[EventKind, str]
    names: Mapping[str, str]
    attention: Mapping[str, str]
    needs: str
    reason: str
    next: str
    nothing: str
    ledger: str
    at: str
    join: str
    colon: str


_EN: Final = _Words(
    titles={
        "run_finished": "run finished",
        "run_aborted": "run aborted",
        "canary_verdict": "canary",
        "watch_finished": "delivery watch finished",
        "verify_finished": "verify finished",
    },
    passed="passed",
    failed="failed",
    job="Job",
    commands="Commands",
    counts={
        EventKind.WATCH_FINISHED: "Delivery",
        EventKind.VERIFY_FINISHED: "Devices",
    },
    names={"in_flight": "in flight", "in_doubt": "in doubt", "on_target": "on target",
           "not_yet": "not yet", "never_seen": "never seen"},
    attention={
        "not_through": "{n} did not get through",
        "in_doubt": "{n} in doubt",
        "not_sent": "{n} not sent yet",
        "delivery_lost": "{n} deliveries expired or failed",
        "delivery_open": "{n} not delivered yet",
        "not_on_target": "{n} devices not on target",
        "never_seen": "{n} devices never seen",
    },
    needs="Needs attention",
    reason="Reason",
    next="Next",
    nothing="nothing left to do",
    ledger="Ledger",
    at="At",
    join=", ",
    colon=": ",
)  # fmt: skip

_ZH: Final = _Words(
    titles={
        "run_finished": "运行完成",
        "run_aborted": "运行中止",
        "canary_verdict": "金丝雀",
        "watch_finished": "投递跟踪结束",
        "verify_finished": "版本核验完成",
    },
    passed="通过",
    failed="未通过",
    job="作业",
    commands="命令",
    counts={EventKind.WATCH_FINISHED: "投递", EventKind.VERIFY_FINISHED: "设备"},
    names={
        "pending": "未发送", "in_flight": "发送中", "accepted": "已接受", "rejected": "被拒绝",
        "failed": "失败", "in_doubt": "存疑", "expired": "已过期", "retried": "已转重试",
        "skipped": "已跳过", "unread": "未读取", "waiting": "等待中", "sent": "已下发",
        "delivered": "已送达", "cancelled": "已取消", "on_target": "已达标",
        "not_yet": "未达标", "never_seen": "未见上报",
    },
    attention={
        "not_through": "{n} 条未发出", "in_doubt": "{n} 条存疑", "not_sent": "{n} 条未发送",
        "delivery_lost": "{n} 条投递过期或失败", "delivery_open": "{n} 条尚未送达",
        "not_on_target": "{n} 台设备未达标", "never_seen": "{n} 台设备未见上报",
    },
    needs="需要关注",
    reason="原因",
    next="下一步",
    nothing="无需操作",
    ledger="台账",
    at="时间",
    join="\uff0c",  # the full-width comma and colon of Chinese text
    colon="\uff1a",
)  # fmt: skip


def message(notice: Notice, language: str) -> Message:
    """``notice`` in ``language`` (en or zh): a title and at most ``MAX_LINES`` lines."""
    w = _ZH if language == "zh" else _EN
    c = w.colon
    title = "dispatcher" + c + w.titles[notice.event.value]
    if notice.passed is not None:
        title += (" " if language == "en" else "") + (w.passed if notice.passed else w.failed)
    lines = [f"{w.job}{c}{notice.job}"]
    if notice.counts:
        label = w.counts.get(notice.event, w.commands)
        shown = w.join.join(f"{n:,} {w.names.get(name, name)}" for name, n in notice.counts)
        lines.append(f"{label}{c}{shown}")
    if notice.reason:
        lines.append(f"{w.reason}{c}{notice.reason}")
    if notice.attention:
        said = w.join.join(w.attention[kind].format(n=f"{n:,}") for kind, n in notice.attention)
        lines.append(f"{w.needs}{c}{said}")
    lines.append(f"{w.next}{c}{notice.next_command or w.nothing}")
    lines.append(f"{w.ledger}{c}{notice.ledger}")
    at = format_onenet(datetime.fromtimestamp(notice.at, BEIJING)).replace("T", " ")
    lines.append(f"{w.at}{c}{at} (UTC+8)")
    return Message(title, tuple(lines[:MAX_LINES]))
