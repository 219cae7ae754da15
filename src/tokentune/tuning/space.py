"""The search space of ``tokentune tune``: which training settings a trial draws, and from where.

A space is a mapping of :class:`~tokentune.config.TrainConfig` field names to parameters, written in
the config file under ``space:`` (or in a ``--space FILE``)::

    space:
      learning_rate: {type: float, low: 1.0e-5, high: 3.0e-4, log: true}
      epochs: {type: int, low: 5, high: 20}
      batch_size: {type: categorical, choices: [8, 16, 32]}

Every bound and choice is checked as a training setting before any trial runs (a learning rate of 0
or a warmup ratio of 1 is refused at ``file:line``, not after an hour of search).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

KINDS = ("float", "int", "categorical")
KEYS = {"type", "low", "high", "log", "step", "choices"}
# settings a trial may draw: how it learns and what it learns with; never what data it is judged on
# (dev_split, seed of the split) nor how it is written or logged
SEARCHABLE = ("learning_rate", "epochs", "batch_size", "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2",
              "adam_epsilon", "lr_scheduler", "gradient_accumulation_steps", "seed", "max_length", "stride", "head",
              "crf_learning_rate", "head_lr_factor", "class_weights", "context", "context_size", "context_dropout",
              "context_marker", "train_scheme", "freeze_embeddings", "token_weighted_loss", "packing",
              "group_by_length", "length_group_batches")


@dataclass(frozen=True)
class Param:
    name: str  # a TrainConfig field
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log, step=self.step)

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"one of {', '.join(map(str, self.choices))}"
        scale = " (log scale)" if self.log else f" in steps of {self.step:g}" if self.step else ""
        return f"{self.kind} from {self.low:g} to {self.high:g}{scale}"

    def edge_values(self) -> list:
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def default_space(epochs: float) -> dict[str, Param]:
    """The default space for fine-tuning an encoder on a few hundred to a few thousand sentences.

    - learning rate, log-uniform 1e-5 to 3e-4: the recipe's 1.5e-5 suits bert-base; small encoders and
      small data want rates up to 10x higher (docs/tuning.md), and the right rate spans a decade;
    - epochs, a quarter of ``--epochs`` up to ``--epochs``: small data needs many passes, large data few;
    - batch size 8, 16 or 32: smaller batches mean more (noisier) steps on little data;
    - warmup ratio 0 to 0.2 and weight decay 0 to 0.1: the usual ranges, second-order effects.
    """
    quarter = max(1, int(math.ceil(epochs / 4)))
    return {
        "learning_rate": Param("learning_rate", "float", 1e-5, 3e-4, log=True),
        "epochs": Param("epochs", "int", quarter, max(quarter, int(math.ceil(epochs)))),
        "batch_size": Param("batch_size", "categorical", choices=(8, 16, 32)),
        "warmup_ratio": Param("warmup_ratio", "float", 0.0, 0.2),
        "weight_decay": Param("weight_decay", "float", 0.0, 0.1),
    }


def parse_space(mapping: Any, base, *, source: str, lines: dict | None = None) -> dict[str, Param]:
    """The user's ``space:`` mapping, each parameter checked against ``base`` (a TrainConfig): bounds
    and choices must be valid values of the setting. ``lines`` maps ``(name,)`` to the file's line."""
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError(f"{source}: 'space' must be a mapping of settings to parameters, found {mapping!r}",
                          fix="write e.g. 'space: {learning_rate: {type: float, low: 1.0e-5, high: 3.0e-4, log: true}}'")
    space = {}
    for name, spec in mapping.items():
        where = f"{source}:{lines[(name,)]}" if lines and (name,) in lines else source
        space[name] = _param(name, spec, base, where)
    check_combinations(space, base, source)
    return space


def _param(name: Any, spec: Any, base, where: str | None) -> Param:
    """``where``: the file (and line) the parameter came from; None for a space given from Python."""
    from ..settings import unknown_keys

    where = f"{where}: space" if where else "space"  # messages say "space" once: FILE:LINE: space.NAME: ...
    unknown_keys({name: None}, type(base), where)
    if name not in SEARCHABLE:
        raise ConfigError(f"{where}.{name}: {name} is not a training hyperparameter a search may draw",
                          fix=f"search over {', '.join(SEARCHABLE[:6])}, ... (docs/tuning.md)")
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise ConfigError(f"{where}.{name}: expected a mapping with type float, int or categorical, found {spec!r}",
                          fix=f"write '{name}: {{type: float, low: ..., high: ...}}' or "
                              f"'{name}: {{type: categorical, choices: [...]}}'")
    extra = set(spec) - KEYS
    if extra:
        raise ConfigError(f"{where}.{name}: unknown key(s) {', '.join(sorted(map(str, extra)))}",
                          fix=f"use only {', '.join(sorted(KEYS))}")
    param = _build(name, spec, where)
    _check_values(param, base, where)
    return param


def _check_values(param: Param, base, where: str) -> None:
    for value in param.edge_values():  # every bound and choice is a valid training setting
        try:
            dataclasses.replace(base, **{param.name: value})
        except ConfigError as err:
            raise ConfigError(f"{where}.{param.name}: {value!r} is not a valid {param.name} ({err.message})",
                              fix="change the bounds or choices to valid values") from None


def check_combinations(space: dict[str, Param], base, source: str, most: int = 1024) -> None:
    """Every combination of the parameters' bounds and choices is a valid training setting, so that no
    trial draws settings that refuse each other (``--context-dropout`` without ``--context-size``, class
    weights with the CRF head) an hour into a search. Spaces with more combinations are left to the trials."""
    edges = [[(name, value) for value in param.edge_values()] for name, param in space.items()]
    if len(space) < 2 or math.prod(len(e) for e in edges) > most:
        return
    for combination in itertools.product(*edges):
        try:
            dataclasses.replace(base, **dict(combination))
        except ConfigError as err:
            drawn = ", ".join(f"{name}={value!r}" for name, value in combination)
            raise ConfigError(f"{source}: a trial could draw {drawn}, which is not a valid setting ({err.message})",
                              fix="narrow the space so that these settings cannot meet, or fix one of them") from None


def check_space(space: dict, base, source: str | None = None) -> dict[str, Param]:
    """A space given from Python: each entry a :class:`Param` named as its key, checked as a file's would be.
    ``source``: where it came from, for messages (None: they start with ``space``)."""
    label = f"{source}: space" if source else "space"
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{label}: expected a non-empty mapping of setting names to Param", fix="see docs/tuning.md")
    for name, param in space.items():
        if not isinstance(param, Param) or param.name != name:
            raise ConfigError(f"{label}: {name!r} must map to a Param named {name!r}, found {param!r}",
                              fix=f"write {{'{name}': Param('{name}', 'float', low, high)}}")
        _param(name, _spec(param), base, source)
    check_combinations(space, base, source or "space")
    return space


def _spec(param: Param) -> dict:
    if param.kind == "categorical":
        return {"type": "categorical", "choices": list(param.choices)}
    spec = {"type": param.kind, "low": param.low, "high": param.high, "log": param.log}
    if param.kind == "int":
        spec.update(low=int(param.low), high=int(param.high))
    return {**spec, **({"step": param.step} if param.step else {})}


def _build(name: str, spec: dict, where: str) -> Param:
    kind = spec["type"]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.{name}: a categorical parameter needs a non-empty 'choices' list",
                              fix=f"write '{name}: {{type: categorical, choices: [8, 16, 32]}}'")
        return Param(name, kind, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    number = int if kind == "int" else (int, float)
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise ConfigError(f"{where}.{name}.{key}: expected {'a whole number' if kind == 'int' else 'a number'},"
                              f" found {value!r}", fix=_number_fix(name, value))
    if low > high:
        raise ConfigError(f"{where}.{name}: low ({low}) is above high ({high})", fix="swap the bounds")
    log = spec.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{where}.{name}: 'log: true' needs bounds above 0 (and log must be true or false)",
                          fix="raise 'low' above 0, or drop 'log'")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0 or log):
        raise ConfigError(f"{where}.{name}.step: expected a positive {'whole ' if kind == 'int' else ''}number "
                          f"without 'log', found {step!r}", fix="drop 'step', or give a positive step on a linear scale")
    if step is not None and _off_grid(low, high, step):  # Optuna would warn and search a shorter range
        last = low + math.floor((high - low) / step + 1e-9) * step
        raise ConfigError(f"{where}.{name}.step: {step:g} does not divide the range {low:g} to {high:g}, so the "
                          f"largest value drawn would be {last:g}, not {high:g}",
                          fix=f"set high to {last:g}, or choose a step that divides {high - low:g}")
    if kind == "int":  # whole bounds stay whole: they are checked as values of integer settings
        return Param(name, kind, int(low), int(high), log=log, step=step)
    return Param(name, kind, float(low), float(high), log=log, step=step)


def _off_grid(low: float, high: float, step: float) -> bool:
    steps = (high - low) / step
    return abs(steps - round(steps)) > 1e-9 * max(1.0, steps)


def _number_fix(name: str, value) -> str:
    try:
        float(value)  # YAML 1.1 reads 1e-5 (no dot in the mantissa) as text
    except (TypeError, ValueError):
        return f"give {name} numeric 'low' and 'high' bounds"
    return f"write {value!r} as {float(value):.1e} (YAML reads a number like 1e-5 as text unless it has a dot: 1.0e-5)"


def read_space(path: str | None, base, *, in_config: bool) -> dict[str, Param] | None:
    """The space in ``path``: its ``space:`` mapping (a config file), or the whole file (``--space FILE``,
    which may also nest it under ``space:``). None where a config file has no ``space:`` (the default)."""
    from ..config import read_mapping_file, yaml_lines

    if path is None:
        return None
    what, flag = ("config file", "--config") if in_config else ("space file", "--space")
    values, text = read_mapping_file(path, what=what, flag=flag)
    if in_config and not (isinstance(values, dict) and "space" in values):
        return None  # the config's other keys are checked as settings by build_config
    under = "space" if in_config or (isinstance(values, dict) and "space" in values) else None
    if under and not in_config:  # a JSON file's lines too: YAML's composer reads JSON
        _only_space(values, path, yaml_lines(text, None))
    lines = yaml_lines(text, under)
    return parse_space(values["space"] if under else values, base, source=path, lines=lines)


def _only_space(values: dict, path: str, lines: dict) -> None:
    """A ``--space`` file that nests the space under ``space:`` holds nothing else: a setting beside it
    (``epochs: 1``) would otherwise be read as a parameter, or silently not be the trials' setting."""
    others = [key for key in values if key != "space"]
    if others:
        first = min((lines.get((key,), 0), index) for index, key in enumerate(others))
        where = f"{path}:{first[0]}" if first[0] else path
        raise ConfigError(f"{where}: a --space file holds only the search space; found also: "
                          f"{', '.join(map(str, others))}",
                          fix="put other settings in --config FILE or flags, and keep only 'space:' in the --space file")
