"""The SQLite, the in-memory and the PostgreSQL ledger answer alike: the same random operations,
faults included (moves the lifecycle refuses, keys not held, a second retry file), driven into all
three; every answer (seq, run and verdict ids included), every error's kind and every read of them
must agree, step after step."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, InFlight, LedgerStore, Result, Status
from tests.support.ledger import make_command
from tests.support.stores import open_postgres

_NOW = 1_700_000_000.0
# A small fleet, so that operations meet: two products, devices with two commands.
POOL = [
    make_command(n, imei=f"86{n % 3}", product="meters" if n % 2 else "", args=f"a{n}")
    for n in range(4)
]
KEYS = [c.key for c in POOL] + ["not-a-key"]  # the last: a key no ledger holds
_OUTCOMES = [Status.ACCEPTED, Status.REJECTED, Status.FAILED, Status.IN_DOUBT, Status.PENDING,
             Status.EXPIRED, Status.SKIPPED]  # fmt: skip

keys = st.lists(st.sampled_from(KEYS[:-1]), min_size=1, max_size=2)
outcomes = st.sampled_from(_OUTCOMES)


def _uuid(key: str, status: Status) -> str | None:
    return "u-" + key[:4] if status is Status.ACCEPTED else None


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call gave: its value, or the kind of error it raised."""
    try:
        value = call()
    except Exception as exc:  # the kind is compared between the twins, not swallowed
        return ("raised", type(exc).__name__)
    return ("value", list(value) if isinstance(value, list | tuple) else value)


class Twins(RuleBasedStateMachine):
    """One SQLite ledger, one in-memory ledger and one PostgreSQL ledger (a new job of the test
    database), sent the same operations."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="twins-"))
        self.twins: tuple[LedgerStore, ...] = (
            Ledger.open(self.dir / "twin.ledger.db", clock=lambda: _NOW),
            MemoryLedger("twin", clock=lambda: _NOW),
        )
        self.twins += (open_postgres(self.dir, lambda: _NOW),)

    def both(self, call: Callable[[LedgerStore], Any]) -> None:
        """Every twin answers ``call`` as the SQLite ledger does."""
        sqlite, *others = (_outcome(lambda s=s: call(s)) for s in self.twins)
        for other in others:
            assert other == sqlite

    def held(self, picked: list[str]) -> list[str]:
        """Mostly the accepted ones of ``picked`` (OneNET holds those), now and then all of them."""
        accepted = {r.key for r in self.twins[0].rows([Status.ACCEPTED])}
        return [k for k in picked if k in accepted] or picked

    @rule(picked=st.lists(st.sampled_from(POOL), min_size=1, max_size=6))
    def register(self, picked: list[Any]) -> None:
        self.both(lambda s: s.register(picked))

    @rule(
        marked=keys,
        answered=st.lists(
            st.tuples(st.sampled_from(KEYS), outcomes, st.integers(0, 2)), max_size=3
        ),
        at=st.sampled_from([10.0, 20.0]),
    )
    def write_batch(
        self, marked: list[str], answered: list[tuple[str, Status, int]], at: float
    ) -> None:
        marks = [InFlight(k, at, None, "2030-01-01T00:00:00", 1, at - 1) for k in marked]
        results = [
            Result(k, s, 1 if s is Status.REJECTED else None, "", _uuid(k, s), n, at + 5, at / 2)
            for k, s, n in answered
        ]
        self.both(lambda s: s.write_batch(marks, results))

    @rule(
        picked=keys, outcome=outcomes, attempts=st.integers(0, 2), at=st.sampled_from([10.0, 20.0])
    )
    def send(self, picked: list[str], outcome: Status, attempts: int, at: float) -> None:
        """A request per command, marked and answered in one batch, as a run writes them."""
        marks = [InFlight(k, at, None, "2030-01-01T00:00:00", 1, at - 1) for k in picked]
        answers = [Result(k, outcome, 1 if outcome is Status.REJECTED else None, "",
                          _uuid(k, outcome), attempts, at + 5, at / 2) for k in picked]  # fmt: skip
        self.both(lambda s: s.write_batch(marks, answers))

    @rule(picked=keys)
    def a_key_not_held(self, picked: list[str]) -> None:
        """Writes naming a key the ledger does not hold are refused whole."""
        unknown = [*picked, KEYS[-1]]
        self.both(lambda s: s.move(unknown, Event.ABORT))
        self.both(lambda s: s.record_delivery([Delivery(k, 5, None, None, None, None, 1.0)
                                               for k in unknown]))  # fmt: skip
        self.both(lambda s: s.hand_over(unknown, "one.csv"))

    @rule(picked=keys, event=st.sampled_from(list(Event)))
    def move(self, picked: list[str], event: Event) -> None:
        self.both(lambda s: s.move(picked, event, error="moved"))

    @rule(picked=keys, into=st.sampled_from(["one.csv", "two.csv"]))
    def hand_over(self, picked: list[str], into: str) -> None:
        self.both(lambda s: s.hand_over(picked, into))

    @rule(
        picked=keys,
        send_status=st.sampled_from([None, 1, 3, 4, 5, 6]),
        result=st.sampled_from([None, "done"]),
    )
    def record_delivery(
        self, picked: list[str], send_status: int | None, result: str | None
    ) -> None:
        items = [Delivery(k, send_status, "ok", "t", None, result, 1.0) for k in self.held(picked)]
        self.both(lambda s: s.record_delivery(items))

    @rule(picked=keys, refused=st.booleans(), known=st.sampled_from([None, 3]))
    def record_cancel(self, picked: list[str], refused: bool, known: int | None) -> None:
        items = [(k, "no" if refused else None, known) for k in self.held(picked)]
        self.both(lambda s: s.record_cancel(items))

    @rule(product=st.sampled_from([None, "", "meters"]), picked=st.lists(st.sampled_from(POOL)))
    def pass_canary(self, product: str | None, picked: list[Any]) -> None:
        self.both(lambda s: s.pass_canary(product, [c.key for c in picked], picked))

    @rule(
        listed=st.lists(st.sampled_from(range(len(POOL))), unique=True),
        edited=st.integers(0, len(POOL) - 1),
        retry=st.integers(0, 2),
        apply=st.booleans(),
    )
    def compare(self, listed: list[int], edited: int, retry: int, apply: bool) -> None:
        job = [make_command(n, imei=POOL[n].imei, product=POOL[n].product, args=POOL[n].args,
                            retry=retry if n == edited else 3) for n in listed]  # fmt: skip
        self.both(lambda s: s.compare(job, apply=apply, sample=2))

    @rule(job_path=st.sampled_from(["a.yaml", "b.yaml"]))
    def runs(self, job_path: str) -> None:
        self.both(lambda s: s.finish_run(s.start_run(job_path, {"key": job_path}), {}, None))

    @invariant()
    def they_read_alike(self) -> None:
        for read in (
            lambda s: list(s.rows()),
            lambda s: s.counts(),
            lambda s: s.handed_over(),
            lambda s: s.retry_jobs(),
            lambda s: s.total(),
            lambda s: s.stats(),
            lambda s: s.retired_counts(),
            lambda s: s.product_counts(),
            lambda s: s.errno_groups(),
            lambda s: s.delivery_breakdown(),
            lambda s: s.uncovered(KEYS),
            lambda s: [s.canary_covered_before(p) for p in (None, "", "meters")],
            lambda s: [list(s.rows_to_check(p)) for p in (None, "", "meters")],
            lambda s: [s.count_to_check(p) for p in (None, "meters")],
            lambda s: s.products_to_check(),
            lambda s: [s.known_uuids(c.imei) for c in POOL],
            lambda s: s.runs(),
            lambda s: s.recorded_job_paths(),
        ):
            self.both(read)

    def teardown(self) -> None:
        for twin in self.twins:
            twin.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# Few examples: each step is some 40 round trips to PostgreSQL (and a new job's statements are
# planned anew); a long run of the same machine (400 examples of 40 steps) passed.
Twins.TestCase.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)
test_the_sqlite_memory_and_postgresql_ledgers_answer_alike = Twins.TestCase
