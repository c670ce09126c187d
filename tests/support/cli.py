"""The command line as tests run it: in-process with click's CliRunner, and as a real
``python -m dispatcher`` process (waited for, or started in the background)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from dispatcher.cli.commands import main
from dispatcher.emulator.server import Emulator

ROOT = Path(__file__).resolve().parents[2]
SECRET = "SECRET-KEY-123456"
TIMEOUT_S = 120.0


def invoke(*args: str | Path, key: str | None = SECRET) -> Result:
    """The CLI in-process; ONENET_API_KEY set to ``key`` (None: unset)."""
    result = CliRunner().invoke(main, [str(a) for a in args], env={"ONENET_API_KEY": key})
    # Every exit goes through sys.exit or click's usage handling, never an uncaught exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@dataclass(frozen=True)
class Done:
    """A finished dispatcher process."""

    code: int
    stdout: str
    stderr: str


def process_env(key: str | None = SECRET, **extra: str) -> dict[str, str]:
    """This environment for a dispatcher process: the package importable, plain output,
    ONENET_API_KEY set to ``key`` (None: unset), and ``extra`` variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("ONENET_API_KEY", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TERM"] = "dumb"
    if key is not None:
        env["ONENET_API_KEY"] = key
    env.update(extra)
    return env


def dispatcher_process(*args: str | Path, cwd: Path, key: str | None = SECRET) -> Done:
    """``python -m dispatcher ARGS`` as a real process (for commands that need no server)."""
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", *map(str, args)],
        cwd=cwd,
        env=process_env(key),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


@asynccontextmanager
async def started(
    *args: str | Path,
    cwd: Path,
    key: str | None = SECRET,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m dispatcher ARGS`` started in the background while this loop serves an
    emulator, ``env`` added to its environment (killed on leaving if still running)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dispatcher",
        *map(str, args),
        cwd=cwd,
        env=process_env(key, **(env or {})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def finished(proc: asyncio.subprocess.Process, within: float = TIMEOUT_S) -> Done:
    """What a started process said and its exit code, once it ends."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def dispatcher_async(
    *args: str | Path,
    cwd: Path,
    key: str | None = SECRET,
    env: Mapping[str, str] | None = None,
    within: float = TIMEOUT_S,
) -> Done:
    """``python -m dispatcher ARGS`` as a real process while this loop serves an emulator."""
    async with started(*args, cwd=cwd, key=key, env=env) as proc:
        return await finished(proc, within)


async def online(url: str, directory: Path, *args: str | Path) -> Done:
    """``dispatcher ARGS`` in ``directory`` with its config.yaml, against the OneNET at ``url``."""
    return await dispatcher_async(
        *args, "--config", "config.yaml", "--base-url", url, cwd=directory
    )


def nothing_sent(emulator: Emulator) -> bool:
    """Whether the emulator got no command and no read."""
    stats = emulator.stats()
    return stats["posts"] == 0 and stats["reads"] == 0 and emulator.arrivals() == []


def no_traceback(*texts: str) -> bool:
    """Whether none of ``texts`` holds a traceback."""
    return all("Traceback" not in text for text in texts)


class LedgerHolder:
    """Another process holding a ledger open for writing (its lock, and an open write
    transaction), as a run in progress does; released on exit."""

    SCRIPT = (
        "import sqlite3, sys\n"
        "from pathlib import Path\n"
        "from dispatcher.ledger.sqlite import Ledger\n"
        "path = Path(sys.argv[1])\n"
        "ledger = Ledger.open(path)\n"
        "writer = sqlite3.connect(path, isolation_level=None)\n"
        "writer.execute('BEGIN IMMEDIATE')\n"
        "writer.execute(\"UPDATE commands SET error = 'being written'\")\n"
        "print('holding', flush=True)\n"
        "sys.stdin.readline()\n"
        "writer.execute('ROLLBACK')\n"
        "writer.close()\n"
        "ledger.close()\n"
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LedgerHolder:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(self.path)],
            env=process_env(None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "holding\n"  # waits until it holds the ledger
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        assert self.proc.returncode == 0
