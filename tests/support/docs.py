"""Reading the README and the docs pages as the tests of their examples need them: fenced blocks,
console steps, and the files a page shows."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUN_MARK = "<!-- test: run -->"  # the console block after it runs, in order, on its page
_FENCE = re.compile(r"^```(\w*)(?:\s+title=\"([^\"]+)\")?\s*$")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_SECONDS = re.compile(r"\bin \d+(?:\.\d+)?s\b")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page: its language, its title (a file name), its text, and whether
    the page marks it to run."""

    page: Path
    line: int
    lang: str
    title: str | None
    body: str
    run: bool

    @property
    def where(self) -> str:
        """The page and line, for test ids and messages."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Step:
    """One `$ ` command of a console block and the output lines shown after it."""

    command: str
    output: tuple[str, ...]


def pages() -> list[Path]:
    """The README and every page of the docs site."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        match = _FENCE.match(lines[n])
        if match is None:
            n += 1
            continue
        start = n
        end = next(i for i in range(n + 1, len(lines)) if lines[i].startswith("```"))
        run = start > 0 and lines[start - 1].strip() == RUN_MARK
        body = "\n".join(lines[start + 1 : end]) + "\n"
        found.append(Block(page, start + 1, match[1], match[2], body, run))
        n = end + 1
    return found


def all_blocks() -> list[Block]:
    """Every fenced block of every page."""
    return [block for page in pages() for block in blocks(page)]


def steps(block: Block) -> list[Step]:
    """A console block's commands, each with the output lines shown after it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            found.append((line[2:].strip(), []))
        elif found:
            found[-1][1].append(line)
    return [Step(command, tuple(output)) for command, output in found]


def normal(line: str) -> str:
    """A line of output with what changes from run to run (times, durations) made constant."""
    return _SECONDS.sub("in Ns", _STAMP.sub("TIME", line.rstrip()))


BLOCKS = all_blocks()  # every example block, read once


def sandbox(directory: Path, page: Path, port: int = 8080) -> Path:
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
