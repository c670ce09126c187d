"""The local OneNET stand-in (aiohttp.web): the routes and their checks (under both platforms'
paths), stored commands, the devices behind it (off by default) with their registry, firmware
and device lists, the products it serves (any key by default) and the faults it can inject.

``EmulatorTransport`` (transport.py) plugs the same routes into the OneNET client in-process,
with no socket.

May import: errors, times, and onenet.transport for the in-process transport alone. Never job,
ledger, run, report or cli, nor the client: it is an independent server, and a test double by
speaking the same HTTP.
"""

from dispatcher.emulator.process import run
from dispatcher.emulator.registry import Device, made_up, read_devices
from dispatcher.emulator.server import (
    Emulator,
    Faults,
    Fleet,
    Product,
    StoredCommand,
    serve,
)
from dispatcher.emulator.transport import EmulatorTransport

__all__ = [
    "Device",
    "Emulator",
    "EmulatorTransport",
    "Faults",
    "Fleet",
    "Product",
    "StoredCommand",
    "made_up",
    "read_devices",
    "run",
    "serve",
]
