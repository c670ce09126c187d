"""The PostgreSQL ledger's follow-up records (follow_ups.py's and verdicts.py's, for PostgreSQL):
what OneNET says became of accepted commands, the cancels asked for, the rows read for them, and
canary verdicts with the commands they cover.

SQL functions over a connection (``job``: the job's id), and the ledger's methods of delivery and
cancels over them (``PostgresFollowUps``, a base of the PostgreSQL ledger). A write that meets a
row in a state the lifecycle does not allow refuses the whole transaction (postgres_moves.refuse).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Final

import orjson

from dispatcher.ledger.columns import row_of
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.moves import states_sql
from dispatcher.ledger.postgres_batch import KEYED, by_key, json_of, update
from dispatcher.ledger.postgres_moves import refuse
from dispatcher.ledger.postgres_session import Conn, Session
from dispatcher.ledger.postgres_table import SELECT_ROWS, insert_new
from dispatcher.ledger.records import TO_SEND, Delivery, Row, Status
from dispatcher.ledger.schema import TO_CHECK

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "PAGE",
    "PostgresFollowUps",
    "covered_before",
    "pass_canary",
    "uncovered",
]

PAGE: Final = 1000  # rows to check read per page
_CHUNK: Final = 500  # commands a canary registers per statement
# Of product %(product)s (NULL: of any; '': of the default one).
_OF_PRODUCT: Final = "(%(product)s::text IS NULL OR COALESCE(product, '') = %(product)s)"
_TO_CHECK: Final = f"job_id = %(job)s AND {TO_CHECK} AND {_OF_PRODUCT}"
_RECORD_DELIVERY: Final = by_key(
    "key text, send_status int8, confirm_status text, send_time text, confirm_time text,"
    " cmd_result text, checked_at float8",
    "send_status = v.send_status, confirm_status = v.confirm_status, send_time = v.send_time,"
    " confirm_time = v.confirm_time, cmd_result = COALESCE(v.cmd_result, c.cmd_result),"
    " status_checked_at = v.checked_at",
    " AND c.status = 'accepted'",
)
# A cancel's result: cancelled (send_status 2, no error) or refused (the error; the status as read).
_RECORD_CANCEL: Final = by_key(
    "key text, at float8, error text, send_status int8",
    "cancelled_at = v.at, cancel_error = v.error,"
    " send_status = COALESCE(v.send_status, c.send_status)",
    " AND c.status = 'accepted'",
)


def _record_delivery(conn: Conn, job: int, items: Sequence[Delivery]) -> None:
    """What OneNET's history says of accepted commands (inside the caller's transaction)."""

    def row(d: Delivery) -> tuple[object, ...]:
        return (d.key, d.send_status, d.confirm_status, d.send_time, d.confirm_time,
                d.cmd_result, d.checked_at)  # fmt: skip

    if items and update(conn, _RECORD_DELIVERY, items, _key, row, job) != len(items):
        refuse(conn, job, [d.key for d in items], Event.STATUS_READ, Status.ACCEPTED)


def _record_cancel(
    conn: Conn, job: int, items: Sequence[tuple[str, str | None, int | None]], at: float
) -> None:
    """Cancels asked for at ``at`` (inside the caller's transaction); a cancelled command is
    send_status 2."""

    def row(item: tuple[str, str | None, int | None]) -> tuple[object, ...]:
        key, error, status = item
        return (key, at, error, 2 if error is None else status)

    if items and update(conn, _RECORD_CANCEL, items, _first, row, job) != len(items):
        refuse(conn, job, [key for key, _, _ in items], Event.CANCEL, Status.ACCEPTED)


def _page_to_check(
    conn: Conn, job: int, after: tuple[str, int], product: str | None, size: int = PAGE
) -> list[Row]:
    """One page of the rows to check: those after (imei, seq) ``after``, by imei then seq."""
    sql = (
        f"{SELECT_ROWS} WHERE {_TO_CHECK} AND (imei, seq) > (%(imei)s, %(seq)s)"
        " ORDER BY imei, seq LIMIT %(size)s"
    )
    params = {"job": job, "product": product, "imei": after[0], "seq": after[1], "size": size}
    return [row_of(t) for t in conn.execute(sql, params)]


def _count_to_check(conn: Conn, job: int, product: str | None) -> tuple[int, int, str | None]:
    """How many rows to check, on how many devices, and the latest ``sent_expired_time``."""
    sql = (
        "SELECT count(*), count(DISTINCT imei), max(sent_expired_time) FROM dispatcher.commands"
        f" WHERE {_TO_CHECK}"
    )
    found = conn.execute(sql, {"job": job, "product": product}).fetchone()
    assert found is not None  # an aggregate always gives a row
    commands, devices, latest = found
    return int(commands), int(devices), latest


def _products_to_check(conn: Conn, job: int) -> list[str]:
    """The products of the rows to check ("": the default one), by name."""
    sql = (
        "SELECT DISTINCT COALESCE(product, '') FROM dispatcher.commands"
        f" WHERE job_id = %s AND {TO_CHECK}"
    )
    return sorted(name for (name,) in conn.execute(sql, (job,)))


def covered_before(conn: Conn, job: int, product: str | None) -> bool:
    """Whether a canary of the lane (``product``; None: the run's only lane) ever passed."""
    sql = (
        "SELECT 1 FROM dispatcher.commands WHERE job_id = %(job)s AND canary IS NOT NULL"
        f" AND {_OF_PRODUCT} LIMIT 1"
    )
    return conn.execute(sql, {"job": job, "product": product}).fetchone() is not None


def uncovered(conn: Conn, job: int, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that are the job's, not sent yet, and covered by no canary (keys the
    job does not hold are not covered either)."""
    sql = (
        f"SELECT key FROM dispatcher.commands WHERE {KEYED} AND NOT"
        f" (retired IS NULL AND canary IS NULL AND status IN {states_sql(TO_SEND)})"
    )
    covered = {k for (k,) in conn.execute(sql, (job, json_of(keys)))}
    return {k for k in keys if k not in covered}


def pass_canary(
    conn: Conn,
    job: int,
    product: str | None,
    judged: Sequence[str],
    commands: Iterable[Command],
    at: float,
) -> int:
    """Record a passed canary of the lane (inside the caller's transaction): the verdict, every
    command of the lane registered, and those not covered yet covered by it. Its id."""
    found = conn.execute(
        "INSERT INTO dispatcher.verdicts (job_id, id, product, passed_at, judged, covered)"
        " SELECT %s, COALESCE(max(id), 0) + 1, %s, %s, %s, 0 FROM dispatcher.verdicts"
        " WHERE job_id = %s RETURNING id",
        (job, product or "", at, orjson.dumps(list(judged)).decode(), job),
    ).fetchone()
    assert found is not None  # an INSERT … RETURNING of one row
    verdict = int(found[0])
    stream = iter(commands)
    while chunk := list(islice(stream, _CHUNK)):
        insert_new(conn, job, chunk)
    covered = conn.execute(
        "UPDATE dispatcher.commands SET canary = %(verdict)s WHERE job_id = %(job)s"
        f" AND canary IS NULL AND retired IS NULL AND {_OF_PRODUCT}",
        {"verdict": verdict, "job": job, "product": product},
    ).rowcount
    conn.execute(
        "UPDATE dispatcher.verdicts SET covered = %s WHERE job_id = %s AND id = %s",
        (covered, job, verdict),
    )
    return verdict


def _key(item: Delivery) -> str:
    return item.key


def _first(item: tuple[str, str | None, int | None]) -> str:
    return item[0]


class PostgresFollowUps:
    """The PostgreSQL ledger's follow-up methods (a base of ``PostgresLedger``, whose session
    and job they use)."""

    _s: Session
    _job: int
    _clock: Callable[[], float]

    def record_delivery(self, items: Sequence[Delivery]) -> None:
        """What OneNET's history says of accepted commands, in one transaction."""
        with self._s.write("record deliveries") as conn:
            _record_delivery(conn, self._job, items)

    def rows_to_check(self, product: str | None = None) -> Generator[Row, None, None]:
        """Accepted rows whose delivery may still change, by imei then job order, a page at a
        time (nothing stays open between pages); ``product`` as LedgerStore's."""
        after: tuple[str, int] = ("", -1)
        while True:
            with self._s.read("read the commands to check") as conn:
                page = _page_to_check(conn, self._job, after, product)
            yield from page
            if len(page) < PAGE:
                return
            after = (page[-1].command.imei, page[-1].seq)

    def count_to_check(self, product: str | None = None) -> tuple[int, int, str | None]:
        """How many rows :meth:`rows_to_check` gives, on how many devices, and the latest
        ``sent_expired_time`` among them (None when there are none)."""
        with self._s.read("count the commands to check") as conn:
            return _count_to_check(conn, self._job, product)

    def products_to_check(self) -> list[str]:
        """The products of the rows to check ("": the default one), by name."""
        with self._s.read("read the products") as conn:
            return _products_to_check(conn, self._job)

    def record_cancel(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Cancels asked for, as (key, OneNET's refusal or None when cancelled, send_status as
        then known or None), in one transaction; a cancelled command is send_status 2."""
        with self._s.write("record cancels") as conn:
            _record_cancel(conn, self._job, items, self._clock())
