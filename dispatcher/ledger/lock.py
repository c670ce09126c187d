"""The single-writer lock of a ledger: an exclusive ``flock`` on the database file itself.

The path is resolved (symlinks followed) first, and a flock belongs to the open file description of
the file, not to its name: another name for the same file (a symlink, a hard link) meets the same
lock. On Linux a flock and SQLite's own ``fcntl`` locks do not interact. The holder's pid is written
to ``<file>.lock`` for the message a second opener gets.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Final

from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger.records import LedgerFullError

__all__ = ["FULL_HINT", "lock", "os_error", "unlock"]

FULL_HINT: Final = (
    "the disk (or the ledger file's size limit) is full: free space, then run the same command"
    " again: commands marked in flight are settled first"
)
# Locks this process holds, by (device, inode). Closing *any* descriptor of a file drops every
# POSIX lock the process holds on it, SQLite's included (POSIX.1 fcntl), so a second open of a held
# ledger is refused before a descriptor of it is opened.
_HELD: dict[tuple[int, int], int] = {}


def lock(path: Path) -> int:
    """Take the exclusive, non-blocking flock on the resolved database file; return the descriptor.

    The file is created 0600 if it is missing; the holder's pid goes to ``<file>.lock`` for the
    message a second opener gets. Release it with :func:`unlock` (or by the process dying).
    """
    real = path.resolve()
    if not real.parent.is_dir():
        raise LedgerError(f"cannot open the ledger {path}: directory {real.parent} does not exist")
    with contextlib.suppress(OSError):
        st = os.stat(real)
        if (st.st_dev, st.st_ino) in _HELD:
            raise _locked(path, real, os.getpid())
    fd = _open_private(path, real)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        st = os.fstat(fd)
        os.close(fd)
        raise _locked(path, real, _holder(real, st)) from exc
    st = os.fstat(fd)
    _HELD[st.st_dev, st.st_ino] = fd
    try:
        _write_pid(real.with_name(real.name + ".lock"))
    except BaseException:
        unlock(fd)
        raise
    return fd


def unlock(fd: int) -> None:
    """Release a lock taken by :func:`lock` (closing its descriptor)."""
    for ident, held in list(_HELD.items()):
        if held == fd:
            del _HELD[ident]
    os.close(fd)


def _open_private(path: Path, real: Path) -> int:
    """Open the database file read-write, creating it owner-only (0600 whatever the umask)."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        try:
            fd = os.open(real, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return os.open(real, flags)
    except OSError as exc:
        raise os_error(path, "open the ledger", exc) from exc
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_pid(pid_path: Path) -> None:
    try:
        fd = os.open(pid_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise os_error(pid_path, "write the ledger's lock holder", exc) from exc
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        raise os_error(pid_path, "write the ledger's lock holder", exc) from exc
    finally:
        os.close(fd)


def _holder(real: Path, st: os.stat_result) -> int | None:
    """The pid holding the flock: from /proc/locks (any name of the file), else ``<file>.lock``."""
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode:
                return int(fields[4])
    with contextlib.suppress(OSError):
        text = real.with_name(real.name + ".lock").read_text(errors="replace").strip()
        if text.isdigit():
            return int(text)
    return None


def _locked(path: Path, real: Path, pid: int | None) -> LedgerLockedError:
    who = "" if pid is None else f" (process {pid})"
    alias = "" if real == path.absolute() else f" (the file {real})"
    return LedgerLockedError(
        f"ledger {path}{alias} is in use by another dispatcher{who}: it is locked;"
        " wait for that run to end (or stop it), then try again"
    )


def os_error(path: Path, what: str, exc: OSError) -> LedgerError:
    """The LedgerError for a failed file call; LedgerFullError when the disk or a quota is full."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return LedgerFullError(f"{path}: cannot {what}: {FULL_HINT}")
    return LedgerError(f"cannot {what} {path}: {exc.strerror}")
