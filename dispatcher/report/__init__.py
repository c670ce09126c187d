"""Reports of a ledger: the summary in figures, the table a person reads, and the exports
(csv, jsonl, json) tools read.

May import: errors, times, ledger. Never job, onenet, run, cli or emulator.
"""

from dispatcher.report.summary import (
    EXPORT_FIELDS,
    Summary,
    export_record,
    render_summary,
    render_table,
    summarize,
    summary_dict,
    write_export,
)

__all__ = [
    "EXPORT_FIELDS",
    "Summary",
    "export_record",
    "render_summary",
    "render_table",
    "summarize",
    "summary_dict",
    "write_export",
]
