"""Entity-level scores: exact matches as seqeval computes them (:mod:`.exact`), partial matches as
SemEval-2013 counts them (:mod:`.partial`), both on one vectorised encoding of the tags."""
from __future__ import annotations

from .encoding import STRICT_SCHEMES, InvalidTagError
from .exact import score_flat_tags, score_spans, score_tags
from .partial import PARTIAL_KINDS, partial_match_report

__all__ = ["score_tags", "score_flat_tags", "score_spans", "partial_match_report", "InvalidTagError",
           "STRICT_SCHEMES", "PARTIAL_KINDS"]
