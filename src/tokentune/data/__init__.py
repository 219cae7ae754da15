"""Reading labelled data: one reader per format, split discovery, and checks across splits.

Formats (see docs/formats.md): CoNLL columns (:mod:`.conll`), JSON Lines / JSON with tokens and tags
or with raw text and character spans (:mod:`.jsonl`), Hugging Face datasets (:mod:`.hf`).
"""
from __future__ import annotations

from .conll import corpus_from_tags, read_conll, write_conll
from .corpus import Corpus, Sentence
from .formats import guess_format, read_corpus, write_corpus
from .jsonl import read_jsonl, write_jsonl
from .splits import Splits, check_labels, find_split_files, load_splits, unseen_labels

__all__ = ["Corpus", "Sentence", "read_corpus", "read_conll", "read_jsonl", "write_conll", "write_jsonl",
           "write_corpus", "corpus_from_tags", "find_split_files", "load_splits", "Splits", "check_labels",
           "unseen_labels", "guess_format"]
