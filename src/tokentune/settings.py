"""Settings written once: a dataclass field carries its default, its help text and its flag, and
:func:`add_flags` derives the command-line flags from the fields, so `train`, `evaluate`, `inspect`
and `convert` take the same reader flags and the config file takes the same names.

:func:`check_fields` validates every numeric field of a settings dataclass the same way, whether it
came from a flag, a config file or the Python API: finite (NaN and infinity are refused), of the
declared type, and in range.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
from typing import Any

from .errors import ConfigError

NUMBER_TYPES = {"int": int, "float": float}
MAX_WHOLE = 2**31 - 1  # counts, sizes, steps and seeds beyond this are typos, and crash samplers and RNGs


def setting(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
            choices: tuple[str, ...] | None = None, consts: dict[str, Any] | None = None, short: str | None = None,
            minimum: float | None = None, above: float | None = None, below: float | None = None,
            repeat: bool = False, group: str = "settings", cli: bool = True):
    """A dataclass field with what its flag needs. ``minimum``/``above``/``below`` bound numbers
    (``above``/``below`` exclusive); ``consts`` adds flags that set a fixed value (``--bf16``)."""
    metadata = {"help": help, "flag": flag, "metavar": metavar, "choices": choices, "consts": consts or {},
                "short": short, "minimum": minimum, "above": above, "below": below, "repeat": repeat,
                "group": group, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def base_type(field: dataclasses.Field) -> str:
    """``'int'``, ``'float'``, ``'bool'``, ``'str'`` or ``'list'`` from the annotation (``'int | None'``...)."""
    annotation = str(field.type)
    for name in ("bool", "int", "float", "list", "dict", "str"):
        if annotation.split("[")[0].split("|")[0].strip() == name or annotation.startswith(name):
            return "list" if name == "dict" else name
    return "str"


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _describe_default(field: dataclasses.Field) -> str:
    if field.default is None or field.default is False or field.default is dataclasses.MISSING or \
            base_type(field) == "bool":
        return ""
    if "(default" in field.metadata["help"] or str(field.default) == "default":  # said already, or says nothing
        return ""
    return f" (default {field.default})"


def add_flags(parser: argparse.ArgumentParser, settings_class, *, only: set[str] | None = None,
              skip: set[str] = frozenset(), rename: dict[str, str] | None = None) -> None:
    """One flag per field of ``settings_class`` (grouped as the fields say). Flags default to None, so
    only the flags a user gives override the config file and the defaults."""
    groups: dict[str, Any] = {}
    for field in dataclasses.fields(settings_class):
        meta = field.metadata
        if not meta.get("cli", False) or field.name in skip or (only is not None and field.name not in only):
            continue
        title = meta["group"]
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        _add_flag(group, field, (rename or {}).get(field.name))


def negative_flag(flag: str) -> str:
    return "--no-" + flag[2:]


def flag_for_value(field: dataclasses.Field, value: Any) -> str:
    """The command-line words that set ``field`` to ``value``: ``--head-lr-factor 1.0``, ``--no-embedding-rows``."""
    flag = flag_of(field)
    if isinstance(value, bool):
        return flag if value else negative_flag(flag)
    return f"{flag} {value}"


def _switch_flags(field: dataclasses.Field, flag: str) -> str:
    """The flags a true/false setting has: a default-true switch has only its --no- form (_add_flag)."""
    if not flag.startswith("--"):
        return flag
    negative = negative_flag(flag)
    return {True: negative, False: flag}.get(field.default, f"{flag} / {negative}")


def _add_flag(group, field: dataclasses.Field, renamed: str | None) -> None:
    meta, kind = field.metadata, base_type(field)
    flag = renamed or flag_of(field)
    names = [flag] + ([meta["short"]] if meta["short"] else [])
    help_text = meta["help"] + _describe_default(field)
    if kind == "bool":
        positive, negative = flag, negative_flag(flag)
        if field.default is not True:
            group.add_argument(*names, dest=field.name, action="store_const", const=True, default=None, help=help_text)
        if field.default is not False:
            group.add_argument(negative, dest=field.name, action="store_const", const=False, default=None,
                               help=f"turn off {positive}" if field.default is None else f"turn off, on by default: {help_text}")
    else:
        extra = {"action": "append"} if meta["repeat"] else {"type": NUMBER_TYPES.get(kind, str)}
        group.add_argument(*names, dest=field.name, default=None, metavar=meta["metavar"], choices=meta["choices"],
                           help=help_text, **extra)
    for const_flag, value in meta["consts"].items():
        group.add_argument(const_flag, dest=field.name, action="store_const", const=value, default=None,
                           help=f"the same as {flag} {value}" if not isinstance(value, bool)
                           else f"the same as {flag if value else negative_flag(flag)}")


def flag_values(args: argparse.Namespace, settings_class) -> dict[str, Any]:
    """The settings a user gave as flags (None: not given)."""
    names = {f.name for f in dataclasses.fields(settings_class)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def check_fields(settings) -> None:
    """Type, finiteness and range of every number and the type of every flag/switch field."""
    for field in dataclasses.fields(settings):
        check_field(field, getattr(settings, field.name))


def check_field(field: dataclasses.Field, value: Any) -> None:
    """The checks of :func:`check_fields` for one field's ``value`` (None: not set, nothing to check)."""
    if value is None:
        return
    kind, meta = base_type(field), field.metadata
    flag = flag_of(field) if meta.get("cli") else field.name
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{field.name} must be true or false, got {value!r}",
                          fix=f"write {field.name}: true or false, use {_switch_flags(field, flag)}, or leave it out")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{field.name} must be a string, got {type(value).__name__} {value!r}",
                          fix=f"give {flag} a text value")
    if kind in NUMBER_TYPES:
        _check_number(field.name, flag, kind, value, meta)
    if meta.get("choices") and isinstance(value, list):  # a repeatable flag: each value
        for item in value:
            check_choice(item, meta["choices"], field.name, flag, normalise=False)
    elif meta.get("choices"):
        check_choice(value, meta["choices"], field.name, flag, also=tuple(meta.get("consts", {})), normalise=False)


def _check_number(name: str, flag: str, kind: str, value: Any, meta) -> None:
    whole = kind == "int"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        raise ConfigError(f"{name} must be {'a whole number' if whole else 'a number'}, got {value!r}",
                          fix=f"set {flag} to {'an integer' if whole else 'a number'}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", fix=f"set {flag} to a finite value")
    if whole and abs(value) > MAX_WHOLE:
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:12]}... ({len(str(value))} digits)"
        raise ConfigError(f"{name} must be at most {MAX_WHOLE:,}, got {shown}", fix=f"set {flag} to a smaller value")
    positive = meta.get("above") == 0 or (whole and meta.get("minimum") == 1)
    bounds = [(meta.get("minimum"), value >= (meta.get("minimum") or 0), "at least"),
              (meta.get("above"), value > (meta.get("above") or 0), "above"),
              (meta.get("below"), value < (meta.get("below") or 0), "below")]
    for bound, ok, words in bounds:
        if bound is not None and not ok:
            wanted = "a positive number" if positive and words != "below" else f"{words} {bound}"
            raise ConfigError(f"{name} must be {wanted}, got {value!r}", fix=f"set {flag} to {wanted}")


def check_choice(value: Any, choices: tuple[str, ...], what: str, flag: str | None = None, *,
                 also: tuple[str, ...] = (), normalise: bool = True) -> str:
    """The one check of a setting with a fixed set of values (``None`` -> the first, the default).
    ``normalise`` accepts any case and ``_`` for ``-`` (``keep_longest`` -> ``keep-longest``)."""
    choice = choices[0] if value is None else str(value)
    if normalise:
        choice = choice.lower().replace("_", "-")
    if choice not in choices:
        others = "".join(f", or {name}" for name in also)
        raise ConfigError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}",
                          fix=f"pass {flag or '--' + what.replace(' ', '-')} with one of those values{others}")
    return choice


def unknown_keys(values: dict[str, Any], settings_class, source: str) -> None:
    """Refuse a key no field has, naming the closest valid one."""
    known = [f.name for f in dataclasses.fields(settings_class)]
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(f"{source}: setting names must be strings, found {key!r}",
                              fix="write 'name: value' with a name such as learning_rate")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid names: {', '.join(sorted(known))}"
            raise ConfigError(f"{source}: unknown setting {key!r}", fix=hint)
