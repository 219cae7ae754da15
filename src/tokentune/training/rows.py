"""Training only the word-embedding rows that the training data uses: the same optimisation, less work.

A word-embedding matrix has a row for every id of the tokenizer's vocabulary (the embedded MiniLM: 30,522
x 384, half of its 22.7M parameters), but a training set uses a part of them. A row that no training
batch holds gets a zero gradient at every step, and from zero moments AdamW without weight decay never
moves it (nor do SGD, Adagrad or RMSprop without it): its update stays exactly zero. Yet every step
zero-fills a dense gradient for all the rows, takes its norm for clipping, scales it, and runs the
optimizer over all of them.

So during training the rows in use are a parameter of their own, :class:`EmbeddingRows` attached as
``model.tokentune_embedding_rows`` (like the CRF), the full matrix is frozen, and in train mode the
lookup reads the rows through a map from vocabulary ids. After each optimizer step they are copied into
the full matrix, which evaluation, checkpoints and the saved model read. The numbers are those of
training the whole matrix, up to float rounding in the gradient norm's sum, for a fraction of the work
(bench/embedding_rows.py).

Off (the whole matrix trains, and the run's notes say why) where the unused rows would move or the lookup
is not a plain one: weight decay, other optimizers (Adafactor's factored moments mix rows),
``--freeze-embeddings``, ``--torch-compile``, sharded training (FSDP, DeepSpeed), input embeddings shared
with another module, or an embedding other than a plain ``nn.Embedding`` (subclasses that scale their
output, ``max_norm``, ``scale_grad_by_freq``, sparse gradients).
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import nn

from ..errors import ModelError

ATTRIBUTE = "tokentune_embedding_rows"
# transformers optimizer names whose update of a parameter with zero gradient from the start stays zero
# (with weight decay 0); anything else trains the whole matrix
ZERO_STAYS_ZERO = ("adamw_torch", "adamw_torch_fused", "sgd", "adagrad", "rmsprop")
USER_CHOICES = ("--no-embedding-rows", "--freeze-embeddings")  # reasons not worth a note: the user chose them


class EmbeddingRows(nn.Module):
    """The trained rows of a word-embedding matrix: ``rows[k]`` is row ``ids[k]`` of the embedding."""

    def __init__(self, embedding: nn.Embedding, ids: torch.Tensor) -> None:
        super().__init__()
        weight = embedding.weight
        self.register_buffer("ids", ids.to(weight.device))  # persistent: checkpoints say which rows these are
        self.rows = nn.Parameter(weight.detach()[self.ids].clone())
        # a plain tensor, not a buffer: DDP would broadcast a vocabulary-sized buffer before every forward
        self.position = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        self.position[self.ids] = torch.arange(len(ids), device=weight.device)
        # padding_idx: attach_rows puts the padding id among the rows, so its position is never -1 (which
        # F.embedding would take as the last row)
        self.padding_idx = None if embedding.padding_idx is None else int(self.position[embedding.padding_idx])
        self.embedding = [embedding]  # in a list: not a submodule, so its weight is saved once, under its own name
        self._hooks = [embedding.register_forward_hook(self._lookup, with_kwargs=True)]
        self._optimizers = weakref.WeakSet()
        self._stepped = False

    def _lookup(self, module, args, kwargs, output):
        if not module.training:  # evaluation reads the full matrix, kept up to date by write_back
            return output
        ids = args[0] if args else kwargs["input"]
        return nn.functional.embedding(self.position[ids], self.rows, self.padding_idx)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint's rows belong to its ids: resuming with other training data would mix them up."""
        saved = state_dict.get(prefix + "ids")
        if saved is not None and not torch.equal(saved.to(self.ids.device), self.ids):
            raise ModelError("the checkpoint trained the word-embedding rows of other vocabulary ids than this run's "
                             "training data uses: the training data changed since the checkpoint was written",
                             fix="resume with the data the run began with, or start afresh with --overwrite in place of --resume")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def write_back(self, *_) -> None:
        """Copy the trained rows into the full matrix (after every optimizer step)."""
        if not self._stepped and self.rows.grad is None and self.rows.requires_grad:
            raise ModelError("the model reads its word embeddings without calling its embedding layer, so training "
                             "only the rows the data uses would leave them untrained",
                             fix="train with --no-embedding-rows")
        self._stepped = True
        self.copy_into_matrix()

    @torch.no_grad()
    def copy_into_matrix(self) -> None:
        """The rows' values into the full matrix (which evaluation, checkpoints and the saved model read)."""
        self.embedding[0].weight[self.ids] = self.rows.to(self.embedding[0].weight.dtype)

    def follow(self, optimizer) -> None:
        """Write the rows back after each step of this optimizer (once, however often it is asked)."""
        if optimizer not in self._optimizers:
            self._optimizers.add(optimizer)
            self._hooks.append(optimizer.register_step_post_hook(self.write_back))

    def remove(self) -> None:
        """Undo: the full matrix holds the rows' values and trains again; the hooks are gone."""
        self.copy_into_matrix()
        for hook in self._hooks:
            hook.remove()
        self.embedding[0].weight.requires_grad_(True)


def rows_of(model) -> EmbeddingRows | None:
    rows = getattr(model, ATTRIBUTE, None)
    return rows if isinstance(rows, EmbeddingRows) else None


def why_not(config, args, model) -> str | None:
    """Why the whole matrix must train (a phrase), or None where training only the used rows is exact.
    ``args``: the run's ``TrainingArguments`` (the optimizer and weight decay the Trainer will use)."""
    embedding = model.get_input_embeddings()
    optimizer = str(getattr(args.optim, "value", args.optim))
    reasons = (
        (not config.embedding_rows, "--no-embedding-rows"),
        (config.freeze_embeddings, "--freeze-embeddings"),
        (config.torch_compile, "--torch-compile"),
        (bool(args.fsdp or args.deepspeed), "sharded training (FSDP or DeepSpeed)"),
        # one process driving several GPUs replicates the model at each step (DataParallel): the replicas
        # would share this hook and its id map, which sit on the first GPU only
        (args.n_gpu > 1, "several GPUs in one process (DataParallel)"),
        (args.weight_decay != 0, "weight decay shrinks the rows that get no gradient"),
        (optimizer not in ZERO_STAYS_ZERO, f"optimizer {optimizer} may move the rows that get no gradient"),
        (type(embedding) is not nn.Embedding or embedding.max_norm is not None or embedding.scale_grad_by_freq
         or embedding.sparse, "the input embedding is not a plain lookup"),
    )
    reason = next((why for off, why in reasons if off), None)
    if reason is None and sum(p is embedding.weight for _, p in model.named_parameters(remove_duplicate=False)) != 1:
        reason = "the input embedding is shared with another layer"
    return reason


def used_ids(features, special_ids, vocabulary: int) -> torch.Tensor:
    """The sorted vocabulary ids in the training features' inputs, and the tokenizer's special ids
    (padding, separators, context markers: what the collators may add) that the matrix has."""
    chunks = [np.asarray(feature["input_ids"], dtype=np.int64) for feature in features]
    chunks.append(np.asarray([i for i in special_ids if i is not None and 0 <= i < vocabulary], dtype=np.int64))
    return torch.from_numpy(np.unique(np.concatenate(chunks)))


def attach_rows(model, features, special_ids) -> EmbeddingRows:
    """The used rows as ``model.tokentune_embedding_rows`` (the full matrix frozen), or the one attached."""
    rows = rows_of(model)
    if rows is None:
        embedding = model.get_input_embeddings()
        padding = [] if embedding.padding_idx is None else [embedding.padding_idx]  # the model's, maybe not the tokenizer's
        rows = EmbeddingRows(embedding, used_ids(features, [*special_ids, *padding], embedding.num_embeddings))
        embedding.weight.requires_grad_(False)
        setattr(model, ATTRIBUTE, rows)
    return rows


def train_used_rows(config, args, model, tokenizer, features, notes: list[str]) -> EmbeddingRows | None:
    """Attach the used rows where that is exact (:func:`why_not`), with a note saying so once; else None
    (with a note why, unless the user turned it off)."""
    reason = why_not(config, args, model)
    if reason is not None:
        note = f"word embeddings: every row trained ({reason}), not only the rows the training data uses"
        if reason not in USER_CHOICES and note not in notes:
            notes.append(note)
        return None
    rows = attach_rows(model, features, tokenizer.all_special_ids)
    total = model.get_input_embeddings().weight.shape[0]
    note = (f"word embeddings: the {len(rows.ids):,} of {total:,} rows that the training data uses are trained as "
            f"a matrix of their own, the same result with less work (--no-embedding-rows trains all)")
    if note not in notes:  # build_trainer runs again after an out-of-memory halving
        notes.append(note)
    return rows


def finish_rows(model) -> None:
    """After training: the rows' values in the full matrix, which trains again in any later use, and the
    rows module gone, so the model is a plain one (and is saved as one)."""
    rows = rows_of(model)
    if rows is not None:
        rows.remove()
        delattr(model, ATTRIBUTE)
