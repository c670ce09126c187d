"""The ledger: SQLite and PostgreSQL side by side, as Markdown and as JSON."""

from __future__ import annotations

from typing import Any

from benchmarks.ledgers import PG_CPU_TARGET_X, POSTGRESQL, SQLITE, LedgerCompare

__all__ = ["TITLE", "ledger_json", "ledger_rows"]

TITLE = "**The ledger: SQLite and PostgreSQL side by side**"
_NAMES = {
    SQLITE: "SQLite file (`synchronous=full`)",
    POSTGRESQL: "PostgreSQL job (local cluster, fsync on)",
}


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}x" for v in values)


def _server_rounds(c: LedgerCompare) -> str:
    return ", ".join(f"{(r.server_cpu_s or 0.0) / c.n * 1000:.3f}" for r in c.of(POSTGRESQL))


def _checks(c: LedgerCompare, ledger: str) -> str:
    runs = c.of(ledger)
    passed = sum(r.check.ok for r in runs)
    return f"{passed} of {len(runs)} ok (each command accepted once, exit 0)"


def ledger_rows(c: LedgerCompare | None) -> list[str]:
    """The table, its ratios and notes; or the line saying why it was skipped."""
    if c is None:
        return []
    if c.skipped is not None:
        return [f"{TITLE}: skipped: {c.skipped}.", ""]
    if not c.measured:
        return []
    head = (
        f"{TITLE} (`dispatcher run` of {c.n:,} commands, long args, no rate limit, concurrency "
        f"64, each against a fresh emulator; {c.rounds} round{'s' * (c.rounds > 1)}, SQLite "
        f"then PostgreSQL in each; medians. PostgreSQL {c.server.split()[0]}, local, on a unix "
        "socket, fsync on, synchronous_commit on; a fresh job each round in one database)"
    )
    rows = [
        head,
        "",
        "| ledger | wall s | client CPU s / 1k commands | of which kernel | "
        "PostgreSQL server CPU s / 1k commands | checks |",
        "|---|---:|---:|---:|---:|---|",
    ]
    server = {SQLITE: "none (in the client)", POSTGRESQL: f"{c.server_per_1k():.3f}"}
    for ledger in (SQLITE, POSTGRESQL):
        wall, cpu = f"{c.wall_s(ledger):.2f}", f"{c.cpu_per_1k(ledger):.3f}"
        if ledger == POSTGRESQL:
            wall, cpu = f"{wall} ({c.wall_x:.2f}x)", f"{cpu} ({c.cpu_x:.2f}x)"
        rows.append(
            f"| {_NAMES[ledger]} | {wall} | {cpu} | {c.sys_per_1k(ledger):.3f} "
            f"| {server[ledger]} | {_checks(c, ledger)} |"
        )
    notes = (
        "Ratios in brackets: PostgreSQL/SQLite, the median of the rounds' pairs (client CPU "
        f"{_ratios(c.cpu_ratios())}; wall {_ratios(c.wall_ratios())}). Client CPU is the "
        "`dispatcher run` process's (user + sys, from `os.wait4`), start-up included. The "
        "server's CPU is the cluster's processes' (from /proc, before and after each run), "
        "which a SQLite ledger spends in the client; PostgreSQL client + server over the SQLite "
        f"client: {c.total_x:.2f}x ({_ratios(c.total_ratios())}). The server's CPU s / 1k "
        f"commands round by round: {_server_rounds(c)}."
    )
    return [*rows, "", notes, ""]


def ledger_json(c: LedgerCompare) -> dict[str, Any]:
    """Every run and figure, for tools."""
    doc: dict[str, Any] = {
        "commands": c.n,
        "rounds": c.rounds,
        "skipped": c.skipped,
        "ok": c.ok,
        "server_version": c.server,
        "target_cpu_x_at_most": PG_CPU_TARGET_X,
        "runs": [
            {
                "ledger": r.ledger,
                "round": r.round,
                "wall_s": r.run.wall_s,
                "cpu_s": r.run.cpu_s,
                "sys_s": r.run.sys_s,
                "peak_rss_mb": r.run.peak_rss_mb,
                "returncode": r.run.returncode,
                "cpu_s_per_1k": r.run.cpu_s / c.n * 1000,
                "server_cpu_s": r.server_cpu_s,
                "emulator_cpu_s": r.emulator_cpu_s,
                "check": {
                    "expected": r.check.expected,
                    "accepted": r.check.accepted,
                    "duplicates": r.check.duplicates,
                    "posts": r.check.posts,
                    "ok": r.check.ok,
                },
            }
            for r in c.runs
        ],
    }
    if c.measured:
        doc["median"] = {
            ledger: {
                "wall_s": c.wall_s(ledger),
                "cpu_s_per_1k": c.cpu_per_1k(ledger),
                "sys_s_per_1k": c.sys_per_1k(ledger),
            }
            for ledger in (SQLITE, POSTGRESQL)
        }
        doc["median"][POSTGRESQL]["server_cpu_s_per_1k"] = c.server_per_1k()
        doc["cpu_x"], doc["wall_x"], doc["total_cpu_x"] = c.cpu_x, c.wall_x, c.total_x
        doc["cpu_x_per_round"] = c.cpu_ratios()
        doc["wall_x_per_round"] = c.wall_ratios()
        doc["total_cpu_x_per_round"] = c.total_ratios()
    return doc
