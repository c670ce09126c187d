"""The problem devices of a ledger: one line per device that needs a look, gathered in one pass.

A device (an IMEI in a product) needs a look when one of its commands is a problem (a kind of
:data:`PROBLEM_KINDS`). In a job of steps a device has several commands, one per step, and one
line: the step it stopped at (its first step that is a problem, which holds back the steps after
it), the furthest step that got through, and why it stopped, in words (errno 1 told apart by the
product's accepted commands: render.refusal_wording). In a job without steps the line is the
device's most urgent problem.

Rows come in job order, where a device's commands follow one another (its steps are made from one
target, one after the other), so a device's line is made when the next device begins: nothing but
the device being read is held, and a ledger of a million commands is gathered in flat memory. The
lines shown are capped (most urgent first); every line also goes to ``sink`` (the CSV of them all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import Row, Status
from dispatcher.report.export import excel_cell
from dispatcher.report.render import DELIVERY_MEANING, printable, refusal_wording

__all__ = [
    "CSV_FIELDS",
    "PROBLEM_KINDS",
    "DeviceLine",
    "Gatherer",
    "Problems",
    "csv_record",
    "problem_kind",
]

# What needs a look, most urgent first: the table lists them in this order.
PROBLEM_KINDS: Final = (
    "rejected", "failed", "in doubt", "in flight", "delivery failed", "delivery expired",
    "cancelled", "expired unsent", "skipped", "not sent yet",
)  # fmt: skip
_URGENCY: Final = {kind: n for n, kind in enumerate(PROBLEM_KINDS)}
_BY_STATUS: Final = {
    Status.REJECTED: "rejected",
    Status.FAILED: "failed",
    Status.IN_DOUBT: "in doubt",
    Status.IN_FLIGHT: "in flight",
    Status.EXPIRED: "expired unsent",
    Status.PENDING: "not sent yet",
    Status.SKIPPED: "skipped",
}
_BY_DELIVERY: Final = {
    DeliveryState.FAILED: "delivery failed",
    DeliveryState.EXPIRED: "delivery expired",
    DeliveryState.CANCELLED: "cancelled",
}
# Said when the ledger holds no text of its own for the problem.
_PLAIN_WHY: Final = {
    "expired unsent": "its window closed before it was sent",
    "not sent yet": "not sent yet",
    "in flight": "sent, no answer recorded",
}
# The columns of the CSV of every problem device, in order.
CSV_FIELDS: Final = (
    "imei", "product", "step", "steps", "reached", "problem", "status", "errno", "why",
    "send_status", "confirm_status", "commands", "source",
)  # fmt: skip


def problem_kind(row: Row) -> str | None:
    """The kind of problem a row is (a kind of :data:`PROBLEM_KINDS`), or None when it is fine."""
    kind = _BY_STATUS.get(row.status)
    if kind is None:
        delivery = row.delivery
        kind = None if delivery is None else _BY_DELIVERY.get(delivery)
    return kind


@dataclass(frozen=True, slots=True)
class DeviceLine:
    """One line of the problem table: a device, the step it stopped at and why."""

    kind: str  # one of PROBLEM_KINDS: the problem of the command it stopped at
    imei: str
    product: str  # "": the default one
    source: str  # file:line of the command it stopped at
    step: int  # the step it stopped at (0: a job without steps)
    steps: int  # its last step (0: a job without steps)
    reached: int  # the furthest step that got through (0: none)
    commands: int  # its commands that need a look
    status: str
    errno: int | None  # OneNET's refusal; None: none
    why: str  # in words: the errno's meaning, the error, the delivery's state
    send_status: int | None
    confirm_status: str | None


@dataclass(frozen=True, slots=True)
class Problems:
    """The devices that need a look: devices by kind, their commands, the first lines."""

    counts: dict[str, int]  # devices by kind, every kind of PROBLEM_KINDS in that order
    commands: int  # commands that need a look (a device of steps may have several)
    rows: tuple[DeviceLine, ...]  # at most the limit, most urgent first
    steps: bool  # a job of steps: the step columns mean something
    products: bool  # a job that names its products: the product column means something

    @property
    def total(self) -> int:
        """Devices that need a look."""
        return sum(self.counts.values())

    @property
    def capped(self) -> bool:
        """Whether more devices need a look than the lines shown."""
        return self.total > len(self.rows)


def why_of(kind: str, row: Row, accepted: int) -> str:
    """Why a command is a problem of ``kind``, in words; ``accepted``: its product's accepted."""
    if kind == "rejected":
        return refusal_wording(row.errno, row.error, accepted)
    if kind == "delivery failed":
        answer = printable(row.cmd_result or "")
        return DELIVERY_MEANING[DeliveryState.FAILED] + (f": {answer}" if answer else "")
    if kind == "delivery expired":
        return DELIVERY_MEANING[DeliveryState.EXPIRED]
    if kind == "cancelled":
        return DELIVERY_MEANING[DeliveryState.CANCELLED]
    if row.status is Status.ACCEPTED:  # a refused cancel of an accepted command
        return printable(row.cancel_error or row.cmd_result or "")
    return printable(row.error) or _PLAIN_WHY.get(kind, kind)


class Gatherer:
    """The problem devices of rows given one by one in job order (module docstring)."""

    __slots__ = ("_accepted", "_commands", "_counts", "_device", "_kept", "_limit", "_products",
                 "_rows", "_sink", "_steps")  # fmt: skip

    def __init__(
        self,
        limit: int,
        accepted: Mapping[str, int],
        sink: Callable[[DeviceLine], None] | None = None,
    ) -> None:
        self._limit = limit
        self._accepted = accepted  # accepted commands by product ("": the default one)
        self._sink = sink
        self._counts = dict.fromkeys(PROBLEM_KINDS, 0)
        self._kept: dict[str, list[DeviceLine]] = {kind: [] for kind in PROBLEM_KINDS}
        self._commands = 0
        self._steps = self._products = False
        self._device: tuple[str, str] | None = None
        self._rows: list[tuple[str | None, Row]] = []  # the device being read, with its kinds

    def add(self, row: Row) -> None:
        """Take the next row (job order)."""
        c = row.command
        device = (c.imei, c.product)
        if device != self._device:
            self._flush()
            self._device = device
        self._steps = self._steps or c.step > 0
        self._products = self._products or bool(c.product)
        self._rows.append((problem_kind(row), row))

    def finish(self) -> Problems:
        """The problem devices of every row taken."""
        self._flush()
        shown = [line for kind in PROBLEM_KINDS for line in self._kept[kind]][: self._limit]
        return Problems(self._counts, self._commands, tuple(shown), self._steps, self._products)

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        problems = [(kind, row) for kind, row in rows if kind is not None]
        if not problems:
            return
        # The step it stopped at: its first step that is a problem (the later ones wait on it);
        # without steps (all 0) its most urgent problem.
        kind, row = min(problems, key=lambda p: (p[1].command.step, _URGENCY[p[0]]))
        reached = max(
            (r.command.step for k, r in rows if k is None and r.status is Status.ACCEPTED),
            default=0,
        )
        c = row.command
        line = DeviceLine(
            kind, c.imei, c.product, c.where, c.step,
            max(r.command.step for _, r in rows), reached, len(problems),
            row.status.value.replace("_", " "), row.errno or None,
            why_of(kind, row, self._accepted.get(c.product, 0)), row.send_status,
            row.confirm_status,
        )  # fmt: skip
        self._counts[kind] += 1
        self._commands += len(problems)
        if len(self._kept[kind]) < self._limit:  # enough of each kind to fill the table
            self._kept[kind].append(line)
        if self._sink is not None:
            self._sink(line)


def csv_record(line: DeviceLine) -> list[object]:
    """One device as a row of the CSV (:data:`CSV_FIELDS`), its cells as ``report --excel``
    writes them: an IMEI as text Excel keeps whole, a formula's text behind a ``'``."""
    values: list[object] = [
        line.imei, line.product, line.step or None, line.steps or None,
        line.reached if line.steps else None, line.kind, line.status, line.errno, line.why,
        line.send_status, line.confirm_status, line.commands, line.source,
    ]  # fmt: skip
    return [excel_cell(v) for v in values]
