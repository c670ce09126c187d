"""The LedgerStore contract of the send queue, for every implementation (OPENERS of the contract
suite): a job of steps registered and queued in one pass, each step read back in the job's order
with its status at that moment, one lane's queue apart from another's."""

from __future__ import annotations

import dataclasses

from dispatcher.ledger.store import LedgerStore, Status
from dispatcher.model import Command
from tests.support.ledger import make_command


def _device(n: int, steps: int, product: str = "") -> list[Command]:
    """Device ``n``'s commands of a job of ``steps`` steps, each knowing the step before."""
    found: list[Command] = []
    for step in range(1, steps + 1):
        cmd = make_command(100 * n + step, imei=f"86{n:013d}", step=step, product=product)
        found.append(dataclasses.replace(cmd, after=found[-1].key if found else ""))
    return found


def test_queueing_registers_the_commands_and_gives_each_status(store: LedgerStore) -> None:
    first, second = _device(1, 2)
    store.register([first])
    store.skip([first.key], "a rule")
    assert store.queue([first, second]) == [Status.SKIPPED, Status.PENDING]
    assert [r.key for r in store.rows()] == [first.key, second.key]


def test_a_step_comes_back_in_queue_order_with_its_status_now(store: LedgerStore) -> None:
    devices = [_device(n, 2) for n in (3, 1, 2)]
    store.queue([c for device in devices for c in device])
    store.skip([devices[1][0].key], "a rule")
    step_one = list(store.queued(1))
    assert [c for c, _ in step_one] == [device[0] for device in devices]
    assert [s for _, s in step_one] == [Status.PENDING, Status.SKIPPED, Status.PENDING]
    assert [c for c, _ in store.queued(2)] == [device[1] for device in devices]
    assert list(store.queued(3)) == []


def test_a_queued_command_is_as_the_job_gave_it_not_as_the_ledger_held_it(
    store: LedgerStore,
) -> None:
    first, second = _device(1, 2)
    store.register([dataclasses.replace(second, after="", source="old.yaml", line=1)])
    store.queue([first, second])
    ((queued, status),) = store.queued(2)
    assert (queued.after, queued.source, queued.line) == (first.key, second.source, second.line)
    assert status is Status.PENDING
    (row,) = store.rows_of([second.key])
    assert (row.command.after, row.command.source) == ("", "old.yaml")  # the ledger is as it was


def test_each_lane_reads_and_clears_its_own_products_queue(store: LedgerStore) -> None:
    default, other = _device(1, 1), _device(2, 1, product="p2")
    store.queue([*default, *other])
    assert [c for c, _ in store.queued(1, "")] == default
    assert [c for c, _ in store.queued(1, "p2")] == other
    assert [c for c, _ in store.queued(1)] == [*default, *other]
    store.clear_queue("p2")
    assert [c for c, _ in store.queued(1)] == default
    store.clear_queue()
    assert list(store.queued(1)) == []
    assert store.total() == 2  # the commands stay registered


def test_a_long_queue_is_read_whole_while_statuses_change_between_pages(
    store: LedgerStore,
) -> None:
    commands = [make_command(n) for n in range(2500)]
    store.queue(commands)
    seen: list[Status] = []
    for n, (_, status) in enumerate(store.queued(0)):
        seen.append(status)
        if n == 0:
            store.skip([commands[-1].key], "a rule")
    assert len(seen) == 2500
    assert seen[-1] is Status.SKIPPED
