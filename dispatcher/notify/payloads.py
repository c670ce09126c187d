"""What each kind of target is sent, and how its answer says it arrived.

- DingTalk robot: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``; the answer
  ``{"errcode": 0, "errmsg": "ok"}`` (any other errcode: refused).
- WeCom robot: ``{"msgtype": "markdown", "markdown": {"content"}}``; ``{"errcode": 0}``
  (https://developer.work.weixin.qq.com/document/path/91770).
- Feishu robot: ``{"msg_type": "text", "content": {"text"}}``, with ``timestamp`` and ``sign``
  when it signs; ``{"code": 0}`` (older deployments answer ``{"StatusCode": 0}``).
- A generic webhook: the notice as a JSON object (event, job, counts, attention, next command,
  and the message in the target's language); any 2xx answer.

May import: notify.
"""

from __future__ import annotations

from typing import Any

from dispatcher.notify.events import Notice
from dispatcher.notify.messages import Message

__all__ = ["body", "refusal"]


def body(kind: str, notice: Notice, message: Message, language: str) -> dict[str, Any]:
    """The JSON body a ``kind`` target is sent (without a signature)."""
    if kind == "dingtalk":
        lines = "\n".join(f"- {line}" for line in message.lines)
        text = f"#### {message.title}\n\n{lines}"
        return {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}
    if kind == "wecom":
        content = "\n".join((f"**{message.title}**", *message.lines))
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if kind == "feishu":
        return {"msg_type": "text", "content": {"text": message.text()}}
    return {
        "event": notice.event.value,
        "job": notice.job,
        "ledger": notice.ledger,
        "counts": dict(notice.counts),
        "attention": dict(notice.attention),
        "next_command": notice.next_command,
        "reason": notice.reason,
        "passed": notice.passed,
        "at": notice.at,
        "language": language,
        "title": message.title,
        "text": message.text(),
    }


def refusal(kind: str, status: int, answer: Any) -> str | None:
    """Why the answer says the message did not arrive (None: it did)."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if kind == "webhook":
        return None
    if not isinstance(answer, dict):
        return "an answer that is not a JSON object"
    if kind == "feishu":
        code = answer.get("code", answer.get("StatusCode"))
        text = answer.get("msg", answer.get("StatusMessage", ""))
    else:
        code, text = answer.get("errcode"), answer.get("errmsg", "")
    if code == 0:
        return None
    return f"code {code}: {text}" if text else f"code {code}"
