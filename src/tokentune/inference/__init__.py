"""Inference: the :class:`Tagger` (words or raw text in, entities with character offsets out) and the
runners that compute label probabilities (torch, ONNX Runtime)."""
from __future__ import annotations

from .tagger import Entity, Tagger, TokenPrediction

__all__ = ["Tagger", "Entity", "TokenPrediction"]
