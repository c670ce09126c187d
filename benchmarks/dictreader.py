"""The yardstick for ``dispatcher validate``: one csv.DictReader pass over a file, nothing else.

Usage: python -m benchmarks.dictreader FILE.csv    (prints the number of rows)
"""

from __future__ import annotations

import csv
import sys


def main(argv: list[str]) -> int:
    """Command line: FILE.csv."""
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    rows = 0
    with open(argv[0], newline="", encoding="utf-8") as f:
        for _ in csv.DictReader(f):
            rows += 1
    print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
