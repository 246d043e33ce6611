"""The APA 7 table layer: every display rule at its boundary, and what a reader must never see."""

import re

import numpy as np
import pandas as pd
import pytest

from alliance_lib.registry import get_instrument
from alliance_lib.sections import Table
from alliance_lib.tables import (
    MISSING,
    format_cell,
    format_ci,
    format_int,
    format_number,
    format_p,
    format_pct,
    format_prop,
    format_table,
    instrument_label,
    scale_label,
    table_html,
)

# what a raw DataFrame shows and an APA table never does
FORBIDDEN = re.compile(r"\bnan\b|\bNone\b|\bTrue\b|\bFalse\b|\d[eE][+-]\d|<NA>|NaT", re.I)


@pytest.mark.parametrize(
    "p, shown",
    [
        (0.0, "< .001"),
        (0.000999, "< .001"),
        (0.001, ".001"),
        (0.0283, ".028"),
        (0.05, ".050"),
        (0.2803, ".280"),
        (0.9994, ".999"),
        (0.9996, "> .999"),
        (1.0, "> .999"),
        (2.4e-35, "< .001"),
    ],
)
def test_p_values(p, shown):
    assert format_p(p) == shown


def test_integers_as_integers_with_separators():
    assert format_int(300.0) == "300"
    assert format_int(3341) == "3,341"
    assert format_int(np.int64(-12)) == "−12"
    assert format_cell(np.int64(5), None) == "5"


def test_no_leading_zero_for_bounded_values():
    assert format_prop(0.4213) == ".42"
    assert format_prop(-0.0714) == "−.07"
    assert format_prop(1.0) == "1.00"
    assert format_prop(0.6170, 3) == ".617"
    assert format_ci((0.49, 0.54), prop=True) == "[.49, .54]"


def test_numbers_use_a_minus_sign_and_never_e_notation():
    assert format_number(-1.2345) == "−1.23"
    assert format_number(-0.0001) == "0.00"  # no negative zero
    assert format_number(2.043e-01, 4) == "0.2043"
    assert format_number(1.2e-20, 3) == "0.000"
    assert format_number(123456.789, 1) == "123,456.8"


def test_confidence_intervals_in_brackets():
    assert format_ci((0.0222, 0.0324), 3) == "[0.022, 0.032]"
    assert format_ci((-5.0316, -3.0084)) == "[−5.03, −3.01]"
    assert format_ci((np.nan, 1.0)) == MISSING
    assert format_ci(None) == MISSING


def test_missing_values_and_booleans():
    for v in (None, np.nan, pd.NA, float("inf")):
        assert format_cell(v, "num") == MISSING
        assert format_cell(v, "p") == MISSING
    assert format_cell(True, None) == "yes" and format_cell(np.bool_(False), "text") == "no"
    assert format_cell("", "text") == MISSING
    assert format_pct(0.5767) == "58%"
    with pytest.raises(ValueError, match="unknown display format"):
        format_cell(1.0, "percent")


def test_a_table_never_shows_raw_pandas_output():
    df = pd.DataFrame(
        {
            "Term": ["Intercept", "Session", None],
            "n": pd.array([300, 3341, None], dtype="Int64"),
            "b": [3.622436, 2.7287e-02, np.nan],
            "p": [2.4e-35, 0.28, None],
            "Converged": [True, False, True],
            "95% CI": [(3.5477, 3.6971), (0.0222, 0.0324), None],
            "Other": [1e-9, 2.5, np.inf],
        },
        index=["a", "b", "c"],
    )
    t = Table(
        "Made-up estimates",
        df,
        formats={"n": "int", "b": "num", "p": "p", "95% CI": "ci"},
        digits={"b": 3, "95% CI": 3},
    )
    shown = format_table(t)
    assert list(shown.columns) == list(df.columns)
    cells = " ".join(shown.to_numpy().ravel())
    assert not FORBIDDEN.search(cells), cells
    assert shown["n"].tolist() == ["300", "3,341", MISSING]
    assert shown["b"].tolist() == ["3.622", "0.027", MISSING]
    assert shown["p"].tolist() == ["< .001", ".280", MISSING]
    assert shown["Converged"].tolist() == ["yes", "no", "yes"]
    html = table_html(t, 4)
    assert not FORBIDDEN.search(re.sub(r"<[^>]+>", " ", html))
    assert ">a<" not in html and ">c<" not in html, "the row index is shown"
    assert "<strong>Table 4</strong>" in html and "<em>Made-up estimates</em>" in html


def test_html_escapes_labels_and_marks_numeric_columns():
    t = Table("A <b> title", pd.DataFrame({"Scale & form": ["<x>"], "n": [3]}), note="a < b")
    html = table_html(t, 1)
    assert "&lt;x&gt;" in html and "A &lt;b&gt; title" in html and "Scale &amp; form" in html
    assert '<td class="num">3</td>' in html and '<td class="txt">&lt;x&gt;</td>' in html
    assert "<em>Note.</em> a &lt; b" in html


def test_instrument_labels_name_the_metric_and_range():
    assert instrument_label(get_instrument("wai-sr")) == "WAI-SR total (item mean, 1–5)"
    assert instrument_label(get_instrument("oq-45.2")) == "OQ-45.2 total (sum score, 0–180)"
    assert (
        instrument_label(get_instrument("oq-45.2"), "sd")
        == "OQ-45.2 Symptom Distress (sum score, 0–100)"
    )
    assert instrument_label(get_instrument("core-om")).endswith("(mean × 10, 0–40)")
    assert instrument_label(get_instrument("wai-sr"), rater="therapist").startswith(
        "WAI-SR total, therapist-rated"
    )
    assert scale_label("ir") == "Interpersonal Relations"
