"""`dispatcher` with a PostgreSQL ledger, as a team uses it: the real command line (child
processes) against the emulator over loopback, the ledger a job of a database on a throwaway
cluster (tests/support/postgres.py).

- a run on ``--ledger postgresql://…#job`` sends every command once, and status, report, cancel
  and retry-failed read and write that job as they do a file;
- ``ledger.url`` in the config gives each job its own, named after its job file;
- a run killed with SIGKILL is resumed by a run on another "host" (another process, another
  working directory, the job file copied there): every command accepted exactly once;
- while a run holds a job, a second run of it is refused, naming who holds it.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import signal
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import psycopg

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.postgres_jobs import job_names
from dispatcher.ledger.store import Status, VerifyState
from tests.e2e.test_verify_e2e import DEVICES, firmware_job
from tests.support import postgres
from tests.support.cli import dispatcher_async, online, process_env
from tests.support.clocks import ShiftedClock
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    count_status,
    fleet,
    write_config,
    write_csv_job,
)
from tests.support.push import FLEET

POLL_S = 0.02


def _dispatcher(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *map(str, args)],
        cwd=cwd, env=env or process_env(API_KEY), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _accepted(jsonl: str) -> int:
    return sum(json.loads(line)["status"] == "accepted" for line in jsonl.splitlines())


async def test_every_command_goes_through_a_postgresql_ledger_once(tmp_path: Path) -> None:
    url = postgres.new_database()
    ledger = f"{url}#fleet-fw"
    job = write_csv_job(tmp_path, fleet(30))
    config = write_config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as base:
        run = await asyncio.to_thread(
            _dispatcher, "run", job, "--config", config, "--base-url", base, "--ledger", ledger,
            "--no-progress", cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert_exactly_once(emulator, PostgresAddress.parse(ledger), expected=30)
        status = await asyncio.to_thread(
            _dispatcher, "status", ledger, "--config", config, "--base-url", base,
            "--no-progress", cwd=tmp_path,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert "30" in status.stdout
    report = _dispatcher("report", ledger, "--format", "jsonl", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert _accepted(report.stdout) == 30
    page = _dispatcher("report", ledger, "-o", "fleet.html", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "fleet.html").read_text(encoding="utf-8")
    assert ledger.split("#")[0] in html.replace("&amp;", "&")  # the job's ledger, named whole
    assert not (tmp_path / "fleet.yaml.ledger.db").exists()  # nothing written beside the job


async def test_the_configs_ledger_url_gives_each_job_its_own(tmp_path: Path) -> None:
    url = postgres.new_database()
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"ledger:\n  url: {url}\n", encoding="utf-8")
    one = write_csv_job(tmp_path, fleet(5), name="nightly.yaml")
    two = write_csv_job(tmp_path, fleet(7, start=100), name="weekly.yaml")
    emulator = Emulator()
    async with serve(emulator) as base:
        for job in (one, two):
            run = await asyncio.to_thread(
                _dispatcher, "run", job, "--config", config, "--base-url", base, "--no-progress",
                cwd=tmp_path,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
    address = PostgresAddress.parse(url)
    assert count_status(address.with_job("nightly"), Status.ACCEPTED) == 5
    assert count_status(address.with_job("weekly"), Status.ACCEPTED) == 7
    # status and report of a job file find its job in the shared ledger
    report = _dispatcher("report", address.with_job("weekly"), "--format", "jsonl", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert _accepted(report.stdout) == 7


async def test_a_run_killed_on_one_host_is_resumed_on_another_exactly_once(
    tmp_path: Path,
) -> None:
    url = postgres.new_database()
    ledger = PostgresAddress.parse(f"{url}#fleet")
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
    job = write_csv_job(hosts[0], fleet(300))
    shutil.copy(job, hosts[1] / job.name)
    shutil.copy(job.with_suffix(".csv"), hosts[1] / job.with_suffix(".csv").name)
    emulator = Emulator(Faults(latency_ms=15, latency_jitter_ms=20, seed=3))
    async with asyncio.timeout(120), serve(emulator) as base:
        argv = [sys.executable, "-m", "dispatcher", "run", job.name, "--config",
                str(write_config(hosts[0])), "--base-url", base, "--ledger", str(ledger),
                "--no-progress"]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=hosts[0], env=process_env(API_KEY),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        while await asyncio.to_thread(count_status, ledger, Status.ACCEPTED) < 60:
            assert proc.returncode is None
            await asyncio.sleep(POLL_S)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        assert await asyncio.to_thread(count_status, ledger, Status.ACCEPTED) < 300
        argv[argv.index("--config") + 1] = str(write_config(hosts[1]))
        again = await asyncio.to_thread(
            subprocess.run, argv, cwd=hosts[1], env=process_env(API_KEY), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert_exactly_once(emulator, ledger, expected=300)


async def test_a_second_run_of_a_held_job_is_refused_naming_the_holder(tmp_path: Path) -> None:
    url = postgres.new_database()
    ledger = f"{url}#fleet"
    job = write_csv_job(tmp_path, fleet(200))
    config = write_config(tmp_path)
    emulator = Emulator(Faults(latency_ms=20, seed=1))
    async with asyncio.timeout(120), serve(emulator) as base:
        # --rate 40: the first run lasts 5 s, long enough for the second to meet it
        argv = ["run", str(job), "--config", str(config), "--base-url", base, "--ledger",
                ledger, "--no-progress", "--rate", "40"]  # fmt: skip
        first = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dispatcher", *argv, cwd=tmp_path, env=process_env(API_KEY),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        address = PostgresAddress.parse(ledger)
        while await asyncio.to_thread(count_status, address, Status.ACCEPTED) < 10:
            assert first.returncode is None
            await asyncio.sleep(POLL_S)
        second = await asyncio.to_thread(_dispatcher, *argv, cwd=tmp_path)
        assert await first.wait() == 0
    assert second.returncode != 0
    assert f":{first.pid}" in second.stderr, second.stderr  # host:pid of the holder
    assert "Traceback" not in second.stderr
    assert_exactly_once(emulator, address, expected=200)


async def test_a_job_edited_on_another_host_is_compared_not_refused(tmp_path: Path) -> None:
    url = postgres.new_database()
    ledger = f"{url}#fleet"
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
    write_csv_job(hosts[0], fleet(20))
    write_csv_job(hosts[1], fleet(21))  # the same job, one device added on the other host
    emulator = Emulator()
    async with serve(emulator) as base:
        for host in hosts:
            run = await asyncio.to_thread(
                _dispatcher, "run", "fleet.yaml", "--config", write_config(host), "--base-url",
                base, "--ledger", ledger, "--no-progress", cwd=host,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
    assert_exactly_once(emulator, PostgresAddress.parse(ledger), expected=21)


async def test_postgresql_restarted_mid_run_stops_it_and_the_rerun_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    job = write_csv_job(tmp_path, fleet(400))
    config = write_config(tmp_path)
    emulator = Emulator(Faults(latency_ms=15, latency_jitter_ms=20, seed=5))
    with postgres.private_server() as server:
        ledger = PostgresAddress.parse(f"{server.url()}#fleet")
        async with asyncio.timeout(120), serve(emulator) as base:
            argv = [sys.executable, "-m", "dispatcher", "run", str(job), "--config", str(config),
                    "--base-url", base, "--ledger", str(ledger), "--no-progress"]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=tmp_path, env=process_env(API_KEY),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            while await asyncio.to_thread(count_status, ledger, Status.ACCEPTED) < 100:
                assert proc.returncode is None
                await asyncio.sleep(POLL_S)
            await asyncio.to_thread(server.restart)
            _, err = await proc.communicate()
            said = err.decode()
            assert "Traceback" not in said
            if proc.returncode != 0:  # it stopped: the ledger was lost under it, and it says so
                assert proc.returncode == 5, said
                assert "run the same command again" in said, said
                again = await asyncio.to_thread(
                    subprocess.run, argv, cwd=tmp_path, env=process_env(API_KEY),
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert again.returncode == 0, again.stderr
        assert_exactly_once(emulator, ledger, expected=400)


async def test_a_placeholder_job_killed_is_resumed_the_next_day_not_sent_again(
    tmp_path: Path,
) -> None:
    url = postgres.new_database()
    job = write_csv_job(tmp_path, fleet(300))
    ledger = f"{url}#{{job}}-{{date}}"
    argv = [sys.executable, "-m", "dispatcher", "run", str(job), "--config",
            str(write_config(tmp_path)), "--ledger", ledger, "--no-progress"]  # fmt: skip
    emulator = Emulator(Faults(latency_ms=15, latency_jitter_ms=20, seed=7))
    async with asyncio.timeout(120), serve(emulator) as base:
        proc = await asyncio.create_subprocess_exec(
            *argv, "--base-url", base, cwd=tmp_path, env=process_env(API_KEY),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        address = PostgresAddress.parse(url)
        while True:
            names = await asyncio.to_thread(job_names, address)
            if (
                names
                and await asyncio.to_thread(
                    count_status, address.with_job(names[0]), Status.ACCEPTED
                )
                >= 100
            ):
                break
            assert proc.returncode is None
            await asyncio.sleep(POLL_S)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        # The same cron line after midnight: {date} names another job now.
        (today,) = names
        yesterday = f"fleet-{date.fromisoformat(today.removeprefix('fleet-')) - timedelta(days=1)}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE dispatcher.jobs SET name = %s WHERE name = %s", (yesterday, today))
        again = await asyncio.to_thread(
            subprocess.run, [*argv, "--base-url", base], cwd=tmp_path, env=process_env(API_KEY),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (
        f"resuming {address.with_job(yesterday)}, an unfinished ledger of this job" in again.stderr
    )
    assert job_names(address) == [yesterday]  # no second job was made
    assert_exactly_once(emulator, address.with_job(yesterday), expected=300)


async def test_verify_and_its_retry_job_work_on_a_job_of_the_shared_ledger(tmp_path: Path) -> None:
    url = postgres.new_database()
    firmware_job(tmp_path, fleet(DEVICES))
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"ledger:\n  url: {url}\n", encoding="utf-8")
    clock = ShiftedClock()
    emulator = Emulator(clock=clock, fleet=FLEET)
    async with serve(emulator) as base:
        sent = await online(base, tmp_path, "run", "fw.yaml")
        assert sent.code == 0, sent.stderr
        clock.shift = 700.0  # the devices that wake have woken; every window has closed
        judged = await online(base, tmp_path, "verify", "fw.yaml")
    assert judged.code == 1, judged.stderr  # some devices failed: the emulator's fleet has some
    address = PostgresAddress.parse(url).with_job("fw")
    with PostgresLedger.open(address, read_only=True) as ledger:
        states = Counter(r.state for r in ledger.verify_results())
    assert sum(states.values()) == DEVICES and states[VerifyState.ON_TARGET]
    advised = f"retry-failed {shlex.quote(str(address))} --not-verified -o fw-retry.yaml"
    assert advised in judged.stderr, judged.stderr
    retry = await dispatcher_async(*shlex.split(advised), cwd=tmp_path)
    assert retry.code == 0, retry.stderr
    assert (tmp_path / "fw-retry.yaml").is_file()
    files = await asyncio.to_thread(lambda: list(tmp_path.glob("*.ledger.db")))
    assert not files  # everything in the shared ledger


async def test_another_job_in_a_file_of_the_same_name_is_refused_not_taken_for_it(
    tmp_path: Path,
) -> None:
    url = postgres.new_database()
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"ledger:\n  url: {url}\n", encoding="utf-8")
    teams = [tmp_path / "team-a", tmp_path / "team-b"]
    for team in teams:
        team.mkdir()
    write_csv_job(teams[0], fleet(5), name="push.yaml")
    other = write_csv_job(teams[1], fleet(5, start=500), name="push.yaml")
    other.write_text(other.read_text().replace("job: push", "job: lamp-config"), "utf-8")
    emulator = Emulator()
    async with serve(emulator) as base:
        runs = [
            await asyncio.to_thread(
                _dispatcher,
                "run",
                "push.yaml",
                "--config",
                config,
                "--base-url",
                base,
                "--no-progress",
                cwd=team,
            )
            for team in teams
        ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 1, runs[1].stderr
    assert "is the ledger of another job 'push'" in runs[1].stderr
    assert len(emulator.accepted()) == 5  # the second job sent nothing
