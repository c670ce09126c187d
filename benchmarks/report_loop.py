"""The closed loop's costs (benchmarks/loop.py) as a Markdown table and as JSON: OneNET calls
counted by the emulator, per 1,000 devices found, per device per step, per device."""

from __future__ import annotations

from typing import Any

from benchmarks.loop import PAGE, ListCount, LoopResults, StepsCount, VerifyCount

__all__ = ["loop_json", "loop_rows"]

_KINDS = {  # the emulator's names of calls, as the docs say them
    "devices": "device-list pages",
    "history": "history pages",
    "detail": "details",
    "getbyimei": "getbyimei",
    "datapoints": "datapoints",
}


def _list_row(c: ListCount) -> str:
    return (
        f"| {c.what} | {c.found:,} of {c.fleet:,} devices | {c.pages:,} device-list pages "
        f"(fewest that hold them: {c.least:,}) | **{c.per_1k:.1f}** per 1,000 devices found |"
    )


def _steps_row(s: StepsCount) -> str:
    return (
        f"| `dispatcher run`, {s.steps} steps ({s.gated} gated on delivery), devices waking "
        f"every {s.wake_s:g} s, `delivery_poll_s: {s.poll_s:g}` | {s.devices:,} devices, "
        f"{s.accepted:,} commands; at the end {s.updated:,} devices on 2.4.1, "
        f"{s.out_of_order} updated before their write | {s.reads:,} status reads "
        f"({s.history:,} history pages, {s.detail:,} details) | **{s.per_device_step:.2f}** "
        f"per device per step |"
    )


def _shown_calls(calls: dict[str, int]) -> str:
    shown = [f"{n:,} {_KINDS.get(kind, kind)}" for kind, n in calls.items()]
    return ", ".join(shown) or "none"


def _verify_row(v: VerifyCount) -> str:
    verdicts = ", ".join(f"{n:,} {state.replace('_', ' ')}" for state, n in v.verdicts.items())
    return (
        f"| `dispatcher verify --watch`, `source: {v.source}` | {v.devices:,} devices "
        f"({verdicts or 'no verdicts'}) | {v.total:,} calls ({_shown_calls(dict(v.calls))}) "
        f"| **{v.per_device:.3f}** per device |"
    )


def loop_rows(loop: LoopResults | None) -> list[str]:
    """The table of the closed loop's calls and its note (nothing when it did not run)."""
    if loop is None or not (loop.lists or loop.steps or loop.verify):
        return []
    rows = [
        "| the closed loop | size | OneNET calls (counted by the emulator) | ratio |",
        "|---|---|---|---|",
        *(_list_row(c) for c in loop.lists),
    ]
    if loop.steps is not None:
        rows.append(_steps_row(loop.steps))
    rows += [_verify_row(v) for v in loop.verify or []]
    note = (
        f"Counts, not times: exact for a given fleet and wake schedule. A device-list page "
        f"holds {PAGE} devices. Status reads of the gated job include those of its last step "
        "(the read of 3/0/3) while the run goes on; verify runs after the run, on its ledger, "
        "until every device is judged (`--watch`). A device costs a history page per status "
        "round while its step is on its way (a round every `delivery_poll_s` at most) and a "
        "detail once it is final: the reads per device per step grow with the devices' wake "
        "period over the poll."
    )
    return [*rows, "", note, ""]


def loop_json(loop: LoopResults) -> dict[str, Any]:
    """Every count and ratio of the closed loop, for tools."""
    doc: dict[str, Any] = {
        "ok": loop.ok,
        "lists": [
            {
                "what": c.what,
                "fleet": c.fleet,
                "expected": c.expected,
                "found": c.found,
                "pages": c.pages,
                "fewest_pages": c.least,
                "pages_per_1k_devices": c.per_1k,
            }
            for c in loop.lists
        ],
    }
    if loop.steps is not None:
        s = loop.steps
        doc["steps"] = {
            "devices": s.devices,
            "steps": s.steps,
            "gated": s.gated,
            "wake_every_s": s.wake_s,
            "delivery_poll_s": s.poll_s,
            "accepted": s.accepted,
            "delivered": s.delivered,
            "updated": s.updated,
            "out_of_order": s.out_of_order,
            "history": s.history,
            "detail": s.detail,
            "status_reads_per_device_per_step": s.per_device_step,
            "wall_s": s.run.wall_s,
        }
    if loop.verify is not None:
        doc["verify"] = [
            {
                "source": v.source,
                "devices": v.devices,
                "calls": dict(v.calls),
                "calls_per_device": v.per_device,
                "verdicts": dict(v.verdicts),
                "sent": v.sent,
                "exit_code": v.run.returncode,
            }
            for v in loop.verify
        ]
    return doc
