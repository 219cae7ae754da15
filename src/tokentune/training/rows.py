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

Off (the whole matrix trains) where the unused rows would move or the lookup is not a plain one: weight
decay, other optimizers (Adafactor's factored moments mix rows), ``--freeze-embeddings``,
``--torch-compile``, input embeddings shared with another module, or an embedding other than a plain
``nn.Embedding`` (subclasses that scale their output, ``max_norm``, ``scale_grad_by_freq``, sparse
gradients).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

ATTRIBUTE = "tokentune_embedding_rows"
# transformers optimizer names whose update of a parameter with zero gradient from the start stays zero
# (with weight decay 0); anything else trains the whole matrix
ZERO_STAYS_ZERO = ("adamw_torch", "adamw_torch_fused", "sgd", "adagrad", "rmsprop")


class EmbeddingRows(nn.Module):
    """The trained rows of a word-embedding matrix: ``rows[k]`` is row ``ids[k]`` of the embedding."""

    def __init__(self, embedding: nn.Embedding, ids: torch.Tensor) -> None:
        super().__init__()
        weight = embedding.weight
        self.register_buffer("ids", ids.to(weight.device))  # persistent: checkpoints say which rows these are
        self.rows = nn.Parameter(weight.detach()[self.ids].clone())
        position = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        position[self.ids] = torch.arange(len(ids), device=weight.device)
        self.register_buffer("position", position, persistent=False)
        self.padding_idx = None if embedding.padding_idx is None else int(position[embedding.padding_idx])
        self.embedding = [embedding]  # in a list: not a submodule, so its weight is saved once, under its own name
        self._hooks = [embedding.register_forward_hook(self._lookup)]
        self._optimizers: set[int] = set()

    def _lookup(self, module, args, output):
        if not module.training:  # evaluation reads the full matrix, kept up to date by write_back
            return output
        return nn.functional.embedding(self.position[args[0]], self.rows, self.padding_idx)

    @torch.no_grad()
    def write_back(self, *_) -> None:
        """Copy the trained rows into the full matrix (after every optimizer step)."""
        self.embedding[0].weight[self.ids] = self.rows.to(self.embedding[0].weight.dtype)

    def follow(self, optimizer) -> None:
        """Write the rows back after each step of this optimizer (once, however often it is asked)."""
        if id(optimizer) not in self._optimizers:
            self._optimizers.add(id(optimizer))
            self._hooks.append(optimizer.register_step_post_hook(self.write_back))

    def detach(self) -> None:
        """Undo: the full matrix trains again, with the rows' values (used when training ends)."""
        self.write_back()
        for hook in self._hooks:
            hook.remove()
        self.embedding[0].weight.requires_grad_(True)


def rows_of(model) -> EmbeddingRows | None:
    rows = getattr(model, ATTRIBUTE, None)
    return rows if isinstance(rows, EmbeddingRows) else None


def why_not(config, model) -> str | None:
    """Why the whole matrix must train (a phrase), or None where training only the used rows is exact."""
    embedding = model.get_input_embeddings()
    optimizer = str((config.trainer or {}).get("optim", "adamw_torch_fused"))
    if not config.embedding_rows:
        return "--no-embedding-rows"
    if config.freeze_embeddings:
        return "--freeze-embeddings"
    if config.torch_compile:
        return "--torch-compile"
    if config.weight_decay:
        return "weight decay shrinks rows that get no gradient"
    if optimizer.split(".")[-1].lower() not in ZERO_STAYS_ZERO:
        return f"optimizer {optimizer} may move rows that get no gradient"
    if type(embedding) is not nn.Embedding or embedding.max_norm is not None or embedding.scale_grad_by_freq \
            or embedding.sparse:
        return "the input embedding is not a plain lookup"
    if sum(p is embedding.weight for _, p in model.named_parameters(remove_duplicate=False)) != 1:
        return "the input embedding is shared with another layer"
    return None


def used_ids(features, special_ids) -> torch.Tensor:
    """The sorted vocabulary ids in the training features' inputs, and the tokenizer's special ids
    (padding, separators, context markers: what the collators may add)."""
    chunks = [np.asarray(feature["input_ids"], dtype=np.int64) for feature in features]
    chunks.append(np.asarray([i for i in special_ids if i is not None], dtype=np.int64))
    return torch.from_numpy(np.unique(np.concatenate(chunks)))


def attach_rows(model, features, special_ids) -> EmbeddingRows:
    """The used rows as ``model.tokentune_embedding_rows`` (the full matrix frozen), or the one attached."""
    rows = rows_of(model)
    if rows is None:
        embedding = model.get_input_embeddings()
        rows = EmbeddingRows(embedding, used_ids(features, special_ids))
        embedding.weight.requires_grad_(False)
        setattr(model, ATTRIBUTE, rows)
    return rows


def without_rows(model):
    """Detach the rows module (the full matrix holds their values) and return it, to put back after saving."""
    rows = rows_of(model)
    if rows is not None:
        rows.write_back()
        delattr(model, ATTRIBUTE)
    return rows


def train_used_rows(config, model, tokenizer, features, notes: list[str]) -> EmbeddingRows | None:
    """Attach the used rows where that is exact (:func:`why_not`), with a note saying so once; else None."""
    reason = why_not(config, model)
    if reason is not None:
        return None
    rows = attach_rows(model, features, tokenizer.all_special_ids)
    total = model.get_input_embeddings().weight.shape[0]
    note = (f"word embeddings: the {len(rows.ids):,} of {total:,} rows that the training data uses are trained as "
            f"a matrix of their own, the same result with less work (--no-embedding-rows trains all)")
    if note not in notes:  # build_trainer runs again after an out-of-memory halving
        notes.append(note)
    return rows


def finish_rows(model) -> None:
    """After training: the rows' values in the full matrix, which trains again in any later use."""
    rows = without_rows(model)
    if rows is not None:
        rows.detach()
