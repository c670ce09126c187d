"""The firmware of each emulated device, as LwM2M object 5 (Firmware Update) and 3/0/3 (Firmware
Version) make it change when cached commands reach the device, and the record of what reached it.

A device starts on its registered ``firmware`` (registry.py), else the fleet's default. At a
wake (devices.py), a command delivered to it acts:

- a WRITE of 5/0/1 (Package URI, the value in the write's data) stores the URI; State 5/0/3
  becomes 2 (Downloaded);
- an EXECUTE of 5/0/2 (Update) with a URI stored installs it: the version becomes the last
  ``\\d+(\\.\\d+)+`` in the URI (".../nb/2.4.1.bin" -> "2.4.1"; without one, the fleet's
  ``firmware_target``), State back to 0, Update Result 5/0/5 1, the URI cleared; without a URI
  it fails (send_status 6, METHOD_NOT_ALLOWED, no cmd_result) and the version stays, unless its
  own args name the image (``url=<uri>`` and/or ``fw=<version>``, as jobs/example.yaml's do: an
  execute's args are the device's to define, and this device takes them as a one-call update);
- a READ answers the current value: 3/0/3 the version, 5/0/1 the URI, 5/0/3 the state, 5/0/5
  the result; a read of a whole object or instance (no res_id) of object 3 or 5 answers the JSON
  text of ``[{"res_id": 3, "val": "2.4.1"}, ...]``; any other read "<obj>/<inst>/<res>".

Each delivery is recorded (when, operation, path, whether it succeeded), with whether an execute
of 5/0/2 ever reached the device before a write of 5/0/1 had: what end-to-end tests assert on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import orjson

from dispatcher.emulator.state import StoredCommand, format_answer_time

__all__ = ["DeviceFirmware", "Firmware", "version_in"]

_VERSION = re.compile(r"\d+(?:\.\d+)+")
_ARG = re.compile(r"(?:^|[;&,\s])(url|fw)=([^;&,\s]+)", re.IGNORECASE)  # in an execute's args
RESULT_OK: Final = "OK"  # cmd_result of a successful execute or write
NOT_ALLOWED: Final = "METHOD_NOT_ALLOWED"  # confirm_status of an Update with nothing to install
IDLE, DOWNLOADED = 0, 2  # 5/0/3 State
UPDATED = 1  # 5/0/5 Update Result: success
_KNOWN: Final = {3: (3,), 5: (1, 3, 5)}  # resources a whole-object read answers, by object


def version_in(uri: str) -> str | None:
    """The last dotted version number in a package URI, if any."""
    found = _VERSION.findall(uri)
    return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class Delivered:
    """One command that reached the device."""

    at: float  # unix seconds, server clock
    type: str  # READ, WRITE or EXECUTE
    path: str  # "obj/inst/res", as far as given
    ok: bool

    def shown(self) -> dict[str, object]:
        """As the admin call shows it."""
        return {"at": format_answer_time(self.at), "type": self.type, "path": self.path,
                "ok": self.ok}  # fmt: skip


@dataclass(slots=True)
class DeviceFirmware:
    """One device's firmware state and the commands that reached it, in order."""

    version: str
    uri: str | None = None  # 5/0/1 Package URI, once written
    state: int = IDLE  # 5/0/3
    result: int = 0  # 5/0/5
    last_wake: float | None = None
    delivered: list[Delivered] = field(default_factory=list)
    write_delivered: bool = False  # a write of 5/0/1 reached it
    execute_before_write: bool = False  # an execute of 5/0/2 reached it before any such write

    def values(self) -> dict[tuple[int, int], str]:
        """Its resources' values as text, by (object, resource)."""
        return {(3, 3): self.version, (5, 1): self.uri or "", (5, 3): str(self.state),
                (5, 5): str(self.result)}  # fmt: skip

    def shown(self) -> dict[str, object]:
        """As the admin call shows it."""
        return {
            "firmware": self.version,
            "package_uri": self.uri,
            "state": self.state,
            "update_result": self.result,
            "last_wake": None if self.last_wake is None else format_answer_time(self.last_wake),
            "execute_before_write": self.execute_before_write,
            "delivered": [d.shown() for d in self.delivered],
        }


def _path(cmd: StoredCommand) -> str:
    parts = (cmd.obj_id, cmd.obj_inst_id, cmd.res_id)
    return "/".join(str(p) for p in parts if p is not None)


def _package_uri(cmd: StoredCommand) -> str | None:
    """The Package URI a write of object 5 carries (resource 1 of its data), if any."""
    if cmd.type != "WRITE" or cmd.obj_id != 5 or cmd.obj_inst_id not in (0, None):
        return None
    data = orjson.loads(cmd.args or "[]")
    for item in data if isinstance(data, list) else ():
        if isinstance(item, dict) and item.get("res_id") == 1:
            return str(item.get("val"))
    return None


def _image_in_args(args: str | None) -> str | None:
    """The version an Update's own args name: ``url=``'s version, else ``fw=``; None if none."""
    pairs = {key.lower(): value for key, value in _ARG.findall(args or "")}
    if "url" in pairs:
        return version_in(pairs["url"]) or pairs.get("fw") or ""
    return pairs.get("fw")


class Firmware:
    """Every device's firmware, made on first use: its registered version (``start``) or
    ``default``; ``target`` is what an update whose URI names no version installs."""

    def __init__(
        self,
        start: Callable[[str], str | None],
        default: str,
        target: str,
    ) -> None:
        self._start = start
        self.default = default
        self.target = target
        self._devices: dict[str, DeviceFirmware] = {}

    def get(self, imei: str) -> DeviceFirmware | None:
        """The device's state, if it ever woke or was delivered a command."""
        return self._devices.get(imei)

    def of(self, imei: str) -> DeviceFirmware:
        """The device's state, made on first use."""
        device = self._devices.get(imei)
        if device is None:
            version = self._start(imei) or self.default
            device = self._devices[imei] = DeviceFirmware(version)
        return device

    def version(self, imei: str) -> str:
        """The version the device runs now."""
        device = self._devices.get(imei)
        return device.version if device is not None else (self._start(imei) or self.default)

    def woke(self, imei: str, at: float) -> None:
        """The device woke at ``at``."""
        self.of(imei).last_wake = at

    def deliver(self, imei: str, cmd: StoredCommand, at: float, *, fails: bool) -> str | None:
        """The command reached the device at ``at``: apply it; its cmd_result, or None when the
        device answers an error (``fails``: an error device, which changes nothing)."""
        device = self.of(imei)
        where = (cmd.obj_id, cmd.obj_inst_id, cmd.res_id)
        update = cmd.type == "EXECUTE" and where == (5, 0, 2)
        if update and not device.write_delivered:
            device.execute_before_write = True
        uri = _package_uri(cmd)
        if uri is not None:
            device.write_delivered = True
        image = _image_in_args(cmd.args) if update and device.uri is None else None
        ok = not fails and not (update and device.uri is None and image is None)
        device.delivered.append(Delivered(at, cmd.type, _path(cmd), ok))
        if not ok:
            return None
        if uri is not None:
            device.uri, device.state = uri, DOWNLOADED
        elif update:
            named = image if device.uri is None else version_in(device.uri)
            device.version = named or self.target
            device.uri, device.state, device.result = None, IDLE, UPDATED
        return self._read(device, cmd) if cmd.type == "READ" else RESULT_OK

    @staticmethod
    def _read(device: DeviceFirmware, cmd: StoredCommand) -> str:
        values = device.values()
        if cmd.res_id is not None:
            value = values.get((cmd.obj_id, cmd.res_id))
            return value if value is not None else _path(cmd)
        known = _KNOWN.get(cmd.obj_id)
        if known is None or cmd.obj_inst_id not in (0, None):
            return _path(cmd)
        items = [{"res_id": res, "val": values[cmd.obj_id, res]} for res in known]
        return orjson.dumps(items).decode()
