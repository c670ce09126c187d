"""The whole tool against the emulator, driven through random sequences of what an operator does.

A hypothesis state machine runs the real command line (``python -m dispatcher ...``, a process
each time, so that a run can be killed with SIGKILL) against the emulator served over loopback
by an event loop in a thread of this test, whose record of what it received is read on that loop.
Its rules: run the job (with HTTP 500s, answers lost after the command was created, truncated
answers, throttling, a device outside the product, and sometimes a SIGKILL once a given number of
create calls, or of calls of any kind, reached OneNET), edit the job file (the job's or a row's
args, a row's times, remove or add rows, add or remove a step), run with ``--accept-changes``,
``retry-failed`` (onto a new file, or over the last one with and without ``--force``) and run the
retry jobs, ``cancel --yes`` and ``status``; the job may have a canary with ``then: pause`` and
two products.

After every step the promises are checked against the emulator's record and the ledgers (read
with a plain read-only sqlite3 connection):

(a) no command (device, operation, ids, args, delivery fields, expiry) reaches OneNET twice;
(b) every command OneNET holds is known to exactly one ledger row, accepted with its uuid, across
    the job's and the retry jobs' ledgers, unless its answer was lost and it is not settled yet:
    then a row of it is in flight or in doubt; and no ledger holds a uuid OneNET does not;
(c) every command of every job file is at OneNET or in a state that says why not; a command
    handed to a retry job is in that job's file;
(d) nothing the ledger called final (accepted with its uuid, rejected) changes afterwards;
(e) a canary that paused judged the job as it was: a later run sends no more than a canary's
    worth of commands (per product) whose content (operation, ids, args) no good canary judged
    (an edit back to content judged before needs none), and the same job run again after a good
    canary does not pause again;
(f) a ``status`` that read every state read those of every command OneNET holds for the ledger,
    and a ``cancel`` that cancelled every waiting one left none waiting for a device of the job,
    earlier versions (edited, or with other args) included.

``make test`` runs 25 sequences from a fixed seed and shows a failure unshrunk; ``make soak``
(DISPATCHER_SOAK=1) runs many from random seeds and prints the shortest failing sequence
hypothesis finds. DISPATCHER_MODEL_VERBOSE=1 (with pytest -s) shows each command line as it runs
and the end of what it said.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dispatcher.emulator.server import Emulator, Faults, Product, StoredCommand, serve
from dispatcher.job.model import load_job
from tests.support.cli import process_env
from tests.support.e2e import imei

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
METERS_KEY, LIGHTS_KEY = "model-meters-key-3c1", "model-lights-key-7d2"
PRODUCTS = ("meters", "lights")
DEVICES = 12  # in the job at first: the first DEVICES - SPARES; the rest can be added
SPARES = 4
CLI_TIMEOUT_S = 90.0
WAITING = 1  # OneNET's send_status of a command cached for a device not woken yet
RUN_CODES = {0, 1, 3, 4, 130}  # docs/running.md "Exit codes": what a run may end with here
FOLLOW_UP_CODES = {0, 3}  # status and cancel

_SOAK = os.environ.get("DISPATCHER_SOAK") == "1"
_VERBOSE = os.environ.get("DISPATCHER_MODEL_VERBOSE") == "1"
settings.register_profile(
    "model-ci",  # make test: the same few sequences every time, well under a minute
    max_examples=25,
    stateful_step_count=20,
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # a failure is shown as found: make soak shrinks
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "model-soak",  # make soak: random seeds, long sequences; the shortest failure is printed
    max_examples=int(os.environ.get("DISPATCHER_SOAK_EXAMPLES", "2000")),
    stateful_step_count=30,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("model-soak" if _SOAK else "model-ci")


# --- the emulator, served by a loop in a thread of the test -----------------------------------


class ServedEmulator:
    """An emulator served over loopback by an event loop in its own thread; its state is read,
    and its faults set, on that loop. It can SIGKILL a process once enough create calls came."""

    def __init__(self, products: bool) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()
        self._kill: tuple[int, Kill] | None = None  # (pid, the call to kill it at)
        self._calls = 0  # every call, create or follow-up
        self.emulator, self.url = self._call(self._start(products))

    async def _start(self, products: bool) -> tuple[Emulator, str]:
        served = None
        if products:
            served = {"meters": Product(api_key=METERS_KEY), "lights": Product(api_key=LIGHTS_KEY)}
        emulator = Emulator(sleep=self._on_call, products=served)
        url = await self._stack.enter_async_context(serve(emulator))
        return emulator, url

    async def _on_call(self, seconds: float) -> None:
        """The emulator's latency hook, at the start of every call (after its create call was
        counted): the moment a run is killed, a command about to be stored or a history about to
        be read."""
        self._calls += 1
        kill = self._kill
        if kill is not None and self._count(kill[1].of) >= kill[1].at:
            self._kill = None
            with contextlib.suppress(ProcessLookupError):
                os.kill(kill[0], signal.SIGKILL)

    def _count(self, of: str) -> int:
        return self._posts() if of == "create" else self._calls

    def _posts(self) -> int:
        posts = self.emulator.stats()["posts"]
        assert isinstance(posts, int)
        return posts

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the emulator's loop, between two of its steps."""

        async def call() -> T:
            return fn()

        return self._call(call())

    def held(self) -> list[StoredCommand]:
        """Every command OneNET holds (cancelled ones too), in the order created."""
        return self.on_loop(self.emulator.accepted)

    def set_faults(self, faults: Faults) -> None:
        def put() -> None:
            self.emulator.faults = faults

        self.on_loop(put)

    def kill_at(self, pid: int, kill: Kill | None) -> None:
        """SIGKILL ``pid`` when the ``kill.at``-th call from now (of its kind) reaches OneNET."""

        def arm() -> None:
            if kill is None:
                self._kill = None
            else:
                self._kill = (pid, kill._replace(at=self._count(kill.of) + kill.at))

        self.on_loop(arm)

    def close(self) -> None:
        self._call(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


# --- what a run meets -----------------------------------------------------------------------


class Plan(Enum):
    """The faults a run meets: (HTTP 500, answer lost after creating, answer cut in half)
    rates, and the admitted create calls per second (None: no throttling)."""

    CLEAN = (0.0, 0.0, 0.0, None)
    HTTP500 = (0.4, 0.0, 0.0, None)
    LOST_ANSWERS = (0.0, 0.4, 0.0, None)
    TRUNCATED = (0.0, 0.0, 0.4, None)
    THROTTLED = (0.0, 0.0, 0.0, 8.0)
    MIXED = (0.15, 0.15, 0.15, None)

    def faults(self, seed: int, foreign: frozenset[str]) -> Faults:
        fail, cut_after, truncate, throttle = self.value
        # latency_ms makes the emulator call its latency hook (ServedEmulator._on_call) on every
        # call; the hook does not wait
        return Faults(
            fail_rate=fail,
            cut_after_rate=cut_after,
            truncate_rate=truncate,
            throttle_rps=throttle,
            latency_ms=0.001,
            seed=seed,
            foreign_imeis=foreign,
        )


plans = st.sampled_from(Plan)
seeds = st.integers(0, 999)


class Kill(NamedTuple):
    """A SIGKILL when the ``at``-th call of its kind (``create``, or any ``call``: history
    reads too) reaches OneNET: its command is stored (or its read answered) for no one."""

    of: str
    at: int


kills = st.none() | st.builds(Kill, st.sampled_from(["create", "call"]), st.integers(1, 10))


# --- the job file, as the model holds it ----------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A device of the job, and what its row gives of its own."""

    imei: str
    product: str | None
    args: int | None = None  # a variant of its own args (no steps); None: the job's
    hours: int | None = None  # its own expired_time, +Nh; None: the job's


@dataclass
class JobModel:
    """The job file the operator edits: devices, args, times, steps, rollout."""

    targets: list[Target]
    spares: list[Target]
    args: int = 0  # the job's args variant (no steps)
    steps: list[int] = field(default_factory=list)  # each step's args variant; [] no steps
    canary: int | None = None  # canary size, then: pause
    abort: bool = False

    def yaml(self) -> str:
        lines = [
            "job: model",
            "defaults:",
            "  obj_id: 5",
            "  obj_inst_id: 0",
            "  res_id: 2",
            "  expired_time: +24h",
            "  trigger_msg: 3",
            "  retry: 3",
            "  timeout: 30",
        ]
        if not self.steps:
            lines.append(f"  args: fw=v{self.args}")
        rollout = []
        if self.canary is not None:
            rollout.append(f"  canary: {{size: {self.canary}, then: pause}}")
        if self.abort:
            rollout.append("  abort: {max_failure_rate: 0.3, min_decided: 3}")
        if rollout:
            lines += ["rollout:", *rollout]
        if self.steps:
            lines.append("steps:")
            lines += [
                f"  - {{res_id: {2 + n}, args: s{n + 1}=v{v}}}" for n, v in enumerate(self.steps)
            ]
        lines.append("targets:")
        for t in self.targets:
            lines.append(f"  - imei: '{t.imei}'")
            if t.product is not None:
                lines.append(f"    product: {t.product}")
            if t.args is not None and not self.steps:
                lines.append(f"    args: fw=r{t.args}")
            if t.hours is not None:
                lines.append(f"    expired_time: +{t.hours}h")
        return "\n".join(lines) + "\n"


# --- what makes two commands the same -------------------------------------------------------

Identity = tuple[str, str, int, int | None, int | None, str | None, int, int, int, int]
Content = tuple[str, int, int | None, int | None, str | None]

_RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1, "d": 24}


def hours_of(text: str) -> int:
    """The hours of a relative expired_time (+24h, +1d); the jobs here use no other kind."""
    m = _RELATIVE.match(text)
    assert m is not None, f"not a relative time: {text!r}"
    return round(int(m.group(1)) * _HOURS[m.group(2)])


def held_identity(c: StoredCommand) -> Identity:
    hours = round((c.expired_at - c.created_at) / 3600)
    return (c.imei, c.type.lower(), c.obj_id, c.obj_inst_id, c.res_id, c.args,
            c.retry or 0, c.timeout or 0, c.trigger_msg or 0, hours)  # fmt: skip


@dataclass(frozen=True)
class LedgerRow:
    """The columns of a ledger row that the checks read."""

    ledger: str
    seq: int
    key: str
    imei: str
    op: str
    obj_id: int
    obj_inst_id: int | None
    res_id: int | None
    args: str | None
    retry: int
    timeout: int
    trigger_msg: int
    expired_time: str
    status: str
    uuid: str | None
    errno: int | None
    error: str
    retired: str | None
    retried_in: str | None
    send_status: int | None

    @property
    def identity(self) -> Identity:
        hours = hours_of(self.expired_time)
        return (self.imei, self.op, self.obj_id, self.obj_inst_id, self.res_id, self.args,
                self.retry, self.timeout, self.trigger_msg, hours)  # fmt: skip

    @property
    def content(self) -> Content:
        return (self.op, self.obj_id, self.obj_inst_id, self.res_id, self.args)


_COLUMNS = (
    "seq, key, imei, op, obj_id, obj_inst_id, res_id, args, retry, timeout, trigger_msg,"
    " expired_time, status, uuid, errno, error, retired, retried_in, send_status"
)


def read_ledger(path: Path) -> list[LedgerRow]:
    """Every row of a ledger, through a read-only connection; [] when there is none yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM commands ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # killed before its schema was written
        return []
    finally:
        conn.close()
    out = []
    for r in rows:
        values = list(r)
        values[5] = None if values[5] == -1 else values[5]  # NO_ID: a read's omitted id
        values[6] = None if values[6] == -1 else values[6]
        out.append(LedgerRow(str(path), *values))
    return out


# --- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    code: int
    out: str

    @property
    def paused(self) -> bool:
        return "paused, as rollout.canary.then says" in self.out


def cli_env() -> dict[str, str]:
    return process_env(METERS_KEY, METERS_KEY=METERS_KEY, LIGHTS_KEY=LIGHTS_KEY)


CONFIG = """\
limits: {rate_per_second: 0, concurrency: 1}  # one request at a time: the same faults each time
retry: {max_attempts: 2, initial_backoff_s: 0.001, max_backoff_s: 0.01, request_timeout_s: 5}
reliability: {settle_s: 0.05, stop_grace_s: 5}
ledger: {synchronous: normal, batch_size: 50}
"""
PRODUCTS_CONFIG = """\
products:
  meters: {api_key_env: METERS_KEY}
  lights: {api_key_env: LIGHTS_KEY}
"""


# --- the machine ----------------------------------------------------------------------------


class Violation(AssertionError):
    """A promise of the tool broken: the sequence before it is the reproduction."""


class Operator(RuleBasedStateMachine):
    """An operator at the command line, against OneNET, with the job file in an editor."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="dispatcher-model-"))
        self.server: ServedEmulator | None = None
        self.job = JobModel([], [])
        self.lanes = 1
        self.foreign: frozenset[str] = frozenset()
        self.retry_files: list[Path] = []  # written by retry-failed, in order
        self.finals: dict[tuple[str, int], tuple[str, str | None, int | None]] = {}
        # By lane (a product; None without products): what a good canary judged, and the job
        # file it paused.
        self.judged: dict[str | None, set[Content]] = {}
        self.judged_yaml: dict[str | None, str] = {}

    # -- set-up ---------------------------------------------------------------------------------

    @initialize(
        products=st.booleans(),
        canary=st.none() | st.integers(1, 3),
        abort=st.booleans(),
        foreign=st.booleans(),
        steps=st.booleans(),
    )
    def start(
        self, products: bool, canary: int | None, abort: bool, foreign: bool, steps: bool
    ) -> None:
        self.server = ServedEmulator(products)
        self.lanes = 2 if products else 1
        devices = [
            Target(imei(7000 + n), PRODUCTS[n % 2] if products else None) for n in range(DEVICES)
        ]
        self.job = JobModel(
            devices[: DEVICES - SPARES],
            devices[DEVICES - SPARES :],
            steps=[0, 0] if steps else [],
            canary=canary,
            abort=abort,
        )
        self.foreign = frozenset({devices[2].imei}) if foreign else frozenset()
        config = CONFIG + (PRODUCTS_CONFIG if products else "")
        (self.dir / "config.yaml").write_text(config, encoding="utf-8")
        self.write_job()

    def teardown(self) -> None:
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- paths and the command line -------------------------------------------------------------

    @property
    def job_path(self) -> Path:
        return self.dir / "job.yaml"

    @staticmethod
    def ledger_of(job: Path) -> Path:
        return job.with_name(job.name + ".ledger.db")

    def write_job(self) -> None:
        self.job_path.write_text(self.job.yaml(), encoding="utf-8")

    def cli(self, *args: str | Path, kill: Kill | None = None) -> Done:
        assert self.server is not None
        log = self.dir / "cli.log"
        argv = [sys.executable, "-m", "dispatcher", *map(str, args)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=self.dir, env=cli_env(), stdout=out, stderr=subprocess.STDOUT
            )
            self.server.kill_at(proc.pid, kill)
            try:
                code = proc.wait(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.wait()
                said = log.read_text(encoding="utf-8", errors="replace")
                raise Violation(f"{' '.join(argv[3:])} did not end in time:\n{said}") from exc
            finally:
                self.server.kill_at(proc.pid, None)
        text = log.read_text(encoding="utf-8", errors="replace")
        if _VERBOSE:  # each command line and the end of what it said, as it happens
            print("$", *argv[3:], "->", code, "\n", text[-600:], file=sys.stderr)
        if "Traceback" in text:
            raise Violation(f"{' '.join(argv[3:])} ended in a traceback:\n{text}")
        return Done(code, text)

    def online(self, *args: str | Path) -> list[str | Path]:
        assert self.server is not None
        return [*args, "--config", self.dir / "config.yaml", "--base-url", self.server.url]

    def run(self, job: Path, plan: Plan, seed: int, kill: Kill | None, *flags: str) -> Done:
        assert self.server is not None
        self.server.set_faults(plan.faults(seed, self.foreign))
        done = self.cli(*self.online("run", job, "--no-progress", *flags), kill=kill)
        self.server.set_faults(Faults())
        expected = RUN_CODES | ({-signal.SIGKILL} if kill is not None else set())
        if done.code not in expected:
            raise Violation(f"run {job.name} exited {done.code}:\n{done.out}")
        return done

    # -- rules: running ------------------------------------------------------------------------

    @rule(plan=plans, seed=seeds, kill=kills, accept_changes=st.booleans())
    def run_job(self, plan: Plan, seed: int, kill: Kill | None, accept_changes: bool) -> None:
        before = {c.uuid for c in self.held()}
        flags = ("--accept-changes",) if accept_changes else ()
        done = self.run(self.job_path, plan, seed, kill, *flags)
        if self.job.canary is not None:
            self.check_canary(done, [c for c in self.held() if c.uuid not in before])

    @precondition(lambda self: bool(self.retry_files))
    @rule(which=st.integers(0, 3), plan=plans, seed=seeds, kill=kills)
    def run_retry_job(self, which: int, plan: Plan, seed: int, kill: Kill | None) -> None:
        self.run(self.retry_files[which % len(self.retry_files)], plan, seed, kill)

    # -- rules: retry-failed, status, cancel -----------------------------------------------------

    @precondition(lambda self: self.ledger_of(self.job_path).exists())
    @rule(from_retry=st.booleans(), over_last=st.booleans(), force=st.booleans())
    def retry_failed(self, from_retry: bool, over_last: bool, force: bool) -> None:
        source = self.job_path
        if from_retry and self.retry_files:
            last = self.retry_files[-1]
            if self.ledger_of(last).exists():
                source = last
        if over_last and self.retry_files:
            output = self.retry_files[-1]
        else:
            output = self.dir / f"retry-{len(self.retry_files) + 1}.yaml"
        flags = ("--force",) if force else ()
        done = self.cli("retry-failed", self.ledger_of(source), "-o", output, *flags)
        if done.code not in (0, 2):
            raise Violation(f"retry-failed exited {done.code}:\n{done.out}")
        if output.exists() and output not in self.retry_files:
            self.retry_files.append(output)

    @rule(which=st.integers(0, 3))
    def status(self, which: int) -> None:
        self.follow_up("status", which)

    @rule(which=st.integers(0, 3))
    def cancel(self, which: int) -> None:
        self.follow_up("cancel", which, "--yes")

    def follow_up(self, command: str, which: int, *flags: str) -> None:
        jobs = [self.job_path, *self.retry_files]
        ledger = self.ledger_of(jobs[which % len(jobs)])
        if not read_ledger(ledger):
            return  # none yet, or a run killed before it registered anything: refused (exit 1)
        done = self.cli(*self.online(command, ledger, *flags))
        if done.code not in FOLLOW_UP_CODES:
            raise Violation(f"{command} exited {done.code}:\n{done.out}")
        if done.code == 0:
            self.check_follow_up_saw_everything(command, ledger)

    def check_follow_up_saw_everything(self, command: str, ledger: Path) -> None:
        """(f) a status that read every state did so for every command of the ledger OneNET
        holds, retired ones too; a cancel that cancelled every waiting command did so for every
        command OneNET holds for a device still in the job: earlier versions too (a device taken
        out of the job may be left alone)."""
        held = {c.uuid: c for c in self.held()}
        rows = read_ledger(ledger)
        in_job = {r.imei for r in rows if r.retired is None}
        for row in rows:
            c = held.get(row.uuid or "")
            if c is None:
                continue
            if command == "cancel" and c.send_status == WAITING and row.imei in in_job:
                raise Violation(f"(f) cancel ended 0, and OneNET still has it waiting: {row}")
            if command == "status" and row.send_status != c.send_status:
                raise Violation(
                    f"(f) status ended 0, and its send_status is {c.send_status} at OneNET: {row}"
                )

    # -- rules: editing the job ------------------------------------------------------------------

    @rule(variant=st.integers(0, 2))
    def edit_job_args(self, variant: int) -> None:
        if self.job.steps:
            self.job.steps = [variant] * len(self.job.steps)
        else:
            self.job.args = variant
        self.write_job()

    @rule(row=st.integers(0, DEVICES), variant=st.none() | st.integers(0, 2))
    def edit_row_args(self, row: int, variant: int | None) -> None:
        if self.job.steps:
            step = row % len(self.job.steps)
            self.job.steps[step] = 0 if variant is None else variant
        else:
            t = self.job.targets[row % len(self.job.targets)]
            self.job.targets[row % len(self.job.targets)] = replace(t, args=variant)
        self.write_job()

    @rule(row=st.integers(0, DEVICES), hours=st.none() | st.sampled_from([36, 48, 72]))
    def edit_row_times(self, row: int, hours: int | None) -> None:
        t = self.job.targets[row % len(self.job.targets)]
        self.job.targets[row % len(self.job.targets)] = replace(t, hours=hours)
        self.write_job()

    @precondition(lambda self: len(self.job.targets) > 2)
    @rule(row=st.integers(0, DEVICES))
    def remove_row(self, row: int) -> None:
        self.job.spares.append(self.job.targets.pop(row % len(self.job.targets)))
        self.write_job()

    @precondition(lambda self: bool(self.job.spares))
    @rule(which=st.integers(0, DEVICES))
    def add_row(self, which: int) -> None:
        self.job.targets.append(self.job.spares.pop(which % len(self.job.spares)))
        self.write_job()

    @precondition(lambda self: 0 < len(self.job.steps) < 3)
    @rule(variant=st.integers(0, 2))
    def add_step(self, variant: int) -> None:
        self.job.steps.append(variant)
        self.write_job()

    @precondition(lambda self: len(self.job.steps) > 1)
    @rule()
    def remove_last_step(self) -> None:
        self.job.steps.pop()
        self.write_job()

    # -- the promises ----------------------------------------------------------------------------

    def held(self) -> list[StoredCommand]:
        assert self.server is not None
        return self.server.held()

    def ledgers(self) -> dict[Path, list[LedgerRow]]:
        jobs = [self.job_path, *self.retry_files]
        return {job: read_ledger(self.ledger_of(job)) for job in jobs}

    @invariant()
    def promises_hold(self) -> None:
        if self.server is None:
            return
        held = self.held()
        ledgers = self.ledgers()
        rows = [r for rs in ledgers.values() for r in rs]
        self.check_never_twice(held)
        self.check_each_held_command_has_one_row(held, rows)
        self.check_every_command_accounted_for(held, ledgers)
        self.check_finals_stay(rows)

    def check_never_twice(self, held: list[StoredCommand]) -> None:
        """(a)"""
        twice = {k: n for k, n in Counter(map(held_identity, held)).items() if n > 1}
        if twice:
            raise Violation(f"(a) commands OneNET got more than once: {twice}")

    def check_each_held_command_has_one_row(
        self, held: list[StoredCommand], rows: list[LedgerRow]
    ) -> None:
        """(b)"""
        by_uuid: dict[str, list[LedgerRow]] = {}
        for r in rows:
            if r.uuid is not None:
                by_uuid.setdefault(r.uuid, []).append(r)
        unsettled = Counter(r.identity for r in rows if r.status in ("in_flight", "in_doubt"))
        for c in held:
            claims = by_uuid.pop(c.uuid, [])
            if len(claims) > 1:
                raise Violation(f"(b) {c.uuid} is held by {len(claims)} rows: {claims}")
            if claims:
                (row,) = claims
                if row.status != "accepted" or row.identity != held_identity(c):
                    raise Violation(f"(b) {c.uuid} ({held_identity(c)}) is held by {row}")
            elif unsettled[held_identity(c)] > 0:
                unsettled[held_identity(c)] -= 1
            else:
                raise Violation(
                    f"(b) OneNET holds {c.uuid} {held_identity(c)}, and no ledger row has it,"
                    " in flight or in doubt"
                )
        if by_uuid:
            raise Violation(f"(b) ledger rows hold uuids OneNET never created: {by_uuid}")

    def check_every_command_accounted_for(
        self, held: list[StoredCommand], ledgers: dict[Path, list[LedgerRow]]
    ) -> None:
        """(c)"""
        at_onenet = {c.uuid for c in held}
        contents = {job: self.job_contents(job) for job in ledgers if job.exists()}
        for job, rows in ledgers.items():
            if not job.exists():
                continue
            active = {r.key: r for r in rows if r.retired is None}
            for key in contents[job]:
                row = active.get(key)
                if row is None:
                    continue  # not registered yet (a stop or a kill came first): pending
                self.check_row_says_why(row, at_onenet)
            for row in rows:
                if row.retried_in is not None:
                    self.check_handed_over(row, contents)

    @staticmethod
    def job_contents(job: Path) -> dict[str, tuple[str, Content]]:
        """Each command of a job file by its ledger key: its device and content."""
        return {
            c.key: (c.imei, (c.op, c.obj_id, c.obj_inst_id, c.res_id, c.args))
            for c in load_job(job).commands()
        }

    @staticmethod
    def check_row_says_why(row: LedgerRow, at_onenet: set[str]) -> None:
        if row.status == "accepted":
            if row.uuid is None or row.uuid not in at_onenet:
                raise Violation(f"(c) accepted, and OneNET does not hold it: {row}")
        elif row.status == "skipped" and not row.error:
            raise Violation(f"(c) skipped with no reason: {row}")
        elif row.status == "retried" and row.retried_in is None:
            raise Violation(f"(c) retried, and handed to no job: {row}")
        elif row.status not in (
            "pending", "in_flight", "in_doubt", "rejected", "failed", "expired", "skipped",
            "retried",
        ):  # fmt: skip
            raise Violation(f"(c) a state that says nothing: {row}")

    def check_handed_over(
        self, row: LedgerRow, contents: dict[Path, dict[str, tuple[str, Content]]]
    ) -> None:
        assert row.retried_in is not None
        path = Path(row.retried_in)
        if not path.is_absolute():
            path = self.dir / path
        found = next((c for p, c in contents.items() if p.resolve() == path.resolve()), None)
        if found is None:
            raise Violation(f"(c) handed to {row.retried_in}, which is not there: {row}")
        if (row.imei, row.content) not in found.values():
            raise Violation(f"(c) handed to {path.name}, which does not hold it: {row}")

    def check_finals_stay(self, rows: list[LedgerRow]) -> None:
        """(d)"""
        now = {(r.ledger, r.seq): r for r in rows}
        for place, was in self.finals.items():
            row = now.get(place)
            if row is None or (row.status, row.uuid, row.errno) != was:
                raise Violation(f"(d) a final row changed: was {was}, now {row}")
        for r in rows:
            if (r.status == "accepted" and r.uuid is not None) or r.status == "rejected":
                self.finals[(r.ledger, r.seq)] = (r.status, r.uuid, r.errno)

    def check_canary(self, done: Done, sent: list[StoredCommand]) -> None:
        """(e), lane by lane: each product draws, judges and pauses on its own canary."""
        assert self.job.canary is not None
        text = self.job_path.read_text(encoding="utf-8")
        lanes = list(PRODUCTS) if self.lanes > 1 else [None]
        paused = self.paused_lanes(done, lanes)
        contents = {content for _, content in self.job_contents(self.job_path).values()}
        # a canary is of devices (each gets every step)
        worth = self.job.canary * max(1, len(self.job.steps))
        for lane in lanes:
            if lane in paused and self.judged_yaml.get(lane) == text:
                raise Violation(f"(e) the same job paused again after a good canary ({lane})")
            judged = self.judged.get(lane, set())
            unjudged = [
                c
                for c in sent
                if c.product == lane
                and (c.type.lower(), c.obj_id, c.obj_inst_id, c.res_id, c.args) not in judged
            ]
            if len(unjudged) > worth:
                raise Violation(
                    f"(e) {len(unjudged)} commands sent that no canary judged (canary size"
                    f" {self.job.canary}, product {lane}):"
                    f" {[held_identity(c) for c in unjudged]}"
                )
            if lane in paused:  # what earlier canaries judged stays judged (an edit back)
                self.judged[lane] = judged | contents
                self.judged_yaml[lane] = text
            elif done.code == -signal.SIGKILL:  # its canary may have passed, unsaid: judged
                self.judged[lane] = judged | contents

    @staticmethod
    def paused_lanes(done: Done, lanes: list[str | None]) -> set[str | None]:
        """The lanes a run paused after a good canary (several products: each says so)."""
        if lanes == [None]:
            return {None} if done.paused else set()
        return {p for p in lanes if f"product {p}: stopped: paused after the canary" in done.out}


Operator.TestCase.settings = PROFILE
TestOperator = Operator.TestCase
