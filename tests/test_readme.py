"""The README's job-file examples are real: they validate as shown."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.jobs import load_job, validate_job
from dispatcher.times import BEIJING

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 11, 1, 8, 0, tzinfo=BEIJING)  # before the CSV example's absolute expiry


def _examples() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```(yaml|csv)\n(.*?)```", text, re.S)


def test_the_readme_shows_a_job_file_of_each_kind() -> None:
    assert sorted({kind for kind, _ in _examples()}) == ["csv", "yaml"]


@pytest.mark.parametrize(("kind", "body"), _examples())
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
