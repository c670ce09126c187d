"""The LedgerStore implementations the contract tests run against (``OPENERS``: a new one, such as
PostgreSQL, is held to the same contract by adding its opener here) and the marks, results and
states those tests write."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import (
    InFlight,
    LedgerStore,
    Result,
    Status,
)
from tests.support.ledger import make_command
from tests.support.postgres import job_url

NOW = 1_700_000_000.0
Opener = Callable[[Path, Callable[[], float]], LedgerStore]


_jobs = itertools.count(1)


def new_job_name(tmp: Path) -> str:
    """A job name no other opener of this test session gives (and no other test process)."""
    return f"{tmp.name}-{os.getpid()}-{next(_jobs)}"


def open_postgres(tmp: Path, clock: Callable[[], float]) -> LedgerStore:
    """A new job of its own in the shared test database (skipped without PostgreSQL)."""
    from dispatcher.ledger.postgres import PostgresLedger

    return PostgresLedger.open(PostgresAddress.parse(job_url(new_job_name(tmp))), clock=clock)


# Each implementation of LedgerStore, by name: open an empty ledger under ``tmp``.
OPENERS: dict[str, Opener] = {
    "sqlite": lambda tmp, clock: Ledger.open(tmp / "job.ledger.db", clock=clock),
    "memory": lambda tmp, clock: MemoryLedger(tmp / "job.ledger.db", clock=clock),
    "postgresql": open_postgres,
}


def in_flight(key: str, at: float = 1000.0, server_at: float | None = None) -> InFlight:
    """An in-flight mark of ``key``."""
    return InFlight(key, at, "2024-05-01T10:00:00", "2024-05-01T16:00:00", 1, server_at)


def result_of(key: str, status: Status, **fields: object) -> Result:
    """An outcome of ``key`` in ``status``; ``fields`` replace the defaults."""
    values: dict[str, object] = {"errno": None, "error": "", "uuid": None, "attempts": 1,
                                 "at": 2000.0, "latency_ms": 40.0}  # fmt: skip
    if status is Status.ACCEPTED:
        values.update(errno=0, error="succ", uuid=f"u-{key[:6]}")
    values.update(fields)
    return Result(key, status, **values)  # type: ignore[arg-type]


def status_of(store: LedgerStore, key: str) -> Status:
    """The status of ``key``'s row."""
    (row,) = store.rows_of([key])
    return row.status


def key_in_state(store: LedgerStore, n: int, state: Status) -> str:
    """Register command ``n`` and bring it to ``state`` by the events a run writes."""
    cmd = make_command(n)
    store.register([cmd])
    key = cmd.key
    sent = {Status.ACCEPTED, Status.REJECTED, Status.FAILED, Status.IN_DOUBT, Status.IN_FLIGHT}
    if state in sent:
        store.write_batch([in_flight(key)], [])
    if state in sent - {Status.IN_FLIGHT}:
        errno = {Status.FAILED: None, Status.ACCEPTED: 0}.get(state, 1)
        store.write_batch([], [result_of(key, state, errno=errno)])
    elif state is Status.EXPIRED:
        store.write_batch([], [result_of(key, Status.EXPIRED, attempts=0)])
    elif state is Status.RETRIED:
        store.hand_over([key], "retry.csv")
    elif state is Status.SKIPPED:
        store.skip([key], "a rule")
    assert status_of(store, key) is state
    return key
