"""run_job() against a scripted OneNET: what each answer makes of a command (accepted, rejected,
retried, failed, settled when its answer was lost) and resuming a job."""

from __future__ import annotations

import pytest

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from dispatcher.onenet import Response
from dispatcher.run.retrying import THROTTLED_PER_ATTEMPT
from tests.support.e2e import fast_settings
from tests.support.ledger import write_outcomes
from tests.support.runs import (
    Setup,
    rows,
    run,
    statuses,
)
from tests.support.scripted import Lost, ScriptedOneNet, answer, http


async def test_errno_0_is_accepted_with_the_servers_uuid(small_job: Setup) -> None:
    client = ScriptedOneNet()
    result = await run(small_job, client)

    assert result.complete
    held = {c.uuid: c.imei for c in client.commands.values()}
    assert {r.uuid: r.command.imei for r in rows(small_job).values()} == held
    assert {r.attempts for r in rows(small_job).values()} == {1}


@pytest.mark.parametrize("errno", [1, 3, 2001, 5006, 5106, 14, 16])
async def test_other_errnos_are_rejected_at_once_with_errno_and_text(
    small_job: Setup, errno: int
) -> None:
    target = small_job.imeis[5]
    client = ScriptedOneNet({target: [answer(errno, "the reason")]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.errno, row.error, row.attempts) == (
        Status.REJECTED,
        errno,
        "the reason",
        1,
    )
    assert client.sent_imeis().count(target) == 1
    assert statuses(small_job)[Status.ACCEPTED] == 19


@pytest.mark.parametrize(
    "throttled",
    [answer(7, "service internal error"), http(429, b"slow down", **{"Retry-After": "0"})],
    ids=["errno7", "http429"],
)
async def test_a_throttle_is_not_a_failure_and_uses_up_no_attempt(
    small_job: Setup, throttled: Response
) -> None:
    target = small_job.imeis[3]
    client = ScriptedOneNet({target: [throttled] * 10})
    await run(small_job, client, fast_settings(max_attempts=4))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.ACCEPTED, 11)  # 10 throttled, then accepted
    assert client.sent_imeis().count(target) == 11
    assert statuses(small_job)[Status.ACCEPTED] == 20


async def test_a_server_that_throttles_without_end_fails_the_command_in_the_end(
    small_job: Setup,
) -> None:
    target = small_job.imeis[2]
    client = ScriptedOneNet({target: [answer(7, "service internal error")] * 100})
    await run(small_job, client, fast_settings(max_attempts=2))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.FAILED, 2 * THROTTLED_PER_ATTEMPT)
    assert statuses(small_job)[Status.ACCEPTED] == 19


@pytest.mark.parametrize(
    "transient",
    [answer(5117, "rpc error"), http(500), http(503)],
    ids=["errno5117", "http500", "http503"],
)
async def test_transient_answers_are_retried_then_failed_after_max_attempts(
    small_job: Setup, transient: Response
) -> None:
    target = small_job.imeis[3]
    client = ScriptedOneNet({target: [transient] * 10})
    await run(small_job, client, fast_settings(max_attempts=4))

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.FAILED, 4)
    assert row.uuid is None
    assert client.sent_imeis().count(target) == 4
    assert statuses(small_job)[Status.ACCEPTED] == 19


async def test_a_transient_answer_then_success_is_accepted(small_job: Setup) -> None:
    target = small_job.imeis[0]
    client = ScriptedOneNet({target: [http(503), answer(7)]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.attempts, row.errno) == (Status.ACCEPTED, 3, 0)
    assert client.created_per_imei()[target] == 1


async def test_errno_5108_is_retried_once_then_rejected(small_job: Setup) -> None:
    target = small_job.imeis[2]
    client = ScriptedOneNet({target: [answer(5108, "rpc response error")] * 5})
    await run(small_job, client, fast_settings(max_attempts=6))

    row = rows(small_job)[target]
    assert (row.status, row.errno, row.attempts) == (Status.REJECTED, 5108, 2)
    assert client.sent_imeis().count(target) == 2


async def test_errno_5108_then_success_is_accepted(small_job: Setup) -> None:
    target = small_job.imeis[2]
    client = ScriptedOneNet({target: [answer(5108, "rpc response error")]})
    await run(small_job, client)

    row = rows(small_job)[target]
    assert (row.status, row.attempts) == (Status.ACCEPTED, 2)


async def test_a_lost_answer_for_a_created_command_is_reconciled_not_resent(
    small_job: Setup,
) -> None:
    target = small_job.imeis[7]
    client = ScriptedOneNet({target: [Lost(created=True)]})
    result = await run(small_job, client)

    row = rows(small_job)[target]
    assert row.status is Status.ACCEPTED and row.reconciled
    assert row.uuid in client.commands
    assert client.sent_imeis().count(target) == 1
    assert result.complete and result.stats.reconciled == 1


async def test_a_lost_answer_for_a_command_never_created_is_sent_again(small_job: Setup) -> None:
    target = small_job.imeis[7]
    client = ScriptedOneNet({target: [Lost(created=False)]})
    result = await run(small_job, client)

    row = rows(small_job)[target]
    assert row.status is Status.ACCEPTED and not row.reconciled
    assert client.sent_imeis().count(target) == 2
    assert client.created_per_imei()[target] == 1
    assert result.complete


async def test_a_lost_answer_stays_in_doubt_when_the_history_is_unreachable(
    small_job: Setup,
) -> None:
    target = small_job.imeis[7]
    client = ScriptedOneNet({target: [Lost(created=True)]}, history_down=True)
    result = await run(small_job, client)

    assert rows(small_job)[target].status is Status.IN_DOUBT
    assert client.sent_imeis().count(target) == 1  # never sent blindly again
    assert result.counts[Status.IN_DOUBT] == 1
    assert not result.complete


async def test_lost_answers_without_reconciling_stay_in_doubt(small_job: Setup) -> None:
    target = small_job.imeis[7]
    client = ScriptedOneNet({target: [Lost(created=True)]})
    await run(small_job, client, reconcile_in_doubt=False)

    assert rows(small_job)[target].status is Status.IN_DOUBT
    assert client.sent_imeis().count(target) == 1


# -- resume ----------------------------------------------------------------------------------------


async def test_resume_skips_accepted_and_rejected_and_sends_pending_and_failed(
    small_job: Setup,
) -> None:
    commands = list(small_job.job.commands())
    accepted, rejected, failed = commands[0:5], commands[5:10], commands[10:15]
    with Ledger.open(small_job.ledger_path) as ledger:
        ledger.register(commands)
        write_outcomes(
            ledger,
            [Result(c.key, Status.ACCEPTED, 0, "", f"old-{c.imei}", 1, 1.0, 5.0) for c in accepted]
            + [Result(c.key, Status.REJECTED, 3, "bad", None, 1, 1.0, 5.0) for c in rejected]
            + [Result(c.key, Status.FAILED, 7, "busy", None, 6, 1.0, 5.0) for c in failed],
        )
    client = ScriptedOneNet()
    result = await run(small_job, client)

    expected = {c.imei for c in failed + commands[15:]}
    assert sorted(client.sent_imeis()) == sorted(expected)
    after = rows(small_job)
    assert all(after[c.imei].uuid == f"old-{c.imei}" for c in accepted)
    assert all(
        (after[c.imei].status, after[c.imei].errno) == (Status.REJECTED, 3) for c in rejected
    )
    assert all(after[i].status is Status.ACCEPTED for i in expected)
    assert result.stats.skipped == 10


async def test_a_second_run_of_a_finished_job_sends_nothing(small_job: Setup) -> None:
    await run(small_job, ScriptedOneNet())
    again = ScriptedOneNet()
    result = await run(small_job, again)

    assert again.sent == []
    assert result.complete and result.stats.skipped == 20
