"""The PostgreSQL ledger's records of devices (targets.py's and verify.py's, for PostgreSQL): the
frozen fleet of a job's ``targets_query``, the latest verify verdict of each device, and the
platform device ids looked up by IMEI.

SQL functions over a connection (``job``: the job's id), and the ledger's methods over them
(``PostgresDevices``, a base of the PostgreSQL ledger). A job that never froze or verified anything
has no rows here, and reads as none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from dispatcher.ledger.postgres_batch import from_rows, json_of
from dispatcher.ledger.postgres_session import Conn, Session
from dispatcher.ledger.targets import FrozenTarget
from dispatcher.ledger.verify import VerifyResult, VerifyState

__all__ = ["PostgresDevices"]

# The devices not frozen yet (each once, its first listing), numbered on from the job's last.
_FREEZE: Final = (
    "WITH given AS (SELECT * FROM "
    + from_rows("imei text, device_id text", "%(rows)s")
    + " AS g), fresh AS (SELECT DISTINCT ON (imei) * FROM given g WHERE NOT EXISTS (SELECT 1 FROM"
    " dispatcher.frozen_targets f WHERE f.job_id = %(job)s AND f.imei = g.imei)"
    " ORDER BY imei, ord)"
    " INSERT INTO dispatcher.frozen_targets (job_id, pos, imei, device_id)"
    " SELECT %(job)s, (SELECT COALESCE(max(pos), 0) FROM dispatcher.frozen_targets"
    " WHERE job_id = %(job)s) + row_number() OVER (ORDER BY ord), imei, device_id FROM fresh"
)
_VERIFY_COLUMNS: Final = "imei, product, state, value, read_at, source, reason"
_RECORD_VERIFY: Final = (
    f"INSERT INTO dispatcher.verify_results (job_id, {_VERIFY_COLUMNS})"
    f" SELECT %s, {_VERIFY_COLUMNS} FROM "
    + from_rows(
        "imei text, product text, state text, value text, read_at float8, source text, reason text"
    )
    + " AS v ON CONFLICT (job_id, imei, product) DO UPDATE SET state = excluded.state,"
    " value = excluded.value, read_at = excluded.read_at, source = excluded.source,"
    " reason = excluded.reason"
)
_RECORD_IDS: Final = (
    "INSERT INTO dispatcher.verify_device_ids (job_id, imei, device_id) SELECT %s, imei,"
    f" device_id FROM {from_rows('imei text, device_id text')} AS v"
    " ON CONFLICT (job_id, imei) DO UPDATE SET device_id = excluded.device_id"
)


def _freeze(conn: Conn, job: int, targets: Sequence[FrozenTarget]) -> int:
    """Add the devices of ``targets`` not frozen yet, in order (inside the caller's
    transaction); how many were added."""
    if not targets:
        return 0
    params = {"job": job, "rows": json_of((t.imei, t.device_id) for t in targets)}
    return conn.execute(_FREEZE, params).rowcount


def _frozen(conn: Conn, job: int) -> list[FrozenTarget]:
    """Every frozen device, in the order it was frozen (none: the job has no frozen list)."""
    cur = conn.execute(
        "SELECT imei, device_id FROM dispatcher.frozen_targets WHERE job_id = %s ORDER BY pos",
        (job,),
    )
    return [FrozenTarget(imei, device_id) for imei, device_id in cur]


def _record_verify(conn: Conn, job: int, verdicts: Sequence[VerifyResult]) -> None:
    """Each device's verdict in place of its last one (the last given of a device wins)."""
    latest = list({(r.imei, r.product): r for r in verdicts}.values())
    if not latest:
        return
    rows = [(r.imei, r.product, r.state.value, r.value, r.read_at, r.source, r.reason)
            for r in latest]  # fmt: skip
    conn.execute(_RECORD_VERIFY, (job, json_of(rows)))


def _results(conn: Conn, job: int) -> list[VerifyResult]:
    """Every device's latest verdict, by imei then product."""
    cur = conn.execute(
        f"SELECT {_VERIFY_COLUMNS} FROM dispatcher.verify_results WHERE job_id = %s"
        " ORDER BY imei, product",
        (job,),
    )
    return [
        VerifyResult(imei, product, VerifyState(state), value, read_at, source, reason)
        for imei, product, state, value, read_at, source, reason in cur
    ]


def _record_device_ids(conn: Conn, job: int, ids: Mapping[str, str]) -> None:
    """Platform device ids by IMEI, kept (in place of any earlier one)."""
    if ids:
        conn.execute(_RECORD_IDS, (job, json_of(ids.items())))


def _device_ids(conn: Conn, job: int) -> dict[str, str]:
    """The platform device ids kept, by IMEI."""
    cur = conn.execute(
        "SELECT imei, device_id FROM dispatcher.verify_device_ids WHERE job_id = %s ORDER BY imei",
        (job,),
    )
    return dict(cur)


class PostgresDevices:
    """The PostgreSQL ledger's frozen list and verify records (a base of ``PostgresLedger``,
    whose session and job they use)."""

    _s: Session
    _job: int

    def freeze_targets(self, targets: Sequence[FrozenTarget]) -> int:
        """Freeze the devices not frozen yet, in order (one write); how many were added."""
        with self._s.write("freeze the targets") as conn:
            return _freeze(conn, self._job, targets)

    def frozen_targets(self) -> list[FrozenTarget]:
        """The frozen devices, in the order they were frozen (none: no frozen list)."""
        with self._s.read("read the frozen targets") as conn:
            return _frozen(conn, self._job)

    def record_verify(self, results: Sequence[VerifyResult]) -> None:
        """Each device's verdict, in place of its last one, in one transaction."""
        with self._s.write("record the verify results") as conn:
            _record_verify(conn, self._job, results)

    def verify_results(self) -> list[VerifyResult]:
        """Every device's latest verdict, by imei then product (none: never verified)."""
        with self._s.read("read the verify results") as conn:
            return _results(conn, self._job)

    def record_device_ids(self, ids: Mapping[str, str]) -> None:
        """Platform device ids by IMEI (as GET /devices/getbyimei gave them), kept."""
        with self._s.write("record device ids") as conn:
            _record_device_ids(conn, self._job, ids)

    def device_ids(self) -> dict[str, str]:
        """The platform device ids kept, by IMEI."""
        with self._s.read("read device ids") as conn:
            return _device_ids(conn, self._job)
