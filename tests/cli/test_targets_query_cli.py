"""The command line of a targets_query that needs no OneNET: ``validate`` says its devices are
found at run time and (with --config) checks its product; ``devices`` refuses wrong flags and
outputs before asking anything of OneNET; the table a terminal shows."""

from __future__ import annotations

from pathlib import Path

from dispatcher.cli.targets_view import device_table
from dispatcher.onenet.devices import Device
from tests.support.cli import invoke
from tests.support.files import WriteFile

JOB = (
    "job: fw\ndefaults: {obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}\n"
    "targets_query:\n  product: meters\n  tag: north\n"
)
CONFIG = (
    "onenet: {base_url: 'http://127.0.0.1:9'}\nproducts:\n  lamps:\n    api_key_env: LAMPS_KEY\n"
)


def test_validate_says_a_querys_devices_are_found_at_run_time(write_file: WriteFile) -> None:
    path = write_file("job.yaml", JOB)
    result = invoke("validate", path)
    assert result.exit_code == 0
    assert (
        f"{path}: valid; 1 valid command for each device the targets_query finds" in result.stdout
    )
    assert (
        "targets_query (tag=north): its devices are found at run time, from OneNET's device list"
        " (the commands were checked on a sample device)" in result.stderr
    )


def test_validate_with_a_config_checks_the_querys_product(write_file: WriteFile) -> None:
    path = write_file("job.yaml", JOB)
    config = write_file("config.yaml", CONFIG)
    result = invoke("validate", path, "--config", config)
    assert result.exit_code == 1
    assert (
        f"{path}:3: targets_query.product: no product 'meters' in {config} (products: lamps)"
        in result.stdout
    )


def test_devices_refuses_a_relative_creation_time(write_file: WriteFile) -> None:
    result = invoke("devices", "--created-after", "+2d")
    assert result.exit_code == 2
    assert (
        "--created-after" in result.stderr
        and "is not a moment: give a date such as 2026-01-01" in result.stderr
    )


def test_devices_refuses_to_write_over_a_job_file_before_asking_onenet(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(JOB, encoding="utf-8")
    result = invoke("devices", "--base-url", "http://127.0.0.1:9", "-o", job)
    assert result.exit_code == 2
    assert f"{job} is a job file's name" in result.stderr
    assert job.read_text(encoding="utf-8") == JOB


def test_the_terminal_table_lists_some_devices_and_counts_the_rest() -> None:
    devices = [Device(f"86000000000{i:04d}", str(i), f"m{i}", i % 2 == 0, ("a",)) for i in range(4)]
    lines = device_table(devices, shown=2)
    assert lines[0].split() == ["imei", "id", "online", "created", "title", "(tags)"]
    assert lines[1].split() == ["860000000000000", "0", "yes", "m0", "(a)"]
    assert lines[2].split()[2] == "no"
    assert lines[3] == "... and 2 more (-o FILE writes them all)"


def test_validate_checks_a_querys_steps_on_a_sample_device(write_file: WriteFile) -> None:
    # Before its devices are known, a step that cannot make a command is an error all the same.
    path = write_file(
        "job.yaml",
        "job: fw\ndefaults: {expired_time: +2d}\n"
        "steps:\n  - op: write\n    obj_id: 5\n"
        "  - {op: execute, obj_id: 5, obj_inst_id: 0, res_id: 2}\n"
        "targets_query: {tag: meter}\n",
    )
    result = invoke("validate", path)
    assert result.exit_code != 0
    assert "obj_inst_id: is required" in result.stdout
    assert "INVALID" in result.stdout


def test_validate_counts_listed_devices_beside_the_query(write_file: WriteFile) -> None:
    path = write_file(
        "job.yaml",
        JOB + 'targets:\n  - imei: "867704040000118"\n  - imei: "867704040079302"\n',
    )
    result = invoke("validate", path)
    assert result.exit_code == 0
    assert (
        "3 valid commands to 2 listed devices and the sample, the same to each device the"
        " targets_query finds" in result.stdout
    )


def test_refresh_targets_on_a_job_without_a_query_says_it_does_nothing(
    write_file: WriteFile,
) -> None:
    path = write_file(
        "job.yaml",
        "job: j\ndefaults: {obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}\n"
        'targets:\n  - imei: "867704040000118"\n',
    )
    result = invoke("run", path, "--dry-run", "--refresh-targets")
    assert result.exit_code == 0, result.output
    assert f"--refresh-targets: {path} has no targets_query: nothing to refresh" in result.stderr
