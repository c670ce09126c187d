"""The shipped job files are real: each validates without a problem, warnings included, and the
docs show those they print as they are (tests/docs/test_docs_examples.py runs the docs'
commands)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dispatcher.job.model import load_job, validate_job

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"
DOCS = ROOT / "docs"
SHOWN_IN_DOCS = ("firmware-update.yaml", "config-write.yaml", "config-write.csv", "rollout.yaml")


def _targets_files() -> set[str]:
    """The CSV files YAML jobs take their targets from: fleets, not jobs of their own."""
    names = set()
    for path in JOBS.glob("*.y*ml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("targets_csv"), str):
            names.add((path.parent / data["targets_csv"]).resolve().name)
    return names


def _job_files() -> list[str]:
    fleets = _targets_files()
    return sorted(
        p.name
        for p in JOBS.iterdir()
        if p.suffix in (".yaml", ".yml", ".csv") and p.name not in fleets
    )


def test_the_new_examples_are_there() -> None:
    assert {"firmware-update.yaml", "config-write.yaml", "config-write.csv"} <= set(_job_files())
    assert "inventory-read.yaml" in _job_files()


@pytest.mark.parametrize("name", _job_files())
def test_job_file_validates_strictly_without_a_problem(name: str) -> None:
    problems: list[str] = []
    job = load_job(JOBS / name)
    result = validate_job(job, strict=True, on_problem=lambda p: problems.append(str(p)))
    assert problems == []
    assert result.ok and result.warnings == 0
    assert result.commands >= 1 or job.query is not None  # a query's devices: found at run time


@pytest.mark.parametrize("name", SHOWN_IN_DOCS)
def test_docs_show_the_job_file_as_it_is(name: str) -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))
    blocks = re.findall(r"```(?:yaml|csv)\n(.*?)```", text, re.S)
    assert (JOBS / name).read_text(encoding="utf-8") in blocks
