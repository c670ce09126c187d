"""The local OneNET stand-in (aiohttp.web): the routes and their checks, stored commands, the
devices behind it (off by default) and the faults it can inject.

May import: errors, times. Never job, onenet, ledger, run, report or cli: it is an independent
server, and a test double only by speaking the same HTTP.
"""

from dispatcher.emulator.server import (
    Emulator,
    Faults,
    Fleet,
    StoredCommand,
    run,
    serve,
)

__all__ = [
    "Emulator",
    "Faults",
    "Fleet",
    "StoredCommand",
    "run",
    "serve",
]
