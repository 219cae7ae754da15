"""Typed errors. Each one says what was expected, what was found, where, and how to fix it.

The CLI turns any :class:`TokentuneError` into a one-line message and exit code 2.
"""
from __future__ import annotations


class TokentuneError(Exception):
    """Base class of every error tokentune raises on purpose (user errors)."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}. Fix: {self.fix}"


class DataError(TokentuneError):
    """Malformed or inconsistent input data; carries the file and line (or record) where it was found."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.expected = expected
        self.found = found
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        detail = message
        if expected is not None:
            detail += f"; expected {expected}"
        if found is not None:
            detail += f", found {found}"
        super().__init__(where + detail, fix=fix)


class LabelError(DataError):
    """Labels that cannot be used: e.g. dev/test labels that training never saw."""


class ConfigError(TokentuneError):
    """An invalid setting, in a config file or on the command line."""


class ModelError(TokentuneError):
    """A model that cannot be found, fetched or loaded."""


class OutputError(TokentuneError):
    """An output that cannot be written: a read-only or full disk, a file where a directory is needed."""

    def __init__(self, path: str, problem: str, *, fix: str | None = None) -> None:
        self.path = path
        super().__init__(f"cannot write {path}: {problem}",
                         fix=fix or "choose another output path, or free space / fix the permissions there")


class Interrupted(KeyboardInterrupt):
    """An interrupted command (Ctrl-C, or SIGTERM in the ``tokentune`` command) with what it left to use:
    e.g. the checkpoint a ``train`` run continues from with ``--resume``. Still a KeyboardInterrupt, so
    every ``except KeyboardInterrupt`` and clean-up treats it as one."""
