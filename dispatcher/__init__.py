"""dispatcher: send a cached LwM2M execute command to a whole NB-IoT fleet through OneNET.

The public API: read and validate job files, run them against OneNET (or the emulator), and read the
results ledger.

Names are imported on first use (PEP 562): a command that needs only the job reader does not pay
for aiohttp, the emulator or the report templates at start-up. The names are listed once, in the
``TYPE_CHECKING`` block below (``Name as Name``: what the type checker sees); ``__all__`` and the
lookup on first use are read from it (lazy.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatcher.lazy import lazy_getattr, public_names

if TYPE_CHECKING:
    from dispatcher.config import (
        Settings as Settings,
    )
    from dispatcher.config import (
        load_settings as load_settings,
    )
    from dispatcher.errors import (
        ConfigError as ConfigError,
    )
    from dispatcher.errors import (
        DispatcherError as DispatcherError,
    )
    from dispatcher.errors import (
        JobFileError as JobFileError,
    )
    from dispatcher.errors import (
        JobMismatchError as JobMismatchError,
    )
    from dispatcher.errors import (
        LedgerError as LedgerError,
    )
    from dispatcher.errors import (
        LedgerLockedError as LedgerLockedError,
    )
    from dispatcher.errors import (
        MisroutedError as MisroutedError,
    )
    from dispatcher.errors import (
        OneNetUnavailable as OneNetUnavailable,
    )
    from dispatcher.errors import (
        RunAborted as RunAborted,
    )
    from dispatcher.errors import (
        ServerHungError as ServerHungError,
    )
    from dispatcher.errors import (
        UnreachableError as UnreachableError,
    )
    from dispatcher.errors import (
        WrongKeyError as WrongKeyError,
    )
    from dispatcher.job.model import (
        Command as Command,
    )
    from dispatcher.job.model import (
        Job as Job,
    )
    from dispatcher.job.model import (
        Problem as Problem,
    )
    from dispatcher.job.model import (
        Validation as Validation,
    )
    from dispatcher.job.model import (
        command_key as command_key,
    )
    from dispatcher.job.model import (
        load_job as load_job,
    )
    from dispatcher.job.model import (
        validate_job as validate_job,
    )
    from dispatcher.ledger.store import (
        Ledger as Ledger,
    )
    from dispatcher.ledger.store import (
        LedgerFullError as LedgerFullError,
    )
    from dispatcher.ledger.store import (
        Row as Row,
    )
    from dispatcher.ledger.store import (
        Status as Status,
    )
    from dispatcher.ledger.store import (
        default_ledger_path as default_ledger_path,
    )
    from dispatcher.onenet.client import (
        CancelResult as CancelResult,
    )
    from dispatcher.onenet.client import (
        ExecuteRequest as ExecuteRequest,
    )
    from dispatcher.onenet.client import (
        Misrouted as Misrouted,
    )
    from dispatcher.onenet.client import (
        OneNetClient as OneNetClient,
    )
    from dispatcher.onenet.client import (
        Outcome as Outcome,
    )
    from dispatcher.onenet.client import (
        Verdict as Verdict,
    )
    from dispatcher.onenet.client import (
        classify as classify,
    )
    from dispatcher.report.export import (
        write_export as write_export,
    )
    from dispatcher.report.summary import (
        Summary as Summary,
    )
    from dispatcher.report.summary import (
        summarize as summarize,
    )
    from dispatcher.run.binding import (
        Binding as Binding,
    )
    from dispatcher.run.binding import (
        JobChangedError as JobChangedError,
    )
    from dispatcher.run.binding import (
        bind_job as bind_job,
    )
    from dispatcher.run.finder import (
        RateFinder as RateFinder,
    )
    from dispatcher.run.pacing import (
        Pace as Pace,
    )
    from dispatcher.run.runner import (
        RunResult as RunResult,
    )
    from dispatcher.run.runner import (
        RunStats as RunStats,
    )
    from dispatcher.run.runner import (
        Stop as Stop,
    )
    from dispatcher.run.runner import (
        run_job as run_job,
    )
    from dispatcher.times import (
        ServerClock as ServerClock,
    )
    from dispatcher.times import (
        TimeSpec as TimeSpec,
    )
    from dispatcher.times import (
        format_onenet as format_onenet,
    )
    from dispatcher.times import (
        parse_onenet as parse_onenet,
    )
    from dispatcher.times import (
        parse_timespec as parse_timespec,
    )

__version__ = "0.1.0"

# Each public name, and the module it is defined in: read from the block above.
_HOME: dict[str, str] = public_names(__file__)
__all__ = list(_HOME)  # sorted

__getattr__ = lazy_getattr(__name__, _HOME, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
