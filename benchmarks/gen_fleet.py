"""Generate a deterministic fleet CSV job: valid 15-digit IMEIs (Luhn), in one of two shapes.

Usage: python -m benchmarks.gen_fleet PATH N [SEED] [SHAPE]

Shapes: ``long`` (the default: ~80-character args, relative times such as +2d) and ``short``
(args of a few characters, absolute times a few days ahead as OneNET writes them,
``YYYY-MM-DD HH:MM:SS`` in UTC+8). The same seed gives the same devices, ids and groups in both.
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["FLEET_FIELDS", "SHAPES", "USUAL_FIELDS", "imei_for", "write_fleet_csv"]

# Spelled out rather than imported: importing dispatcher would grow the benchmark process, and
# with it the peak RSS that Linux reports for every child it starts.
FLEET_FIELDS = (
    "imei",
    "obj_id",
    "obj_inst_id",
    "res_id",
    "args",
    "valid_time",
    "expired_time",
    "retry",
    "timeout",
    "trigger_msg",
)
# The 7 usual columns: a job that leaves retry, timeout and trigger_msg to the defaults.
USUAL_FIELDS = ("imei", "obj_id", "obj_inst_id", "res_id", "args", "valid_time", "expired_time")
# Type Allocation Codes (the first 8 IMEI digits) of a few made-up module models.
_TACS = ("86451203", "86723105", "35847609", "86992304", "35290611")
_ARGS = (
    "fw=2.4.1;url=http://fw.example.com/nb/2.4.1.bin;md5=9e107d9d372bb6826bd81d3542a419d6",
    "fw=2.4.1;url=http://fw.example.com/nb/2.4.1.bin;md5=9e107d9d372bb6826bd81d3542a419d6",
    "report_interval=3600,heartbeat=300",
    'cfg={"apn":"cmnbiot","psm":true}',
)
# The short shape's args, one per group as above: what a reboot or a trigger says.
_SHORT_ARGS = ("go", "go", "reset", "reboot")
SHAPES = {"long": "long args, relative times", "short": "short args, absolute times"}
_UTC8 = timezone(timedelta(hours=8))  # OneNET's clock
_STEP = 7919  # prime, coprime with 10**6: i * _STEP mod 10**6 visits every serial once


def imei_for(i: int, seed: int = 0) -> str:
    """The i-th IMEI of a fleet: distinct for i below 5,000,000, with its Luhn check digit."""
    tac = _TACS[(i // 1_000_000 + seed) % len(_TACS)]
    body = f"{tac}{(i * _STEP + seed) % 1_000_000:06d}"
    total = 0
    for k, ch in enumerate(body):
        d = int(ch) * (2 if k % 2 else 1)
        total += d - 9 if d > 9 else d
    return body + str(-total % 10)


def _times(shape: str, now: datetime | None) -> tuple[str, str, str]:
    """(valid_time, expired_time of groups 0-1, of groups 2-3) as the shape writes them."""
    if shape == "long":
        return "+10m", "+2d", "+3d"
    if shape != "short":
        raise ValueError(f"shape: {shape!r} is not one of {', '.join(SHAPES)}")
    start = (now or datetime.now(_UTC8)).astimezone(_UTC8)

    def ahead(days: int) -> str:
        return (start + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")

    return ahead(1), ahead(3), ahead(4)


def write_fleet_csv(
    path: str | Path,
    n: int,
    *,
    seed: int = 0,
    fields: Sequence[str] = FLEET_FIELDS,
    shape: str = "long",
    now: datetime | None = None,
) -> None:
    """Write ``n`` rows (header first, CRLF line ends as spreadsheets do) of a valid fleet job
    of ``shape`` (see SHAPES); the short shape's absolute times count from ``now`` (default: now).
    """
    valid, expired_near, expired_far = _times(shape, now)
    texts = _SHORT_ARGS if shape == "short" else _ARGS
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(fields)
        for i in range(n):
            group = rng.randrange(len(_ARGS))
            row = {
                "imei": imei_for(i, seed),
                # Firmware Update · Update, or Digital Input · Digital Input Counter Reset:
                # both executable, as an execute command needs.
                "obj_id": "5" if group < 2 else "3200",
                "obj_inst_id": "0",
                "res_id": "2" if group < 2 else "5505",
                "args": texts[group],
                "valid_time": "" if rng.random() < 0.7 else valid,
                "expired_time": expired_near if group < 2 else expired_far,
                "retry": "3",
                "timeout": "25" if group else "40",
                "trigger_msg": "7" if group < 3 else "3",
            }
            out.writerow([row[name] for name in fields])


def main(argv: Sequence[str]) -> int:
    """Command line: PATH N [SEED] [SHAPE]."""
    if len(argv) not in (2, 3, 4) or (len(argv) == 4 and argv[3] not in SHAPES):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    seed = int(argv[2]) if len(argv) >= 3 else 0
    write_fleet_csv(argv[0], int(argv[1]), seed=seed, shape=argv[3] if len(argv) == 4 else "long")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
