"""How the PostgreSQL ledger sends a batch: one statement, its rows as one JSON array of arrays.

A batch of 500 commands is one ``INSERT … SELECT`` (or ``UPDATE … FROM``) over
``jsonb_array_elements`` of one parameter, never a statement per row. JSON rather than one
PostgreSQL array per column: orjson writes the whole batch in C (about 0.05 ms for 500
commands), where psycopg quotes every element of an array in Python (about 0.4 ms per column of
500), and the client's CPU per command is what a run on PostgreSQL must keep close to SQLite's.
Every value goes through exactly: text as is, integers as they are, floats in their shortest
round-trip form (float8 reads it back to the same double).

SQLite applies a batch row by row, so a key given twice is changed twice; an ``UPDATE … FROM``
changes each row once. :func:`rounds` splits such a batch into rounds in which each key is once,
run in order: the same rows as SQLite's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import orjson

from dispatcher.ledger.postgres_session import Conn

__all__ = ["ANY_KEY", "KEYED", "by_key", "from_rows", "json_of", "rounds", "update"]

T = TypeVar("T")

# ``key = ANY_KEY``: the key is one of a JSON array of texts (a parameter).
ANY_KEY = "ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
# The job's rows of some keys (parameters: the job, the keys as a JSON array): each found by its
# key's unique index, then read by its ctid. ``job_id = %s AND key = ANY(…)`` would leave the plan
# to the statistics, and a new job's rows (or a new database's) look like none at all: the planner
# then reads every row of the job for each batch (a new job's run took three times as long).
KEYED = (
    "ctid = ANY(ARRAY(SELECT (SELECT x.ctid FROM dispatcher.commands x"
    " WHERE x.job_id = %s AND x.key = k) FROM jsonb_array_elements_text(%s::jsonb) AS k))"
)


def json_of(rows: Iterable[object]) -> str:
    """The parameter of :func:`from_rows` (or of ANY_KEY): ``rows`` as a JSON array."""
    return orjson.dumps(list(rows)).decode()


def from_rows(columns: str, param: str = "%s") -> str:
    """A FROM item of the rows of a JSON array of arrays (the parameter ``param``): column ``i``
    of each named and typed as the ``i``-th of ``columns`` ("key text, at float8, ..."), and
    ``ord`` its place (1, 2, ...)."""
    named = (c.split() for c in columns.split(","))
    fields = ", ".join(f"(e.v->>{i})::{kind} AS {name}" for i, (name, kind) in enumerate(named))
    return (
        f"(SELECT {fields}, e.ord FROM jsonb_array_elements({param}::jsonb)"
        " WITH ORDINALITY AS e(v, ord))"
    )


def by_key(columns: str, assign: str, where: str = "", *, status: str | None = None) -> str:
    """``UPDATE … SET [status = status,] assign`` of the job's rows whose keys a batch (the rows
    of :func:`from_rows` ``columns``, the first column the key) names, each row reached by its
    key's unique index, then by its ctid: a plan that holds whatever the planner's statistics
    say (as KEYED's). Parameters: the job, the batch, then ``assign``'s."""
    update = "UPDATE dispatcher.commands c SET"
    if status is not None:  # a move of the lifecycle table's (postgres_moves.py's alone)
        update = f"UPDATE dispatcher.commands c SET status = {status},"
    return (
        "WITH v AS MATERIALIZED (SELECT u.*, (SELECT x.ctid FROM dispatcher.commands x"
        f" WHERE x.job_id = %s AND x.key = u.key) AS tid FROM {from_rows(columns)} AS u)"
        f" {update} {assign} FROM v WHERE c.ctid = v.tid{where}"
    )


def rounds(items: Sequence[T], key: Callable[[T], str]) -> list[Sequence[T]]:
    """``items`` in rounds in which each key is once (its n-th item in round n), in order."""
    keys = [key(i) for i in items]
    if len(set(keys)) == len(keys):
        return [items]  # the common case: every key once
    found: list[list[T]] = []
    seen: dict[str, int] = defaultdict(int)
    for k, item in zip(keys, items, strict=True):
        n = seen[k]
        seen[k] += 1
        if n == len(found):
            found.append([])
        found[n].append(item)
    return list(found)


def update(
    conn: Conn,
    sql: str,
    items: Sequence[T],
    key: Callable[[T], str],
    row: Callable[[T], Sequence[object]],
    job: int,
) -> int:
    """Run a :func:`by_key` update whose parameters are the job's id and the rows (``row`` of
    each item, as JSON), round by round (:func:`rounds`); how many rows it changed."""
    changed = 0
    for part in rounds(items, key):
        changed += conn.execute(sql, (job, json_of(map(row, part)))).rowcount
    return changed
