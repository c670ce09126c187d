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
    "getbyimei": "getbyimei look-ups",
    "datapoints": "datapoints calls",
}


def _list_row(c: ListCount) -> str:
    pages = "page" if c.pages == 1 else "pages"
    return (
        f"| {c.what} | {c.found:,} of {c.fleet:,} devices | {c.pages:,} device-list {pages} "
        f"(fewest that hold them: {c.least:,}) | **{c.per_1k:.1f}** per 1,000 devices found |"
    )


def _steps_row(s: StepsCount) -> str:
    return (
        f"| `dispatcher run`, {s.steps} steps ({s.gated} gated on delivery), devices waking "
        f"every {s.wake_s:g} s, `delivery_poll_s: {s.poll_s:g}` | {s.devices:,} devices, "
        f"{s.accepted:,} commands; at the end {s.updated:,} devices on 2.4.1, "
        f"{s.out_of_order} updated before their write | {s.reads:,} status reads "
        f"({s.history:,} history pages, {s.detail:,} details) | **{s.per_device_step:.2f}** "
        f"per device per step ({s.per_device_gated:.2f} per gated step) |"
    )


def _shown_calls(calls: dict[str, int]) -> str:
    shown = []
    for kind, n in calls.items():
        name = _KINDS.get(kind, kind)
        shown.append(f"{n:,} {name[:-1] if n == 1 and name.endswith('s') else name}")
    return ", ".join(shown) or "none"


def _verify_row(v: VerifyCount) -> str:
    verdicts = ", ".join(f"{n:,} {state.replace('_', ' ')}" for state, n in v.verdicts.items())
    return (
        f"| `dispatcher verify --watch`, `source: {v.source}`, a job of `{v.targets}` "
        f"| {v.devices:,} devices "
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
        f"Calls counted by the emulator, not times. A device-list page holds {PAGE} devices: "
        "the list counts are exact for a fleet. The run ends once its last step (the read of "
        "3/0/3) is accepted, so its status reads are those of the 2 gated steps: a history page "
        "per device per status round while its step is on its way (a round every "
        "`delivery_poll_s` at most) and a detail once it is final; they follow the devices' "
        "wake period over the poll, and move a little from run to run as the wakes fall "
        "against the rounds. Verify runs after the run, on its ledger, until every device is "
        "judged (`--watch`, its rounds every `delivery_poll_s`); each verify also makes one "
        "probe call (a history page) first."
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
            "status_reads_per_device_per_gated_step": s.per_device_gated,
            "wall_s": s.run.wall_s,
        }
    if loop.verify is not None:
        doc["verify"] = [
            {
                "source": v.source,
                "targets": v.targets,
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
