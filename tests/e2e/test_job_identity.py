"""A ledger belongs to one job: real `dispatcher run` processes against the emulator over loopback.

Each test proves a promise docs/guarantees.md makes about which job a ledger holds, what an
edited or shrunk job does, how an early stop and a broken-off run are counted, and that one
ledger (under any of its names) serves one run at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Retired, Status
from tests.support.cli import (
    SECRET,
    Done,
    dispatcher_async,
    finished,
    no_traceback,
    nothing_sent,
    process_env,
    started,
)
from tests.support.e2e import (
    CONFIG_YAML,
    count_status,
    fleet,
    ledger_rows,
    write_config,
    write_csv_job,
)
from tests.support.waiting import until

DEVICES = fleet(4, start=500)
# Every request answered HTTP 500 and tried once: each command ends failed, none held by OneNET.
FAILING_CONFIG = CONFIG_YAML.replace("max_attempts: 10", "max_attempts: 1").replace(
    "settle_s: 0.3", "settle_s: 0"
)
QUICK_CONFIG = CONFIG_YAML.replace("settle_s: 0.3", "settle_s: 0")


def job_text(*imeis: str, name: str = "identity", trigger: str = "[register, update]") -> str:
    """A YAML job with one command per device (its targets from line 10 on)."""
    targets = "".join(f'  - imei: "{i}"\n' for i in imeis)
    return (
        f"job: {name}\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  args: fw=2.4.1\n"
        "  expired_time: +2d\n"
        f"  trigger: {trigger}\n"
        "targets:\n"
        f"{targets}"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def run(cwd: Path, job: str | Path, url: str, *more: str | Path, config: str = "") -> Done:
    """``dispatcher run JOB --base-url URL --config ... MORE`` as a real process."""
    config_path = write_config(cwd, config or QUICK_CONFIG)
    return await dispatcher_async(
        "run", job, "--base-url", url, "--config", config_path, "--rate", "0", *more, cwd=cwd
    )


def table(report: Done) -> dict[str, str]:
    """The rows of `dispatcher report`'s table: figure -> value."""
    rows = {}
    for line in report.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃| ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


# --- a.yaml and a.csv ---------------------------------------------------------------------


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


# --- one ledger, one job ------------------------------------------------------------------


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


# --- an edited job ------------------------------------------------------------------------


async def test_edited_commands_onenet_never_got_are_sent_in_their_new_version_without_asking(
    tmp_path: Path,
) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES[:3]))
    emulator = Emulator(Faults(fail_rate=1.0))
    async with serve(emulator) as url:
        failed = await run(tmp_path, "job.yaml", url, config=FAILING_CONFIG)
        assert failed.code == 3, failed.stderr
        assert failed.stdout.splitlines()[0] == "job: 3 commands: 3 failed"
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


# --- rows removed from the job ------------------------------------------------------------


async def test_rows_removed_from_the_job_are_named_and_no_longer_pending(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES))
    emulator = Emulator(Faults(fail_rate=1.0))
    async with serve(emulator) as url:
        failed = await run(tmp_path, "job.yaml", url, config=FAILING_CONFIG)
        assert failed.code == 3, failed.stderr
        emulator.faults = Faults()
        write(job, job_text(DEVICES[0], DEVICES[2]))
        done = await run(tmp_path, "job.yaml", url)
        report = await dispatcher_async("report", "job.yaml.ledger.db", cwd=tmp_path)
    assert done.code == 0, done.stdout + done.stderr
    assert "2 command(s) of the ledger are no longer in the job file" in done.stderr
    assert f"removed: job.yaml:11: imei {DEVICES[1]}" in done.stderr
    assert f"removed: job.yaml:13: imei {DEVICES[3]}" in done.stderr
    assert done.stdout.splitlines()[0] == "job: 2 commands: 2 accepted"
    assert sorted(c.imei for c in emulator.accepted()) == [DEVICES[0], DEVICES[2]]

    assert report.code == 0, report.stderr
    rows = table(report)
    assert rows["commands"] == "2"
    assert rows["accepted"] == "2 (100.0%)"
    assert (rows["failed"], rows["pending"]) == ("0", "0")
    assert rows["removed from the job"] == "2"


# --- a finished job -----------------------------------------------------------------------


async def test_running_a_finished_job_again_says_so_and_sends_nothing(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", job_text(*DEVICES))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(tmp_path, "job.yaml", url)
        assert first.code == 0, first.stderr
        calls = (emulator.stats()["posts"], emulator.stats()["reads"])
        again = await run(tmp_path, "job.yaml", url)
        assert (emulator.stats()["posts"], emulator.stats()["reads"]) == calls
    assert again.code == 0, again.stderr
    assert "job.yaml: the job is finished (4 accepted): nothing to send" in again.stderr
    assert len(emulator.accepted()) == 4
    assert len(ledger_rows(tmp_path / "job.yaml.ledger.db")) == 4


# --- the whole job is counted -------------------------------------------------------------


async def test_a_run_stopped_early_is_counted_against_the_whole_job(tmp_path: Path) -> None:
    write_csv_job(tmp_path, fleet(2000))
    config = write_config(tmp_path, QUICK_CONFIG)
    emulator = Emulator(Faults(latency_ms=20))
    async with serve(emulator) as url:
        async with started(
            "run",
            "fleet.yaml",
            "--base-url",
            url,
            "--config",
            config,
            "--rate",
            "200",
            cwd=tmp_path,
        ) as proc:
            await until(lambda: len(emulator.accepted()) >= 50, proc=proc)
            proc.send_signal(signal.SIGINT)
            done = await finished(proc)
        report = await dispatcher_async("report", "fleet.yaml.ledger.db", cwd=tmp_path)
    assert done.code == 130, done.stderr
    assert "stopped (interrupted by SIGINT); to resume: dispatcher run fleet.yaml" in done.stderr
    sent = len(emulator.accepted())
    assert 50 <= sent < 1000
    summary = done.stdout.splitlines()[0]
    assert summary == f"job: 2,000 commands: {2000 - sent:,} pending, {sent:,} accepted"
    ledger = tmp_path / "fleet.yaml.ledger.db"
    assert count_status(ledger, Status.ACCEPTED) == sent

    assert report.code == 0, report.stderr
    rows = table(report)
    assert rows["commands"] == "2,000"
    assert rows["accepted"] == f"{sent:,} ({sent / 2000:.1%})"
    # Commands are registered a batch or so ahead of sending: most were never registered.
    unregistered = 2000 - len(ledger_rows(ledger))
    assert unregistered > 0
    assert rows["not registered yet"] == f"{unregistered:,} ({unregistered / 2000:.1%})"


# --- a ledger failure mid-run -------------------------------------------------------------

# The real command line in a process whose ledger file is capped at a number of pages (SQLite's
# max_page_count is a setting of each connection, not of the file, so it is set in the process).
CAPPED_CLI = """\
import sys
from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger

pages = int(sys.argv.pop(1))
open_ledger = Ledger.open.__func__

def capped(cls, path, **options):
    if not options.get("read_only"):
        options["max_pages"] = pages
    return open_ledger(cls, path, **options)

Ledger.open = classmethod(capped)
sys.argv[0] = "dispatcher"
main()
"""


async def capped_run(cwd: Path, pages: int, *args: str | Path) -> Done:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CAPPED_CLI,
        str(pages),
        *map(str, args),
        cwd=cwd,
        env=process_env(SECRET),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return await finished(proc)


async def test_a_ledger_that_fills_up_mid_run_breaks_off_with_exit_5(tmp_path: Path) -> None:
    write_csv_job(tmp_path, fleet(2000))
    config = write_config(tmp_path, QUICK_CONFIG)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await capped_run(
            tmp_path, 40, "run", "fleet.yaml", "--base-url", url, "--config", config
        )
    assert done.code == 5, done.stdout + done.stderr
    prefix = "error: the run broke off, and some commands may have been sent: fleet.yaml.ledger"
    assert done.stderr.startswith(prefix), done.stderr
    assert "is full" in done.stderr
    assert done.stderr.count("run the same command again") == 1
    assert "nothing was sent" not in done.stderr
    assert no_traceback(done.stdout, done.stderr)
    assert 0 < len(emulator.accepted()) < 2000  # it broke off mid-run
    with Ledger.open(tmp_path / "fleet.yaml.ledger.db", read_only=True) as ledger:
        (only,) = ledger.runs()
    assert only.finished_at is not None
    assert only.stop_reason is not None
    assert only.stop_reason.startswith("broken off: ")


# --- one run per ledger, under any of its names -------------------------------------------


async def test_a_ledger_in_use_is_refused_through_a_symlink_and_a_hard_link(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", job_text(*DEVICES))
    config = write_config(tmp_path, QUICK_CONFIG.replace("concurrency: 8", "concurrency: 1"))
    ledger = tmp_path / "job.yaml.ledger.db"
    emulator = Emulator(Faults(latency_ms=1000))
    async with serve(emulator) as url:
        args = ("--base-url", url, "--config", config)
        async with started("run", "job.yaml", *args, cwd=tmp_path) as holder:
            await until(lambda: emulator.stats()["posts"] != 0, proc=holder)  # it holds the ledger
            (tmp_path / "through-symlink.db").symlink_to(ledger)
            os.link(ledger, tmp_path / "through-hardlink.db")
            others = await asyncio.gather(
                *(
                    dispatcher_async("run", "job.yaml", "--ledger", name, *args, cwd=tmp_path)
                    for name in ("through-symlink.db", "through-hardlink.db")
                )
            )
            still_running = holder.returncode is None
            emulator.faults = Faults()  # let the holder finish
            held = await finished(holder)
    for other in others:
        assert other.code == 1, other.stdout + other.stderr
        assert f"in use by another dispatcher (process {holder.pid})" in other.stderr
        assert no_traceback(other.stderr)
    assert f"through-symlink.db (the file {ledger.resolve()}) is in use" in others[0].stderr
    assert still_running
    assert held.code == 0, held.stderr
    assert sorted(c.imei for c in emulator.accepted()) == sorted(DEVICES)
    assert emulator.stats()["duplicates"] == 0
