"""``dispatcher devices -o``'s file (app/devices.py): the CSV a device list becomes, usable as a
job's targets_csv, written whole; never over a ledger, a ledger's side file or a job file; and
the newer platform's list needs the product its token is for."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.app.devices import COLUMNS, refuse_output, write_csv
from dispatcher.app.targeting import lister_of
from dispatcher.config import Settings, TokenSettings
from dispatcher.errors import ConfigError, Refused
from dispatcher.job.model import load_job, validate_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.onenet import TokenSource
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.devices import Device
from dispatcher.run.targets import Resolved
from tests.support.device_lists import BASE, imei_of
from tests.support.iot_api import ACCESS_KEY
from tests.support.jobs import AT
from tests.support.onenet import Routes

FOUND = Resolved(
    "meters",
    "tag=north",
    (
        Device(imei_of(1), "1001", "meter, one", True, ("north", "meters"), "2026-01-02 10:00:00"),
        Device(imei_of(2), "1002", "meter-2", None, (), ""),
    ),
    pages=1,
    calls=1,
)


def test_the_csv_has_the_device_columns_and_one_row_a_device(tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    write_csv(FOUND, out)
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert (
        tuple(rows[0]) == COLUMNS == ("imei", "#id", "#title", "#online", "#tags", "#create_time")
    )
    assert rows[1:] == [
        [imei_of(1), "1001", "meter, one", "true", "north;meters", "2026-01-02 10:00:00"],
        [imei_of(2), "1002", "meter-2", "", "", ""],
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["fleet.csv"]  # no partial file left


def test_the_csv_is_a_targets_csv_as_it_is(tmp_path: Path) -> None:
    write_csv(FOUND, tmp_path / "fleet.csv")
    job = tmp_path / "job.yaml"
    job.write_text(
        "job: j\ndefaults: {obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}\n"
        "targets_csv: fleet.csv\n",
        encoding="utf-8",
    )
    result = validate_job(load_job(job), at=AT)
    assert result.ok and result.commands == 2


def test_a_ledger_and_its_side_files_are_never_written_over(tmp_path: Path) -> None:
    ledger = tmp_path / "job.yaml.ledger.db"
    Ledger.open(ledger).close()
    for path in (ledger, tmp_path / "job.yaml.ledger.db-wal"):
        with pytest.raises(Refused, match="is a ledger"):
            refuse_output(path)


def test_a_job_file_is_never_written_over(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="job file's name"):
        refuse_output(tmp_path / "fleet.yaml")
    job = tmp_path / "job.csv"
    job.write_text("imei,obj_id,obj_inst_id,res_id,expired_time\n", encoding="utf-8")
    with pytest.raises(Refused, match=r"has columns a device list does not \(obj_id"):
        refuse_output(job)


def test_an_earlier_device_list_may_be_replaced(tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    write_csv(FOUND, out)
    refuse_output(out)  # no error: the same kind of file
    refuse_output(tmp_path / "new.csv")


def iot_settings(res: str) -> Settings:
    s = Settings()
    token = TokenSettings(res=res)
    return replace(s, onenet=replace(s.onenet, platform="iot-api", token=token))


def test_the_newer_list_is_of_the_product_the_token_is_for() -> None:
    client = OneNetClient(
        Routes().transport, BASE, platform="iot-api", token=TokenSource(ACCESS_KEY, "products/p1")
    )
    assert lister_of(client, iot_settings("products/p1")).product_id == "p1"
    with pytest.raises(ConfigError, match=r"onenet.token.res: 'userid/42' names no product"):
        lister_of(client, iot_settings("userid/42"))
