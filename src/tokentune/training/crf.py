"""The CRF head in training: a linear-chain CRF over the token-classification logits.

Each labelled sub-token (a word's first piece; ``labels != IGNORE``) is one step of a chain; a chain
is one window of a batch row, or, in packed rows (:mod:`.packing`), one sentence of the row: a
sentence starts where the position ids restart, so the CRF never links two packed sentences.

The module (``start[L]``, ``transitions[L, L]``, ``end[L]``, zeros at first: no random draw, so a
seed gives the same classifier as with the softmax head) is attached to the transformers model as
``model.crf``: the Trainer's optimizer, checkpoints, ``--resume`` and best-model reloading then carry
it like any weight. The final directory is written without it (plain transformers weights) plus
``crf.safetensors`` (:mod:`tokentune.crf`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..crf import CrfScores, save_crf
from ..windows import IGNORE

CRF_LR_FACTOR = 100.0  # default --crf-learning-rate: this many times --learning-rate


class LinearChainCRF(nn.Module):
    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.start = nn.Parameter(torch.zeros(num_labels))
        self.transitions = nn.Parameter(torch.zeros(num_labels, num_labels))
        self.end = nn.Parameter(torch.zeros(num_labels))

    def scores(self) -> CrfScores:
        return CrfScores(*(p.detach().float().cpu().numpy() for p in (self.start, self.transitions, self.end)))

    def nll(self, logits: torch.Tensor, labels: torch.Tensor,
            position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """(summed negative log-likelihood of the gold chains, labelled tokens) for a batch."""
        emissions, tags, mask = chains(logits.float(), labels, position_ids)
        if not len(tags):
            return logits.float().sum() * 0.0, 0
        return sequence_nll(emissions, tags, mask, self.start, self.transitions, self.end).sum(), int(mask.sum())


def chain_index(labels: torch.Tensor, position_ids: torch.Tensor | None = None):
    """``(rows, cols, chain, step, lengths)`` of the labelled tokens: token k sits at
    ``[rows[k], cols[k]]`` and is step ``step[k]`` of chain ``chain[k]``."""
    rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
    key = rows
    if position_ids is not None:  # packed rows: a sentence starts where the positions restart
        restart = torch.ones_like(labels, dtype=torch.bool)
        restart[:, 1:] = position_ids[:, 1:] <= position_ids[:, :-1]
        key = rows * (labels.shape[1] + 1) + restart.long().cumsum(1)[rows, cols]
    new = torch.ones_like(key, dtype=torch.bool)
    new[1:] = key[1:] != key[:-1]
    chain = new.long().cumsum(0) - 1
    first = new.nonzero(as_tuple=True)[0]
    step = torch.arange(len(key), device=labels.device) - first[chain]
    lengths = torch.bincount(chain, minlength=len(first)) if len(key) else chain.new_zeros(0)
    return rows, cols, chain, step, lengths


def chains(logits: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None):
    """Emissions ``[chains, steps, L]``, gold tags ``[chains, steps]`` and the mask of real steps."""
    rows, cols, chain, step, lengths = chain_index(labels, position_ids)
    count, width = len(lengths), int(lengths.max()) if len(lengths) else 0
    emissions = logits.new_zeros(count, width, logits.shape[-1])
    emissions[chain, step] = logits[rows, cols]
    tags = labels.new_zeros(count, width)
    tags[chain, step] = labels[rows, cols]
    mask = torch.zeros(count, width, dtype=torch.bool, device=labels.device)
    mask[chain, step] = True
    return emissions, tags, mask


def sequence_nll(emissions, tags, mask, start, transitions, end) -> torch.Tensor:
    """Per-chain ``log Z - score(gold)``: the forward algorithm over left-aligned chains (mask is a
    prefix of each row)."""
    count, width, _ = emissions.shape
    rows = torch.arange(count, device=emissions.device)
    gold = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
    alpha = start + emissions[:, 0]
    for t in range(1, width):
        live = mask[:, t]
        step_gold = transitions[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
        gold = gold + torch.where(live, step_gold, torch.zeros_like(step_gold))
        moved = torch.logsumexp(alpha[:, :, None] + transitions[None], dim=1) + emissions[:, t]
        alpha = torch.where(live[:, None], moved, alpha)
    last = tags[rows, mask.sum(1) - 1]
    gold = gold + end[last]
    return torch.logsumexp(alpha + end, dim=1) - gold


def attach_crf(model, num_labels: int) -> LinearChainCRF:
    """A zero-initialised CRF as ``model.crf`` (on the model's device), returned."""
    crf = LinearChainCRF(num_labels).to(next(model.parameters()).device)
    model.crf = crf
    return crf


def crf_of(model) -> LinearChainCRF | None:
    crf = getattr(model, "crf", None)
    return crf if isinstance(crf, LinearChainCRF) else None


def save_without_crf(model, directory: str, labels: Sequence[str]) -> None:
    """``save_pretrained`` of the plain transformers model, and ``crf.safetensors`` when it has a CRF."""
    crf = crf_of(model)
    if crf is not None:
        del model.crf
    try:
        model.save_pretrained(directory, safe_serialization=True)
    finally:
        if crf is not None:
            model.crf = crf
    if crf is not None:
        save_crf(directory, crf.scores(), labels)


def split_crf_parameters(optimizer, crf: LinearChainCRF, learning_rate: float) -> None:
    """Move the CRF's parameters into their own group (its own learning rate, no weight decay)."""
    own_rate_groups(optimizer, list(crf.parameters()), learning_rate, "crf", weight_decay=0.0)


def own_rate_groups(optimizer, params, learning_rate: float, tag: str, weight_decay: float | None = None) -> None:
    """Move ``params`` out of the optimizer's groups into groups of their own at ``learning_rate``, tagged
    ``tag``. With ``weight_decay``: one group holding all of ``params`` (found in the optimizer or not);
    without: one group per group they came from, keeping its settings (its weight decay), and ``params``
    the optimizer does not hold are left out. Done once: the Trainer asks for its optimizer more than once.
    The scheduler, built after, scales each group from its own rate."""
    if any(group.get(tag) for group in optimizer.param_groups) or not params:
        return
    own = {id(p) for p in params}
    moved = []
    for group in optimizer.param_groups:
        taken = [p for p in group["params"] if id(p) in own]
        if taken:
            group["params"] = [p for p in group["params"] if id(p) not in own]
            moved.append({k: v for k, v in group.items() if k not in ("param_names", "lr", "initial_lr")} |
                         {"params": taken})
    if weight_decay is not None:
        moved = [{"params": list(params), "weight_decay": weight_decay}]
    for group in moved:
        optimizer.add_param_group({**group, "lr": learning_rate, tag: True})


def viterbi_ids(logits: torch.Tensor, labels: torch.Tensor, crf: LinearChainCRF, label_names: Sequence[str],
                scheme) -> torch.Tensor:
    """Viterbi label ids ``[batch, time]`` of the labelled tokens of evaluation windows (the scheme's
    masks plus the learned scores, as the Tagger decodes); 0 elsewhere."""
    from ..decoding import viterbi_batch

    rows, cols, chain, step, lengths = chain_index(labels)
    ids = torch.zeros(labels.shape, dtype=torch.long, device=labels.device)
    if not len(rows):
        return ids
    log_probs = torch.log_softmax(logits.float()[rows, cols], dim=-1).cpu().numpy()
    decoded = viterbi_batch(log_probs, lengths.cpu().numpy(), label_names, scheme, learned=crf.scores())
    ids[rows, cols] = torch.from_numpy(np.asarray(decoded)).to(labels.device)
    return ids
