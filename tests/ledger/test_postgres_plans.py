"""The PostgreSQL ledger's batch statements reach their rows by key, whatever the planner knows:
on a new database (no statistics: the job looks empty) as on an analyzed one, each batch reads
only its own rows, never all of the job's (which made a new job's run three times slower)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.postgres_batch import KEYED, json_of
from dispatcher.ledger.postgres_follow_ups import _RECORD_DELIVERY
from dispatcher.ledger.postgres_moves import _MARK
from tests.support import postgres
from tests.support.ledger import make_command

ROWS = 20_000  # a job this size: a scan of it costs more than a lookup per key


def _plan(url: str, sql: str, params: tuple[object, ...], *, analyzed: bool) -> Any:
    with psycopg.connect(url) as conn:
        if analyzed:
            conn.execute("ANALYZE dispatcher.commands")
        conn.execute("SET plan_cache_mode = force_generic_plan")  # as a prepared statement runs
        with conn.transaction():
            cur = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            (plan,) = cur.fetchone() or (None,)
            raise psycopg.Rollback()
    return plan


def _commands_rows_read(node: Any) -> int:
    """How many rows the plan read from dispatcher.commands, over every scan of it."""
    found = 0
    if node.get("Relation Name") == "commands":
        found += int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
        found += int(node.get("Rows Removed by Filter", 0))
    for child in node.get("Plans", []):
        found += _commands_rows_read(child)
    return found


@pytest.fixture(scope="module")
def job() -> tuple[str, list[str]]:
    url = postgres.new_database()
    with PostgresLedger.open(PostgresAddress.parse(url).with_job("new")) as ledger:
        cmds = [make_command(n) for n in range(ROWS)]
        for start in range(0, ROWS, 500):
            ledger.register(cmds[start : start + 500])
    return url, [c.key for c in cmds[100:150]]


@pytest.mark.parametrize("analyzed", [False, True], ids=["new database", "analyzed"])
def test_a_batch_of_marks_reads_its_own_rows_only(
    job: tuple[str, list[str]], analyzed: bool
) -> None:
    url, keys = job
    n = len(keys)
    params = (1, json_of((k, 1.0, None, "2030-01-01T00:00:00", 1, None) for k in keys))
    (plan,) = _plan(url, _MARK, params, analyzed=analyzed)
    assert _commands_rows_read(plan["Plan"]) <= 3 * n


@pytest.mark.parametrize("analyzed", [False, True], ids=["new database", "analyzed"])
def test_reads_and_updates_by_key_read_their_own_rows_only(
    job: tuple[str, list[str]], analyzed: bool
) -> None:
    url, keys = job
    n = len(keys)
    read = f"SELECT key, status FROM dispatcher.commands WHERE {KEYED}"
    (plan,) = _plan(url, read, (1, json_of(keys)), analyzed=analyzed)
    assert _commands_rows_read(plan["Plan"]) <= 3 * n
    delivery = (1, json_of((k, 1, None, None, None, None, 1.0) for k in keys))
    (plan,) = _plan(url, _RECORD_DELIVERY, delivery, analyzed=analyzed)
    assert _commands_rows_read(plan["Plan"]) <= 3 * n
