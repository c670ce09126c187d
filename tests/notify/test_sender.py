"""Sending notices to the test server's robots: each service gets its own format, signed as its
documentation says; a target gets only the events it asked for; a refusal is not retried, a dead
or hanging target is tried 1 + retries times with backoff, and every failure is one warning that
names the target by its place in the config, never by its URL or token."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatcher.config import NOTIFY_EVENTS, NotifyTarget
from dispatcher.notify import EventKind, Notice, Notifier
from tests.support.webhooks import (
    DING_SECRET,
    ENV,
    FEISHU_HOOK,
    SECRETS,
    TOKEN,
    WECOM_KEY,
    closed_port,
    serve_webhooks,
)

NOTICE = Notice(
    EventKind.RUN_FINISHED,
    job="jobs/meters.yaml",
    ledger="jobs/meters.yaml.ledger.db",
    counts=(("accepted", 3), ("rejected", 1)),
    attention=(("not_through", 1),),
    next_command="dispatcher retry-failed jobs/meters.yaml.ledger.db -o jobs/meters-retry.yaml",
    at=1_765_000_000.0,
)


def targets(base: str, language: str = "en") -> list[NotifyTarget]:
    return [
        NotifyTarget(
            "dingtalk", f"{base}/dingtalk/robot/send?access_token=${{DING_TOKEN}}",
            "${DING_SECRET}", language=language, key="notify[0]",
        ),
        NotifyTarget(
            "wecom", f"{base}/wecom/cgi-bin/webhook/send?key=${{WECOM_KEY}}",
            language=language, key="notify[1]",
        ),
        NotifyTarget(
            "feishu", f"{base}/feishu/open-apis/bot/v2/hook/${{FEISHU_HOOK}}",
            "${FEISHU_SECRET}", language=language, key="notify[2]",
        ),
        NotifyTarget("webhook", f"{base}/hook", language=language, key="notify[3]"),
    ]  # fmt: skip


class Waits:
    """The sleep tenacity is given: records the waits, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def notifier(ts: list[NotifyTarget], sleep: Waits | None = None) -> Notifier:
    ready = Notifier.of(ts, secret=lambda _: None, environ=ENV).ready
    return Notifier(ready, sleep=sleep or Waits())


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_each_service_gets_its_format_signed_as_documented(language: str) -> None:
    warned: list[str] = []
    async with serve_webhooks() as (hooks, base):
        sent = await notifier(targets(base, language)).deliver([NOTICE], warn=warned.append)
    assert warned == []
    assert [(s.kind, s.attempts, s.error) for s in sent] == [
        ("dingtalk", 1, None), ("wecom", 1, None), ("feishu", 1, None), ("webhook", 1, None),
    ]  # fmt: skip
    [ding] = hooks.of("dingtalk")
    assert ding.refused is None  # the server checked the signature as DingTalk documents it
    assert ding.query["access_token"] == TOKEN
    assert ding.body["msgtype"] == "markdown"
    title = "dispatcher: run finished" if language == "en" else "dispatcher\uff1a运行完成"
    assert ding.body["markdown"]["title"] == title
    assert NOTICE.next_command is not None
    assert NOTICE.next_command in ding.body["markdown"]["text"]
    [wecom] = hooks.of("wecom")
    assert wecom.refused is None and wecom.body["msgtype"] == "markdown"
    assert wecom.body["markdown"]["content"].startswith(f"**{title}**\n")
    [feishu] = hooks.of("feishu")
    assert feishu.refused is None  # its signature, as Feishu documents it
    assert feishu.body["msg_type"] == "text"
    assert feishu.body["content"]["text"].splitlines()[0] == title
    [hook] = hooks.of("webhook")
    assert hook.body["event"] == "run_finished"
    assert hook.body["counts"] == {"accepted": 3, "rejected": 1}
    assert hook.body["attention"] == {"not_through": 1}
    assert hook.body["next_command"] == NOTICE.next_command
    assert hook.body["language"] == language
    assert hook.body["title"] == title


async def test_a_target_gets_only_the_events_it_asked_for() -> None:
    async with serve_webhooks() as (hooks, base):
        hook = NotifyTarget("webhook", f"{base}/hook", events=("run_aborted",))
        n = notifier([hook])
        assert not n.wanted(EventKind.RUN_FINISHED) and n.wanted(EventKind.RUN_ABORTED)
        aborted = replace(NOTICE, event=EventKind.RUN_ABORTED, reason="the canary failed")
        sent = await n.deliver([NOTICE, aborted], warn=lambda _: None)
    assert [s.event for s in sent] == [EventKind.RUN_ABORTED]
    assert [r.body["reason"] for r in hooks.of("webhook")] == ["the canary failed"]


async def test_a_wrong_signature_is_refused_once_and_warned_without_secrets() -> None:
    warned: list[str] = []
    async with serve_webhooks() as (hooks, base):
        [ding] = targets(base)[:1]
        env = {**ENV, "DING_SECRET": "SECnot-the-right-one-0000"}
        ready = Notifier.of([ding], secret=lambda _: None, environ=env).ready
        waits = Waits()
        sent = await Notifier(ready, sleep=waits).deliver([NOTICE], warn=warned.append)
    assert [r.refused for r in hooks.of("dingtalk")] == ["sign not match"]
    assert sent[0].attempts == 1 and waits.waits == []  # a refusal is not tried again
    assert warned == [
        "notification run_finished to notify[0] (dingtalk) not sent after 1 attempt:"
        " code 310000: sign not match"
    ]


async def test_a_closed_port_is_tried_one_and_retries_times_with_backoff() -> None:
    warned: list[str] = []
    dead = NotifyTarget("webhook", f"http://127.0.0.1:{closed_port()}/hook", retries=2)
    waits = Waits()
    sent = await notifier([dead], waits).deliver([NOTICE], warn=warned.append)
    assert sent[0].attempts == 3
    assert waits.waits == [0.25, 0.5]
    [line] = warned
    assert line.startswith(
        "notification run_finished to notify[0] (webhook) not sent after 3 attempts: cannot connect"
    )


async def test_a_webhook_that_never_answers_times_out_each_attempt() -> None:
    warned: list[str] = []
    async with serve_webhooks() as (hooks, base):
        hang = NotifyTarget("webhook", f"{base}/hang", timeout_s=0.2, retries=1)
        sent = await notifier([hang]).deliver([NOTICE], warn=warned.append)
    assert hooks.hung == 2
    assert sent[0].attempts == 2
    assert warned == [
        "notification run_finished to notify[0] (webhook) not sent after 2 attempts:"
        " no answer within 0.2 s"
    ]


async def test_every_url_token_and_secret_is_handed_over_to_be_masked() -> None:
    handed: list[str] = []
    Notifier.of(targets("http://127.0.0.1:9"), secret=handed.append, environ=ENV)
    for secret in (TOKEN, DING_SECRET, WECOM_KEY, FEISHU_HOOK):
        assert any(secret == h for h in handed), secret
    assert set(SECRETS) <= {part for h in handed for part in (h, *h.split("/"))}
    assert any(h.startswith("http://127.0.0.1:9/dingtalk/") for h in handed)  # whole URLs too


def test_the_event_kinds_are_the_configs_events() -> None:
    assert tuple(EventKind) == NOTIFY_EVENTS
