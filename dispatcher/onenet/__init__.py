"""The OneNET API: the client's calls over a ``Transport`` (aiohttp's, or a ``MockTransport``
for tests of logic), what each answer means (``classify``, the errno table, once), and the
newer platform's signed token (``TokenSource``).

May import: errors, times, clock, model. Never job, ledger, run, report, cli or emulator. Only
aiohttp_transport.py imports aiohttp; ``AiohttpTransport`` is loaded from it on first use, so that
importing the client for a test of logic does not load aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispatcher.onenet.auth import TokenSource, sign, token_header
from dispatcher.onenet.client import (
    MAX_BODY,
    MAX_RETRY_AFTER,
    CancelResult,
    HistoryItem,
    Misrouted,
    OfflineRequest,
    OneNetClient,
    Outcome,
    Platform,
    Verdict,
    classify,
    parse_retry_after,
)
from dispatcher.onenet.transport import (
    AnswerLost,
    ConnectTimeout,
    MockTransport,
    NotSent,
    ReadTimeout,
    Request,
    Response,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    from dispatcher.onenet.aiohttp_transport import AiohttpTransport

__all__ = [
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "AiohttpTransport",
    "AnswerLost",
    "CancelResult",
    "ConnectTimeout",
    "HistoryItem",
    "Misrouted",
    "MockTransport",
    "NotSent",
    "OfflineRequest",
    "OneNetClient",
    "Outcome",
    "Platform",
    "ReadTimeout",
    "Request",
    "Response",
    "TokenSource",
    "Transport",
    "TransportError",
    "Verdict",
    "classify",
    "parse_retry_after",
    "sign",
    "token_header",
]


def __getattr__(name: str) -> Any:
    """``AiohttpTransport``, imported on first use (it loads aiohttp)."""
    if name == "AiohttpTransport":
        from dispatcher.onenet.aiohttp_transport import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
