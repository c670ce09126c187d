"""The local OneNET stand-in (aiohttp.web): the routes and their checks (under both platforms'
paths), stored commands, the devices behind it (off by default), the products it serves (any
key by default) and the faults it can inject.

May import: errors, times. Never job, onenet, ledger, run, report or cli: it is an independent
server, and a test double only by speaking the same HTTP.
"""

from dispatcher.emulator.server import (
    Emulator,
    Faults,
    Fleet,
    Product,
    StoredCommand,
    run,
    serve,
)

__all__ = [
    "Emulator",
    "Faults",
    "Fleet",
    "Product",
    "StoredCommand",
    "run",
    "serve",
]
