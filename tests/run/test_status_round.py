"""One status round (run/status.py read_round) through the real client over a scripted OneNET:
one history call per device answers for all its commands, a command the list leaves out read from
its detail, an unreadable device kept and counted, the breaker when none can be read, a stopped
round that keeps what it read, a business errno not asked again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.records import Delivery
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from dispatcher.run.lane import Lane
from dispatcher.run.state import Stop
from dispatcher.run.status import StatusRound, read_round
from tests.support.e2e import fast_settings
from tests.support.ledger import make_command, write_outcomes
from tests.support.scripted import ScriptedOneNet

# -- one round, with a scripted client --------------------------------------------------------


@dataclass
class FakeHistory:
    """A scripted OneNET (tests/support/scripted.py) over the wire whose history lists a table of
    uuid -> send_status per device, read at each call; calls counted (``calls``), a stop asked
    for at the ``stop_after``-th."""

    states: dict[str, dict[str, int]]  # imei -> uuid -> send_status
    unlisted: set[str] = field(default_factory=set)  # uuids the list leaves out
    broken: set[str] = field(default_factory=set)  # imeis whose history fails
    unreadable: set[str] = field(default_factory=set)  # uuids listed without a send_status
    stop_after: int | None = None
    stop: Stop | None = None
    onenet: ScriptedOneNet = field(init=False)

    def __post_init__(self) -> None:
        self.onenet = ScriptedOneNet(
            states=self.states,
            unlisted=self.unlisted,
            unreadable=self.unreadable,
            down=self.broken,
            on_call=self._called,
        )

    @property
    def calls(self) -> list[tuple[str, str]]:
        """(kind, imei or uuid) of each call, in order."""
        return self.onenet.calls

    async def _called(self, kind: str, subject: str) -> None:
        if self.stop is not None and self.stop_after == len(self.calls):
            self.stop.request("test")


def accepted_ledger(
    tmp_path: Path, devices: int, per_device: int
) -> tuple[Ledger, dict[str, dict[str, int]]]:
    """A ledger of accepted commands (uuid u<device>-<n>), and a table of them all waiting."""
    ledger = Ledger.open(tmp_path / "l.db")
    states: dict[str, dict[str, int]] = {}
    for d in range(devices):
        cmds = [make_command(d, res_id=5750 + n) for n in range(per_device)]
        ledger.register(cmds)
        results = [
            Result(c.key, Status.ACCEPTED, 0, "", f"u{d}-{n}", 1, 1000.0, 1.0)
            for n, c in enumerate(cmds)
        ]
        write_outcomes(ledger, results)
        states[cmds[0].imei] = {f"u{d}-{n}": 1 for n in range(per_device)}
    return ledger, states


async def one_round(
    ledger: Ledger, client: FakeHistory, stop: Stop | None = None, **changes: Any
) -> StatusRound:
    settings = fast_settings(concurrency=1, **changes)

    async def record(batch: list[Delivery]) -> None:
        ledger.record_delivery(batch)

    commands, devices, _ = ledger.count_to_check()
    return await read_round(
        ledger.rows_to_check(),
        Lane.of(client.onenet.client, settings),
        record,
        settings,
        stop=stop or Stop(),
        clock=lambda: 2000.0,
        totals=(commands, devices),
    )


async def test_one_history_call_per_device_answers_for_all_its_commands(tmp_path: Path) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=3, per_device=4)
    client = FakeHistory(states)
    first = await one_round(ledger, client)
    assert [kind for kind, _ in client.calls] == ["history"] * 3
    assert (first.read, first.unreadable, first.history_pages, first.details) == (12, [], 3, 0)
    # The device answers two commands of the first device: one detail each, for its result.
    imei = next(iter(states))
    states[imei]["u0-0"], states[imei]["u0-1"] = 5, 6
    client.calls.clear()
    second = await one_round(ledger, client)
    assert sorted(c for c in client.calls if c[0] == "detail") == [
        ("detail", "u0-0"),
        ("detail", "u0-1"),
    ]
    assert second.changed == 2
    stored = {r.uuid: r for r in ledger.rows()}
    assert (stored["u0-0"].confirm_status, stored["u0-0"].cmd_result) == ("SUCCESS", '{"value":42}')
    assert (stored["u0-1"].confirm_status, stored["u0-1"].send_time) == (
        "TIME_OUT",
        "2024-05-01 12:00:00",
    )
    assert stored["u0-0"].confirm_time == "2024-05-01 12:00:05"
    # Final commands are not asked about again: a device whose commands are all final is skipped.
    for uuid in states[imei]:
        states[imei][uuid] = 4
    await one_round(ledger, client)
    client.calls.clear()
    await one_round(ledger, client)
    assert ("history", imei) not in client.calls
    ledger.close()


async def test_a_command_the_list_leaves_out_is_read_from_its_detail(tmp_path: Path) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=1, per_device=2)
    client = FakeHistory(states, unlisted={"u0-1"})
    result = await one_round(ledger, client)
    assert [c for c in client.calls if c[0] == "detail"] == [("detail", "u0-1")]
    assert result.read == 2
    ledger.close()


async def test_an_unreadable_device_keeps_its_state_and_is_counted(tmp_path: Path) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=3, per_device=1)
    broken = sorted(states)[1]
    client = FakeHistory(states, broken={broken})
    result = await one_round(ledger, client)
    assert (result.read, len(result.unreadable)) == (2, 1)
    stored = {r.command.imei: r for r in ledger.rows()}
    assert stored[broken].send_status is None and stored[broken].status_checked_at is None
    assert result.gave_up is None
    ledger.close()


async def test_a_round_where_no_device_can_be_read_stops_at_the_breaker(tmp_path: Path) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=12, per_device=1)
    client = FakeHistory(states, broken=set(states))
    result = await one_round(ledger, client, breaker_threshold=4)
    assert result.gave_up is not None and "could not be read" in result.gave_up
    assert len({imei for kind, imei in client.calls if kind == "history"}) == 4  # of 12
    ledger.close()


async def test_a_stopped_round_keeps_what_it_read_and_the_next_asks_only_the_rest(
    tmp_path: Path,
) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=6, per_device=1)
    stop = Stop()
    client = FakeHistory(states, stop_after=2, stop=stop)
    first = await one_round(ledger, client, stop=stop)
    assert first.read == 2 and first.not_asked == 4
    assert len(list(ledger.rows_to_check())) == 6  # waiting (1) is not final: all still to check
    read = {r.command.imei for r in ledger.rows() if r.send_status == 1}
    assert len(read) == 2
    client.calls.clear()
    client.stop = None
    second = await one_round(ledger, client)
    assert second.read == 6 and len(client.calls) == 6
    ledger.close()


async def test_a_query_is_not_asked_again_after_a_business_errno_and_waits_as_told() -> None:
    from dispatcher.run.retrying import retry_query

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = retry_query(fast_settings().retry, stop=Stop(), sleep=sleep)
    calls: list[int] = []

    async def refused() -> None:
        calls.append(1)
        raise OneNetUnavailable("history: errno 1 auth failed", errno=1, retryable=False)

    with pytest.raises(OneNetUnavailable):
        await policy(refused)
    assert calls == [1] and waits == []

    async def throttled() -> None:
        calls.append(2)
        raise OneNetUnavailable("history: HTTP 429", throttled=True, retry_after=7.0)

    with pytest.raises(OneNetUnavailable):
        await policy(throttled)
    assert calls.count(2) == 3 and waits == [7.0, 7.0]  # OneNET's Retry-After, not our backoff


async def test_a_listed_item_without_a_readable_send_status_is_read_from_its_detail(
    tmp_path: Path,
) -> None:
    ledger, states = accepted_ledger(tmp_path, devices=1, per_device=2)
    client = FakeHistory(states, unreadable={"u0-1"})
    result = await one_round(ledger, client)
    assert [c for c in client.calls if c[0] == "detail"] == [("detail", "u0-1")]
    assert result.read == 2 and result.unreadable == []
    ledger.close()
