"""Helpers for the serving tests (tests/test_serve*.py): a trained tiny model and real servers."""
