"""Job files the command-line tests share: a good and a bad job in YAML and CSV with the
problem lines validate prints for them, and a valid job for any devices."""

from __future__ import annotations

from pathlib import Path

# the write_file fixture's type, where the command-line tests look for it
from tests.support.files import WriteFile as WriteFile

ROOT = Path(__file__).resolve().parents[2]
AT = "2030-01-01T12:00:00"  # a planned start for validate: every absolute time below is after it
# Valid IMEIs (correct Luhn check digit).
I1, I2, I3, I4 = "490154203237518", "864512030000003", "358476090000076", "867231050000002"
BAD_LUHN = "490154203237519"
EXPORT_COLUMNS = (
    "imei", "obj_id", "obj_inst_id", "res_id", "args", "status", "errno", "error", "uuid",
    "attempts", "source",
)  # fmt: skip

GOOD_YAML = f"""\
job: reboot bench
defaults:
  obj_id: 3
  obj_inst_id: 0
  res_id: 4
  args: "reboot"
  expired_time: +2d
targets:
  - imei: "{I1}"
  - imei: {I2}
    args: "reboot now"
  - imei: "{I3}"
    trigger: [register, update]
"""

GOOD_CSV = (
    "imei,obj_id,obj_inst_id,res_id,args,expired_time,trigger_msg\r\n"
    f'{I1},3303,0,5605,"on, full",2030-01-03T00:00:00,7\r\n'
    f"{I2},3303,0,5605,off,+6h,2\r\n"
)

# The resource line of validate's summary for GOOD_YAML (and the bad jobs), and for GOOD_CSV.
REBOOT = "  resource: 3/0/4 Device · Reboot (E)"
RESET = "  resource: 3303/0/5605 Temperature · Reset Min and Max Measured Values (E)"

BAD_YAML = f"""\
job: broken
defaults:
  obj_id: 3
  obj_inst_id: 0
  res_id: 4
  expired_time: +2d
targets:
  - imei: "{I1}"
    tigger_msg: 3
  - imei: "12345"
  - imei: "{I2}"
    obj_id: 70000
  - imei: "{I3}"
    valid_time: "2030-01-05T00:00:00"
    expired_time: "2030-01-04T00:00:00"
  - imei: "{I4}"
"""
BAD_YAML_LINES = [
    "bad.yaml:9: tigger_msg: unknown field (did you mean trigger_msg?)",
    "bad.yaml:10: imei: must be 15 digits, got '12345'",
    "bad.yaml:12: obj_id: must be a whole number from 0 to 65535, got '70000'",
    "bad.yaml:15: expired_time: must be later than valid_time (2030-01-05T00:00:00)",
]

BAD_CSV = (
    "imei,obj_id,obj_inst_id,res_id,expired_time\n"
    f"{I1},3,0,4,+2d\n"
    "12345,3,0,4,+2d\n"
    f"{I2},3,0,x,+2d\n"
    f"{I3},3,0,4,2029-01-01T00:00:00\n"
)
BAD_CSV_LINES = [
    "bad.csv:3: imei: must be 15 digits, got '12345'",
    "bad.csv:4: res_id: must be a whole number from 0 to 65535, got 'x'",
    "bad.csv:5: expired_time: 2029-01-01T00:00:00 is in the past at the start checked against"
    " (2030-01-01T12:00:00 UTC+8); OneNET refuses it",
]


def job_yaml(*imeis: str) -> str:
    """A valid job for the given devices, relative times only (valid whenever it runs)."""
    targets = "".join(f'  - imei: "{imei}"\n' for imei in imeis)
    return (
        "job: cli test\n"
        "defaults:\n"
        "  obj_id: 3303\n"
        "  obj_inst_id: 0\n"
        "  res_id: 5605\n"
        '  args: "report_interval=900"\n'
        "  expired_time: +1d\n"
        f"targets:\n{targets}"
    )
