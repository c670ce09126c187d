"""The error tree of dispatcher.

A failed *command* is data (an outcome in the ledger), never an exception. An exception means the
*run* cannot go on, or an input could not be read at all::

    DispatcherError
    ├── ConfigError            the config file or a flag is wrong; nothing was sent
    │   └── FlagError          a command-line value cannot be used as given (names the flag)
    ├── Refused                the command will not do what was asked as asked (says why)
    ├── JobInvalid             a job file has errors (the problems are listed): nothing was sent
    ├── NothingToDo            every command of the job is final already: nothing to send
    ├── TargetsUnresolved      a targets_query could not be resolved (refused, matched nothing)
    ├── Interrupted            stopped before anything was done (a signal)
    ├── JobFileError           a job file cannot be read or is invalid (file, line, field)
    ├── LedgerError            the ledger cannot be opened, read or written
    │   └── LedgerLockedError  another dispatcher holds the ledger
    ├── OneNetUnavailable      a follow-up call (history, detail, cancel) got no usable answer
    ├── JobMismatchError       the ledger holds another job, or this job was edited since
    ├── BrokeOff               a run, status or cancel broke off midway (what was done is kept)
    └── RunAborted             the run stopped itself (reason): a circuit breaker
        ├── WrongKeyError      errno 1 on every early answer: the key is wrong
        ├── UnreachableError   no early attempt could connect: the base URL or the network
        ├── MisroutedError     early answers are not OneNET's (HTML 404, a proxy's 403/407)
        └── ServerHungError    early requests got no answer at all within the timeout

Library exceptions (aiohttp, sqlite3, yaml) are translated where they are caught, with ``from``.
"""

from __future__ import annotations

__all__ = [
    "BrokeOff",
    "ConfigError",
    "DispatcherError",
    "FlagError",
    "Incomplete",
    "Interrupted",
    "JobFileError",
    "JobInvalid",
    "JobMismatchError",
    "LedgerError",
    "LedgerLockedError",
    "MisroutedError",
    "NothingToDo",
    "OneNetUnavailable",
    "Refused",
    "RolloutAborted",
    "RunAborted",
    "ServerHungError",
    "TargetsUnresolved",
    "UnreachableError",
    "WrongKeyError",
]


class DispatcherError(Exception):
    """Base of every error dispatcher raises on purpose."""


class ConfigError(DispatcherError):
    """The configuration (file, environment or flags) is wrong."""


class FlagError(ConfigError):
    """A command-line value cannot be used as given; ``flag`` names it (None: the flags
    together, e.g. a combination)."""

    def __init__(self, message: str, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class Refused(DispatcherError):
    """The command will not do what was asked, as it was asked (several ledgers match, an
    output exists, a device is not the job's): nothing was done."""


class Interrupted(DispatcherError):
    """Stopped by a signal before anything was done; the message says what was left as it was."""


class Incomplete(DispatcherError):
    """Part of what was asked could not be done (states that could not be read, say): what was
    done is kept; the same command tries the rest again."""


class JobInvalid(DispatcherError):
    """A job file has errors (each reported as it was found): nothing was sent.

    ``problems`` holds the errors and warnings found (when the caller asked for them kept).
    """

    def __init__(self, message: str, problems: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class NothingToDo(DispatcherError):
    """Every command of the job has its final outcome already; ``through``: every one was
    accepted or handed to a retry job."""

    def __init__(self, message: str, *, through: bool) -> None:
        super().__init__(message)
        self.through = through


class TargetsUnresolved(DispatcherError):
    """A job's targets_query could not be resolved: OneNET refused the device list (``errno``),
    the query matched no device, or it would list more than 10,000 pages; nothing was sent."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class BrokeOff(DispatcherError):
    """A run, status or cancel broke off midway (the ledger could not be written, a follow-up
    call failed): what was done is kept; the message says how to go on."""


class JobFileError(DispatcherError):
    """A job file cannot be read or is invalid; names the file, line and field."""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file  # a sheet's rows are cited as FILE:SHEET!ROW
        if self.line:
            where += f"{self.line}" if self.file.endswith("!") else f":{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class LedgerError(DispatcherError):
    """The results ledger cannot be opened, read or written."""


class LedgerLockedError(LedgerError):
    """Another dispatcher process is using the same ledger."""


class JobMismatchError(DispatcherError):
    """The ledger does not go with this job file: another job's, or the job was edited."""


class OneNetUnavailable(DispatcherError):
    """A follow-up call to OneNET (history, detail, cancel) got no usable answer.

    When OneNET did answer: ``errno`` (None: no errno came), whether asking again can help
    (``retryable``: throttled, an internal error, no answer at all; not a business errno such
    as 1 or 3), ``throttled`` (slow the lane down) and ``retry_after`` (seconds, if it said).
    """

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        retryable: bool = True,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.errno, self.retryable = errno, retryable
        self.throttled, self.retry_after = throttled, retry_after


class RunAborted(DispatcherError):
    """The run stopped itself; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RolloutAborted(RunAborted):
    """A rollout rule fired (a failing canary, a failure rate, an errno): the rest is skipped."""


class WrongKeyError(RunAborted):
    """OneNET answered errno 1 (auth failed) to every early request: the key (api-key, or
    access key and token) is wrong."""


class UnreachableError(RunAborted):
    """No early attempt could connect to OneNET: the base URL or the network is wrong."""


class MisroutedError(RunAborted):
    """Early answers were not OneNET's (an HTML error page): the base URL or a proxy is wrong."""


class ServerHungError(RunAborted):
    """Early requests were sent but never answered: the server accepts connections and hangs."""
