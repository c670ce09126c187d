"""The OneNET API: the client's calls over one aiohttp session, and what each answer means
(``classify``, the errno table, once); the newer platform's signed token (``TokenSource``).

May import: errors, times. Never job, ledger, run, report, cli or emulator.
"""

from dispatcher.onenet.auth import TokenSource, sign, token_header
from dispatcher.onenet.client import (
    MAX_BODY,
    MAX_RETRY_AFTER,
    CancelResult,
    ExecuteRequest,
    HistoryItem,
    Misrouted,
    OneNetClient,
    Outcome,
    Platform,
    Verdict,
    classify,
    parse_retry_after,
)

__all__ = [
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "CancelResult",
    "ExecuteRequest",
    "HistoryItem",
    "Misrouted",
    "OneNetClient",
    "Outcome",
    "Platform",
    "TokenSource",
    "Verdict",
    "classify",
    "parse_retry_after",
    "sign",
    "token_header",
]
