"""The HTML report: its figures, escaping, self-containment, flat memory, the command line, and
the page as a real browser (headless Chromium) renders it."""

from __future__ import annotations

import io
import itertools
import re
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, InFlight, JobRecord, Result, Status
from dispatcher.report.html import PROBLEM_KINDS, write_html
from dispatcher.report.timeline import WIDTHS, Histogram, timeline
from dispatcher.times import parse_onenet
from tests.support.browser import CHROMIUM, chromium
from tests.support.ledger import make_command, write_outcomes

T0 = parse_onenet("2024-05-01 10:00:00").timestamp()
NOW = parse_onenet("2024-05-03 09:30:00").timestamp()
SCRIPT = "<script>alert(1)</script>"


def _mixed(ledger: Ledger) -> None:
    """60 commands of a 64-command job: 40 accepted (25 delivered, 5 waiting, 3 expired, 3
    failed on the device, 4 not read), 5 rejected, 5 failed, 5 in doubt, 5 pending; markup in an
    args, an error text, a device's result and the job's name."""
    cmds = [make_command(i, args=SCRIPT if i == 3 else f"go {i}") for i in range(60)]
    ledger.register(cmds)
    ledger.write_batch(
        [InFlight(c.key, T0 + i, None, "2024-05-02T10:00:00", 1) for i, c in enumerate(cmds[:55])],
        (),
    )
    results = []
    for i, c in enumerate(cmds[:55]):
        at = T0 + i
        if i < 40:
            results.append(Result(c.key, Status.ACCEPTED, 0, "succ", f"u{i}", 1, at, 10.0 + i))
        elif i < 45:
            results.append(Result(c.key, Status.REJECTED, 5006, f"limit {SCRIPT}", None, 1, at, 9))
        elif i < 50:
            results.append(Result(c.key, Status.FAILED, None, "HTTP 500", None, 4, at, None))
        else:
            results.append(
                Result(c.key, Status.IN_DOUBT, None, "connection cut", None, 1, at, None)
            )
    write_outcomes(ledger, results)
    deliveries = []
    for i, c in enumerate(cmds[:36]):
        if i < 25:
            confirm = f"2024-05-01 {11 + i // 5}:{i:02d}:00"
            deliveries.append(Delivery(c.key, 5, "SUCCESS", None, confirm, "OK", NOW))
        elif i < 30:
            deliveries.append(Delivery(c.key, 1, None, None, None, None, NOW))
        elif i < 33:
            deliveries.append(Delivery(c.key, 4, None, None, None, None, NOW))
        else:
            deliveries.append(Delivery(c.key, 6, "TIME_OUT", None, None, f"<i>{SCRIPT}</i>", NOW))
    ledger.record_delivery(deliveries)
    ledger.set_job(JobRecord("/jobs/<fleet>.yaml", f"meters {SCRIPT}", "ab", 64))
    run = ledger.start_run("/jobs/fleet.yaml", {})
    ledger.finish_run(run, {}, None)


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "job.ledger.db", synchronous="normal") as ledger:
        _mixed(ledger)
        yield ledger


def _html(ledger: Ledger, limit: int = 500) -> str:
    out = io.StringIO()
    write_html(ledger, out, limit=limit, clock=lambda: NOW)
    return out.getvalue()


def _text(html: str) -> str:
    """Markup as read: tags dropped (a line-break hint, <wbr>, and a path's pieces join up)."""
    html = re.sub(r"<wbr>|</?span( class=\"seg\")?>", "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _section(html: str, name: str) -> str:
    """The text of one section (id=name), its tags dropped and its spaces squeezed."""
    found = re.search(rf'<section[^>]*id="{name}".*?</section>', html, re.S)
    assert found is not None, name
    return _text(found.group(0))


def test_the_page_shows_the_job_when_it_was_made_and_the_counts(mixed: Ledger) -> None:
    html = _html(mixed)
    assert "<h1>meters &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "generated 2024-05-03 09:30:00 UTC+8" in html
    statuses = _section(html, "statuses")
    for line in ("pending 5 7.8%", "accepted 40 62.5%", "rejected 5 7.8%",
                 "failed to send 5 7.8%", "in doubt 5 7.8%", "not registered yet 4 6.2%",
                 "not sent (window passed) 0"):  # fmt: skip
        assert line in statuses
    delivery = _section(html, "delivery")
    for line in ("waiting 5 5", "delivered 25 25", "expired 3 3", "failed 3 3", "not read yet 4 4"):
        assert line in delivery
    assert "20 devices have commands OneNET does not hold" in delivery
    assert "5006 limit &lt;script&gt;" in _section(html, "errnos")
    assert "SUCCESS 25 TIME_OUT 3" in _section(html, "confirms")


def test_markup_in_args_errors_results_and_names_is_escaped(mixed: Ledger) -> None:
    html = _html(mixed)
    assert "<script" not in html.lower()
    assert "&lt;i&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;/i&gt;" in html  # the device's result
    assert "job file /jobs/&lt;fleet&gt;.yaml ·" in _text(html)


def test_the_page_is_self_contained(mixed: Ledger) -> None:
    html = _html(mixed)
    assert not re.search(r"https?://", html)
    assert not re.search(r"\b(src|href|xlink:href)\s*=", html)
    assert "@import" not in html and "url(" not in html
    assert "<style>" in html


def test_the_timeline_is_an_inline_svg_of_sends_and_deliveries(mixed: Ledger) -> None:
    html = _html(mixed)
    (svg,) = re.findall(r"<svg.*?</svg>", html, re.S)
    sends = re.findall(r'<rect class="sends"[^>]*><title>([^<]*)</title>', svg)
    deliveries = re.findall(r'<rect class="deliveries"[^>]*><title>([^<]*)</title>', svg)
    assert sum(int(t.split(": ")[1].split()[0]) for t in sends) == 40
    assert sum(int(t.split(": ")[1].split()[0]) for t in deliveries) == 25
    assert "Sends · 40" in svg and "Deliveries · 25" in svg
    assert "2024-05-01 10:00 UTC+8" in _section(html, "timeline")  # binned on OneNET's clock


def test_problem_rows_come_most_urgent_first_with_what_went_wrong(mixed: Ledger) -> None:
    html = _html(mixed)
    problems = _section(html, "problems")
    assert ("rejected 5 failed 5 in doubt 5 delivery failed 3 delivery expired 3 not sent yet 5"
            in problems)  # fmt: skip
    kinds = re.findall(r'<span class="pill k-[a-z-]+">([a-z ]+)</span>', html)
    assert kinds == ["rejected"] * 5 + ["failed"] * 5 + ["in doubt"] * 5 + ["delivery failed"] * 3 \
        + ["delivery expired"] * 3 + ["not sent yet"] * 5  # fmt: skip
    assert kinds == sorted(kinds, key=PROBLEM_KINDS.index)
    assert "860000000000040 rejected errno 5006: limit &lt;script&gt;" in problems
    assert "jobs/fleet.yaml:50" in problems
    assert ("860000000000033 delivery failed the device answered an error: &lt;i&gt;"
            in problems)  # fmt: skip
    assert "send_status 6, confirm_status TIME_OUT jobs/fleet.yaml:43" in problems
    assert "more devices" not in problems


def test_the_problem_table_is_capped_and_says_how_many_more(mixed: Ledger) -> None:
    html = _html(mixed, limit=7)
    assert len(re.findall(r'<span class="pill', html)) == 7
    assert "The first 7, most urgent first; 19 more devices." in _section(html, "problems")


def test_an_empty_ledger_makes_a_page_that_says_so(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "empty.ledger.db") as ledger:
        html = _html(ledger)
    assert "<h1>empty.ledger.db</h1>" in html
    assert "No command accepted yet." in html and "Nothing accepted yet." in html
    assert "<svg" not in html


def test_the_report_of_many_rows_keeps_only_its_capped_rows(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "big.ledger.db", synchronous="normal") as ledger:
        for start in range(0, 20_000, 5000):
            cmds = [make_command(i) for i in range(start, start + 5000)]
            ledger.register(cmds)
            write_outcomes(
                ledger,
                [Result(c.key, Status.REJECTED if i % 2 else Status.ACCEPTED, 5006 if i % 2 else 0,
                        "limit", None if i % 2 else f"u{i}", 1, T0 + i, 5.0)
                 for i, c in enumerate(cmds, start)],
            )  # fmt: skip
        page = tmp_path / "report.html"
        tracemalloc.start()
        try:
            with page.open("w", encoding="utf-8") as out:
                shown = write_html(ledger, out, path=page, limit=100, clock=lambda: NOW)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert shown == 100
    assert peak < 4_000_000  # 20,000 rows held would be over 8 MB
    # Every one of the 10,000 refused devices is in the CSV beside the page, none in memory.
    assert len((tmp_path / "report.problems.csv").read_text(encoding="utf-8-sig").splitlines()) \
        == 1 + 10_000  # fmt: skip


# -- the timeline's bins ---------------------------------------------------------------------


def test_bins_widen_up_the_ladder_and_keep_every_event() -> None:
    h = Histogram(max_bins=10)
    for i in range(1000):
        h.add(T0 + i * 7)  # 7,000 s
    assert len(h.bins) <= 10 and sum(h.bins.values()) == h.count == 1000
    assert h.width == 1800
    fine = Histogram()
    for i in range(1000):
        fine.add(T0 + i * 7)
    assert fine.width == 1 and fine.at_width(1800) == h.bins


def test_every_width_of_the_ladder_divides_the_next() -> None:
    assert all(wide % narrow == 0 for narrow, wide in itertools.pairwise(WIDTHS))


def test_the_chart_puts_both_series_on_one_axis_of_at_most_max_bars() -> None:
    sends, deliveries = Histogram(), Histogram()
    for i in range(600):
        sends.add(T0 + i / 10)  # one minute of sending
    for i in range(200):
        deliveries.add(T0 + 3600 + i * 60)  # deliveries over the next hours
    chart = timeline([("Sends", "sends", sends), ("Deliveries", "deliveries", deliveries)])
    assert chart is not None
    assert chart.bin_width == "5 min"  # 10 s bins would be far more than 72 over 4.3 hours
    assert (chart.ticks[0].label, chart.end) == ("10:00", "2024-05-01 14:20 UTC+8")
    assert [sum(b.count for b in p.bars) for p in chart.panels] == [600, 200]
    assert all(chart.left <= b.x and b.x + b.width <= chart.right for p in chart.panels
               for b in p.bars)  # fmt: skip
    assert chart.start == "2024-05-01 10:00 UTC+8"
    assert timeline([("Sends", "sends", Histogram())]) is None


# -- the command line ------------------------------------------------------------------------


def _invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml.ledger.db"
    with Ledger.open(path, synchronous="normal") as ledger:
        _mixed(ledger)
    return path


def test_report_html_writes_the_page_to_a_file_and_says_where(ledger_file: Path) -> None:
    target = ledger_file.parent / "report.html"
    code, out, err = _invoke("report", ledger_file, "--format", "html", "-o", target)
    assert (code, out, err) == (0, "", f"report written to {target}\n")
    html = target.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Problem devices" in html


def test_report_html_goes_to_stdout_without_output(ledger_file: Path) -> None:
    code, out, err = _invoke("report", ledger_file, "--format", "html")
    assert (code, err) == (0, "")
    assert out.startswith("<!DOCTYPE html>") and "<svg" in out


_FIRST_LINES = [("csv", "imei,obj_id"), ("json", "["), ("jsonl", '{"imei"'), ("table", "Ledger")]


@pytest.mark.parametrize(("fmt", "first"), _FIRST_LINES)
def test_output_works_for_every_format(ledger_file: Path, fmt: str, first: str) -> None:
    target = ledger_file.parent / f"out.{fmt}"
    code, out, err = _invoke("report", ledger_file, "--format", fmt, "--output", target)
    assert (code, out, err) == (0, "", f"report written to {target}\n")
    text = target.read_text(encoding="utf-8")
    assert text.startswith(first)
    if fmt == "table":  # the same tables, at the width of a file rather than a terminal's
        assert "Delivery of the accepted commands" in text
    else:
        assert _invoke("report", ledger_file, "--format", fmt)[1] == text


def test_output_onto_the_ledger_itself_is_refused(ledger_file: Path) -> None:
    before = ledger_file.read_bytes()
    for target in (ledger_file, Path(f"{ledger_file}-wal")):
        code, _, err = _invoke("report", ledger_file, "--format", "html", "-o", target)
        assert code == 2 and "is the ledger being read" in err
    assert ledger_file.read_bytes() == before


def test_an_output_that_cannot_be_written_is_an_error(ledger_file: Path) -> None:
    target = ledger_file.parent / "no-such-dir" / "report.html"
    code, out, err = _invoke("report", ledger_file, "--format", "html", "-o", target)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {target}: cannot write the report")


# -- a real browser ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)"
)
def test_chromium_renders_the_table_and_the_chart(mixed: Ledger, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_html(mixed), encoding="utf-8")
    dom = chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert "<script" not in dom.lower()
    (problems,) = re.findall(
        r'<section class="card problems" id="problems".*?</section>', dom, re.S
    )
    assert problems.count("<tr>") == 1 + 26  # the header and every problem row
    (svg,) = re.findall(r"<svg.*?</svg>", dom, re.S)
    assert svg.count("<rect") >= 2 and "Deliveries · 25" in svg
    shot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1280, 2000)
    assert len(png) > 50_000  # a page with tables and a chart, not a blank one


def test_sends_are_charted_on_onenets_clock_as_deliveries_are(tmp_path: Path) -> None:
    # This machine's clock is two hours behind OneNET's: the send is charted at OneNET's time,
    # on the clock the delivery's confirm_time was written on, half a minute before it.
    cmd = make_command(0)
    with Ledger.open(tmp_path / "job.ledger.db", synchronous="normal") as ledger:
        ledger.register([cmd])
        ledger.write_batch([InFlight(cmd.key, T0, None, "2024-05-02T10:00:00", 1, T0 + 7200)], ())
        write_outcomes(ledger, [Result(cmd.key, Status.ACCEPTED, 0, "succ", "u0", 1, T0, 9.0)])
        ledger.record_delivery(
            [Delivery(cmd.key, 5, "SUCCESS", None, "2024-05-01 12:00:30", "OK", NOW)]
        )
        (row,) = ledger.rows()
        assert (row.last_attempt_at, row.last_server_at) == (T0, T0 + 7200)
        html = _html(ledger)
    (sent,) = re.findall(r"<title>([^<]*): 1 sends</title>", html)
    assert sent.startswith("2024-05-01 12:00:00")
