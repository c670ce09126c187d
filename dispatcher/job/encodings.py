"""Which text encoding a CSV is read in: a byte-order mark first, then strict UTF-8, then GB18030.

Excel on a Chinese system saves "CSV" as GBK without a byte-order mark; GB18030 is a superset of
GBK (and of GB2312), so a file that is not UTF-8 is tried as GB18030. Bytes decode as GB18030 by
chance more often than as UTF-8, so that fallback also wants text without control characters or
private-use characters (which a file in another encoding, read as GB18030, tends to show). A
forced encoding (``--encoding``, a YAML job's ``encoding:``) replaces the guess. The whole file is
decoded once, a chunk at a time, when the job is loaded, so that a byte that does not decode is
an error naming its line before any row is checked.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dispatcher.errors import JobFileError
from dispatcher.job.hints import utf16_problem

__all__ = ["UTF8", "Decoding", "decoding_of", "encoding_problem"]

_CHUNK = 1 << 20  # bytes decoded at a time: a big fleet is never held
_HEAD = 1 << 16
_BOMS = (  # UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters but tab, LF and CR, and the private-use area (where GB18030 puts the
# byte pairs no character is assigned to): not in a fleet list read in the right encoding.
_UNLIKELY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff]")
# Chinese as UTF-8 writes it: CJK punctuation, ideographs, full-width forms.
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


@dataclass(frozen=True, slots=True)
class Decoding:
    """How a CSV's bytes are read: the codec to open it with, its name as shown, and why."""

    codec: str
    label: str = "UTF-8"
    why: str = ""  # "" for plain UTF-8 (with or without its byte-order mark)

    @property
    def note(self) -> str:
        """'read as GB18030 (not UTF-8)', or '' when the file is plain UTF-8."""
        return f"read as {self.label} ({self.why})" if self.why else ""


UTF8 = Decoding("utf-8-sig")
"""Plain UTF-8, a byte-order mark skipped."""


def encoding_problem(name: str) -> str | None:
    """What is wrong with an encoding's name (unknown, or no text encoding), else None."""
    try:
        codecs.lookup(name)
        b"x".decode(name, "ignore")  # LookupError for a codec that is no text encoding (hex)
    except LookupError:
        return f"unknown encoding {name!r} (e.g. gb18030, gbk, big5, utf-16, utf-8)"
    except UnicodeError:  # a codec for something else (idna: host names)
        return f"{name!r} is no encoding a CSV is saved in (e.g. gb18030, gbk, big5, utf-16, utf-8)"
    return None


def decoding_of(path: Path, source: str, forced: str | None, how: str) -> Decoding:
    """The decoding of the CSV at ``path``: ``forced`` (a known codec's name) or found as the
    module docstring says; JobFileError at the first line that does not decode.

    ``how``: what forces one (``--encoding`` or ``encoding:``), for messages.
    """
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return UTF8  # the reader says why it cannot be read
    if forced is not None:
        codec = codecs.lookup(forced).name
        plain = codec in ("utf-8", "utf-8-sig")
        codec = "utf-8-sig" if plain else codec
        label = "UTF-8" if plain else codec.upper()
        bad = _first_bad_line(path, codec, unlikely=False)
        if bad is not None:
            message = f"does not decode as {label}, which {how} names: is that its encoding?"
            raise JobFileError(source, bad, "", message)
        return UTF8 if plain else Decoding(codec, label, f"as {how} says")
    for bom, codec in _BOMS:
        if head.startswith(bom):
            label = "UTF-8" if codec == "utf-8-sig" else codecs.lookup(codec).name.upper()
            bad = _first_bad_line(path, codec, unlikely=False)
            if bad is not None:
                message = f"starts with a {label} byte-order mark but does not decode as {label}"
                raise JobFileError(source, bad, "", message)
            return UTF8 if codec == "utf-8-sig" else Decoding(codec, label, "its byte-order mark")
    bad = _first_bad_line(path, "utf-8-sig", unlikely=False)
    if bad is None:
        return _lookalike(path, how) or UTF8
    if utf16 := utf16_problem(head):
        raise JobFileError(source, 1, "", utf16)
    utf8 = _first_utf8_cjk_line(path)
    if utf8 is not None:  # read as GB18030, that line's Chinese would become other Chinese
        message = (
            f"mixes encodings: line {utf8} is UTF-8, line {bad} is not (GBK?): save the"
            f" whole file in one encoding, or name its encoding with {how}"
        )
        raise JobFileError(source, bad, "", message)
    if _first_bad_line(path, "gb18030", unlikely=True) is None:
        return Decoding("gb18030", "GB18030", "not UTF-8")
    message = (
        f"is neither UTF-8 nor GB18030 (GBK) text: save it as UTF-8, or name its encoding"
        f" with {how}"
    )
    raise JobFileError(source, bad, "", message)


def _lookalike(path: Path, how: str) -> Decoding | None:
    """UTF-8, said with the line that GBK would read as other text, when the file's only
    non-ASCII text is no Chinese as UTF-8 but Chinese as GBK (a short GBK text, 路, is UTF-8's
    "·" by chance); None when the file has Chinese as UTF-8 (then it is UTF-8) or none of that."""
    found: Decoding | None = None
    for number, raw, text in _utf8_lines(path):
        if _CJK.search(text):
            return None  # Chinese as UTF-8, on any line: no GBK file reads so
        if found is not None:
            continue  # the first lookalike is said; a later line may still be Chinese
        try:
            other = raw.decode("gb18030")
        except UnicodeDecodeError:
            continue
        if _UNLIKELY.search(other) or not _CJK.search(other):
            continue
        was, could = _non_ascii(text), _non_ascii(other)
        why = f"line {number} could be GBK: {could!r}, not {was!r}; if so, say {how} gbk"
        found = Decoding("utf-8-sig", "UTF-8", why)
    return found


def _non_ascii(text: str) -> str:
    """The non-ASCII characters of ``text``, runs joined by a space (what two readings differ
    in)."""
    return " ".join(re.findall(r"[^\x00-\x7f]+", text))


def _first_utf8_cjk_line(path: Path) -> int | None:
    """The first line of ``path`` that is UTF-8 holding Chinese (a CJK character, three bytes
    in UTF-8), else None. GBK text is valid UTF-8 by chance now and then, but only as two-byte
    characters (accented letters, Greek, Cyrillic), never as a run of Chinese."""
    return next((number for number, _, text in _utf8_lines(path) if _CJK.search(text)), None)


def _utf8_lines(path: Path) -> Iterator[tuple[int, bytes, str]]:
    """Each line of ``path`` that is not ASCII and is UTF-8: its number, bytes and text (a
    byte-order mark on line 1 left out)."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.isascii():
                continue
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                continue
            yield number, raw, text


def _lines_before(codec: str, state: tuple[bytes, int], good: bytes) -> int:
    """The line of a chunk's bad byte: the ``good`` bytes before it decoded again from the
    decoder's ``state`` before the chunk (line 1 when even they do not decode)."""
    again = codecs.getincrementaldecoder(codec)("strict")
    again.setstate((b"", state[1]))
    try:
        return again.decode(good).count("\n") + 1
    except UnicodeError:
        return 1


def _first_bad_line(path: Path, codec: str, *, unlikely: bool) -> int | None:
    """The first line of ``path`` that does not decode in ``codec`` (or, with ``unlikely``,
    that holds a character of _UNLIKELY), else None."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    lines = 0
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            state = decoder.getstate()
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return lines + _lines_before(codec, state, exc.object[: exc.start])
            except UnicodeError:  # a codec that says no more than that (punycode)
                return lines + 1
            if unlikely and (m := _UNLIKELY.search(text)):
                return lines + text.count("\n", 0, m.start()) + 1
            lines += text.count("\n")
            if not chunk:
                return None
