"""The typed records of OneNET calls: a cached command as it goes out (the model's Command and its
window resolved), and what a call that is not a create came to (docs/onenet-api.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.model.command import Command
from dispatcher.model.writes import WriteValue
from dispatcher.onenet.answers import Outcome

__all__ = ["CancelResult", "OfflineRequest", "WriteValue"]


@dataclass(frozen=True, slots=True)
class OfflineRequest:
    """One cached command as it goes out (execute, write or read, by ``command.op``): the command
    as the job gave it, and its window resolved for this send in OneNET's format."""

    command: Command
    expired_time: str
    valid_time: str | None = None
    bin2hex: bool = False  # a read's: binary values given as hex


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
