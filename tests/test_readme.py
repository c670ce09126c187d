"""The README's examples are real: the job files validate, the library example runs."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.config import load_settings
from dispatcher.emulator.server import Emulator, serve
from dispatcher.job.model import load_job, validate_job
from dispatcher.times import BEIJING

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 11, 1, 8, 0, tzinfo=BEIJING)  # before the CSV example's absolute expiry


def _examples() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```(yaml|csv)\n(.*?)```", text, re.S)


def test_the_readme_shows_a_job_file_of_each_kind() -> None:
    assert sorted({kind for kind, _ in _examples()}) == ["csv", "yaml"]


def _configs() -> list[str]:
    return [body for kind, body in _examples() if body.startswith("# config.yaml\n")]


def test_the_readme_shows_its_config_examples() -> None:
    assert len(_configs()) >= 2


@pytest.mark.parametrize("body", _configs())
def test_readme_example_config_loads(tmp_path: Path, body: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    settings = load_settings(path)
    for name in settings.products:
        settings.for_product(name)  # each product's settings check out


@pytest.mark.parametrize(
    ("kind", "body"), [(k, b) for k, b in _examples() if not b.startswith("# config.yaml\n")]
)
def test_readme_example_job_validates_without_warnings(
    tmp_path: Path, kind: str, body: str
) -> None:
    shutil.copy(ROOT / "jobs" / "example-fleet.csv", tmp_path)
    path = tmp_path / f"example.{kind}"
    path.write_text(body, encoding="utf-8")
    problems: list[str] = []
    result = validate_job(load_job(path), at=AT, on_problem=lambda p: problems.append(str(p)))
    assert problems == []
    assert result.ok and result.commands >= 2


async def test_readme_library_example_runs_the_job_against_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    for name in ("example.yaml", "example-fleet.csv"):
        shutil.copy(ROOT / "jobs" / name, tmp_path / "jobs")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    emulator = Emulator()
    async with serve(emulator) as url:
        here = f'Settings().with_overrides(base_url="{url}", rate=0)'
        script = code.replace("Settings()", here, 1)
        env = {**os.environ, "ONENET_API_KEY": "readme-key", "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)

    assert proc.returncode == 0, err.decode()
    assert len(emulator.accepted()) == 3000
    assert (tmp_path / "jobs" / "example.yaml.ledger.db").exists()
