"""What ``run`` asks and ``dispatcher devices`` shows of the devices a query finds: the question
before a run sends to devices it is about to freeze (off a terminal: refused without ``--yes``),
and the table of a device list."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from dispatcher.app.retrying import n_of
from dispatcher.app.targeting import JobTargets
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_INTERRUPTED
from dispatcher.errors import Refused
from dispatcher.onenet.devices import Device

__all__ = ["confirmed_targets", "device_table"]

_SHOWN = 50  # devices listed on a terminal; the rest counted


def confirmed_targets(targets: JobTargets) -> bool:
    """A yes on the terminal to sending to (and freezing) the devices a query found; off a
    terminal, Refused (exit 2): ``--yes`` says yes there."""
    n = len(targets.to_freeze)
    what = f"{n_of(n, 'device')} of {targets.label} ({targets.filters})"
    if not sys.stdin.isatty():
        raise Refused(
            f"targets_query: {what} to send to, and not on a terminal to ask: confirm with"
            " --yes; nothing was sent"
        )
    try:
        if click.confirm(f"send to {what}, and freeze them as the job's devices?", default=False):
            return True
    except click.Abort:  # Ctrl-C or Ctrl-D at the question
        console.note("nothing was sent")
        sys.exit(EXIT_INTERRUPTED)
    return False


def device_table(devices: Sequence[Device], *, shown: int = _SHOWN) -> list[str]:
    """The lines of a device list for people: a header, up to ``shown`` devices, the rest
    counted."""
    lines = [f"{'imei':<15}  {'id':<12}  {'online':<7}  {'created':<19}  title (tags)"]
    for d in devices[:shown]:
        online = "?" if d.online is None else "yes" if d.online else "no"
        tags = f" ({', '.join(d.tags)})" if d.tags else ""
        lines.append(f"{d.imei:<15}  {d.id:<12}  {online:<7}  {d.create_time:<19}  {d.title}{tags}")
    if len(devices) > shown:
        lines.append(f"... and {len(devices) - shown:,} more (-o FILE writes them all)")
    return lines
