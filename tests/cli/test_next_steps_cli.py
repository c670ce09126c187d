"""``run``, ``status``, ``verify`` and the demo end with the command to run next, from the one
rule set (report/next_steps.py), written the one way (``next: COMMAND   (why)``), the --config
given passed on: end to end, the real CLI against the emulator over loopback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dispatcher.cli.next_view import next_line
from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.report.next_steps import NextStep
from tests.support.cli import dispatcher_async, online
from tests.support.clocks import ShiftedClock
from tests.support.e2e import fleet, write_config
from tests.support.push import FLEET, write_job


def next_lines(stderr: str) -> list[str]:
    """The ``next:`` lines a command ended with."""
    return [line for line in stderr.splitlines() if line.startswith("next: ")]


def test_a_next_command_is_written_with_its_reason_apart() -> None:
    step = NextStep(("dispatcher", "status", "jobs/x.ledger.db", "--watch"), "12 not delivered")
    assert (
        next_line(step) == "next: dispatcher status jobs/x.ledger.db --watch   (12 not delivered)"
    )


async def test_run_ends_with_status_watch_and_the_config_and_address_it_was_given(
    tmp_path: Path,
) -> None:
    write_job(tmp_path, fleet(4))
    write_config(tmp_path)
    async with serve(Emulator(fleet=FLEET)) as url:
        done = await online(url, tmp_path, "run", "push.yaml")
    assert done.code == 0, done.stderr
    assert next_lines(done.stderr) == [
        f"next: dispatcher status push.yaml.ledger.db --watch --config config.yaml --base-url {url}"
        "   (4 commands not delivered yet: watch until they are)"
    ]


async def test_run_with_refused_commands_ends_with_retry_failed(tmp_path: Path) -> None:
    devices = fleet(3)
    write_job(tmp_path, devices)
    write_config(tmp_path)
    async with serve(Emulator(Faults(foreign_imeis=frozenset(devices[:1])))) as url:
        done = await online(url, tmp_path, "run", "push.yaml")
    assert done.code == 3, done.stderr
    assert (
        "next: dispatcher retry-failed push.yaml.ledger.db -o push-retry.yaml"
        "   (1 command did not get through: a job of it to send again)"
    ) in next_lines(done.stderr)


async def test_after_a_hand_over_the_advice_is_the_retry_job_not_a_retry_that_writes_nothing(
    tmp_path: Path,
) -> None:
    devices = fleet(3)
    write_job(tmp_path, devices)
    write_config(tmp_path)
    retry = tmp_path / "retry.yaml"
    async with serve(Emulator(Faults(foreign_imeis=frozenset(devices[:1])))) as url:
        assert (await online(url, tmp_path, "run", "push.yaml")).code == 3
        handed = await dispatcher_async(
            "retry-failed", "push.yaml.ledger.db", "-o", "retry.yaml", cwd=tmp_path
        )
        assert handed.code == 0, handed.stderr
        again = await online(url, tmp_path, "status", "push.yaml.ledger.db")
        retry.unlink()  # the retry job deleted: the same retry-failed writes it again
        gone = await online(url, tmp_path, "status", "push.yaml.ledger.db")
    # The refused command is the retry job's now: no retry-failed that would write nothing.
    said = next_lines(again.stderr)
    assert said and not any("retry" in line for line in said), said
    assert (
        f"next: dispatcher retry-failed push.yaml.ledger.db -o {retry}"
        f"   (1 command handed to {retry}, which is not there: write it again)"
    ) in next_lines(gone.stderr)


async def test_status_ends_with_watch_while_open_and_the_retry_once_settled(
    tmp_path: Path,
) -> None:
    write_job(tmp_path, fleet(6))
    write_config(tmp_path)
    clock = ShiftedClock()
    async with serve(Emulator(clock=clock, fleet=FLEET)) as url:
        assert (await online(url, tmp_path, "run", "push.yaml")).code == 0
        waiting = await online(url, tmp_path, "status", "push.yaml")  # its job file: its ledger
        clock.shift = 2 * 86400.0  # past every command's expired_time: every state final
        settled = await online(url, tmp_path, "status", "push.yaml.ledger.db")
    assert waiting.code == settled.code == 0, waiting.stderr + settled.stderr
    assert next_lines(waiting.stderr) == [
        f"next: dispatcher status push.yaml.ledger.db --watch --config config.yaml --base-url {url}"
        "   (6 commands not delivered yet: watch until they are)"
    ]
    (line,) = next_lines(settled.stderr)
    assert line.startswith(
        "next: dispatcher retry-failed push.yaml.ledger.db -o push-retry.yaml   ("
    )
    assert "deliveries expired or failed" in line or "delivery expired or failed" in line


async def test_verify_ends_with_verify_watch_while_devices_may_still_report(
    tmp_path: Path,
) -> None:
    targets = "".join(f'  - imei: "{i}"\n' for i in fleet(4))
    (tmp_path / "fw.yaml").write_text(
        "job: fw\ndefaults:\n  obj_inst_id: 0\n  expired_time: '+10m'\n  trigger: [update]\n"
        "steps:\n"
        '  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.4.1.bin"}}\n'
        "  - {op: execute, obj_id: 5, res_id: 2}\n"
        "  - {op: read, obj_id: 3, res_id: 3}\n"
        'verify:\n  read: 3/0/3\n  expect: "2.4.1"\n'
        f"targets:\n{targets}",
        encoding="utf-8",
    )
    write_config(tmp_path)
    quick = replace(FLEET, never_wake=0.0, device_errors=0.0)
    async with serve(Emulator(clock=ShiftedClock(), fleet=quick)) as url:
        assert (await online(url, tmp_path, "run", "fw.yaml")).code == 0
        early = await online(url, tmp_path, "verify", "fw.yaml")
    assert early.code == 3, early.stderr
    assert (
        f"next: dispatcher verify fw.yaml.ledger.db --watch --config config.yaml --base-url {url}"
        "   (4 devices still to report: verify until each is on target or its time to verify"
        " is over)"
    ) in next_lines(early.stderr)
