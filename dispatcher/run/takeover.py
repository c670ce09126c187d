"""Taking over a job another process left in flight: how long its requests may still be on the
wire.

A run killed on this host took its requests with it: its sockets closed with it. A run on a
shared (PostgreSQL) ledger may instead have lost its job while it lived (a failover, its session
ended, a split between it and the database): it stops within a check (runner.py), but what it had
on the wire may still reach OneNET for up to a request's timeout. A run that takes such a job over
looks its in-flight commands up only once that has passed; else one of them, not created yet when
looked up, could be sent again and land twice.

So every run records who it is (host and process) in its run record, and a run that finds the
last run of its job broken off waits for it only when that run may still live: on another host,
or on this one with its process still there.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from dispatcher.ledger.lock import process_lives
from dispatcher.ledger.records import RunInfo

__all__ = ["HOLDER", "WATCH_S", "holder", "takeover_wait"]

HOLDER = "holder"  # the key of a run's settings that says who ran it
WATCH_S = 2.0  # how often a run asks its ledger whether it still is the job's one writer


def holder() -> dict[str, object]:
    """Who this run is: its host and process (kept with its settings in the run record)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def takeover_wait(runs: Sequence[RunInfo], *, lost_for: float) -> float:
    """How long from now a broken-off earlier run may still have requests on the wire: it lost
    its job by now, notices within a check and stops, and what it had sent ends within its
    request timeout, together ``lost_for``; that when the run before this one (the last of
    ``runs``) never recorded an end and may still live, else 0."""
    if len(runs) < 2 or runs[-2].finished_at is not None:
        return 0.0
    who = runs[-2].settings.get(HOLDER)
    if not isinstance(who, Mapping):
        return lost_for  # who it was is not known: it may live
    if who.get("host") != socket.gethostname():
        return lost_for
    pid = who.get("pid")
    # This process's own earlier run: its requests were its own, cancelled as it broke off.
    alive = isinstance(pid, int) and pid != os.getpid() and process_lives(pid)
    return lost_for if alive else 0.0
