"""``dispatcher objects``: what LwM2M object and resource ids mean, from the registry table."""

from __future__ import annotations

import sys

import click
from rich.table import Table
from rich.text import Text

from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_INVALID, EXIT_OK
from dispatcher.lwm2m import LwM2MObject, find, lookup, objects

__all__ = ["objects_command"]


@click.command("objects")
@click.argument("ids", nargs=-1, type=click.IntRange(0, 65535), metavar="[ID]...")
@click.option("--find", "text", metavar="TEXT", help="Objects whose name holds TEXT.")
def objects_command(ids: tuple[int, ...], text: str | None) -> None:
    """Show LwM2M objects and their resources (ids, names, operations, types, ranges, units).

    With no ID and no --find, lists every object of the OMA LwM2M registry.
    """
    if not ids and text is None:
        console.show(_listing(objects(), "the OMA LwM2M Object Registry"))
        sys.exit(EXIT_OK)
    shown = 0
    for obj_id in ids:
        obj = lookup(obj_id)
        if obj is None:
            console.note(
                f"object {obj_id} is not in the registry (a vendor's or device maker's own"
                " object is fine: its resources are what its maker defines)"
            )
            continue
        _show(obj)
        shown += 1
    if text is not None:
        found = find(text)
        if found:
            console.show(_listing(found, f"objects named like {text!r}"))
            shown += len(found)
        else:
            console.note(f"no object of the registry is named like {text!r}")
    sys.exit(EXIT_OK if shown else EXIT_INVALID)


def _listing(found: list[LwM2MObject], title: str) -> Table:
    table = Table(title=Text(title), title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("instances")
    table.add_column("resources", justify="right")
    for obj in found:
        table.add_row(
            Text(str(obj.id)),
            Text(obj.name),
            Text(_instances(obj.multiple)),
            Text(str(len(obj.resources))),
        )
    return table


def _show(obj: LwM2MObject) -> None:
    instances = "multiple instances" if obj.multiple else "single instance"
    table = Table(title=Text(f"{obj.id} {obj.name} ({instances})"), title_justify="left")
    table.add_column("id", justify="right")
    for name in ("name", "operations", "type", "range", "units"):
        table.add_column(name)
    for res in obj.resources.values():
        table.add_row(
            Text(str(res.id)),
            Text(res.name),
            Text(res.operations or "-"),
            Text(res.type),
            Text(res.range),
            Text(res.units),
        )
    console.show(table)


def _instances(multiple: bool) -> str:
    return "multiple" if multiple else "single"
