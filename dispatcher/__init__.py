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
    from dispatcher.clock import ServerClock as ServerClock
    from dispatcher.config import Settings as Settings, load_settings as load_settings
    from dispatcher.errors import (
        ConfigError as ConfigError,
        DispatcherError as DispatcherError,
        JobFileError as JobFileError,
        JobMismatchError as JobMismatchError,
        LedgerError as LedgerError,
        LedgerLockedError as LedgerLockedError,
        MisroutedError as MisroutedError,
        OneNetUnavailable as OneNetUnavailable,
        RunAborted as RunAborted,
        ServerHungError as ServerHungError,
        UnreachableError as UnreachableError,
        WrongKeyError as WrongKeyError,
    )
    from dispatcher.job.model import (
        Job as Job,
        Problem as Problem,
        Validation as Validation,
        load_job as load_job,
        validate_job as validate_job,
    )
    from dispatcher.ledger.identity import default_ledger_path as default_ledger_path
    from dispatcher.ledger.memory import MemoryLedger as MemoryLedger
    from dispatcher.ledger.sqlite import Ledger as Ledger
    from dispatcher.ledger.store import (
        LedgerFullError as LedgerFullError,
        LedgerStore as LedgerStore,
        Row as Row,
        Status as Status,
    )
    from dispatcher.model.command import Command as Command, Op as Op, command_key as command_key
    from dispatcher.model.writes import WriteValue as WriteValue
    from dispatcher.onenet.client import (
        CancelResult as CancelResult,
        Misrouted as Misrouted,
        OfflineRequest as OfflineRequest,
        OneNetClient as OneNetClient,
        Outcome as Outcome,
        Verdict as Verdict,
        classify as classify,
    )
    from dispatcher.report.export import write_export as write_export
    from dispatcher.report.summary import Summary as Summary, summarize as summarize
    from dispatcher.run.binding import (
        Binding as Binding,
        JobChangedError as JobChangedError,
        bind_job as bind_job,
    )
    from dispatcher.run.finder import RateFinder as RateFinder
    from dispatcher.run.pacing import Pace as Pace
    from dispatcher.run.runner import (
        RunResult as RunResult,
        RunStats as RunStats,
        Stop as Stop,
        run_job as run_job,
    )
    from dispatcher.times import (
        TimeSpec as TimeSpec,
        format_onenet as format_onenet,
        parse_onenet as parse_onenet,
        parse_timespec as parse_timespec,
    )

__version__ = "0.1.0"

# Each public name, and the module it is defined in: read from the block above.
_HOME: dict[str, str] = public_names(__file__)
__all__ = list(_HOME)  # sorted

__getattr__ = lazy_getattr(__name__, _HOME, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
