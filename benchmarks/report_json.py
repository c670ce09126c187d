"""The benchmark's results as JSON: every figure, raw and derived, for tools."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchmarks.ledgers import PG_CPU_TARGET_X
from benchmarks.records import (
    CPU_TARGET_X,
    RSS_TARGET_MB,
    SHAPES,
    STEPS_TARGET_X,
    VALIDATE_TARGET_X,
    StepsRun,
)
from benchmarks.report import Results, targets
from benchmarks.report_ledgers import ledger_json
from benchmarks.report_loop import loop_json
from benchmarks.throttled import (
    FOLLOW_TARGET_S,
    THROTTLED_TARGET_PCT,
    TOLERANCE,
    USED_TARGET_PCT,
    ThrottledRun,
)

__all__ = ["to_json"]


def _measured(m: Any) -> dict[str, Any]:
    return {
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "sys_s": m.sys_s,
        "peak_rss_mb": m.peak_rss_mb,
        "returncode": m.returncode,
    }


def _check(c: Any) -> dict[str, Any]:
    return {
        "expected": c.expected,
        "accepted": c.accepted,
        "duplicates": c.duplicates,
        "posts": c.posts,
        "ok": c.ok,
    }


def to_json(r: Results) -> dict[str, Any]:
    """Every figure, raw and derived, for tools."""
    doc: dict[str, Any] = {
        "machine": r.machine,
        "sizes": asdict(r.sizes),
        "ok": r.ok,
        "errors": r.errors,
        "suite_s": r.suite_s,
        "startup_cpu_s": r.startup_cpu_s,
        "contenders": [
            {
                "name": c.name,
                "shape": c.shape,
                "job": SHAPES[c.shape],
                "commands": c.n,
                "scaled_to": c.scale_to,
                **_measured(c.run),
                "projected_wall_s": c.wall_s,
                "commands_per_s": c.per_s,
                "cpu_s_per_1k": c.cpu_per_1k,
                "server_cpu_s": c.server_cpu_s,
                "check": _check(c.check),
            }
            for c in r.contenders
        ],
    }
    if r.validate:
        doc["validate"] = [
            {
                "rows": v.rows,
                "columns": v.columns,
                "shape": v.shape,
                "job": SHAPES[v.shape],
                "dispatcher": _measured(v.dispatcher),
                "dictreader": _measured(v.dictreader),
                "cpu_x": v.cpu_x,
                "wall_x": v.wall_x,
            }
            for v in r.validate
        ]
    if r.steps is not None:
        doc["steps"] = _steps_json(r.steps)
    measured = targets(r)
    if measured:
        doc["targets"] = {
            "client_cpu_x_at_most": CPU_TARGET_X,
            "validate_cpu_x_at_most": VALIDATE_TARGET_X,
            "steps_cpu_x_at_most": STEPS_TARGET_X,
            "postgresql_ledger_cpu_x_at_most": PG_CPU_TARGET_X,
            "peak_rss_mb_below": RSS_TARGET_MB,
            "measured": [
                {"target": t.name, "measured": t.measured, "limit": t.limit, "met": t.met}
                for t in measured
            ],
            "missed": [f"{t.name}: {t.verdict}" for t in measured if not t.met],
        }
    if r.big_run is not None:
        b = r.big_run
        doc["big_run"] = {
            "commands": b.n,
            **_measured(b.run),
            "ledger_bytes": b.ledger_bytes,
            "server_cpu_s": b.server_cpu_s,
            "check": _check(b.check),
        }
    if r.pacing is not None:
        p = r.pacing
        doc["pacing"] = {
            "commands": p.n,
            "rate": p.rate,
            **_measured(p.run),
            "duration_s": p.duration_s,
            "expected_s": p.expected_s,
            "error_pct": p.error_pct,
            "busiest_1s_window": p.busiest,
            "check": _check(p.check),
        }
    if r.throttled:
        doc["throttled"] = [_throttled_json(t) for t in r.throttled]
    if r.follow is not None:
        f = r.follow
        doc["follow"] = {
            "commands": f.n,
            "rate": f.rate,
            "limit": f.limit,
            "step_s": f.step_s,
            "mode": f.mode,
            **_measured(f.run),
            "span_s": f.span_s,
            "posts": f.posts,
            "throttled": f.throttled,
            "throttled_pct": f.throttled_pct,
            "accepted": f.accepted,
            "duplicates": f.duplicates,
            "replayed_admissions": f.replayed,
            "failed": f.failed,
            "target_s": FOLLOW_TARGET_S,
            "tolerance": TOLERANCE,
            "changes": [
                {
                    "at_s": c.at_s,
                    "before": c.before,
                    "after": c.after,
                    "follow_s": c.settled_s,
                    "first_within_s": c.first_s,
                    "admitted_per_s": list(c.per_s),
                    "met": c.met,
                }
                for c in f.changes
            ],
            "admitted_per_s": list(f.admitted_per_s),
            "arrived_per_s": list(f.arrived_per_s),
            "consistent": f.consistent,
        }
    if r.loop is not None:
        doc["loop"] = loop_json(r.loop)
    if r.ledgers is not None:
        doc["ledgers"] = ledger_json(r.ledgers)
    return doc


def _steps_json(st: StepsRun) -> dict[str, Any]:
    return {
        "steps": st.steps,
        "devices": st.devices,
        "commands": st.commands,
        "with_steps": {**_measured(st.with_steps), "check": _check(st.with_check)},
        "without_steps": {**_measured(st.without), "check": _check(st.without_check)},
        "cpu_x": st.cpu_x,
    }


def _throttled_json(t: ThrottledRun) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client": t.client,
        "limit": t.limit,
        "rate": t.rate,
        "mode": t.mode,
        "commands": t.n,
        **_measured(t.run),
        "span_s": t.span_s,
        "posts": t.posts,
        "throttled": t.throttled,
        "accepted": t.accepted,
        "duplicates": t.duplicates,
        "client_accepted": t.client_accepted,
        "failed": t.failed,
        "used_pct": t.used_pct,
        "throttled_pct": t.throttled_pct,
        "admitted_per_s": list(t.admitted_per_s),
        "targets": {
            "used_pct_at_least": USED_TARGET_PCT,
            "throttled_pct_at_most": THROTTLED_TARGET_PCT,
            "failed": 0,
            "missed": t.misses(),
        },
        "consistent": t.consistent,
    }
    if t.status is not None:
        s = t.status
        doc["status"] = {
            "devices": s.devices,
            "history_calls": s.history,
            "detail_calls": s.detail,
            "calls_per_device": s.per_device,
            **_measured(s.run),
        }
    return doc
