"""``dispatcher devices``: a product's devices as OneNET's device list gives them, filtered as a
job's ``targets_query`` is; a table on the terminal and the count, or, with ``-o``, a CSV
(``imei,#id,#title,#online,#tags,#create_time``) to use as a job's targets_csv (the use case is
app/devices.py)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from dispatcher.app.devices import DevicesRequest, list_devices
from dispatcher.app.retrying import n_of
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_OK, interruptible
from dispatcher.cli.lanes import lane_options, load_config
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.signals import run_with_signals
from dispatcher.cli.targets_view import device_table
from dispatcher.job.query import TargetsQuery, parse_moment
from dispatcher.model.command import product_label

__all__ = ["devices"]


@click.command()
@lane_options
@click.option("--product", help="A product of the config's products: (default: the default lane).")
@click.option("--tag", help="Only devices with this tag.")
@click.option("--online/--offline", default=None, help="Only devices online (or offline) now.")
@click.option("--key-words", help="Only devices whose id or title starts with this.")
@click.option("--created-after", metavar="TIME", help="Created at or after (UTC+8 unless a zone).")
@click.option(
    "--created-before", metavar="TIME", help="Created at or before (UTC+8 unless a zone)."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many devices.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the devices as CSV (imei,#id,#title,#online,#tags,#create_time) to this file.",
)
@interruptible
def devices(
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    product: str | None,
    tag: str | None,
    online: bool | None,
    key_words: str | None,
    created_after: str | None,
    created_before: str | None,
    limit: int | None,
    output: Path | None,
) -> None:
    """List a product's devices from OneNET, or write them as a CSV (usable as targets_csv)."""
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    query = TargetsQuery(
        0,
        product=product,
        tag=tag,
        online=online,
        key_words=key_words,
        created_after=_moment(created_after, "--created-after"),
        created_before=_moment(created_before, "--created-before"),
        limit=limit,
    )
    outcome = list_devices(
        settings,
        DevicesRequest(query, output),
        events=ConsoleEvents(),
        drive=run_with_signals,
    )
    found = outcome.resolved
    what = (
        f"{n_of(len(found.devices), 'device')} of {product_label(found.product)} ({found.filters})"
    )
    cost = n_of(found.calls, "device-list call")
    if outcome.written is not None:
        console.note(f"{what} written to {outcome.written} ({cost})")
        console.note(
            "a job reads it as its targets_csv as it is (columns starting with # are skipped)"
        )
    else:
        if sys.stdout.isatty() and found.devices:
            for line in device_table(found.devices):
                click.echo(line)
        elif found.devices:
            for d in found.devices:
                click.echo(d.imei)
        console.note(f"{what} ({cost})")
    sys.exit(EXIT_OK)


def _moment(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from exc
