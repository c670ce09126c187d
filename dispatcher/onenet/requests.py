"""The typed records of OneNET calls: what a request carries (every value final), and what a
call that is not a create came to: the cached execute, write and read (docs/onenet-api.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.model.writes import WriteValue
from dispatcher.onenet.answers import Outcome

__all__ = ["CancelResult", "ExecuteRequest", "ReadRequest", "WriteRequest", "WriteValue"]


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
class WriteRequest:
    """One cached write (``POST /nbiot/offline``), every value final."""

    imei: str
    obj_id: int
    obj_inst_id: int
    mode: int  # 1 replace, 2 partial update
    values: tuple[WriteValue, ...]
    expired_time: str
    valid_time: str | None
    retry: int
    timeout: int
    trigger_msg: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One cached read (``GET /nbiot/offline``), every value final; the value comes back later,
    in the command's detail (``cmd_result``)."""

    imei: str
    obj_id: int
    obj_inst_id: int | None
    res_id: int | None
    expired_time: str
    valid_time: str | None
    retry: int
    timeout: int
    trigger_msg: int
    bin2hex: bool = False


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
