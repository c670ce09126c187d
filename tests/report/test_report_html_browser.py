"""The HTML report as headless Chromium shows it and prints it: a plain job, a job of steps and a
job of two products, at 1400 px and 800 px wide and on A4. Skipped without a Chromium binary
(``apt-get install chromium``; .ci/run installs it).

Nothing on the page may run off it: a screenshot's right-most column of pixels is the page's
background from top to bottom (a table or a long text wider than the window would be cut there,
since the scrollbars are hidden), read with tests/support/png.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.ledger.sqlite import Ledger
from dispatcher.report.html import write_html
from tests.support.browser import CHROMIUM, chromium
from tests.support.png import read_png
from tests.support.report_ledgers import NOW, plain_job, steps_job, two_products_job

PAGE_BACKGROUND = (0xF6, 0xF8, 0xFA)  # --page in the template
A4 = (595, 842)  # points, as PDF's MediaBox gives them

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
]

JOBS: dict[str, tuple[Callable[[Ledger], None], list[str], range]] = {
    # the job, the problem table's columns, the pages it prints on
    "plain": (lambda ledger: plain_job(ledger, 300, foreign=(19, 29, 39)),
              ["imei", "problem", "why", "source"], range(2, 5)),
    "steps": (steps_job, ["imei", "step", "problem", "why", "source"], range(3, 6)),
    "products": (two_products_job, ["imei", "product", "problem", "why", "source"], range(4, 7)),
}  # fmt: skip


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each job's report, written once for the module."""
    made = {}
    for name, (build, _, _) in JOBS.items():
        where = tmp_path_factory.mktemp(name)
        page = where / "report.html"
        with Ledger.open(where / "job.ledger.db", synchronous="normal") as ledger:
            build(ledger)
            with page.open("w", encoding="utf-8") as out:
                write_html(ledger, out, path=page, clock=lambda: NOW)
        made[name] = page
    return made


@pytest.mark.parametrize("job", JOBS)
def test_the_problem_table_has_the_jobs_columns(
    pages: dict[str, Path], job: str, tmp_path: Path
) -> None:
    dom = chromium(tmp_path / "profile", "--dump-dom", pages[job].as_uri()).stdout
    (head,) = re.findall(r'id="problems".*?<thead>(.*?)</thead>', dom, re.S)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", head) == JOBS[job][1]
    assert 'id="next"' in dom and "<script" not in dom.lower()


@pytest.mark.parametrize("width", [1400, 800])
@pytest.mark.parametrize("job", JOBS)
def test_nothing_runs_off_the_page(
    pages: dict[str, Path], job: str, width: int, tmp_path: Path
) -> None:
    shot = tmp_path / "page.png"
    chromium(tmp_path / "profile", f"--window-size={width},2200", f"--screenshot={shot}",
             pages[job].as_uri())  # fmt: skip
    png = read_png(shot.read_bytes())
    assert (png.width, png.height) == (width, 2200)
    edge = png.column(width - 1)
    off = [y for y, colour in enumerate(edge) if colour != PAGE_BACKGROUND]
    assert off == [], f"something runs off the page at {width} px, rows {off[:3]}..."
    assert len(set(png.column(width // 2))) > 20  # a page drawn, not a blank one


@pytest.mark.parametrize("job", JOBS)
def test_the_page_prints_on_a4(pages: dict[str, Path], job: str, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
             pages[job].as_uri())  # fmt: skip
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == len(boxes)
    assert len(boxes) in JOBS[job][2]
    assert {(round(float(w)), round(float(h))) for w, h in boxes} == {A4}
