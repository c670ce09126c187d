"""What a follow-up call's answer (history, detail) means: its ``data`` when OneNET answered
errno 0, else ``OneNetUnavailable`` saying whether asking again can help and whether to slow
down, or ``Misrouted`` when what answered is not OneNET (a wrong base path, a proxy's page).

May import: errors, onenet.answers, onenet.transport.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet.answers import (
    Verdict,
    answer_errno,
    answer_text,
    classify,
    misrouted_error,
    parse_retry_after,
)
from dispatcher.onenet.transport import MAX_BODY, Response

__all__ = ["Misrouted", "follow_up_data"]


class Misrouted(OneNetUnavailable):
    """A follow-up call was answered by something that is not OneNET (a wrong base path, a
    proxy's page): nothing was done there."""

    def __init__(self, message: str, *, misrouted: bool = True) -> None:
        super().__init__(message)
        self.misrouted = misrouted


def follow_up_data(answer: Response, what: str, clean: Callable[[str], str]) -> object:
    """The ``data`` of a successful answer to ``what``; OneNetUnavailable (Misrouted)
    otherwise, its text passed through ``clean`` where it quotes the answer."""
    status, raw, headers = answer.status, answer.body, answer.headers
    foreign = not 200 <= status < 300 and status < 500 and status != 429
    wait = headers.get("Retry-After")
    # What a throttling answer asks of the lane, whatever its body.
    throttled = status == 429 or wait is not None
    retry_after = parse_retry_after(wait) if wait is not None else None
    if raw is None:
        if foreign:
            detail = f"larger than {MAX_BODY} bytes"
            raise Misrouted(f"{what}: {misrouted_error(status, headers, detail)}")
        raise OneNetUnavailable(
            f"{what}: HTTP {status}, answer larger than {MAX_BODY} bytes",
            throttled=throttled,
            retry_after=retry_after,
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if foreign:
            raise Misrouted(f"{what}: {misrouted_error(status, headers)}") from None
        raise OneNetUnavailable(
            f"{what}: HTTP {status}, answer is not JSON",
            throttled=throttled,
            retry_after=retry_after,
        ) from None
    errno = answer_errno(doc, status) if type(doc) is dict else None
    if type(errno) is not int:
        if foreign:
            detail = "JSON without an integer errno"
            raise Misrouted(f"{what}: {misrouted_error(status, headers, detail)}")
        raise OneNetUnavailable(
            f"{what}: HTTP {status}, answer without an integer errno",
            throttled=throttled,
            retry_after=retry_after,
        )
    if errno != 0:
        text = clean(answer_text(doc))
        judged = classify(status, raw, headers)
        raise OneNetUnavailable(
            f"{what}: HTTP {status}, errno {errno} {text}".rstrip(),
            errno=errno,
            # A business errno (auth failed, a bad parameter) stays what it is: asking again
            # cannot help; a backlog or an internal error may pass.
            retryable=judged.verdict in (Verdict.TRANSIENT, Verdict.RETRY_ONCE),
            throttled=judged.throttled,
            retry_after=judged.retry_after,
        )
    return doc.get("data")
