"""The SQLite ledger's files on disk: the database and the side files kept beside it.

SQLite keeps ``<ledger>-wal``, ``<ledger>-shm`` (and, outside WAL mode, ``<ledger>-journal``)
beside a database, and the lock writes its holder's pid to ``<ledger>.lock`` (lock.py). Whoever
must delete a ledger, or must not write over one, asks here instead of knowing those names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from dispatcher.ledger.lock import PID_SUFFIX

__all__ = ["SIDE_FILES", "discard", "is_database", "side_file_of", "side_files"]

# The suffixes of the files SQLite (WAL, shared memory, rollback journal) and the lock keep.
SIDE_FILES: Final = ("-wal", "-shm", "-journal", PID_SUFFIX)
_HEADER: Final = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


def side_files(path: Path) -> tuple[Path, ...]:
    """The side files a ledger at ``path`` may have beside it (whether they exist or not)."""
    return tuple(path.with_name(path.name + suffix) for suffix in SIDE_FILES)


def discard(path: Path) -> None:
    """Delete the (closed) ledger at ``path`` and those of its side files that exist."""
    for part in (path, *side_files(path)):
        part.unlink(missing_ok=True)


def side_file_of(path: Path) -> tuple[Path, str] | None:
    """The database a file named as a side file would belong to, and which side file it is
    ("wal", "shm", "journal", "lock"); None for any other name. Nothing is read."""
    for suffix in SIDE_FILES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)]), suffix.lstrip("-.")
    return None


def is_database(path: Path) -> bool:
    """Whether ``path`` is a file that begins as an SQLite database does (a ledger, or could be
    one); a missing file, a directory or an unreadable one is not."""
    try:
        with path.open("rb") as file:
            return file.read(len(_HEADER)) == _HEADER
    except OSError:
        return False
