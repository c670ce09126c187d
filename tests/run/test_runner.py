"""run_job() with a hand-written OneNET fake: outcomes per errno class, pacing on a virtual clock,
times resolved at sending, resume, and stopping (graceful and immediate)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from dispatcher.config import RetrySettings, Settings
from dispatcher.errors import OneNetUnavailable, WrongKeyError
from dispatcher.job.model import Job, load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Row, Status
from dispatcher.onenet.client import ExecuteRequest, HistoryItem, Outcome, Verdict, classify
from dispatcher.run.pacing import WINDOW_SLACK_S, Pace
from dispatcher.run.retrying import THROTTLED_PER_ATTEMPT, retry_query
from dispatcher.run.runner import RunResult, Stop, run_job
from dispatcher.times import BEIJING, format_onenet, parse_onenet
from tests.support.e2e import fast_settings, fleet, write_csv_job
from tests.support.ledger import write_outcomes

# -- the fake ------------------------------------------------------------------------------------


def answer(errno: int, error: str = "", *, status: int = 200, **headers: str) -> Answer:
    body = {"errno": errno, "error": error, "data": None}
    return Answer(status, orjson.dumps(body), headers)


def http(status: int, body: bytes = b"<html>busy</html>", **headers: str) -> Answer:
    return Answer(status, body, headers)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, turned into an Outcome by the real errno table (client.classify)."""

    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Lost:
    """The answer never arrives; ``created``: OneNET stored the command anyway."""

    created: bool


ACCEPT = "accept"
Script = Answer | Lost | str


@dataclass
class Created:
    request: ExecuteRequest
    uuid: str
    at: datetime


@dataclass
class FakeOneNet:
    """A scripted OneNET: answers per imei from a script (then accepts), and a history."""

    script: dict[str, list[Script]] = field(default_factory=dict)
    clock: Callable[[], float] | None = None
    history_down: bool = False
    probes: list[Outcome] = field(default_factory=list)  # answers to the probe, then accepted
    probed: list[str] = field(default_factory=list)
    looked_up_at: list[float] = field(default_factory=list)  # when each history call came
    history_gate: asyncio.Event | None = None  # history calls wait for it (None: answer at once)
    requests: list[ExecuteRequest] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    created: dict[str, Created] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        self.requests.append(req)
        if self.clock is not None:
            self.sent_at.append(self.clock())
        steps = self.script.get(req.imei)
        step = steps.pop(0) if steps else ACCEPT
        if isinstance(step, Answer):
            return classify(step.status, step.body, step.headers)
        if isinstance(step, Lost):
            if step.created:
                self._create(req)
            return Outcome(Verdict.IN_DOUBT, error="answer lost: ServerDisconnectedError")
        uuid = self._create(req)
        return classify(200, b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % uuid.encode(), {})

    def _create(self, req: ExecuteRequest) -> str:
        uuid = f"uuid-{next(self._ids):05d}"
        self.created[uuid] = Created(req, uuid, datetime.now(BEIJING).replace(microsecond=0))
        return uuid

    execute_url = "http://onenet.test/nbiot/execute/offline"

    async def probe(self, imei: str, start: datetime) -> Outcome:
        self.probed.append(imei)
        return self.probes.pop(0) if self.probes else Outcome(Verdict.ACCEPTED, errno=0)

    async def history(
        self,
        imei: str,
        start: datetime,
        end: datetime | None = None,
        *,
        before_page: Callable[[], Awaitable[None]] | None = None,
        on_date: Callable[[float], None] | None = None,
    ) -> list[HistoryItem]:
        if before_page is not None:
            await before_page()
        if self.clock is not None:
            self.looked_up_at.append(self.clock())
        if self.history_gate is not None:
            await self.history_gate.wait()
        if self.history_down:
            raise OneNetUnavailable("history: HTTP 502")
        items = []
        for c in self.created.values():
            if c.request.imei != imei or c.at < start:
                continue
            valid = parse_onenet(c.request.valid_time) if c.request.valid_time else c.at
            expired = parse_onenet(c.request.expired_time)
            items.append(
                HistoryItem(c.uuid, "EXECUTE", imei, c.at, valid, expired, 1, c.request.trigger_msg)
            )
        return items

    async def detail(
        self, imei: str, uuid: str, *, on_date: Callable[[float], None] | None = None
    ) -> dict[str, object]:
        if self.history_down:
            raise OneNetUnavailable("detail: HTTP 502")
        return {"args": self.created[uuid].request.args}

    def stats_throttled(self) -> int:
        return sum(1 for r in self.requests if r.imei in self.script)

    def sent_imeis(self) -> list[str]:
        return [r.imei for r in self.requests]

    def created_per_imei(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.created.values():
            counts[c.request.imei] = counts.get(c.request.imei, 0) + 1
        return counts


class VirtualTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


# -- running a job ---------------------------------------------------------------------------------


@dataclass
class Setup:
    job: Job
    ledger_path: Path
    imeis: list[str]


@pytest.fixture
def small_job(tmp_path: Path) -> Setup:
    imeis = fleet(20)
    return Setup(load_job(write_csv_job(tmp_path, imeis)), tmp_path / "job.db", imeis)


async def run(
    setup: Setup,
    client: FakeOneNet,
    settings: Settings | None = None,
    **kwargs: object,
) -> RunResult:
    kwargs.setdefault("sleep", no_wait)
    if "pace" not in kwargs:  # throttling answers slow the pace: let it slow virtual time only
        vt = VirtualTime()
        kwargs["pace"] = Pace(
            (settings or fast_settings()).limits.rate_per_second, clock=vt, sleep=vt.sleep
        )
    with Ledger.open(setup.ledger_path, synchronous="normal") as ledger:
        return await run_job(
            setup.job,
            client,
            ledger,
            settings or fast_settings(max_attempts=4),
            **kwargs,  # type: ignore[arg-type]
        )


def rows(setup: Setup) -> dict[str, Row]:
    with Ledger.open(setup.ledger_path, read_only=True) as ledger:
        return {r.command.imei: r for r in ledger.rows()}


def statuses(setup: Setup) -> dict[Status, int]:
    found: dict[Status, int] = {}
    for r in rows(setup).values():
        found[r.status] = found.get(r.status, 0) + 1
    return found


# -- outcomes ------------------------------------------------------------------------------------


async def test_errno_0_is_accepted_with_the_servers_uuid(small_job: Setup) -> None:
    client = FakeOneNet()
    result = await run(small_job, client)

    assert result.complete
    held = {c.uuid: c.request.imei for c in client.created.values()}
    assert {r.uuid: r.command.imei for r in rows(small_job).values()} == held
    assert {r.attempts for r in rows(small_job).values()} == {1}


@pytest.mark.parametrize("errno", [1, 3, 2001, 5006, 5106, 14, 16])
async def test_other_errnos_are_rejected_at_once_with_errno_and_text(
    small_job: Setup, errno: int
) -> None:
    target = small_job.imeis[5]
    client = FakeOneNet({target: [answer(errno, "the reason")]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.errno, row.error, row.attempts) == (
        Status.REJECTED,
        errno,
        "the reason",
        1,
    )
    assert client.sent_imeis().count(target) == 1
    assert statuses(small_job)[Status.ACCEPTED] == 19


@pytest.mark.parametrize(
    "throttled",
    [answer(7, "service internal error"), http(429, b"slow down", **{"Retry-After": "0"})],
    ids=["errno7", "http429"],
)
async def test_a_throttle_is_not_a_failure_and_uses_up_no_attempt(
    small_job: Setup, throttled: Answer
) -> None:
    target = small_job.imeis[3]
    client = FakeOneNet({target: [throttled] * 10})
    await run(small_job, client, fast_settings(max_attempts=4))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.ACCEPTED, 11)  # 10 throttled, then accepted
    assert client.sent_imeis().count(target) == 11
    assert statuses(small_job)[Status.ACCEPTED] == 20


async def test_a_server_that_throttles_without_end_fails_the_command_in_the_end(
    small_job: Setup,
) -> None:
    target = small_job.imeis[2]
    client = FakeOneNet({target: [answer(7, "service internal error")] * 100})
    await run(small_job, client, fast_settings(max_attempts=2))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.FAILED, 2 * THROTTLED_PER_ATTEMPT)
    assert statuses(small_job)[Status.ACCEPTED] == 19


@pytest.mark.parametrize(
    "transient",
    [answer(5117, "rpc error"), http(500), http(503)],
    ids=["errno5117", "http500", "http503"],
)
async def test_transient_answers_are_retried_then_failed_after_max_attempts(
    small_job: Setup, transient: Answer
) -> None:
    target = small_job.imeis[3]
    client = FakeOneNet({target: [transient] * 10})
    await run(small_job, client, fast_settings(max_attempts=4))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.FAILED, 4)
    assert row.uuid is None
    assert client.sent_imeis().count(target) == 4
    assert statuses(small_job)[Status.ACCEPTED] == 19


async def test_a_transient_answer_then_success_is_accepted(small_job: Setup) -> None:
    target = small_job.imeis[0]
    client = FakeOneNet({target: [http(503), answer(7)]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.attempts, row.errno) == (Status.ACCEPTED, 3, 0)
    assert client.created_per_imei()[target] == 1


async def test_errno_5108_is_retried_once_then_rejected(small_job: Setup) -> None:
    target = small_job.imeis[2]
    client = FakeOneNet({target: [answer(5108, "rpc response error")] * 5})
    await run(small_job, client, fast_settings(max_attempts=6))

    row = rows(small_job)[target]
    assert (row.status, row.errno, row.attempts) == (Status.REJECTED, 5108, 2)
    assert client.sent_imeis().count(target) == 2


async def test_errno_5108_then_success_is_accepted(small_job: Setup) -> None:
    target = small_job.imeis[2]
    client = FakeOneNet({target: [answer(5108, "rpc response error")]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.ACCEPTED, 2)


async def test_a_lost_answer_for_a_created_command_is_reconciled_not_resent(
    small_job: Setup,
) -> None:
    target = small_job.imeis[7]
    client = FakeOneNet({target: [Lost(created=True)]})
    result = await run(small_job, client)

    row = rows(small_job)[target]
    assert row.status is Status.ACCEPTED and row.reconciled
    assert row.uuid in client.created
    assert client.sent_imeis().count(target) == 1
    assert result.complete and result.stats.reconciled == 1


async def test_a_lost_answer_for_a_command_never_created_is_sent_again(small_job: Setup) -> None:
    target = small_job.imeis[7]
    client = FakeOneNet({target: [Lost(created=False)]})
    result = await run(small_job, client)

    row = rows(small_job)[target]
    assert row.status is Status.ACCEPTED and not row.reconciled
    assert client.sent_imeis().count(target) == 2
    assert client.created_per_imei()[target] == 1
    assert result.complete


async def test_a_lost_answer_stays_in_doubt_when_the_history_is_unreachable(
    small_job: Setup,
) -> None:
    target = small_job.imeis[7]
    client = FakeOneNet({target: [Lost(created=True)]}, history_down=True)
    result = await run(small_job, client)

    assert rows(small_job)[target].status is Status.IN_DOUBT
    assert client.sent_imeis().count(target) == 1  # never sent blindly again
    assert result.counts[Status.IN_DOUBT] == 1
    assert not result.complete


async def test_lost_answers_without_reconciling_stay_in_doubt(small_job: Setup) -> None:
    target = small_job.imeis[7]
    client = FakeOneNet({target: [Lost(created=True)]})
    await run(small_job, client, reconcile_in_doubt=False)

    assert rows(small_job)[target].status is Status.IN_DOUBT
    assert client.sent_imeis().count(target) == 1


# -- resume --------------------------------------------------------------------------------------


async def test_resume_skips_accepted_and_rejected_and_sends_pending_and_failed(
    small_job: Setup,
) -> None:
    commands = list(small_job.job.commands())
    accepted, rejected, failed = commands[0:5], commands[5:10], commands[10:15]
    with Ledger.open(small_job.ledger_path) as ledger:
        ledger.register(commands)
        write_outcomes(
            ledger,
            [Result(c.key, Status.ACCEPTED, 0, "", f"old-{c.imei}", 1, 1.0, 5.0) for c in accepted]
            + [Result(c.key, Status.REJECTED, 3, "bad", None, 1, 1.0, 5.0) for c in rejected]
            + [Result(c.key, Status.FAILED, 7, "busy", None, 6, 1.0, 5.0) for c in failed],
        )
    client = FakeOneNet()
    result = await run(small_job, client)

    expected = {c.imei for c in failed + commands[15:]}
    assert sorted(client.sent_imeis()) == sorted(expected)
    after = rows(small_job)
    assert all(after[c.imei].uuid == f"old-{c.imei}" for c in accepted)
    assert all(
        (after[c.imei].status, after[c.imei].errno) == (Status.REJECTED, 3) for c in rejected
    )
    assert all(after[i].status is Status.ACCEPTED for i in expected)
    assert result.stats.skipped == 10


async def test_a_second_run_of_a_finished_job_sends_nothing(small_job: Setup) -> None:
    await run(small_job, FakeOneNet())
    again = FakeOneNet()
    result = await run(small_job, again)

    assert again.requests == []
    assert result.complete and result.stats.skipped == 20


# -- pacing and times ----------------------------------------------------------------------------


def _max_in_any_window(starts: Sequence[float], window: float = 1.0) -> int:
    ordered = sorted(starts)
    most = 0
    for i, t in enumerate(ordered):
        j = i
        while j < len(ordered) and ordered[j] < t + window - 1e-9:
            j += 1
        most = max(most, j - i)
    return most


@pytest.mark.parametrize(("rate", "concurrency"), [(10, 8), (25, 4), (7.5, 16)])
async def test_pacing_holds_on_a_virtual_clock(
    tmp_path: Path, rate: float, concurrency: int
) -> None:
    imeis = fleet(100)
    setup = Setup(load_job(write_csv_job(tmp_path, imeis)), tmp_path / "p.db", imeis)
    vt = VirtualTime()
    pace = Pace(rate, clock=vt, sleep=vt.sleep)
    client = FakeOneNet(clock=vt)
    settings = fast_settings(rate=rate, concurrency=concurrency)
    result = await run(setup, client, settings, pace=pace, clock=vt, sleep=vt.sleep)

    assert result.complete
    starts = client.sent_at
    per_window = int(rate)
    assert len(starts) == 100
    assert _max_in_any_window(starts) <= per_window
    span = max(starts) - min(starts)
    # Total time ~ N / rate; the window's slack may add its share (pacing.WINDOW_SLACK_S).
    low, high = 98 / per_window, 100 / per_window * (1 + WINDOW_SLACK_S)
    assert low <= span <= high
    first_second = [t for t in starts if t < min(starts) + 1.0]
    assert len(first_second) <= per_window  # no initial burst


async def test_relative_times_are_resolved_just_before_sending(tmp_path: Path) -> None:
    """Times are resolved when the command is marked in flight, right before it waits for its
    pace slot (so that nothing but the send follows the slot): at most concurrency / rate early."""
    imeis = fleet(12)
    job_path = write_csv_job(tmp_path, imeis, valid_time="+10m", expired_time="+6h")
    setup = Setup(load_job(job_path), tmp_path / "t.db", imeis)
    vt = VirtualTime()
    pace = Pace(2, clock=vt, sleep=vt.sleep)
    client = FakeOneNet(clock=vt)
    await run(
        setup, client, fast_settings(rate=2, concurrency=4), pace=pace, clock=vt, sleep=vt.sleep
    )

    assert len({r.expired_time for r in client.requests}) > 1  # the clock did move
    longest_wait = timedelta(seconds=4 / 2 + 1)  # concurrency / rate, plus whole seconds
    for req, at in zip(client.requests, client.sent_at, strict=True):
        sent = datetime.fromtimestamp(at, BEIJING)
        assert req.valid_time is not None
        resolved = parse_onenet(req.valid_time) - timedelta(minutes=10)
        assert sent - longest_wait <= resolved <= sent
        assert parse_onenet(req.expired_time) - timedelta(hours=6) == resolved
    recorded = rows(setup)
    for req in client.requests:
        assert recorded[req.imei].sent_valid_time == req.valid_time
        assert recorded[req.imei].sent_expired_time == req.expired_time


async def test_retry_after_is_honoured_before_the_next_attempt(small_job: Setup) -> None:
    target = small_job.imeis[0]
    vt = VirtualTime()
    client = FakeOneNet({target: [http(429, b"", **{"Retry-After": "7"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(small_job, client, fast_settings(concurrency=1), pace=pace, clock=vt, sleep=vt.sleep)

    tries = [
        at for req, at in zip(client.requests, client.sent_at, strict=True) if req.imei == target
    ]
    assert len(tries) == 2
    assert tries[1] - tries[0] >= 7.0
    assert rows(small_job)[target].status is Status.ACCEPTED


# -- stopping ------------------------------------------------------------------------------------


@dataclass
class HeldOneNet(FakeOneNet):
    """Creates each command, then holds its answer until ``release`` (or forever)."""

    hold: int = 4
    release: asyncio.Event = field(default_factory=asyncio.Event)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    after_stop: list[str] = field(default_factory=list)
    stop: Stop | None = None

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        if self.stop is not None and self.stop.requested:
            self.after_stop.append(req.imei)
        self.requests.append(req)
        uuid = self._create(req)
        if len(self.requests) >= self.hold:
            self.full.set()
        await self.release.wait()
        return classify(200, b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % uuid.encode(), {})


async def test_graceful_stop_lets_in_flight_commands_finish_and_leaves_the_rest_pending(
    small_job: Setup,
) -> None:
    stop = Stop()
    client = HeldOneNet(hold=4, stop=stop)
    settings = fast_settings(concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await client.full.wait()
        stop.request("operator asked")
        client.release.set()
    result = running.result()

    assert len(client.requests) == 4
    assert client.after_stop == []
    assert result.stop_reason == "operator asked"
    assert statuses(small_job) == {Status.ACCEPTED: 4, Status.PENDING: 16}
    assert {r.uuid for r in rows(small_job).values() if r.uuid} == set(client.created)


class GatedSleep:
    """A virtual sleep that waits for ``gate`` before time moves; ``entered`` once anyone sleeps."""

    def __init__(self, vt: VirtualTime) -> None:
        self.vt = vt
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.vt.sleep(seconds)


async def test_graceful_stop_sends_nothing_that_was_still_waiting_for_the_pace(
    small_job: Setup,
) -> None:
    stop = Stop()
    vt = VirtualTime()
    gated = GatedSleep(vt)
    pace = Pace(1, clock=vt, sleep=gated)
    client = HeldOneNet(hold=1, stop=stop)
    settings = fast_settings(rate=1, concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(
            # no clock probe: it would take the first pace slot
            run(
                small_job,
                client,
                settings,
                stop=stop,
                pace=pace,
                clock=vt,
                sleep=vt.sleep,
                probe=False,
            )
        )
        await client.full.wait()  # one request on the wire
        await gated.entered.wait()  # the next one waits for its turn
        stop.request("operator asked")
        gated.gate.set()
        client.release.set()
    result = running.result()

    assert client.after_stop == []
    assert len(client.requests) == 1
    assert statuses(small_job) == {Status.ACCEPTED: 1, Status.PENDING: 19}
    assert result.stop_reason == "operator asked"


async def test_immediate_stop_leaves_in_flight_commands_in_doubt_and_the_rest_pending(
    small_job: Setup,
) -> None:
    stop = Stop()
    client = HeldOneNet(hold=4, stop=stop)  # never released: the answers never come
    settings = fast_settings(concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await client.full.wait()
        stop.request("operator asked twice", immediate=True)
    result = running.result()

    sent = set(client.sent_imeis())
    assert len(sent) == 4
    after = rows(small_job)
    assert {i for i, r in after.items() if r.status is Status.IN_DOUBT} == sent
    assert {r.status for i, r in after.items() if i not in sent} == {Status.PENDING}
    assert result.stop_reason == "operator asked twice"

    # resumed: the in-doubt ones are found in the history, the rest sent; nothing twice
    resumed = FakeOneNet()
    resumed.created = client.created
    resumed._ids = itertools.count(1000)
    final = await run(small_job, resumed)
    assert final.complete
    assert not set(resumed.sent_imeis()) & sent
    assert all(n == 1 for n in resumed.created_per_imei().values())
    assert len(resumed.created) == 20


async def test_graceful_stop_past_its_grace_puts_in_flight_commands_in_doubt(
    small_job: Setup,
) -> None:
    stop = Stop()
    client = HeldOneNet(hold=4, stop=stop)
    settings = fast_settings(concurrency=4, stop_grace_s=0.0)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await client.full.wait()
        stop.request("operator asked")
    running.result()

    assert statuses(small_job) == {Status.IN_DOUBT: 4, Status.PENDING: 16}


# -- outcomes that arrive while the disk is busy -------------------------------------------------


class BusyDiskLedger(Ledger):
    """A real ledger whose commit of one command's outcome is held until ``go`` is set."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hold_key = ""
        self.writing = threading.Event()
        self.go = threading.Event()

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        if any(r.key == self.hold_key for r in results):
            self.writing.set()
            self.go.wait(30)
        super().write_batch(items, results)


@dataclass
class LateOneNet(FakeOneNet):
    """Holds the answer to ``late_imei`` until ``answer_late`` is set."""

    late_imei: str = ""
    answer_late: asyncio.Event = field(default_factory=asyncio.Event)
    answered_late: asyncio.Event = field(default_factory=asyncio.Event)

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        outcome = await super().execute_offline(req)
        if req.imei == self.late_imei:
            await self.answer_late.wait()
            self.answered_late.set()
        return outcome


async def run_with_a_late_outcome(
    tmp_path: Path, first: Script, late: Script, settings: Settings
) -> Setup:
    """Two commands: the first one's outcome is being committed when the second one's arrives."""
    imeis = fleet(2)
    setup = Setup(load_job(write_csv_job(tmp_path, imeis)), tmp_path / "busy.db", imeis)
    client = LateOneNet({imeis[0]: [first], imeis[1]: [late]}, late_imei=imeis[1])
    vt = VirtualTime()
    with BusyDiskLedger.open(setup.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, BusyDiskLedger)
        ledger.hold_key = next(setup.job.commands()).key

        async def second_outcome_during_the_first_commit() -> None:
            await asyncio.to_thread(ledger.writing.wait, 30)
            client.answer_late.set()
            await client.answered_late.wait()
            for _ in range(1000):  # let the run go on until it needs the ledger again
                await asyncio.sleep(0)
            ledger.go.set()

        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(second_outcome_during_the_first_commit())
            pace = Pace(None, clock=vt, sleep=vt.sleep)
            # no probe: the breaker on the sends is what these runs are about
            tg.create_task(
                run_job(setup.job, client, ledger, settings, sleep=no_wait, pace=pace, probe=False)
            )
    return setup


async def test_a_lost_answer_recorded_while_the_disk_is_busy_is_still_settled(
    tmp_path: Path,
) -> None:
    lost = Lost(created=True)
    setup = await run_with_a_late_outcome(tmp_path, lost, lost, fast_settings(concurrency=2))

    assert statuses(setup) == {Status.ACCEPTED: 2}


async def test_wrong_key_answers_recorded_while_the_disk_is_busy_are_still_pending_again(
    tmp_path: Path,
) -> None:
    wrong = answer(1, "auth failed")
    settings = fast_settings(concurrency=2, breaker_threshold=2)
    setup = await run_with_a_late_outcome(tmp_path, wrong, wrong, settings)

    assert statuses(setup) == {Status.PENDING: 2}


# -- times at the moment of sending ---------------------------------------------------------------


def _beijing(unix: float) -> str:
    return format_onenet(datetime.fromtimestamp(unix, BEIJING))


def timed_job(tmp_path: Path, count: int, **times: str) -> Setup:
    imeis = fleet(count)
    return Setup(load_job(write_csv_job(tmp_path, imeis, **times)), tmp_path / "job.db", imeis)


async def test_an_absolute_valid_time_passed_during_a_retry_after_hold_is_dropped(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    valid = _beijing(vt.now + 10)
    setup = timed_job(tmp_path, 1, valid_time=valid)
    target = setup.imeis[0]
    client = FakeOneNet({target: [http(429, b"slow down", **{"Retry-After": "30"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(setup, client, fast_settings(), pace=pace, clock=vt, sleep=vt.sleep)

    first, retried = client.requests
    assert first.valid_time == valid
    assert retried.valid_time is None  # passed during the hold: "from now", never a 5006
    row = rows(setup)[target]
    assert (row.status, row.sent_valid_time) == (Status.ACCEPTED, None)


async def test_an_expired_time_passed_during_backoff_is_expired_locally_and_not_sent(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 1, expired_time=_beijing(vt.now + 20))
    target = setup.imeis[0]
    client = FakeOneNet({target: [http(429, b"slow down", **{"Retry-After": "60"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    result = await run(setup, client, fast_settings(), pace=pace, clock=vt, sleep=vt.sleep)

    assert len(client.requests) == 1  # the retry would have come after its expired_time
    row = rows(setup)[target]
    assert (row.status, row.attempts) == (Status.EXPIRED, 1)
    assert "expired_time passed" in row.error
    assert result.stats.expired == 1 and not result.complete


async def test_at_a_low_rate_relative_times_count_from_the_real_moment_of_sending(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 8, valid_time="+10s", expired_time="+1h")
    client = FakeOneNet(clock=vt)
    pace = Pace(1, clock=vt, sleep=vt.sleep)
    settings = fast_settings(rate=1, concurrency=8)
    await run(setup, client, settings, pace=pace, clock=vt, sleep=vt.sleep, probe=False)

    assert len(client.requests) == 8
    for req, sent in zip(client.requests, client.sent_at, strict=True):
        assert req.valid_time is not None
        ahead = parse_onenet(req.valid_time).timestamp() - sent
        assert 9 <= ahead <= 11  # not fixed up to concurrency / rate seconds early


async def test_a_job_whose_times_passed_since_it_was_validated_is_sent_without_raising(
    tmp_path: Path,
) -> None:
    past, soon = _beijing(time.time() - 60), _beijing(time.time() + 3600)
    setup = timed_job(tmp_path, 3, valid_time=past, expired_time=soon)
    client = FakeOneNet()
    result = await run(setup, client)

    assert result.complete
    assert [r.valid_time for r in client.requests] == [None, None, None]
    later = tmp_path / "later"
    later.mkdir()
    expired = timed_job(later, 2, expired_time=_beijing(time.time() - 60))
    result = await run(expired, FakeOneNet())
    assert statuses(expired) == {Status.EXPIRED: 2}
    assert result.stats.expired == 2


# -- settling and stopping ------------------------------------------------------------------------


async def test_the_settle_wait_counts_from_the_last_attempt_retries_included(
    small_job: Setup,
) -> None:
    vt = VirtualTime(start=time.time())
    target = small_job.imeis[0]
    client = FakeOneNet({target: [http(500), http(500), Lost(created=True)]}, clock=vt)
    settings = dataclasses.replace(
        fast_settings(), reliability=dataclasses.replace(fast_settings().reliability, settle_s=10)
    )
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(small_job, client, settings, pace=pace, clock=vt, sleep=vt.sleep)

    last_attempt = max(
        at for req, at in zip(client.requests, client.sent_at, strict=True) if req.imei == target
    )
    assert client.looked_up_at and min(client.looked_up_at) >= last_attempt + 10
    assert rows(small_job)[target].status is Status.ACCEPTED
    assert len(client.created_per_imei()) == 20


async def test_look_ups_take_pace_slots_and_count_as_requests(small_job: Setup) -> None:
    lost = small_job.imeis[:3]
    client = FakeOneNet({i: [Lost(created=True)] for i in lost})
    pace = Pace(None)
    result = await run(small_job, client, fast_settings(), pace=pace)

    sends, probes = len(client.requests), len(client.probed)
    look_ups = 3 * 2  # one history page and one detail per lost command
    assert pace.started == sends + probes + look_ups
    assert result.stats.requests == pace.started
    assert result.stats.accepted == 20 and result.stats.reconciled == 3  # each counted once


async def test_a_second_stop_during_reconciliation_ends_the_run_at_once(small_job: Setup) -> None:
    first = FakeOneNet({i: [Lost(created=True)] for i in small_job.imeis})
    await run(small_job, first, fast_settings(settle_s=0.0), reconcile_in_doubt=False)
    assert statuses(small_job) == {Status.IN_DOUBT: 20}

    stop = Stop()
    hung = FakeOneNet(history_gate=asyncio.Event())  # the history never answers
    hung.created = first.created
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, hung, fast_settings(), stop=stop))
        for _ in range(200):
            await asyncio.sleep(0)
        stop.request("operator asked")
        stop.request("operator asked twice", immediate=True)
    result = running.result()

    assert hung.requests == []  # nothing sent while in doubt
    assert statuses(small_job) == {Status.IN_DOUBT: 20}
    assert result.stop_reason == "operator asked"


async def test_a_graceful_stop_does_not_wait_out_a_long_hold(small_job: Setup) -> None:
    stop = Stop()
    hold = http(429, b"slow down", **{"Retry-After": "600"})
    client = FakeOneNet({i: [hold] for i in small_job.imeis})
    settings = fast_settings(concurrency=4, stop_grace_s=3600.0)
    notes: list[str] = []
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        running = tg.create_task(
            run(small_job, client, settings, stop=stop, pace=Pace(None), notify=notes.append)
        )
        for _ in range(1000):  # until a first answer asked to hold off for ten minutes
            if client.stats_throttled():
                break
            await asyncio.sleep(0.01)
        stop.request("operator asked")
    result = running.result()

    assert result.stop_reason == "operator asked"
    assert set(statuses(small_job)) == {Status.PENDING}  # nothing in doubt: none was on the wire
    assert not any("stopped at once" in n for n in notes)  # the grace was not waited out


# -- stops, clocks, marks and keys ------------------------------------------------------------


class SlowMarksLedger(Ledger):
    """A real ledger whose in-flight marks take a while to commit; counts the marks per key."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.marking = threading.Event()
        self.release = threading.Event()
        self.marks: dict[str, int] = {}

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        for item in items:
            self.marks[item.key] = self.marks.get(item.key, 0) + 1
        if items and not self.release.is_set():
            self.marking.set()
            self.release.wait(30)
        super().write_batch(items, results)


async def test_an_immediate_stop_while_waiting_for_the_first_mark_leaves_nothing_in_flight(
    small_job: Setup,
) -> None:
    stop = Stop()
    with SlowMarksLedger.open(small_job.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, SlowMarksLedger)

        async def stop_while_marking() -> None:
            await asyncio.to_thread(ledger.marking.wait, 30)
            stop.request("operator asked twice", immediate=True)
            for _ in range(50):
                await asyncio.sleep(0)
            ledger.release.set()

        client = FakeOneNet()
        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(stop_while_marking())
            running = tg.create_task(
                run_job(small_job.job, client, ledger, fast_settings(), stop=stop, sleep=no_wait)
            )
        result = running.result()

    assert client.requests == []
    assert result.counts[Status.IN_FLIGHT] == 0
    assert set(statuses(small_job)) == {Status.PENDING}
    assert result.stats.done == 0


async def test_marks_before_onenets_clock_is_known_carry_no_server_time(small_job: Setup) -> None:
    client = FakeOneNet()  # its answers carry no Date header
    await run(small_job, client)

    assert {r.first_server_at for r in rows(small_job).values()} == {None}


async def test_at_a_rate_far_below_the_concurrency_each_command_is_marked_once(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 60, expired_time="+1h")
    pace = Pace(20, clock=vt, sleep=vt.sleep)
    settings = fast_settings(rate=20, concurrency=200)
    with SlowMarksLedger.open(setup.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, SlowMarksLedger)
        ledger.release.set()
        await run_job(
            setup.job, FakeOneNet(clock=vt), ledger, settings, pace=pace, clock=vt, sleep=vt.sleep
        )
        marks = ledger.marks
    assert set(marks.values()) == {1}  # never marked a second time for a stale wait
    assert statuses(setup) == {Status.ACCEPTED: 60}


async def test_a_proven_key_makes_errno_1_a_devices_own_answer(small_job: Setup) -> None:
    foreign = small_job.imeis[:12]  # more than the breaker counts, all before any acceptance
    client = FakeOneNet({i: [answer(1, "auth failed")] for i in foreign})
    result = await run(small_job, client, fast_settings(concurrency=1, breaker_threshold=10))

    assert result.aborted is None  # the probe's errno 0 showed the key is right
    assert statuses(small_job) == {Status.REJECTED: 12, Status.ACCEPTED: 8}


async def test_foreign_devices_at_the_head_of_a_job_are_not_a_wrong_key(small_job: Setup) -> None:
    auth_failed = classify(200, orjson.dumps({"errno": 1, "error": "auth failed"}), {})
    client = FakeOneNet(probes=[auth_failed] * 3)  # the first three devices are not the product's
    result = await run(small_job, client, fast_settings(breaker_threshold=10))

    assert result.aborted is None and result.complete
    assert client.probed == small_job.imeis[:4]  # asked on until one answered


async def test_errno_1_for_as_many_devices_as_the_breaker_counts_is_a_wrong_key(
    small_job: Setup,
) -> None:
    auth_failed = classify(200, orjson.dumps({"errno": 1, "error": "auth failed"}), {})
    client = FakeOneNet(probes=[auth_failed] * 20)
    result = await run(small_job, client, fast_settings(breaker_threshold=5))

    assert isinstance(result.aborted, WrongKeyError)
    assert client.probed == small_job.imeis[:5] and client.requests == []


async def test_a_look_up_that_fails_once_is_asked_again_and_nothing_is_resent(
    small_job: Setup,
) -> None:
    lost = small_job.imeis[:2]
    client = FlakyHistoryOneNet({i: [Lost(created=True)] for i in lost}, failures=1)
    result = await run(small_job, client, fast_settings())

    assert result.complete and result.stats.reconciled == 2
    assert client.history_calls > 2  # each device asked again after the first failure
    assert all(n == 1 for n in client.created_per_imei().values())


@dataclass
class FlakyHistoryOneNet(FakeOneNet):
    """A history that fails its first ``failures`` calls (HTTP 502), then answers."""

    failures: int = 0
    history_calls: int = 0

    async def history(
        self,
        imei: str,
        start: datetime,
        end: datetime | None = None,
        *,
        before_page: Callable[[], Awaitable[None]] | None = None,
        on_date: Callable[[float], None] | None = None,
    ) -> list[HistoryItem]:
        self.history_calls += 1
        if self.history_calls <= self.failures:
            raise OneNetUnavailable("history: HTTP 502")
        return await super().history(imei, start, end, before_page=before_page, on_date=on_date)


async def test_a_query_retry_ends_when_a_stop_comes_during_its_backoff() -> None:
    stop = Stop()
    calls: list[int] = []

    async def look_up() -> None:
        calls.append(1)
        raise OneNetUnavailable("history: HTTP 502")

    async def backoff(seconds: float) -> None:
        stop.request("operator asked")  # the stop comes while it waits to ask again

    policy = retry_query(RetrySettings(max_attempts=5), stop=stop, sleep=backoff)
    with pytest.raises(OneNetUnavailable):
        await policy(look_up)
    assert len(calls) == 1


async def test_a_query_that_timed_out_is_not_asked_again() -> None:
    calls: list[int] = []

    async def look_up() -> None:
        calls.append(1)
        try:
            raise TimeoutError
        except TimeoutError as exc:
            raise OneNetUnavailable("history: TimeoutError") from exc

    policy = retry_query(RetrySettings(max_attempts=5), stop=Stop(), sleep=no_wait)
    with pytest.raises(OneNetUnavailable):
        await policy(look_up)
    assert len(calls) == 1  # a hung server would make every look-up wait several timeouts
