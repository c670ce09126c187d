"""The compliance in reports: the summary table and the HTML page show verify's verdicts first
(devices by state, the values read, the devices not on target), escaped; a ledger never verified
shows none."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import VerifyResult, VerifyState
from dispatcher.report import summarize
from dispatcher.report.compliance import compliance_of
from dispatcher.report.html import write_html
from dispatcher.report.render import compliance_tables, render_table
from tests.support.ledger import make_command

SCRIPT = "<script>alert(1)</script>"


def _verified(path: Path) -> Ledger:
    ledger = Ledger.open(path)
    ledger.register([make_command(i) for i in range(6)])
    results = [
        VerifyResult("861", "", VerifyState.ON_TARGET, "2.4.1", 1.0, "command"),
        VerifyResult("862", "", VerifyState.ON_TARGET, "2.4.1", 1.0, "command"),
        VerifyResult("863", "", VerifyState.NOT_YET, SCRIPT, 1.0, "command", "reads it"),
        VerifyResult("864", "", VerifyState.FAILED, None, None, "command", "step 2 failed"),
        VerifyResult("865", "", VerifyState.NEVER_SEEN, None, None, "command", "asleep"),
    ]
    ledger.record_verify(results)
    return ledger


def test_compliance_counts_states_values_and_lists_failed_devices_first() -> None:
    results = [
        VerifyResult(f"86{i}", "", state, value, None, "datapoints")
        for i, (state, value) in enumerate(
            [(VerifyState.NEVER_SEEN, None), (VerifyState.NOT_YET, "2.3"),
             (VerifyState.ON_TARGET, "2.4.1"), (VerifyState.FAILED, "2.3")]
        )
    ]  # fmt: skip
    c = compliance_of(results, sample=2)
    assert c is not None
    assert list(c.by_state.values()) == [1, 1, 1, 1]
    assert c.versions == (("2.3", 2), ("2.4.1", 1))
    assert [r.state for r in c.not_on_target] == [VerifyState.FAILED, VerifyState.NOT_YET]
    assert (c.on_target_share, c.source) == (0.25, "datapoints")
    assert compliance_of([]) is None


def test_the_summary_shows_the_compliance_tables(tmp_path: Path) -> None:
    with _verified(tmp_path / "l.db") as ledger:
        summary = summarize(ledger)
    assert summary.compliance is not None
    out = io.StringIO()
    console = Console(file=out, width=160)
    for table in [*compliance_tables(summary.compliance), render_table(summary)]:
        console.print(table)
    text = out.getvalue()
    assert text.index("Compliance") < text.index("Values read") < text.index("Ledger summary")
    assert "2 (40.0%)" in text and "step 2 failed" in text


def test_the_html_page_shows_the_compliance_first_and_escaped(tmp_path: Path) -> None:
    out = io.StringIO()
    with _verified(tmp_path / "l.db") as ledger:
        write_html(ledger, out)
    page = out.getvalue()
    assert 'id="compliance"' in page
    assert page.index('id="compliance"') < page.index('aria-label="figures"')
    assert "40.0% of 5 devices on target" in page
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert page.count("<code>2.4.1</code>") == 1  # the values table: 2.4.1 read by 2 devices
    assert "step 2 failed" in page


def test_a_ledger_never_verified_has_no_compliance(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.register([make_command(1)])
        assert summarize(ledger).compliance is None
        out = io.StringIO()
        write_html(ledger, out)
    assert 'id="compliance"' not in out.getvalue()
