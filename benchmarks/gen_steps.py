"""Generate a YAML job of steps and the same commands as a plain YAML job, for comparing the two.

Usage: python -m benchmarks.gen_steps STEPS_PATH PLAIN_PATH STEPS DEVICES

The job of steps sends STEPS steps to each of DEVICES devices; the plain job lists the same
STEPS x DEVICES commands as targets of their own (no ``steps:``), in the same order. Each step is
an execute or a write with arguments of its own, so every command is distinct.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.gen_fleet import imei_for

__all__ = ["step_fields", "write_steps_jobs"]

# Spelled out rather than built with yaml: importing it would grow the benchmark process.
_DEFAULTS = "defaults:\n  obj_inst_id: 0\n  expired_time: +2d\n"


def step_fields(i: int) -> str:
    """The i-th step (from 1) as a YAML flow mapping: an execute or a write, each distinct."""
    kind = i % 3
    if kind == 1:  # Firmware Update · Update (E)
        return f'op: execute, obj_id: 5, res_id: 2, args: "go{i}"'
    if kind == 2:  # Firmware Update · Package URI (W, a String)
        return f'op: write, obj_id: 5, res_id: 1, value: "coap://fw.example/{i}.bin"'
    # Digital Input · Digital Input Counter Reset (E)
    return f'op: execute, obj_id: 3200, res_id: 5505, args: "r{i}"'


def write_steps_jobs(steps_path: Path, plain_path: Path, steps: int, devices: int) -> None:
    """Write the job of ``steps`` steps to ``devices`` devices, and the same commands plainly."""
    imeis = [imei_for(d) for d in range(devices)]
    lines = [f"job: steps-{steps}x{devices}", _DEFAULTS.rstrip("\n"), "steps:"]
    lines += [f"  - {{{step_fields(i)}}}" for i in range(1, steps + 1)]
    lines += ["targets:", *(f'  - imei: "{imei}"' for imei in imeis)]
    steps_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = [f"job: plain-{steps}x{devices}", _DEFAULTS.rstrip("\n"), "targets:"]
    lines += [
        f'  - {{imei: "{imei}", {step_fields(i)}}}' for i in range(1, steps + 1) for imei in imeis
    ]
    plain_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str]) -> int:
    """Command line: STEPS_PATH PLAIN_PATH STEPS DEVICES."""
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    write_steps_jobs(Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
