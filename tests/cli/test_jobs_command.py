"""`dispatcher jobs` lists the jobs of a shared PostgreSQL ledger: each with its state, its
counts and the process holding it now; a file or no ledger at all is a usage error that says
what to give."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from click.testing import CliRunner

from dispatcher.cli.commands import main
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.store import Status
from tests.support import postgres
from tests.support.cli import invoke
from tests.support.ledger import make_command
from tests.support.stores import in_flight, result_of


def _two_jobs(url: str) -> PostgresLedger:
    """Job "done" (2 accepted, its run ended) and job "live" (held open: returned)."""
    address = PostgresAddress.parse(url)
    with PostgresLedger.open(address.with_job("done")) as done:
        run = done.start_run("/jobs/done.yaml", {})
        cmds = [make_command(n) for n in range(2)]
        done.register(cmds)
        done.write_batch([in_flight(c.key) for c in cmds], [])
        done.write_batch([], [result_of(c.key, Status.ACCEPTED) for c in cmds])
        done.finish_run(run, {}, None)
    live = PostgresLedger.open(address.with_job("live"))
    live.start_run("/jobs/live.yaml", {})
    live.register([make_command(n) for n in range(10, 13)])
    return live


def test_jobs_lists_each_job_with_its_state_counts_and_holder() -> None:
    url = postgres.new_database()
    with _two_jobs(url):
        result = invoke("jobs", "--ledger", url, "--format", "json")
    assert result.exit_code == 0, result.output
    listed = {j["job"]: j for j in json.loads(result.output)}
    assert listed["done"]["state"] == "done"
    assert listed["done"]["by_status"] == {"accepted": 2}
    assert listed["done"]["held_by"] is None
    assert listed["live"]["state"] == "running"
    assert listed["live"]["commands"] == 3
    assert listed["live"]["held_by"].split(" ")[0] == f"{socket.gethostname()}:{os.getpid()}"


def test_a_job_whose_holder_went_away_is_said_broken_off() -> None:
    url = postgres.new_database()
    _two_jobs(url).close()  # its run never finished: as a killed run's
    result = invoke("jobs", "--ledger", url)
    assert result.exit_code == 0, result.output
    assert "broken off" in result.output
    assert "2 jobs" in result.output


def test_jobs_reads_the_configs_ledger_url(tmp_path: Path) -> None:
    url = postgres.new_database()
    _two_jobs(url).close()
    config = tmp_path / "c.yaml"
    config.write_text(f"ledger:\n  url: {url}\n", encoding="utf-8")
    result = invoke("jobs", "--config", config, "--format", "json")
    assert sorted(j["job"] for j in json.loads(result.output)) == ["done", "live"]


def test_jobs_of_a_file_or_of_nothing_says_what_to_give(tmp_path: Path) -> None:
    of_file = invoke("jobs", "--ledger", tmp_path / "fleet.yaml.ledger.db")
    assert of_file.exit_code == 2
    assert "holds one job" in of_file.output
    assert "dispatcher report" in of_file.output
    of_nothing = invoke("jobs")
    assert of_nothing.exit_code == 2
    assert "ledger.url" in of_nothing.output


def test_a_database_given_alone_is_its_only_job_and_several_are_listed() -> None:
    url = postgres.new_database()
    address = PostgresAddress.parse(url)
    with PostgresLedger.open(address.with_job("only")) as ledger:
        ledger.register([make_command(1)])
    alone = invoke("report", url, "--format", "jsonl")
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.output.splitlines()[0])["imei"] == make_command(1).imei
    _two_jobs(url).close()
    several = invoke("report", url)
    assert several.exit_code == 1
    assert "holds 3 jobs (done, live, only)" in several.output
    assert f"{url}#done" in several.output  # how to name one


def test_the_jobs_table_keeps_names_states_and_times_whole_at_80_columns() -> None:
    url = postgres.new_database()
    with _two_jobs(url):
        result = CliRunner().invoke(main, ["jobs", "--ledger", url], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "running" in result.output
    assert f"live: held by {socket.gethostname()}:{os.getpid()}" in result.output
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", result.output)
    assert "…" not in result.output
