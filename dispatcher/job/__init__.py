"""The job: Command and Job records, reading YAML and CSV job files, the field rules, duplicate
tracking, validation and the job's fingerprint.

May import: errors, times, lwm2m (what the ids mean). Never onenet, ledger, run, report, cli or
emulator: a job is read and checked without knowing how it is sent.
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
