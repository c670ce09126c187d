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

__all__ = ["FULL_HINT", "PID_SUFFIX", "created_here", "lock", "not_a_ledger", "os_error", "unlock"]

PID_SUFFIX: Final = ".lock"  # the holder's pid is written to <file>.lock
_SQLITE_HEADER: Final = b"SQLite format 3\x00"  # how every SQLite database file begins
FULL_HINT: Final = (
    "the disk (or the ledger file's size limit) is full: free space, then run the same command"
    " again: commands marked in flight are settled first"
)
# Locks this process holds, by (device, inode). Closing *any* descriptor of a file drops every
# POSIX lock the process holds on it, SQLite's included (POSIX.1 fcntl), so a second open of a held
# ledger is refused before a descriptor of it is opened.
_HELD: dict[tuple[int, int], int] = {}
# The held files this process created itself (by (device, inode)): only such a file may be made a
# new ledger; one that existed before (an empty file, say, given by mistake) never is.
_CREATED: set[tuple[int, int]] = set()


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
    fd, created = _open_private(path, real)
    # A file a dispatcher created and died before it wrote the schema (killed at that moment):
    # its pid file is beside it, and its writer is gone. It is made the ledger it was to be.
    created = created or _orphaned(real)
    if not created and os.fstat(fd).st_size == 0:
        # Refused before the lock's pid file is written beside it: nothing is left behind.
        os.close(fd)
        raise not_a_ledger(path, empty=True)
    if not created and os.pread(fd, len(_SQLITE_HEADER), 0) != _SQLITE_HEADER:
        # Any other file (a job file given by mistake, say): refused as it is, with no
        # ``.lock`` written beside it.
        os.close(fd)
        raise LedgerError(f"{path} is not a dispatcher ledger (not an SQLite database)")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        st = os.fstat(fd)
        os.close(fd)
        raise _locked(path, real, _holder(real, st)) from exc
    st = os.fstat(fd)
    _HELD[st.st_dev, st.st_ino] = fd
    if created:
        _CREATED.add((st.st_dev, st.st_ino))
    try:
        _write_pid(_pid_file(real))
    except BaseException:
        unlock(fd)
        raise
    return fd


def unlock(fd: int) -> None:
    """Release a lock taken by :func:`lock` (closing its descriptor)."""
    for ident, held in list(_HELD.items()):
        if held == fd:
            del _HELD[ident]
            _CREATED.discard(ident)
    os.close(fd)


def created_here(path: Path) -> bool:
    """Whether the file at ``path`` was created by a :func:`lock` of this process still held."""
    try:
        st = os.stat(path.resolve())
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in _CREATED


def not_a_ledger(path: Path, *, empty: bool) -> LedgerError:
    """The error for an existing file that is not a ledger yet: it is never made into one."""
    what = "empty" if empty else "an SQLite database without tables"
    return LedgerError(
        f"{path} is {what}, not a ledger: give the ledger a run wrote, or a path that does not"
        " exist yet for a new one (if a run was stopped as it created this file, delete it)"
    )


def _open_private(path: Path, real: Path) -> tuple[int, bool]:
    """Open the database file read-write, creating it owner-only (0600 whatever the umask);
    whether it was created."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        try:
            fd = os.open(real, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return os.open(real, flags), False
    except OSError as exc:
        raise os_error(path, "open the ledger", exc) from exc
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd, True


def _pid_file(real: Path) -> Path:
    return real.with_name(real.name + PID_SUFFIX)


def _orphaned(real: Path) -> bool:
    """Whether ``real`` has a ``.lock`` pid file of a process that is gone (ours: a dispatcher
    wrote it as it opened or created the file)."""
    try:
        pid = int(_pid_file(real).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return False
    return pid != os.getpid() and not process_lives(pid)


def process_lives(pid: int) -> bool:
    """Whether a process ``pid`` lives on this host (another user's counts: it cannot be
    signalled, but it is there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's
        return True
    return True


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
        text = _pid_file(real).read_text(errors="replace").strip()
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
