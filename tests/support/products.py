"""Two products in one job (meters and lights, each its own api-key and pace): the job, the
config naming both, and their keys."""

from __future__ import annotations

import itertools
from pathlib import Path

METERS_KEY, LIGHTS_KEY = "meters-key-1f2e", "lights-key-9a8b"


def two_product_job(directory: Path, meters: list[str], lights: list[str]) -> Path:
    """fleet.yaml and its fleet.csv: the meters and the lights, interleaved."""
    rows = [(i, "meters") for i in meters] + [(i, "lights") for i in lights]
    # Interleaved, as a real fleet file would be.
    rows = [
        r
        for pair in itertools.zip_longest(rows[: len(meters)], rows[len(meters) :])
        for r in pair
        if r
    ]
    (directory / "fleet.csv").write_text(
        "imei,product\n" + "".join(f"{i},{p}\n" for i, p in rows), encoding="utf-8"
    )
    path = directory / "fleet.yaml"
    path.write_text(
        "job: fleet\ndefaults: {obj_id: 5, obj_inst_id: 0, res_id: 2, expired_time: +1d}\n"
        "targets_csv: fleet.csv\n",
        encoding="utf-8",
    )
    return path


CONFIG = """\
limits: {concurrency: 8}
retry: {max_attempts: 10, initial_backoff_s: 0.001, max_backoff_s: 0.01, request_timeout_s: 10}
reliability: {settle_s: 0.2, stop_grace_s: 10}
ledger: {synchronous: normal, batch_size: 50}
products:
  meters:
    api_key_env: METERS_KEY
    base_url: URL
    rate_per_second: 20
  lights:
    api_key_env: LIGHTS_KEY
    base_url: URL
    rate_per_second: 40
"""
