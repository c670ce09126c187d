"""What the tests of a write's values share: resources of each LwM2M type (ids from the
registry) and a value typed for one of them, accepted, warned about or refused."""

from __future__ import annotations

from dispatcher.job.values import Err
from dispatcher.job.writes import typed_value
from dispatcher.model import WriteValue

ON_OFF = (3311, 5850)  # Light Control · On/Off, Boolean RW
DIMMER = (3311, 5851)  # Light Control · Dimmer, Integer RW 0..100
URI = (5, 1)  # Firmware Update · Package URI, String 0..255
PACKAGE = (5, 0)  # Firmware Update · Package, Opaque W
CLOCK = (3, 13)  # Device · Current Time, Time RW
MAKER = (3, 0)  # Device · Manufacturer, String R, no range
EDRX = (10, 7)  # LWM2M Cellular Connectivity · eDRX parameters for Iu mode, Opaque 0..255
LINK = (0, 17)  # LWM2M Security · OSCORE Security Mode, Objlnk
VENDOR = (33000, 1)  # not in the registry
NEW_YEAR_2026 = 1767225600  # 2026-01-01T00:00:00Z


def typed(ids: tuple[int, int], text: str, infer: bool = True) -> WriteValue | Err:
    """A value typed for the resource ``ids``: the value, or an Err."""
    return typed_value(ids[0], ids[1], text, infer)


def ok(ids: tuple[int, int], text: str, infer: bool = True) -> WriteValue:
    """A value typed without a problem."""
    value = typed(ids, text, infer)
    assert isinstance(value, WriteValue), getattr(value, "message", value)
    return value


def warning(ids: tuple[int, int], text: str, infer: bool = True) -> tuple[str, WriteValue]:
    """A value typed with a warning: its message and the value sent."""
    value = typed(ids, text, infer)
    assert isinstance(value, Err), value
    assert isinstance(value.keep, WriteValue), f"an error, not a warning: {value.message}"
    assert len(value.message) < 140 and not value.message.endswith(".")
    return value.message, value.keep
