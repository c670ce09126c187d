"""The docs' runs are real: console blocks marked `<!-- test: run -->` run verbatim, in order, one
session per page, in a copy of the repository's job files, against the emulator the block itself
starts (on a free port instead of 8080); each command ends with the exit code shown (0 unless an
`echo $?` says otherwise) and prints every output line shown (times and durations aside; `...`
leaves lines out). The library example runs against the emulator, and the module map in the docs
is the one the code makes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import dispatcher.app
from dispatcher.emulator.server import Emulator, serve
from tests.support.docs import BLOCKS, ROOT, Step, blocks, normal, sandbox, steps
from tests.support.e2e import CONFIG_YAML

BIN = Path(sys.executable).parent  # where `make`'s install puts the `dispatcher` script
ACTIVATE = " .venv/bin/activate"


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
            _check_make(command.split()[1], shown)
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


def _check_make(target: str, shown: list[str]) -> None:
    """A make step is not run (it would make a second .venv): its target exists, and the lines
    the page shows are the ones its recipe prints."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^{target}:", makefile, re.M), target
    for line in shown:
        if line != "...":
            assert line.replace(".venv", "$(VENV)") in makefile, line


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


def _first_run(page: Path) -> list[str]:
    """The commands of a page's run blocks, in order."""
    return [step.command for block in blocks(page) if block.run for step in steps(block)]


def test_the_readme_first_run_starts_from_a_fresh_clone() -> None:
    # Verbatim on a fresh clone: the command installed and put on PATH before its first use,
    # and the emulator's devices waking by default (the run's commands get delivered).
    commands = _first_run(ROOT / "README.md")
    assert commands[:2] == ["make install", ". .venv/bin/activate"]
    first_use = next(n for n, c in enumerate(commands) if c.startswith("dispatcher "))
    assert first_use == 2
    (emulator,) = [c for c in commands if c.startswith("dispatcher emulator")]
    assert "--wake-every" not in emulator
    assert any(c.startswith("dispatcher status") and "--watch" in c for c in commands)


def test_the_tutorial_follows_the_readme_first_run() -> None:
    readme = _first_run(ROOT / "README.md")
    tutorial = iter(_first_run(ROOT / "docs" / "tutorial.md"))
    # Each of the README's commands comes in the tutorial, in the same order (the tutorial
    # adds its own between them).
    missing = [c for c in readme if c not in tutorial]
    assert missing == []


@pytest.mark.slow
@pytest.mark.parametrize("page", _RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_verbatim_against_the_emulator(tmp_path: Path, page: Path) -> None:
    port = _free_port()
    sandbox(tmp_path, page, port)
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
    lines = _library_example().strip().splitlines()
    indented = "".join(f"    {line}\n" if line else "\n" for line in lines)
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
