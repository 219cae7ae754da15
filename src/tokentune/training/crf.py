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
# a training batch's chains, laid out on the host by ChainLayoutCollator: for each step of each chain the
# flat position of its token in the batch (-1 past the chain's end), and its gold tag
SLOTS, TAGS = "tokentune_chain_slots", "tokentune_chain_tags"


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
        """(summed negative log-likelihood of the gold chains, labelled tokens) for a batch, its chains found
        in ``labels`` here (training batches bring them laid out: :meth:`nll_of_layout`)."""
        layout = chain_layout(labels, position_ids)
        total, tokens = self.nll_of_layout(logits, layout[SLOTS], layout[TAGS])
        return total, int(tokens)

    def nll_of_layout(self, logits: torch.Tensor, slots: torch.Tensor,
                      tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`nll` from chains laid out on the host (:func:`chain_layout`): the same figures, but
        nothing here waits for the device (finding the chains in device tensors reads their sizes back,
        which on a GPU stalls the host until the forward pass has run). Labelled tokens as a tensor."""
        mask = slots >= 0
        if not slots.numel():
            return logits.float().sum() * 0.0, mask.sum()
        flat = logits.float().reshape(-1, logits.shape[-1])
        emissions = torch.where(mask.unsqueeze(2), flat[slots.clamp(min=0)], 0.0)
        return sequence_nll(emissions, tags, mask, self.start, self.transitions, self.end).sum(), mask.sum()


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


def chain_layout(labels: torch.Tensor, position_ids: torch.Tensor | None = None) -> dict:
    """``{SLOTS: [chains, steps], TAGS: [chains, steps]}`` of a batch's labels (and packed position ids), on
    the labels' device: each chain step's flat position ``row x width + column`` (-1 past the chain's end)
    and gold tag, chains left-aligned."""
    rows, cols, chain, step, lengths = chain_index(labels, position_ids)
    count, width = len(lengths), int(lengths.max()) if len(lengths) else 0
    slots = torch.full((count, width), -1, dtype=torch.long, device=labels.device)
    slots[chain, step] = rows * labels.shape[1] + cols
    tags = labels.new_zeros(count, width)
    tags[chain, step] = labels[rows, cols]
    return {SLOTS: slots, TAGS: tags}


class ChainLayoutCollator:
    """Wraps the training collator: adds the batch's :func:`chain_layout`, computed on the host before the
    batch moves to the device (the CRF's loss then reads it instead of finding the chains itself)."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collator(features)
        return {**batch, **chain_layout(batch["labels"], batch.get("position_ids"))}


def sequence_nll(emissions, tags, mask, start, transitions, end, *, tree: bool | None = None) -> torch.Tensor:
    """Per-chain ``log Z - score(gold)`` over left-aligned chains (mask is a prefix of each row).

    ``tree``: how log Z is computed. The forward algorithm is a product of per-step matrices in the
    (logsumexp, +) semiring; taken one step at a time it costs about 20 operators per step of the
    longest chain (forward and backward), multiplied pairwise as a tree about 20 per halving. A GPU
    pays per operator launched for a model as small as the embedded one (bench/ops_per_step.py), a CPU
    per arithmetic (the tree does ``labels`` times more): None takes the tree off the CPU, where it fits
    in ``TREE_ELEMENTS``."""
    count, width, labels = emissions.shape
    if tree is None:
        tree = emissions.device.type != "cpu" and count * width * labels ** 3 <= TREE_ELEMENTS
    log_z = (tree_log_partition if tree else stepwise_log_partition)(emissions, mask, start, transitions, end)
    return log_z - gold_scores(emissions, tags, mask, start, transitions, end)


# the tree's first level holds chains x steps / 2 x labels^3 numbers: at most 32 MB in fp32, and the
# backward keeps about as much again over all the levels
TREE_ELEMENTS = 1 << 24


def gold_scores(emissions, tags, mask, start, transitions, end) -> torch.Tensor:
    """Score of each chain's gold path: start + emissions + transitions between live steps + end."""
    rows = torch.arange(len(tags), device=tags.device)
    emitted = (emissions.gather(2, tags.unsqueeze(2)).squeeze(2) * mask).sum(1)
    moved = (transitions[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]).sum(1)
    return start[tags[:, 0]] + emitted + moved + end[tags[rows, mask.sum(1) - 1]]


def stepwise_log_partition(emissions, mask, start, transitions, end) -> torch.Tensor:
    """The forward algorithm one step at a time; each chain's alpha is read at its last step."""
    alpha = start + emissions[:, 0]
    alphas = [alpha]
    for t in range(1, emissions.shape[1]):
        alpha = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alphas.append(alpha)
    last = torch.stack(alphas, 1)[torch.arange(len(alpha), device=alpha.device), mask.sum(1) - 1]
    return torch.logsumexp(last + end, dim=1)


def tree_log_partition(emissions, mask, start, transitions, end) -> torch.Tensor:
    """The same log Z from the step matrices multiplied in pairs: steps past a chain's end are the
    semiring's identity (0 on the diagonal, impossible elsewhere), as is the padding of an odd count."""
    count, width, labels = emissions.shape
    alpha = start + emissions[:, 0]
    if width > 1:
        # off the diagonal: a score no path can reach, yet finite when two of them are added (a fixed -1e4
        # leaked through `end` once learned scores spread by more than that)
        impossible = torch.finfo(emissions.dtype).min / 4
        identity = torch.full((labels, labels), impossible, dtype=emissions.dtype, device=emissions.device)
        identity.fill_diagonal_(0.0)
        steps = torch.where(mask[:, 1:, None, None], transitions + emissions[:, 1:, None, :], identity)
        while steps.shape[1] > 1:
            if steps.shape[1] % 2:
                steps = torch.cat([steps, identity.expand(count, 1, labels, labels)], 1)
            steps = torch.logsumexp(steps[:, 0::2, :, :, None] + steps[:, 1::2, None, :, :], dim=3)
        alpha = torch.logsumexp(alpha.unsqueeze(2) + steps[:, 0], dim=1)
    return torch.logsumexp(alpha + end, dim=1)


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
