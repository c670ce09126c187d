"""What one would write by hand: the standard library, one request after another.

Usage: ONENET_API_KEY=... python -m benchmarks.naive JOB.csv BASE_URL [LIMIT]

csv.DictReader, urllib.parse.urlencode, json and urllib.request.urlopen (a new connection per
request), for the first LIMIT rows (default: all). Relative times are resolved once, at start.
Prints ``accepted N of M`` and exits 1 unless every command was accepted.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import urllib.parse
import urllib.request

from benchmarks.reltime import now_utc8, time_resolver


def main(argv: list[str]) -> int:
    """Command line: JOB.csv BASE_URL [LIMIT]."""
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path, base_url = argv[0], argv[1].rstrip("/")
    limit = int(argv[2]) if len(argv) == 3 else None
    headers = {"api-key": os.environ["ONENET_API_KEY"], "Content-Type": "application/json"}
    resolve = time_resolver(now_utc8())
    accepted = sent = 0
    with open(path, newline="", encoding="utf-8") as f:
        for row in itertools.islice(csv.DictReader(f), limit):
            params = {
                "imei": row["imei"],
                "obj_id": row["obj_id"],
                "obj_inst_id": row["obj_inst_id"],
                "res_id": row["res_id"],
                "expired_time": resolve(row["expired_time"]),
                "retry": row["retry"],
                "timeout": row["timeout"],
                "trigger_msg": row["trigger_msg"],
            }
            if row["valid_time"]:
                params["valid_time"] = resolve(row["valid_time"])
            request = urllib.request.Request(
                f"{base_url}/nbiot/execute/offline?{urllib.parse.urlencode(params)}",
                data=json.dumps({"args": row["args"]}).encode(),
                headers=headers,
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                doc = json.load(resp)
            sent += 1
            accepted += doc.get("errno") == 0
    print(f"accepted {accepted} of {sent}")
    return 0 if accepted == sent else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
