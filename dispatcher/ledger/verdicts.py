"""Canary verdicts, tied to the commands they cover.

A canary that passes is recorded as a verdict of its product (the keys it judged, when), and every
command of that product's lane then registered is marked covered by it (``commands.canary``), in
one transaction: a lane's pass never overwrites another's. A command registered later, an edited
version (``--accept-changes`` inserts it anew) or a command added to the job file is not covered:
the next run sends a canary of those before it sends them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Final

import orjson

from dispatcher.ledger.columns import INSERT_COMMAND, insert_params
from dispatcher.ledger.moves import states_sql
from dispatcher.ledger.records import TO_SEND

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["covered_before", "pass_canary", "uncovered"]

_CHUNK: Final = 500
_OF_LANE: Final = "(?1 IS NULL OR COALESCE(product, '') = ?1)"
# Not sent yet: a canary covers those of them it judged fit to go.
_TO_SEND: Final = states_sql(TO_SEND)


def covered_before(conn: sqlite3.Connection, product: str | None) -> bool:
    """Whether a canary of the lane (``product``; None: the run's only lane) ever passed."""
    found = conn.execute(
        f"SELECT 1 FROM commands WHERE canary IS NOT NULL AND {_OF_LANE} LIMIT 1", (product,)
    ).fetchone()
    return found is not None


def uncovered(conn: sqlite3.Connection, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that are the job's, not sent yet, and covered by no canary (keys the
    ledger does not hold are not covered either)."""
    found: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        part = list(keys[i : i + _CHUNK])
        marks = ", ".join("?" * len(part))
        covered = {
            k
            for (k,) in conn.execute(
                f"SELECT key FROM commands WHERE key IN ({marks}) AND NOT (retired IS NULL"
                f" AND canary IS NULL AND status IN {_TO_SEND})",
                part,
            )
        }
        found.update(k for k in part if k not in covered)
    return found


def pass_canary(
    conn: sqlite3.Connection,
    product: str | None,
    judged: Sequence[str],
    commands: Iterable[Command],
    at: float,
) -> int:
    """Record a passed canary of the lane (inside the caller's transaction): the verdict, every
    command of the lane registered, and those not covered yet covered by it. Its id."""
    cur = conn.execute(
        "INSERT INTO verdicts (product, passed_at, judged, covered) VALUES (?, ?, ?, 0)",
        (product or "", at, orjson.dumps(list(judged)).decode()),
    )
    verdict = int(cur.lastrowid or 0)
    stream = iter(commands)
    while chunk := list(islice(stream, _CHUNK)):
        conn.executemany(INSERT_COMMAND, map(insert_params, chunk))
    covered = conn.execute(
        f"UPDATE commands SET canary = ?2 WHERE canary IS NULL AND retired IS NULL AND {_OF_LANE}",
        (product, verdict),
    ).rowcount
    conn.execute("UPDATE verdicts SET covered = ? WHERE id = ?", (covered, verdict))
    return verdict
