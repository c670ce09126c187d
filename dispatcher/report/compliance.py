"""The fleet's compliance, as ``dispatcher verify`` last judged it: devices on target, not yet,
failed and never seen, the values they read (value -> devices), and the first devices not on
target (render.py's ``compliance_tables`` shows them: verify and report print the same ones).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from dispatcher.ledger.store import VerifyResult, VerifyState

__all__ = [
    "STATE_LINES",
    "STATE_MEANING",
    "Compliance",
    "compliance_of",
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
