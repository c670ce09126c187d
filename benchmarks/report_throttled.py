"""The runs against a throttling server as Markdown: a row per client and rate, the notes, and
the changing limit's table."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.records import Sizes
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

__all__ = ["throttled_rows"]


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


def throttled_rows(
    throttled: Sequence[ThrottledRun], follow: Follow | None, sizes: Sizes
) -> list[str]:
    """The table against a throttling server, its notes, and the changing limit."""
    if not throttled and follow is None:
        return []
    limit = sizes.throttle_rps
    lines = [
        f"**Pacing against a server that admits R/s** (R = {limit:g}/s: the emulator throttles "
        f"every POST past R in any sliding second; {sizes.throttle_n:,} commands a run, "
        "concurrency 64, `adaptive: true`)",
        "",
    ]
    if throttled:
        lines += [
            "| client, configured rate | throttle answer | wall s "
            f"| share of R used (≥ {USED_TARGET_PCT:g}%) "
            f"| share of requests throttled (≤ {THROTTLED_TARGET_PCT:g}%) "
            "| commands failed (0) | exit code | targets |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for t in throttled:
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
        status = next((t.status for t in throttled if t.status is not None), None)
        if status is not None:
            notes.append(_status_note(status))
        lines += ["", " ".join(notes), ""]
    f = follow
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
