"""Reports of a ledger: the summary in figures, the table a person reads, and the exports
(csv, jsonl, json) tools read.

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
