"""What the OneNET emulator remembers: stored commands, their deliveries, fault settings.

The rules follow OneNET's NB-IoT cached-command API (see docs/onenet-api.md). Where the
documentation is silent (errno for an unknown uuid, history page size), the choice is named here.
Kept free of aiohttp so the rules can be read and tested on their own.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Literal

__all__ = [
    "ERRNO_TEXT",
    "Delivery",
    "Faults",
    "Shape",
    "Store",
    "StoredCommand",
    "Throttle",
    "format_answer_time",
    "parse_request_time",
]

# An answer's envelope: {"errno", "error", "data"}, or the newer platform's {"code", "msg", "data"}
Shape = Literal["errno", "code"]

# errno values (docs/onenet-api.md, "errno")
AUTH_FAILED = 1
BAD_PARAM = 3
BUSY = 7
LOGIC_LIMIT = 5006
ERRNO_TEXT: Mapping[int, str] = {
    0: "succ",
    AUTH_FAILED: "auth failed",
    BAD_PARAM: "parameter required",
    BUSY: "service internal error",
    LOGIC_LIMIT: "system logic limit",
}

WAITING, CANCELLED, SENT, EXPIRED, SUCCESS, FAILED = 1, 2, 3, 4, 5, 6  # send_status values
PER_PAGE_DEFAULT, PER_PAGE_MAX = 10, 100  # not documented; OneNET's list calls use these
MAX_BOMB_BYTES = 1 << 32  # a gzip bomb inflating past 4 GB helps no test

_BEIJING_OFFSET = 8 * 3600  # OneNET timestamps are UTC+8, no zone written
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults to inject, and who is let in; replace at runtime via ``emulator.faults = ...``."""

    fail_rate: float = 0.0  # HTTP 500 with an HTML body, before anything else
    cut_before_rate: float = 0.0  # drop the connection, nothing stored
    cut_after_rate: float = 0.0  # store the command, then drop the connection unanswered
    throttle_rps: float | None = None  # admitted POSTs per sliding second; more are throttled
    throttle_mode: Literal["errno7", "http429"] = "errno7"
    throttle_retry_after: float = 1.0  # seconds, the Retry-After of an HTTP 429
    latency_ms: float = 0.0  # added to every API call
    latency_jitter_ms: float = 0.0  # plus uniform(0, jitter)
    seed: int | None = None  # random.Random(seed): the same requests meet the same faults
    api_key: str | None = None  # the expected api-key; None: any non-empty key
    foreign_imeis: frozenset[str] = frozenset()  # imeis outside the key's product: errno 1
    # fail_rate, cut_before_rate, hang_rate, truncate_rate and compress also hit the reads
    # (history, detail, cancel); html_status and clock_offset_s always do
    affect_reads: bool = False
    truncate_rate: float = 0.0  # store the command, then answer 200 with half its JSON body
    hang_rate: float = 0.0  # read the request, store nothing, never answer (until shutdown)
    html_status: int | None = None  # answer every API call with this status and an HTML page
    compress: bool = False  # gzip-encode every answer (Content-Encoding: gzip), asked or not
    bomb_bytes: int = 0  # pad the accepted answer with whitespace to this size, then gzip it
    clock_offset_s: float = 0.0  # the server's now is its clock plus this; answers' Date too

    def __post_init__(self) -> None:
        rates = ("fail_rate", "cut_before_rate", "cut_after_rate", "truncate_rate", "hang_rate")
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        status = self.html_status
        if status is not None and (type(status) is not int or not 300 <= status <= 599):
            raise ValueError("html_status must be an HTTP status from 300 to 599")
        if type(self.bomb_bytes) is not int or not 0 <= self.bomb_bytes <= MAX_BOMB_BYTES:
            raise ValueError(f"bomb_bytes must be an integer from 0 to {MAX_BOMB_BYTES}")
        if not math.isfinite(self.clock_offset_s):
            raise ValueError("clock_offset_s must be a finite number of seconds")
        if self.throttle_rps is not None and self.throttle_rps <= 0:
            raise ValueError("throttle_rps must be positive")
        if self.throttle_mode not in ("errno7", "http429"):
            raise ValueError("throttle_mode must be 'errno7' or 'http429'")
        if min(self.throttle_retry_after, self.latency_ms, self.latency_jitter_ms) < 0:
            raise ValueError("throttle_retry_after and latencies must not be negative")
        if not isinstance(self.foreign_imeis, frozenset):
            object.__setattr__(self, "foreign_imeis", frozenset(self.foreign_imeis))


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """One accepted command: every parameter as received (None when omitted), and server times."""

    uuid: str
    imei: str
    obj_id: int
    obj_inst_id: int | None  # None: a read of the whole object
    res_id: int | None  # None: a write (its resources are in args) or a read of an instance
    valid_time: str | None  # the text sent
    expired_time: str
    retry: int | None
    timeout: int | None
    trigger_msg: int | None
    args: str | None
    created_at: float  # unix seconds, server clock
    valid_at: float  # valid_time, or the server's now when omitted
    expired_at: float
    send_status: int = WAITING
    type: str = "EXECUTE"  # EXECUTE, WRITE or READ
    mode: int | None = None  # a write's mode: 1 replace, 2 partial update
    product: str | None = None  # the name of the product it was created in (None: no products)

    def history_item(self, delivery: Delivery | None = None) -> dict[str, object]:
        """The command as a history list item (OneNET's field names, answer time format)."""
        item: dict[str, object] = {
            "cmd_uuid": self.uuid,
            "type": self.type,
            "create_time": format_answer_time(self.created_at),
            "valid_time": format_answer_time(self.valid_at),
            "expired_time": format_answer_time(self.expired_at),
            "send_status": self.send_status,
            "imei": self.imei,
            "remain": 3 if self.retry is None else self.retry,
            "trigger_msg": 7 if self.trigger_msg is None else self.trigger_msg,
        }
        if delivery is not None:  # the times and the answer once a device got it (devices.py)
            item["send_time"] = format_answer_time(delivery.send_time)
            if delivery.confirm_time is not None:
                item["confirm_time"] = format_answer_time(delivery.confirm_time)
                item["confirm_status"] = delivery.confirm_status
        return item


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a device got a command: sent at ``send_time``, then answered (None until it did)."""

    send_time: float  # unix seconds, server clock
    confirm_time: float | None = None
    confirm_status: str | None = None  # SUCCESS, or an error name such as TIME_OUT
    cmd_result: str | None = None  # the device's answer text; None for an error


@dataclass(slots=True)
class Throttle:
    """A sliding window of admitted calls: at most ``rps`` in any second (below 1 per second:
    one per ``1 / rps`` seconds). A deque of admission times; throttled calls never enter it."""

    admitted: deque[float] = field(default_factory=deque)

    def full(self, rps: float, now: float) -> bool:
        """True if one more call at ``now`` would exceed ``rps``."""
        limit, window = (math.floor(rps), 1.0) if rps >= 1 else (1, 1.0 / rps)
        admitted = self.admitted
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        return len(admitted) >= limit

    def admit(self, now: float) -> None:
        """Count one call admitted at ``now``."""
        self.admitted.append(now)


@lru_cache(maxsize=4096)  # fleet jobs repeat the same few timestamps
def parse_request_time(text: str) -> float | None:
    """'YYYY-MM-DDTHH:MM:SS' (UTC+8, as requests carry it) -> unix seconds; None if malformed."""
    if len(text) != 19 or text[10] != "T" or text[4] != "-" or text[7] != "-":
        return None
    if text[13] != ":" or text[16] != ":" or not text.isascii():
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (naive - _EPOCH).total_seconds() - _BEIJING_OFFSET


def format_answer_time(unix: float) -> str:
    """Unix seconds -> 'YYYY-MM-DD HH:MM:SS' in UTC+8, as OneNET's answers write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(math.floor(unix) + _BEIJING_OFFSET))


@dataclass(slots=True)
class Store:
    """Accepted commands, indexed by uuid and by imei, and the counters the admin endpoint shows."""

    keep_records: bool = True  # False: count and check duplicates only (for very long benchmarks)
    commands: dict[str, StoredCommand] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)  # by uuid, once sent
    by_imei: dict[str, list[str]] = field(default_factory=dict)
    posts: int = 0
    accepted: int = 0
    throttled: int = 0
    reads: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # follow-up calls by kind (history, ...)
    rejected: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(
        default_factory=lambda: {"http500": 0, "cut_before": 0, "cut_after": 0, "latency": 0}
    )
    duplicates: int = 0
    duplicates_ignoring_times: int = 0
    # hashes of (imei, obj ids, args, expired_time) and of the same without the time: a 64-bit
    # hash keeps memory flat over a million commands; a false duplicate has odds near 1e-8
    _seen: set[int] = field(default_factory=set)
    _seen_loose: set[int] = field(default_factory=set)

    def count_fault(self, name: str) -> None:
        """Count an injected fault beyond the four always shown (listed once it happened)."""
        self.faults[name] = self.faults.get(name, 0) + 1

    def reject(self, errno: int) -> None:
        """Count a POST answered with a business error."""
        self.rejected[errno] = self.rejected.get(errno, 0) + 1

    def add(self, cmd: StoredCommand) -> None:
        """Remember an accepted command; O(1)."""
        self.accepted += 1
        loose = hash((cmd.imei, cmd.obj_id, cmd.obj_inst_id, cmd.res_id, cmd.args))
        strict = hash((loose, cmd.expired_time))
        if strict in self._seen:
            self.duplicates += 1
        else:
            self._seen.add(strict)
        if loose in self._seen_loose:
            self.duplicates_ignoring_times += 1
        else:
            self._seen_loose.add(loose)
        if self.keep_records:
            self.commands[cmd.uuid] = cmd
            uuids = self.by_imei.get(cmd.imei)
            if uuids is None:
                self.by_imei[cmd.imei] = [cmd.uuid]
            else:
                uuids.append(cmd.uuid)

    def for_imei(self, imei: str) -> Iterator[StoredCommand]:
        """The imei's commands, oldest first."""
        commands = self.commands
        for uuid in self.by_imei.get(imei, ()):
            yield commands[uuid]

    def find(self, imei: str, uuid: str) -> StoredCommand | None:
        """The command with this uuid, if it belongs to this imei."""
        cmd = self.commands.get(uuid)
        return cmd if cmd is not None and cmd.imei == imei else None

    def cancel(self, cmd: StoredCommand) -> bool:
        """Cancel a waiting command; False if it is no longer waiting."""
        if cmd.send_status != WAITING:
            return False
        self.commands[cmd.uuid] = replace(cmd, send_status=CANCELLED)
        return True

    def counters(self) -> dict[str, object]:
        """Every counter, JSON-ready except for the int keys of ``rejected``."""
        return {
            "posts": self.posts,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "throttled": self.throttled,
            "faults": dict(self.faults),
            "duplicates": self.duplicates,
            "duplicates_ignoring_times": self.duplicates_ignoring_times,
            "reads": self.reads,
            "calls": dict(self.calls),
            "stored": len(self.commands),
            "send_status": self.by_send_status(),
        }

    def by_send_status(self) -> dict[int, int]:
        """How many stored commands have each send_status (O(n): for the admin endpoint)."""
        counts: dict[int, int] = {}
        for cmd in self.commands.values():
            counts[cmd.send_status] = counts.get(cmd.send_status, 0) + 1
        return counts
