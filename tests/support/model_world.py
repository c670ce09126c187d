"""The world the model-based test (tests/e2e/test_model.py) drives: the emulator served by a loop
in a thread of the test, what a run meets (plans of faults, kills), the job file as the model
holds it, what makes two commands the same, the ledger read with plain sqlite3, and the command
line's config and result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from hypothesis import strategies as st

from dispatcher.emulator.server import Emulator, Faults, Product, StoredCommand, serve
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from tests.support.cli import process_env

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
    """What makes a command OneNET holds the same as another (its expiry in whole hours)."""
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


def read_ledger(path: LedgerAddress) -> list[LedgerRow]:
    """Every row of a ledger, through a read-only connection (of a PostgreSQL ledger's job: a
    plain query); [] when there is none yet."""
    if isinstance(path, PostgresAddress):
        rows = _read_job(path)
    else:
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


def _read_job(address: PostgresAddress) -> list[tuple[Any, ...]]:
    import psycopg

    columns = ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))
    with psycopg.connect(address.conninfo, autocommit=True) as conn:
        try:
            return conn.execute(
                f"SELECT {columns} FROM dispatcher.commands c JOIN dispatcher.jobs j"
                " ON j.id = c.job_id WHERE j.name = %s ORDER BY c.seq",
                (address.job,),
            ).fetchall()
        except psycopg.errors.UndefinedTable:  # no run made the schema yet
            return []


# --- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """A finished command line: its exit code and all it said."""

    code: int
    out: str

    @property
    def paused(self) -> bool:
        return "paused, as rollout.canary.then says" in self.out


def cli_env() -> dict[str, str]:
    """The environment of a dispatcher process with both products' keys."""
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
