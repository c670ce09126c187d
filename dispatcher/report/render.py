"""The summary for people: a two-column table of a ledger's figures, one of its delivery, and
the tables of its compliance (verify's verdicts)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Final

from rich.table import Table
from rich.text import Text

from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.records import DeliveryState, Status
from dispatcher.ledger.verify import VerifyState
from dispatcher.model.command import product_label
from dispatcher.report.compliance import STATE_LINES, STATE_MEANING, VERSIONS, Compliance
from dispatcher.report.summary import Summary
from dispatcher.times import BEIJING

__all__ = [
    "DELIVERY_LINES",
    "DELIVERY_MEANING",
    "STATUS_LINES",
    "compliance_tables",
    "delivery_table",
    "printable",
    "refusal_wording",
    "render_delivery",
    "render_table",
    "status_line",
]

# Characters that end or break a line (C0, C1, Unicode's separators): one space each, so that a
# text stays on its line and a forged "error: ..." line cannot follow it.
_BREAKS: Final = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
# Controls (C0, DEL, C1: ESC starts every ANSI/OSC sequence), format characters (bidi overrides
# and isolates, marks, zero-width ones: Unicode category Cf) and lone surrogates.
_DROPPED: Final = frozenset(("Cc", "Cf", "Cs"))

_RETIRED_LINES: Final = {"removed": "removed from the job", "changed": "replaced by an edit"}
# The delivery states as people read them: still to come, then the outcomes, then the unread.
# A delivery that failed or expired is said so, apart from a send that failed or a command not
# sent before its window passed (STATUS_LINES), which the summary shows a few lines above.
DELIVERY_LINES: Final = {
    DeliveryState.WAITING: "waiting",
    DeliveryState.SENT: "sent",
    DeliveryState.DELIVERED: "delivered",
    DeliveryState.EXPIRED: "delivery expired",
    DeliveryState.FAILED: "delivery failed",
    DeliveryState.CANCELLED: "cancelled",
    DeliveryState.UNREAD: "not read yet",
}
# Where a command stands, as people read it; the send's own failures worded apart from a
# delivery's (DELIVERY_LINES).
STATUS_LINES: Final = {
    Status.PENDING: "pending",
    Status.IN_FLIGHT: "in flight",
    Status.ACCEPTED: "accepted",
    Status.REJECTED: "rejected",
    Status.FAILED: "failed to send",
    Status.IN_DOUBT: "in doubt",
    Status.EXPIRED: "not sent (window passed)",
    Status.RETRIED: "retried",
    Status.SKIPPED: "skipped",
}


def status_line(status: str) -> str:
    """A status (its value) as people read it (STATUS_LINES; any other as it is, spaced)."""
    try:
        return STATUS_LINES[Status(status)]
    except ValueError:
        return status.replace("_", " ")


# errno 1 ("auth failed") is OneNET's answer to a wrong key AND to an IMEI not in the key's
# product (docs/onenet-api.md, errno): other commands of the product accepted mean the key works.
WRONG_PRODUCT: Final = 1


def refusal_wording(errno: int | None, error: str, accepted: int) -> str:
    """What OneNET's refusal ``errno`` (text ``error``) means for one command, told apart by how
    many commands of the same product (the same key) OneNET ``accepted``."""
    if errno == WRONG_PRODUCT:
        if accepted:
            return f"device not in this product (the key works: {accepted:,} accepted)"
        return "key wrong or not this product's"
    return printable(error)


def printable(text: str) -> str:
    """``text`` as it may reach a terminal: every line break or tab one space, every other control
    and format character (ANSI/OSC escapes' ESC, U+202E and the other bidi controls) left out.

    For text from outside (OneNET, devices, job files): the renderer's own styling is added after.
    """
    if text.isprintable():  # the usual case, at C speed
        return text
    return "".join(
        " " if c in _BREAKS else "" if unicodedata.category(c) in _DROPPED else c for c in text
    )


def render_table(summary: Summary) -> Table:
    """The summary as a two-column table, for a terminal."""
    table = Table(title="Ledger summary", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    whole = summary.total if summary.job_total is None else summary.job_total
    table.add_row("commands", f"{whole:,}")
    statuses = {status_line(name): n for name, n in summary.by_status.items()}
    if summary.unregistered:
        statuses["not registered yet"] = summary.unregistered
    for name, n in statuses.items():
        share = f" ({n / whole:.1%})" if whole and n else ""
        table.add_row(f"  {name}", f"{n:,}{share}")
    # Texts from OneNET, the devices and the job go in as plain Text: a "[/b]" in them is shown,
    # never markup, and an escape sequence or a bidi control is left out.
    several = bool(set(summary.by_product) - {""})
    accepted = summary.by_status.get(Status.ACCEPTED.value, 0)
    for errno, n in summary.by_errno.items():
        label = f"  errno {errno} ({summary.errno_text[errno]})"
        if errno == WRONG_PRODUCT and not several:  # one key: its accepted commands tell which
            label += f": {refusal_wording(errno, '', accepted)}"
        table.add_row(_plain(label), f"{n:,}")
    for why, n in summary.retired.items():
        if n:
            table.add_row(_plain(_RETIRED_LINES.get(why, f"retired ({why})")), f"{n:,}")
    if set(summary.by_product) - {""}:  # a job of several products: each one's share
        for product, counts in summary.by_product.items():
            parts = ", ".join(f"{n:,} {s.replace('_', ' ')}" for s, n in counts.items())
            table.add_row(_plain(product_label(product)), _plain(parts))
    table.add_row("HTTP attempts", f"{summary.attempts:,} ({summary.retries:,} retries)")
    table.add_row("reconciled", f"{summary.reconciled:,}")
    if summary.throughput is not None:
        table.add_row("throughput", f"{summary.throughput:,.1f} commands/s")
    if summary.p50_ms is not None:
        table.add_row(
            "latency p50 / p95 / p99",
            " / ".join(_ms(v) for v in (summary.p50_ms, summary.p95_ms, summary.p99_ms)) + " ms",
        )
    if summary.first_at is not None:
        table.add_row("first attempt", _iso(summary.first_at))
        table.add_row("last attempt", _iso(summary.last_at))
    table.add_row("runs", f"{summary.runs:,}")
    if summary.stop_reason:
        table.add_row("last run stopped", _plain(summary.stop_reason))
    return table


# What each state means, for a person who has not read OneNET's documentation.
DELIVERY_MEANING: Final = {
    DeliveryState.WAITING: "cached, the device not woken yet",
    DeliveryState.SENT: "sent to the device, no answer yet",
    DeliveryState.DELIVERED: "the device ran it",
    DeliveryState.EXPIRED: "window closed, device never woke",
    DeliveryState.FAILED: "the device answered an error",
    DeliveryState.CANCELLED: "cancelled while waiting",
    DeliveryState.UNREAD: "not read from OneNET yet",
}


def render_delivery(summary: Summary) -> Table | None:
    """Devices and commands by delivery state once any command was accepted (else None)."""
    d = summary.delivery
    if d is None or not sum(d.commands.values()):
        return None
    return delivery_table(d, "Delivery of the accepted commands")


def delivery_table(d: DeliveryBreakdown, title: str, *, meaning: bool = False) -> Table:
    """Devices (with their share) and commands by delivery state; a device counts under its
    least happy command (ledger/delivery.py); ``meaning`` adds what each state means.

    ``title`` is shown as written: a job's path (``jobs[v2]/``) is text, never markup (and
    :func:`printable`)."""
    devices = sum(d.devices.values())
    table = Table(title=_plain(title, "table.title"), title_justify="left")
    table.add_column("delivery", style="bold")
    table.add_column("devices", justify="right")
    table.add_column("commands", justify="right")
    if meaning:
        table.add_column("meaning", style="dim")
    for state, name in DELIVERY_LINES.items():
        n = d.devices[state]
        if state is DeliveryState.UNREAD and not d.commands[state]:
            continue
        share = f" ({n / devices:.1%})" if n else ""
        cells = [name, f"{n:,}{share}", f"{d.commands[state]:,}"]
        table.add_row(*cells, *([DELIVERY_MEANING[state]] if meaning else []))
    table.add_section()
    table.add_row(
        "all", f"{devices:,}", f"{sum(d.commands.values()):,}", *([""] if meaning else [])
    )
    if d.not_held:
        table.add_row(
            "not accepted",
            f"{d.devices_not_held:,}",
            f"{d.not_held:,}",
            *(["rejected, failed, in doubt or not sent"] if meaning else []),
        )
    return table


def compliance_table(c: Compliance, title: str = "Compliance") -> Table:
    """Devices by verify state, with their share and what each state means."""
    table = Table(title=_plain(title, "table.title"), title_justify="left")
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


def _plain(text: str, style: str = "") -> Text:
    """Text from outside as a table shows it: never markup, :func:`printable`."""
    return Text(printable(text), style=style)


def _iso(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 in Beijing time (OneNET's zone), to the second."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, BEIJING).isoformat(timespec="seconds")


def _ms(value: float | None) -> str:
    """Milliseconds with the precision that matters: 0.42, 7.3, 118."""
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 1 else f"{value:,.1f}" if value < 10 else f"{value:,.0f}"
