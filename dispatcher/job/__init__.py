"""The job: Job records, reading YAML and CSV job files into commands (dispatcher.model's Command),
the field rules, duplicate tracking, validation, the job's fingerprint, and writing job files.

May import: errors, times, lwm2m (what the ids mean), model (the command value). Never onenet,
ledger, run, report, cli or emulator: a job is read and checked without knowing how it is sent.
"""

from dispatcher.job.model import (
    FIELDS,
    Command,
    Job,
    PastTimes,
    Problem,
    Validation,
    command_fingerprint,
    command_key,
    job_fingerprint,
    load_job,
    validate_job,
)

__all__ = [
    "FIELDS",
    "Command",
    "Job",
    "PastTimes",
    "Problem",
    "Validation",
    "command_fingerprint",
    "command_key",
    "job_fingerprint",
    "load_job",
    "validate_job",
]
