"""Serving an emulator as a process of its own: until interrupted, on uvloop when it is
installed (the ``fast`` extra); what ``dispatcher emulator`` runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from dispatcher.emulator.devices import Fleet
from dispatcher.emulator.products import Product
from dispatcher.emulator.registry import Device
from dispatcher.emulator.server import Emulator, serve
from dispatcher.emulator.state import Faults

__all__ = ["run"]


def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    faults: Faults | None = None,
    *,
    ready: Callable[[str], None] | None = None,
    keep_records: bool = True,
    fleet: Fleet | None = None,
    products: Mapping[str, Product] | None = None,
    devices: Iterable[Device] = (),
) -> None:
    """Serve an emulator until interrupted (KeyboardInterrupt goes up); calls ``ready(url)``."""

    async def main() -> None:
        emulator = Emulator(
            faults, keep_records=keep_records, fleet=fleet, products=products, devices=devices
        )
        async with serve(emulator, host, port) as url:
            if ready is not None:
                ready(url)
            await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
        runner.run(main())


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: the "fast" extra
    except ImportError:
        return None
    return uvloop.new_event_loop
