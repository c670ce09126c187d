"""The results as Markdown tables (for the docs), and the machine they ran on; report_json.py
holds the same figures as JSON."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from benchmarks.ledgers import PG_CPU_TARGET_X, LedgerCompare
from benchmarks.loop import LoopResults
from benchmarks.records import (
    CONCURRENCY,
    CPU_TARGET_X,
    RSS_TARGET_MB,
    SHAPES,
    STEPS_TARGET_X,
    VALIDATE_TARGET_X,
    BigRun,
    Contender,
    Pacing,
    Sizes,
    StepsRun,
    Validate,
)
from benchmarks.report_ledgers import ledger_rows
from benchmarks.report_loop import loop_rows
from benchmarks.report_throttled import throttled_rows
from benchmarks.throttled import Follow, ThrottledRun

__all__ = ["BARE", "Results", "Target", "machine", "render_markdown", "targets"]

BARE = "bare aiohttp loop"  # the yardstick contender's name


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
    contenders: list[Contender] = field(default_factory=list)  # of each shape, in order
    startup_cpu_s: dict[str, float] = field(default_factory=dict)
    validate: list[Validate] = field(default_factory=list)  # one per size and shape, in order
    steps: StepsRun | None = None
    big_run: BigRun | None = None
    pacing: Pacing | None = None
    throttled: list[ThrottledRun] = field(default_factory=list)
    follow: Follow | None = None
    loop: LoopResults | None = None  # the closed loop's calls
    ledgers: LedgerCompare | None = None  # SQLite and PostgreSQL side by side
    errors: list[str] = field(default_factory=list)
    suite_s: float = 0.0

    @property
    def ok(self) -> bool:
        """No measurement failed and every emulator check passed (against a throttle: no
        duplicates, and the client's count of accepted commands is the emulator's; the pacing
        targets are figures, not checks)."""
        checks = [c.check for c in self.contenders]
        checks += [m.check for m in (self.big_run, self.pacing) if m is not None]
        if self.steps is not None:
            checks += [self.steps.with_check, self.steps.without_check]
        consistent = [t.consistent for t in self.throttled]
        if self.follow is not None:
            consistent.append(self.follow.consistent)
        if self.loop is not None:
            consistent.append(self.loop.ok)
        if self.ledgers is not None:
            consistent.append(self.ledgers.ok)
        return not self.errors and all(c.ok for c in checks) and all(consistent)

    def contender(self, name: str, shape: str = "long") -> Contender | None:
        """The contender of that name on the job of ``shape``, if it ran."""
        found = (c for c in self.contenders if c.name == name and c.shape == shape)
        return next(found, None)

    def bare(self, shape: str = "long") -> Contender | None:
        """The yardstick on the job of ``shape``, if it ran."""
        return self.contender(BARE, shape)

    def shapes(self) -> list[str]:
        """The job shapes the contenders ran on, in order."""
        return list(dict.fromkeys(c.shape for c in self.contenders))


def _x(value: float, base: float | None) -> str:
    return f" ({value / base:.2f}x)" if base else ""


def _mb(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Target:
    """One of the project's targets against what was measured: a figure, not a check."""

    name: str
    measured: float
    limit: float
    unit: str  # "x" (a ratio) or "MB"
    below: bool = False  # measured < limit; otherwise measured <= limit

    @property
    def met(self) -> bool:
        """Within the limit."""
        return self.measured < self.limit if self.below else self.measured <= self.limit

    def _shown(self, value: float) -> str:
        return f"{value:.2f}x" if self.unit == "x" else f"{_mb(value)} MB"

    @property
    def shown(self) -> str:
        """The measured figure, as the table prints it."""
        return self._shown(self.measured)

    @property
    def verdict(self) -> str:
        """Met, or not met and by how much the figure is over the limit."""
        return "met" if self.met else f"not met ({self._shown(self.measured - self.limit)} over)"


def targets(r: Results) -> list[Target]:
    """The client's CPU and validate's CPU on each job shape, a job of steps' CPU, and the peak
    RSS of validate and the large run."""
    found = []
    for shape in r.shapes():
        d, bare = r.contender("dispatcher", shape), r.bare(shape)
        if d is not None and bare is not None and bare.cpu_per_1k > 0:
            found.append(
                Target(
                    f"client CPU per command ≤ {CPU_TARGET_X:g}x the bare aiohttp loop, "
                    f"{SHAPES[shape]} ({d.n:,} commands, concurrency {CONCURRENCY}, no limit)",
                    d.cpu_per_1k / bare.cpu_per_1k,
                    CPU_TARGET_X,
                    "x",
                )
            )
    for v in r.validate:
        found.append(
            Target(
                f"`validate` CPU ≤ {VALIDATE_TARGET_X:g}x a bare csv.DictReader pass, "
                f"{v.rows:,} rows ({v.columns} columns, {SHAPES[v.shape]})",
                v.cpu_x,
                VALIDATE_TARGET_X,
                "x",
            )
        )
    lc = r.ledgers
    if lc is not None and lc.measured:
        found.append(
            Target(
                f"client CPU per command with a PostgreSQL ledger ≤ {PG_CPU_TARGET_X:g}x with a "
                f"SQLite ledger ({lc.n:,} commands, median of {lc.rounds} paired rounds)",
                lc.cpu_x,
                PG_CPU_TARGET_X,
                "x",
            )
        )
    st = r.steps
    if st is not None:
        found.append(
            Target(
                f"`run` CPU of a job of {st.steps:,} steps x {st.devices:,} devices "
                f"≤ {STEPS_TARGET_X:g}x the same {st.commands:,} commands without steps",
                st.cpu_x,
                STEPS_TARGET_X,
                "x",
            )
        )
    rss = [
        (f"`validate` {v.rows:,} rows, {SHAPES[v.shape]}", v.dispatcher.peak_rss_mb)
        for v in r.validate
    ]
    if r.big_run is not None:
        rss.append((f"`run` {r.big_run.n:,} commands", r.big_run.run.peak_rss_mb))
    for what, mb in rss:
        found.append(
            Target(f"peak RSS < {RSS_TARGET_MB:g} MB, {what}", mb, RSS_TARGET_MB, "MB", below=True)
        )
    return found


def _target_rows(r: Results) -> list[str]:
    measured = targets(r)
    if not measured:
        return []
    rows = ["**Targets**", "", "| target | measured | verdict |", "|---|---:|---|"]
    rows += [f"| {t.name} | {t.shown} | {t.verdict} |" for t in measured]
    return [*rows, ""]


def _contender_rows(r: Results) -> list[str]:
    rows = [
        "| contender | job | commands | wall s | commands/s | client CPU s / 1k commands "
        "| peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in r.contenders:
        bare = r.bare(c.shape)
        b = bare if bare is not None and c is not bare else None
        commands = f"{c.n:,}" if c.n == c.scale_to else f"{c.n:,}, scaled to {c.scale_to:,}"
        rows.append(
            f"| {c.name} | {SHAPES[c.shape]} | {commands} "
            f"| {c.wall_s:,.2f}{_x(c.wall_s, b.wall_s if b else None)} "
            f"| {c.per_s:,.0f}{_x(c.per_s, b.per_s if b else None)} "
            f"| {c.cpu_per_1k:.3f}{_x(c.cpu_per_1k, b.cpu_per_1k if b else None)} "
            f"| {_mb(c.run.peak_rss_mb)}{_x(c.run.peak_rss_mb, b.run.peak_rss_mb if b else None)} |"
        )
    return rows


def _scale_rows(r: Results) -> list[str]:
    rows = [
        "| measurement | size | wall s | CPU s | peak RSS MB | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for v in r.validate:
        d, p = v.dispatcher, v.dictreader
        size = f"{v.rows:,} rows, {v.columns} columns, {SHAPES[v.shape]}"
        rows.append(
            f"| `dispatcher validate` | {size} | {d.wall_s:.2f} ({v.wall_x:.2f}x) "
            f"| {d.cpu_s:.2f} ({v.cpu_x:.2f}x) "
            f"| {_mb(d.peak_rss_mb)} ({d.peak_rss_mb / p.peak_rss_mb:.2f}x) | valid |"
        )
        rows.append(
            f"| bare `csv.DictReader` pass | {size} | {p.wall_s:.2f} | {p.cpu_s:.2f} "
            f"| {_mb(p.peak_rss_mb)} | {int(p.stdout.strip() or 0):,} rows |"
        )
    rows += _steps_rows(r.steps)
    if r.big_run is not None:
        b = r.big_run
        rows.append(
            f"| `dispatcher run`, no rate limit | {b.n:,} commands | {b.run.wall_s:,.1f} "
            f"| {b.run.cpu_s:,.1f} "
            f"| {_mb(b.run.peak_rss_mb)} | {b.n / b.run.wall_s:,.0f} commands/s; "
            f"ledger {b.ledger_bytes / 2**20:,.0f} MB ({b.ledger_bytes / b.n:,.0f} B/command); "
            f"{b.check} |"
        )
    if r.pacing is not None:
        p2 = r.pacing
        rows.append(
            f"| `dispatcher run --rate {p2.rate:g}` | {p2.n:,} commands | {p2.run.wall_s:.2f} "
            f"| {p2.run.cpu_s:.2f} | {_mb(p2.run.peak_rss_mb)} "
            f"| first to last arrival {p2.duration_s:.3f} s, "
            f"(N-1)/R = {p2.expected_s:.3f} s: pacing error {p2.error_pct:+.2f}%; busiest "
            f"1-second window {p2.busiest} (limit {p2.rate:g}) |"
        )
    return rows


def _steps_rows(st: StepsRun | None) -> list[str]:
    """The job of steps and the same commands without, in the scale table."""
    if st is None:
        return []
    w, p = st.with_steps, st.without
    return [
        f"| `dispatcher run`, a job of steps | {st.steps:,} steps x {st.devices:,} devices "
        f"| {w.wall_s:.2f} ({w.wall_s / p.wall_s:.2f}x) | {w.cpu_s:.2f} ({st.cpu_x:.2f}x) "
        f"| {_mb(w.peak_rss_mb)} | {st.with_check} |",
        f"| `dispatcher run`, the same commands without steps | {st.commands:,} commands "
        f"| {p.wall_s:.2f} | {p.cpu_s:.2f} | {_mb(p.peak_rss_mb)} | {st.without_check} |",
    ]


def _machine_line(m: dict[str, Any]) -> str:
    uvloop = f"uvloop {m['uvloop']}" if m["uvloop"] else "no uvloop"
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, {uvloop}, orjson {m['orjson']}."
    )


def _notes(r: Results) -> list[str]:
    """The notes under the contenders' table: what the ratios are, start-up, the emulator."""
    notes = [
        "Ratios in brackets are to the bare aiohttp loop on the same job. Wall time and CPU "
        "include starting the interpreter and imports; the naive script's wall time is "
        "projected from its per-command time. Job shapes: long args (~80 characters) with "
        "relative times (+10m, +2d), and short args (a few characters) with absolute times "
        "(`YYYY-MM-DD HH:MM:SS`)."
    ]
    if r.startup_cpu_s:
        shown = ", ".join(f"{name} {s:.2f} s" for name, s in r.startup_cpu_s.items())
        notes.append(f"Start-up CPU (interpreter and imports, no commands): {shown}.")
        net = []
        for shape in r.shapes():
            d, bare = r.contender("dispatcher", shape), r.bare(shape)
            if d is None or bare is None:
                continue
            net_d = d.run.cpu_s - r.startup_cpu_s.get(d.name, 0.0)
            net_b = bare.run.cpu_s - r.startup_cpu_s.get(bare.name, 0.0)
            if net_b > 0:
                net.append(
                    f"{net_d / net_b:.2f}x the bare loop on {SHAPES[shape]} "
                    f"({net_d / d.n * 1e6:.0f} µs vs {net_b / bare.n * 1e6:.0f} µs)"
                )
        if net:
            notes.append(f"Net of start-up, dispatcher CPU per command is {'; '.join(net)}.")
    shown = ", ".join(
        f"{c.name} ({c.shape}) {c.server_cpu_s / c.n * 1000:.3f}" for c in r.contenders
    )
    notes.append(f"Emulator CPU s / 1k commands (the other side of loopback): {shown}.")
    return notes


def render_markdown(r: Results) -> str:
    """The tables and notes, ready to paste into the README."""
    lines = []
    if r.contenders:
        lines += [*_contender_rows(r), "", " ".join(_notes(r)), ""]
    lines += _target_rows(r)
    lines += ledger_rows(r.ledgers)
    scale = _scale_rows(r)
    if len(scale) > 2:
        lines += [*scale, ""]
    lines += throttled_rows(r.throttled, r.follow, r.sizes)
    lines += loop_rows(r.loop)
    lines.append(_machine_line(r.machine))
    lines.append(f"The whole suite took {r.suite_s / 60:.1f} minutes. Reproduce: `make bench`.")
    if r.errors:
        lines += ["", "**Failed:**", *(f"- {e.splitlines()[0]}" for e in r.errors)]
    return "\n".join(lines) + "\n"
