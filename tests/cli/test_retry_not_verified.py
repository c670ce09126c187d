"""``dispatcher retry-failed --not-verified``: the devices of a job with steps that finished them
but verify found not yet on target go into the retry job from step 1 (every step), beside the
devices that did not finish; on target, never seen and failed devices only as the steps say; a
second retry writes them no more; a ledger never verified, or a job without steps, is refused."""

from __future__ import annotations

from pathlib import Path

from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.ledger.verify import VerifyResult, VerifyState
from tests.support.cli import invoke, no_traceback
from tests.support.e2e import fleet
from tests.support.retry import make_ledger, write_job
from tests.support.retry_steps import make_steps_ledger, write_steps_job

STAGES = ["delivered all", "delivered all", "delivered all", "step 2 rejected", "delivered all"]
VERDICTS = [
    (VerifyState.NOT_YET, "2.4.0"),
    (VerifyState.ON_TARGET, "2.4.1"),
    (VerifyState.NEVER_SEEN, None),
    (VerifyState.FAILED, None),
    (VerifyState.NOT_YET, None),
]


def verified(tmp_path: Path) -> tuple[Path, list[str]]:
    """A job of steps, its ledger at STAGES, and each device's verdict (VERDICTS) recorded."""
    devices = fleet(len(STAGES), start=600)
    ledger_path = make_steps_ledger(write_steps_job(tmp_path / "fw.yaml", devices), STAGES)
    with Ledger.open(ledger_path) as ledger:
        ledger.record_verify(
            [
                VerifyResult(device, "", state, value, 1.0, "command")
                for device, (state, value) in zip(devices, VERDICTS, strict=True)
            ]
        )
    return ledger_path, devices


def starts(path: Path) -> list[tuple[str | None, int]]:
    return [(t.values[0], t.from_step) for t in load_job(path).targets]


def test_devices_not_yet_on_target_are_sent_every_step_again_beside_the_stragglers(
    tmp_path: Path,
) -> None:
    ledger_path, devices = verified(tmp_path)
    out = tmp_path / "retry.yaml"

    made = invoke("retry-failed", ledger_path, "-o", out, "--not-verified")

    assert made.exit_code == 0, made.stderr
    assert starts(out) == [(devices[0], 1), (devices[3], 2), (devices[4], 1)]
    assert "1 rejected, 2 not verified" in made.stderr
    text = out.read_text("utf-8")
    assert "# not verified (it reads '2.4.0'), every step again" in text
    assert "# not verified (it reads nothing), every step again" in text
    assert [c.step for c in load_job(out).commands() if c.imei == devices[0]] == [1, 2, 3]
    assert invoke("validate", out).exit_code == 0
    # Handed over: every step of the device, sent ones keeping their status.
    with Ledger.open(ledger_path, read_only=True) as ledger:
        rows = [r for r in ledger.rows() if r.command.imei == devices[0]]
    assert {(r.status, r.retried_in) for r in rows} == {(Status.ACCEPTED, str(out.resolve()))}

    again = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry2.yaml", "--not-verified")

    assert again.exit_code == 0, again.stderr
    assert not (tmp_path / "retry2.yaml").exists()
    assert "left out 3 devices already handed to the retry job" in again.stderr


def test_without_the_flag_finished_devices_stay_out_whatever_verify_says(tmp_path: Path) -> None:
    ledger_path, devices = verified(tmp_path)
    out = tmp_path / "retry.yaml"
    made = invoke("retry-failed", ledger_path, "-o", out)
    assert made.exit_code == 0, made.stderr
    assert starts(out) == [(devices[3], 2)]


def test_a_ledger_never_verified_is_refused(tmp_path: Path) -> None:
    devices = fleet(2, start=620)
    ledger_path = make_steps_ledger(
        write_steps_job(tmp_path / "fw.yaml", devices), ["delivered all", "step 2 rejected"]
    )
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml", "--not-verified")
    assert made.exit_code == 2
    assert f"{ledger_path}: no verify results: run dispatcher verify" in made.stderr
    assert no_traceback(made.stdout, made.stderr)
    assert not (tmp_path / "retry.yaml").exists()


def test_not_verified_on_a_job_without_steps_is_refused(tmp_path: Path) -> None:
    devices = fleet(2, start=640)
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", devices), ["delivered", "failed"])
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml", "--not-verified")
    assert made.exit_code == 2
    assert "--not-verified applies to a job with steps:" in made.stderr
    assert not (tmp_path / "retry.yaml").exists()
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert not any(r.retried_in for r in ledger.rows())
