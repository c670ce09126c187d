"""Sending: the run's phases (probe, leftovers, send, recover), the paced fan-out, lanes, pacing,
retries, breakers, reconciliation, binding a ledger to its job, and what a run shares (Stop,
RunStats, RunResult; each lane's phases share one RunContext).

May import: errors, times, config, job, onenet, ledger. Never report, cli or emulator; never prints.
"""

from dispatcher.run.runner import (
    OneNetApi,
    RunResult,
    RunStats,
    Stop,
    run_job,
)

__all__ = [
    "OneNetApi",
    "RunResult",
    "RunStats",
    "Stop",
    "run_job",
]
