"""Taking over a job left in flight (takeover.py): a run waits for the requests of the run
before it only when that run may still live, on another host or in a process still there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from dispatcher.ledger.records import RunInfo
from dispatcher.run.takeover import HOLDER, holder, takeover_wait


def _run(n: int, who: object, *, finished: bool) -> RunInfo:
    settings = {} if who is None else {HOLDER: who}
    return RunInfo(n, "/jobs/fleet.yaml", 1000.0 + n, 2000.0 if finished else None, settings,
                   None, None)  # fmt: skip


def _runs(who: object, *, finished: bool = False) -> list[RunInfo]:
    return [_run(1, who, finished=finished), _run(2, holder(), finished=False)]


def test_a_run_that_ended_leaves_nothing_on_the_wire() -> None:
    away = {"host": "ops-2", "pid": 41877}
    assert takeover_wait(_runs(away, finished=True), lost_for=32.0) == 0.0
    assert takeover_wait([_run(1, holder(), finished=False)], lost_for=32.0) == 0.0


def test_a_broken_off_run_on_another_host_or_unknown_may_still_live() -> None:
    assert takeover_wait(_runs({"host": "ops-2", "pid": 41877}), lost_for=32.0) == 32.0
    assert takeover_wait(_runs(None), lost_for=32.0) == 32.0  # an older run: who it was unknown


def test_a_broken_off_run_of_this_host_is_waited_for_only_while_its_process_lives() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        here = {"host": socket.gethostname(), "pid": child.pid}
        assert takeover_wait(_runs(here), lost_for=32.0) == 32.0
    finally:
        child.kill()
        child.wait()
    assert takeover_wait(_runs(here), lost_for=32.0) == 0.0  # killed: its requests died with it
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    assert takeover_wait(_runs(me), lost_for=32.0) == 0.0  # this process's own: cancelled
