"""Reading a data file's text, whatever its wrapping: gzip, a UTF-8 BOM, CRLF or CR line ends.

The one reader of bytes -> text: :func:`read_text` reads a whole file at once (labelled data, scored
files); :func:`stream_lines` streams the lines of a file or of stdin (large ``predict`` inputs) with
the same rules. Every failure becomes a :class:`~tokentune.errors.DataError` naming the file (and the
line, for bytes that are not UTF-8), so readers never leak ``OSError``/``zlib.error``/``UnicodeDecodeError``.
"""
from __future__ import annotations

import gzip
import os
import sys
import zlib
from contextlib import ExitStack
from typing import Iterable, Iterator

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "<stdin>"
_FIX_ENCODING = "convert it, e.g. `iconv -f latin1 -t utf-8 FILE > NEW`"


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
        return gunzipped(raw, path)
    if path.endswith(".gz"):
        raise DataError("the file is named .gz but is not gzip data", path=path, expected="gzip data (starting 1f 8b)",
                        found=f"bytes {raw[:2]!r}", fix="rename it without .gz, or compress it with gzip")
    return raw


def gunzipped(raw: bytes, path: str) -> bytes:
    """``raw`` gunzipped when it is gzip (by its magic number), else as it is; bad gzip data is a DataError."""
    if raw[:2] != GZIP_MAGIC:
        return raw
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
    text = decode_utf8(raw, path)
    if text[:1] == "\ufeff":
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def decode_utf8(raw: bytes, path: str, first_line: int = 1) -> str:
    """``raw`` as UTF-8 (strictly: encoded surrogates are refused too); a bad byte is reported with its
    line, counted from ``first_line`` (the line ``raw`` starts on) as :func:`read_text` counts lines
    (CRLF, CR and LF each end one)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        before = raw[:err.start]
        breaks = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
        column = err.start - max(before.rfind(b"\n"), before.rfind(b"\r"))
        raise DataError("the file is not UTF-8 text", path=path, line=first_line + breaks, expected="UTF-8 text",
                        found=f"byte {raw[err.start:err.start + 1]!r} at byte {column} of the line",
                        fix=_FIX_ENCODING) from None


def text_lines(path: str | os.PathLike) -> list[str]:
    """The file's lines; only ``\\n`` ends a line, so exotic Unicode separators stay inside words."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def stream_lines(path: str | None) -> Iterator[str]:
    """The lines of a file (gzip by its magic number) or of stdin (``None`` or ``-``), streamed, without
    their ends, by the rules of :func:`read_text`: BOM dropped, CRLF and CR end a line, only ``\\n``
    and ``\\r`` do (Unicode line separators stay inside a line), non-UTF-8 bytes name their line."""
    name = STDIN if path in (None, "-") else os.fspath(path)
    number = 0
    with ExitStack() as stack:
        try:
            for line in decoded_lines(_open_stream(name, stack), name):
                number += 1  # lines given so far: where a cut gzip stream is said to end
                yield line
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"cannot read the file after line {number} ({err})", path=name,
                            fix="check that it is complete (`gzip -t FILE` checks a .gz file)") from None


def decoded_lines(stream: Iterable[bytes], name: str) -> Iterator[str]:
    """The lines of ``stream`` (byte lines, as a binary file iterates), decoded by the rules of
    :func:`stream_lines`, which reads files through it, as Ray's reading tasks read bytes."""
    number = 0
    for raw in stream:
        text = decode_utf8(raw, name, number + 1)
        if not number and text[:1] == "\ufeff":
            text = text[1:]
        text = text[:-1] if text[-1:] == "\n" else text
        text = text[:-1] if text[-1:] == "\r" else text
        for part in text.split("\r") if "\r" in text else (text,):
            number += 1
            yield part


def _open_stream(name: str, stack: ExitStack) -> Iterable[bytes]:
    if name == STDIN:
        return sys.stdin.buffer if hasattr(sys.stdin, "buffer") else _encoded(sys.stdin)
    try:
        handle = stack.enter_context(open(name, "rb"))
    except FileNotFoundError:
        raise DataError("file not found", path=name, fix="check the path") from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", path=name, fix="pass one file") from None
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=name,
                        fix="check its permissions") from None
    magic = handle.peek(2)[:2]
    if magic == GZIP_MAGIC:
        return stack.enter_context(gzip.GzipFile(fileobj=handle, mode="rb"))
    if name.endswith(".gz"):
        raise DataError("the file is named .gz but is not gzip data", path=name, expected="gzip data (starting 1f 8b)",
                        found=f"bytes {magic!r}", fix="rename it without .gz, or compress it with gzip")
    return handle


def _encoded(stream: Iterable[str]) -> Iterator[bytes]:
    """A text stream without a byte buffer (a test's StringIO) as UTF-8 lines; text read with
    ``surrogateescape`` comes back as its original bytes, so it is checked like any file."""
    for line in stream:
        try:
            yield line.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that is no escaped byte: refused when decoded
            yield line.encode("utf-8", "surrogatepass")
