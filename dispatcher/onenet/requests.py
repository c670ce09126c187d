"""The typed records of OneNET calls: what a request carries (every value final), and what a
call that is not a create came to. The execute call is here today; write, read and history
requests will join it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.onenet.answers import Outcome

__all__ = ["CancelResult", "ExecuteRequest"]


@dataclass(frozen=True, slots=True)
class ExecuteRequest:
    """One POST, every value final (times already resolved and formatted)."""

    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    expired_time: str
    valid_time: str | None
    args: str | None
    retry: int
    timeout: int
    trigger_msg: int


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel call came to: the command cancelled, or the answer that refused it."""

    uuid: str
    cancelled: bool
    http_status: int
    server_date: float | None = None  # unix seconds, from the answer's Date header
    # Not cancelled: the answer judged as an execute answer (its errno and text; its verdict,
    # e.g. REJECTED when the command was already sent, TRANSIENT when trying again can help).
    refusal: Outcome | None = None
