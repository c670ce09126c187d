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

    def last_row_not(self, colour: tuple[int, int, int]) -> int:
        """The lowest row with a pixel of another colour than ``colour`` (-1: none)."""
        plain = bytes(colour) * self.width if self.channels == 3 else None
        for y in range(self.height - 1, -1, -1):
            row = self.rows[y]
            if plain is not None and row == plain:
                continue
            if any(self.pixel(x, y) != colour for x in range(self.width)):
                return y
        return -1

    def crop(self, top: int, bottom: int) -> bytes:
        """Rows ``top`` to ``bottom`` (excluded) as a PNG file of their own."""
        rows = self.rows[max(0, top) : min(self.height, bottom)]
        header = struct.pack(">IIBBBBB", self.width, len(rows), 8, 2 if self.channels == 3 else 6,
                             0, 0, 0)  # fmt: skip
        raw = b"".join(b"\x00" + row for row in rows)  # filter 0 on every row
        return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) \
            + _chunk(b"IEND", b"")  # fmt: skip


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


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
