"""Where each device of a job of steps stands, read from the ledger in one pass (``survey``):
the later steps ready to go (their step before accepted, or delivered where the step waits for
delivery), those held back (with why), and the accepted steps whose delivery is still followed.

A step ``k`` waits on step ``k - 1`` as that step's ``wait`` says (job/waits.py): accepted (its
uuid is enough), or delivered (``send_status`` 5 as ``dispatcher status`` reads it). A step
before that failed on the device (6, 7, 8), expired (4), was cancelled (2), was not accepted, or
was not delivered within its wait's timeout (counted from its acceptance, as the ledger has it:
a resumed run counts the same) holds back every later step of the device. Without a timeout a
delivery is waited for until OneNET says the command is final, or, should it never say so, for
two polls past the command's window.

Called on the ledger's thread (it reads the ledger); pure otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from dispatcher.job.waits import Wait, say_duration
from dispatcher.ledger.records import OPEN_DELIVERY, TO_SEND, DeliveryState, Row, Status
from dispatcher.ledger.store import LedgerStore
from dispatcher.model.command import Command
from dispatcher.run.recovery import Item
from dispatcher.run.status import window_end

__all__ = ["Pages", "Survey", "step_label", "survey"]

Pages = Callable[[int], Iterable[list[Item]]]
"""A step's commands (of the run, or of its canary), a page at a time, each with its status now
(read on the ledger thread)."""

_GONE: Final = {
    DeliveryState.EXPIRED: "expired",
    DeliveryState.CANCELLED: "was cancelled",
}


def step_label(command: Command) -> str:
    """A step as messages name it: ``step 1 (write 5/0/1)``."""
    ids = [command.obj_id, command.obj_inst_id, command.res_id]
    if command.res_id is None and len(command.values) == 1:
        ids[2] = command.values[0].res_id
    path = "/".join(str(i) for i in ids if i is not None)
    return f"step {command.step} ({command.op} {path})"


@dataclass(slots=True)
class Survey:
    """One look at the ledger: what to send, hold back and follow now."""

    ready: list[Item] = field(default_factory=list)  # later steps to send now
    befores: list[Row] = field(default_factory=list)  # the rows of their steps before
    held: list[tuple[Item, str]] = field(default_factory=list)  # to hold back, with why
    follow: dict[str, Row] = field(default_factory=dict)  # accepted, delivery awaited: read them
    waiting: int = 0  # devices whose next step waits for a delivery
    last_open: int = 0  # last steps followed to delivery (wait: delivered on the last step)
    lapsed: int = 0  # last steps not delivered in time: no longer followed


def survey(
    ledger: LedgerStore,
    pages: Pages,
    waits: tuple[Wait, ...],
    held: dict[str, str],
    *,
    started: float,
    now: float,
    server_now: float,
    grace_s: float,
    first_going: bool = False,
    read_grace_s: float = 0.0,
) -> Survey:
    """Where the commands of ``pages`` stand. ``held``: the keys this run held back (with why),
    never looked at again; ``started``: when this run began (a step it sent that failed is not
    sent again by it); ``now``: our clock; ``server_now``: OneNET's (for windows);
    ``first_going``: step 1 is still being sent, so a step 1 not accepted yet is waited for;
    ``read_grace_s``: a wait that ran out is judged on a state read after it ran out, or, when
    none could be read, this long after (reads back off: stepping.py ``Due``)."""
    found = Survey()
    through: set[str] = set()  # later steps not done yet: the steps after them wait
    pending: list[tuple[Item, Row | None]] = []  # candidates, with their step before
    last_rows: list[Row] = []  # accepted last steps, when the last step waits for delivery
    last = len(waits)
    for step in range(1, last + 1):
        for page in pages(step):
            pending += _candidates(ledger, page, step, held, started)
            if step == last and waits[-1].until == "delivered":
                accepted = [c.key for c, s in page if s is Status.ACCEPTED]
                if accepted:
                    last_rows += (r for r in ledger.rows_of(accepted) if r.delivery is not None)
    judge = _Judge(waits, now, server_now, grace_s, read_grace_s)
    # The befores read, then each candidate judged; kept apart so the ledger is read per page.
    for item, before in pending:
        command, _ = item
        if before is None:
            found.held.append((item, "held back: the step before is not in the ledger"))
            continue
        if before.key in held:
            found.held.append((item, held[before.key]))
            held_now = held[before.key]
        elif before.key in through or (
            first_going and before.command.step == 1 and before.status is not Status.ACCEPTED
        ):
            through.add(command.key)  # its step before is still on its way
            continue
        else:
            verdict = judge(before)
            if verdict is None:
                found.ready.append(item)
                found.befores.append(before)
                through.add(command.key)
                continue
            if verdict == "":
                found.follow[before.key] = before
                found.waiting += 1
                through.add(command.key)
                continue
            found.held.append((item, verdict))
            held_now = verdict
        held[command.key] = held_now
    for row in last_rows:
        verdict = judge(row)
        if verdict == "":
            found.follow[row.key] = row
            found.last_open += 1
        elif verdict is not None and row.delivery in OPEN_DELIVERY:
            found.lapsed += 1
    return found


def _candidates(
    ledger: LedgerStore, page: list[Item], step: int, held: dict[str, str], started: float
) -> list[tuple[Item, Row | None]]:
    """The commands of one page of a later step that may go out, each with its step before."""
    if step == 1:
        # Step 1 is sent as a whole before (phases.py, gating.py); one it did not get through
        # holds the steps after it back once they are looked at.
        return []
    candidates = [(c, s) for c, s in page if s in TO_SEND and c.key not in held]
    failed = [c.key for c, s in candidates if s is Status.FAILED]
    if failed:  # sent by this run already, and failed: not sent again by it
        tried = {r.key for r in ledger.rows_of(failed) if _since(r) >= started}
        candidates = [(c, s) for c, s in candidates if c.key not in tried]
    if not candidates:
        return []
    rows = {r.key: r for r in ledger.rows_of([c.after for c, _ in candidates if c.after])}
    return [((c, s), rows.get(c.after)) for c, s in candidates]


def _since(row: Row) -> float:
    """When a row's latest outcome came (our clock); 0 when it never had one."""
    return row.last_attempt_at or row.first_attempt_at or 0.0


class _Judge:
    """Whether a step before lets its next step go (None), keeps it waiting (""), or holds it
    back (why)."""

    def __init__(
        self,
        waits: tuple[Wait, ...],
        now: float,
        server_now: float,
        grace: float,
        read_grace: float = 0.0,
    ) -> None:
        self.waits, self.now, self.server_now, self.grace = waits, now, server_now, grace
        self.read_grace = read_grace

    def _past(self, before: Row, deadline: float) -> bool:
        """Whether ``deadline`` (our clock) has passed for ``before``, its state read since (a
        delivery just before the deadline not yet read is not a miss), or long enough ago that
        no read is coming."""
        if self.now < deadline:
            return False
        checked = before.status_checked_at
        return (checked is not None and checked >= deadline) or (
            self.now >= deadline + self.read_grace
        )

    def __call__(self, before: Row) -> str | None:
        c = before.command
        label = step_label(c)
        if before.status is not Status.ACCEPTED:
            return f"held back: {label} is {before.status.value}, not accepted"
        wait = self.waits[c.step - 1] if 0 < c.step <= len(self.waits) else Wait()
        if wait.until == "accepted":
            return None
        state = before.delivery
        if state is DeliveryState.DELIVERED:
            return None
        if state is DeliveryState.EXPIRED:
            at = before.sent_expired_time or "its expired_time"
            return f"held back: {label} expired at {at.replace('T', ' ')} (UTC+8), not delivered"
        if state in _GONE:
            return f"held back: {label} {_GONE[state]}, not delivered"
        if state is DeliveryState.FAILED:
            answer = f", {before.confirm_status}" if before.confirm_status else ""
            return (
                f"held back: {label} failed on the device (send_status {before.send_status}"
                f"{answer}), not delivered"
            )
        if wait.timeout_s is not None:
            if self._past(before, _since(before) + wait.timeout_s):
                return f"held back: {label} not delivered within {say_duration(wait.timeout_s)}"
        elif self._past(
            before, window_end(before.sent_expired_time) + self.grace - self.server_now + self.now
        ):
            ends = (before.sent_expired_time or "").replace("T", " ")
            return f"held back: {label} not delivered by the end of its window ({ends} UTC+8)"
        return ""


def batched(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    while page := list(itertools.islice(items, size)):
        yield page
