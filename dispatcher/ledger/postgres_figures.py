"""The figures a report reads from the PostgreSQL ledger (figures.py's and delivery.py's, for
PostgreSQL): counts in one pass, errno groups, latency ranks and the delivery breakdown, each over
the job's (active) rows, with SQLite's answers exactly (text ordered by bytes: ``COLLATE "C"``
columns; sums that are 0 over no rows).

Functions over a connection, inside the ledger's reads (postgres.py); ``job`` is the job's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from dispatcher.ledger.delivery import DEVICE_ORDER, DeliveryBreakdown
from dispatcher.ledger.postgres_session import Conn
from dispatcher.ledger.records import DeliveryState, LedgerStats, Retired

__all__ = ["breakdown", "errno_groups", "latencies_at", "product_counts", "retired_counts", "stats"]

_ACTIVE: Final = "job_id = %(job)s AND retired IS NULL"
_STATS: Final = (
    "SELECT count(*), count(*) FILTER (WHERE status NOT IN ('pending', 'in_flight')),"
    " min(first_attempt_at), max(last_attempt_at), COALESCE(sum(attempts), 0)::bigint,"
    " COALESCE(sum(GREATEST(attempts - 1, 0)), 0)::bigint, COALESCE(sum(reconciled), 0)::bigint,"
    f" count(latency_ms) FROM dispatcher.commands WHERE {_ACTIVE}"
)
# A delivery's rank in DEVICE_ORDER (delivery.py's).
_RANK: Final = (
    "CASE WHEN send_status IS NULL THEN 3 WHEN send_status = 1 THEN 4 WHEN send_status = 2"
    " THEN 2 WHEN send_status = 3 THEN 5 WHEN send_status = 4 THEN 1 WHEN send_status = 5"
    " THEN 6 ELSE 0 END"
)
_HELD: Final = f"{_ACTIVE} AND status = 'accepted' AND uuid IS NOT NULL"
_BY_COMMAND: Final = (
    f"SELECT {_RANK} AS r, count(*) FROM dispatcher.commands WHERE {_HELD} GROUP BY r"
)
_BY_DEVICE: Final = (
    f"SELECT r, count(*) FROM (SELECT min({_RANK}) AS r FROM dispatcher.commands WHERE {_HELD}"
    " GROUP BY imei) AS devices GROUP BY r"
)
_NOT_HELD: Final = (
    "SELECT count(*), count(DISTINCT imei) FROM dispatcher.commands"
    f" WHERE {_ACTIVE} AND NOT (status = 'accepted' AND uuid IS NOT NULL)"
)
# Expired (rank 1) and failed (0) deliveries a retry job took over: no problem of this job's.
_HANDED: Final = (
    f"SELECT count(*) FROM dispatcher.commands WHERE {_HELD} AND retried_in IS NOT NULL"
    f" AND {_RANK} <= 1"
)
_CONFIRMS: Final = (
    f"SELECT confirm_status, count(*) FROM dispatcher.commands WHERE {_HELD}"
    " AND confirm_status IS NOT NULL GROUP BY confirm_status ORDER BY count(*) DESC,"
    " confirm_status"
)


def stats(conn: Conn, job: int) -> LedgerStats:
    """Figures over the job's (active) rows in one pass."""
    found = conn.execute(_STATS, {"job": job}).fetchone()
    assert found is not None  # an aggregate always gives a row
    t, out, first, last, att, retries, rec, lat = found
    return LedgerStats(int(t), int(out), first, last, int(att), int(retries), int(rec), int(lat))


def retired_counts(conn: Conn, job: int) -> dict[str, int]:
    """How many rows are retired, by why: {'removed': n, 'changed': m}."""
    counts = dict.fromkeys((r.value for r in Retired), 0)
    sql = (
        "SELECT retired, count(*) FROM dispatcher.commands WHERE job_id = %s"
        " AND retired IS NOT NULL GROUP BY retired"
    )
    for why, n in conn.execute(sql, (job,)):
        counts[why] = int(n)
    return counts


def product_counts(conn: Conn, job: int) -> dict[str, dict[str, int]]:
    """The active rows by product ('': the default one) and status: {product: {status: n}}."""
    sql = (
        "SELECT COALESCE(product, ''), status, count(*) FROM dispatcher.commands"
        f" WHERE {_ACTIVE} GROUP BY 1, 2 ORDER BY 1"
    )
    counts: dict[str, dict[str, int]] = {}
    for product, status, n in conn.execute(sql, {"job": job}):
        counts.setdefault(product, {})[status] = int(n)
    return counts


def errno_groups(conn: Conn, job: int) -> list[tuple[int, str, int]]:
    """(errno, error text, count) for every errno of an active row, most common text first."""
    sql = (
        "SELECT errno, error, count(*) AS n FROM dispatcher.commands WHERE errno IS NOT NULL"
        f" AND {_ACTIVE} GROUP BY errno, error ORDER BY errno, n DESC, error"
    )
    return [(int(e), str(text), int(n)) for e, text, n in conn.execute(sql, {"job": job})]


def latencies_at(conn: Conn, job: int, ranks: Sequence[int]) -> list[float]:
    """Active rows' latencies at 1-based ``ranks`` in ascending order (the server sorts them
    and gives only those ranks)."""
    wanted = sorted(set(ranks))
    if not wanted:
        return []
    sql = (
        "SELECT rank, latency_ms FROM (SELECT latency_ms, row_number() OVER"
        " (ORDER BY latency_ms) AS rank FROM dispatcher.commands WHERE latency_ms IS NOT NULL"
        f" AND {_ACTIVE}) AS ranked WHERE rank = ANY(%(ranks)s)"
    )
    found: dict[int, float] = dict(conn.execute(sql, {"job": job, "ranks": wanted}))
    return [found[r] for r in ranks]


def breakdown(conn: Conn, job: int) -> DeliveryBreakdown:
    """The delivery breakdown of the job's (active) rows (delivery.py)."""
    params = {"job": job}
    commands = dict.fromkeys(DeliveryState, 0)
    devices = dict.fromkeys(DeliveryState, 0)
    for rank, n in conn.execute(_BY_COMMAND, params):
        commands[DEVICE_ORDER[rank]] = int(n)
    for rank, n in conn.execute(_BY_DEVICE, params):
        devices[DEVICE_ORDER[rank]] = int(n)
    not_held, devices_not_held = conn.execute(_NOT_HELD, params).fetchone() or (0, 0)
    confirms = [(str(name), int(n)) for name, n in conn.execute(_CONFIRMS, params)]
    (handed,) = conn.execute(_HANDED, params).fetchone() or (0,)
    return DeliveryBreakdown(
        commands, devices, int(not_held), int(devices_not_held), confirms, int(handed)
    )
