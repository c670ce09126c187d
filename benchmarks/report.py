"""The results as Markdown tables (for the README) and as JSON, and the machine they ran on."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from benchmarks.suite import BigRun, Contender, Pacing, Sizes, Validate

__all__ = ["Results", "machine", "render_markdown", "to_json"]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, cores, OS, Python, aiohttp and uvloop versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "cores": usable,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
    }


@dataclass(slots=True)
class Results:
    """Everything one run of the suite measured; missing parts failed (see ``errors``)."""

    sizes: Sizes
    machine: dict[str, Any]
    contenders: list[Contender] = field(default_factory=list)
    startup_cpu_s: dict[str, float] = field(default_factory=dict)
    validate: Validate | None = None
    big_run: BigRun | None = None
    pacing: Pacing | None = None
    errors: list[str] = field(default_factory=list)
    suite_s: float = 0.0

    @property
    def ok(self) -> bool:
        """No measurement failed and every emulator check passed."""
        checks = [c.check for c in self.contenders]
        checks += [m.check for m in (self.big_run, self.pacing) if m is not None]
        return not self.errors and all(c.ok for c in checks)

    def bare(self) -> Contender | None:
        """The yardstick, if it ran."""
        return next((c for c in self.contenders if c.name.startswith("bare")), None)


def _x(value: float, base: float | None) -> str:
    return f" ({value / base:.2f}x)" if base else ""


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _contender_rows(r: Results) -> list[str]:
    bare = r.bare()
    rows = [
        "| contender | commands | wall s | commands/s | client CPU s / 1k commands | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in r.contenders:
        b = bare if bare is not None and c is not bare else None
        commands = f"{c.n:,}" if c.n == c.scale_to else f"{c.n:,}, scaled to {c.scale_to:,}"
        rows.append(
            f"| {c.name} | {commands} "
            f"| {c.wall_s:,.2f}{_x(c.wall_s, b.wall_s if b else None)} "
            f"| {c.per_s:,.0f}{_x(c.per_s, b.per_s if b else None)} "
            f"| {c.cpu_per_1k:.3f}{_x(c.cpu_per_1k, b.cpu_per_1k if b else None)} "
            f"| {_mb(c.run.peak_rss_mb)}{_x(c.run.peak_rss_mb, b.run.peak_rss_mb if b else None)} |"
        )
    return rows


def _scale_rows(r: Results) -> list[str]:
    rows = ["| measurement | size | wall s | peak RSS MB | result |", "|---|---:|---:|---:|---|"]
    if r.validate is not None:
        v, d, p = r.validate, r.validate.dispatcher, r.validate.dictreader
        rows.append(
            f"| `dispatcher validate` | {v.rows:,} rows "
            f"| {d.wall_s:.2f} ({d.wall_s / p.wall_s:.2f}x) "
            f"| {_mb(d.peak_rss_mb)} ({d.peak_rss_mb / p.peak_rss_mb:.2f}x) | valid |"
        )
        rows.append(
            f"| bare `csv.DictReader` pass | {v.rows:,} rows | {p.wall_s:.2f} "
            f"| {_mb(p.peak_rss_mb)} | {int(p.stdout.strip() or 0):,} rows |"
        )
    if r.big_run is not None:
        b = r.big_run
        rows.append(
            f"| `dispatcher run`, no rate limit | {b.n:,} commands | {b.run.wall_s:,.1f} "
            f"| {_mb(b.run.peak_rss_mb)} | {b.n / b.run.wall_s:,.0f} commands/s; "
            f"ledger {b.ledger_bytes / 2**20:,.0f} MB ({b.ledger_bytes / b.n:,.0f} B/command); "
            f"{b.check} |"
        )
    if r.pacing is not None:
        p2 = r.pacing
        rows.append(
            f"| `dispatcher run --rate {p2.rate:g}` | {p2.n:,} commands | {p2.run.wall_s:.2f} "
            f"| {_mb(p2.run.peak_rss_mb)} | first to last arrival {p2.duration_s:.3f} s, "
            f"(N-1)/R = {p2.expected_s:.3f} s: pacing error {p2.error_pct:+.2f}%; busiest "
            f"1-second window {p2.busiest} (limit {p2.rate:g}) |"
        )
    return rows


def _machine_line(m: dict[str, Any]) -> str:
    uvloop = f"uvloop {m['uvloop']}" if m["uvloop"] else "no uvloop"
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, {uvloop}, orjson {m['orjson']}."
    )


def render_markdown(r: Results) -> str:
    """The tables and notes, ready to paste into the README."""
    lines = _contender_rows(r)
    bare = r.bare()
    notes = []
    if r.contenders:
        notes.append(
            "Ratios in brackets are to the bare aiohttp loop. Wall time and CPU include starting "
            "the interpreter and imports; the naive script's wall time is projected from its "
            "per-command time."
        )
    if r.startup_cpu_s:
        shown = ", ".join(f"{name} {s:.2f} s" for name, s in r.startup_cpu_s.items())
        notes.append(f"Start-up CPU (interpreter and imports, no commands): {shown}.")
    d = next((c for c in r.contenders if c.name == "dispatcher"), None)
    if d is not None and bare is not None and r.startup_cpu_s:
        net_d = d.run.cpu_s - r.startup_cpu_s.get(d.name, 0.0)
        net_b = bare.run.cpu_s - r.startup_cpu_s.get(bare.name, 0.0)
        if net_b > 0:
            notes.append(
                f"Net of start-up, dispatcher CPU per command is {net_d / net_b:.2f}x the bare "
                f"loop ({net_d / d.n * 1e6:.0f} µs vs {net_b / bare.n * 1e6:.0f} µs)."
            )
    if r.contenders:
        shown = ", ".join(f"{c.name} {c.server_cpu_s / c.n * 1000:.3f}" for c in r.contenders)
        notes.append(f"Emulator CPU s / 1k commands (the other side of loopback): {shown}.")
    lines += ["", " ".join(notes), "", *_scale_rows(r), ""]
    lines.append(_machine_line(r.machine))
    lines.append(f"The whole suite took {r.suite_s / 60:.1f} minutes. Reproduce: `make bench`.")
    if r.errors:
        lines += ["", "**Failed:**", *(f"- {e.splitlines()[0]}" for e in r.errors)]
    return "\n".join(lines) + "\n"


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
    if r.validate is not None:
        doc["validate"] = {
            "rows": r.validate.rows,
            "dispatcher": _measured(r.validate.dispatcher),
            "dictreader": _measured(r.validate.dictreader),
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
    return doc
