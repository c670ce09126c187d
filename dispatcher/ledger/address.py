"""Where a ledger is: a SQLite file (a :class:`~pathlib.Path`) or one job of a shared PostgreSQL
ledger (a :class:`PostgresAddress`).

A PostgreSQL ledger is written as a libpq URL, ``postgresql://user@host:port/dbname``, with the
job it holds named after ``#``: ``postgresql://ops@db.example/dispatcher#fleet-fw``. One database
holds many jobs; without a ``#job`` a run names its job after its job file, and the follow-up
commands take the database's only job (or list the jobs to choose from).

The password never comes from dispatcher's own files: libpq takes it from ``PGPASSWORD`` or
``~/.pgpass``. One written into the URL still works, but is never shown: :meth:`PostgresAddress.
__str__` (what messages, reports and next-step commands print) leaves it out, and
:attr:`PostgresAddress.secrets` lists it for the output masker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "SCHEMES",
    "LedgerAddress",
    "PostgresAddress",
    "is_url",
    "parse_address",
    "unencoded_password",
]

SCHEMES: Final = ("postgresql://", "postgres://")
# Connection parameters that hold a secret: never shown (libpq's names).
_SECRET_PARAMS: Final = frozenset({"password", "sslpassword"})


@dataclass(frozen=True, slots=True)
class PostgresAddress:
    """One job of a PostgreSQL ledger: the database's URL and the job's name (None: not named)."""

    url: str  # as given, without the '#job' (it may hold a password: never print it)
    job: str | None = None

    @classmethod
    def parse(cls, text: str) -> PostgresAddress:
        """The address written as ``postgresql://…[#job]``; ValueError when it is not one."""
        if not is_url(text):
            raise ValueError(f"{text!r} is not a postgresql:// URL")
        if unencoded_password(text):
            raise ValueError(_UNENCODED)  # the URL is not shown: it holds a password
        url, _, job = text.partition("#")
        parts = urlsplit(url)
        if not parts.path.strip("/"):
            raise ValueError(
                f"{cls(url)}: name the database after the host (postgresql://user@host/dbname)"
            )
        return cls(url, unquote(job) or None)

    def with_job(self, job: str) -> PostgresAddress:
        """The same database, the job ``job``."""
        return replace(self, job=job)

    @property
    def conninfo(self) -> str:
        """What libpq connects with (the URL without the job)."""
        return self.url

    @property
    def database(self) -> str:
        """The URL without the job, and without any password: safe to print."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}@{host}"
        query = parts.query
        pairs = parse_qsl(query)
        if any(k in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, v) for k, v in pairs if k not in _SECRET_PARAMS])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password(s) written into the URL, raw and as written (percent-encoded), for the
        masker (none: the usual case)."""
        parts = urlsplit(self.url)
        found = [unquote(parts.password), parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if k in _SECRET_PARAMS and v]
        return tuple(dict.fromkeys(found))

    @property
    def name(self) -> str:
        """A short name: the job's, else the database's."""
        return self.job or urlsplit(self.url).path.strip("/")

    def __str__(self) -> str:
        """The address as it can be typed again, with no password."""
        if self.job is None:
            return self.database
        return f"{self.database}#{quote(self.job, safe='/:{}@-_.~')}"


LedgerAddress = Path | PostgresAddress

_UNENCODED = (
    "a postgresql:// URL whose password holds '/', '?' or '#' must percent-encode them"
    " (%2F, %3F, %23); better, leave the password out of the URL and set PGPASSWORD"
)


def unencoded_password(text: str) -> bool:
    """Whether ``text`` looks like a URL whose password holds an unencoded '/', '?' or '#': its
    authority (up to the first of them) is ``user:something`` that is no port, and an '@' comes
    later. Such a URL would be split in the wrong place, and its password printed as a host."""
    rest = text.split("://", 1)[-1]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" in authority or ":" not in authority or "@" not in rest[end:]:
        return False
    return not authority.rsplit(":", 1)[1].isdigit()


def is_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL ledger rather than a file."""
    return text.startswith(SCHEMES)


def parse_address(text: str | Path) -> LedgerAddress:
    """A PostgreSQL ledger for a ``postgresql://`` URL, else the file's path."""
    if isinstance(text, Path):
        return text
    return PostgresAddress.parse(text) if is_url(text) else Path(text)
