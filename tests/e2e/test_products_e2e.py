"""Several products in one run, and the newer OneNET API, end to end: the real dispatcher against
the emulator serving several products at once (each its key or access key, devices, throttle),
over loopback sockets."""

from __future__ import annotations

import base64
import itertools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dispatcher.config import load_settings
from dispatcher.emulator.server import Emulator, Faults, Product, serve
from dispatcher.errors import WrongKeyError
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.onenet.aiohttp_transport import AiohttpTransport
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.client import OneNetClient
from dispatcher.run.pacing import WINDOW_SLACK_S
from dispatcher.run.runner import RunResult, run_job
from tests.support.cli import dispatcher_async
from tests.support.e2e import fast_settings, fleet
from tests.support.ledger import ledger_rows
from tests.support.products import CONFIG, LIGHTS_KEY, METERS_KEY, two_product_job

ACCESS_KEY = base64.b64encode(b"studio-access-key-for-tests").decode()
RES = "products/abc123"


def counts(result: RunResult) -> dict[Status, int]:
    return {status: n for status, n in result.counts.items() if n}


# The emulator stamps a request when its loop gets to it: on a loaded machine (the suite runs on
# every core) that is up to tens of milliseconds late, and late stamps bunch up.
_STAMPS_LATE_S = 0.05


def busiest_second(arrivals: list[float]) -> int:
    """The most requests that arrived in any 1-second window, less how late the emulator's
    stamps can be and the pace's slack."""
    most, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - (1.0 - WINDOW_SLACK_S - _STAMPS_LATE_S):
            start += 1
        most = max(most, end - start + 1)
    return most


def products_emulator(**lights: object) -> Emulator:
    return Emulator(
        products={
            "meters": Product(api_key=METERS_KEY),
            "lights": Product(api_key=LIGHTS_KEY, **lights),  # type: ignore[arg-type]
        }
    )


async def run_two_products(
    ledger_path: Path, emulator: Emulator, job: Path, **options: Any
) -> tuple[RunResult, dict[str, object]]:
    """One in-process run of ``job`` on a lane for meters and one for lights (no default lane);
    the result, and the ledger's rollout state after it."""
    settings = fast_settings()
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        lanes = {
            name: (OneNetClient(AiohttpTransport(session), url, key), settings)
            for name, key in (("meters", METERS_KEY), ("lights", LIGHTS_KEY))
        }
        with Ledger.open(ledger_path, synchronous="normal") as ledger:
            result = await run_job(
                load_job(job), lanes["meters"][0], ledger, settings, products=lanes,
                default_lane=False, **options,
            )  # fmt: skip
            passed = {p: ledger.canary_covered_before(p) for p in ("meters", "lights")}
            return result, passed


async def test_each_product_is_paced_on_its_own_lane(tmp_path: Path) -> None:
    meters, lights = fleet(40), fleet(60, start=100)
    two_product_job(tmp_path, meters, lights)
    emulator = products_emulator()
    async with serve(emulator) as url:
        (tmp_path / "config.yaml").write_text(CONFIG.replace("URL", url), encoding="utf-8")
        done = await dispatcher_async(
            "run", "fleet.yaml", "--config", "config.yaml", cwd=tmp_path,
            key=None, env={"METERS_KEY": METERS_KEY, "LIGHTS_KEY": LIGHTS_KEY},
        )  # fmt: skip
    assert done.code == 0, done.stderr
    by_product = {
        r.command.imei: r.command.product for r in ledger_rows(tmp_path / "fleet.yaml.ledger.db")
    }
    assert {i: by_product[i] for i in meters} == dict.fromkeys(meters, "meters")
    assert {i: by_product[i] for i in lights} == dict.fromkeys(lights, "lights")
    stats = emulator.stats()["products"]
    assert isinstance(stats, dict)
    assert (stats["meters"]["accepted"], stats["lights"]["accepted"]) == (40, 60)
    # Each product's own rate at the server, though the run sends both at once.
    assert busiest_second(emulator.arrivals("meters")) <= 20
    assert busiest_second(emulator.arrivals("lights")) <= 40
    assert busiest_second(emulator.arrivals()) > 40  # together, more than either allows
    assert METERS_KEY not in done.stdout + done.stderr and LIGHTS_KEY not in done.stderr


async def test_a_wrong_key_stops_its_own_lane_only_and_a_rerun_finishes(tmp_path: Path) -> None:
    meters, lights = fleet(30), fleet(30, start=100)
    job = two_product_job(tmp_path, meters, lights)
    emulator = products_emulator()
    env = {"METERS_KEY": METERS_KEY, "LIGHTS_KEY": "not-the-lights-key"}
    async with serve(emulator) as url:
        (tmp_path / "config.yaml").write_text(CONFIG.replace("URL", url), encoding="utf-8")
        wrong = await dispatcher_async(
            "run", job.name, "--config", "config.yaml", cwd=tmp_path, key=None, env=env
        )
        rows = ledger_rows(tmp_path / "fleet.yaml.ledger.db")
        fixed = await dispatcher_async(
            "run", job.name, "--config", "config.yaml", cwd=tmp_path,
            key=None, env={**env, "LIGHTS_KEY": LIGHTS_KEY},
        )  # fmt: skip
    assert wrong.code == 4, wrong.stderr
    assert "product lights" in wrong.stderr and "api-key" in wrong.stderr
    assert "product meters: finished" in wrong.stderr
    states = {(r.command.product, r.status) for r in rows}
    assert states == {("meters", Status.ACCEPTED), ("lights", Status.PENDING)}
    assert fixed.code == 0, fixed.stderr
    report = await dispatcher_async(
        "report", "fleet.yaml.ledger.db", cwd=tmp_path, key=None, env={}
    )
    assert "product lights" in report.stdout and "product meters" in report.stdout
    final = ledger_rows(tmp_path / "fleet.yaml.ledger.db")
    assert {r.status for r in final} == {Status.ACCEPTED}
    assert len(emulator.accepted()) == 60  # the rerun sent only what was left


async def test_validate_checks_the_products_against_the_config(tmp_path: Path) -> None:
    job = two_product_job(tmp_path, fleet(2), fleet(3, start=10))
    (tmp_path / "config.yaml").write_text(
        "products:\n  meters: {api_key_env: METERS_KEY}\n", encoding="utf-8"
    )
    done = await dispatcher_async(
        "validate", job.name, "--config", "config.yaml", cwd=tmp_path, key=None, env={}
    )
    assert done.code == 1
    assert "product: no product 'lights' in config.yaml (products: meters)" in done.stdout
    assert "products: lights 3 · meters 2" in done.stdout


async def run_studio(
    tmp_path: Path, emulator: Emulator, url: str, access_key: str, clock: Callable[[], float]
) -> tuple[RunResult, TokenSource]:
    (tmp_path / "c.yaml").write_text(
        f"onenet:\n  platform: iot-api\n  base_url: {url}\n  token:\n"
        f"    access_key_env: STUDIO_KEY\n    res: {RES}\n    lifetime: 1m\n",
        encoding="utf-8",
    )
    settings = load_settings(tmp_path / "c.yaml")
    fast = fast_settings(breaker_threshold=5)
    settings = type(settings)(
        onenet=settings.onenet, limits=fast.limits, retry=fast.retry,
        reliability=fast.reliability, ledger=fast.ledger,
    )  # fmt: skip
    token = settings.onenet.token
    assert token is not None
    source = TokenSource(access_key, token.res, lifetime_s=token.lifetime, clock=clock)
    job = load_job(two_product_job(tmp_path, fleet(40), []))
    async with aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, platform="iot-api", token=source)
        with Ledger.open(tmp_path / "s.db", synchronous="normal") as ledger:
            result = await run_job(job, client, ledger, settings)
    return result, source


@pytest.mark.parametrize("shape", ["errno", "code"])
async def test_the_newer_api_with_signed_tokens_renewed_during_a_long_run(
    tmp_path: Path, shape: str
) -> None:
    emulator = Emulator(
        products={"studio": Product(access_key=ACCESS_KEY, res=RES, answer_shape=shape)}  # type: ignore[arg-type]
    )
    start = time.time()
    ticks = itertools.count()
    # The token's clock runs 5 s ahead per token asked for: a minute's token is renewed
    # several times over the run, as it would be over hours at OneNET.
    clock = lambda: start + 5 * next(ticks)  # noqa: E731
    async with serve(emulator) as url:
        result, source = await run_studio(tmp_path, emulator, url, ACCESS_KEY, clock)
    assert counts(result) == {Status.ACCEPTED: 40}
    assert source.renewals >= 2
    assert {c.product for c in emulator.accepted()} == {"studio"}
    rows = ledger_rows(tmp_path / "s.db")
    assert {r.uuid for r in rows} == {c.uuid for c in emulator.accepted()}


async def test_a_wrong_access_key_is_stopped_by_the_breaker(tmp_path: Path) -> None:
    emulator = Emulator(products={"studio": Product(access_key=ACCESS_KEY, res=RES)})
    wrong = base64.b64encode(b"some-other-access-key").decode()
    async with serve(emulator) as url:
        result, _ = await run_studio(tmp_path, emulator, url, wrong, time.time)
    assert isinstance(result.aborted, WrongKeyError)
    assert counts(result) == {}  # nothing sent, nothing registered: a rerun sends it all
    assert emulator.accepted() == []
    assert ACCESS_KEY not in result.aborted.reason and wrong not in result.aborted.reason


async def test_status_and_cancel_use_each_products_key(tmp_path: Path) -> None:
    # The emulator answers each product's follow-up calls about that product's commands only:
    # a state read or a cancel made with the other product's key would find nothing.
    meters, lights = fleet(6), fleet(6, start=100)
    two_product_job(tmp_path, meters, lights)
    emulator = products_emulator()
    env = {"METERS_KEY": METERS_KEY, "LIGHTS_KEY": LIGHTS_KEY}
    ledger = "fleet.yaml.ledger.db"
    async with serve(emulator) as url:
        (tmp_path / "config.yaml").write_text(CONFIG.replace("URL", url), encoding="utf-8")
        config = ("--config", "config.yaml")
        sent = await dispatcher_async("run", "fleet.yaml", *config, cwd=tmp_path, key=None, env=env)
        read = await dispatcher_async("status", ledger, *config, cwd=tmp_path, key=None, env=env)
        cancelled = await dispatcher_async(
            "cancel", ledger, *config, "--yes", cwd=tmp_path, key=None, env=env
        )
    assert sent.code == 0, sent.stderr
    assert read.code == 0, read.stderr
    assert "product lights: " in read.stderr and "product meters: " in read.stderr
    assert cancelled.code == 0, cancelled.stderr
    rows = ledger_rows(tmp_path / ledger)
    assert {(r.send_status, r.cancel_error) for r in rows} == {(2, None)}
    assert {c.send_status for c in emulator.accepted()} == {2}


async def test_cancel_with_one_products_key_wrong_names_that_product_and_cancels_nothing(
    tmp_path: Path,
) -> None:
    meters, lights = fleet(6), fleet(6, start=100)
    two_product_job(tmp_path, meters, lights)
    emulator = products_emulator()
    env = {"METERS_KEY": METERS_KEY, "LIGHTS_KEY": LIGHTS_KEY}
    wrong = {**env, "LIGHTS_KEY": "not-the-lights-key"}
    ledger = "fleet.yaml.ledger.db"
    async with serve(emulator) as url:
        (tmp_path / "config.yaml").write_text(CONFIG.replace("URL", url), encoding="utf-8")
        config = ("--config", "config.yaml")
        sent = await dispatcher_async("run", "fleet.yaml", *config, cwd=tmp_path, key=None, env=env)
        cancelled = await dispatcher_async(
            "cancel", ledger, *config, "--yes", cwd=tmp_path, key=None, env=wrong
        )
    assert sent.code == 0, sent.stderr
    assert cancelled.code == 4, cancelled.stderr
    assert "product lights: " in cancelled.stderr and "api-key" in cancelled.stderr
    assert "product meters" not in cancelled.stderr.split("product lights: ")[1]
    assert "nothing was cancelled" in cancelled.stderr
    assert {c.send_status for c in emulator.accepted()} == {1}  # every command still waiting


async def test_lost_answers_are_settled_in_each_products_own_history(tmp_path: Path) -> None:
    meters, lights = fleet(20), fleet(20, start=100)
    job = two_product_job(tmp_path, meters, lights)
    emulator = Emulator(
        faults=Faults(cut_after_rate=0.3, seed=3),
        products={"meters": Product(api_key=METERS_KEY), "lights": Product(api_key=LIGHTS_KEY)},
    )
    result, _ = await run_two_products(tmp_path / "l.db", emulator, job)
    assert counts(result) == {Status.ACCEPTED: 40}
    rows = ledger_rows(tmp_path / "l.db")
    assert any(r.reconciled for r in rows if r.command.product == "meters")
    assert any(r.reconciled for r in rows if r.command.product == "lights")
    held = {c.uuid: c for c in emulator.accepted()}
    assert len(held) == 40  # each command held once
    assert all(held[r.uuid].product == r.command.product for r in rows)


def test_a_job_names_its_product_at_the_top(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(
        f"job: j\nproduct: meters\ndefaults: {{obj_id: 5, obj_inst_id: 0, res_id: 2,"
        f" expired_time: +1d}}\ntargets:\n  - '{fleet(1)[0]}'\n"
        f"  - {{imei: '{fleet(2)[1]}', product: lights}}\n",
        encoding="utf-8",
    )
    assert [c.product for c in load_job(path).commands()] == ["meters", "lights"]


async def test_retry_failed_keeps_each_commands_product(tmp_path: Path) -> None:
    meters, lights = fleet(3), fleet(3, start=100)
    job = two_product_job(tmp_path, meters, lights)
    emulator = Emulator(
        products={
            "meters": Product(api_key=METERS_KEY, imeis=frozenset(meters[1:])),
            "lights": Product(api_key=LIGHTS_KEY, imeis=frozenset(lights[1:])),
        }
    )
    await run_two_products(tmp_path / "l.db", emulator, job)
    done = await dispatcher_async(
        "retry-failed", "l.db", "-o", "again.csv", cwd=tmp_path, key=None, env={}
    )
    assert done.code == 0, done.stderr
    retried = {c.imei: c.product for c in load_job(tmp_path / "again.csv").commands()}
    assert retried == {meters[0]: "meters", lights[0]: "lights"}


async def test_each_lane_has_its_own_canary(tmp_path: Path) -> None:
    # A small product beside a big one: each lane's canary is drawn from its own commands, and
    # passes (or fails) for that product only.
    meters, lights = fleet(40), fleet(4, start=100)
    job = two_product_job(tmp_path, meters, lights)
    text = job.read_text(encoding="utf-8")
    job.write_text(text.replace("targets_csv:", "rollout: {canary: 2}\ntargets_csv:"), "utf-8")
    emulator = Emulator(
        products={
            "meters": Product(api_key=METERS_KEY),
            "lights": Product(api_key=LIGHTS_KEY, imeis=frozenset()),  # every device refused
        }
    )
    result, state = await run_two_products(tmp_path / "l.db", emulator, job, probe=False)
    rows = ledger_rows(tmp_path / "l.db")
    assert {r.status for r in rows if r.command.product == "meters"} == {Status.ACCEPTED}
    lights_states = Counter(r.status for r in rows if r.command.product == "lights")
    assert lights_states == {Status.REJECTED: 2, Status.SKIPPED: 2}  # its canary failed: held
    assert state == {"meters": True, "lights": False}
    assert result.lanes["lights"] is not None and result.lanes["meters"] is None
