"""Small helpers shared by command modules."""
from __future__ import annotations

import sys
from typing import Iterator


def quiet_libraries(quiet: bool = False) -> None:
    """Keep transformers' info/warning chatter (e.g. 'newly initialized classifier') off the terminal;
    with ``quiet`` also its progress bars (weights loading and saving)."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    if quiet:
        logging.disable_progress_bar()


def read_texts(texts: list[str], input_path: str | None) -> Iterator[str]:
    """Texts from arguments, from a file (one per line, '-' for stdin), or from piped stdin."""
    from ..errors import DataError

    if texts:
        yield from texts
        return
    if input_path is None and sys.stdin.isatty():
        raise DataError("no text given", fix="pass TEXT arguments, --input FILE, or pipe text on stdin")
    if input_path in (None, "-"):
        for line in sys.stdin:
            yield line.rstrip("\n")
        return
    try:
        with open(input_path, encoding="utf-8-sig") as handle:
            for line in handle:
                yield line.rstrip("\r\n")
    except FileNotFoundError:
        raise DataError("file not found", path=input_path, fix="check the path given to --input") from None
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text", path=input_path, fix="convert it with `iconv -t utf-8`") from None
