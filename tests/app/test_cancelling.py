"""The cancel use case, called as a library user calls it: a plan, a confirmation asked with the
numbers, the cancels as values; a device not of the job refused before anything is asked."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.app.cancel_plan import CancelPlan
from dispatcher.app.cancelling import CancelRequest, cancel
from dispatcher.app.events import Quiet
from dispatcher.emulator.server import Emulator
from dispatcher.errors import Refused
from tests.support.clocks import ShiftedClock
from tests.support.e2e import API_KEY, emulator_in_thread, fast_settings, fleet
from tests.support.push import FLEET, two_per_device_job

SLEEPY = replace(FLEET, never_wake=1.0, device_errors=0.0)  # every command stays waiting


class Told(Quiet):
    """The library's observer, keeping the plans it is told of."""

    def __init__(self) -> None:
        self.plans: list[CancelPlan] = []

    def cancel_plan(self, plan: CancelPlan) -> None:
        self.plans.append(plan)


def _sent(tmp_path: Path, url: str, devices: int) -> Path:
    from dispatcher.app import RunRequest, run

    job = two_per_device_job(tmp_path, fleet(devices), expired="+1d")
    run(fast_settings().with_overrides(base_url=url), RunRequest(job))
    return tmp_path / "push.yaml.ledger.db"


def test_cancel_asks_with_the_numbers_then_cancels_every_waiting_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONENET_API_KEY", API_KEY)
    emulator = Emulator(clock=ShiftedClock(), fleet=SLEEPY)
    asked: list[tuple[int, int]] = []
    told = Told()
    with emulator_in_thread(emulator) as url:
        ledger = _sent(tmp_path, url, 3)
        settings = fast_settings().with_overrides(base_url=url)
        outcome = cancel(
            settings,
            CancelRequest(ledger),
            confirm=lambda n, d: asked.append((n, d)) or True,
            events=told,
        )
    assert asked == [(6, 3)]
    assert [p.waiting for p in told.plans] == [6]
    assert outcome.confirmed and not outcome.stopped
    (lane,) = outcome.lanes
    assert len(lane.report.cancelled) == 6 and not lane.report.unanswered
    cancelled = {c.send_status for c in emulator.accepted()}
    assert cancelled == {2}  # send_status 2: cancelled at OneNET


def test_cancel_answered_no_cancels_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONENET_API_KEY", API_KEY)
    emulator = Emulator(clock=ShiftedClock(), fleet=SLEEPY)
    with emulator_in_thread(emulator) as url:
        ledger = _sent(tmp_path, url, 2)
        settings = fast_settings().with_overrides(base_url=url)
        outcome = cancel(settings, CancelRequest(ledger), confirm=lambda n, d: False)
    assert not outcome.confirmed and outcome.lanes == ()
    assert outcome.plan.waiting == 4
    assert {c.send_status for c in emulator.accepted()} == {1}  # all still waiting


def test_cancel_of_a_device_not_of_the_job_is_refused_before_anything_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONENET_API_KEY", API_KEY)
    emulator = Emulator(clock=ShiftedClock(), fleet=SLEEPY)
    with emulator_in_thread(emulator) as url:
        ledger = _sent(tmp_path, url, 1)
        calls = emulator.stats()["calls"]
        settings = fast_settings().with_overrides(base_url=url)
        with pytest.raises(Refused, match="--imei 999: not a device of this job"):
            cancel(settings, CancelRequest(ledger, ("999",)))
        assert emulator.stats()["calls"] == calls
    assert os.path.exists(ledger)
