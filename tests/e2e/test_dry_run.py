"""``run --dry-run`` against the run it plans: each case runs the dry run, then the run itself, on
the same job and config against the emulator, and checks that the plan's figures are what the run
did: the commands of each product's lane (at that product's own rate), a canary's devices and
commands in a job with steps, and an edit the run refuses (the same message, the same exit)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from dispatcher.emulator.server import Emulator, Product, serve
from tests.support.cli import Done, dispatcher_async
from tests.support.e2e import CONFIG_YAML, fleet, write_config
from tests.support.products import LIGHTS_KEY, METERS_KEY, two_product_job

PRODUCTS_CONFIG = """\
limits: {rate_per_second: 100, concurrency: 8}
retry: {max_attempts: 10, initial_backoff_s: 0.001, max_backoff_s: 0.01, request_timeout_s: 10}
reliability: {settle_s: 0.2, stop_grace_s: 10}
ledger: {synchronous: normal, batch_size: 50}
products:
  meters:
    api_key_env: METERS_KEY
    base_url: URL
    rate_per_second: 2
  lights:
    api_key_env: LIGHTS_KEY
    base_url: URL
    rate_per_second: 50
    concurrency: 4
"""


def plan_of(done: Done) -> dict[str, str]:
    """The plan a dry run showed: each line's text by its heading (``lane meters`` for a lane)."""
    plan: dict[str, str] = {}
    for line in done.stderr.splitlines():
        if not re.fullmatch(r"  \w[\w ]{9}\S.*", line):  # "  heading   text", the heading padded
            continue
        heading, text = line[2:12].strip(), line[12:]
        if heading == "lane":
            name, _, text = text.partition(": ")
            heading = f"lane {name}"
        plan[heading] = text
    return plan


async def test_the_plan_gives_each_product_its_lane_at_its_own_rate(tmp_path: Path) -> None:
    meters, lights = fleet(4), fleet(10, start=100)
    two_product_job(tmp_path, meters, lights)
    emulator = Emulator(
        products={"meters": Product(api_key=METERS_KEY), "lights": Product(api_key=LIGHTS_KEY)}
    )
    keys = {"METERS_KEY": METERS_KEY, "LIGHTS_KEY": LIGHTS_KEY}
    async with serve(emulator) as url:
        (tmp_path / "config.yaml").write_text(PRODUCTS_CONFIG.replace("URL", url), encoding="utf-8")
        args = ("run", "fleet.yaml", "--config", "config.yaml")
        dry = await dispatcher_async(*args, "--dry-run", cwd=tmp_path, key=None, env={})
        done = await dispatcher_async(*args, cwd=tmp_path, key=None, env=keys)
    assert dry.code == 0, dry.stderr
    assert done.code == 0, done.stderr
    plan = plan_of(dry)
    assert plan["lane meters"] == "4 of 4 commands to send, 2/s, 8 at a time"
    assert plan["lane lights"] == "10 of 10 commands to send, 50/s, 4 at a time"
    # The slowest lane sets the length: 4 commands at 2/s (the top-level 100/s would say 0s).
    assert plan["duration"] == "about 2s"
    stats = emulator.stats()["products"]
    assert isinstance(stats, dict)
    sent = {name: stats[name]["accepted"] for name in ("meters", "lights")}
    planned = {name: int(plan[f"lane {name}"].split(" of ")[0]) for name in ("meters", "lights")}
    assert sent == planned == {"meters": 4, "lights": 10}


STEPS_JOB = """\
job: two steps
defaults: {obj_inst_id: 0, expired_time: +1d, trigger: [update]}
rollout: {canary: {size: 3, then: pause}}
steps:
  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.bin"}}
  - {op: execute, obj_id: 5, res_id: 2}
targets:
"""


async def test_a_steps_canary_is_planned_in_devices_each_getting_every_step(
    tmp_path: Path,
) -> None:
    imeis = fleet(12)
    (tmp_path / "push.yaml").write_text(
        STEPS_JOB + "".join(f'  - imei: "{i}"\n' for i in imeis), encoding="utf-8"
    )
    write_config(tmp_path, CONFIG_YAML)
    emulator = Emulator()
    async with serve(emulator) as url:
        args = ("run", "push.yaml", "--config", "config.yaml", "--base-url", url)
        dry = await dispatcher_async(*args, "--dry-run", cwd=tmp_path, key=None)
        done = await dispatcher_async(*args, cwd=tmp_path)
    assert dry.code == 0, dry.stderr
    assert done.code == 0, done.stderr  # a good canary, then: pause
    canary = plan_of(dry)["canary"]
    assert canary.startswith("3 devices (6 commands: each device every step)"), canary
    by_device = Counter(c.imei for c in emulator.accepted())
    assert (len(by_device), sum(by_device.values())) == (3, 6)
    assert set(by_device.values()) == {2}


async def test_the_plan_refuses_an_edit_the_run_refuses_and_counts_one_it_accepts(
    tmp_path: Path,
) -> None:
    imeis = fleet(5)
    job = tmp_path / "push.yaml"
    job.write_text(
        "job: push\ndefaults: {obj_id: 5, obj_inst_id: 0, res_id: 2, expired_time: +1d,"
        " retry: 3}\ntargets:\n" + "".join(f'  - imei: "{i}"\n' for i in imeis),
        encoding="utf-8",
    )
    write_config(tmp_path, CONFIG_YAML)
    emulator = Emulator()
    async with serve(emulator) as url:
        args = ("run", "push.yaml", "--config", "config.yaml", "--base-url", url)
        first = await dispatcher_async(*args, cwd=tmp_path)
        assert first.code == 0, first.stderr
        # Two devices get their command again with other delivery retries: an edit of commands
        # OneNET holds.
        text = job.read_text(encoding="utf-8")
        for imei in imeis[:2]:
            text = text.replace(f'"{imei}"\n', f'"{imei}"\n    retry: 5\n')
        job.write_text(text, encoding="utf-8")
        dry = await dispatcher_async(*args, "--dry-run", cwd=tmp_path, key=None)
        refused = await dispatcher_async(*args, cwd=tmp_path)
        dry_accepting = await dispatcher_async(
            *args, "--dry-run", "--accept-changes", cwd=tmp_path, key=None
        )
        accepting = await dispatcher_async(*args, "--accept-changes", cwd=tmp_path)
    assert refused.code == dry.code == 1, (refused.stderr, dry.stderr)
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert error and error[0] in dry.stderr.splitlines()
    assert "2 command(s) changed" in error[0]
    assert "nothing was sent" in dry.stderr
    assert (dry_accepting.code, accepting.code) == (0, 0), dry_accepting.stderr
    assert plan_of(dry_accepting)["to send"] == "2 of 5 commands"
    assert "2 edited command(s) will be sent as new commands" in dry_accepting.stderr
    sent_again = emulator.accepted()[len(imeis) :]
    assert sorted(c.imei for c in sent_again) == sorted(imeis[:2])
    assert {c.retry for c in sent_again} == {5}


async def test_the_plan_shows_a_passed_canary_and_the_canary_an_edit_gets_as_the_run_does(
    tmp_path: Path,
) -> None:
    from tests.support.push import run, write_job

    imeis = fleet(20, start=300)
    job = write_job(tmp_path, imeis)
    write_config(tmp_path)
    pause = ("--canary", "2", "--canary-then", "pause")
    emulator = Emulator()
    async with serve(emulator) as url:
        assert (await run(url, tmp_path, *pause)).code == 0  # the canary passed, then paused
        covered = plan_of(await run(url, tmp_path, *pause, "--dry-run"))["canary"]
        job.write_text(job.read_text().replace("args: fw=2", "args: fw=3"), encoding="utf-8")
        # Every device's args edited and five devices taken out: the run draws a canary from
        # the fifteen edited commands alone.
        lines = job.read_text().splitlines()
        job.write_text("\n".join(lines[:-5]) + "\n", encoding="utf-8")
        edited = plan_of(await run(url, tmp_path, *pause, "--dry-run"))["canary"]
        posts = emulator.stats()["posts"]
        ran = await run(url, tmp_path, *pause)
    assert covered.startswith("none: a canary passed before"), covered
    assert "2 commands drawn from the 15 rows a passed canary does not cover" in edited, edited
    assert ran.code == 0 and "paused" in ran.stderr, ran.stderr
    assert emulator.stats()["posts"] - posts == 2  # the canary the plan said, and no more
