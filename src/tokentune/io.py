"""Atomic output, the one implementation: every file or directory tokentune writes goes to a temporary
sibling first and is renamed over its final name when complete, so nothing is left half-written
looking done, and a failure removes the temporary (no stray ``.NAME.*.tmp`` files). A symbolic link
keeps its place (the file it names is replaced); a named pipe or a device (``/dev/null``) is written
directly, as a stream has no complete state to rename into place."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(path: str, *, directory: bool = False) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def describe_os_error(err: OSError) -> str:
    """``'No space left on device'`` rather than ``'[Errno 28] No space left on device: /x/.y.tmp'``."""
    return err.strerror or type(err).__name__


@contextmanager
def writing(path: str, *, only: tuple[int, ...] | None = None) -> Iterator[None]:
    """Turn an operating-system failure while writing ``path`` into one located :class:`OutputError`
    (``only``: just these errno values, for blocks that do more than write)."""
    from .errors import OutputError

    try:
        yield
    except OSError as err:
        if only is not None and err.errno not in only:
            raise
        raise OutputError(path, describe_os_error(err)) from None


@contextmanager
def temporary_sibling(path: str | os.PathLike, mode: str, **open_options) -> Iterator[IO]:
    """A handle on a temporary sibling of ``path``, renamed over ``path`` when the block ends without
    an error and removed when it raises; OS failures become a located :class:`OutputError`."""
    from .errors import OutputError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(path, "it is a directory", fix="give a file name, or remove the directory")
    if _is_special(path):  # a pipe or device is written as it is: a rename would replace it with a file
        with writing(path), open(path, mode, **open_options) as handle:
            yield handle
        return
    # a link keeps pointing where it did: the file it names is the one replaced
    path = os.path.realpath(path) if os.path.islink(path) else path
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        with writing(path):
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
            handle = os.fdopen(fd, mode, **open_options)
        with handle:
            yield handle
        with writing(path):
            publish_mode(tmp)
            os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise OutputError(path, describe_os_error(err)) from None
        raise


def _is_special(path: str) -> bool:
    """An existing FIFO, device or socket (``/dev/null``, ``/dev/stdout``, a named pipe), links followed."""
    import stat

    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # missing (or a dangling link): a new file
        return False


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary sibling and rename: a reader never sees half a file."""
    with temporary_sibling(path, "wb") as handle:
        handle.write(data)


def atomic_file(path: str | os.PathLike, *, encoding: str = "utf-8"):
    """A text handle on a temporary sibling of ``path``, renamed over ``path`` when the block ends
    without an error and removed when it raises (streamed outputs such as ``predict --output``)."""
    return temporary_sibling(path, "w", encoding=encoding, newline="")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def check_output(path: str | os.PathLike, *, overwrite: bool = False, inputs: tuple = (),
                 what: str = "output directory", flag: str = "--output", earlier=None) -> str:
    """The absolute output path, once it is safe to write: not an existing path unless ``overwrite``,
    and never one that is, contains or lies inside one of ``inputs`` (data, a model being read), with
    ``--overwrite`` or not: writing there would destroy what the command reads. ``earlier(path)``: for
    a directory replaced as a whole, whether an existing one is an earlier output of the same kind;
    one that is neither that nor empty is refused even with ``--overwrite`` (its files would be lost)."""
    from .errors import ConfigError

    path = os.path.abspath(os.fspath(path))
    real = os.path.realpath(path)
    for source in inputs:
        if source is None or not os.path.exists(os.fspath(source)):
            continue
        other = os.path.realpath(os.fspath(source))
        if real == other or real.startswith(other.rstrip(os.sep) + os.sep) or other.startswith(real + os.sep):
            relation = "is" if real == other else ("lies inside" if real.startswith(other) else "contains")
            raise ConfigError(f"{what} {path} {relation} the input {os.fspath(source)}; writing it would destroy "
                              f"the input", fix=f"write {flag} somewhere outside the inputs")
    if os.path.exists(path) and not overwrite:
        raise ConfigError(f"{what} {path} already exists",
                          fix=f"choose another {flag}, or pass --overwrite to replace it")
    if os.path.exists(path) and what.endswith("directory") and not os.path.isdir(path):
        raise ConfigError(f"{what} {path} is a file", fix=f"choose another {flag}")
    if earlier is not None and os.path.isdir(path) and os.listdir(path) and not earlier(path):
        held = sorted(os.listdir(path))
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ConfigError(f"{what} {path} holds files that are not an earlier output of this command ({shown}); "
                          f"replacing it would delete them", fix="write to a new or empty directory instead")
    return path


def holds(*names: str):
    """An ``earlier`` test for :func:`check_output`: the directory holds one of ``names`` (a file every
    output of that kind has, e.g. a trained model's tokentune_config.json)."""
    return lambda path: any(os.path.exists(os.path.join(path, name)) for name in names)


def replace_with(staging: str, final: str) -> None:
    """Put the complete ``staging`` directory at ``final`` (replacing an old one) by renames only."""
    if os.path.exists(final):
        old = staging + ".old"
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


@contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False, inputs: tuple = (),
                     earlier=None) -> Iterator[str]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` in one rename
    (``earlier``: as in :func:`check_output`)."""
    path = check_output(path, overwrite=overwrite, inputs=inputs, earlier=earlier)
    with writing(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.", suffix=".partial")
        publish_mode(tmp, directory=True)
    try:
        with writing(path):  # a full or read-only disk while the directory is filled
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with writing(path):
        replace_with(tmp, path)


def publish_tree(directory: str) -> None:
    """Usual permissions on every file a library wrote privately (safetensors writes model.safetensors 0600)."""
    for root, _, files in os.walk(directory):
        for name in files:
            publish_mode(os.path.join(root, name))


def empty_directory(path: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Remove every entry of ``path`` but those named in ``keep``; returns the names removed."""
    removed = []
    for name in os.listdir(path):
        if name in keep:
            continue
        entry = os.path.join(path, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.remove(entry)
        removed.append(name)
    return removed


def staging_path(final: str, kind: str = "") -> str:
    """Where a directory output is built before its rename: the hidden sibling ``.NAME[.KIND].partial``."""
    return os.path.join(os.path.dirname(final), f".{os.path.basename(final)}{'.' + kind if kind else ''}.partial")
