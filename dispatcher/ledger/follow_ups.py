"""The ledger's follow-up records: what OneNET says became of accepted commands (``status``),
the cancels asked for (``cancel``), and the hand-over of commands to a retry job
(``retry-failed``). A part of :class:`~dispatcher.ledger.store.Ledger`, kept apart to be read in
one sitting; it uses the ledger's connection and transactions.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import Final

from dispatcher.job.model import Command
from dispatcher.ledger import delivery, moves, verdicts
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.records import Delivery, Row, Status
from dispatcher.ledger.schema import (
    COUNT_TO_CHECK,
    PRODUCTS_TO_CHECK,
    RECORD_CANCEL,
    RECORD_DELIVERY,
    ROWS_TO_CHECK,
    SELECT_ROWS,
    row_of,
    small_cache,
)

__all__ = ["FollowUps"]

_PAGE: Final = 1000  # rows to check read per page


class FollowUps:
    """The follow-up records of a ledger (a mixin of ``Ledger``, which provides the plumbing)."""

    path: Path
    _clock: Callable[[], float]

    def _read(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Ledger's

    def _write(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Ledger's

    def _update(self, what: str, *steps: tuple[str, Sequence[tuple[object, ...]]]) -> None:
        raise NotImplementedError  # the Ledger's

    def canary_covered_before(self, product: str | None) -> bool:
        """Whether a canary of the lane (``product``; None: the only lane) ever passed."""
        with self._read("read the canary verdicts") as conn:
            return verdicts.covered_before(conn, product)

    def uncovered(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` not sent yet and covered by no passed canary (verdicts.py)."""
        with self._read("read the canary verdicts") as conn:
            return verdicts.uncovered(conn, keys)

    def pass_canary(
        self, product: str | None, judged: Sequence[str], commands: Iterable[Command]
    ) -> int:
        """Record a passed canary of the lane, covering every command of it (``commands``,
        registered if new) not covered yet, in one transaction; the verdict's id."""
        with self._write("record the canary's verdict") as conn:
            return verdicts.pass_canary(conn, product, judged, commands, self._clock())

    def rows_of(self, keys: Sequence[str]) -> list[Row]:
        """The rows of ``keys`` (those the ledger holds), in job order."""
        found: list[Row] = []
        with self._read("read commands") as conn:
            for i in range(0, len(keys), 500):
                part = list(keys[i : i + 500])
                marks = ", ".join("?" * len(part))
                found.extend(
                    map(row_of, conn.execute(f"{SELECT_ROWS} WHERE key IN ({marks})", part))
                )
        return sorted(found, key=lambda r: r.seq)

    def skip(self, keys: Sequence[str], why: str) -> list[Status]:
        """The ABORT event for commands not sent yet (pending, skipped: now ``skipped`` with the
        rule as their error; a failed one keeps its failure); each one's status before."""
        if not keys:
            return []
        with self._write("record skipped commands") as conn:
            return moves.apply_event(conn, keys, Event.ABORT, error=why)

    def record_delivery(self, items: Sequence[Delivery]) -> None:
        """What OneNET's history says of accepted commands, in one transaction."""
        params = [(d.send_status, d.confirm_status, d.send_time, d.confirm_time, d.cmd_result,
                   d.checked_at, d.key) for d in items]  # fmt: skip
        with self._write("record deliveries") as conn:
            if params and conn.executemany(RECORD_DELIVERY, params).rowcount != len(params):
                moves.refuse(conn, [d.key for d in items], Event.STATUS_READ, Status.ACCEPTED)

    def rows_to_check(self, product: str | None = None) -> Generator[Row, None, None]:
        """Active accepted rows with a uuid whose delivery may still change (never read, 1, 3),
        device by device (by imei, then job order), read a page at a time: no cursor stays open
        while their states are written, and memory stays flat however many there are.
        ``product``: only that product's ("": the default one's; None: all)."""
        after: tuple[str, int] = ("", -1)
        while True:
            with self._read("read the commands to check") as conn:
                query = conn.execute(ROWS_TO_CHECK, (*after, _PAGE, product))
                page = [row_of(t) for t in query]
            yield from page
            if len(page) < _PAGE:
                return
            after = (page[-1].imei, page[-1].seq)

    def count_to_check(self, product: str | None = None) -> tuple[int, int, str | None]:
        """How many rows :meth:`rows_to_check` gives, on how many devices, and the latest
        ``sent_expired_time`` among them (None when there are none)."""
        with self._read("count the commands to check") as conn, small_cache(conn):
            commands, devices, latest = conn.execute(COUNT_TO_CHECK, (product,)).fetchone()
        return int(commands), int(devices), latest

    def products_to_check(self) -> list[str]:
        """The products of the rows to check ("": the default one), by name."""
        with self._read("read the products") as conn, small_cache(conn):
            return sorted(name for (name,) in conn.execute(PRODUCTS_TO_CHECK))

    def record_cancel(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Cancels asked for, as (key, OneNET's refusal or None when cancelled, send_status
        as then known or None), in one transaction; a cancelled command is send_status 2."""
        at = self._clock()
        params = [(at, error, 2 if error is None else status, key) for key, error, status in items]
        with self._write("record cancels") as conn:
            if params and conn.executemany(RECORD_CANCEL, params).rowcount != len(params):
                moves.refuse(conn, [key for key, _, _ in items], Event.CANCEL, Status.ACCEPTED)

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event: ``keys`` went into the retry job at ``job_path``, in one
        transaction. A command never sent becomes ``retried``, so that this job never sends it
        too; none is handed to a second retry job (the same file again is the same hand-over).
        Every key must be in the ledger; otherwise nothing is recorded."""
        if not keys:
            return
        with self._write("record the retry job") as conn:
            moves.hand_over(conn, keys, job_path)

    def delivery_breakdown(self) -> DeliveryBreakdown:
        """The job's accepted commands and devices by delivery state (delivery.py)."""
        with self._read("count deliveries") as conn:
            return delivery.breakdown(conn)
