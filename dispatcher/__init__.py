"""dispatcher: send a cached LwM2M execute command to a whole NB-IoT fleet through OneNET.

The public API: read and validate job files, run them against OneNET (or the emulator), and read the
results ledger.
"""

from dispatcher.client import ExecuteRequest, OneNetClient, Outcome, Verdict, classify
from dispatcher.config import Settings, load_settings
from dispatcher.errors import (
    ConfigError,
    DispatcherError,
    JobFileError,
    LedgerError,
    LedgerLockedError,
    OneNetUnavailable,
    RunAborted,
    UnreachableError,
    WrongKeyError,
)
from dispatcher.jobs import Command, Job, Problem, Validation, command_key, load_job, validate_job
from dispatcher.ledger import Ledger, Row, Status
from dispatcher.pacing import Aimd, Pace
from dispatcher.report import Summary, summarize, write_export
from dispatcher.runner import RunResult, RunStats, Stop, run_job
from dispatcher.times import TimeSpec, format_onenet, parse_onenet, parse_timespec

__version__ = "0.1.0"

__all__ = [
    "Aimd",
    "Command",
    "ConfigError",
    "DispatcherError",
    "ExecuteRequest",
    "Job",
    "JobFileError",
    "Ledger",
    "LedgerError",
    "LedgerLockedError",
    "OneNetClient",
    "OneNetUnavailable",
    "Outcome",
    "Pace",
    "Problem",
    "Row",
    "RunAborted",
    "RunResult",
    "RunStats",
    "Settings",
    "Status",
    "Stop",
    "Summary",
    "TimeSpec",
    "UnreachableError",
    "Validation",
    "Verdict",
    "WrongKeyError",
    "classify",
    "command_key",
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
