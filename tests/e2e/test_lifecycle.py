"""The command lifecycle: the table itself, the ledger refusing what it does not allow, and each
crossing of two features where a command was sent twice, lost, or sent untested (end to end with
the real CLI against the emulator)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, Product, serve
from dispatcher.ledger.lifecycle import TABLE, Event, LifecycleError, Status, target
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result
from dispatcher.report.summary import summarize
from tests.support.cli import dispatcher_async, invoke
from tests.support.e2e import CONFIG_YAML, fleet, write_config
from tests.support.ledger import ledger_rows, make_command
from tests.support.products import (
    CONFIG as PRODUCTS_CONFIG,
    LIGHTS_KEY,
    METERS_KEY,
    two_product_job,
)
from tests.support.push import rows, run, write_job
from tests.support.retry import make_ledger, write_job as write_rf_job

PACKAGE = Path(__file__).resolve().parents[2] / "dispatcher"


# -- the table --------------------------------------------------------------------------------


def test_every_event_is_allowed_or_refused_in_every_state() -> None:
    for event in Event:
        for state in Status:
            if state in TABLE[event]:
                assert target(state, event) in Status
            else:
                with pytest.raises(LifecycleError, match=event.value):
                    target(state, event)


def test_nothing_final_is_ever_sent_again() -> None:
    for state in (Status.ACCEPTED, Status.REJECTED, Status.EXPIRED, Status.RETRIED):
        assert state not in TABLE[Event.SEND]
    assert Status.IN_DOUBT not in TABLE[Event.SEND]  # looked up first, never sent blindly


def test_only_the_lifecycle_writes_a_status() -> None:
    # Every statement that sets a command's status is in ledger/moves.py (SQLite) or, for
    # PostgreSQL, made by postgres_batch.by_key's template with the status postgres_moves.py
    # alone gives it, from the table.
    writers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if re.search(r"SET\s+status\s*=", path.read_text(encoding="utf-8"))
    ]
    assert sorted(writers) == ["ledger/moves.py", "ledger/postgres_batch.py"]
    givers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if re.search(r"\bstatus=[f]?[\"']", path.read_text(encoding="utf-8"))
    ]
    assert givers == ["ledger/postgres_moves.py"]


def test_a_move_the_table_does_not_allow_writes_nothing_of_its_batch(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        a, b = make_command(1), make_command(2)
        ledger.register([a, b])
        mark = InFlight(a.key, 1.0, None, "2030-01-01T00:00:00", 1)
        accepted = Result(a.key, Status.ACCEPTED, 0, "", "u-a", 1, 2.0, 1.0)
        never_sent = Result(b.key, Status.ACCEPTED, 0, "", "u-b", 1, 2.0, 1.0)
        with pytest.raises(LifecycleError, match=r"'accept' is not allowed .* is pending"):
            ledger.write_batch([mark], [accepted, never_sent])
        assert [r.status for r in ledger.rows()] == [Status.PENDING, Status.PENDING]


def test_the_docs_print_the_table_as_the_code_has_it() -> None:
    from dispatcher.ledger.lifecycle import markdown

    docs = (PACKAGE.parent / "docs" / "lifecycle.md").read_text(encoding="utf-8")
    assert markdown() in docs


# -- 1: an aborted rollout, then retry-failed -------------------------------------------------


async def test_skipped_commands_of_an_aborted_rollout_are_handed_over_and_never_sent_twice(
    tmp_path: Path,
) -> None:
    imeis = fleet(60)
    write_job(tmp_path, imeis)
    write_config(tmp_path, CONFIG_YAML.replace("concurrency: 8", "concurrency: 1"))
    emulator = Emulator(Faults(foreign_imeis=frozenset(imeis[20:])))
    async with serve(emulator) as url:
        stopped = await run(url, tmp_path, "--max-failure-rate", "0.2", "--min-decided", "10")
        assert stopped.code == 4, stopped.stderr
        skipped = {r.command.imei for r in rows(tmp_path) if r.status is Status.SKIPPED}
        assert len(skipped) == 34
        made = invoke("retry-failed", tmp_path / "push.yaml.ledger.db", "-o", tmp_path / "r.yaml")
        assert made.exit_code == 0, made.stderr
        emulator.faults = Faults()  # the devices joined the product
        retry = await run_job_file(url, tmp_path, "r.yaml")
        again = await run(url, tmp_path)
    assert retry.code == 0, retry.stderr
    assert again.code == 0, again.stderr  # the six rejected ones are the retry job's
    arrived = Counter(c.imei for c in emulator.accepted())
    assert max(arrived.values()) == 1  # nothing sent twice
    assert set(arrived) == set(imeis)  # and everything sent once
    assert {r.status for r in rows(tmp_path) if r.command.imei in skipped} == {Status.RETRIED}


async def run_job_file(url: str, directory: Path, name: str) -> object:
    from tests.support.cli import dispatcher_async

    return await dispatcher_async(
        "run", name, "--config", "config.yaml", "--base-url", url, cwd=directory
    )


# -- 2 and 3: retry-failed stopped half-way, and --force over an earlier retry file -----------


def _stopped_once(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """A Ctrl-C at ``where``: the hand-over's transaction, or the new file's rename."""
    import os

    from dispatcher.job import writer

    if where == "hand-over":
        real = Ledger.hand_over

        def interrupted(self: Ledger, keys: list[str], job_path: str) -> None:
            monkeypatch.setattr(Ledger, "hand_over", real)
            raise KeyboardInterrupt

        monkeypatch.setattr(Ledger, "hand_over", interrupted)
        return
    real_link = os.link

    def interrupted_link(src: object, dst: object) -> None:
        monkeypatch.setattr(writer.os, "link", real_link)
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "link", interrupted_link)


@pytest.mark.parametrize("where", ["hand-over", "rename"])
async def test_a_retry_failed_stopped_half_way_is_finished_by_the_same_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    imeis = fleet(30, start=300)
    write_job(tmp_path, imeis)
    write_config(tmp_path)
    ledger = tmp_path / "push.yaml.ledger.db"
    out = tmp_path / "retry.yaml"
    emulator = Emulator(Faults(foreign_imeis=frozenset(imeis[::2])))
    async with serve(emulator) as url:
        first = await run(url, tmp_path)
        assert first.code == 3, first.stderr
        _stopped_once(monkeypatch, where)
        stopped = invoke("retry-failed", ledger, "-o", out)
        assert stopped.exit_code == 130, stopped.stderr
        assert not out.exists()  # a job file is only ever there with its hand-over recorded
        again = invoke("retry-failed", ledger, "-o", out)  # the same command goes on
        assert again.exit_code == 0, again.stderr
        emulator.faults = Faults()
        retry = await run_job_file(url, tmp_path, "retry.yaml")
        original = await run(url, tmp_path)
    assert (retry.code, original.code) == (0, 0), (retry.stderr, original.stderr)
    arrived = Counter(c.imei for c in emulator.accepted())
    assert max(arrived.values()) == 1
    assert set(arrived) == set(imeis)


async def test_retry_failed_force_over_an_earlier_retry_file_keeps_its_commands(
    tmp_path: Path,
) -> None:
    imeis = fleet(25, start=400)
    write_job(tmp_path, imeis[:20])
    write_config(tmp_path)
    ledger = tmp_path / "push.yaml.ledger.db"
    out = tmp_path / "retry.yaml"
    emulator = Emulator(Faults(foreign_imeis=frozenset(imeis[:5] + imeis[20:])))
    async with serve(emulator) as url:
        assert (await run(url, tmp_path)).code == 3
        assert invoke("retry-failed", ledger, "-o", out).exit_code == 0  # the first five
        write_job(tmp_path, imeis)  # five devices more, rejected too
        assert (await run(url, tmp_path)).code == 3
        forced = invoke("retry-failed", ledger, "-o", out, "--force")
        assert forced.exit_code == 0, forced.stderr
        emulator.faults = Faults()
        retry = await run_job_file(url, tmp_path, "retry.yaml")
    assert retry.code == 0, retry.stderr
    arrived = Counter(c.imei for c in emulator.accepted())
    assert set(arrived) == set(imeis)  # the five handed to the first file are in the second
    assert max(arrived.values()) == 1


def test_a_retry_file_another_ledger_handed_commands_to_is_never_written_over(
    tmp_path: Path,
) -> None:
    first = make_ledger(write_rf_job(tmp_path / "a.yaml", fleet(3, start=600)), ["rejected"] * 3)
    second = make_ledger(write_rf_job(tmp_path / "b.yaml", fleet(2, start=700)), ["rejected"] * 2)
    out = tmp_path / "retry.yaml"
    assert invoke("retry-failed", first, "-o", out).exit_code == 0
    before = out.read_bytes()
    # --force from another ledger would put its commands where the first one's were handed.
    forced = invoke("retry-failed", second, "-o", out, "--force")
    assert forced.exit_code == 2, forced.stderr
    assert "3 commands" in forced.stderr and "another file" in forced.stderr
    assert out.read_bytes() == before
    with Ledger.open(second, read_only=True) as ledger:
        assert all(r.retried_in is None for r in ledger.rows())
    # The first ledger writing it again is the same hand-over: allowed.
    again = invoke("retry-failed", first, "-o", out, "--force")
    assert again.exit_code == 0, again.stderr


async def test_a_job_whose_rejected_commands_were_handed_over_needs_nothing_more(
    tmp_path: Path,
) -> None:
    imeis = fleet(12, start=500)
    write_job(tmp_path, imeis)
    write_config(tmp_path)
    ledger = tmp_path / "push.yaml.ledger.db"
    emulator = Emulator(Faults(foreign_imeis=frozenset(imeis[:4])))
    async with serve(emulator) as url:
        assert (await run(url, tmp_path)).code == 3  # four rejected: they need someone
        handed = invoke("retry-failed", ledger, "-o", tmp_path / "retry.yaml")
        assert handed.exit_code == 0, handed.stderr
        again = await run(url, tmp_path)
    # The retry job owns the four now: this job is finished, and its run says so with exit 0.
    assert again.code == 0, again.stderr
    assert "finished" in again.stderr
    assert len(emulator.accepted()) == 8


def test_a_command_handed_to_one_retry_job_is_never_handed_to_another(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        a = make_command(1)
        ledger.register([a])
        ledger.hand_over([a.key], "/jobs/one.yaml")
        ledger.hand_over([a.key], "/jobs/one.yaml")  # the same file again: the same hand-over
        with pytest.raises(LifecycleError, match="another retry job"):
            ledger.hand_over([a.key], "/jobs/two.yaml")
        (row,) = ledger.rows()
    assert (row.status, row.retried_in) == (Status.RETRIED, "/jobs/one.yaml")


# -- 4: an abort keeps what was sent and failed ---------------------------------------------


def test_an_abort_keeps_a_command_that_was_sent_and_failed_failed(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        sent, unsent = make_command(1), make_command(2)
        ledger.register([sent, unsent])
        ledger.write_batch(
            [InFlight(sent.key, 1.0, None, "2030-01-01T00:00:00", 1)],
            [Result(sent.key, Status.FAILED, None, "HTTP 500", None, 6, 2.0, 3.0)],
        )
        ledger.skip([sent.key, unsent.key], "abort.max_failure_rate fired")
        by_key = {r.key: r for r in ledger.rows()}
        summary = summarize(ledger)
    assert (by_key[sent.key].status, by_key[sent.key].error) == (Status.FAILED, "HTTP 500")
    assert by_key[sent.key].attempts == 6
    assert by_key[unsent.key].status is Status.SKIPPED
    assert summary.by_status["failed"] == 1


def test_a_stop_before_a_failed_commands_request_left_keeps_it_failed(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        cmd = make_command(1)
        ledger.register([cmd])
        ledger.write_batch(
            [InFlight(cmd.key, 1.0, None, "2030-01-01T00:00:00", 1)],
            [Result(cmd.key, Status.FAILED, None, "HTTP 500", None, 6, 2.0, 3.0)],
        )
        # The next run's worker is stopped while it waits for its in-flight mark.
        ledger.write_batch((), [Result(cmd.key, Status.PENDING, None, "", None, 0, 4.0, None)])
        (row,) = ledger.rows()
    assert (row.status, row.error, row.attempts) == (Status.FAILED, "HTTP 500", 6)


# -- 5 and 6: canary verdicts tied to the commands they judged, per product ------------------


async def test_an_edit_after_a_paused_canary_gets_a_canary_of_its_own(tmp_path: Path) -> None:
    imeis = fleet(20, start=600)
    job = write_job(tmp_path, imeis)
    write_config(tmp_path)
    emulator = Emulator()
    pause = ("--canary", "2", "--canary-then", "pause")
    async with serve(emulator) as url:
        paused = await run(url, tmp_path, *pause)
        assert paused.code == 0 and "paused" in paused.stderr, paused.stderr
        assert emulator.stats()["posts"] == 2
        # The args of every device are edited: none of the new commands was judged.
        job.write_text(job.read_text().replace("args: fw=2", "args: fw=3"), encoding="utf-8")
        edited = await run(url, tmp_path, *pause)
        assert edited.code == 0, edited.stderr
        assert "paused" in edited.stderr  # a canary of the edited commands, then the pause
        assert emulator.stats()["posts"] == 4
        rest = await run(url, tmp_path, *pause)
    assert rest.code == 0, rest.stderr
    sent = Counter((c.imei, c.args) for c in emulator.accepted())
    assert max(sent.values()) == 1
    assert sum(1 for _, args in sent if args == "fw=3") == 20  # the edit, for every device
    assert sum(1 for _, args in sent if args == "fw=2") == 2  # the first canary's, and no more


async def test_each_products_paused_canary_keeps_its_pass(tmp_path: Path) -> None:
    meters, lights = fleet(12, start=800), fleet(12, start=900)
    job = two_product_job(tmp_path, meters, lights)
    job.write_text(
        job.read_text() + "rollout:\n  canary: {size: 4, then: pause}\n", encoding="utf-8"
    )
    emulator = Emulator(
        products={"meters": Product(api_key=METERS_KEY), "lights": Product(api_key=LIGHTS_KEY)}
    )
    env = {"METERS_KEY": METERS_KEY, "LIGHTS_KEY": LIGHTS_KEY}
    async with serve(emulator) as url:
        config = tmp_path / "config.yaml"
        config.write_text(PRODUCTS_CONFIG.replace("URL", url), encoding="utf-8")
        args = ("run", "fleet.yaml", "--config", "config.yaml")
        first = await dispatcher_async(*args, cwd=tmp_path, key=None, env=env)
        assert first.code == 0, first.stderr
        assert emulator.stats()["posts"] == 8  # each lane's canary
        second = await dispatcher_async(*args, cwd=tmp_path, key=None, env=env)
    assert second.code == 0, second.stderr
    assert "paused" not in second.stderr  # neither lane's pass was lost
    assert emulator.stats()["posts"] == 24


# -- 9: an edit's earlier version is still at OneNET ------------------------------------------


async def test_status_and_cancel_reach_the_earlier_version_an_edit_replaced(
    tmp_path: Path,
) -> None:
    imeis = fleet(6, start=1000)
    job = write_job(tmp_path, imeis)
    write_config(tmp_path)
    ledger = tmp_path / "push.yaml.ledger.db"
    emulator = Emulator()
    async with serve(emulator) as url:
        assert (await run(url, tmp_path)).code == 0
        job.write_text(job.read_text().replace("'+1d'", "'+2d'"), encoding="utf-8")
        refused = await run(url, tmp_path)
        assert refused.code == 1 and "--accept-changes" in refused.stderr
        accepted = await run(url, tmp_path, "--accept-changes")
        assert accepted.code == 0, accepted.stderr
        from tests.support.cli import dispatcher_async

        base = ("--config", "config.yaml", "--base-url", url)
        cancelled = await dispatcher_async("cancel", ledger, *base, "--yes", cwd=tmp_path)
    assert cancelled.code == 0, cancelled.stderr
    assert len(emulator.accepted()) == 12  # each device holds both versions
    assert {c.send_status for c in emulator.accepted()} == {2}  # and both are cancelled
    assert {r.send_status for r in ledger_rows(ledger)} == {2}
