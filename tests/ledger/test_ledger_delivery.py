"""The ledger's delivery columns (schema step 3): migration, writes, the rows to check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dispatcher.ledger import follow_ups, schema as ledger_file
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, Result, Status
from tests.support.ledger import make_command, write_outcomes


def _schema_2_ledger(path: Path) -> None:
    """A ledger as a schema-2 dispatcher wrote it, with one accepted command."""
    raw = sqlite3.connect(path)
    for step in ledger_file.MIGRATIONS[:2]:
        for statement in step:
            raw.execute(statement)
    raw.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    raw.execute(
        "INSERT INTO commands (key, imei, obj_id, obj_inst_id, res_id, args, expired_time, retry,"
        " timeout, trigger_msg, source, line, status, uuid, attempts, first_server_at)"
        " VALUES ('k1', '860000000000001', 3200, 0, 5750, 'go', '+6h', 3, 25, 7, 'a.yaml', 3,"
        " 'accepted', 'u-old', 1, 990.0)"
    )
    raw.commit()
    raw.close()


def test_a_schema_2_ledger_gains_the_delivery_columns_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.ledger.db"
    _schema_2_ledger(path)
    with Ledger.open(path) as upgraded:
        assert upgraded.schema_version == len(ledger_file.MIGRATIONS)
        (row,) = upgraded.rows()
        assert (row.uuid, row.first_server_at, row.send_status, row.cmd_result) == (
            "u-old", 990.0, None, None,
        )  # fmt: skip
        assert [r.key for r in upgraded.rows_to_check()] == ["k1"]


def _accepted(ledger: Ledger, n: int) -> str:
    cmd = make_command(n)
    ledger.register([cmd])
    write_outcomes(ledger, [Result(cmd.key, Status.ACCEPTED, 0, "", f"u-{n}", 1, 1.0, 5.0)])
    return cmd.key


def test_recorded_deliveries_are_kept_and_final_ones_leave_the_rows_to_check(
    tmp_path: Path,
) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        waiting, sent, done = (_accepted(ledger, n) for n in (1, 2, 3))
        ledger.register([make_command(4)])  # pending: no uuid, nothing to check
        ledger.record_delivery(
            [
                Delivery(waiting, 1, None, None, None, None, 10.0),
                Delivery(sent, 3, None, "2024-05-01 10:00:00", None, None, 10.0),
                Delivery(done, 5, "SUCCESS", "2024-05-01 10:00:00", "2024-05-01 10:00:01", "OK",
                         10.0),
            ]
        )  # fmt: skip
        assert [r.key for r in ledger.rows_to_check()] == [waiting, sent]
        by_key = {r.key: r for r in ledger.rows()}
        assert (by_key[done].send_status, by_key[done].confirm_status) == (5, "SUCCESS")
        assert (by_key[done].cmd_result, by_key[done].status_checked_at) == ("OK", 10.0)
        assert by_key[sent].send_time == "2024-05-01 10:00:00"
        # a later read without a result keeps the one already read
        ledger.record_delivery([Delivery(done, 5, "SUCCESS", None, None, None, 20.0)])
        assert {r.key: r for r in ledger.rows()}[done].cmd_result == "OK"


def test_rows_to_check_come_device_by_device_in_pages_while_states_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_ups, "PAGE", 3)  # pages of three rows
    with Ledger.open(tmp_path / "l.db") as ledger:
        keys = [_accepted(ledger, n) for n in (5, 1, 4, 2, 3, 6, 7)]
        seen = []
        for row in ledger.rows_to_check():
            seen.append(row.command.imei)
            # Writing while reading: the row read becomes final and the rest still come.
            ledger.record_delivery([Delivery(row.key, 5, "SUCCESS", None, None, "OK", 1.0)])
        assert seen == sorted(seen) and len(seen) == len(keys)
        assert list(ledger.rows_to_check()) == []
        assert ledger.count_to_check() == (0, 0, None)
