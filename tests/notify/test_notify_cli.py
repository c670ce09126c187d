"""Notifications end to end: the real command line (``run``, ``status --watch``, ``verify``)
against the emulator, with a config whose ``notify:`` points at the test server's robots. Each
event arrives at each service in the language asked, signed as documented; a dead target (a
closed port, one that never answers) is a warning after its attempts, and changes neither the
exit code nor the ledger; no URL, token or secret shows anywhere."""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.store import Status
from tests.e2e.test_verify_e2e import firmware_job
from tests.support.cli import Done, dispatcher_async, finished, started
from tests.support.clocks import ShiftedClock
from tests.support.e2e import CONFIG_YAML, fleet, write_config, write_csv_job
from tests.support.ledger import ledger_rows
from tests.support.push import FLEET, canary_imeis, write_job
from tests.support.waiting import until
from tests.support.webhooks import ENV, SECRETS, Webhooks, closed_port, serve_webhooks, targets_yaml

pytestmark = pytest.mark.slow


async def dispatcher(url: str, directory: Path, *args: str) -> Done:
    """``dispatcher ARGS --config config.yaml --base-url URL`` with the robots' variables set."""
    return await dispatcher_async(
        *args, "--config", "config.yaml", "--base-url", url, cwd=directory, env=ENV
    )


TITLES = {
    "en": {
        "run_finished": "dispatcher: run finished",
        "run_aborted": "dispatcher: run aborted",
        "canary_passed": "dispatcher: canary passed",
        "canary_failed": "dispatcher: canary failed",
        "watch_finished": "dispatcher: delivery watch finished",
        "verify_finished": "dispatcher: verify finished",
    },
    "zh": {
        "run_finished": "dispatcher\uff1a运行完成",
        "run_aborted": "dispatcher\uff1a运行中止",
        "canary_passed": "dispatcher\uff1a金丝雀通过",
        "canary_failed": "dispatcher\uff1a金丝雀未通过",
        "watch_finished": "dispatcher\uff1a投递跟踪结束",
        "verify_finished": "dispatcher\uff1a版本核验完成",
    },
}


def titles(hooks: Webhooks) -> dict[str, list[str]]:
    """The titles each service showed, sorted (the notices of one end are sent at once)."""
    shown = {
        "dingtalk": [r.body["markdown"]["title"] for r in hooks.of("dingtalk")],
        "wecom": [r.body["markdown"]["content"].split("\n")[0][2:-2] for r in hooks.of("wecom")],
        "feishu": [r.body["content"]["text"].split("\n")[0] for r in hooks.of("feishu")],
        "webhook": [r.body["title"] for r in hooks.of("webhook")],
    }
    return {service: sorted(said) for service, said in shown.items()}


def told(language: str, *events: str) -> dict[str, list[str]]:
    """What ``titles`` is when every service was told ``events`` in ``language``."""
    expected = sorted(TITLES[language][e] for e in events)
    return dict.fromkeys(("dingtalk", "wecom", "feishu", "webhook"), expected)


def all_signed(hooks: Webhooks) -> bool:
    """Every request the robots got was accepted (DingTalk's and Feishu's signatures good)."""
    return all(r.refused is None for r in hooks.received)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_finished_run_is_told_to_every_robot_in_its_language(
    tmp_path: Path, language: str
) -> None:
    write_job(tmp_path, fleet(3))
    async with serve_webhooks() as (hooks, base), serve(Emulator()) as url:
        write_config(tmp_path, CONFIG_YAML + targets_yaml(base, language=language))
        done = await dispatcher(url, tmp_path, "run", "push.yaml")
    assert done.code == 0, done.stderr
    assert Counter(r.service for r in hooks.received) == {
        "dingtalk": 1, "wecom": 1, "feishu": 1, "webhook": 1,
    }  # fmt: skip
    assert all_signed(hooks)
    assert titles(hooks) == told(language, "run_finished")
    [hook] = hooks.of("webhook")
    assert hook.body["event"] == "run_finished"
    assert hook.body["counts"] == {"accepted": 3}
    assert hook.body["job"] == "push.yaml"
    assert hook.body["next_command"] == (  # to the OneNET the run went to, as the screen says
        f"dispatcher status push.yaml.ledger.db --watch --config config.yaml --base-url {url}"
    )
    text = hooks.of("dingtalk")[0].body["markdown"]["text"]
    assert ("3 已接受" if language == "zh" else "3 accepted") in text
    assert "dispatcher status push.yaml.ledger.db --watch" in text


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_failed_canary_is_told_with_the_aborted_run(tmp_path: Path, language: str) -> None:
    imeis = fleet(20)
    rollout = "rollout:\n  canary: 4\n  abort:\n    max_failure_rate: 0.1\n    min_decided: 5\n"
    write_job(tmp_path, imeis, extra=rollout)
    faults = Faults(foreign_imeis=frozenset(canary_imeis(imeis, 4)[:2]))
    async with serve_webhooks() as (hooks, base), serve(Emulator(faults)) as url:
        write_config(tmp_path, CONFIG_YAML + targets_yaml(base, language=language))
        done = await dispatcher(url, tmp_path, "run", "push.yaml")
    assert done.code == 4, done.stderr  # as without notify: a rollout rule stopped the run
    assert titles(hooks) == told(language, "canary_failed", "run_aborted")
    assert all_signed(hooks)
    by_event = {r.body["event"]: r.body for r in hooks.of("webhook")}
    verdict, aborted = by_event["canary_verdict"], by_event["run_aborted"]
    assert verdict["passed"] is False
    assert verdict["reason"].startswith("the canary failed: 2 of the canary's 4 commands")
    assert aborted["counts"] == {"accepted": 2, "rejected": 2, "skipped": 16}
    assert aborted["next_command"].startswith("dispatcher cancel push.yaml.ledger.db")


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_canary_that_went_well_is_told_as_passed(tmp_path: Path, language: str) -> None:
    write_job(tmp_path, fleet(12), extra="rollout:\n  canary: 3\n")
    async with serve_webhooks() as (hooks, base), serve(Emulator()) as url:
        also = targets_yaml(base, language=language, events="canary-verdict")
        write_config(tmp_path, CONFIG_YAML + also)
        done = await dispatcher(url, tmp_path, "run", "push.yaml")
    assert done.code == 0, done.stderr
    assert titles(hooks) == told(language, "canary_passed")  # the only event asked for
    assert hooks.of("webhook")[0].body["passed"] is True
    assert all_signed(hooks)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_watch_that_ended_is_told_with_the_delivery_states(
    tmp_path: Path, language: str
) -> None:
    write_job(tmp_path, fleet(4), extra="")
    text = (tmp_path / "push.yaml").read_text(encoding="utf-8").replace("'+1d'", "'+2m'")
    (tmp_path / "push.yaml").write_text(text, encoding="utf-8")
    clock = ShiftedClock()
    quick = replace(FLEET, wake_every_s=2, answer_delay_s=0.5, never_wake=0.34)
    async with serve_webhooks() as (hooks, base), serve(Emulator(clock=clock, fleet=quick)) as url:
        also = targets_yaml(base, language=language, events="watch_finished")
        write_config(tmp_path, CONFIG_YAML + also)
        assert (await dispatcher(url, tmp_path, "run", "push.yaml")).code == 0
        clock.shift = 200.0  # past every window: every command is final
        watched = await dispatcher(
            url, tmp_path, "status", "push.yaml.ledger.db", "--watch", "--interval", "0.2"
        )
        # Every command final already: a watch again has nothing to follow, and tells nobody.
        again = await dispatcher(url, tmp_path, "status", "push.yaml.ledger.db", "--watch")
    assert watched.code == again.code == 0, watched.stderr + again.stderr
    assert titles(hooks) == told(language, "watch_finished")
    counts = hooks.of("webhook")[0].body["counts"]
    assert sum(counts.values()) == 4
    assert set(counts) <= {"delivered", "failed", "expired"}
    # A third of the devices never woke: their commands expired, and a retry is the next step.
    after = hooks.of("webhook")[0].body["next_command"]
    assert after == "dispatcher retry-failed push.yaml.ledger.db -o push-retry.yaml"
    assert all_signed(hooks)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_verify_that_ended_is_told_with_the_devices_by_state(
    tmp_path: Path, language: str
) -> None:
    imeis = fleet(6)
    firmware_job(tmp_path, imeis)
    clock = ShiftedClock()
    async with serve_webhooks() as (hooks, base), serve(Emulator(clock=clock, fleet=FLEET)) as url:
        also = targets_yaml(base, language=language, events="verify_finished")
        write_config(tmp_path, CONFIG_YAML + also)
        assert (await dispatcher(url, tmp_path, "run", "fw.yaml")).code == 0
        clock.shift = 700.0  # the devices that wake have woken; every window has closed
        done = await dispatcher(url, tmp_path, "verify", "fw.yaml")
    assert done.code in (0, 1), done.stderr
    assert titles(hooks) == told(language, "verify_finished")
    counts = hooks.of("webhook")[0].body["counts"]
    assert sum(counts.values()) == 6
    # Deliveries still open: watched with the config verify was given.
    after = hooks.of("webhook")[0].body["next_command"]
    assert after == "dispatcher status fw.yaml.ledger.db --watch --config config.yaml"
    assert set(counts) <= {"on_target", "not_yet", "failed", "never_seen"}
    assert all_signed(hooks)


async def test_dead_targets_warn_and_change_neither_exit_code_nor_ledger(tmp_path: Path) -> None:
    plain, notified = tmp_path / "plain", tmp_path / "notified"
    imeis = fleet(5)
    faults = Faults(foreign_imeis=frozenset(imeis[:1]))  # one refused: exit 3 either way
    async with serve_webhooks() as (hooks, base), serve(Emulator(faults)) as url:
        for directory in (plain, notified):
            directory.mkdir()
            write_job(directory, imeis)
        write_config(plain)
        write_config(
            notified,
            CONFIG_YAML
            + "notify:\n"
            + f"  - type: webhook\n    url: http://127.0.0.1:{closed_port()}/hook\n"
            + "    retries: 1\n"
            + f"  - type: webhook\n    url: {base}/hang\n    timeout: 0.3s\n    retries: 1\n",
        )
        without = await dispatcher(url, plain, "run", "push.yaml")
        with_dead = await dispatcher(url, notified, "run", "push.yaml")
    assert without.code == with_dead.code == 3, with_dead.stderr
    assert hooks.hung == 2  # the one that never answers: tried twice, each cut at its timeout
    warnings = [line for line in with_dead.stderr.splitlines() if "notification" in line]
    assert len(warnings) == 2
    assert "notify[0] (webhook) not sent after 2 attempts: cannot connect" in warnings[0]
    assert "notify[1] (webhook) not sent after 2 attempts: no answer within 0.3 s" in warnings[1]

    def outcomes(directory: Path) -> list[tuple[str, str, int | None]]:
        rows = ledger_rows(directory / "push.yaml.ledger.db")
        return [(r.command.imei, r.status.value, r.errno) for r in rows]

    assert outcomes(plain) == outcomes(notified)


async def test_no_url_token_or_secret_shows_in_output_ledger_or_report(tmp_path: Path) -> None:
    imeis = fleet(4)
    write_job(tmp_path, imeis)
    faults = Faults(foreign_imeis=frozenset(imeis[:1]))
    async with serve_webhooks() as (hooks, base), serve(Emulator(faults)) as url:
        dead = (
            "  - type: wecom\n"
            f"    url: 'http://127.0.0.1:{closed_port()}/cgi-bin/webhook/send?key=${{WECOM_KEY}}'\n"
            "    retries: 0\n"
        )
        write_config(tmp_path, CONFIG_YAML + targets_yaml(base) + dead)
        run = await dispatcher(url, tmp_path, "-vv", "run", "push.yaml")
        report = await dispatcher_async(
            "-vv", "report", "push.yaml.ledger.db", "--format", "json", cwd=tmp_path
        )
    assert run.code == 3, run.stderr
    assert len(hooks.received) == 4 and all_signed(hooks)  # the live ones were reached
    assert "notify[4] (wecom) not sent after 1 attempt" in run.stderr
    texts = [run.stdout, run.stderr, report.stdout, report.stderr]
    for secret in SECRETS:
        assert [t for t in texts if secret in t] == [], secret
    assert files_holding(tmp_path, "push.yaml.ledger.db*", SECRETS) == []


def files_holding(folder: Path, pattern: str, secrets: tuple[str, ...]) -> list[str]:
    """The files matching ``pattern`` (at least one) whose bytes hold any of ``secrets``."""
    files = sorted(folder.glob(pattern))
    assert files
    return [p.name for p in files if any(s.encode() in p.read_bytes() for s in secrets)]


async def test_a_run_stopped_by_ctrl_c_is_not_told(tmp_path: Path) -> None:
    write_csv_job(tmp_path, fleet(2000))
    emulator = Emulator(Faults(latency_ms=20))
    async with serve_webhooks() as (hooks, base), serve(emulator) as url:
        write_config(tmp_path, CONFIG_YAML + targets_yaml(base))
        async with started(
            *("run", "fleet.yaml", "--config", "config.yaml", "--base-url", url, "--rate", "200"),
            cwd=tmp_path,
            env=ENV,
        ) as proc:
            await until(lambda: len(emulator.accepted()) >= 20, proc=proc)
            proc.send_signal(signal.SIGINT)
            done = await finished(proc)
    assert done.code == 130, done.stderr  # stopped: the person who stopped it knows
    assert hooks.received == []


PAUSE = "rollout:\n  canary:\n    size: 3\n    then: pause\n"


def _hook(base: str, route: str = "hook", extra: str = "") -> str:
    return f"notify:\n  - type: webhook\n    url: {base}/{route}\n{extra}"


async def test_a_run_a_breaker_stopped_is_never_told_to_cancel_a_good_canary(
    tmp_path: Path,
) -> None:
    # The canary passed and paused: its 3 commands wait on OneNET. The next run cannot reach
    # OneNET (a breaker, not a rollout rule): cancelling would withdraw the good canary.
    write_job(tmp_path, fleet(12), extra=PAUSE)
    async with serve_webhooks() as (hooks, base), serve(Emulator()) as url:
        write_config(tmp_path, CONFIG_YAML + _hook(base))
        assert (await dispatcher(url, tmp_path, "run", "push.yaml")).code == 0
        dead = f"http://127.0.0.1:{closed_port()}"
        stopped = await dispatcher_async(
            "run", "push.yaml", "--config", "config.yaml", "--base-url", dead,
            cwd=tmp_path, env=ENV,
        )  # fmt: skip
    assert stopped.code == 4, stopped.stderr
    aborted = [r.body for r in hooks.of("webhook") if r.body["event"] == "run_aborted"]
    assert len(aborted) == 1
    assert aborted[0]["next_command"] == (
        f"dispatcher run push.yaml --config config.yaml --base-url {dead}"
    )  # the run resumes once OneNET is reached again: never a cancel
    assert "fix what stopped it, then run again to go on: dispatcher run push.yaml" in (
        stopped.stderr
    )


async def test_a_run_on_a_ledger_of_its_own_is_told_to_go_on_with_that_ledger(
    tmp_path: Path,
) -> None:
    # Without --ledger the next run would open the job's default ledger, a new one, and send
    # the canary again: the notice and the HTML page both name the run's own ledger.
    write_job(tmp_path, fleet(12), extra=PAUSE)
    async with serve_webhooks() as (hooks, base), serve(Emulator()) as url:
        write_config(tmp_path, CONFIG_YAML + _hook(base))
        done = await dispatcher(url, tmp_path, "run", "push.yaml", "--ledger", "runs/own.db")
    assert done.code == 0, done.stderr
    [finished_] = [r.body for r in hooks.of("webhook") if r.body["event"] == "run_finished"]
    assert finished_["next_command"] == (
        f"dispatcher run push.yaml --config config.yaml --base-url {url} --ledger runs/own.db"
    )
    page = await dispatcher_async("report", "runs/own.db", "--format", "html", cwd=tmp_path)
    assert page.code == 0, page.stderr
    own = tmp_path / "runs" / "own.db"  # whole, as the job's path is: it works from anywhere
    assert f"dispatcher run {tmp_path / 'push.yaml'} --ledger {own}" in page.stdout


async def test_ctrl_c_gives_up_the_notifications_at_once(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(3))
    async with serve_webhooks() as (hooks, base), serve(Emulator()) as url:
        # A target that never answers, given a minute for its one try.
        hang = _hook(base, "hang", "    timeout: 60s\n    retries: 0\n")
        write_config(tmp_path, CONFIG_YAML + hang)
        async with started(
            *("run", "push.yaml", "--config", "config.yaml", "--base-url", url),
            cwd=tmp_path,
            env=ENV,
        ) as proc:
            await until(lambda: hooks.hung > 0, proc=proc)  # the run is over: it notifies
            proc.send_signal(signal.SIGINT)
            done = await finished(proc, within=30)  # not the minute the target was given
    assert "notification run_finished to notify[0] (webhook) not sent" in done.stderr
    assert "given up: stopped" in done.stderr
    assert [r.status for r in ledger_rows(tmp_path / "push.yaml.ledger.db")] == [
        Status.ACCEPTED
    ] * 3
