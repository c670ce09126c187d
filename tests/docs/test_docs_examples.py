"""Every example of the README and the docs site is real (the runs: test_docs_runs.py).

- Every `$ dispatcher validate` that shows output (outside the runs) is run and prints exactly that.
- Every other `$ dispatcher ...` line parses with the real command line (its flags and values),
  and every job file a command or a page names exists (in jobs/, or shown on its page).
- YAML and CSV job blocks validate without a problem; config blocks load.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import click
import pytest

from dispatcher.cli.commands import main
from dispatcher.config import load_settings
from dispatcher.job.model import load_job, validate_job
from dispatcher.job.query import SAMPLE_IMEI
from dispatcher.times import BEIJING
from tests.support.docs import BLOCKS, ROOT, Block, Step, blocks, normal, pages, sandbox, steps

AT = datetime(2026, 11, 1, 8, 0, tzinfo=BEIJING)  # before the CSV example's absolute expiry
JOB_NAME = re.compile(r"(?<![\w/.-])(jobs/[\w.-]+\.(?:yaml|yml|csv))\b")


def _is_config(block: Block) -> bool:
    return block.lang == "yaml" and (
        block.body.startswith("# config.yaml\n") or (block.title or "").startswith("config")
    )


def _is_targets(block: Block) -> bool:
    """A titled CSV a YAML job of its page takes its targets from: no job of its own."""
    text = block.page.read_text(encoding="utf-8")
    return block.title is not None and f"targets_csv: {block.title}" in text


def _is_manifest(block: Block) -> bool:
    """A Kubernetes manifest (a CronJob that runs a job): neither a job nor a config."""
    return block.lang == "yaml" and block.body.startswith("apiVersion:")


def _job_blocks() -> list[Block]:
    return [
        b
        for b in BLOCKS
        if b.lang in ("yaml", "csv")
        and not (_is_config(b) or _is_targets(b) or _is_manifest(b))
        and "--8<--" not in b.body
    ]


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(set(links)) >= 15
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_the_docs_show_job_files_of_each_kind_and_configs() -> None:
    assert {b.lang for b in _job_blocks()} == {"yaml", "csv"}
    assert len([b for b in BLOCKS if _is_config(b)]) >= 2


@pytest.mark.parametrize("block", [b for b in BLOCKS if _is_config(b)], ids=lambda b: b.where)
def test_docs_config_example_loads(
    tmp_path: Path, block: Block, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in re.findall(r"\$\{(\w+)\}", block.body):  # notify:'s variables, read at load
        monkeypatch.setenv(name, "set")
    path = tmp_path / "config.yaml"
    path.write_text(block.body, encoding="utf-8")
    settings = load_settings(path)
    for name in settings.products:
        settings.for_product(name)  # each product's settings check out


def test_the_shipped_configs_load() -> None:
    assert load_settings(ROOT / "config.example.yaml").onenet.base_url.startswith("https://")
    emulator = load_settings(ROOT / "config.emulator.yaml")
    assert emulator.onenet.base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize("block", _job_blocks(), ids=lambda b: b.where)
def test_docs_example_job_validates_without_warnings(tmp_path: Path, block: Block) -> None:
    sandbox(tmp_path, block.page)
    shutil.copy(ROOT / "jobs" / "example-fleet.csv", tmp_path)
    path = tmp_path / (block.title or f"example.{block.lang}")
    path.write_text(block.body, encoding="utf-8")
    problems: list[str] = []
    job = load_job(path)
    if job.query is not None:  # its devices come at run time: checked on a sample, as validate does
        job = dataclasses.replace(job, queried=(SAMPLE_IMEI,))
    result = validate_job(job, at=AT, on_problem=lambda p: problems.append(str(p)))
    assert problems == []
    assert result.ok and result.commands >= 2


def test_docs_include_files_that_exist() -> None:
    included = [
        line.split('"')[1]
        for b in BLOCKS
        for line in b.body.splitlines()
        if line.strip().startswith("--8<--")
    ]
    assert "config.example.yaml" in included
    assert [name for name in included if not (ROOT / name).is_file()] == []


def _dispatcher_args(command: str) -> list[str] | None:
    """The arguments of the `dispatcher` call in a shell line, if it has one."""
    first = re.split(r"\s(?:\||&&|>>?|;)\s|\s&$", command)[0]
    if not re.match(r"(?:[A-Z_]+=\S*\s+)*dispatcher\b", first):
        return None
    words = shlex.split(first, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    return words[1:] if words[:1] == ["dispatcher"] else None


def _console_commands() -> list[tuple[Block, str]]:
    found = []
    for block in BLOCKS:
        for step in steps(block) if block.lang == "console" else []:
            if _dispatcher_args(step.command) is not None:
                found.append((block, step.command))
    for block in BLOCKS:  # a crontab line or a systemd unit's ExecStart
        for line in block.body.splitlines() if block.lang in ("", "ini") else []:
            if "dispatcher run" in line:
                found.append((block, line[line.index("dispatcher run") :]))
    return found


_COMMANDS = _console_commands()


@pytest.mark.parametrize(
    ("block", "command"), _COMMANDS, ids=[f"{b.where}: {c}" for b, c in _COMMANDS]
)
def test_docs_dispatcher_command_parses(block: Block, command: str) -> None:
    args = _dispatcher_args(command)
    assert args is not None
    # With the group's settings, as `dispatcher` makes it: click keeps the first help option it
    # makes for a command, and one made here without "-h" would leave `COMMAND -h` refused.
    with click.Context(main, info_name="dispatcher", **main.context_settings) as ctx:
        sub = main.get_command(ctx, args[0])
        assert sub is not None, command
        try:
            sub.make_context(args[0], args[1:], parent=ctx).close()
        except click.ClickException as exc:
            pytest.fail(f"{block.where}: {command}: {exc.format_message()}")


def _shown_files(page: Path) -> set[str]:
    """The files a page shows (a `$ cat`, a titled block) or has a command write (`-o`)."""
    names = {b.title for b in blocks(page) if b.title}
    for block in blocks(page):
        for step in steps(block) if block.lang == "console" else []:
            names.update(re.findall(r"^cat (\S+)", step.command))
            names.update(re.findall(r"(?:-o|--output|>) (\S+)", step.command))
            names.update(re.findall(r"^error: (\S+): no such file", "\n".join(step.output), re.M))
    return names


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_job_file_a_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    shown = _shown_files(page)
    named = set(JOB_NAME.findall(text))
    for block in blocks(page):
        for step in steps(block) if block.lang == "console" else []:
            args = _dispatcher_args(step.command) or []
            named.update(a for a in args if re.search(r"\.(?:yaml|yml|csv)$", a))
    missing = {
        name
        for name in named
        if name not in shown
        and not (ROOT / name).is_file()
        and not (ROOT / "jobs" / name).is_file()
        and not name.startswith(("config.", "report.", "bench-out/"))
    }
    assert missing == set()


def _validate_steps() -> list[tuple[Block, Step, str | None]]:
    """Each `$ dispatcher validate` showing output outside a run block, with the exit code an
    `echo $?` after it shows."""
    found = []
    for block in BLOCKS:
        if block.lang != "console" or block.run:
            continue
        listed = steps(block)
        for n, step in enumerate(listed):
            if step.command.startswith("dispatcher validate ") and step.output:
                after = listed[n + 1] if n + 1 < len(listed) else None
                rc = after.output[0] if after and after.command == "echo $?" else None
                found.append((block, step, rc))
    return found


def test_the_docs_show_validate_outputs_to_check() -> None:
    assert len(_validate_steps()) >= 6


@pytest.mark.parametrize(
    ("block", "step", "rc"), _validate_steps(), ids=[s.command for _, s, _ in _validate_steps()]
)
def test_docs_validate_output_is_real(
    tmp_path: Path, block: Block, step: Step, rc: str | None
) -> None:
    sandbox(tmp_path, block.page)
    listed = steps(block)
    for earlier in listed[: listed.index(step)]:
        if earlier.command.startswith("cat "):
            content = "\n".join(earlier.output) + "\n"
            (tmp_path / earlier.command[4:].strip()).write_text(content, encoding="utf-8")
    args = shlex.split(step.command)[2:]
    proc = subprocess.run(
        [sys.executable, "-m", "dispatcher", "validate", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [normal(line) for line in proc.stdout.splitlines()] == [
        normal(line) for line in step.output
    ], proc.stderr
    if rc is not None:
        assert str(proc.returncode) == rc
