"""Where each device of a job with steps starts again: its first step not done (not accepted, or,
when the step waits for delivery, not delivered); devices with a step that may be at OneNET, a
cancelled step or a done step after the one that failed are left out; handed devices are never
handed twice; finished devices only when named (not verified)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.store import LedgerStore, Status
from dispatcher.report.retry import Reason
from dispatcher.report.retry_steps import Left, Start, StepTally, starts
from tests.support.e2e import fleet
from tests.support.retry import AT, FATES
from tests.support.retry_steps import fill, write_steps_job

ACCEPTED = (False, False, False)  # wait: accepted on every step (the default)
DELIVERED = (True, True, True)  # wait: delivered on every step


def where(
    ledger: LedgerStore, waits: Sequence[bool], *, into: str | None = None, redo: Sequence[str] = ()
) -> tuple[dict[str, Start], StepTally]:
    tally = StepTally()
    found = {s.imei: s for s in starts(ledger, waits, tally, now=AT, into=into, redo=redo)}
    return found, tally


def ledger_at(
    tmp_path: Path, stages: Sequence[str | Sequence[str]]
) -> tuple[MemoryLedger, list[str]]:
    devices = fleet(len(stages), start=100)
    job = write_steps_job(tmp_path / "fw.yaml", devices)
    ledger = MemoryLedger()
    fill(ledger, job, list(stages))
    return ledger, devices


# Under wait: accepted: where each stage starts again (a step number), or why it is left out.
EXPECTED: dict[str, int | Left] = {
    "delivered all": Left.FINISHED,
    "step 1 expired": 1,
    "step 2 failed on the device": 2,
    "step 2 rejected": 2,
    "held back": 1,
    "in doubt": Left.UNSETTLED,
    "step 3 open": Left.FINISHED,  # accepted is done, under wait: accepted
    "step 2 not read": Left.FINISHED,
    "step 1 expired, later ones delivered": Left.DONE_LATER,
    "step 2 cancelled": Left.CANCELLED,
    "never sent": 1,
}
# Under wait: delivered, an accepted step whose delivery is still open is not done, and may yet be
# delivered: the device is left out until dispatcher status says what became of it.
EXPECTED_DELIVERED = {**EXPECTED, "step 3 open": Left.OPEN, "step 2 not read": Left.OPEN}


@pytest.mark.parametrize(
    ("waits", "expected"), [(ACCEPTED, EXPECTED), (DELIVERED, EXPECTED_DELIVERED)]
)
def test_each_device_starts_at_its_first_step_not_done_or_is_left_out_with_why(
    tmp_path: Path, waits: tuple[bool, ...], expected: dict[str, int | Left]
) -> None:
    stages = list(expected)
    ledger, devices = ledger_at(tmp_path, stages)
    found, tally = where(ledger, waits)
    by_stage = dict(zip(stages, devices, strict=True))
    starting = {
        stage: found[by_stage[stage]].from_step for stage in stages if by_stage[stage] in found
    }
    assert starting == {s: n for s, n in expected.items() if isinstance(n, int)}
    left = [n for n in expected.values() if isinstance(n, Left)]
    assert tally.left == {cause: left.count(cause) for cause in Left}
    assert tally.devices == len(stages)
    assert tally.total == len(starting)


def test_a_device_is_sent_its_steps_from_its_start_each_with_the_reason_it_stopped(
    tmp_path: Path,
) -> None:
    ledger, devices = ledger_at(tmp_path, ["step 2 rejected", "held back", "step 1 expired"])
    found, tally = where(ledger, ACCEPTED)
    rejected, held, expired = (found[d] for d in devices)
    assert [r.command.step for r in rejected.rows] == [2, 3]
    assert [r.status for r in rejected.rows] == [Status.REJECTED, Status.SKIPPED]
    assert rejected.reason is Reason.REJECTED
    assert held.reason is Reason.FAILED  # the failed step, not the held-back ones after it
    assert expired.reason is Reason.DELIVERY_EXPIRED
    assert [r.command.step for r in expired.rows] == [1, 2, 3]
    assert {r: n for r, n in tally.reasons.items() if n} == {
        Reason.REJECTED: 1, Reason.FAILED: 1, Reason.DELIVERY_EXPIRED: 1,
    }  # fmt: skip


def test_only_the_steps_that_wait_for_delivery_need_it(tmp_path: Path) -> None:
    # Step 2's delivery is not read yet: done if step 2 waits for acceptance only.
    ledger, devices = ledger_at(tmp_path, [("delivered", "unread", "rejected")])
    found, _ = where(ledger, (True, False, True))
    assert found[devices[0]].from_step == 3
    found, tally = where(ledger, (True, True, True))
    assert not found and tally.left[Left.OPEN] == 1


def test_devices_handed_to_a_retry_job_are_never_handed_again_but_go_into_the_same_file(
    tmp_path: Path,
) -> None:
    ledger, devices = ledger_at(tmp_path, ["step 2 rejected", "held back", "delivered all"])
    first, _ = where(ledger, ACCEPTED, into="/jobs/retry.yaml")
    ledger.hand_over([r.key for s in first.values() for r in s.rows], "/jobs/retry.yaml")
    again, tally = where(ledger, ACCEPTED, into="/jobs/other.yaml")
    assert again == {}
    assert tally.handed == {"/jobs/retry.yaml": 2}
    same, _ = where(ledger, ACCEPTED, into="/jobs/retry.yaml")
    assert {d: s.from_step for d, s in same.items()} == {devices[0]: 2, devices[1]: 1}


def test_finished_devices_named_as_not_verified_are_sent_every_step_again(tmp_path: Path) -> None:
    ledger, devices = ledger_at(tmp_path, ["delivered all", "delivered all", "step 2 rejected"])
    found, tally = where(ledger, ACCEPTED, redo=[devices[0], devices[2]])
    assert {d: s.from_step for d, s in found.items()} == {devices[0]: 1, devices[2]: 2}
    assert found[devices[0]].reason is None
    assert len(found[devices[0]].rows) == 3
    assert tally.not_verified == 1 and tally.left[Left.FINISHED] == 1


# --- a property: whatever became of each step --------------------------------------------------

FATE = st.sampled_from(sorted({*FATES, "held back"}))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fates=st.lists(st.tuples(FATE, FATE, FATE), min_size=1, max_size=4),
       waits=st.tuples(st.booleans(), st.booleans(), st.booleans()))  # fmt: skip
def test_a_retry_never_sends_a_done_step_nor_one_that_may_be_at_onenet(
    tmp_path: Path, fates: list[tuple[str, str, str]], waits: tuple[bool, bool, bool]
) -> None:
    ledger, devices = ledger_at(tmp_path, fates)
    found, tally = where(ledger, waits)
    for device, steps in zip(devices, fates, strict=True):
        start = found.get(device)
        if start is None:
            continue
        sent = steps[start.from_step - 1 :]
        # Everything from the start is known not to have got through (nothing at OneNET that
        # could still run, nothing delivered) ...
        for fate in sent:
            status, _, send_status = FATES.get(fate, (Status.SKIPPED, None, None))
            assert status not in (Status.ACCEPTED, Status.IN_DOUBT, Status.IN_FLIGHT) or (
                send_status in (4, 6, 7, 8)
            )
        assert [r.command.step for r in start.rows] == list(range(start.from_step, 4))
        # ... and every step before it is done.
        for fate, waits_delivery in zip(steps[: start.from_step - 1], waits, strict=False):
            status, _, send_status = FATES.get(fate, (Status.SKIPPED, None, None))
            assert status is Status.ACCEPTED
            assert send_status == 5 or (not waits_delivery and send_status not in (2, 4, 6, 7, 8))
    assert tally.total + sum(tally.left.values()) == len(fates)
