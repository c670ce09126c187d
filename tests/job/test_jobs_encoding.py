"""The encoding a CSV is read in: a byte-order mark, then UTF-8, then GB18030 (Excel's "CSV" on a
Chinese system is GBK); ``--encoding`` (Reading) and a YAML job's ``encoding:`` force one; each
line that does not decode is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.errors import JobFileError
from dispatcher.job.model import Reading, load_job
from tests.support.files import WriteFile
from tests.support.jobs import CSV_HEAD, DEFAULTS, I1, I2, check, commands

ROWS = f"{CSV_HEAD}{I1},3,0,4,开灯,+1d\n{I2},3,0,4,关灯 (东门),+1d\n"
TRADITIONAL = ROWS.replace("开灯", "開燈").replace("关灯 (东门)", "關燈 (東門)")  # Big5 has these


def test_gbk_csv_without_a_byte_order_mark_is_read_as_gb18030(write_file: WriteFile) -> None:
    path = write_file("c.csv", ROWS.encode("gbk"))
    result, problems = check(path)
    assert (problems, result.commands) == ([], 2)
    assert [c.args for c in commands(path)] == ["开灯", "关灯 (东门)"]
    table = load_job(path).table
    assert table is not None and table.note == f"{path}: read as GB18030 (not UTF-8)"


def test_gb18030_characters_outside_gbk_are_read(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1},3,0,4,𠀀灯,+1d\n".encode("gb18030"))
    assert [c.args for c in commands(path)] == ["𠀀灯"]


@pytest.mark.parametrize(
    ("codec", "label"), [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")]
)
def test_csv_with_a_utf16_or_utf32_byte_order_mark_is_read(
    write_file: WriteFile, codec: str, label: str
) -> None:
    data = ROWS.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    path = write_file("c.csv", data)
    assert [c.args for c in commands(path)] == ["开灯", "关灯 (东门)"]
    table = load_job(path).table
    assert table is not None and table.note == f"{path}: read as {label} (its byte-order mark)"


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_utf8_with_or_without_its_byte_order_mark_says_nothing(
    write_file: WriteFile, bom: str
) -> None:
    path = write_file("c.csv", bom + ROWS)
    assert [c.args for c in commands(path)] == ["开灯", "关灯 (东门)"]
    table = load_job(path).table
    assert table is not None and table.note == ""


def test_text_that_reads_as_gb18030_only_by_chance_is_refused(write_file: WriteFile) -> None:
    # 0xAA 0xA1 is a GBK user-defined pair: GB18030 reads it as a private-use character.
    path = write_file("c.csv", CSV_HEAD.encode() + f"{I1},3,0,4,".encode() + b"\xaa\xa1,+1d\n")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:2: is neither UTF-8 nor GB18030 (GBK) text: save it as UTF-8, or name its"
        " encoding with --encoding"
    )


def test_a_file_of_utf8_lines_and_gbk_lines_is_refused_not_read_as_gb18030(
    write_file: WriteFile,
) -> None:
    # Read as GB18030, the UTF-8 line's 固件=东门 would be sent as 鍥轰欢=涓滈棬: mojibake.
    head, utf8, gbk = CSV_HEAD.encode(), f"{I1},3,0,4,固件=东门,+1d\n", f"{I2},3,0,4,关灯,+1d\n"
    path = write_file("c.csv", head + utf8.encode() + gbk.encode("gbk"))
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:3: mixes encodings: line 2 is UTF-8, line 3 is not (GBK?): save the whole file"
        " in one encoding, or name its encoding with --encoding"
    )


def test_gbk_lines_that_are_valid_utf8_by_chance_are_not_taken_for_utf8(
    write_file: WriteFile,
) -> None:
    # 碌 (0xC2 0xB5 in GBK) is "µ" as UTF-8: a short GBK text can be UTF-8 by chance, never
    # Chinese as UTF-8 (three bytes a character).
    rows = f"{CSV_HEAD}{I1},3,0,4,碌,+1d\n{I2},3,0,4,关灯,+1d\n"
    assert "碌".encode("gbk").decode("utf-8") == "µ"
    path = write_file("c.csv", rows.encode("gbk"))
    assert [c.args for c in commands(path)] == ["碌", "关灯"]


def test_encoding_flag_reads_a_file_in_another_encoding(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1},3,0,4,café,+1d\n".encode("cp1252"))
    with pytest.raises(JobFileError, match=r"c\.csv:2: is neither UTF-8 nor GB18030"):
        load_job(path)
    reading = Reading(encoding="cp1252")
    assert [c.args for c in commands(path, reading)] == ["café"]
    table = load_job(path, reading).table
    assert table is not None and table.note == f"{path}: read as CP1252 (as --encoding says)"


def test_encoding_flag_beats_the_guess(write_file: WriteFile) -> None:
    path = write_file("c.csv", TRADITIONAL.encode("big5"))
    assert [c.args for c in commands(path, Reading(encoding="big5"))] == ["開燈", "關燈 (東門)"]


def test_a_file_that_does_not_decode_in_the_forced_encoding_names_the_line(
    write_file: WriteFile,
) -> None:
    path = write_file("c.csv", ROWS.encode("gbk"))
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="utf-8"))
    assert str(err.value) == (
        f"{path}:2: does not decode as UTF-8, which --encoding names: is that its encoding?"
    )


def test_the_line_that_does_not_decode_is_found_far_into_a_big_file(
    write_file: WriteFile,
) -> None:
    good = f"{I1},3,0,4,on,+1d\n".encode()
    data = CSV_HEAD.encode() + good * 80_000 + f"{I2},3,0,4,开,+1d\n".encode("gbk") + good
    path = write_file("c.csv", data)  # over 1 MiB: the bad byte is in a later chunk
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="utf-8"))
    assert str(err.value).startswith(f"{path}:80002: does not decode as UTF-8")


def test_utf16_forced_on_a_file_that_is_not_says_where(write_file: WriteFile) -> None:
    path = write_file("c.csv", (CSV_HEAD + "\n" * 3).encode("utf-16-le") + b"\x00\xdc\x41\x00")
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="utf-16-le"))
    assert str(err.value).startswith(f"{path}:5: does not decode as UTF-16-LE")


def test_encoding_flag_applies_to_csv_job_files_only(write_file: WriteFile) -> None:
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_csv: d.csv\n")
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="gbk"))
    assert str(err.value) == (
        f"{path}: --encoding applies to a CSV or .xlsx job file: a YAML job says it in the file"
        " (encoding: beside its targets_csv)"
    )


def test_yaml_encoding_forces_the_targets_csv_encoding(write_file: WriteFile) -> None:
    write_file("d.csv", TRADITIONAL.encode("big5"))
    path = write_file("j.yaml", "targets_csv: d.csv\nencoding: big5\n")
    result, problems = check(path)
    assert (problems, result.commands) == ([], 2)
    assert [c.args for c in commands(path)] == ["開燈", "關燈 (東門)"]
    table = load_job(path).table
    assert table is not None
    assert table.note == f"{path.parent / 'd.csv'}: read as BIG5 (as encoding: says)"


def test_yaml_encoding_that_does_not_decode_names_the_csv_line(write_file: WriteFile) -> None:
    write_file("d.csv", ROWS.encode("gbk"))
    path = write_file("j.yaml", "targets_csv: d.csv\nencoding: utf-8\n")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path.parent / 'd.csv'}:2: does not decode as UTF-8, which encoding: names:"
        " is that its encoding?"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gbkk", "encoding: unknown encoding 'gbkk' (e.g. gb18030, gbk, big5, utf-16, utf-8)"),
        ("hex", "encoding: unknown encoding 'hex'"),
        ("idna", "encoding: 'idna' is no encoding a CSV is saved in"),
        ("[gbk]", "encoding: must be an encoding's name (gb18030, gbk, utf-8, ...)"),
    ],
)
def test_yaml_encoding_must_name_a_text_encoding(
    write_file: WriteFile, value: str, message: str
) -> None:
    write_file("d.csv", ROWS)
    path = write_file("j.yaml", f"targets_csv: d.csv\nencoding: {value}\n")
    _, problems = check(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: {message}")


def test_yaml_encoding_without_targets_csv_is_pointed_out(write_file: WriteFile) -> None:
    path = write_file("j.yaml", f"encoding: gbk\ndefaults:\n  {DEFAULTS}\ntargets:\n  - '{I1}'\n")
    _, problems = check(path)
    assert problems == [f"{path}:1: encoding: applies to targets_csv, and there is none"]


def test_a_utf8_byte_order_mark_is_never_read_as_gb18030(write_file: WriteFile) -> None:
    path = write_file("c.csv", "\ufeff".encode() + ROWS.encode("gbk"))
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:2: starts with a UTF-8 byte-order mark but does not decode as UTF-8"
    )


@pytest.mark.parametrize("name", ["utf-8", "UTF8", "utf-8-sig"])
def test_forcing_utf8_by_any_name_says_nothing_more(write_file: WriteFile, name: str) -> None:
    path = write_file("c.csv", "\ufeff" + ROWS)
    table = load_job(path, Reading(encoding=name)).table
    assert table is not None and table.note == ""
    assert [c.args for c in commands(path, Reading(encoding=name))] == ["开灯", "关灯 (东门)"]


def test_a_codec_that_cannot_read_a_csv_names_line_1_not_a_traceback(write_file: WriteFile) -> None:
    path = write_file("c.csv", ROWS)
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="punycode"))
    assert str(err.value).startswith(f"{path}:1: does not decode as PUNYCODE")


# -- the promise, for any text: read back exactly, or refused; never read as other text ----------

_CHINESE = "开关灯东南西北门区号楼固件升级水表路灯夜间测试设备重启中文字段\uff0c\u3002\uff08\uff09"
_ASCII = "abcXYZ019 -_=()"


def _texts(alphabet: str) -> st.SearchStrategy[list[str]]:
    text = st.text(alphabet=st.sampled_from(alphabet), min_size=1, max_size=12)
    return st.lists(
        text.map(str.strip).filter(lambda t: bool(t) and not t.startswith(("-", "="))),
        min_size=1,
        max_size=6,
    )


def _file(write_file: WriteFile, texts: list[str], codecs: list[str]) -> Path:
    imeis = [I1, I2, "358476090000076", "867231050000002", "356938035643809", "860000000000001"]
    lines = [CSV_HEAD.encode(codecs[0])]  # utf-8-sig: a byte-order mark heads the file
    for n, text in enumerate(texts):
        codec = "utf-8" if codecs[n] == "utf-8-sig" else codecs[n]
        lines.append(f"{imeis[n]},3,0,4,{text},+1d\n".encode(codec))
    return write_file("c.csv", b"".join(lines))


_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(
    texts=_texts(_CHINESE + _ASCII),
    codecs=st.lists(st.sampled_from(["utf-8", "gbk", "utf-8-sig"]), min_size=6, max_size=6),
)
def test_any_file_of_utf8_and_gbk_lines_is_read_exactly_or_refused(
    write_file: WriteFile, texts: list[str], codecs: list[str]
) -> None:
    # Chinese is what tells UTF-8 from GBK in a file of both (three bytes a character in UTF-8);
    # accented letters alone cannot: "é" in UTF-8 is "茅" in GBK, each a fine text.
    path = _file(write_file, texts, codecs)
    try:
        read = [c.args for c in commands(path)]
    except JobFileError as exc:
        assert "encoding" in str(exc) or "UTF-8" in str(exc), str(exc)
        return
    if read != texts:  # never mojibake unsaid, but where no reader could tell:
        assert _told_it_could_be_gbk(path) or _undecidable(texts, codecs)


def _undecidable(texts: list[str], codecs: list[str]) -> bool:
    """A file of UTF-8 Chinese whose every GBK line is valid UTF-8 by chance (楼 in GBK is
    "¥" in UTF-8): the whole file is UTF-8, and its Chinese says so (the limit docs/jobs.md
    states)."""
    gbk = [t.encode("gbk") for t, c in zip(texts, codecs, strict=False) if c == "gbk"]
    utf8 = [t for t, c in zip(texts, codecs, strict=False) if c != "gbk" and not t.isascii()]
    return bool(utf8) and bool(gbk) and all(_is_utf8(b) for b in gbk)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _told_it_could_be_gbk(path: Path) -> bool:
    """Whether the summary says a line read as UTF-8 could be GBK (a short GBK text, 路, is
    valid UTF-8, "·", by chance: the file cannot tell, the note says how to)."""
    table = load_job(path).table
    return table is not None and "could be GBK" in table.note and "--encoding gbk" in table.note


@_SETTINGS
@given(
    texts=_texts(_CHINESE + _ASCII + "éüàèāǎ"), codec=st.sampled_from(["utf-8", "utf-8-sig", "gbk"])
)
def test_a_file_in_one_encoding_is_always_read_exactly(
    write_file: WriteFile, texts: list[str], codec: str
) -> None:
    # GBK text that is valid UTF-8 by chance (short, or accented) is never refused as "mixed";
    # read as UTF-8, the summary says the line could be GBK.
    path = _file(write_file, texts, [codec] * 6)
    read = [c.args for c in commands(path)]  # never refused
    assert read == texts or (codec == "gbk" and _told_it_could_be_gbk(path))


def test_a_utf8_file_with_chinese_after_a_lookalike_line_is_plain_utf8(
    write_file: WriteFile,
) -> None:
    # "°" on line 2 reads as GBK's 掳, but line 3's Chinese says the file is UTF-8: no note
    # suggesting GBK (which would turn line 3 into mojibake).
    rows = f"{CSV_HEAD}{I1},3,0,4,25°C,+1d\n{I2},3,0,4,开灯,+1d\n"
    path = write_file("c.csv", rows)
    assert [c.args for c in commands(path)] == ["25°C", "开灯"]
    table = load_job(path).table
    assert table is not None and table.note == ""
