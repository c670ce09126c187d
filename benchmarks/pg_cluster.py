"""A local PostgreSQL cluster for the ledger measurement, durable as in production.

Started by the benchmark itself on a unix socket in a short directory under /tmp (a socket's path
is at most 107 bytes), with ``fsync`` and ``synchronous_commit`` on and full page writes (unlike
the tests' cluster, which turns fsync off): a commit returns once its WAL is on disk, as a team's
server would do it. The server programs run as user ``postgres`` when we are root (initdb and
postgres refuse root). Stopped and removed on exit.

The server's CPU is read from /proc: the postmaster's own time and that of the children it has
reaped (``cutime``/``cstime``: backends that ended), plus each live child's. The difference of two
readings is what the cluster spent in between, whichever process spent it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.procs import ChildFailed

__all__ = ["DATABASE", "Cluster", "ClusterFailed", "bindir", "missing"]

DATABASE = "dispatcher_bench"
_TICKS = os.sysconf("SC_CLK_TCK")
# Production durability: every commit waits for its WAL to be flushed to disk.
_DURABLE = (
    "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_sync_method=fdatasync"
)


class ClusterFailed(ChildFailed):
    """The cluster did not start (or a server program failed): the measurement failed."""


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout, else PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    found = bindir()
    if found is None:
        return "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on PATH)"
    for program in ("pg_ctl", "postgres", "psql"):
        if not (found / program).exists():
            return f"PostgreSQL's {program} is missing from {found}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root, but runuser (to run PostgreSQL as user postgres) is missing"
    return None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _run(argv: list[str], *, as_owner: bool = False) -> str:
    if as_owner and os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    try:
        done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        raise ClusterFailed(f"{' '.join(argv)}: exit {exc.returncode}: {exc.stderr}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClusterFailed(f"{' '.join(argv)}: no exit within {exc.timeout:.0f} s") from exc
    return done.stdout


class Cluster:
    """A fresh cluster with one database (``DATABASE``); a context manager."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path()
        self.version = ""

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    def url(self, job: str) -> str:
        """The ledger address of job ``job`` in the cluster's database, over the socket."""
        return f"postgresql://postgres@/{DATABASE}?host={self.root}#{job}"

    def __enter__(self) -> Cluster:
        self.root = Path(tempfile.mkdtemp(prefix="dpgb", dir="/tmp"))
        try:
            if os.geteuid() == 0:
                shutil.chown(self.root, "postgres", "postgres")
            initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust"]
            initdb += ["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"]
            _run(initdb, as_owner=True)
            options = f"-k {self.root} -c listen_addresses='' {_DURABLE}"
            start = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w"]
            start += ["-l", str(self.root / "log"), "-o", options, "start"]
            _run(start, as_owner=True)
            self.psql(f"CREATE DATABASE {DATABASE}")
            self.version = self.psql("SHOW server_version")
            found = self.psql(
                "SELECT current_setting('fsync') || current_setting('synchronous_commit')"
            )
            if found != "onon":
                raise ClusterFailed(
                    f"the cluster is not durable (fsync, synchronous_commit: {found})"
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def psql(self, sql: str) -> str:
        """Run ``sql`` in the cluster's database (``postgres`` for CREATE DATABASE); its output."""
        database = "postgres" if sql.startswith("CREATE DATABASE") else DATABASE
        argv = [str(self.bin_dir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.root), "-U", "postgres", "-d", database, "-c", sql]
        return _run(argv).strip()

    def cpu_s(self) -> float:
        """CPU seconds the cluster's processes have used so far (module docstring)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        ticks = 0
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat, encoding="ascii", errors="replace") as f:
                    text = f.read()
            except OSError:  # ended since the listing
                continue
            pid = int(stat.split("/")[2])
            # After the command name (which may hold spaces): state, ppid, ... (proc(5))
            fields = text[text.rindex(")") + 2 :].split()
            ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
            if pid == postmaster:
                ticks += utime + stime + cutime + cstime
            elif ppid == postmaster:
                ticks += utime + stime
        return ticks / _TICKS

    def stop(self) -> None:
        """Stop the server (fast: sessions ended) and remove its directory; idempotent."""
        if self.root == Path():
            return
        if (self.data / "postmaster.pid").exists():
            stop = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"]
            try:
                _run(stop, as_owner=True)
            except ClusterFailed:
                immediate = [*stop[:-3], "-m", "immediate", "stop"]
                with contextlib.suppress(ClusterFailed):  # removed below all the same
                    _run(immediate, as_owner=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = Path()
