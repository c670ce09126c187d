"""The next step after a run, a status read or a verify: one rule set for every place."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import VerifyState
from dispatcher.report.compliance import Compliance
from dispatcher.report.next_steps import After, next_steps, retry_job_path
from dispatcher.report.summary import Summary

LEDGER = Path("jobs/push.ledger.db")


def _summary(delivery: dict[DeliveryState, int] | None = None, **counts: int) -> Summary:
    commands = dict.fromkeys(DeliveryState, 0) | (delivery or {})
    return Summary(
        total=sum(counts.values()),
        by_status=counts,
        by_errno={},
        errno_text={},
        retries=0,
        attempts=0,
        first_at=None,
        last_at=None,
        throughput=None,
        p50_ms=None,
        p95_ms=None,
        p99_ms=None,
        reconciled=0,
        runs=1,
        stop_reason=None,
        delivery=DeliveryBreakdown(commands, dict(commands), 0, 0, []),
    )


# Verify's verdicts: half the devices on target, half not yet.
HALF_NOT_YET = Compliance(
    devices=4,
    by_state={VerifyState.ON_TARGET: 2, VerifyState.NOT_YET: 2},
    versions=(),
    not_on_target=(),
    source="command",
)


def _commands(summary: Summary, **kw: object) -> list[str]:
    return [s.command for s in next_steps(summary, LEDGER, After(**kw))]  # type: ignore[arg-type]


def test_a_finished_job_all_delivered_has_no_next_step() -> None:
    done = _summary({DeliveryState.DELIVERED: 5}, accepted=5)
    assert _commands(done, job="jobs/push.yaml") == []


def test_open_deliveries_say_watch_status() -> None:
    waiting = _summary({DeliveryState.WAITING: 3, DeliveryState.DELIVERED: 2}, accepted=5)
    steps = next_steps(waiting, LEDGER, After(config="config.yaml"))
    assert [s.command for s in steps] == [
        "dispatcher status jobs/push.ledger.db --watch --config config.yaml"
    ]
    assert steps[0].why == "3 commands not delivered yet: watch until they are"


def test_failed_commands_and_lost_deliveries_say_retry_failed() -> None:
    mixed = _summary({DeliveryState.EXPIRED: 1}, accepted=4, rejected=2, failed=1)
    steps = next_steps(mixed, LEDGER)
    assert [s.command for s in steps] == [
        "dispatcher retry-failed jobs/push.ledger.db -o jobs/push-retry.yaml"
    ]
    assert steps[0].why.startswith("3 commands did not get through and 1 delivery expired")


def test_unsent_commands_say_run_again_first_and_only_with_a_job() -> None:
    stopped = _summary(accepted=2, pending=7, in_doubt=1)
    own = next_steps(stopped, Path("jobs/push.yaml.ledger.db"), After(job="jobs/push.yaml"))
    assert own[0].command == "dispatcher run jobs/push.yaml"  # the job's default ledger
    # Any other ledger is named, whole (as the job is on the HTML page): without it the run
    # would open a new one and send all again.
    whole = os.path.abspath("jobs/push.ledger.db")
    assert _commands(stopped, job="jobs/push.yaml")[0] == (
        f"dispatcher run jobs/push.yaml --ledger {whole}"
    )
    assert next_steps(stopped, LEDGER, After(job="j.yaml"))[0].why == (
        "8 commands not sent yet (1 in doubt): run resumes"
    )
    assert _commands(stopped) == []


def test_a_rollout_stop_with_commands_waiting_says_cancel_not_watch() -> None:
    aborted = _summary({DeliveryState.WAITING: 4}, accepted=4, rejected=3, skipped=90)
    commands = _commands(aborted, job="j.yaml", rollout_stopped=True)
    assert commands[0] == "dispatcher cancel jobs/push.ledger.db"
    assert not any(" run " in c or "--watch" in c for c in commands)


def test_devices_not_on_target_say_retry_not_verified_and_unjudged_say_verify() -> None:
    settled = _summary({DeliveryState.DELIVERED: 4}, accepted=4)
    assert _commands(settled, has_verify=True) == ["dispatcher verify jobs/push.ledger.db"]
    behind = replace(
        settled,
        stepped=True,
        compliance=HALF_NOT_YET,
    )
    assert _commands(behind, has_verify=True) == [
        "dispatcher retry-failed jobs/push.ledger.db --not-verified -o jobs/push-retry.yaml"
    ]


def test_the_retry_job_sits_beside_the_ledger() -> None:
    assert retry_job_path(Path("/x/fw.ledger.db")) == Path("/x/fw-retry.yaml")
    assert retry_job_path(Path("/x/fw.yaml.ledger.db")) == Path("/x/fw-retry.yaml")


def test_a_resume_as_typed_is_said_in_place_of_run_job() -> None:
    stopped = _summary(accepted=2, pending=3)
    typed = ("dispatcher", "run", "j.yaml", "--ledger", "l/j-2026.db", "--config", "c.yaml")
    assert next_steps(stopped, LEDGER, After(resume=typed))[0].argv == typed


def test_devices_that_may_still_report_say_verify_watch_and_failed_ones_retry() -> None:
    settled = _summary({DeliveryState.DELIVERED: 4}, accepted=4)
    verified = replace(
        settled,
        stepped=True,
        compliance=Compliance(
            devices=4,
            by_state={
                VerifyState.ON_TARGET: 1,
                VerifyState.NOT_YET: 1,
                VerifyState.NEVER_SEEN: 1,
                VerifyState.FAILED: 1,
            },
            versions=(),
            not_on_target=(),
            source="command",
        ),
    )
    steps = next_steps(verified, LEDGER, After(config="c.yaml", verify_open=True))
    assert [s.command for s in steps] == [
        "dispatcher retry-failed jobs/push.ledger.db --not-verified -o jobs/push-retry.yaml",
        "dispatcher verify jobs/push.ledger.db --watch --config c.yaml",
    ]
    assert steps[0].why.startswith("1 device not on target")
    assert steps[1].why.startswith("2 devices still to report")


def test_devices_verify_found_behind_say_not_verified_even_with_lost_deliveries() -> None:
    lost = _summary({DeliveryState.EXPIRED: 2, DeliveryState.DELIVERED: 2}, accepted=4)
    judged = replace(
        lost,
        stepped=True,
        compliance=HALF_NOT_YET,
    )
    assert _commands(judged) == [
        "dispatcher retry-failed jobs/push.ledger.db --not-verified -o jobs/push-retry.yaml"
    ]


def test_a_job_without_steps_is_never_told_not_verified_which_retry_failed_refuses_it() -> None:
    delivered = _summary({DeliveryState.DELIVERED: 4}, accepted=4)
    assert _commands(replace(delivered, compliance=HALF_NOT_YET)) == []
    lost = _summary({DeliveryState.EXPIRED: 2, DeliveryState.DELIVERED: 2}, accepted=4)
    assert _commands(replace(lost, compliance=HALF_NOT_YET)) == [
        "dispatcher retry-failed jobs/push.ledger.db -o jobs/push-retry.yaml"
    ]


def test_what_a_retry_job_took_over_is_never_advised_again(tmp_path: Path) -> None:
    # Two refused and two lost deliveries, all handed to a retry job.
    retry = tmp_path / "push-retry.yaml"
    lost = _summary({DeliveryState.EXPIRED: 2, DeliveryState.DELIVERED: 2}, accepted=4, rejected=2)
    assert lost.delivery is not None
    handed = replace(
        lost,
        handed_over=2,
        delivery=replace(lost.delivery, handed=2),
        retry_jobs={str(retry): 4},
    )
    # Not in place (deleted, or a retry-failed stopped before it was): written again.
    assert _commands(handed) == [f"dispatcher retry-failed jobs/push.ledger.db -o {retry}"]
    # In place: its own ledger says the rest; whether it ran (and on which ledger) this one
    # cannot know, so no run is advised (it could send it all again).
    retry.write_text("targets: []\n", encoding="utf-8")
    assert _commands(handed) == []
    # One refusal not handed yet: a retry of that one.
    assert _commands(replace(handed, handed_over=1))[0].startswith("dispatcher retry-failed")


def test_a_job_of_steps_whose_devices_were_handed_over_is_not_told_not_verified_again() -> None:
    settled = _summary({DeliveryState.DELIVERED: 4}, accepted=4)
    behind = replace(settled, stepped=True, compliance=HALF_NOT_YET)
    assert _commands(behind)[0].startswith("dispatcher retry-failed jobs/push.ledger.db --not-")
    handed = replace(behind, retry_jobs={"jobs/push-retry.yaml": 4})
    assert not any("--not-verified" in c for c in _commands(handed))
