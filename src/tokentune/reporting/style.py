"""Colours shared by the plots and the HTML page, so that a type has one colour everywhere."""
from __future__ import annotations

from typing import Iterable

# ColorBrewer Set3 plus a few more: light enough for dark text on top, distinct from one another
PALETTE = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69", "#fccde5", "#ffed6f",
           "#bc80bd", "#ccebc5", "#d9d9d9", "#e5c494", "#a6d854", "#66c2a5", "#fc8d62", "#8da0cb")


def type_colours(types: Iterable[str]) -> dict[str, str]:
    """One colour per type, assigned in sorted order (stable across runs with the same types)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(types)))}
