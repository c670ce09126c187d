"""The shipped job files are real: each validates without a problem, warnings included, and the
README's `dispatcher validate` outputs are what validate prints for the files they name."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dispatcher.job.model import load_job, validate_job

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
README = ROOT / "README.md"
SHOWN_IN_README = ("firmware-update.yaml", "config-write.yaml", "config-write.csv")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


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
    assert result.ok and result.warnings == 0 and result.commands >= 1


@pytest.mark.parametrize("name", SHOWN_IN_README)
def test_readme_shows_the_job_file_as_it_is(name: str) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:yaml|csv)\n(.*?)```", text, re.S)
    assert (JOBS / name).read_text(encoding="utf-8") in blocks


def _commands() -> list[tuple[str, list[str], str | None, dict[str, str]]]:
    """Each `$ dispatcher validate` of the README's console blocks that shows output: the
    command, its output lines, the exit code an `echo $?` after it shows, and the files the
    block shows with `$ cat` before it."""
    found = []
    text = README.read_text(encoding="utf-8")
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        files: dict[str, str] = {}
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:].strip(), []))
            elif steps:
                steps[-1][1].append(line)
        for n, (command, output) in enumerate(steps):
            if command.startswith("cat "):
                files[command[4:].strip()] = "\n".join(output) + "\n"
            elif command.startswith("dispatcher validate ") and output:
                after = steps[n + 1] if n + 1 < len(steps) else None
                rc = after[1][0] if after and after[0] == "echo $?" and after[1] else None
                found.append((command, output, rc, dict(files)))
    return found


def _known(command: str, files: dict[str, str]) -> bool:
    """Whether every file the command names is a repository job or one the block shows."""
    names = [a for a in command.split()[2:] if not a.startswith("-")]
    return all(n in files or (n.startswith("jobs/") and (ROOT / n).is_file()) for n in names)


_CHECKED = [c for c in _commands() if _known(c[0], c[3])]


def test_the_readme_shows_validate_outputs_to_check() -> None:
    assert len(_CHECKED) >= 4


@pytest.mark.parametrize(
    ("command", "output", "rc", "files"), _CHECKED, ids=[c[0] for c in _CHECKED]
)
def test_readme_validate_output_is_real(
    tmp_path: Path, command: str, output: list[str], rc: str | None, files: dict[str, str]
) -> None:
    shutil.copytree(JOBS, tmp_path / "jobs", ignore=shutil.ignore_patterns("*.db*"))
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    args = command.split()[2:]
    proc = subprocess.run(
        [sys.executable, "-m", "dispatcher", "validate", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = [_STAMP.sub("TIME", line) for line in output]
    real = [_STAMP.sub("TIME", line) for line in proc.stdout.splitlines()]
    assert real == shown, proc.stderr
    if rc is not None:
        assert str(proc.returncode) == rc
