"""retry-failed end to end and its hand-over: the retry job sends exactly what did not get
through, handed commands are never sent by the original nor retried twice, the original's files
are never written over, and a hand-over is recorded whole or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import LedgerError
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, Status
from tests.support.cli import dispatcher_async, invoke
from tests.support.e2e import fleet
from tests.support.retry import T, make_ledger, read_back, write_job

# --- end to end, against the emulator --------------------------------------------------------


async def test_the_retry_job_sends_exactly_the_commands_that_did_not_get_through(
    tmp_path: Path,
) -> None:
    devices = fleet(6, start=500)
    foreign = {devices[1], devices[4]}  # rejected with errno 1: not in the product, yet
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    ledger_path = tmp_path / "fleet.yaml.ledger.db"
    emulator = Emulator(Faults(foreign_imeis=frozenset(foreign)))
    async with serve(emulator) as url:
        first = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        assert first.code == 3, first.stderr
        # What `dispatcher status` would read: one device never woke, one failed the command,
        # one ran it, one command was cancelled.
        with Ledger.open(ledger_path) as ledger:
            keys = {row.command.imei: row.key for row in ledger.rows()}
            ledger.record_delivery(
                [
                    Delivery(keys[devices[0]], 4, None, None, None, None, T),
                    Delivery(keys[devices[2]], 6, "FAILED", None, None, None, T),
                    Delivery(keys[devices[3]], 5, "SUCCESS", None, None, None, T),
                    Delivery(keys[devices[5]], 2, None, None, None, None, T),
                ]
            )
        made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
        assert made.exit_code == 0, made.stderr
        assert invoke("validate", tmp_path / "retry.yaml").exit_code == 0

        before, posts = len(emulator.accepted()), emulator.stats()["posts"]
        emulator.faults = Faults()  # the two devices joined the product
        second = await dispatcher_async(
            "run", "retry.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )

    assert second.code == 0, second.stderr
    retried = [devices[0], devices[1], devices[2], devices[4]]
    arrived = emulator.accepted()[before:]
    assert sorted(c.imei for c in arrived) == sorted(retried)  # each once (sent concurrently)
    assert emulator.stats()["posts"] == posts + len(retried)
    original = {c.imei: c for c in load_job(job_path).commands()}
    for stored in arrived:
        cmd = original[stored.imei]
        assert (stored.obj_id, stored.obj_inst_id, stored.res_id) == (3303, 0, 5605)
        assert (stored.args, stored.retry, stored.timeout, stored.trigger_msg) == (
            cmd.args, cmd.retry, cmd.timeout, cmd.trigger_msg,
        )  # fmt: skip
        assert stored.valid_time is None


async def test_commands_handed_to_a_retry_job_are_never_sent_by_the_original_nor_retried_twice(
    tmp_path: Path,
) -> None:
    devices = fleet(4, start=700)
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    # A run stopped early: two commands accepted, one failed, one never sent.
    ledger_path = make_ledger(
        job_path, ["delivered", "failed", "delivered", "pending"], finished=True
    )
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert made.exit_code == 0, made.stderr
    with Ledger.open(ledger_path, read_only=True) as ledger:
        rows = {r.command.imei: r for r in ledger.rows()}
    handed = {devices[1], devices[3]}
    assert {i for i, r in rows.items() if r.retried_in} == handed
    assert {rows[i].status for i in handed} == {Status.RETRIED}
    assert all(rows[i].retried_in == str((tmp_path / "retry.yaml").resolve()) for i in handed)
    # A second retry-failed on the same ledger hands nothing over again.
    again = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry2.yaml")
    assert again.exit_code == 0
    assert not (tmp_path / "retry2.yaml").exists()
    assert "already handed to the retry job" in again.stderr
    emulator = Emulator()
    async with serve(emulator) as url:
        original = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        retry = await dispatcher_async(
            "run", "retry.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert original.code == 0, original.stderr
    assert retry.code == 0, retry.stderr
    # The original job sent nothing (its failed and unsent commands went to the retry job);
    # the retry job sent each of them once.
    assert sorted(c.imei for c in emulator.accepted()) == sorted(handed)


# --- the new job never takes the place of the original's files, nor outlives a failed hand-over


def write_csv_job(directory: Path, imeis: list[str]) -> Path:
    """A YAML job whose targets are in ``fleet.csv`` beside it."""
    (directory / "fleet.csv").write_text(
        "imei,args\n" + "".join(f"{device},go {n}\n" for n, device in enumerate(imeis)),
        encoding="utf-8",
    )
    job = directory / "job.yaml"
    job.write_text(
        "job: csv fleet\n"
        "defaults: {obj_id: 3303, obj_inst_id: 0, res_id: 5605, expired_time: '+2d'}\n"
        "targets_csv: fleet.csv\n",
        encoding="utf-8",
    )
    return job


@pytest.mark.parametrize("name", ["fleet.csv", "alias.csv"])
def test_the_targets_csv_of_the_job_is_never_written_over_even_with_force(
    tmp_path: Path, name: str
) -> None:
    ledger_path = make_ledger(write_csv_job(tmp_path, fleet(2)), ["rejected", "delivered"])
    csv_file = tmp_path / "fleet.csv"
    (tmp_path / "alias.csv").symlink_to(csv_file)
    before = csv_file.read_bytes()
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / name, "--force")
    assert result.exit_code == 2
    assert "is the targets_csv of the job file" in result.stderr
    assert csv_file.read_bytes() == before
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert all(r.retried_in is None for r in ledger.rows())


def test_a_job_file_that_cannot_be_read_any_more_does_not_stop_the_retry(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(1))
    ledger_path = make_ledger(job_path, ["rejected"])
    job_path.write_text("job: [not, a, job\n", encoding="utf-8")
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert result.exit_code == 0, result.stderr
    assert len(read_back(tmp_path / "retry.yaml")) == 1


def test_a_failed_hand_over_leaves_no_new_job_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])

    def refuse(self: Ledger, keys: object, job_path: str) -> None:
        raise LedgerError(f"{self.path}: cannot record the retry job: disk I/O error")

    monkeypatch.setattr(Ledger, "hand_over", refuse)
    out = tmp_path / "retry.yaml"
    result = invoke("retry-failed", ledger_path, "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {ledger_path}: cannot record the retry job")
    assert f"{out} not written, nothing handed over: run retry-failed again" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary


def test_a_hand_over_is_recorded_whole_or_not_at_all(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])
    # The second half of the hand-over (pending -> retried) fails: the first must not stay.
    conn = sqlite3.connect(ledger_path)
    conn.execute(
        "CREATE TRIGGER no_retried BEFORE UPDATE OF status ON commands"
        " WHEN NEW.status = 'retried' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.close()
    with Ledger.open(ledger_path) as ledger:
        keys = [r.key for r in ledger.rows()]
        with pytest.raises(LedgerError, match="refused"):
            ledger.hand_over(keys, str(tmp_path / "retry.yaml"))
        assert [(r.retried_in, r.status) for r in ledger.rows()] == [
            (None, Status.REJECTED),
            (None, Status.PENDING),
        ]


def test_a_hand_over_of_a_key_the_ledger_does_not_hold_records_nothing(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])
    with Ledger.open(ledger_path) as ledger:
        keys = [r.key for r in ledger.rows()]
        with pytest.raises(LedgerError, match="1 of 3 keys are not in the ledger"):
            ledger.hand_over([*keys, "no-such-key"], str(tmp_path / "retry.yaml"))
        assert all(r.retried_in is None for r in ledger.rows())
        assert [r.status for r in ledger.rows()] == [Status.REJECTED, Status.PENDING]
