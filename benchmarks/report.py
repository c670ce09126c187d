"""The results as Markdown tables (for the docs), and the machine they ran on; report_json.py
holds the same figures as JSON."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from benchmarks.suite import (
    CONCURRENCY,
    CPU_TARGET_X,
    RSS_TARGET_MB,
    VALIDATE_TARGET_X,
    BigRun,
    Contender,
    Pacing,
    Sizes,
    Validate,
)
from benchmarks.throttled import (
    FOLLOW_TARGET_S,
    MODES,
    THROTTLED_TARGET_PCT,
    TOLERANCE,
    USED_TARGET_PCT,
    Follow,
    StatusCalls,
    ThrottledRun,
)

__all__ = ["Results", "Target", "machine", "render_markdown", "targets"]


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
    validate: list[Validate] = field(default_factory=list)  # one per size, in order
    big_run: BigRun | None = None
    pacing: Pacing | None = None
    throttled: list[ThrottledRun] = field(default_factory=list)
    follow: Follow | None = None
    errors: list[str] = field(default_factory=list)
    suite_s: float = 0.0

    @property
    def ok(self) -> bool:
        """No measurement failed and every emulator check passed (against a throttle: no
        duplicates, and the client's count of accepted commands is the emulator's; the pacing
        targets are figures, not checks)."""
        checks = [c.check for c in self.contenders]
        checks += [m.check for m in (self.big_run, self.pacing) if m is not None]
        consistent = [t.consistent for t in self.throttled]
        if self.follow is not None:
            consistent.append(self.follow.consistent)
        return not self.errors and all(c.ok for c in checks) and all(consistent)

    def bare(self) -> Contender | None:
        """The yardstick, if it ran."""
        return next((c for c in self.contenders if c.name.startswith("bare")), None)


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
    """The client's CPU, validate's CPU and the peak RSS of validate and the large run."""
    found = []
    d = next((c for c in r.contenders if c.name == "dispatcher"), None)
    bare = r.bare()
    if d is not None and bare is not None and bare.cpu_per_1k > 0:
        found.append(
            Target(
                f"client CPU per command ≤ {CPU_TARGET_X:g}x the bare aiohttp loop "
                f"({d.n:,} commands, concurrency {CONCURRENCY}, no limit)",
                d.cpu_per_1k / bare.cpu_per_1k,
                CPU_TARGET_X,
                "x",
            )
        )
    for v in r.validate:
        found.append(
            Target(
                f"`validate` CPU ≤ {VALIDATE_TARGET_X:g}x a bare csv.DictReader pass, "
                f"{v.rows:,} rows ({v.columns} columns)",
                v.cpu_x,
                VALIDATE_TARGET_X,
                "x",
            )
        )
    rss = [(f"`validate` {v.rows:,} rows", v.dispatcher.peak_rss_mb) for v in r.validate]
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
    rows = [
        "| measurement | size | wall s | CPU s | peak RSS MB | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for v in r.validate:
        d, p, size = v.dispatcher, v.dictreader, f"{v.rows:,} rows, {v.columns} columns"
        rows.append(
            f"| `dispatcher validate` | {size} | {d.wall_s:.2f} ({v.wall_x:.2f}x) "
            f"| {d.cpu_s:.2f} ({v.cpu_x:.2f}x) "
            f"| {_mb(d.peak_rss_mb)} ({d.peak_rss_mb / p.peak_rss_mb:.2f}x) | valid |"
        )
        rows.append(
            f"| bare `csv.DictReader` pass | {size} | {p.wall_s:.2f} | {p.cpu_s:.2f} "
            f"| {_mb(p.peak_rss_mb)} | {int(p.stdout.strip() or 0):,} rows |"
        )
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


def _client_name(t: ThrottledRun) -> str:
    if t.client == "cubic":
        return "AWS SDK adaptive retry (CUBIC), unlimited"
    if t.rate == 0:
        return "dispatcher, unlimited"
    return f"dispatcher, rate {t.rate:,g}/s ({t.rate / t.limit:g}R)"


def _status_note(s: StatusCalls) -> str:
    return (
        f"`dispatcher status` of the first run's ledger: {s.devices:,} devices, "
        f"{s.history:,} history + {s.detail:,} detail calls, {s.per_device:.2f} calls per device "
        f"({s.run.wall_s:.1f} s, exit {s.run.returncode})."
    )


def _throttled_rows(r: Results) -> list[str]:
    """The table against a throttling server, its notes, and the changing limit."""
    if not r.throttled and r.follow is None:
        return []
    limit = r.sizes.throttle_rps
    lines = [
        f"**Pacing against a server that admits R/s** (R = {limit:g}/s: the emulator throttles "
        f"every POST past R in any sliding second; {r.sizes.throttle_n:,} commands a run, "
        "concurrency 64, `adaptive: true`)",
        "",
    ]
    if r.throttled:
        lines += [
            "| client, configured rate | throttle answer | wall s "
            f"| share of R used (≥ {USED_TARGET_PCT:g}%) "
            f"| share of requests throttled (≤ {THROTTLED_TARGET_PCT:g}%) "
            "| commands failed (0) | exit code | targets |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for t in r.throttled:
            misses = t.misses()
            lines.append(
                f"| {_client_name(t)} | {MODES.get(t.mode, t.mode)} | {t.run.wall_s:.1f} "
                f"| {t.used_pct:.1f}% | {t.throttled_pct:.1f}% ({t.throttled:,} of {t.posts:,}) "
                f"| {t.failed:,} | {t.run.returncode} | {'; '.join(misses) or 'met'} |"
            )
        notes = [
            "Share of R used: commands accepted / (R x the time from the first to the last "
            "arrival at the server); share throttled: the emulator's throttled answers / POSTs; "
            "failed: commands the ledger (dispatcher) or the client's own count (CUBIC) does not "
            "have accepted. The CUBIC contender is `benchmarks/cubic.py`, botocore's adaptive "
            "retry mode ported (token bucket at the lower of CUBIC's rate, beta 0.7, C 0.4, and "
            "twice the measured rate; standard retries with their quota), 64 workers, 6 attempts."
        ]
        status = next((t.status for t in r.throttled if t.status is not None), None)
        if status is not None:
            notes.append(_status_note(status))
        lines += ["", " ".join(notes), ""]
    f = r.follow
    if f is not None:
        lines += [
            f"The changing limit: `dispatcher run` of {f.n:,} commands at rate {f.rate:g}/s "
            f"(2R), {MODES.get(f.mode, f.mode)}, while the server's limit goes {f.limit:g} -> "
            f"{f.limit / 2:g} -> {f.limit:g}/s every {f.step_s:g} s (`PUT /_emulator/faults`). "
            f"Admissions counted in whole seconds from each change (replayed from the arrival "
            f"times with the emulator's window rule); follow time: until the first second from "
            f"which every second admits within {TOLERANCE:.0%} of the new limit, up to the next "
            f"change ({f.step_s:g} s); first within: the first such second.",
            "",
            f"| the server's limit | at | follow time (≤ {FOLLOW_TARGET_S:g} s) "
            f"| first within {TOLERANCE:.0%} | target | admitted in each second after it |",
            "|---|---:|---:|---:|---|---|",
        ]
        for c in f.changes:
            change = (
                f"start: {c.after:g}/s" if c.before is None else f"{c.before:g} -> {c.after:g}/s"
            )
            settled = "not within" if c.settled_s is None else f"{c.settled_s} s"
            first = "never" if c.first_s is None else f"{c.first_s} s"
            if c.met:
                verdict = "met"
            elif c.settled_s is None:
                verdict = f"missed (not settled in {len(c.per_s)} s)"
            else:
                verdict = f"missed by {c.settled_s - FOLLOW_TARGET_S:g} s"
            counts = " ".join(map(str, c.per_s))
            lines.append(
                f"| {change} | {c.at_s:.1f} s | {settled} | {first} | {verdict} | {counts} |"
            )
        lines += [
            "",
            f"That run: {f.run.wall_s:.1f} s, {f.throttled_pct:.1f}% of requests throttled "
            f"({f.throttled:,} of {f.posts:,}), {f.failed:,} failed, exit {f.run.returncode}; "
            f"{f.replayed:,} admissions replayed (the emulator accepted {f.accepted:,}).",
            "",
        ]
    return lines


def _machine_line(m: dict[str, Any]) -> str:
    uvloop = f"uvloop {m['uvloop']}" if m["uvloop"] else "no uvloop"
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, {uvloop}, orjson {m['orjson']}."
    )


def render_markdown(r: Results) -> str:
    """The tables and notes, ready to paste into the README."""
    lines = _contender_rows(r) if r.contenders else []
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
    if r.contenders:
        lines += ["", " ".join(notes), ""]
    lines += _target_rows(r)
    scale = _scale_rows(r)
    if len(scale) > 2:
        lines += [*scale, ""]
    lines += _throttled_rows(r)
    lines.append(_machine_line(r.machine))
    lines.append(f"The whole suite took {r.suite_s / 60:.1f} minutes. Reproduce: `make bench`.")
    if r.errors:
        lines += ["", "**Failed:**", *(f"- {e.splitlines()[0]}" for e in r.errors)]
    return "\n".join(lines) + "\n"
