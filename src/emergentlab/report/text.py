"""Making user text inert wherever it leaves the program: a terminal, a CSV cell, a plot, a file name.

Task names, model names, prompts and generations come from files we do not control. In a terminal, escape and
bell bytes would act on the user's screen (`ESC]8;;` links, title changes) and rich would read `[link=…]` as markup;
in a spreadsheet a cell starting with `=` is a formula; in matplotlib `$…$` is mathtext (a parser that raises on
unknown commands); as a file name, a 300-character name fails. HTML is autoescaped by jinja2 and needs none of this.
"""

from __future__ import annotations

import re

import pandas as pd

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_control(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def inert(text: object) -> str:
    """`text` with every control byte (ESC, BEL, C1 codes; tab and newline kept) shown as `\\xNN`. Print the result
    with rich's markup and highlighting off, or wrap it in `rich.text.Text`, so brackets stay brackets."""
    return _CONTROL.sub(_escape_control, str(text))


PLOT_TEXT_MAX = 80  # characters: a longer label cannot be laid out on a 3-inch panel


def plot_text(text: object) -> str:
    """A label for matplotlib: control bytes escaped, cut to `PLOT_TEXT_MAX` characters, and every `$` escaped so
    mathtext never parses user text."""
    s = inert(text)
    if len(s) > PLOT_TEXT_MAX:
        s = s[: PLOT_TEXT_MAX - 1] + "…"
    return s.replace("$", r"\$")


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot act as spreadsheet formulas (OWASP: a leading `'` on cells starting with
    = + - @ tab or CR). Numbers stay numbers; only string cells change."""
    def fix(v: object) -> object:
        return f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START) else v

    out = df.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(fix)
    out.columns = [fix(c) for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, path: str | object) -> None:
    """`df` as CSV with formula-safe text cells."""
    csv_safe(df).to_csv(path, index=False)  # type: ignore[arg-type]
