"""A ledger belongs to one job: real `dispatcher run` processes against the emulator over loopback:
which ledger a job gets, another job refused, an edited job sent anew or refused.

Each test here and in test_job_identity_runs.py proves a promise docs/guarantees.md makes about
which job a ledger holds, what an edited or shrunk job does, how an early stop and a broken-off
run are counted, and that one ledger (under any of its names) serves one run at a time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.store import Retired, Status
from tests.support.cli import (
    no_traceback,
    nothing_sent,
)
from tests.support.identity import (
    DEVICES,
    FAILING_CONFIG,
    job_text,
    run,
    write,
)
from tests.support.ledger import ledger_rows


async def test_yaml_and_csv_job_of_one_name_each_get_their_own_ledger(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", job_text(*DEVICES[:2], name="a"))
    # The same two commands, as a CSV job (named "a" too, after its stem).
    write(
        tmp_path / "a.csv",
        "imei,obj_id,obj_inst_id,res_id,args,expired_time,trigger_msg\n"
        + "".join(f"{i},5,0,2,fw=2.4.1,+2d,3\n" for i in DEVICES[:2]),
    )
    emulator = Emulator()
    async with serve(emulator) as url:
        from_yaml = await run(tmp_path, "a.yaml", url)
        from_csv = await run(tmp_path, "a.csv", url)
    assert (from_yaml.code, from_csv.code) == (0, 0), from_yaml.stderr + from_csv.stderr
    for done in (from_yaml, from_csv):
        assert done.stdout.splitlines()[0] == "job: 2 commands: 2 accepted"
        assert "2 accepted" in done.stdout.splitlines()[1]
        assert "0 already done" in done.stdout
    yaml_rows = ledger_rows(tmp_path / "a.yaml.ledger.db")
    csv_rows = ledger_rows(tmp_path / "a.csv.ledger.db")
    assert {r.command.source for r in yaml_rows} == {"a.yaml"}
    assert {r.command.source for r in csv_rows} == {"a.csv"}
    assert not (tmp_path / "a.ledger.db").exists()
    # Each job sent its own commands: the server holds both copies for each device.
    assert sorted(c.imei for c in emulator.accepted()) == sorted(DEVICES[:2] * 2)
    assert {r.uuid for r in yaml_rows}.isdisjoint({r.uuid for r in csv_rows})


async def test_an_old_default_ledger_goes_on_being_used_from_another_directory(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write(jobs / "a.yaml", job_text(*DEVICES[:2], name="a"))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(tmp_path, "jobs/a.yaml", url, "--ledger", "jobs/a.ledger.db")
        assert first.code == 0, first.stderr
        # As an older dispatcher left it: no job record, only its runs' job paths (as given,
        # relative to the directory it ran in), under the older default name.
        with sqlite3.connect(jobs / "a.ledger.db") as raw:
            raw.execute("DELETE FROM meta WHERE name LIKE 'job_%'")
        raw.close()
        posts = emulator.stats()["posts"]
        again = await run(jobs, "a.yaml", url)
    assert again.code == 0, again.stdout + again.stderr
    assert "the job is finished (2 accepted): nothing to send" in again.stderr
    assert emulator.stats()["posts"] == posts
    assert not (jobs / "a.yaml.ledger.db").exists()


async def test_another_job_on_a_ledger_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "job.yaml", job_text(*DEVICES[:2], name="rollout a"))
    write(tmp_path / "b" / "other.yaml", job_text(*DEVICES[2:], name="rollout b"))
    # The very commands of job a, under another job name and path.
    write(tmp_path / "b" / "copy.yaml", job_text(*DEVICES[:2], name="rollout a copy"))
    first = Emulator()
    async with serve(first) as url:
        done = await run(tmp_path, "a/job.yaml", url, "--ledger", "shared.db")
    assert done.code == 0, done.stderr
    for other in ("b/other.yaml", "b/copy.yaml"):
        emulator = Emulator()
        async with serve(emulator) as url:
            refused = await run(tmp_path, other, url, "--ledger", "shared.db")
        assert refused.code == 1, refused.stdout + refused.stderr
        assert "is the ledger of another job 'rollout a'" in refused.stderr
        assert str((tmp_path / "a" / "job.yaml").resolve()) in refused.stderr
        assert "one ledger holds one job" in refused.stderr
        assert "finished" not in refused.stderr
        assert no_traceback(refused.stderr)
        assert nothing_sent(emulator)
    rows = ledger_rows(tmp_path / "shared.db")
    assert sorted(r.command.imei for r in rows) == sorted(DEVICES[:2])
    assert {r.status for r in rows} == {Status.ACCEPTED}


async def test_edited_commands_onenet_never_got_are_sent_in_their_new_version_without_asking(
    tmp_path: Path,
) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES[:3]))
    emulator = Emulator(Faults(fail_rate=1.0))
    async with serve(emulator) as url:
        failed = await run(tmp_path, "job.yaml", url, config=FAILING_CONFIG)
        assert failed.code == 3, failed.stderr
        assert failed.stdout.splitlines()[0] == "job: 3 commands: 3 failed to send"
        emulator.faults = Faults()
        write(job, job_text(*DEVICES[:3], trigger="[register]"))
        fixed = await run(tmp_path, "job.yaml", url)
    assert fixed.code == 0, fixed.stderr
    assert "3 edited command(s) will be sent as new commands" in fixed.stderr
    assert sorted(c.imei for c in emulator.accepted()) == sorted(DEVICES[:3])
    assert {c.trigger_msg for c in emulator.accepted()} == {1}
    rows = ledger_rows(tmp_path / "job.yaml.ledger.db")
    assert sorted((r.status, r.retired is None) for r in rows) == sorted(
        [(Status.ACCEPTED, True)] * 3 + [(Status.FAILED, False)] * 3
    )


async def test_edited_job_is_refused_before_sending_then_sent_anew_with_accept_changes(
    tmp_path: Path,
) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES[:3]))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(tmp_path, "job.yaml", url)
        assert first.code == 0, first.stderr
        first_held = {c.uuid for c in emulator.accepted()}
        posts, reads = emulator.stats()["posts"], emulator.stats()["reads"]
        assert isinstance(posts, int)
        write(job, job_text(*DEVICES[:3], trigger="[register]"))
        refused = await run(tmp_path, "job.yaml", url)
        assert (emulator.stats()["posts"], emulator.stats()["reads"]) == (posts, reads)
        assert {c.uuid for c in emulator.accepted()} == first_held
        accepted = await run(tmp_path, "job.yaml", url, "--accept-changes")
    assert refused.code == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    for line, device in enumerate(DEVICES[:3], start=10):
        assert (
            f"job.yaml:{line}: imei {device}: trigger_msg 3 -> 1 (the ledger's version is accepted)"
        ) in said
    assert "3 command(s) changed" in refused.stderr
    assert "nothing was sent" in refused.stderr
    assert "--accept-changes" in refused.stderr
    assert no_traceback(said)

    assert accepted.code == 0, accepted.stderr
    assert "3 edited command(s) will be sent as new commands" in accepted.stderr
    assert accepted.stdout.splitlines()[0] == "job: 3 commands: 3 accepted"
    held = [c for c in emulator.accepted() if c.uuid not in first_held]
    assert emulator.stats()["posts"] == posts + 3  # the new versions only, once each
    assert sorted(c.imei for c in held) == sorted(DEVICES[:3])
    assert {c.trigger_msg for c in held} == {1}
    rows = ledger_rows(tmp_path / "job.yaml.ledger.db")
    active = [r for r in rows if r.retired is None]
    retired = [r for r in rows if r.retired is not None]
    assert sorted(r.command.imei for r in active) == sorted(DEVICES[:3])
    assert {(r.status, r.command.trigger_msg) for r in active} == {(Status.ACCEPTED, 1)}
    assert {r.uuid for r in active} == {c.uuid for c in held}
    assert sorted(r.command.imei for r in retired) == sorted(DEVICES[:3])
    assert {(r.retired, r.status, r.command.trigger_msg) for r in retired} == {
        (Retired.CHANGED, Status.ACCEPTED, 3)
    }
    assert {r.uuid for r in retired} == first_held  # kept as they were, never sent again


async def test_going_back_to_a_version_onenet_holds_sends_nothing_again(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES[:3]))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(tmp_path, "job.yaml", url)  # version 1, accepted
        assert first.code == 0, first.stderr
        write(job, job_text(*DEVICES[:3], trigger="[register]"))
        # version 2 is accepted as a change, but never sent: the address is wrong
        unsent = await run(tmp_path, "job.yaml", "http://127.0.0.1:9", "--accept-changes")
        assert unsent.code == 4, unsent.stderr
        write(job, job_text(*DEVICES[:3]))  # back to version 1
        back = await run(tmp_path, "job.yaml", url)
        again = await run(tmp_path, "job.yaml", url, "--accept-changes")
    assert back.code == 0, back.stdout + back.stderr
    assert "the job is finished" in back.stderr
    assert again.code == 0, again.stdout + again.stderr
    assert len(emulator.accepted()) == 3  # version 1 once each, never a second time
    assert emulator.stats()["duplicates_ignoring_times"] == 0
    rows = ledger_rows(tmp_path / "job.yaml.ledger.db")
    active = [r for r in rows if r.retired is None]
    assert {(r.status, r.command.trigger_msg) for r in active} == {(Status.ACCEPTED, 3)}
    assert {r.uuid for r in active} == {c.uuid for c in emulator.accepted()}
    retired = [r for r in rows if r.retired is not None]
    assert {(r.status, r.command.trigger_msg) for r in retired} == {(Status.PENDING, 1)}
