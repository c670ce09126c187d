"""Child processes measured from outside, and the emulator in a process of its own.

Every contender runs as a child process so that its cost is measured the same way: wall time from
start to exit, CPU (user + sys, every thread) and peak RSS from ``os.wait4``'s resource usage of
that one child. Output goes to log files, never pipes, so a chatty child cannot block.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["REPO", "ChildFailed", "EmulatorProcess", "Measured", "child_env", "measure", "tail"]

REPO = Path(__file__).resolve().parents[1]
_TAIL_LINES = 15


class ChildFailed(RuntimeError):
    """A measured child exited badly or ran out of time; the message ends with its stderr tail."""


@dataclass(frozen=True, slots=True)
class Measured:
    """What one child process cost."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    cpu_s: float  # user + sys of the child and its threads
    sys_s: float  # of which in the kernel (sockets, disk syncs)
    peak_rss_mb: float  # ru_maxrss, MiB
    stdout: str
    stderr: str


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (a fresh clone runs as is)."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) if not path else f"{REPO}{os.pathsep}{path}"
    env.update(extra or {})
    return env


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    """The last few lines of ``text``, indented, for an error message."""
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join("    " + line for line in kept) if kept else "    (nothing)"


def measure(
    argv: Sequence[str],
    *,
    logs: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Measured:
    """Run ``argv`` to its end; its output goes to ``logs``.out/.err. ChildFailed on trouble."""
    out_path, err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=cwd)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    name = " ".join(argv[1:4])
    if wall >= timeout and proc.returncode < 0:
        raise ChildFailed(f"{name}: no exit within {timeout:.0f} s; stderr ends:\n{tail(stderr)}")
    if check and proc.returncode != 0:
        raise ChildFailed(f"{name}: exit code {proc.returncode}; stderr ends:\n{tail(stderr)}")
    return Measured(
        tuple(argv),
        proc.returncode,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_stime,
        usage.ru_maxrss / 1024,  # KiB on Linux
        stdout,
        stderr,
    )


class EmulatorProcess:
    """``python -m benchmarks.serve`` on a free loopback port: started, checked, always stopped.

    Use as a context manager; after it exits, ``cpu_s`` holds the server's CPU seconds.
    """

    def __init__(
        self,
        *,
        keep_records: bool = True,
        logs: Path,
        startup_timeout: float = 30.0,
        args: Sequence[str] = (),
    ):
        self.keep_records = keep_records
        self.args = tuple(args)  # more of benchmarks.serve's flags: --fleet N, --wake-every S
        self.logs = logs
        self.startup_timeout = startup_timeout
        self.url = ""
        self.cpu_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._err: Any = None

    def __enter__(self) -> EmulatorProcess:
        argv = [sys.executable, "-m", "benchmarks.serve"]
        if not self.keep_records:
            argv.append("--no-records")
        argv += self.args
        self._err = open(self.logs.with_suffix(".err"), "wb")  # closed in stop()
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._err, env=child_env()
        )
        try:
            self.url = self._read_url()
            self._wait_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _read_url(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        ready, _, _ = select.select([stdout], [], [], self.startup_timeout)
        line = stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            err = self.logs.with_suffix(".err").read_text(encoding="utf-8", errors="replace")
            raise ChildFailed(f"the emulator did not start; stderr ends:\n{tail(err)}")
        return line

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise ChildFailed(f"the emulator at {self.url} does not answer") from None
                time.sleep(0.05)

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """GET /_emulator/stats."""
        found: dict[str, Any] = self._get("/_emulator/stats")
        return found

    def devices(self) -> list[dict[str, Any]]:
        """GET /_emulator/devices: every registered device (tags, online, firmware, ...)."""
        found: list[dict[str, Any]] = self._get("/_emulator/devices")["devices"]
        return found

    def arrivals(self) -> list[float]:
        """GET /_emulator/arrivals: monotonic arrival time of each POST."""
        found: list[float] = self._get("/_emulator/arrivals")
        return found

    def put_faults(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /_emulator/faults: change some fault settings now; returns them all."""
        request = urllib.request.Request(
            self.url + "/_emulator/faults",
            data=json.dumps(dict(changes)).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            found: dict[str, Any] = json.loads(resp.read())
        return found

    def stop(self) -> None:
        """Interrupt the server (it exits cleanly on SIGINT), reap it, keep its CPU time."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            timer = threading.Timer(5.0, proc.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = usage.ru_utime + usage.ru_stime
            except ChildProcessError:  # already reaped by poll()
                pass
            finally:
                timer.cancel()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._err is not None:
            self._err.close()
            self._err = None
