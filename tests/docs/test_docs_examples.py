"""Every example of the README and the docs site is real.

- Console blocks marked `<!-- test: run -->` run verbatim, in order, one session per page, in a
  copy of the repository's job files, against the emulator the block itself starts (on a free
  port instead of 8080); each command ends with the exit code shown (0 unless an `echo $?` says
  otherwise) and prints every output line shown (times and durations aside; `...` leaves lines
  out).
- Every other `$ dispatcher validate` that shows output is run and prints exactly that.
- Every other `$ dispatcher ...` line parses with the real command line (its flags and values),
  and every job file a command or a page names exists (in jobs/, or shown on its page).
- YAML and CSV job blocks validate without a problem; config blocks load; the library example runs
  against the emulator.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
import pytest

import dispatcher.app
from dispatcher.cli.commands import main
from dispatcher.config import load_settings
from dispatcher.emulator.server import Emulator, serve
from dispatcher.job.model import load_job, validate_job
from dispatcher.times import BEIJING
from tests.support.docs import ROOT, Block, Step, all_blocks, blocks, normal, pages, steps
from tests.support.e2e import CONFIG_YAML

AT = datetime(2026, 11, 1, 8, 0, tzinfo=BEIJING)  # before the CSV example's absolute expiry
BIN = Path(sys.executable).parent  # where `make`'s install puts the `dispatcher` script
JOB_NAME = re.compile(r"(?<![\w/.-])(jobs/[\w.-]+\.(?:yaml|yml|csv))\b")
ACTIVATE = " .venv/bin/activate"
BLOCKS = all_blocks()


def _is_config(block: Block) -> bool:
    return block.lang == "yaml" and (
        block.body.startswith("# config.yaml\n") or (block.title or "").startswith("config")
    )


def _is_targets(block: Block) -> bool:
    """A titled CSV a YAML job of its page takes its targets from: no job of its own."""
    text = block.page.read_text(encoding="utf-8")
    return block.title is not None and f"targets_csv: {block.title}" in text


def _job_blocks() -> list[Block]:
    return [
        b
        for b in BLOCKS
        if b.lang in ("yaml", "csv")
        and not (_is_config(b) or _is_targets(b))
        and "--8<--" not in b.body
    ]


def _sandbox(directory: Path, page: Path, port: int = 8080) -> Path:
    """The repository's job files and configs, and the files the page shows, in ``directory``."""
    shutil.copytree(ROOT / "jobs", directory / "jobs", ignore=shutil.ignore_patterns("*.db*"))
    shutil.copy(ROOT / "config.example.yaml", directory)
    emulator_config = (ROOT / "config.emulator.yaml").read_text(encoding="utf-8")
    (directory / "config.emulator.yaml").write_text(
        emulator_config.replace(":8080", f":{port}"), encoding="utf-8"
    )
    for block in blocks(page):
        if block.title:
            (directory / block.title).write_text(block.body, encoding="utf-8")
    return directory


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
def test_docs_config_example_loads(tmp_path: Path, block: Block) -> None:
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
    _sandbox(tmp_path, block.page)
    shutil.copy(ROOT / "jobs" / "example-fleet.csv", tmp_path)
    path = tmp_path / (block.title or f"example.{block.lang}")
    path.write_text(block.body, encoding="utf-8")
    problems: list[str] = []
    result = validate_job(load_job(path), at=AT, on_problem=lambda p: problems.append(str(p)))
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
    with click.Context(main, info_name="dispatcher") as ctx:
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
    _sandbox(tmp_path, block.page)
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Session:
    """A shell session a page's run blocks are typed into, one command at a time."""

    def __init__(self, directory: Path, port: int, *, activates: bool) -> None:
        self.directory = directory
        self.port = port
        # A page that activates .venv shows it is needed: until then, no `dispatcher` on PATH.
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN]
        if not activates:
            path.insert(0, str(BIN))
        self.env = {k: v for k, v in os.environ.items() if k not in ("ONENET_API_KEY",)}
        self.env["PATH"] = os.pathsep.join(path)
        self.env["PYTHONPATH"] = str(ROOT)
        self.background: list[subprocess.Popen[str]] = []

    def type(self, step: Step, rc: str | None) -> None:
        """Run one step and check it against the page."""
        command = step.command.replace("8080", str(self.port))
        shown = [normal(line.replace("8080", str(self.port))) for line in step.output]
        if command.endswith(ACTIVATE) and command.split()[0] in (".", "source"):
            assert "VENV   ?= .venv" in (ROOT / "Makefile").read_text(encoding="utf-8")
            assert (BIN / "dispatcher").is_file()
            self.env["PATH"] = f"{BIN}{os.pathsep}{self.env['PATH']}"
        elif command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            self.env[name] = value
        elif command == "kill %1":
            _stop(self.background.pop(0))
        elif command.startswith("make "):
            target = command.split()[1]
            assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M)
        elif command.endswith("&"):
            self._start(command.removesuffix("&"), shown)
        elif command != "echo $?":
            self._run(command, shown, rc or "0")

    def _start(self, command: str, shown: list[str]) -> None:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.background.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once it listens
        assert [normal(first)] == shown[:1], first

    def _run(self, command: str, shown: list[str], rc: str) -> None:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        real = {normal(line) for line in (proc.stdout + proc.stderr).splitlines()}
        expected = [line for line in shown if line != "..."]
        assert [line for line in expected if line not in real] == [], proc.stdout + proc.stderr
        assert str(proc.returncode) == rc, proc.stdout + proc.stderr

    def close(self) -> None:
        """Stop what the page left running."""
        for proc in self.background:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def _session(directory: Path, port: int, *, activates: bool) -> Iterator[_Session]:
    session = _Session(directory, port, activates=activates)
    try:
        yield session
    finally:
        session.close()


_RUN_PAGES = sorted({b.page for b in BLOCKS if b.run})


def test_the_readme_and_the_tutorial_have_runs() -> None:
    names = {page.name for page in _RUN_PAGES}
    assert {"README.md", "tutorial.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", _RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_verbatim_against_the_emulator(tmp_path: Path, page: Path) -> None:
    port = _free_port()
    _sandbox(tmp_path, page, port)
    run = [b for b in blocks(page) if b.run]
    activates = any(s.command.endswith(ACTIVATE) for b in run for s in steps(b))
    with _session(tmp_path, port, activates=activates) as session:
        for block in run:
            listed = steps(block)
            for n, step in enumerate(listed):
                after = listed[n + 1] if n + 1 < len(listed) else None
                rc = after.output[0] if after and after.command == "echo $?" else None
                session.type(step, rc)


def _library_example() -> str:
    (code,) = [b.body for b in BLOCKS if b.lang == "python"]
    return code


async def test_docs_library_example_runs_the_job_against_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    for name in ("example.yaml", "example-fleet.csv"):
        shutil.copy(ROOT / "jobs" / name, tmp_path / "jobs")
    emulator = Emulator()
    async with serve(emulator) as url:
        config = CONFIG_YAML + f"onenet:\n  base_url: {url}\n"
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
        env = {**os.environ, "ONENET_API_KEY": "readme-key", "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _library_example(),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)

    assert proc.returncode == 0, err.decode()
    assert "<Status.ACCEPTED: 'accepted'>: 3000" in out.decode()
    assert len(emulator.accepted()) == 3000
    assert (tmp_path / "jobs" / "example.yaml.ledger.db").exists()


def test_docs_library_example_is_the_one_in_the_use_cases_docstring() -> None:
    indented = "".join(f"    {line}\n" for line in _library_example().strip().splitlines())
    assert indented in (dispatcher.app.__doc__ or "")


def test_the_module_map_in_the_docs_is_the_one_the_code_makes() -> None:
    hook_path = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "modules.py"
    spec = importlib.util.spec_from_file_location("docs_modules_hook", hook_path)
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook_path.parents[1] / "reference" / "modules.md"
    text = page.read_text(encoding="utf-8")
    # Regenerate with: .venv/bin/python docs/hooks/modules.py
    assert hook.with_module_map(text) == text, "the module map is out of date"
    assert "`cli/cancel_command.py`" in text
