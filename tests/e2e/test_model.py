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

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from dispatcher.emulator.server import Faults, StoredCommand
from dispatcher.ledger.opening import ledger_exists
from tests.support import postgres
from tests.support.e2e import imei
from tests.support.model_promises import Promises, Violation
from tests.support.model_world import (
    CLI_TIMEOUT_S,
    CONFIG,
    DEVICES,
    FOLLOW_UP_CODES,
    PRODUCTS,
    PRODUCTS_CONFIG,
    RUN_CODES,
    SPARES,
    WAITING,
    Content,
    Done,
    JobModel,
    Kill,
    LedgerRow,
    Plan,
    ServedEmulator,
    Target,
    cli_env,
    kills,
    plans,
    read_ledger,
    seeds,
)

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


class Operator(Promises, RuleBasedStateMachine):
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
        if self.ledger_url is not None:
            config = config.replace("ledger: {", f"ledger: {{url: '{self.ledger_url}', ")
        (self.dir / "config.yaml").write_text(config, encoding="utf-8")
        self.write_job()

    def teardown(self) -> None:
        if self.server is not None:
            self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- paths and the command line -------------------------------------------------------------

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

    # No precondition reads what a run left behind (a killed run may or may not have written a
    # file, as the machine's load has it): the draws stay the same when hypothesis replays them.
    @rule(which=st.integers(0, 3), plan=plans, seed=seeds, kill=kills)
    def run_retry_job(self, which: int, plan: Plan, seed: int, kill: Kill | None) -> None:
        if self.retry_files:
            self.run(self.retry_files[which % len(self.retry_files)], plan, seed, kill)

    # -- rules: retry-failed, status, cancel -----------------------------------------------------

    @rule(from_retry=st.booleans(), over_last=st.booleans(), force=st.booleans())
    def retry_failed(self, from_retry: bool, over_last: bool, force: bool) -> None:
        source = self.job_path
        if not ledger_exists(self.ledger_of(source)):  # no run got as far as making it
            done = self.cli("retry-failed", self.ledger_of(source), "-o", self.dir / "none.yaml")
            if done.code != 1 or "no such ledger" not in done.out:
                raise Violation(f"retry-failed without a ledger exited {done.code}:\n{done.out}")
            return
        if from_retry and self.retry_files:
            last = self.retry_files[-1]
            if ledger_exists(self.ledger_of(last)):
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


class OperatorOnPostgres(Operator):
    """The same operator, every ledger a job of one PostgreSQL database (config ledger.url)."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger_url = postgres.new_database()


Operator.TestCase.settings = PROFILE
TestOperator = Operator.TestCase
# A few of the same sequences on a PostgreSQL ledger (make soak runs as many as on SQLite).
OperatorOnPostgres.TestCase.settings = settings(
    PROFILE, max_examples=PROFILE.max_examples if _SOAK else 8
)
TestOperatorOnPostgres = OperatorOnPostgres.TestCase
