"""The command: one immutable record of what is sent to one device (operation, ids, window,
delivery options, product, step), a write's typed values and the body they make, and the
command's ledger key and job fingerprint.

Pure: no I/O. May import: errors, times. Every other layer (job, ledger, onenet, run, report, cli,
emulator) may import it.
"""

from dispatcher.model.command import (
    MODES,
    OPS,
    Command,
    Op,
    args_text,
    command_fingerprint,
    command_key,
    job_fingerprint,
)
from dispatcher.model.writes import WriteValue, body_text, write_values

__all__ = [
    "MODES",
    "OPS",
    "Command",
    "Op",
    "WriteValue",
    "args_text",
    "body_text",
    "command_fingerprint",
    "command_key",
    "job_fingerprint",
    "write_values",
]
