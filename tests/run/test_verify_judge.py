"""Verify's judging: the resource's value taken out of a read's cmd_result in each shape it may
come in, and each device's state (on target, not yet, failed, never seen) from its commands as
the ledger holds them, with when it becomes final."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, strategies as st

from dispatcher.job.verifyspec import VerifySource, VerifySpec
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.store import Delivery, Status, VerifyState
from dispatcher.model.command import Op
from dispatcher.run.verify import Reading, command_reading, devices_of, judge, value_of
from tests.support.ledger import make_command
from tests.support.stores import in_flight, result_of

SPEC = VerifySpec(3, 0, 3, ("2.4.1",))
PAST = 1_714_550_400.0 + 1  # just after in_flight's window (2024-05-01T16:00:00, UTC+8) closed


@pytest.mark.parametrize(
    ("cmd_result", "exact", "value"),
    [
        ("2.4.1", True, "2.4.1"),
        (" 2.4.1\n", True, "2.4.1"),
        ("2.4.1", False, None),  # a plain value from a whole-object read cannot be told
        ("7", True, "7"),
        ('[{"res_id": 0, "val": "Acme"}, {"res_id": 3, "val": "2.4.1"}]', False, "2.4.1"),
        ('[{"res_id": "3", "val": 241}]', False, "241"),
        ('[{"res_id": 3, "obj_inst_id": 1, "val": "x"}, {"res_id": 3, "val": "y"}]', False, "y"),
        ('{"res_id": 3, "val": "2.4.1"}', True, "2.4.1"),
        ('{"3": "2.4.1", "0": "Acme"}', False, "2.4.1"),
        ('{"data": [{"id": 3, "value": "2.4.1"}]}', False, "2.4.1"),
        ('{"val": true}', True, "true"),
        ('[{"res_id": 0, "val": "Acme"}]', False, None),
        ("", True, None),
    ],
)
def test_the_resources_value_is_taken_from_each_shape(
    cmd_result: str, exact: bool, value: str | None
) -> None:
    assert value_of(cmd_result, SPEC, exact=exact) == value


@given(st.text(min_size=1).filter(lambda t: t.strip() == t and t))
def test_a_value_in_a_list_comes_back_as_it_was_written(text: str) -> None:
    listed = json.dumps([{"res_id": 1, "val": "other"}, {"res_id": 3, "val": text}])
    assert value_of(listed, SPEC, exact=False) == text


def _ledger(steps: list[tuple[Status, int | None, str | None]]) -> MemoryLedger:
    """One device whose steps (write, execute, read 3/0/3) ended as given: (status, send_status,
    cmd_result)."""
    ledger = MemoryLedger()
    # a device with fewer steps stops early
    ops = [(Op.WRITE, 5, 1), (Op.EXECUTE, 5, 2), (Op.READ, 3, 3)]
    for step, ((op, obj, res), (status, send_status, result)) in enumerate(
        zip(ops, steps, strict=False), 1
    ):
        cmd = make_command(step, imei="860000000000001", op=op, obj_id=obj, res_id=res, step=step)
        ledger.register([cmd])
        if status is Status.PENDING:
            continue
        if status is Status.SKIPPED:
            ledger.skip([cmd.key], "held back: step 1 (write 5/0) is not delivered")
            continue
        ledger.write_batch([in_flight(cmd.key)], [result_of(cmd.key, status, error="boom")])
        if send_status is not None:
            confirm = "SUCCESS" if send_status == 5 else None
            at = "2024-05-01 12:00:00"
            ledger.record_delivery(
                [Delivery(cmd.key, send_status, confirm, at, at, result, 1000.0)]
            )
    return ledger


OK = (Status.ACCEPTED, 5, "OK")


def _judged(
    ledger: MemoryLedger, now: float, spec: VerifySpec = SPEC
) -> tuple[VerifyState, bool, str]:
    (device,) = devices_of(ledger.rows())
    verdict, final = judge(device, spec, command_reading(device, spec), now)
    return verdict.state, final, verdict.reason


def test_a_device_reading_a_good_value_is_on_target_and_final() -> None:
    ledger = _ledger([OK, OK, (Status.ACCEPTED, 5, "2.4.1")])
    (device,) = devices_of(ledger.rows())
    reading = command_reading(device, SPEC)
    assert reading is not None and reading.value == "2.4.1" and reading.at is not None
    assert _judged(ledger, 0.0)[:2] == (VerifyState.ON_TARGET, True)


def test_a_device_reading_another_value_is_not_yet_and_final_once_its_read_is_done() -> None:
    ledger = _ledger([OK, OK, (Status.ACCEPTED, 5, "2.3.0")])
    state, final, reason = _judged(ledger, 0.0)
    assert (state, final) == (VerifyState.NOT_YET, True)
    assert reason == "reads '2.3.0', expected '2.4.1'"


def test_a_datapoint_not_yet_stays_open_until_the_last_steps_window_closes() -> None:
    ledger = _ledger([OK, OK, OK])
    spec = dataclasses.replace(SPEC, source=VerifySource.DATAPOINTS)
    (device,) = devices_of(ledger.rows())
    verdict, final = judge(device, spec, Reading("2.3.0", None), 0.0)
    assert (verdict.state, final) == (VerifyState.NOT_YET, False)
    verdict, final = judge(device, spec, Reading("2.3.0", None), PAST)
    assert (verdict.state, final) == (VerifyState.NOT_YET, True)
    assert verdict.reason.endswith("(its time to verify is over)")


def test_a_timeout_counts_from_the_last_accepted_step() -> None:
    ledger = _ledger([OK, OK, (Status.ACCEPTED, 3, None)])
    spec = dataclasses.replace(SPEC, timeout_s=600.0)
    assert _judged(ledger, 2000.0 + 599, spec)[:2] == (VerifyState.NEVER_SEEN, False)
    state, final, reason = _judged(ledger, 2000.0 + 600, spec)
    assert (state, final) == (VerifyState.NEVER_SEEN, True)
    assert "time to verify is over" in reason


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        (
            [(Status.REJECTED, None, None), (Status.PENDING, None, None)],
            "step 1 (write) was rejected: boom",
        ),
        ([OK, (Status.ACCEPTED, 6, None), OK], "step 2 (execute) delivery failed"),
        ([OK, (Status.ACCEPTED, 4, None), OK], "step 2 (execute) delivery expired"),
        ([OK, OK, (Status.ACCEPTED, 2, None)], "step 3 (read) was cancelled"),
        ([OK, (Status.SKIPPED, None, None)], "step 2 (execute) was held back: step 1"),
    ],
)
def test_a_device_whose_step_did_not_get_through_failed(
    steps: list[tuple[Status, int | None, str | None]], why: str
) -> None:
    state, final, reason = _judged(_ledger(steps), 0.0)
    assert (state, final) == (VerifyState.FAILED, True)
    assert reason.startswith(why)


def test_a_good_value_counts_even_when_another_step_failed() -> None:
    ledger = _ledger([OK, (Status.ACCEPTED, 6, None), (Status.ACCEPTED, 5, "2.4.1")])
    assert _judged(ledger, 0.0)[0] is VerifyState.ON_TARGET


def test_a_device_with_nothing_read_and_nothing_failed_is_never_seen() -> None:
    state, final, reason = _judged(_ledger([OK, OK, (Status.ACCEPTED, 1, None)]), 0.0)
    assert (state, final, reason) == (
        VerifyState.NEVER_SEEN,
        False,
        "its read is not delivered yet",
    )


def test_a_device_whose_steps_were_never_sent_is_never_seen_and_final() -> None:
    ledger = _ledger([(Status.PENDING, None, None)] * 3)
    state, final, reason = _judged(ledger, 0.0)
    assert (state, final, reason) == (
        VerifyState.NEVER_SEEN,
        True,
        "step 1 is not sent yet (its time to verify is over)",
    )


def test_a_datapoint_reading_is_judged_as_a_read_is() -> None:
    ledger = _ledger([OK, OK, OK])
    spec = dataclasses.replace(SPEC, source=VerifySource.DATAPOINTS)
    (device,) = devices_of(ledger.rows())
    verdict, _ = judge(device, spec, Reading("2.4.1", 5.0), 0.0)
    assert (verdict.state, verdict.value, verdict.read_at, verdict.source) == (
        VerifyState.ON_TARGET,
        "2.4.1",
        5.0,
        "datapoints",
    )
    missing, _ = judge(device, spec, None, 0.0)
    assert (missing.state, missing.reason) == (VerifyState.NEVER_SEEN, "no datapoint 3_0_3")


def test_a_failed_device_handed_to_a_retry_job_says_where_it_went() -> None:
    ledger = _ledger([OK, (Status.ACCEPTED, 6, None), (Status.PENDING, None, None)])
    keys = [r.key for r in ledger.rows() if r.command.step >= 2]
    ledger.hand_over(keys, "jobs/fw-retry.yaml")
    state, final, reason = _judged(ledger, 0.0)
    assert (state, final) == (VerifyState.FAILED, True)
    assert reason == (
        "step 2 (execute) delivery failed; handed to jobs/fw-retry.yaml (verify its ledger)"
    )
