"""A PNG read with the standard library (zlib, struct): its size and the colour of its pixels,
enough to check a browser's screenshot (8-bit RGB or RGBA, not interlaced, as Chromium writes)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["Png", "read_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel at 8 bits


@dataclass(frozen=True, slots=True)
class Png:
    """A decoded image: its size, and its rows of raw pixel bytes (RGB or RGBA)."""

    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The RGB colour at (x, y)."""
        at = x * self.channels
        r, g, b = self.rows[y][at : at + 3]
        return r, g, b

    def column(self, x: int) -> list[tuple[int, int, int]]:
        """The colours of column ``x``, top to bottom."""
        return [self.pixel(x, y) for y in range(self.height)]


def read_png(data: bytes) -> Png:
    """``data`` decoded (PNG specification, sections 5, 9 and 11)."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    at, idat = 8, bytearray()
    width = height = channels = 0
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, channels)
        rows.append(bytes(line))
        previous = line
    return Png(width, height, channels, tuple(rows))


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    """Undo one scanline's filter in place (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    n = len(line)
    if kind == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif kind == 2:
        for i in range(n):
            line[i] = (line[i] + up[i]) & 255
    elif kind == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 255
    elif kind == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b = up[i]
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 255
