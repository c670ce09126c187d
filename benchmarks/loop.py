"""The cost of the closed loop in OneNET calls: the device-list pages of a fleet query, the status
reads of a job of steps gated on delivery, and the calls of verify by each source.

These are counts, not times: for a given fleet and wake schedule they are exact, so each is
measured in one run. Each measurement starts the emulator in its own process with registered
devices (``benchmarks.serve --fleet N``, and ``--wake-every S`` for devices that take their
commands), runs the dispatcher's command line as a child, and counts the calls by kind from
the emulator's ``GET /_emulator/stats`` (``calls``: devices, history, detail, getbyimei,
datapoints, ...) before and after. Nothing here prints; the records are plain.
"""

from __future__ import annotations

import math
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import ChildFailed, EmulatorProcess, Measured, child_env, measure

__all__ = ["PAGE", "ListCount", "Loop", "LoopResults", "StepsCount", "VerifyCount"]

PAGE = 100  # devices a device-list page holds at most (per_page=100, the most OneNET gives)
_PY = sys.executable
_FOUND = re.compile(r"targets_query: ([\d,]+) devices")
_CONFIG = """\
limits: {{rate_per_second: 0}}
reliability: {{delivery_poll_s: {poll:g}}}
ledger: {{synchronous: normal}}
"""
_QUERY_JOB = """\
job: bench-query
defaults: {{obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}}
targets_query: {{tag: "{tag}"}}
"""
# The firmware update of jobs/firmware-update.yaml, cut to what the counts need: two steps gated
# on delivery, then a read of 3/0/3 that verify judges; windows short enough for a benchmark.
_STEPS_JOB = """\
job: bench-firmware
defaults: {{obj_inst_id: 0, expired_time: +1h, trigger: [register, update]}}
steps:
  - {{op: write, obj_id: 5, values: {{1: "coap://fw.example.com:5683/nb/2.4.1.bin"}},
     wait: delivered, wait_timeout: 10m}}
  - {{op: execute, obj_id: 5, res_id: 2, wait: delivered, wait_timeout: 10m}}
  - {{op: read, obj_id: 3, res_id: 3}}
verify: {{read: 3/0/3, expect: "2.4.1", source: {source}}}
targets_query: {{limit: {devices}}}
"""
_TARGET = "2.4.1"  # the version the job's image installs
# The same devices listed by IMEI: a read of 3/0/3 (verify judges a job that ran), verified from
# the latest datapoints.
_CSV_JOB = """\
job: bench-imeis
defaults: {{obj_inst_id: 0, expired_time: +1h}}
steps:
  - {{op: read, obj_id: 3, res_id: 3}}
verify: {{read: 3/0/3, expect: "2.4.1", source: datapoints}}
targets_csv: {targets}
"""
STEPS, GATED = 3, 2  # the job's steps, and of them those whose delivery the next one waits for


@dataclass(frozen=True, slots=True)
class ListCount:
    """The device-list pages (``GET /devices``) one command read to find ``found`` devices."""

    what: str
    fleet: int  # devices registered in the product
    expected: int  # of them, those the filters match (the emulator's own count)
    found: int  # what the command found
    pages: int
    run: Measured

    @property
    def per_1k(self) -> float:
        """Pages per 1,000 devices found."""
        return self.pages / self.found * 1000 if self.found else math.nan

    @property
    def least(self) -> int:
        """The fewest pages that hold the devices found."""
        return math.ceil(self.found / PAGE)

    @property
    def ok(self) -> bool:
        """Every matching device found."""
        return self.found == self.expected


@dataclass(frozen=True, slots=True)
class StepsCount:
    """``dispatcher run`` of a job of steps gated on delivery: its status reads."""

    devices: int
    steps: int
    gated: int
    wake_s: float  # every device wakes this often
    poll_s: float  # reliability.delivery_poll_s
    accepted: int  # commands the emulator accepted
    delivered: int  # of them, delivered (send_status 5) when the run ended
    history: int  # history pages read
    detail: int  # details read
    updated: int  # devices on the new firmware (2.4.1) when the run ended
    out_of_order: int  # devices that got an execute of 5/0/2 before their write of 5/0/1
    run: Measured

    @property
    def reads(self) -> int:
        """Status reads: history pages and details."""
        return self.history + self.detail

    @property
    def per_device_step(self) -> float:
        """Status reads per device per step."""
        return self.reads / (self.devices * self.steps) if self.devices else math.nan

    @property
    def per_device_gated(self) -> float:
        """Status reads per device per step gated on delivery."""
        return self.reads / (self.devices * self.gated) if self.devices else math.nan

    @property
    def ok(self) -> bool:
        """Every command accepted once, every device updated, none out of order."""
        accepted = self.accepted == self.devices * self.steps
        return accepted and self.updated == self.devices and not self.out_of_order


@dataclass(frozen=True, slots=True)
class VerifyCount:
    """``dispatcher verify`` of that job by one source: its calls by kind, and the verdicts."""

    source: str  # command or datapoints
    targets: str  # how the job names its devices: targets_query (ids frozen) or targets_csv
    devices: int
    calls: Mapping[str, int]  # kind -> calls (the emulator's names)
    verdicts: Mapping[str, int]  # state -> devices (the ledger's verify_results)
    sent: int  # commands it sent to the devices (POSTs the emulator saw): none
    run: Measured

    @property
    def total(self) -> int:
        """Every call verify made."""
        return sum(self.calls.values())

    @property
    def per_device(self) -> float:
        """Calls per device."""
        return self.total / self.devices if self.devices else math.nan

    @property
    def ok(self) -> bool:
        """Every device judged, and on target; nothing sent."""
        return self.verdicts.get("on_target", 0) == self.devices and not self.sent


@dataclass(slots=True)
class LoopResults:
    """What the closed loop cost; a part missing did not run (or failed)."""

    lists: list[ListCount]
    steps: StepsCount | None = None
    verify: list[VerifyCount] | None = None

    @property
    def ok(self) -> bool:
        """Each part that ran found and did what it should."""
        parts: list[ListCount | StepsCount | VerifyCount] = [*self.lists, *(self.verify or [])]
        if self.steps is not None:
            parts.append(self.steps)
        return all(p.ok for p in parts)


def _calls(emulator: EmulatorProcess) -> Counter[str]:
    return Counter(emulator.stats()["calls"])


def _since(before: Counter[str], emulator: EmulatorProcess) -> dict[str, int]:
    """The calls by kind made since ``before`` (kinds not called left out)."""
    after = _calls(emulator)
    after.subtract(before)
    return {kind: n for kind, n in sorted(after.items()) if n > 0}


def _csv_rows(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)  # less the header


class Loop:
    """Runs the closed loop's measurements in ``work``."""

    def __init__(self, work: Path, api_key: str) -> None:
        self.work = work
        self._env = child_env({"ONENET_API_KEY": api_key})

    def _config(self, poll_s: float) -> Path:
        path = self.work / "loop-config.yaml"
        path.write_text(_CONFIG.format(poll=poll_s), encoding="utf-8")
        return path

    def _dispatcher(
        self, args: list[str], url: str, slug: str, timeout: float, *, check: bool = True
    ) -> Measured:
        argv = [_PY, "-m", "dispatcher", *args, "--base-url", url]
        logs = self.work / slug
        return measure(argv, logs=logs, timeout=timeout, env=self._env, cwd=self.work, check=check)

    def lists(self, fleet: int) -> list[ListCount]:
        """``dispatcher devices`` of a product of ``fleet`` devices, whole and by its commonest
        tag, and a ``targets_query`` of that tag resolved (``run --dry-run``)."""
        config = self._config(15.0)
        with EmulatorProcess(
            logs=self.work / "emulator-lists", args=["--fleet", str(fleet)]
        ) as emu:
            tags = Counter(t for d in emu.devices() for t in d["tags"] if t.startswith("city:"))
            tag, matched = tags.most_common(1)[0]
            found: list[ListCount] = []
            for what, filters, expected in (
                ("`dispatcher devices`, the whole product", [], fleet),
                (f"`dispatcher devices --tag {tag}`", ["--tag", tag], matched),
            ):
                out = self.work / f"devices-{len(found)}.csv"
                before = _calls(emu)
                args = ["devices", "--config", str(config), *filters, "-o", str(out)]
                run = self._dispatcher(args, emu.url, f"devices-{len(found)}", 300)
                pages = _since(before, emu).get("devices", 0)
                found.append(ListCount(what, fleet, expected, _csv_rows(out), pages, run))
            job = self.work / "bench-query.yaml"
            job.write_text(_QUERY_JOB.format(tag=tag), encoding="utf-8")
            before = _calls(emu)
            args = ["run", str(job), "--config", str(config), "--dry-run", "--no-progress"]
            args += ["--ledger", str(self.work / "bench-query.ledger.db")]
            run = self._dispatcher(args, emu.url, "query-dry-run", 300)
            pages = _since(before, emu).get("devices", 0)
            said = _FOUND.search(run.stdout + run.stderr)
            if said is None:
                raise ChildFailed("run --dry-run of a targets_query did not say what it found")
            resolved = int(said.group(1).replace(",", ""))
            what = f"a `targets_query` of tag {tag} resolved (`run --dry-run`)"
            found.append(ListCount(what, fleet, matched, resolved, pages, run))
        return found

    def closed_loop(
        self, devices: int, wake_s: float, poll_s: float
    ) -> tuple[StepsCount, list[VerifyCount]]:
        """``dispatcher run`` of a firmware job of 2 steps gated on delivery and a read of 3/0/3
        to ``devices`` devices that wake every ``wake_s`` seconds; then ``dispatcher verify`` of
        its ledger by the read's ``cmd_result`` (``source: command``), then by the latest
        datapoints (``source: datapoints``), and by datapoints for the same devices listed by
        IMEI."""
        config = self._config(poll_s)
        job = self.work / "bench-firmware.yaml"
        ledger = self.work / "bench-firmware.ledger.db"
        for stale in self.work.glob(ledger.name + "*"):
            stale.unlink()
        serve = ["--fleet", str(devices), "--wake-every", f"{wake_s:g}"]
        with EmulatorProcess(logs=self.work / "emulator-loop", args=serve) as emu:
            job.write_text(_STEPS_JOB.format(devices=devices, source="command"), "utf-8")
            before = _calls(emu)
            args = ["run", str(job), "--config", str(config), "--ledger", str(ledger)]
            timeout = 300 + devices * 0.5 + 20 * (wake_s + poll_s)
            run = self._dispatcher([*args, "--yes", "--no-progress"], emu.url, "loop-run", timeout)
            calls, stats, fleet = _since(before, emu), emu.stats(), emu.devices()
            steps = StepsCount(
                devices, STEPS, GATED, wake_s, poll_s, stats["accepted"],
                stats["send_status"].get("5", 0), calls.get("history", 0),
                calls.get("detail", 0), sum(d["firmware"] == _TARGET for d in fleet),
                sum(bool(d["execute_before_write"]) for d in fleet), run,
            )  # fmt: skip
            verified = []
            for source in ("command", "datapoints"):
                job.write_text(_STEPS_JOB.format(devices=devices, source=source), "utf-8")
                verified.append(self._verify(emu, ledger, config, poll_s, source, devices))
            verified.append(self._verify_by_imei(emu, config, poll_s, fleet, timeout))
        return steps, verified

    def _verify(
        self,
        emu: EmulatorProcess,
        ledger: Path,
        config: Path,
        poll_s: float,
        source: str,
        devices: int,
        targets: str = "targets_query",
    ) -> VerifyCount:
        """``dispatcher verify --watch`` of ``ledger`` (a job of ``devices``), its rounds as
        often as the run's polls, counted."""
        before, posts = _calls(emu), emu.stats()["posts"]
        args = ["verify", str(ledger), "--config", str(config), "--watch"]
        args += ["--interval", f"{poll_s:g}"]
        slug = f"verify-{source}-{targets}"
        # exit 3 (some not yet) or 1 (some failed) is a verdict: the counts still hold
        run = self._dispatcher(args, emu.url, slug, 300, check=False)
        calls, sent = _since(before, emu), emu.stats()["posts"] - posts
        return VerifyCount(source, targets, devices, calls, _verdicts(ledger), sent, run)

    def _verify_by_imei(
        self,
        emu: EmulatorProcess,
        config: Path,
        poll_s: float,
        fleet: list[dict[str, Any]],
        timeout: float,
    ) -> VerifyCount:
        """``source: datapoints`` for the same devices listed by IMEI (a ``targets_csv``): a
        job of one read of 3/0/3 is run first (verify judges a job that ran), then verified;
        without a frozen fleet's platform ids, verify looks each device up by IMEI."""
        targets = self.work / "bench-imeis.csv"
        targets.write_text("imei\n" + "".join(f"{d['imei']}\n" for d in fleet), "utf-8")
        job = self.work / "bench-imeis.yaml"
        job.write_text(_CSV_JOB.format(targets=targets.name), "utf-8")
        ledger = self.work / "bench-imeis.ledger.db"
        for stale in self.work.glob(ledger.name + "*"):
            stale.unlink()
        args = ["run", str(job), "--config", str(config), "--ledger", str(ledger), "--no-progress"]
        self._dispatcher(args, emu.url, "imeis-run", timeout)
        return self._verify(emu, ledger, config, poll_s, "datapoints", len(fleet), "targets_csv")


def _verdicts(ledger: Path) -> dict[str, int]:
    """Devices by verify state, from the ledger's verify_results."""
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM verify_results GROUP BY state")
            found = {str(state): int(n) for state, n in rows}
        conn.close()
    except sqlite3.Error as exc:  # no ledger, or verify never wrote a verdict
        raise ChildFailed(f"{ledger.name}: no verify verdicts to read ({exc})") from None
    return found
