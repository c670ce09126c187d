"""A throwaway PostgreSQL cluster for the tests: started once per test process (each xdist worker
has its own), on a unix socket in a short directory under /tmp, stopped when the process ends.

:func:`server` starts it on first use and skips the test when this machine has no PostgreSQL
binaries, unless ``DISPATCHER_REQUIRE_POSTGRESQL=1`` (set by ``.ci/run``), which makes that a
failure: CI never skips these tests silently. :func:`new_database` gives a test a database of its
own; :func:`job_url` a job of its own in the shared test database (one database, many jobs, as a
team's ledger is).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE = os.environ.get("DISPATCHER_REQUIRE_POSTGRESQL") == "1"
SHARED_DB = "dispatcher_test"
_names = itertools.count(1)


@dataclass(frozen=True)
class Server:
    """A running cluster: its socket directory and data directory."""

    socket_dir: Path
    data: Path
    bindir: Path

    def url(self, database: str = SHARED_DB) -> str:
        """The URL of ``database`` over the socket, as user postgres (trust: no password)."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql; its output."""
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-U", "postgres", "-d", database, "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout.strip()

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on the cluster (as its owner)."""
        _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", *args])

    def restart(self) -> None:
        """Restart the server (a fast shutdown: every session is ended)."""
        # Logging to the file: a server writing to pg_ctl's captured output would keep that pipe
        # open, and pg_ctl's caller would wait for its end forever.
        log = str(self.socket_dir / "log")
        self.pg_ctl("-m", "fast", "-l", log, "restart", "-o", self._options())

    def _options(self) -> str:
        return (
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off"
            " -c full_page_writes=off -c max_connections=200"
        )


_server: Server | None = None


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout, or PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _as_owner(argv: list[str]) -> None:
    """Run a server program: as user postgres when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, text=True)


def server() -> Server:
    """The cluster of this test process, started on first use (module docstring)."""
    global _server
    if _server is None:
        _server = _start()
        atexit.register(_stop, _server)
    return _server


@contextlib.contextmanager
def private_server() -> Iterator[Server]:
    """A cluster of the test's own (one it may restart or stop), stopped after."""
    made = _start()
    try:
        yield made
    finally:
        _stop(made)


def _start() -> Server:
    """A new cluster, started, with the shared test database."""
    bin_dir = bindir()
    if bin_dir is None:
        if REQUIRE:
            pytest.fail("DISPATCHER_REQUIRE_POSTGRESQL=1 but no PostgreSQL binaries are installed")
        pytest.skip("PostgreSQL is not installed (initdb not found)")
    root = Path(tempfile.mkdtemp(prefix="dpg", dir="/tmp"))  # a socket path is at most 107 bytes
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
               "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"])  # fmt: skip
    made = Server(root, data, bin_dir)
    made.pg_ctl("-l", str(root / "log"), "-o", made._options(), "start")
    made.psql(f"CREATE DATABASE {SHARED_DB}")
    return made


def _stop(made: Server) -> None:
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        made.pg_ctl("-m", "immediate", "stop")
    shutil.rmtree(made.socket_dir, ignore_errors=True)


def new_database() -> str:
    """A new, empty database of its own; its URL."""
    made = server()
    name = f"t{os.getpid()}_{next(_names)}"
    made.psql(f"CREATE DATABASE {name} TEMPLATE template0")
    return made.url(name)


def job_url(job: str) -> str:
    """The URL of job ``job`` in the shared test database."""
    return f"{server().url()}#{job}"
