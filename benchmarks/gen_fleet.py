"""Generate a deterministic fleet CSV job: valid 15-digit IMEIs (Luhn), relative times.

Usage: python -m benchmarks.gen_fleet PATH N [SEED]
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Sequence
from pathlib import Path

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


def write_fleet_csv(
    path: str | Path, n: int, *, seed: int = 0, fields: Sequence[str] = FLEET_FIELDS
) -> None:
    """Write ``n`` rows (header first, CRLF line ends as spreadsheets do) of a valid fleet job."""
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
                "args": _ARGS[group],
                "valid_time": "" if rng.random() < 0.7 else "+10m",
                "expired_time": "+2d" if group < 2 else "+3d",
                "retry": "3",
                "timeout": "25" if group else "40",
                "trigger_msg": "7" if group < 3 else "3",
            }
            out.writerow([row[name] for name in fields])


def main(argv: Sequence[str]) -> int:
    """Command line: PATH N [SEED]."""
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    write_fleet_csv(argv[0], int(argv[1]), seed=int(argv[2]) if len(argv) == 3 else 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
