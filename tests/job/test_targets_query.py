"""A YAML job's targets_query: (job/query.py): its keys read, every problem at its line and
key, a job of a query alone; its devices as target rows with the job's defaults and steps,
cited as ``targets_query device:N``; a device the job lists itself sent its own row, once."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from dispatcher.job.model import Command, Problem, load_job, validate_job
from dispatcher.times import BEIJING
from tests.support.files import WriteFile
from tests.support.jobs import AT, DEFAULTS, I1, I2, I3, check

HEAD = f"job: fw\ndefaults:\n  {DEFAULTS}\n"


def test_every_key_of_the_query_is_read(write_file: WriteFile) -> None:
    path = write_file(
        "job.yaml",
        HEAD + "targets_query:\n  product: meters\n  tag: north\n  online: false\n"
        "  key_words: MTR\n  created_after: 2026-01-01T00:00:00\n"
        "  created_before: 2026-02-01T00:00:00Z\n  limit: 500\n",
    )
    query = load_job(path).query
    assert query is not None
    assert (query.line, query.product, query.tag, query.online, query.key_words) == (
        7, "meters", "north", False, "MTR",
    )  # fmt: skip
    assert query.created_after == datetime(2026, 1, 1, tzinfo=BEIJING)
    assert query.created_before == datetime(2026, 2, 1, 8, tzinfo=BEIJING)  # Z: 08:00 in UTC+8
    assert query.limit == 500
    assert query.describe() == (
        "tag=north, online=false, key_words=MTR, created_after=2026-01-01T00:00:00,"
        " created_before=2026-02-01T08:00:00, limit=500"
    )


def test_a_job_of_a_query_alone_is_valid_with_its_devices_found_at_run_time(
    write_file: WriteFile,
) -> None:
    result, problems = check(write_file("job.yaml", HEAD + "targets_query: {tag: north}\n"))
    assert problems == [] and result.ok
    assert result.commands == 0


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("  online: maybe\n", "job.yaml:8: targets_query.online: 'maybe' must be true or false"),
        (
            "  limit: 0\n",
            "job.yaml:8: targets_query.limit: '0' must be a whole number of devices, at least 1",
        ),
        ("  limt: 5\n", "job.yaml:8: targets_query.limt: unknown field (did you mean limit?)"),
        ("  tag:\n", "job.yaml:8: targets_query.tag: is empty (null): give a value, or leave"),
        ("  tag: [a, b]\n", "job.yaml:8: targets_query.tag: must be one value"),
        (
            "  created_after: +2d\n",
            "job.yaml:8: targets_query.created_after: '+2d' is not a moment",
        ),
        ("  created_after: soon\n", "job.yaml:8: targets_query.created_after: 'soon' is not a"),
        ("  tag: a\n  tag: b\n", "job.yaml:9: targets_query.tag: given twice (first on line 8)"),
        (
            "  created_after: 2026-02-01T00:00:00\n  created_before: 2026-01-01T00:00:00\n",
            "job.yaml:9: targets_query.created_before: must be later than created_after",
        ),
    ],
)
def test_a_wrong_query_key_is_reported_at_its_line(
    write_file: WriteFile, lines: str, expected: str
) -> None:
    path = write_file("job.yaml", HEAD + "targets_query:\n" + lines)
    result, problems = check(path)
    assert not result.ok
    assert len(problems) == 1
    assert problems[0].startswith(str(path.parent / expected.split(":", 1)[0]))
    assert expected.split(":", 1)[1] in problems[0]


def test_a_query_that_is_not_a_mapping_is_reported(write_file: WriteFile) -> None:
    result, problems = check(write_file("job.yaml", HEAD + "targets_query: north\n"))
    assert not result.ok
    assert problems[0].endswith(
        "job.yaml:7: targets_query: must be a mapping of filters (tag:, online:, ...),"
        " or {} for every device"
    )


def queried(path: str, *imeis: str) -> list[Command | Problem]:
    job = replace(load_job(path), queried=imeis)
    return list(job.scan(at=AT))


def test_queried_devices_are_target_rows_with_the_defaults_and_the_querys_product(
    write_file: WriteFile,
) -> None:
    path = write_file("job.yaml", HEAD + "targets_query: {product: meters}\n")
    found = queried(str(path), I1, I2)
    assert all(isinstance(c, Command) for c in found)
    commands = [c for c in found if isinstance(c, Command)]
    assert [(c.imei, c.obj_id, c.res_id, c.product) for c in commands] == [
        (I1, 3, 4, "meters"), (I2, 3, 4, "meters"),
    ]  # fmt: skip
    assert [(c.source, c.line) for c in commands] == [
        (f"{path}: targets_query device", 1), (f"{path}: targets_query device", 2),
    ]  # fmt: skip


def test_a_device_the_job_lists_itself_is_sent_its_own_row_once(write_file: WriteFile) -> None:
    path = write_file(
        "job.yaml",
        HEAD + f"targets:\n  - imei: {I2}\n    res_id: 5\ntargets_query: {{}}\n",
    )
    commands = [c for c in queried(str(path), I1, I2, I3) if isinstance(c, Command)]
    assert [(c.imei, c.res_id, c.line) for c in commands] == [(I2, 5, 8), (I1, 4, 1), (I3, 4, 3)]


def test_each_queried_device_gets_every_step(write_file: WriteFile) -> None:
    text = (
        "job: fw\ndefaults:\n  obj_id: 5\n  obj_inst_id: 0\n  expired_time: +2d\n"
        "steps:\n  - {op: write, res_id: 1, value: 'coap://fw/2.4.1'}\n"
        "  - {op: execute, res_id: 2}\ntargets_query: {tag: north}\n"
    )
    commands = [c for c in queried(str(write_file("job.yaml", text)), I1, I2)]
    assert [(c.imei, c.step) for c in commands if isinstance(c, Command)] == [
        (I1, 1), (I1, 2), (I2, 1), (I2, 2),
    ]  # fmt: skip


def test_a_bad_imei_from_the_list_is_cited_by_its_device_number(write_file: WriteFile) -> None:
    path = write_file("job.yaml", HEAD + "targets_query: {}\n")
    found = queried(str(path), I1, "12345")
    problems = [str(p) for p in found if isinstance(p, Problem)]
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: targets_query device:2: imei:")


def test_the_queried_devices_are_part_of_the_fingerprint(write_file: WriteFile) -> None:
    job = load_job(write_file("job.yaml", HEAD + "targets_query: {}\n"))
    one = validate_job(replace(job, queried=(I1,)), at=AT)
    two = validate_job(replace(job, queried=(I1, I2)), at=AT)
    again = validate_job(replace(job, queried=(I1,)), at=AT)
    assert one.fingerprint == again.fingerprint != two.fingerprint
    assert (one.commands, two.commands) == (1, 2)


def test_a_creation_date_means_its_midnight_in_beijing() -> None:
    from datetime import datetime

    from dispatcher.job.query import parse_moment
    from dispatcher.times import BEIJING

    assert parse_moment("2026-09-01") == datetime(2026, 9, 1, tzinfo=BEIJING)
    assert parse_moment("2026-09-01T08:30:00") == datetime(2026, 9, 1, 8, 30, tzinfo=BEIJING)
