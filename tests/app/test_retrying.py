"""retry-failed as a use case: where the retry job's run is advised to go."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.app.retrying import RetryRequest, retry_failed
from dispatcher.config import Settings
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from tests.support.ledger import make_command, write_outcomes


def _refused_job(tmp_path: Path, settings: dict[str, object]) -> Path:
    path = tmp_path / "push.yaml.ledger.db"
    with Ledger.open(path) as ledger:
        cmds = [make_command(i) for i in range(2)]
        ledger.register(cmds)
        ledger.set_job(JobRecord(str(tmp_path / "push.yaml"), "push", "ab", 2))
        ledger.finish_run(ledger.start_run(str(tmp_path / "push.yaml"), settings), {}, None)
        write_outcomes(
            ledger, [Result(c.key, Status.REJECTED, 5006, "limit", None, 1, 1.0, 9.0) for c in cmds]
        )
    return path


@pytest.mark.parametrize(
    ("products", "pinned"),
    [
        ({}, "http://127.0.0.1:8080"),  # one address for every command: pinned
        ({"meter": {"onenet": {"base_url": "http://127.0.0.1:8080"}}}, "http://127.0.0.1:8080"),
        # A product with an address of its own: --base-url would send it elsewhere, so none.
        ({"lamp": {"onenet": {"base_url": "http://10.0.0.5:8080"}}}, None),
    ],
)
def test_the_retry_run_is_pinned_to_the_address_only_when_every_lane_had_it(
    tmp_path: Path, products: dict[str, object], pinned: str | None
) -> None:
    settings = Settings().to_dict()
    settings["onenet"]["base_url"] = "http://127.0.0.1:8080"
    settings["products"] = products
    ledger = _refused_job(tmp_path, settings)
    done = retry_failed(RetryRequest(ledger, tmp_path / "retry.yaml"))
    assert done.written is not None and done.went_to == pinned
