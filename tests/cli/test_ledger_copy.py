"""`dispatcher ledger copy SRC DST`: a job's ledger copied between a file and a PostgreSQL ledger,
one line saying what went where (which job, never a password), exit 0; every refusal and failure
(a missing source, a destination that holds a ledger, a held source, an unreachable server) one
message and exit 1, no traceback; a malformed argument exit 2."""

from __future__ import annotations

from pathlib import Path

from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.opening import open_ledger
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.sqlite import Ledger
from tests.support.cli import invoke
from tests.support.postgres import new_database
from tests.support.rich_ledger import Clock, fill, reads

_HELD = "10 commands, 2 runs, 1 canary verdict, 6 frozen targets, 2 verify results, 2 device ids"


def _rich(path: Path) -> Path:
    with Ledger.open(path, clock=Clock()) as ledger:
        fill(ledger)
    return path


def _with_password(url: str, password: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def test_copy_goes_to_postgresql_and_back_and_says_what_went_where(tmp_path: Path) -> None:
    source = _rich(tmp_path / "fleet.yaml.ledger.db")
    url = f"{new_database()}#fleet"
    there = invoke("ledger", "copy", source, url)
    assert there.exit_code == 0, there.output
    assert (
        there.output.split()
        == f"copied {_HELD} from {source} to {url}; the copy reads back the same".split()
    )
    back = invoke("ledger", "copy", url, tmp_path / "back.ledger.db")
    assert back.exit_code == 0, back.output
    with (
        open_ledger(source, read_only=True) as a,
        open_ledger(tmp_path / "back.ledger.db", read_only=True) as b,
    ):
        assert reads(a) == reads(b)


def test_a_database_without_a_job_says_which_job_was_written(tmp_path: Path) -> None:
    source = _rich(tmp_path / "fleet.yaml.ledger.db")
    url = new_database()
    result = invoke("ledger", "copy", source, url)
    assert result.exit_code == 0, result.output
    assert f"to {url}#fleet (job fleet);" in " ".join(result.output.split())
    with open_ledger(PostgresAddress.parse(url).with_job("fleet"), read_only=True) as copied:
        assert copied.total() == 10


def test_a_password_in_a_url_is_never_printed(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    url = _with_password(new_database(), "s3cret-pw")
    copied = invoke("ledger", "copy", source, f"{url}#job")
    refused = invoke("ledger", "copy", source, f"{url}#job")
    assert (copied.exit_code, refused.exit_code) == (0, 1), copied.output + refused.output
    assert "already holds a ledger" in refused.output
    for output in (copied.output, refused.output):
        assert "s3cret-pw" not in output and "postgresql://postgres@" in output


def test_a_destination_that_holds_a_ledger_is_refused(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    other = _rich(tmp_path / "b.ledger.db")
    result = invoke("ledger", "copy", source, other)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {other} already holds a ledger (10 commands, 2 runs,")
    assert "Traceback" not in result.output


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    result = invoke("ledger", "copy", tmp_path / "none.ledger.db", tmp_path / "b.ledger.db")
    assert result.exit_code == 1
    assert result.output == f"error: no ledger at {tmp_path / 'none.ledger.db'}\n"
    assert not (tmp_path / "none.ledger.db").exists()


def test_a_source_a_run_holds_is_refused_naming_the_holder(tmp_path: Path) -> None:
    url = f"{new_database()}#fleet"
    invoke("ledger", "copy", _rich(tmp_path / "a.ledger.db"), url)
    with PostgresLedger.open(PostgresAddress.parse(url)):
        result = invoke("ledger", "copy", url, tmp_path / "b.ledger.db")
    assert result.exit_code == 1
    assert "is in use by another dispatcher" in result.output
    assert not (tmp_path / "b.ledger.db").exists()


def test_an_unreachable_server_is_one_message(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    result = invoke("ledger", "copy", source, "postgresql://ops:pw-x@127.0.0.1:1/db#job")
    assert result.exit_code == 1
    assert result.output.startswith("error: postgresql://ops@127.0.0.1:1/db#job: cannot ")
    assert "Connection refused" in result.output
    assert "pw-x" not in result.output and "Traceback" not in result.output


def test_a_malformed_url_or_a_missing_argument_is_a_usage_error(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    assert invoke("ledger", "copy", source, "postgresql://host-only").exit_code == 2
    assert invoke("ledger", "copy", source).exit_code == 2


def test_the_command_is_listed_with_its_exit_codes() -> None:
    listed = invoke("--help")
    assert "ledger" in listed.output and "Copy a job's ledger between SQLite and" in listed.output
    shown = invoke("ledger", "copy", "--help")
    assert shown.exit_code == 0
    assert "Usage: main ledger copy [OPTIONS] SRC DST" in shown.output
    assert "Exit codes:" in shown.output and "read back the same as its source" in shown.output
