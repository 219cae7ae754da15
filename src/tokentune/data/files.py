"""Reading a data file's text, whatever its wrapping: gzip, a UTF-8 BOM, CRLF or CR line ends.

Every failure becomes a :class:`~tokentune.errors.DataError` naming the file (and the line, for
bytes that are not UTF-8), so readers never leak ``OSError``/``zlib.error``/``UnicodeDecodeError``.
"""
from __future__ import annotations

import gzip
import os
import zlib

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by its magic number, whatever its name)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError("file not found", path=path,
                        fix="check the path (relative paths start from the current directory)") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=path, fix="pass a file, or a data directory as DATA") from None
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=path,
                        fix="check its permissions") from None
    if raw[:2] == GZIP_MAGIC:
        return _gunzip(raw, path)
    if path.endswith(".gz"):
        raise DataError("the file is named .gz but is not gzip data", path=path, expected="gzip data (starting 1f 8b)",
                        found=f"bytes {raw[:2]!r}", fix="rename it without .gz, or compress it with gzip")
    return raw


def _gunzip(raw: bytes, path: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        # EOFError: truncated stream; BadGzipFile (an OSError) / zlib.error: corrupt data
        raise DataError(f"the gzip data is truncated or corrupt ({err})", path=path,
                        fix="download or compress the file again; `gzip -t FILE` checks it") from None


def read_text(path: str | os.PathLike) -> str:
    """The file as text with ``\\n`` line ends and no BOM; non-UTF-8 bytes are reported with their line."""
    path = os.fspath(path)
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError("the file is not UTF-8 text", path=path, line=line, expected="UTF-8 text",
                        found=f"byte {raw[err.start:err.start + 1]!r} at byte offset {err.start}",
                        fix="convert it, e.g. `iconv -f latin1 -t utf-8 FILE > NEW`") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def text_lines(path: str | os.PathLike) -> list[str]:
    """The file's lines; only ``\\n`` ends a line, so exotic Unicode separators stay inside words."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
