"""Keeping transformers' chatter and progress bars off a command's output, without importing it.

Called by the commands and by the worker processes tokentune starts (never on import). Prediction of a BERT
model does not import transformers at all (inference/bert.py): where it is not imported yet, the settings
go through the environment variables transformers and huggingface_hub read when they are imported, so
quieting them costs no second of importing. A variable the user has set is left as it is.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


def quiet_transformers(progress_bars: bool = True) -> None:
    """transformers logs errors only; ``progress_bars=False`` also turns off its and the Hub's bars."""
    if "transformers" not in sys.modules and "huggingface_hub" not in sys.modules:  # both read these at import
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        if not progress_bars:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        return
    from transformers.utils import logging

    logging.set_verbosity_error()
    if not progress_bars:
        logging.disable_progress_bar()


@contextmanager
def quiet_while(enabled: bool) -> Iterator[None]:
    """transformers' warnings and progress bars off for the block when ``enabled`` (a library call with
    ``quiet=True``: the weight-loading report and bars), and back as they were after it."""
    if not enabled:
        yield
        return
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
