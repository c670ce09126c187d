"""What is the PostgreSQL ledger's own (the contract suite and the twins hold it to the rest): many
jobs in one database, each apart; one writer per job across processes, named when refused and
released when it closes or dies; read-only opens; the schema made once however many open it at
once; errors as LedgerError, never with a password; whole transactions and gapless numbers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dispatcher
from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.lifecycle import LifecycleError
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.postgres_schema import MIGRATIONS, NAMESPACE
from dispatcher.ledger.postgres_session import pg_error
from dispatcher.ledger.records import InFlight, LedgerFullError, Result, Status
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.verify import VerifyResult, VerifyState
from tests.support.ledger import make_command
from tests.support.postgres import job_url, new_database, server
from tests.support.stores import in_flight, new_job_name, result_of

REPO = Path(dispatcher.__file__).parent.parent
# A process that opens a job to write, says so, and holds it until its stdin closes (or it dies).
HOLDER = (
    "import sys\n"
    "from dispatcher.ledger.address import PostgresAddress\n"
    "from dispatcher.ledger.postgres import PostgresLedger\n"
    "ledger = PostgresLedger.open(PostgresAddress.parse(sys.argv[1]))\n"
    "print('opened', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def address(tmp_path: Path) -> PostgresAddress:
    """A job of its own in the shared test database."""
    return PostgresAddress.parse(job_url(new_job_name(tmp_path)))


@pytest.fixture
def holder(address: PostgresAddress) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``address`` open to write (killed after the test)."""
    proc = _spawn(HOLDER, str(address))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "opened\n"
        yield proc
    finally:
        _end(proc)


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` (if it still runs) and close its pipes."""
    with proc:
        proc.kill()


def _open_when_free(address: PostgresAddress, seconds: float = 15.0) -> PostgresLedger:
    """Open ``address`` to write as soon as its lock is free (a dead session's ends on its own)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return PostgresLedger.open(address)
        except LedgerLockedError:
            if time.monotonic() > deadline:
                raise


# -- many jobs, one database ------------------------------------------------------------------


def test_two_jobs_of_one_database_do_not_see_each_others_rows_runs_or_counts(
    tmp_path: Path,
) -> None:
    a = PostgresAddress.parse(job_url(new_job_name(tmp_path)))
    b = a.with_job(new_job_name(tmp_path))
    with PostgresLedger.open(a) as one, PostgresLedger.open(b) as two:
        one.register([make_command(n) for n in range(3)])
        two.register([make_command(1), make_command(7)])  # one key the same as a's
        one.start_run("a.yaml", {})
        one.write_batch([in_flight(make_command(1).key)], [])
        assert [r.seq for r in two.rows()] == [1, 2]
        assert two.rows_of([make_command(0).key]) == []
        assert (two.total(), two.counts()[Status.IN_FLIGHT], two.runs()) == (2, 0, [])
        assert (one.total(), one.counts()[Status.IN_FLIGHT], len(one.runs())) == (3, 1, 1)
        assert two.start_run("b.yaml", {}) == 1  # each job numbers its own runs


def test_a_read_only_open_of_a_missing_job_names_it_and_lists_the_jobs() -> None:
    database = PostgresAddress.parse(new_database())
    PostgresLedger.open(database.with_job("fleet-b")).close()
    PostgresLedger.open(database.with_job("fleet-a")).close()
    with pytest.raises(LedgerError, match="no job 'fleet-c'") as caught:
        PostgresLedger.open(database.with_job("fleet-c"), read_only=True)
    assert "its jobs: fleet-a, fleet-b" in str(caught.value)
    with PostgresLedger.open(database.with_job("fleet-a"), read_only=True) as ledger:
        assert ledger.total() == 0


def test_a_database_without_a_ledger_is_not_read_and_not_written_read_only() -> None:
    database = PostgresAddress.parse(new_database())
    with pytest.raises(LedgerError, match="no dispatcher ledger at"):
        PostgresLedger.open(database.with_job("fleet"), read_only=True)
    assert server().psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'dispatcher'",
                         database.name) == "0"  # fmt: skip


def test_an_address_without_a_job_is_refused() -> None:
    with pytest.raises(ValueError, match="name the job"):
        PostgresLedger.open(PostgresAddress.parse(server().url()))


def test_a_read_only_ledger_refuses_writes_and_keeps_nothing(address: PostgresAddress) -> None:
    PostgresLedger.open(address).close()
    with PostgresLedger.open(address, read_only=True) as reader:
        with pytest.raises(LedgerError, match="read-only"):
            reader.register([make_command(1)])
        with pytest.raises(LedgerError, match="read-only"):
            reader.start_run("a.yaml", {})
        assert (reader.total(), reader.runs()) == (0, [])


# -- one writer per job -----------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holders_host_and_pid(
    address: PostgresAddress, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LedgerLockedError) as caught:
        PostgresLedger.open(address)
    message = str(caught.value)
    assert f"{socket.gethostname()}:{holder.pid}" in message
    assert str(address) in message


def test_a_url_naming_its_own_session_still_names_the_writer_when_refused(tmp_path: Path) -> None:
    url = f"{server().url()}&application_name=mine&connect_timeout=5&keepalives_idle=30"
    address = PostgresAddress.parse(f"{url}#{new_job_name(tmp_path)}")
    with PostgresLedger.open(address), pytest.raises(LedgerLockedError) as caught:
        PostgresLedger.open(address)
    assert f"({socket.gethostname()}:{os.getpid()}" in str(caught.value)


def test_a_locked_job_is_read_read_only(
    address: PostgresAddress, holder: subprocess.Popen[str]
) -> None:
    with PostgresLedger.open(address, read_only=True) as reader:
        assert (reader.total(), reader.runs()) == (0, [])


def test_the_lock_is_released_when_the_holder_closes(address: PostgresAddress) -> None:
    first = PostgresLedger.open(address)
    with pytest.raises(LedgerLockedError, match=f":{os.getpid()}"):
        PostgresLedger.open(address)
    first.close()
    with PostgresLedger.open(address) as second:
        second.register([make_command(1)])
        assert second.total() == 1


def test_the_lock_is_released_when_the_holders_process_is_killed(
    address: PostgresAddress, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LedgerLockedError):
        PostgresLedger.open(address)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    with _open_when_free(address) as taken_over:
        assert taken_over.register([make_command(1)]) == [Status.PENDING]


def test_two_processes_creating_the_schema_at_once_both_open_it() -> None:
    url = new_database()
    database = PostgresAddress.parse(url)
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = %s"
    )
    with psycopg.connect(url, autocommit=True) as blocker:
        with blocker.transaction():  # holds the schema's lock: both openers wait for it
            blocker.execute("SELECT pg_advisory_xact_lock(%s::int4, 0)", (NAMESPACE,))
            procs = [_spawn(HOLDER, str(database.with_job(job))) for job in ("a", "b")]
            deadline = time.monotonic() + 30
            while (blocker.execute(waiting, (NAMESPACE,)).fetchone() or (0,))[0] < 2:
                assert time.monotonic() < deadline, "the openers never waited for the schema"
        try:
            for proc in procs:
                assert proc.stdout is not None
                assert proc.stdout.readline() == "opened\n", proc.stderr and proc.stderr.read()
        finally:
            for proc in procs:
                _end(proc)
    for job in ("a", "b"):
        with PostgresLedger.open(database.with_job(job), read_only=True) as reader:
            assert reader.schema_version == len(MIGRATIONS)


# -- transactions and numbers -----------------------------------------------------------------


def test_a_write_batch_whose_second_half_the_lifecycle_refuses_keeps_nothing(
    address: PostgresAddress,
) -> None:
    keys = [make_command(n).key for n in range(4)]
    with PostgresLedger.open(address) as ledger:
        ledger.register([make_command(n) for n in range(4)])
        marks = [in_flight(k) for k in keys[:2]]
        # the last two were never marked in flight: their answers are not allowed
        answers = [result_of(k, Status.ACCEPTED) for k in keys]
        with pytest.raises(LifecycleError):
            ledger.write_batch(marks, answers)
        rows = ledger.rows_of(keys)
        assert [(r.status, r.attempts, r.uuid, r.first_attempt_at) for r in rows] == [
            (Status.PENDING, 0, None, None)
        ] * 4


def test_numbers_stay_gapless_after_registering_keys_held_already(
    address: PostgresAddress,
) -> None:
    with PostgresLedger.open(address) as ledger:
        ledger.register([make_command(n) for n in range(3)])
        again = [make_command(1), make_command(3), make_command(3), make_command(0)]
        assert ledger.register(again) == [Status.PENDING] * 4
        ledger.queue([make_command(2), make_command(4)])
        with pytest.raises(ValueError, match="no ledger key"):
            ledger.register([make_command(5), make_command(6, key="")])
        ledger.register([make_command(5)])
        assert [r.seq for r in ledger.rows()] == [1, 2, 3, 4, 5, 6]
        assert [r.key for r in ledger.rows()] == [make_command(n).key for n in range(6)]
        assert ledger.pass_canary(None, [], []) == 1
        assert ledger.pass_canary("meters", [], [make_command(6)]) == 2
        assert [r.seq for r in ledger.rows()][-1] == 7


# -- errors -----------------------------------------------------------------------------------


def test_a_password_in_the_url_never_appears_in_an_error(tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    bad = PostgresAddress.parse(
        f"postgresql://postgres:{secret}@/no_such_db?host={server().socket_dir}#fleet"
    )
    with pytest.raises(LedgerError) as caught:
        PostgresLedger.open(bad)
    assert "no_such_db" in str(caught.value) and secret not in str(caught.value)
    url = server().url().replace("postgres@", f"postgres:{secret}@")
    address = PostgresAddress.parse(f"{url}#{new_job_name(tmp_path)}")
    with PostgresLedger.open(address) as ledger:
        assert secret not in str(ledger.path)
        with pytest.raises(LedgerLockedError) as locked:
            PostgresLedger.open(address)
        assert secret not in str(locked.value)


def test_a_lost_connection_becomes_a_ledger_error(address: PostgresAddress) -> None:
    with PostgresLedger.open(address) as ledger:
        ledger.register([make_command(1)])
        server().restart()  # every session ends
        with pytest.raises(LedgerError, match="cannot register commands") as caught:
            ledger.register([make_command(2)])
        assert isinstance(caught.value.__cause__, psycopg.Error)
        with pytest.raises(LedgerError):
            ledger.counts()
    with PostgresLedger.open(address) as again:  # the lock went with the session
        assert [r.key for r in again.rows()] == [make_command(1).key]


def test_sqlstate_class_53_is_a_full_ledger_and_the_rest_a_ledger_error(
    address: PostgresAddress,
) -> None:
    full = pg_error(address, "write outcomes", psycopg.errors.DiskFull("no space left"))
    assert isinstance(full, LedgerFullError) and "free some" in str(full)
    memory = pg_error(address, "write outcomes", psycopg.errors.OutOfMemory("out of memory"))
    assert isinstance(memory, LedgerFullError)
    other = pg_error(address, "write outcomes", psycopg.errors.SerializationFailure("retry"))
    assert type(other) is LedgerError
    assert str(other) == f"{address}: cannot write outcomes: retry"


def test_importing_dispatcher_and_its_command_line_loads_no_psycopg() -> None:
    script = (
        "import sys, dispatcher, dispatcher.ledger, dispatcher.cli.commands\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_values_come_back_exactly_as_sqlite_gives_them(
    address: PostgresAddress, tmp_path: Path
) -> None:
    odd = 'quote " back\\slash, {brace}, tab\t, newline\n, 中文, 🚀'
    cmd = make_command(1, args=odd, source=f"jobs/{odd}.yaml")
    marks = [
        InFlight(cmd.key, 1_700_000_000.123_456_7, odd, "2030-01-01T00:00:00", 2**40, 0.1 + 0.2)
    ]
    answer = Result(cmd.key, Status.REJECTED, 2**62, odd, None, 3, 1e-300, 1.7976931348623157e308)
    settings = {"rate": 0.1 + 0.2, "name": odd, "big": 2**62, "nested": [1.5e-7, None, True]}
    clock = lambda: 1_700_000_000.987_654_3  # noqa: E731 (both ledgers' clock)
    with (
        Ledger.open(tmp_path / "same.ledger.db", clock=clock) as sqlite,
        PostgresLedger.open(address, clock=clock) as pg,
    ):
        for ledger in (sqlite, pg):
            ledger.register([cmd])
            ledger.write_batch(marks, [answer])
            ledger.start_run(odd, settings)
            ledger.record_verify([VerifyResult("86", odd, VerifyState.NOT_YET, odd, 1e-3, odd)])
        assert list(pg.rows()) == list(sqlite.rows())
        assert pg.runs() == sqlite.runs()
        assert pg.errno_groups() == sqlite.errno_groups() == [(2**62, odd, 1)]
        assert pg.verify_results() == sqlite.verify_results()


def test_a_job_dropped_between_its_lookup_and_its_lock_is_never_held_as_a_ghost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dispatcher.ledger import postgres_session
    from dispatcher.ledger.postgres_jobs import drop_job

    address = PostgresAddress.parse(job_url(new_job_name(tmp_path)))
    PostgresLedger.open(address).close()  # a run made the job and never began
    lock = postgres_session._lock

    def dropped_first(conn: postgres_session.Conn, at: PostgresAddress, job_id: int) -> None:
        monkeypatch.setattr(postgres_session, "_lock", lock)
        drop_job(at)  # that run's discard lands between this run's lookup and its lock
        lock(conn, at, job_id)

    monkeypatch.setattr(postgres_session, "_lock", dropped_first)
    with PostgresLedger.open(address) as held:
        run = held.start_run("/jobs/fleet.yaml", {})
        assert held.runs()[0].id == run
        with pytest.raises(LedgerLockedError):  # one writer: the job it holds is the job
            PostgresLedger.open(address)


def test_a_job_that_holds_anything_is_never_dropped(tmp_path: Path) -> None:
    from dispatcher.ledger.postgres_jobs import drop_job, job_exists

    address = PostgresAddress.parse(job_url(new_job_name(tmp_path)))
    with PostgresLedger.open(address) as ledger:
        ledger.register([make_command(1)])
    drop_job(address)  # a run on another host filled it meanwhile: kept
    assert job_exists(address)


def test_check_fails_once_the_session_holding_the_job_is_gone(tmp_path: Path) -> None:
    address = PostgresAddress.parse(job_url(new_job_name(tmp_path)))
    with PostgresLedger.open(address) as ledger:
        ledger.check()  # the one writer: nothing to say
        with psycopg.connect(server().url()) as admin:  # a failover, a DBA, a timeout: ended
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid::bigint = %s AND objsubid = 2 AND pid <> pg_backend_pid()"
                " AND objid::bigint = (SELECT id FROM dispatcher.jobs WHERE name = %s)",
                (NAMESPACE, address.job),
            )
        with pytest.raises(LedgerError):
            ledger.check()
