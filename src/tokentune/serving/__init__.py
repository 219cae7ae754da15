"""Serving a model over HTTP: ``create_app(model_dir_or_tagger, limits=Limits(...), api_key=...)``.

Needs the ``serve`` extra (fastapi, uvicorn). ``tokentune serve`` runs the app with uvicorn.
"""
from __future__ import annotations

from .validation import Limits

__all__ = ["create_app", "Limits"]


def create_app(*args, **kwargs):
    """See :func:`tokentune.serving.app.create_app` (imported on first use: fastapi is optional)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
