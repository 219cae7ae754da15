"""Small helpers shared by command modules."""
from __future__ import annotations


def quiet_libraries(quiet: bool = False) -> None:
    """Keep transformers' info/warning chatter (e.g. 'newly initialized classifier') off the terminal;
    with ``quiet`` also its progress bars (weights loading and saving), without importing it (quiet.py)."""
    from ..quiet import quiet_transformers

    quiet_transformers(progress_bars=not quiet)


def add_text_flags(group, *, min_score_help: str) -> None:
    """The flags of commands that tag raw text (predict, serve): the score threshold and the word splitter."""
    from ..words import SPLITTERS

    group.add_argument("--min-score", type=float, metavar="X", help=min_score_help)
    group.add_argument("--word-splitter", choices=tuple(SPLITTERS),
                       help="how raw text is split into words: default (CoNLL-like rules), whitespace, chars (every "
                            "character a word: Chinese/Japanese), model (the tokenizer's pre-tokenizer) or thai "
                            "(PyThaiNLP); default: the model's saved word_splitter, else default")
    group.add_argument("--whole-texts", dest="split_sentences", action="store_false",
                       help="read each raw text as one sequence; by default a text is cut into sentences (line "
                            "breaks, . ! ? before a capital) and each is read alone, or with the rest of its text "
                            "by a model trained with --context document")



def add_precision_flag(group) -> None:
    """``--precision`` of the commands that run a saved model (predict, evaluate, serve)."""
    from ..config import AUTO_PRECISION, PRECISIONS

    group.add_argument("--precision", choices=PRECISIONS,
                       help=f"torch backend: auto (default; fp32 for a model trained with --precision fp32): "
                            f"{AUTO_PRECISION} (on a CPU with AMX-BF16 the model ran 2-3x faster, whole commands "
                            "about 1.2x)")
