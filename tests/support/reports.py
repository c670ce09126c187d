"""A ledger of 200 commands with known outcomes, for the report tests' exact figures."""

from __future__ import annotations

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Status
from tests.support.ledger import make_command, write_outcomes


def fill_known(ledger: Ledger) -> list[float]:
    """200 commands with known outcomes; returns the latencies recorded."""
    cmds = [make_command(i) for i in range(200)]
    ledger.register(cmds)
    ledger.write_batch(
        [InFlight(c.key, 1000.0 + i, None, "2024-05-01T16:00:00", 1) for i, c in enumerate(cmds)
         if i < 195],
        (),
    )  # fmt: skip
    results, latencies = [], []
    for i, c in enumerate(cmds[:193]):
        at = 1000.0 + i + 0.25
        if i < 150:
            attempts, latency = (3 if i % 10 == 0 else 1), float(i + 1)
            results.append(
                Result(c.key, Status.ACCEPTED, 0, "succ", f"u{i}", attempts, at, latency)
            )
        elif i < 175:
            text = "system logic limit" if i < 170 else "logic limit"
            results.append(Result(c.key, Status.REJECTED, 5006, text, None, 1, at, 200.0 + i))
        elif i < 185:
            results.append(Result(c.key, Status.REJECTED, 1, "auth failed", None, 1, at, 300.0 + i))
        elif i < 190:
            results.append(Result(c.key, Status.FAILED, None, "HTTP 500", None, 6, at, None))
        else:
            results.append(
                Result(c.key, Status.IN_DOUBT, None, "connection cut", None, 1, at, None)
            )
        if results[-1].latency_ms is not None:
            latencies.append(results[-1].latency_ms)
    reconciled = [
        Result(c.key, Status.ACCEPTED, 0, "", f"r{c.key}", 0, 99999.0, None, True)
        for c in cmds[193:195]
    ]
    write_outcomes(ledger, results + reconciled)
    first = ledger.start_run("jobs/fleet.csv", {})
    ledger.finish_run(first, {}, None)
    second = ledger.start_run("jobs/fleet.csv", {})
    ledger.finish_run(second, {}, "interrupted (SIGINT)")
    return latencies
