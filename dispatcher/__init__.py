"""dispatcher: send a cached LwM2M execute command to a whole NB-IoT fleet through OneNET.

The public API: read and validate job files, run them against OneNET (or the emulator), and read the
results ledger.

Names are imported on first use (PEP 562): a command that needs only the job reader does not pay
for aiohttp, the emulator or the report templates at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.clock import ServerClock
    from dispatcher.config import Settings, load_settings
    from dispatcher.errors import (
        ConfigError,
        DispatcherError,
        JobFileError,
        JobMismatchError,
        LedgerError,
        LedgerLockedError,
        MisroutedError,
        OneNetUnavailable,
        RunAborted,
        ServerHungError,
        UnreachableError,
        WrongKeyError,
    )
    from dispatcher.job.model import (
        Command,
        Job,
        Problem,
        Validation,
        command_key,
        load_job,
        validate_job,
    )
    from dispatcher.ledger.identity import default_ledger_path
    from dispatcher.ledger.memory import MemoryLedger
    from dispatcher.ledger.sqlite import Ledger
    from dispatcher.ledger.store import LedgerFullError, LedgerStore, Row, Status
    from dispatcher.onenet.client import (
        CancelResult,
        ExecuteRequest,
        Misrouted,
        OneNetClient,
        Outcome,
        Verdict,
        classify,
    )
    from dispatcher.report.export import write_export
    from dispatcher.report.summary import Summary, summarize
    from dispatcher.run.binding import Binding, JobChangedError, bind_job
    from dispatcher.run.finder import RateFinder
    from dispatcher.run.pacing import Pace
    from dispatcher.run.runner import RunResult, RunStats, Stop, run_job
    from dispatcher.times import TimeSpec, format_onenet, parse_onenet, parse_timespec

__version__ = "0.1.0"

# Each public name, and the module it is defined in.
_HOME: dict[str, str] = {
    "Binding": "dispatcher.run.binding",
    "CancelResult": "dispatcher.onenet.client",
    "Command": "dispatcher.job.model",
    "ConfigError": "dispatcher.errors",
    "DispatcherError": "dispatcher.errors",
    "ExecuteRequest": "dispatcher.onenet.client",
    "Job": "dispatcher.job.model",
    "JobChangedError": "dispatcher.run.binding",
    "JobFileError": "dispatcher.errors",
    "JobMismatchError": "dispatcher.errors",
    "Ledger": "dispatcher.ledger.sqlite",
    "LedgerError": "dispatcher.errors",
    "LedgerFullError": "dispatcher.ledger.store",
    "LedgerLockedError": "dispatcher.errors",
    "LedgerStore": "dispatcher.ledger.store",
    "MemoryLedger": "dispatcher.ledger.memory",
    "Misrouted": "dispatcher.onenet.client",
    "MisroutedError": "dispatcher.errors",
    "OneNetClient": "dispatcher.onenet.client",
    "OneNetUnavailable": "dispatcher.errors",
    "Outcome": "dispatcher.onenet.client",
    "Pace": "dispatcher.run.pacing",
    "Problem": "dispatcher.job.model",
    "RateFinder": "dispatcher.run.finder",
    "Row": "dispatcher.ledger.store",
    "RunAborted": "dispatcher.errors",
    "RunResult": "dispatcher.run.runner",
    "RunStats": "dispatcher.run.runner",
    "ServerClock": "dispatcher.clock",
    "ServerHungError": "dispatcher.errors",
    "Settings": "dispatcher.config",
    "Status": "dispatcher.ledger.store",
    "Stop": "dispatcher.run.runner",
    "Summary": "dispatcher.report.summary",
    "TimeSpec": "dispatcher.times",
    "UnreachableError": "dispatcher.errors",
    "Validation": "dispatcher.job.model",
    "Verdict": "dispatcher.onenet.client",
    "WrongKeyError": "dispatcher.errors",
    "bind_job": "dispatcher.run.binding",
    "classify": "dispatcher.onenet.client",
    "command_key": "dispatcher.job.model",
    "default_ledger_path": "dispatcher.ledger.identity",
    "format_onenet": "dispatcher.times",
    "load_job": "dispatcher.job.model",
    "load_settings": "dispatcher.config",
    "parse_onenet": "dispatcher.times",
    "parse_timespec": "dispatcher.times",
    "run_job": "dispatcher.run.runner",
    "summarize": "dispatcher.report.summary",
    "validate_job": "dispatcher.job.model",
    "write_export": "dispatcher.report.export",
}


__all__ = [
    "Binding",
    "CancelResult",
    "Command",
    "ConfigError",
    "DispatcherError",
    "ExecuteRequest",
    "Job",
    "JobChangedError",
    "JobFileError",
    "JobMismatchError",
    "Ledger",
    "LedgerError",
    "LedgerFullError",
    "LedgerLockedError",
    "LedgerStore",
    "MemoryLedger",
    "Misrouted",
    "MisroutedError",
    "OneNetClient",
    "OneNetUnavailable",
    "Outcome",
    "Pace",
    "Problem",
    "RateFinder",
    "Row",
    "RunAborted",
    "RunResult",
    "RunStats",
    "ServerClock",
    "ServerHungError",
    "Settings",
    "Status",
    "Stop",
    "Summary",
    "TimeSpec",
    "UnreachableError",
    "Validation",
    "Verdict",
    "WrongKeyError",
    "bind_job",
    "classify",
    "command_key",
    "default_ledger_path",
    "format_onenet",
    "load_job",
    "load_settings",
    "parse_onenet",
    "parse_timespec",
    "run_job",
    "summarize",
    "validate_job",
    "write_export",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'dispatcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
