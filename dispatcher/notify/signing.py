"""The robots' signatures, as their documentation gives them.

DingTalk (custom robot, "加签"): ``timestamp`` in milliseconds, ``string_to_sign =
f"{timestamp}\\n{secret}"``, HMAC-SHA256 keyed by the secret over it, base64, then URL-encoded,
added to the webhook URL as ``&timestamp=...&sign=...``
(https://open.dingtalk.com/document/robots/customize-robot-security-settings).

Feishu (custom bot, "签名校验"): ``timestamp`` in seconds, ``string_to_sign =
f"{timestamp}\\n{secret}"`` used as the HMAC-SHA256 *key* over an empty message, base64, sent as
``"timestamp"`` and ``"sign"`` in the JSON body
(https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot).

May import: nothing of dispatcher.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

__all__ = ["dingtalk_sign", "dingtalk_url", "feishu_sign"]


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` for ``timestamp_ms`` (base64, not URL-encoded yet)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The webhook URL with DingTalk's ``timestamp`` and ``sign`` added (the sign URL-encoded)."""
    sign = quote_plus(dingtalk_sign(secret, timestamp_ms))
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign`` for ``timestamp_s``: the string to sign is the HMAC key, the message
    empty (as Feishu's own examples do it)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")
