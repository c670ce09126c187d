"""Make the HTML report's pictures in docs/ again: a plain job at 1400 and 800 px wide, a job of
steps and a job of two products (their problem devices), rendered by headless Chromium.

The ledgers are made as the report's tests make them (tests/support/report_ledgers.py: known
outcomes, delivery states read three hours before the report), so the pictures are the same on
every machine that has the same fonts. Needs Chromium (``apt-get install chromium``) and, for the
Chinese product name, a CJK font (``apt-get install fonts-wqy-microhei``).

Usage: .venv/bin/python scripts/report_screenshots.py [OUTPUT_DIR]   (default: docs)
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' ledger builders, run from anywhere

from dispatcher.ledger.sqlite import Ledger  # noqa: E402 (after the path above)
from dispatcher.report.html import write_html  # noqa: E402
from tests.support.browser import CHROMIUM, chromium  # noqa: E402
from tests.support.png import read_png  # noqa: E402
from tests.support.report_ledgers import (  # noqa: E402
    NOW,
    plain_job,
    steps_job,
    two_products_job,
)

# name -> (the job, window width, height shown; from: "top" of the page, or its "end": the
# problem devices and what to do next, where the jobs of steps and of products differ)
SHOTS: dict[str, tuple[str, int, int, str]] = {
    "report-1400.png": ("plain", 1400, 1400, "top"),
    "report-800.png": ("plain", 800, 1800, "top"),
    "report-steps.png": ("steps", 1100, 1080, "end"),
    "report-products.png": ("products", 900, 1500, "end"),
}
TALL: Final = 5000  # px: a window taller than any of the pages, to find a page's end in
LIMIT: Final = 12  # problem devices listed: the pictures show the capped table and its CSV
BACKGROUND: Final = (0xF6, 0xF8, 0xFA)  # the page's, --page in the template
JOBS: dict[str, tuple[str, Callable[[Ledger], None]]] = {  # name -> (its ledger, the job)
    "plain": ("jobs/example.yaml.ledger.db", plain_job),
    "steps": ("jobs/firmware-update.yaml.ledger.db", steps_job),
    "products": ("jobs/two-products.yaml.ledger.db", two_products_job),
}


def main(out: Path) -> int:
    """Write the pictures into ``out``; 1 when there is no Chromium."""
    if CHROMIUM is None:
        print("no chromium on PATH: apt-get install chromium", file=sys.stderr)
        return 1
    out = out.resolve()
    with tempfile.TemporaryDirectory() as work:
        where = Path(work)
        # The pages name their ledger as it was opened: jobs/NAME.ledger.db, as in the docs.
        os.chdir(where)
        (where / "jobs").mkdir()
        pages = {}
        for name, (ledger_path, build) in JOBS.items():
            page = where / f"{name}.html"
            with Ledger.open(Path(ledger_path), synchronous="normal") as ledger:
                build(ledger)
                with page.open("w", encoding="utf-8") as html:
                    write_html(ledger, html, path=page, limit=LIMIT, clock=lambda: NOW)
            pages[name] = page
        for picture, (job, width, height, start) in SHOTS.items():
            shot = where / picture
            chromium(where / "profile", f"--window-size={width},{TALL}", f"--screenshot={shot}",
                     pages[job].as_uri())  # fmt: skip
            png = read_png(shot.read_bytes())
            # The page's end: its last drawn row (the footer), and a margin below it.
            top = 0 if start == "top" else png.last_row_not(BACKGROUND) + 24 - height
            (out / picture).write_bytes(png.crop(top, top + height))
            print(f"{out / picture}: {job} job, {width} x {height} from the {start}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"))
