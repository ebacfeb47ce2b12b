"""Answer extraction from a chain of thought: which part of a generation is the answer.

Two rules, each a regular expression with one group, so a record carries its rule as `Record.output_regex` and the
generative metrics read the answer through `metrics.response` exactly as they read BIG-bench's:

- `answer_regex(marker)`: the number right after the *last* occurrence of `marker` (e.g. "answer"), optionally
  followed by ":" or "=" and spaces. A chain that never states its answer has none (the response is empty, so exact
  match is 0): a model is not credited for a number it passed on the way.
- `LAST_NUMBER`: the last integer in the text (an optional leading "-"), for chains without a stated marker.
"""

from __future__ import annotations

import re

LAST_NUMBER = r"(?s)(-?\d+)(?!.*\d)"
"""The last integer of the text (the lookahead refuses any later digit)."""


def answer_regex(marker: str) -> str:
    """The number after the last `marker` (matched literally, case-sensitive), past optional ":"/"=" and spaces."""
    if not marker.strip():
        raise ValueError("an answer marker must be non-blank")
    return r"(?s).*" + re.escape(marker) + r"\s*[:=]?\s*(-?\d+)"


def extract(text: str, regex: str) -> str | None:
    """The answer `regex` finds in `text` (its group), None when there is none: the rule `metrics.response` applies
    to a record with this `output_regex` (an empty response there)."""
    m = re.search(regex, text)
    return m.group(1) if m else None
