"""A step's wait: what a device's NEXT step waits for before it is sent, this step accepted by
OneNET (``wait: accepted``, the default) or delivered to the device (``wait: delivered``), and
how long a delivery is waited for.

``wait`` belongs to the step the next one waits on: ``wait: delivered`` on step 1 sends step 2
only once step 1 is delivered; on the last step, the run follows that step to delivery too before
it ends. Three spellings of a timeout (docs/steps.md): ``wait: delivered`` with ``wait_timeout:
6h``; ``wait: {until: delivered, timeout: 6h}``; and, in a step or the defaults with ``wait:
delivered``, a ``timeout:`` with a unit (``6h``, ``30m``, ``2d``, ``90s``). A bare number there
stays OneNET's per-attempt timeout in seconds (5..40). Without a timeout, a delivery is waited for
until the command is final (its window ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from yaml.nodes import MappingNode, Node, ScalarNode

from dispatcher.job.plan import parse_duration
from dispatcher.job.rows import Problem

__all__ = [
    "WAIT_KEYS",
    "Wait",
    "WaitGiven",
    "WaitUntil",
    "has_unit",
    "read_wait",
    "resolve_waits",
    "say_duration",
]

WaitUntil = Literal["accepted", "delivered"]
WAIT_KEYS: Final = ("wait", "wait_timeout")
_UNTIL: Final[dict[str, WaitUntil]] = {"accepted": "accepted", "delivered": "delivered"}
_UNIT: Final = re.compile(r"\s*\+?\s*\d[\d\s]*[dhms].*", re.IGNORECASE)
_WHAT = "what the next step waits for: this step accepted by OneNET, or delivered to the device"


@dataclass(frozen=True, slots=True)
class Wait:
    """What a step's next step waits for, and how long a delivery is waited for (None: until
    the step's command is final)."""

    until: WaitUntil = "accepted"
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class WaitGiven:
    """A step's (or the defaults') wait as written: each part None when it is not given."""

    until: WaitUntil | None = None
    timeout_s: float | None = None
    line: int = 0  # of wait:
    timeout_line: int = 0  # of the timeout, in whichever spelling
    timeout_key: str = ""  # wait_timeout, wait.timeout or timeout
    broken: bool = False  # a wait: was given, and what it waits for is wrong (said already)


def has_unit(text: str) -> bool:
    """Whether a ``timeout:`` is written with a unit (``6h``): a wait's timeout, not OneNET's."""
    return _UNIT.fullmatch(text) is not None


def say_duration(seconds: float) -> str:
    """A duration as a person writes it: 6h, 90m, 2d, 45s."""
    whole = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def read_wait(
    nodes: list[tuple[str, Node, Node]],
    unit_timeout: tuple[str, int] | None,
    source: str,
    problems: list[Problem],
) -> WaitGiven | None:
    """The wait keys of one mapping (``wait``, ``wait_timeout``; key, key node, value node) and
    a ``timeout:`` written with a unit (text, line), as written; None when none is given."""
    if not nodes and unit_timeout is None:
        return None
    until: WaitUntil | None = None
    timeout: float | None = None
    line = timeout_line = 0
    timeout_key = ""

    def duration(text: str | None, at: int, key: str) -> None:
        nonlocal timeout, timeout_line, timeout_key
        if timeout_key:
            message = (
                f"a wait's timeout given twice (first as {timeout_key} on line {timeout_line})"
            )
            problems.append(Problem(source, at, key, message))
            return
        try:
            timeout = parse_duration(text or "")
        except ValueError as exc:
            problems.append(Problem(source, at, key, f"the wait's timeout {exc}"))
            return
        timeout_line, timeout_key = at, key

    for name, knode, vnode in nodes:
        at = int(vnode.start_mark.line) + 1
        if name == "wait_timeout":
            duration(_scalar(vnode), at, name)
            continue
        line = int(knode.start_mark.line) + 1
        if isinstance(vnode, MappingNode):  # wait: {until: delivered, timeout: 6h}
            for k, v in vnode.value:
                key = str(k.value) if isinstance(k, ScalarNode) else "?"
                vat = int(v.start_mark.line) + 1
                if key == "until":
                    until = _until(_scalar(v), vat, "wait.until", source, problems) or until
                elif key == "timeout":
                    duration(_scalar(v), vat, "wait.timeout")
                else:
                    message = "unknown key: a wait is {until: accepted|delivered, timeout: 6h}"
                    problems.append(Problem(source, vat, f"wait.{key}", message))
            if until is None:
                message = "gives no until: (accepted or delivered)"
                problems.append(Problem(source, line, "wait", message))
        else:
            until = _until(_scalar(vnode), at, "wait", source, problems)
    if unit_timeout is not None:
        duration(*unit_timeout, "timeout")
    broken = until is None and any(name == "wait" for name, _, _ in nodes)
    return WaitGiven(until, timeout, line, timeout_line, timeout_key, broken)


def _scalar(node: Node) -> str | None:
    return str(node.value) if isinstance(node, ScalarNode) else None


def _until(
    text: str | None, line: int, key: str, source: str, problems: list[Problem]
) -> WaitUntil | None:
    t = (text or "").strip().lower()
    if t in _UNTIL:
        return _UNTIL[t]
    shown = "a list or mapping" if text is None else repr(text)
    message = f"must be accepted or delivered ({_WHAT}), got {shown}"
    problems.append(Problem(source, line, key, message))
    return None


def resolve_waits(
    defaults: WaitGiven | None, steps: list[WaitGiven | None], source: str
) -> tuple[tuple[Wait, ...], list[Problem]]:
    """Each step's wait (its own parts over the defaults'), and the problems of the whole: a
    timeout where the next step does not wait for delivery, a wait in a job without steps."""
    d = defaults or WaitGiven()
    problems: list[Problem] = []
    if not steps:
        if defaults is not None:
            at = defaults.line or defaults.timeout_line
            key = "wait" if defaults.line else defaults.timeout_key
            message = "only a job with steps: waits (for a step before the next one is sent)"
            problems.append(Problem(source, at, key, message))
        return (), problems
    waits: list[Wait] = []
    for number, given in enumerate(steps, 1):
        g = given or WaitGiven()
        until = g.until or d.until or "accepted"
        timeout = g.timeout_s if g.timeout_key else d.timeout_s
        if g.timeout_key and until != "delivered" and not (g.broken or d.broken):
            problems.append(_needless(source, g, number))
            timeout = None
        waits.append(Wait(until, timeout if until == "delivered" else None))
    if d.timeout_key and not any(w.until == "delivered" for w in waits):
        problems.append(_needless(source, d, 0))
    return tuple(waits), problems


def _needless(source: str, given: WaitGiven, step: int) -> Problem:
    if step:
        message = (
            f"is a wait's timeout, but the step after step {step} waits only for its acceptance:"
            f" give wait: delivered on step {step}"
        )
    else:
        message = "is a wait's timeout, but no step waits for delivery: give wait: delivered"
    if given.timeout_key == "timeout":
        message += " (OneNET's per-attempt timeout is a bare number of seconds, 5..40)"
    return Problem(source, given.timeout_line, given.timeout_key, message)
