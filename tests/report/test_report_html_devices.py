"""The HTML report's problem devices (one line per device, its step, its product, why in words),
when the delivery states were read, what to do next, and the CSV of every problem device."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, Result, Status
from dispatcher.report.freshness import ago
from dispatcher.report.html import write_html
from dispatcher.report.next_steps import After, next_steps
from dispatcher.report.problems_csv import csv_path
from dispatcher.report.render import refusal_wording
from dispatcher.report.summary import summarize
from tests.support.e2e import fleet
from tests.support.ledger import make_command, write_outcomes
from tests.support.report_ledgers import (
    NOW,
    READ_AT,
    T0,
    plain_job,
    steps_job,
    two_products_job,
)
from tests.support.retry_steps import STAGES, make_steps_ledger, write_steps_job

CSV_HEADER = ("imei,product,step,steps,reached,problem,status,errno,why,send_status,"
              "confirm_status,commands,source")  # fmt: skip


def _built(tmp_path: Path, build: Callable[[Ledger], None]) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "job.ledger.db", synchronous="normal") as ledger:
        build(ledger)
        yield ledger


@pytest.fixture
def steps(tmp_path: Path) -> Iterator[Ledger]:
    yield from _built(tmp_path, steps_job)


@pytest.fixture
def products(tmp_path: Path) -> Iterator[Ledger]:
    yield from _built(tmp_path, two_products_job)


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Ledger]:
    yield from _built(tmp_path, lambda ledger: plain_job(ledger, 300, foreign=(19, 29, 39)))


def _html(ledger: Ledger, **kw: object) -> str:
    out = io.StringIO()
    write_html(ledger, out, clock=lambda: NOW, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def _text(markup: str) -> str:
    """Markup as read: inline tags dropped, the others a space, entities decoded."""
    markup = re.sub(r"</?(a|b|code|span|wbr)\b[^>]*>", "", markup)
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", markup).split()))


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section[^>]*id="{name}".*?</section>', html, re.S)
    assert found is not None, name
    return _text(found.group(0))


def _headers(html: str) -> list[str]:
    (table,) = re.findall(r'id="problems".*?<thead>(.*?)</thead>', html, re.S)
    return re.findall(r"<th[^>]*>([^<]*)</th>", table)


# -- one line per device ---------------------------------------------------------------------


def test_a_job_of_steps_lists_each_device_once_at_the_step_it_stopped(steps: Ledger) -> None:
    html = _html(steps)
    problems = _section(html, "problems")
    assert problems.startswith("Problem devices: 40 devices need a look")
    assert "rejected 2 delivery failed 8 delivery expired 20 not sent yet 10" in problems
    assert "120 commands in all" in problems  # not 120 lines: 40
    assert len(re.findall(r'<span class="pill', html)) == 40
    assert _headers(html) == ["imei", "step", "problem", "why", "source"]
    # Step 2 expired: steps 3 and 4 held back by it are the same device's line, not lines.
    assert ("860000000000003 2 of 4 reached 1 delivery expired 3 commands window closed, device"
            " never woke send_status 4 jobs/firmware-update.yaml:31") in problems  # fmt: skip
    assert (
        "860000000000024 1 of 4 none through delivery failed 4 commands the device answered"
        " an error: download failed send_status 6, confirm_status NOT_FOUND"
    ) in problems
    assert "860000000000005 3 of 4 reached 2 not sent yet 2 commands" in problems
    tiles = _text(re.findall(r'aria-label="figures".*?</section>', html, re.S)[0])
    assert "NEED A LOOK" not in tiles and "need a look 40 devices (120 commands)" in tiles


def test_a_plain_job_has_neither_step_nor_product_column(plain: Ledger) -> None:
    html = _html(plain)
    assert _headers(html) == ["imei", "problem", "why", "source"]
    assert "jobs/example-fleet.csv:21" in _section(html, "problems")  # device 19's row


def test_a_job_of_products_names_each_devices_product(products: Ledger) -> None:
    html = _html(products)
    assert _headers(html) == ["imei", "product", "problem", "why", "source"]
    assert "860000000000001 水表-南区 rejected" in _section(html, "problems")


# -- errno 1 in words ---------------------------------------------------------------------------


def test_errno_1_is_a_device_not_in_the_product_when_the_key_works() -> None:
    assert refusal_wording(1, "auth failed", 2997) == (
        "device not in this product (the key works: 2,997 accepted)"
    )
    assert refusal_wording(1, "auth failed", 0) == "key wrong or not this product's"
    assert refusal_wording(5006, "system logic limit", 9) == "system logic limit"


def test_the_page_tells_a_foreign_device_from_a_wrong_key_by_product(products: Ledger) -> None:
    html = _html(products)
    problems = _section(html, "problems")
    assert ("860000000000010 meters-north rejected errno 1: device not in this product (the key"
            " works: 58 accepted)") in problems  # fmt: skip
    assert "860000000000001 水表-南区 rejected errno 1: key wrong or not this product's" in problems
    errnos = _section(html, "errnos")
    assert ("1 auth failed: product meters-north: device not in this product (the key works: 58"
            " accepted) 2") in errnos  # fmt: skip
    assert "1 auth failed: product 水表-南区: key wrong or not this product's 60" in errnos


def test_three_foreign_devices_among_accepted_ones_are_not_a_wrong_key(plain: Ledger) -> None:
    html = _html(plain)
    assert "auth failed: device not in this product (the key works: 294 accepted) 3" in (
        _section(html, "errnos")
    )
    assert "auth failed" not in _section(html, "problems")


# -- as of --------------------------------------------------------------------------------------


def test_delivery_states_say_when_they_were_read_and_how_long_ago(plain: Ledger) -> None:
    html = _html(plain)
    assert "States as of 2026-12-06 14:03 (UTC+8), 3 h ago." in _section(html, "delivery")
    assert "with accepted commands, as of 2026-12-06 14:03 (UTC+8), 3 h ago" in _text(html)
    assert "oldest still waiting" not in html


def test_a_waiting_state_read_long_before_the_rest_is_said(plain: Ledger) -> None:
    (row,) = [r for r in plain.rows() if r.send_status == 1][:1]
    plain.record_delivery([Delivery(row.key, 1, None, None, None, None, READ_AT - 5 * 3600)])
    delivery = _section(_html(plain), "delivery")
    assert ("States as of 2026-12-06 14:03 (UTC+8), 3 h ago. The oldest still waiting or sent is"
            " as of 2026-12-06 09:03 (UTC+8), 8 h ago.") in delivery  # fmt: skip


def test_states_never_read_say_so(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        cmd = make_command(0)
        ledger.register([cmd])
        write_outcomes(ledger, [Result(cmd.key, Status.ACCEPTED, 0, "succ", "u", 1, T0, 9.0)])
        html = _html(ledger)
    assert "States never read: dispatcher status reads them." in _section(html, "delivery")
    assert "never read" in _text(re.findall(r'aria-label="figures".*?</section>', html, re.S)[0])


def test_a_span_back_is_said_in_its_largest_unit() -> None:
    assert [ago(s) for s in (0, 59, 60, 3599, 3600, 86399, 86400, 3 * 86400 + 5)] == [
        "just now", "just now", "1 min ago", "59 min ago", "1 h ago", "23 h ago", "1 d ago",
        "3 d ago",
    ]  # fmt: skip


# -- what to do next ----------------------------------------------------------------------------


def test_the_page_begins_and_ends_with_the_commands_to_run_next(steps: Ledger) -> None:
    html = _html(steps)
    job = steps.job()
    assert job is not None
    expected = next_steps(summarize(steps), steps.path, After(job=job.path))
    assert [s.argv[1] for s in expected] == ["run", "status", "retry-failed"]
    brief = _text(re.findall(r'<p class="next-brief".*?</p>', html, re.S)[0])
    assert brief == (
        f"Next: {expected[0].command} (20 commands not sent yet: run resumes), and 2 more at the"
        " end of the page."
    )
    end = _section(html, "next")
    for step in expected:
        assert f"{step.why[0].upper()}{step.why[1:]}: {step.command}" in end
    assert "take the --config your runs use" in end
    assert html.index('id="next"') > html.index('id="problems"')


def test_a_job_all_delivered_has_nothing_to_do_next(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        cmd = make_command(0)
        ledger.register([cmd])
        write_outcomes(ledger, [Result(cmd.key, Status.ACCEPTED, 0, "succ", "u", 1, T0, 9.0)])
        ledger.record_delivery([Delivery(cmd.key, 5, "SUCCESS", None, None, "OK", READ_AT)])
        html = _html(ledger)
    assert "Nothing to do next." in html
    assert _section(html, "next") == "What to do next Nothing: every command got through."


# -- the CSV of every problem device ------------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_capped_page_in_a_file_links_the_csv_of_every_device_beside_it(
    steps: Ledger, tmp_path: Path
) -> None:
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    with page.open("w", encoding="utf-8") as out:
        write_html(steps, out, path=page, limit=7, clock=lambda: NOW)
    html = page.read_text(encoding="utf-8")
    assert sorted(p.name for p in page.parent.iterdir()) == ["report.html", "report.problems.csv"]
    assert '<a href="report.problems.csv" download="report.problems.csv">' in html
    assert "All 40 problem devices (CSV), in job order." in _section(html, "problems")
    data = (page.parent / "report.problems.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # a spreadsheet reads it as UTF-8
    rows = _rows(data.decode("utf-8-sig"))
    assert ",".join(rows[0]) == CSV_HEADER and len(rows) == 1 + 40
    # The IMEI as report --excel writes it: text Excel keeps whole (a number shows 8.6E+14).
    assert rows[1][:7] == ['="860000000000003"', "", "2", "4", "1", "delivery expired", "accepted"]


def test_an_uncapped_page_writes_no_csv_and_links_nothing(steps: Ledger, tmp_path: Path) -> None:
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    with page.open("w", encoding="utf-8") as out:
        write_html(steps, out, path=page, clock=lambda: NOW)
    assert "href=" not in page.read_text(encoding="utf-8")
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]


def test_a_capped_page_on_stdout_embeds_the_csv(products: Ledger) -> None:
    html = _html(products, limit=5)
    (uri,) = re.findall(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', html)
    rows = _rows(base64.b64decode(uri).decode("utf-8-sig"))
    assert len(rows) == 1 + 62
    assert rows[1][:2] == ['="860000000000001"', "水表-南区"]


def test_a_csv_too_big_to_embed_says_to_write_to_a_file(products: Ledger) -> None:
    html = _html(products, limit=5, embed_limit=500)
    assert "data:" not in html
    assert "use -o FILE to get the full list" in _section(html, "problems")


def test_a_page_that_fails_leaves_no_csv(steps: Ledger, tmp_path: Path) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    with pytest.raises(OSError):
        write_html(steps, Broken(), path=page, limit=7, clock=lambda: NOW)
    assert list(page.parent.iterdir()) == []


def test_a_formula_in_a_problem_text_is_shown_as_text_in_the_csv(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    with Ledger.open(tmp_path / "l.db") as ledger:
        cmds = [make_command(i) for i in range(3)]
        ledger.register(cmds)
        write_outcomes(ledger, [Result(c.key, Status.REJECTED, 3, '=HYPERLINK("x")', None, 1,
                                       T0, 9.0) for c in cmds])  # fmt: skip
        with page.open("w", encoding="utf-8") as out:
            write_html(ledger, out, path=page, limit=1, clock=lambda: NOW)
    rows = _rows(csv_path(page).read_text(encoding="utf-8-sig"))
    assert {r[8] for r in rows[1:]} == {'\'=HYPERLINK("x")'}


def test_report_o_writes_the_csv_beside_the_page_when_over_500_devices(tmp_path: Path) -> None:
    ledger_path = tmp_path / "big.ledger.db"
    with Ledger.open(ledger_path, synchronous="normal") as ledger:
        cmds = [make_command(i) for i in range(501)]
        ledger.register(cmds)
        write_outcomes(ledger, [Result(c.key, Status.REJECTED, 5006, "limit", None, 1, T0, 9.0)
                                for c in cmds])  # fmt: skip
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["report", str(ledger_path), "--format", "html", "-o", str(page)]
    )
    assert result.exit_code == 0, result.output
    assert 'href="report.problems.csv"' in page.read_text(encoding="utf-8")
    assert len(_rows(csv_path(page).read_text(encoding="utf-8-sig"))) == 1 + 501


def test_a_ledger_of_a_real_job_of_steps_has_one_line_per_device_that_needs_a_look(
    tmp_path: Path,
) -> None:
    # The job file read as a run reads it: each device's steps are registered one after another.
    stages = list(STAGES)
    job = write_steps_job(tmp_path / "fw.yaml", fleet(len(stages), start=200))
    with Ledger.open(make_steps_ledger(job, stages), read_only=True) as ledger:
        page = _html(ledger)
    lines = re.findall(r'<td class="mono imei">(\d+)</td>', page)
    fine = {"delivered all", "step 3 open", "step 2 not read"}  # open or unread: no problem
    assert len(lines) == len(set(lines)) == len(stages) - len(fine)
    problems = _section(page, "problems")
    assert "8 devices need a look" in problems
    device = dict(zip(stages, fleet(len(stages), start=200), strict=True))
    assert f"{device['step 2 rejected']} 2 of 3 reached 1 rejected 2 commands" in problems
    assert f"{device['step 1 expired, later ones delivered']} 1 of 3 reached 3" in problems
