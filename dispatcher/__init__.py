"""dispatcher: send a cached LwM2M execute command to a whole NB-IoT fleet through OneNET.

The public API: read and validate job files, run them against OneNET (or the emulator), and read the
results ledger.
"""

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
from dispatcher.ledger.store import Ledger, LedgerFullError, Row, Status, default_ledger_path
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
from dispatcher.times import ServerClock, TimeSpec, format_onenet, parse_onenet, parse_timespec

__version__ = "0.1.0"

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
