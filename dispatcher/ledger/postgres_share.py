"""The board where runs of one product meet to share its rate (run/share.py), as two tables of the
shared PostgreSQL ledger: ``rate_members`` (each live run's lane: what it wants, may have sent and
had admitted, and when it last beat) and ``rate_products`` (the limit throttles found).

A member is live while it beats (within ``stale_s``) *and* its database session lives: a killed
run's session ends with its process, so its share returns at the others' next beat; a lost host's
beats stop, so it returns ``stale_s`` later. Times are the server's (``now()``): the hosts' clocks
never meet. The board has a connection of its own (autocommit), apart from the ledger's, so that a
beat never waits behind a group commit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import psycopg

from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.board import BoardView, Member
from dispatcher.ledger.postgres_schema import migrate
from dispatcher.ledger.postgres_session import pg_error

__all__ = ["PostgresShareBoard"]

_PRODUCT: Final = (
    "INSERT INTO dispatcher.rate_products (product) VALUES (%s) ON CONFLICT (product) DO NOTHING"
)
# The product's row, held to the end of the beat: the members of a product beat one at a time.
_HOLD: Final = "SELECT found FROM dispatcher.rate_products WHERE product = %s FOR UPDATE"
_BEAT: Final = (
    "INSERT INTO dispatcher.rate_members"
    " (product, member, backend_pid, wanted, granted, admitted, beat_at)"
    " VALUES (%s, %s, pg_backend_pid(), %s, %s, %s, now())"
    " ON CONFLICT (product, member) DO UPDATE SET backend_pid = excluded.backend_pid,"
    " wanted = excluded.wanted, granted = excluded.granted, admitted = excluded.admitted,"
    " beat_at = excluded.beat_at"
)
# A found limit is raised a step at a time while no throttle comes (by whichever member beats
# first, once per step), and forgotten once it reaches the configured rate.
_PROBE: Final = (
    "UPDATE dispatcher.rate_products SET probed_at = now(),"
    " found = CASE WHEN found * (1 + %(gain)s) >= %(limit)s THEN NULL"
    " ELSE found * (1 + %(gain)s) END"
    " WHERE product = %(product)s AND found IS NOT NULL"
    " AND cut_at < now() - make_interval(secs => %(cruise)s)"
    " AND (probed_at IS NULL OR probed_at < now() - make_interval(secs => %(period)s))"
)
_OTHERS: Final = (
    "SELECT member, wanted, granted, admitted FROM dispatcher.rate_members m"
    " WHERE product = %(product)s AND member <> %(member)s"
    " AND ((wanted > 0 AND beat_at > now() - make_interval(secs => %(stale)s)"
    " AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = m.backend_pid))"
    " OR (wanted = 0 AND beat_at > now() - make_interval(secs => %(window)s)))"
    " ORDER BY member"
)
# Two cuts within a second are one throttle seen by two runs: the lower wins.
_CUT: Final = (
    "INSERT INTO dispatcher.rate_products (product, found, cut_at) VALUES (%s, %s, now())"
    " ON CONFLICT (product) DO UPDATE SET cut_at = excluded.cut_at, probed_at = NULL,"
    " found = CASE WHEN rate_products.cut_at > now() - interval '1 second'"
    " THEN LEAST(rate_products.found, excluded.found) ELSE excluded.found END"
)
# A member that left wants nothing (its share is the others'), but what it sent in its last
# second still counts at the server a moment (arriving late, too): it stays on the board 2 s.
_LEAVE: Final = (
    "UPDATE dispatcher.rate_members SET wanted = 0, granted = %s, beat_at = now(),"
    " backend_pid = 0 WHERE product = %s AND member = %s"
)
_LIMITS: Final = (
    "SELECT set_config('statement_timeout', '2000', false),"
    " set_config('lock_timeout', '1000', false),"
    " set_config('idle_in_transaction_session_timeout', '5000', false)"
)
# Members gone a while are forgotten (their rows were already not counted).
_FORGET: Final = (
    "DELETE FROM dispatcher.rate_members WHERE product = %s"
    " AND beat_at < now() - interval '10 minutes'"
)


class PostgresShareBoard:
    """A product board in a PostgreSQL ledger's database (module docstring)."""

    def __init__(
        self,
        address: PostgresAddress,
        conn: psycopg.Connection[Any],
        *,
        stale_s: float = 3.0,
        cruise_s: float = 3.0,
        period_s: float = 1.0,
        gain: float = 0.05,
    ) -> None:
        """Use :meth:`open`."""
        self.address = address
        self._conn: psycopg.Connection[Any] | None = conn
        self._lock = threading.Lock()  # one call at a time on the connection (lanes beat apart)
        self.stale_s, self.cruise_s, self.period_s, self.gain = stale_s, cruise_s, period_s, gain

    @classmethod
    def open(cls, address: PostgresAddress, **tuning: float) -> PostgresShareBoard:
        """Connect (the schema made or upgraded as the ledger's is)."""
        conn = _connect(address)
        try:
            migrate(conn, address, read_only=False)
        except BaseException:
            conn.close()
            raise
        return cls(address, conn, **tuning)

    def close(self) -> None:
        """Close the board's connection (its members end with it)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    @contextlib.contextmanager
    def _session(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """The connection, one caller at a time: made again when the last one broke (a server
        restarted, a session ended), errors translated; a failed call leaves it usable or
        closed, never inside a transaction."""
        with self._lock:
            try:
                if self._conn is None or self._conn.broken or self._conn.closed:
                    self._conn = _connect(self.address)
                yield self._conn
            except psycopg.Error as exc:
                self._drop()
                raise pg_error(self.address, what, exc) from exc
            except BaseException:
                self._drop()
                raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def beat(
        self, product: str, me: Member, limit: float, decide: Callable[[BoardView], float]
    ) -> BoardView:
        """Say ``me`` is live, read the others and the found limit, and publish ``decide``'s
        rate as ``me``'s: one transaction holding the product's row, so that the members of a
        product beat one at a time."""
        params = {"product": product, "member": me.member, "stale": self.stale_s, "window": 2.0,
                  "gain": self.gain, "limit": limit, "cruise": self.cruise_s,
                  "period": self.period_s}  # fmt: skip
        with self._session("beat on the rate board") as conn, conn.transaction():
            conn.execute(_PRODUCT, (product,))
            (found,) = conn.execute(_HOLD, (product,)).fetchone() or (None,)
            if conn.execute(_PROBE, params).rowcount:
                (found,) = conn.execute(_HOLD, (product,)).fetchone() or (None,)
            others = tuple(Member(*row) for row in conn.execute(_OTHERS, params))
            view = BoardView(others, None if found is None else float(found))
            granted = max(me.granted, decide(view))
            conn.execute(_BEAT, (product, me.member, me.wanted, granted, me.admitted))
        return view

    def cut(self, product: str, found: float) -> None:
        """A throttle found the product's limit: ``found`` per second from now."""
        with self._session("record a throttle on the rate board") as conn:
            conn.execute(_CUT, (product, found))

    def leave(self, product: str, member: str, granted: float) -> None:
        """``member`` ends: it wants nothing from now (its share returns to the others at their
        next beat), and what it may have sent (``granted``) is counted one window more."""
        with self._session("leave the rate board") as conn:
            conn.execute(_LEAVE, (granted, product, member))
            conn.execute(_FORGET, (product,))


def _connect(address: PostgresAddress) -> psycopg.Connection[Any]:
    """The board's own session: autocommit, and short limits on a statement and on waiting for
    a lock, so that a beat never hangs behind another session (it fails, and is tried again)."""
    try:
        conn = psycopg.connect(
            address.conninfo,
            autocommit=True,
            application_name=f"dispatcher {socket.gethostname()}:{os.getpid()} rate",
            connect_timeout=10,
        )
    except psycopg.Error as exc:
        raise pg_error(address, "open the rate board", exc) from exc
    try:
        conn.execute(_LIMITS)  # after connecting: the URL's own options stay as they are
    except psycopg.Error as exc:
        conn.close()
        raise pg_error(address, "open the rate board", exc) from exc
    return conn
