"""Reading an appspec file's text; bytes that are not text become a diagnostic."""

from __future__ import annotations

import codecs
from pathlib import Path

from engine.appspec.diagnostics import Diagnostic


def read_appspec_text(path: str | Path) -> tuple[str, Diagnostic | None]:
    """The file's text (UTF-8, or UTF-16 with a byte-order mark, as YAML allows), or an error
    diagnostic naming the first undecodable byte. OSError propagates."""
    data = Path(path).read_bytes()
    return decode_appspec_bytes(data, str(path))


def decode_appspec_bytes(
    data: bytes, filename: str, hint: str = "save the appspec as UTF-8"
) -> tuple[str, Diagnostic | None]:
    """Text from UTF-8 (with or without a byte-order mark) or UTF-16 with one, as YAML allows;
    undecodable bytes become an error diagnostic at their line and column."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding), None
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode(encoding, errors="replace")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        return "", Diagnostic(
            "error",
            filename,
            line,
            column,
            "",
            data[exc.start : exc.end].hex(" "),
            f"the file is not valid {encoding.removesuffix('-sig').upper()} text "
            f"(byte 0x{data[exc.start]:02x} cannot be decoded)",
            hint,
        )
