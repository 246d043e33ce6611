"""What every report section returns: numbers, tables, figures and sentences, or why it does not apply.

A section is a function ``name_section(wave, **options) -> Section`` taking the prepared wave
(:class:`alliance_lib.waves.WaveData`). The report template only calls sections and renders their
results; every analysis lives in the library, where it is tested.

Examples
--------
>>> import pandas as pd
>>> t = Table("Clients per therapist", pd.DataFrame({"Therapist": ["T-1"], "Clients": [12]}),
...           formats={"Clients": "int"}, note="Pseudonymous therapist IDs.")
>>> s = Section("sample", "Sample", numbers={"n_clients": 12}, tables=[t],
...             sentences=["12 clients were seen."])
>>> s.applies, s.tables[0].title
(True, 'Clients per therapist')
>>> Section.skip("raters", "Rater agreement", "no therapist ratings in this wave").applies
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Section", "Table", "Figure", "FORMATS"]

#: Display formats of a table column (the table layer renders them in APA 7 style):
#: ``int`` whole numbers; ``num`` (``digits`` decimals, default 2); ``prop`` a value that cannot
#: exceed 1 in absolute value (no leading zero: ``.42``); ``p`` a p value (``< .001``, ``.028``);
#: ``pct`` a share shown as a percentage; ``ci`` a cell holding a ``(low, high)`` pair
#: (``[0.02, 0.03]``); ``ci_prop`` the same for values bounded by 1 (``[.49, .54]``); ``text`` as it
#: is.
FORMATS = ("int", "num", "prop", "p", "pct", "ci", "ci_prop", "text")


@dataclass
class Table:
    """A table for the reader: raw values in ``data`` (never rounded), display rules in ``formats``.

    Attributes
    ----------
    title : str
        APA table title (the table layer numbers tables).
    data : DataFrame
        Rows and columns with readable labels (``"Clients"``, not ``n_clients``); the index is
        not shown, so labels belong in a column.
    formats : dict
        Column -> one of :data:`FORMATS`; unlisted numeric columns are shown with 2 decimals.
    digits : dict
        Column -> decimals for ``num`` / ``ci`` columns.
    note : str
        The table note (what the abbreviations mean, how CIs were made).
    name : str
        File stem for exports (``tables/<name>.csv``); defaults to the title, slugified.
    """

    title: str
    data: pd.DataFrame
    formats: dict[str, str] = field(default_factory=dict)
    digits: dict[str, int] = field(default_factory=dict)
    note: str = ""
    name: str = ""


@dataclass
class Figure:
    """A figure with its caption; the alt text defaults to the caption.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    caption : str
        What the figure shows and how to read it (the report numbers figures).
    alt : str
        Alternative text for screen readers (default: the caption).
    name : str
        File stem for exports (``figures/<name>.png`` / ``.svg``).
    """

    figure: Any
    caption: str
    alt: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if not self.alt:
            self.alt = self.caption


@dataclass
class Section:
    """The result of one report section.

    Attributes
    ----------
    key : str
        Key of the section's numbers in ``results.json``.
    title : str
        Heading in the report.
    numbers : dict
        Every number the section reports, JSON-ready (goes into ``results.json`` under ``key``).
    tables, figures : list
        :class:`Table` and :class:`Figure` objects, in reading order.
    sentences : list of str
        Findings in words, written from the numbers.
    summary : str
        One sentence for the report's "This wave" box (empty: the section adds none).
    methods : str
        What was done (model, estimator, settings actually used), for the methods paragraph.
    references : list of str
        Full references cited by ``methods``.
    not_applicable : str or None
        Why the section does not apply to this wave (``None`` when it does).
    """

    key: str
    title: str
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    summary: str = ""
    methods: str = ""
    references: list[str] = field(default_factory=list)
    not_applicable: str | None = None

    @property
    def applies(self) -> bool:
        return self.not_applicable is None

    @classmethod
    def skip(cls, key: str, title: str, reason: str) -> Section:
        """A section that does not apply, with the reason the report lists at its end."""
        return cls(key=key, title=title, not_applicable=reason)
