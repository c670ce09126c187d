"""The fleet's compliance, as ``dispatcher verify`` last judged it: devices on target, not yet,
failed and never seen, the values they read (value -> devices), and the first devices not on
target; with the tables a terminal shows of it (verify and report print the same ones).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rich.table import Table
from rich.text import Text

from dispatcher.ledger.store import VerifyResult, VerifyState
from dispatcher.model.command import product_label
from dispatcher.report.render import printable

__all__ = [
    "STATE_LINES",
    "STATE_MEANING",
    "Compliance",
    "compliance_of",
    "compliance_table",
    "compliance_tables",
    "devices_table",
    "versions_table",
]

STATE_LINES: Final = {
    VerifyState.ON_TARGET: "on target",
    VerifyState.NOT_YET: "not yet",
    VerifyState.FAILED: "failed",
    VerifyState.NEVER_SEEN: "never seen",
}
STATE_MEANING: Final = {
    VerifyState.ON_TARGET: "reads a good value",
    VerifyState.NOT_YET: "reads another value",
    VerifyState.FAILED: "a step or its delivery failed",
    VerifyState.NEVER_SEEN: "nothing read, nothing failed",
}
SAMPLE: Final = 20  # devices not on target listed
VERSIONS: Final = 12  # values listed (the rest summed)


@dataclass(frozen=True, slots=True)
class Compliance:
    """The verdicts in figures: devices by state, the values read, the first not on target."""

    devices: int
    by_state: dict[VerifyState, int]  # every state, in STATE_LINES order
    versions: tuple[tuple[str, int], ...]  # value read -> devices, most first
    not_on_target: tuple[VerifyResult, ...]  # the first ``sample``: failed, not yet, never seen
    source: str  # where the values came from: command, datapoints (several: joined by +)

    @property
    def on_target_share(self) -> float:
        """The share of devices on target (0 when there are none)."""
        return self.by_state[VerifyState.ON_TARGET] / self.devices if self.devices else 0.0


def compliance_of(results: Sequence[VerifyResult], sample: int = SAMPLE) -> Compliance | None:
    """The compliance of ``results`` (None when there are none: never verified)."""
    if not results:
        return None
    by_state = dict.fromkeys(STATE_LINES, 0)
    values: Counter[str] = Counter()
    for r in results:
        by_state[r.state] += 1
        if r.value is not None:
            values[r.value] += 1
    order = {VerifyState.FAILED: 0, VerifyState.NOT_YET: 1, VerifyState.NEVER_SEEN: 2}
    missing = sorted(
        (r for r in results if r.state is not VerifyState.ON_TARGET),
        key=lambda r: (order[r.state], r.imei, r.product),
    )
    versions = tuple(sorted(values.items(), key=lambda item: (-item[1], item[0])))
    sources = "+".join(sorted({r.source for r in results}))
    return Compliance(len(results), by_state, versions, tuple(missing[:sample]), sources)


def compliance_table(c: Compliance, title: str = "Compliance") -> Table:
    """Devices by verify state, with their share and what each state means."""
    table = Table(title=Text(printable(title), style="table.title"), title_justify="left")
    table.add_column("verify", style="bold")
    table.add_column("devices", justify="right")
    table.add_column("meaning", style="dim")
    for state, name in STATE_LINES.items():
        n = c.by_state[state]
        share = f" ({n / c.devices:.1%})" if n else ""
        table.add_row(name, f"{n:,}{share}", STATE_MEANING[state])
    table.add_section()
    table.add_row("all", f"{c.devices:,}", f"values from {c.source}")
    return table


def versions_table(c: Compliance, limit: int = VERSIONS) -> Table | None:
    """The values read, by how many devices read each (None: no device read one)."""
    if not c.versions:
        return None
    table = Table(title="Values read", title_justify="left")
    table.add_column("value")
    table.add_column("devices", justify="right")
    for value, n in c.versions[:limit]:
        table.add_row(Text(printable(value)), f"{n:,}")
    rest = c.versions[limit:]
    if rest:
        table.add_row(f"{len(rest):,} other values", f"{sum(n for _, n in rest):,}")
    return table


def devices_table(c: Compliance) -> Table | None:
    """The first devices not on target, with what they read and why (None: every one is)."""
    if not c.not_on_target:
        return None
    missing = c.devices - c.by_state[VerifyState.ON_TARGET]
    shown = len(c.not_on_target)
    title = "Devices not on target" + (
        f" (first {shown:,} of {missing:,})" if shown < missing else ""
    )
    table = Table(title=title, title_justify="left")
    several = any(r.product for r in c.not_on_target)
    table.add_column("imei")
    if several:
        table.add_column("product")
    table.add_column("state", style="bold")
    table.add_column("reads")
    table.add_column("why", style="dim")
    for r in c.not_on_target:
        cells = [r.imei, *([product_label(r.product)] if several else [])]
        cells += [STATE_LINES[r.state], "-" if r.value is None else r.value, r.reason]
        table.add_row(*(Text(printable(cell)) for cell in cells))
    return table


def compliance_tables(c: Compliance) -> list[Table]:
    """The compliance as a terminal shows it: by state, the values read, the devices not on
    target."""
    found = [compliance_table(c), versions_table(c), devices_table(c)]
    return [t for t in found if t is not None]
