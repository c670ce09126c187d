"""``dispatcher emulator``: serve the local OneNET stand-in, its faults and its registered devices
set from the flags."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
import yaml

from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_USAGE, fail
from dispatcher.cli.numbers import FiniteFloat

__all__ = ["emulator"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--fail-rate", default=0.0, type=FiniteFloat(0, 1), help="HTTP 500 share.")
@click.option("--latency-ms", default=0.0, type=FiniteFloat(0), help="Added latency.")
@click.option("--latency-jitter-ms", default=0.0, type=FiniteFloat(0), help="Plus 0..this.")
@click.option(
    "--throttle",
    "throttle_rps",
    type=FiniteFloat(0, min_open=True),
    help="Admit at most this many requests per second; throttle the rest.",
)
@click.option(
    "--throttle-mode",
    type=click.Choice(["errno7", "http429"]),
    default="errno7",
    show_default=True,
    help="How throttling is answered.",
)
@click.option("--retry-after", default=1.0, type=FiniteFloat(0), help="429's Retry-After.")
@click.option(
    "--cut-before",
    default=0.0,
    type=FiniteFloat(0, 1),
    help="Share of requests cut before they are processed.",
)
@click.option(
    "--cut-after",
    default=0.0,
    type=FiniteFloat(0, 1),
    help="Share of requests accepted, then cut before the answer.",
)
@click.option("--api-key-env", help="Accept only the key in this environment variable.")
@click.option("--foreign-imei", multiple=True, help="An IMEI outside the product (errno 1).")
@click.option("--seed", type=int, help="Make the injected faults and the devices reproducible.")
@click.option(
    "--truncate",
    default=0.0,
    type=FiniteFloat(0, 1),
    help="Share of requests accepted, then answered with half the JSON body.",
)
@click.option("--gzip", "gzip_answers", is_flag=True, help="Gzip every answer, asked or not.")
@click.option(
    "--gzip-bomb",
    "bomb_bytes",
    default=0,
    metavar="BYTES",
    type=click.IntRange(0, 1 << 32),
    help="Pad accepted answers with whitespace to BYTES, then gzip them.",
)
@click.option(
    "--clock-offset",
    default=0.0,
    metavar="SECONDS",
    type=FiniteFloat(),
    help="The server's clock (checks, create_time, Date) runs this far ahead (or behind, < 0).",
)
@click.option(
    "--hang",
    default=0.0,
    type=FiniteFloat(0, 1),
    help="Share of requests read, then never answered.",
)
@click.option(
    "--html-error",
    "html_status",
    metavar="STATUS",
    type=click.IntRange(300, 599),
    help="Answer every API call with an HTML page of this status, as a proxy in front would.",
)
@click.option(
    "--wake-every",
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    type=FiniteFloat(0),
    help="Each device wakes about this often and takes its waiting commands (0: none ever"
    " wakes, commands stay waiting).",
)
@click.option(
    "--never-wake",
    default=0.0,
    metavar="SHARE",
    type=FiniteFloat(0, 1),
    help="Share of devices that never wake (their commands expire).",
)
@click.option(
    "--device-errors",
    default=0.0,
    metavar="SHARE",
    type=FiniteFloat(0, 1),
    help="Share of devices that answer commands with an error (send_status 6).",
)
@click.option(
    "--answer-delay",
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    type=FiniteFloat(0),
    help="Time from a command sent to a device to its answer.",
)
@click.option(
    "--devices",
    "devices_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Register the devices of this CSV file: imei, then any of tags, online, created,"
    " firmware, title, product.",
)
@click.option(
    "--fleet",
    "fleet_size",
    default=0,
    metavar="N",
    type=click.IntRange(0, 1_000_000),
    help="Register N made-up devices in each product (seeded tags, online state, creation).",
)
@click.option(
    "--firmware",
    default="2.4.0",
    show_default=True,
    metavar="VERSION",
    help="The firmware version (3/0/3) of a device its registration does not give one.",
)
@click.option(
    "--firmware-target",
    default="2.4.1",
    show_default=True,
    metavar="VERSION",
    help="What an update installs when its package URI names no version.",
)
@click.option(
    "--products",
    "products_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Serve several products (YAML: name -> api_key_env or access_key_env and res, ...).",
)
def emulator(
    products_path: Path | None,
    devices_path: Path | None,
    fleet_size: int,
    firmware: str,
    firmware_target: str,
    host: str,
    port: int,
    fail_rate: float,
    latency_ms: float,
    latency_jitter_ms: float,
    throttle_rps: float | None,
    throttle_mode: str,
    retry_after: float,
    cut_before: float,
    cut_after: float,
    api_key_env: str | None,
    foreign_imei: tuple[str, ...],
    seed: int | None,
    truncate: float,
    gzip_answers: bool,
    bomb_bytes: int,
    clock_offset: float,
    hang: float,
    html_status: int | None,
    wake_every: float,
    never_wake: float,
    device_errors: float,
    answer_delay: float,
) -> None:
    """Serve a local stand-in for OneNET's cached-command API, with fault injection."""
    from dispatcher import emulator as emu

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env) or fail(f"{api_key_env} is not set", EXIT_USAGE)
        console.redact(api_key)
    faults = emu.Faults(
        fail_rate=fail_rate,
        cut_before_rate=cut_before,
        cut_after_rate=cut_after,
        throttle_rps=throttle_rps,
        throttle_mode=throttle_mode,  # type: ignore[arg-type]  # checked by Choice
        throttle_retry_after=retry_after,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        seed=seed,
        api_key=api_key,
        foreign_imeis=frozenset(foreign_imei),
        truncate_rate=truncate,
        hang_rate=hang,
        html_status=html_status,
        compress=gzip_answers,
        bomb_bytes=bomb_bytes,
        clock_offset_s=clock_offset,
    )
    products = None if products_path is None else _products(products_path)
    fleet = emu.Fleet(
        wake_every_s=wake_every or None,
        never_wake=never_wake,
        device_errors=device_errors,
        answer_delay_s=answer_delay,
        seed=seed,
        firmware=firmware,
        firmware_target=firmware_target,
    )
    names = None if products is None else list(products)
    devices = _devices(devices_path, fleet_size, seed, firmware, names)
    try:
        emu.run(
            host,
            port,
            faults,
            fleet=fleet,
            products=products,
            devices=devices,
            ready=lambda url: console.note(f"OneNET emulator on {url}"),
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    except KeyboardInterrupt:
        console.note("emulator stopped")


_PRODUCT_KEYS = ("api_key_env", "access_key_env", "res", "imeis", "throttle_rps", "throttle_mode",
                 "answer_shape", "list_errno")  # fmt: skip


def _devices(
    path: Path | None, size: int, seed: int | None, firmware: str, products: list[str] | None
) -> list[Any]:
    """The devices of ``--fleet`` (``size`` in each product, each product its own IMEIs) and
    of ``--devices`` (which replace made-up ones of the same IMEI); exits when the file is
    wrong."""
    from dispatcher.emulator import made_up, read_devices

    now = time.time()
    devices: list[Any] = []
    for n, product in enumerate(products or [None]):
        devices += made_up(size, seed=seed, now=now, product=product, firmware=firmware,
                           first=n * size)  # fmt: skip
    if path is not None:
        try:
            devices += read_devices(path, now=now, firmware=firmware, products=products)
        except OSError as exc:
            fail(f"{path}: cannot be read ({exc.strerror})", EXIT_USAGE)
        except UnicodeDecodeError:
            fail(f"{path}: is not UTF-8 text", EXIT_USAGE)
        except ValueError as exc:  # it names the file, line and column
            fail(str(exc), EXIT_USAGE)
    return devices


def _products(path: Path) -> dict[str, Any]:
    """The products of ``--products``: each its key (from the environment variable named), its
    devices, throttle and answers' shape; exits with a clear message when the file is wrong."""
    from dispatcher.emulator import Product

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"{path}: cannot be read as YAML ({exc})", EXIT_USAGE)
    if not isinstance(raw, dict) or not raw:
        fail(f"{path}: must map each product's name to its keys", EXIT_USAGE)
    products: dict[str, Any] = {}
    for name, given in raw.items():
        given = given or {}
        unknown = set(given) - set(_PRODUCT_KEYS) if isinstance(given, dict) else {"?"}
        if unknown:
            fail(f"{path}: {name}: unknown keys {sorted(map(str, unknown))}", EXIT_USAGE)
        keys: dict[str, Any] = {}
        for field, env in (("api_key", "api_key_env"), ("access_key", "access_key_env")):
            if env in given:
                keys[field] = os.environ.get(str(given[env])) or fail(
                    f"{path}: {name}: {given[env]} is not set", EXIT_USAGE
                )
                console.redact(keys[field])
        rest = {k: v for k, v in given.items() if not k.endswith("_env")}
        if "imeis" in rest:
            rest["imeis"] = frozenset(str(i) for i in rest["imeis"])
        try:
            products[str(name)] = Product(**keys, **rest)
        except (TypeError, ValueError) as exc:
            fail(f"{path}: {name}: {exc}", EXIT_USAGE)
    return products
