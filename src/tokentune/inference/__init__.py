"""Inference: the :class:`Tagger` (words or raw text in, entities with character offsets out), the
runners that compute label probabilities (torch, ONNX Runtime), worker processes
(:mod:`.parallel`) and Ray Data actors (:func:`predict_dataset`) for large inputs."""
from __future__ import annotations

from .ray_batch import predict_dataset
from .tagger import Entity, Tagger, TokenPrediction

__all__ = ["Tagger", "Entity", "TokenPrediction", "predict_dataset"]
