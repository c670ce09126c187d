"""Every LEDGER argument and --ledger flag takes a file or a postgresql:// URL: a malformed URL is
a usage error (exit 2) that shows the form to use and never the password written into it."""

from __future__ import annotations

import pytest

from tests.support.cli import invoke

_BAD = "postgresql://ops:hunter2@db.internal"  # no database named


@pytest.mark.parametrize(
    "args",
    [
        ("status", _BAD),
        ("report", _BAD),
        ("cancel", _BAD),
        ("verify", _BAD),
        ("retry-failed", _BAD, "-o", "retry.yaml"),
        ("run", "jobs/example.yaml", "--ledger", _BAD),
    ],
)
def test_a_url_without_a_database_is_a_usage_error_without_its_password(
    args: tuple[str, ...],
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "postgresql://user@host/dbname" in result.output
    assert "hunter2" not in result.output
