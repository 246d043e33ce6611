"""APA 7 tables: one layer that turns a section's :class:`~alliance_lib.sections.Table` into what a
reader sees (HTML in the report, rows in ``tables.docx``), from raw values that stay unrounded.

Why our own layer on pandas rather than great-tables: the same display rules must feed three
outputs (the HTML report, the Word tables and, unformatted, the CSV exports), great-tables renders
HTML and images only and would add a dependency chain to the report; the rules themselves are
small (below) and are tested cell by cell.

Rules (APA 7, Publication Manual sections 6.36-6.44 and 7.8-7.21): integers as integers with
thousands separators; p values with three decimals and no leading zero, ``< .001`` below that;
no leading zero for values that cannot exceed 1 (correlations, proportions, ICCs, alpha);
confidence intervals as ``[low, high]``; a true minus sign; missing cells as an em dash; no row
index; numbered tables with an italic title and a note.

Examples
--------
>>> import pandas as pd
>>> from alliance_lib.sections import Table
>>> t = Table("Key estimates", pd.DataFrame({"Term": ["Session"], "n": [3341.0],
...           "b": [0.02729], "95% CI": [(0.0222, 0.0324)], "p": [1e-20], "r": [0.41]}),
...           formats={"n": "int", "b": "num", "95% CI": "ci", "p": "p", "r": "prop"},
...           digits={"b": 3, "95% CI": 3})
>>> format_table(t).iloc[0].tolist()
['Session', '3,341', '0.027', '[0.022, 0.032]', '< .001', '.41']
>>> format_p(0.0283), format_prop(-0.5), format_number(-1.234)
('.028', '−.50', '−1.23')
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from alliance_lib.sections.base import Table

__all__ = [
    "MISSING",
    "format_number",
    "format_int",
    "format_p",
    "format_pct",
    "format_prop",
    "format_ci",
    "format_cell",
    "format_table",
    "table_html",
    "instrument_label",
    "scale_label",
    "METRIC_NAMES",
]

#: What an empty cell shows (APA: a dash for a value that does not apply or is missing).
MISSING = "—"
MINUS = "−"  # U+2212, the typographic minus APA asks for

#: Reader-facing names of the scoring metrics (DESIGN.md: instrument definitions).
METRIC_NAMES = {"mean": "item mean", "sum": "sum score", "mean_x10": "mean × 10"}

# subscale codes of the bundled instruments -> names from their manuals
_SCALE_NAMES = {
    "total": "Total",
    "sd": "Symptom Distress",
    "ir": "Interpersonal Relations",
    "sr": "Social Role",
    "goal": "Goal",
    "task": "Task",
    "bond": "Bond",
}


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and not math.isfinite(value))
    except TypeError:
        return False


def _minus(text: str) -> str:
    return MINUS + text[1:] if text.startswith("-") else text


def format_number(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals (a minus sign, never e-notation; ``-0.00`` -> ``0.00``)."""
    if _missing(value):
        return MISSING
    v = float(value)
    text = f"{v:,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")
    return _minus(text)


def format_int(value: Any) -> str:
    """A count as a whole number with thousands separators (``3341.0`` -> ``3,341``)."""
    if _missing(value):
        return MISSING
    return _minus(f"{round(float(value)):,d}")


def format_prop(value: Any, digits: int = 2) -> str:
    """A value bounded by 1 in absolute value, without the leading zero (``.42``, ``−.07``)."""
    if _missing(value):
        return MISSING
    text = format_number(value, digits)
    return text.replace("0.", ".", 1) if text.lstrip(MINUS).startswith("0.") else text


def format_pct(value: Any, digits: int = 0) -> str:
    """A share as a percentage (``0.5767`` -> ``58%``).

    >>> format_pct(0.5767), format_pct(0.0123, 1)
    ('58%', '1.2%')
    """
    if _missing(value):
        return MISSING
    return f"{format_number(100 * float(value), digits)}%"


def format_p(value: Any) -> str:
    """A p value: three decimals without a leading zero, ``< .001`` below .001, ``> .999`` where
    it would round to 1."""
    if _missing(value):
        return MISSING
    p = float(value)
    if p < 0.001:
        return "< .001"
    if round(p, 3) >= 1:
        return "> .999"
    return f"{p:.3f}".replace("0.", ".", 1)


def format_ci(value: Any, digits: int = 2, *, prop: bool = False) -> str:
    """A ``(low, high)`` pair as ``[low, high]``; ``prop`` drops the leading zeros."""
    if value is None or (not isinstance(value, tuple | list | np.ndarray) and _missing(value)):
        return MISSING
    low, high = value
    if _missing(low) or _missing(high):
        return MISSING
    f = format_prop if prop else format_number
    return f"[{f(low, digits)}, {f(high, digits)}]"


def format_cell(value: Any, fmt: str | None, digits: int | None = None) -> str:
    """One cell in the display format ``fmt`` (one of :data:`alliance_lib.sections.FORMATS`;
    ``None``: chosen from the value's type)."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if fmt is None:
        if isinstance(value, int | np.integer):
            fmt = "int"
        elif isinstance(value, float | np.floating):
            fmt = "num"
        elif isinstance(value, tuple):
            fmt = "ci"
        else:
            fmt = "text"
    if fmt == "int":
        return format_int(value)
    if fmt == "num":
        return format_number(value, 2 if digits is None else digits)
    if fmt == "prop":
        return format_prop(value, 2 if digits is None else digits)
    if fmt == "p":
        return format_p(value)
    if fmt == "pct":
        return format_pct(value, digits or 0)
    if fmt in ("ci", "ci_prop"):
        return format_ci(value, 2 if digits is None else digits, prop=fmt == "ci_prop")
    if fmt == "text":
        return MISSING if _missing(value) or value == "" else str(value)
    raise ValueError(f"unknown display format {fmt!r}")


def format_table(table: Table) -> pd.DataFrame:
    """The table's cells as display strings (the index is dropped: labels belong in columns).

    Unlisted columns take their format from the dtype: integer columns as ``int``, other numbers
    as ``num``, booleans as yes/no, text as is.
    """
    data = table.data.reset_index(drop=True)
    out = {}
    for col in data.columns:
        fmt = table.formats.get(col)
        values = data[col]
        if fmt is None and pd.api.types.is_bool_dtype(values):
            fmt = "text"
        elif fmt is None and pd.api.types.is_integer_dtype(values):
            fmt = "int"
        elif fmt is None and pd.api.types.is_float_dtype(values):
            fmt = "num"
        digits = table.digits.get(col)
        out[str(col)] = [format_cell(v, fmt, digits) for v in values.tolist()]
    return pd.DataFrame(out, columns=[str(c) for c in data.columns])


def _numeric_column(table: Table, col: str) -> bool:
    return table.formats.get(col) in ("int", "num", "prop", "p", "pct", "ci", "ci_prop") or (
        col not in table.formats and pd.api.types.is_numeric_dtype(table.data[col])
    )


def table_html(table: Table, number: int, *, anchor: str | None = None) -> str:
    """An APA table as HTML: "Table N" in bold, the title in italics, the grid, then the note.

    Examples
    --------
    >>> t = Table("Clients", pd.DataFrame({"Group": ["A"], "n": [3]}), note="Made up.")
    >>> html = table_html(t, 1)
    >>> "<strong>Table 1</strong>" in html and "<em>Note.</em> Made up." in html
    True
    """
    shown = format_table(table)
    numeric = {c: _numeric_column(table, c) for c in table.data.columns}
    head = "".join(
        f'<th scope="col" class="{"num" if numeric[c] else "txt"}">{html.escape(str(c))}</th>'
        for c in table.data.columns
    )
    rows = []
    for _, row in shown.iterrows():
        cells = "".join(
            f'<td class="{"num" if numeric[c] else "txt"}">{html.escape(v)}</td>'
            for c, v in zip(table.data.columns, row.tolist(), strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    note = f'<p class="apa-note"><em>Note.</em> {html.escape(table.note)}</p>' if table.note else ""
    return (
        f'<figure class="apa-table"{ident}>'
        f'<p class="apa-number"><strong>Table {number}</strong></p>'
        f'<p class="apa-title"><em>{html.escape(table.title)}</em></p>'
        f'<div class="apa-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}</figure>"
    )


def scale_label(scale: str) -> str:
    """A subscale's name for readers (``"sd"`` -> ``"Symptom Distress"``).

    >>> scale_label("bond"), scale_label("working_alliance")
    ('Bond', 'Working alliance')
    """
    return _SCALE_NAMES.get(scale, scale.replace("_", " ").capitalize())


def instrument_label(instrument, scale: str = "total", *, rater: str | None = None) -> str:
    """An instrument's display name with its metric and range, for axes and table rows.

    Examples
    --------
    >>> from alliance_lib.registry import get_instrument
    >>> instrument_label(get_instrument("wai-sr"))
    'WAI-SR total (item mean, 1–5)'
    >>> instrument_label(get_instrument("oq-45.2"), rater="client")
    'OQ-45.2 total, client-rated (sum score, 0–180)'
    """
    lo, hi = float(instrument.scale_min), float(instrument.scale_max)
    if instrument.metric == "sum" and scale == "total":
        lo, hi = lo * instrument.n_items, hi * instrument.n_items
    elif instrument.metric == "sum":
        n = len(instrument.subscales.get(scale, ())) or instrument.n_items
        lo, hi = lo * n, hi * n
    elif instrument.metric == "mean_x10":
        lo, hi = lo * 10, hi * 10
    name = instrument.id.upper() if len(instrument.id) <= 12 else instrument.name
    what = "total" if scale == "total" else scale_label(scale)
    who = f", {rater}-rated" if rater else ""
    metric = METRIC_NAMES.get(instrument.metric, instrument.metric)
    return f"{name} {what}{who} ({metric}, {lo:g}–{hi:g})"
