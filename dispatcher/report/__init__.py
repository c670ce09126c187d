"""Reports of a ledger: the summary in figures, the table a person reads, the exports (csv, jsonl,
json) tools read, the workbook Excel opens (spreadsheet.py, xlsx: only it loads openpyxl), the
HTML page (html.py, imported on its own: only that report loads jinja2) and what to do next
(next_steps.py, read by every command that ends with advice).

May import: errors, times, ledger. Never job, onenet, run, cli or emulator.
"""

from dispatcher.report.export import EXPORT_FIELDS, export_record, write_export
from dispatcher.report.render import render_table
from dispatcher.report.summary import Summary, summarize

__all__ = [
    "EXPORT_FIELDS",
    "Summary",
    "export_record",
    "render_table",
    "summarize",
    "write_export",
]
