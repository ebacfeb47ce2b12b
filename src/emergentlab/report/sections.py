"""`Section`: one block of the HTML report. Experiments hand the report these; the template renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    """A titled block: plain-text paragraphs (autoescaped), PNG figures (embedded), and small tables."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
