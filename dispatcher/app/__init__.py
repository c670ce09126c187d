"""The use cases: run, validate, status, verify, cancel, retry-failed, report, devices. Each takes
settings and a request value, returns a result value, raises the typed errors of errors.py, and
opens and closes what it uses itself. What happens on the way goes to an observer (``Events``; by
default the log), never to a screen: the command line (cli/) renders results and picks exit codes.

A job run from Python, against the settings' OneNET (the key from the environment variable the
config names)::

    from pathlib import Path
    from dispatcher.app import RunRequest, run
    from dispatcher.config import load_settings

    outcome = run(load_settings(Path("config.yaml")), RunRequest(Path("jobs/example.yaml")))
    print(outcome.result.counts if outcome.result else "nothing sent")

May import: errors, times, config, lwm2m, job, onenet, ledger, run, report; never cli or emulator.
Names are imported on first use, as the package's own are: validating loads no client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatcher.lazy import lazy_getattr, public_names

if TYPE_CHECKING:
    from dispatcher.app.cancelling import (
        CancelOutcome as CancelOutcome,
        CancelRequest as CancelRequest,
        cancel as cancel,
    )
    from dispatcher.app.devices import (
        DevicesOutcome as DevicesOutcome,
        DevicesRequest as DevicesRequest,
        list_devices as list_devices,
    )
    from dispatcher.app.events import Events as Events, Quiet as Quiet
    from dispatcher.app.reporting import (
        ReportRequest as ReportRequest,
        report_ledger as report_ledger,
    )
    from dispatcher.app.retrying import (
        RetryOutcome as RetryOutcome,
        RetryRequest as RetryRequest,
        retry_failed as retry_failed,
    )
    from dispatcher.app.running import (
        RunOutcome as RunOutcome,
        RunRequest as RunRequest,
        run as run,
    )
    from dispatcher.app.validating import (
        Checked as Checked,
        ValidateRequest as ValidateRequest,
        validate as validate,
    )
    from dispatcher.app.verifying import (
        VerifyOutcome as VerifyOutcome,
        VerifyRequest as VerifyRequest,
        verify as verify,
    )
    from dispatcher.app.watching import (
        StatusOutcome as StatusOutcome,
        StatusRequest as StatusRequest,
        status as status,
    )

# Each public name, and the module it is defined in: read from the block above (lazy.py).
_HOME: dict[str, str] = public_names(__file__)
__all__ = list(_HOME)  # sorted

__getattr__ = lazy_getattr(__name__, _HOME, globals())
