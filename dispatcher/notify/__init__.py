"""Notifications: what a run, a watch or a verify ended with, told to DingTalk, WeCom and Feishu
robots and JSON webhooks (the config's ``notify:``), short, in English or Chinese, with the
command to run next; sent with retries and a timeout, a failure only ever a warning.

May import: errors, times, config, model, ledger, report (and aiohttp, in sender.py only).
"""

from dispatcher.notify.events import EventKind, Notice
from dispatcher.notify.messages import Message, message
from dispatcher.notify.notices import ledger_notice
from dispatcher.notify.sender import Notifier, Ready, Sent

__all__ = [
    "EventKind",
    "Message",
    "Notice",
    "Notifier",
    "Ready",
    "Sent",
    "ledger_notice",
    "message",
]
