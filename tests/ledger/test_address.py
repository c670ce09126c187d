"""Where a ledger is: a file, or a job of a PostgreSQL ledger whose password is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.ledger.address import PostgresAddress, parse_address


def test_a_path_stays_a_path_and_a_url_is_not_mangled_into_one() -> None:
    assert parse_address("ledgers/fleet.ledger.db") == Path("ledgers/fleet.ledger.db")
    address = parse_address("postgresql://ops@db.example:5433/dispatcher#fleet")
    assert address == PostgresAddress("postgresql://ops@db.example:5433/dispatcher", "fleet")
    assert str(address) == "postgresql://ops@db.example:5433/dispatcher#fleet"


def test_a_password_in_the_url_is_used_but_never_shown() -> None:
    address = PostgresAddress.parse(
        "postgresql://ops:s3cr%40t@db.example/dispatcher?sslmode=require&password=p2#fw"
    )
    assert "s3cr" not in str(address) and "p2" not in str(address)
    assert str(address) == "postgresql://ops@db.example/dispatcher?sslmode=require#fw"
    assert address.secrets == ("s3cr@t", "s3cr%40t", "p2")
    assert "s3cr%40t" in address.conninfo  # libpq still gets it


def test_a_job_name_round_trips_through_its_printed_address() -> None:
    address = PostgresAddress.parse("postgresql://ops@/dispatcher?host=/run/pg#夜间 fw-{date}")
    assert address.job == "夜间 fw-{date}"
    assert PostgresAddress.parse(str(address)) == address
    assert address.with_job("other").job == "other"
    assert address.name == "夜间 fw-{date}"


def test_a_url_without_a_database_is_refused_with_the_form_to_use() -> None:
    with pytest.raises(ValueError, match="postgresql://user@host/dbname"):
        PostgresAddress.parse("postgresql://ops@db.example")


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://ops:pa/ss@db.internal/dispatcher#fleet",
        "postgresql://ops:pa?ss@db.internal/dispatcher",
        "postgresql://ops:pa#ss@db.internal/dispatcher#fleet",
    ],
)
def test_a_password_with_an_unencoded_slash_query_or_hash_is_refused_unshown(text: str) -> None:
    with pytest.raises(ValueError, match="percent-encode") as caught:
        PostgresAddress.parse(text)
    assert "pa" not in str(caught.value).replace("password", "")


def test_a_port_a_job_with_an_at_and_an_encoded_password_are_read_as_written() -> None:
    assert PostgresAddress.parse("postgresql://db:5432/dispatcher#fw@2.4").job == "fw@2.4"
    encoded = PostgresAddress.parse("postgresql://ops:pa%2Fss@db/dispatcher#fw")
    assert encoded.secrets == ("pa/ss", "pa%2Fss")  # both masked, as typed and as meant
    assert "pa%2Fss" not in str(encoded) and "pa/ss" not in str(encoded)
