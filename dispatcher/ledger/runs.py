"""The runs table: a run's start and end, and what it keeps of the settings and summary (plain
JSON, with no secret in it)."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from dispatcher.ledger.records import RunInfo

__all__ = ["end_run", "read_runs", "start_run", "to_json"]

_SECRET_NAME: Final = re.compile(r"(api_?key|secret|password|token)$")


def to_json(data: Mapping[str, object]) -> str:
    """``data`` as JSON, every secret-looking key dropped (the api-key must never be stored)."""
    return json.dumps(_scrub(data), default=_json_default, ensure_ascii=False, sort_keys=True)


def start_run(
    conn: sqlite3.Connection, job_path: str, at: float, settings: Mapping[str, object]
) -> int:
    """Add a run started at ``at`` (unix seconds); return its id."""
    cur = conn.execute(
        "INSERT INTO runs (job_path, started_at, settings) VALUES (?, ?, ?)",
        (job_path, at, to_json(settings)),
    )
    assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
    return cur.lastrowid


def end_run(
    conn: sqlite3.Connection,
    run_id: int,
    at: float,
    summary: Mapping[str, object],
    stop_reason: str | None,
) -> None:
    """Record that run ``run_id`` ended at ``at``: its summary and why it stopped."""
    conn.execute(
        "UPDATE runs SET finished_at = ?, summary = ?, stop_reason = ? WHERE id = ?",
        (at, to_json(summary), stop_reason, run_id),
    )


def read_runs(conn: sqlite3.Connection) -> list[RunInfo]:
    """Every run, oldest first."""
    found = conn.execute(
        "SELECT id, job_path, started_at, finished_at, settings, summary, stop_reason"
        " FROM runs ORDER BY id"
    ).fetchall()
    return [
        RunInfo(i, job, start, end, json.loads(st), None if sm is None else json.loads(sm), why)
        for i, job, start, end, st, sm, why in found
    ]


def _scrub(value: object) -> object:
    """Plain data with every secret-looking key dropped."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k): _scrub(v)
            for k, v in value.items()
            if not _SECRET_NAME.search(str(k).lower().replace("-", "_"))
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return type(value).__name__  # never repr(): it could carry a secret
