"""Tests for alliance_lib.scoring: hand-computed cases for every instrument.

Expected values are computed by hand from the keys in ../shared/reference/instruments.md (the
literal item lists below are transcribed from that note, not read from the YAML files). Float
comparisons use an absolute tolerance of 1e-12.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from instrument_keys import EXPECTED

import alliance_lib as al
from alliance_lib.scoring import MissingColumnsError, ScoringError

TOL = 1e-12
NA = np.nan


def frame(prefix, n_items, rows, **ids):
    """A long table: rows are lists of item answers (None/NaN = missing)."""
    data = {f"{prefix}_{i + 1}": [r[i] for r in rows] for i in range(n_items)}
    df = pd.DataFrame(
        {
            "client_id": ids.get("client", [f"c{k}" for k in range(len(rows))]),
            "session": ids.get("session", list(range(1, len(rows) + 1))),
            **data,
        }
    )
    df.index = pd.RangeIndex(2, 2 + len(rows), name="row")
    return df


def with_missing(values, items):
    out = list(values)
    for i in items:
        out[i - 1] = None
    return out


def close(a, b):
    return np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=TOL)


# ---------------------------------------------------------------------------------------------
# WAI-SR (s3): 1-5, no reverse items; goal 4,6,8,11; task 1,2,10,12; bond 3,5,7,9
# ---------------------------------------------------------------------------------------------

# item:        1  2  3  4  5  6  7  8  9 10 11 12
WAI_SR_ROW = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 5, 4]
# goal = (4+1+3+5)/4 = 3.25; task = (1+2+5+4)/4 = 3.0; bond = (3+5+2+4)/4 = 3.5; total = 39/12


def test_wai_sr_complete():
    out = al.score(frame("wai_sr", 12, [WAI_SR_ROW]), "wai-sr")
    close(out[["wai_sr_goal", "wai_sr_task", "wai_sr_bond"]].iloc[0], [3.25, 3.0, 3.5])
    close(out["wai_sr_total"], [39 / 12])
    assert out["wai_sr_n_missing"].tolist() == [0]
    assert out["wai_sr_prorated"].tolist() == [False]
    assert out["wai_sr_problem"].isna().all()


def test_wai_sr_sum_metric():
    out = al.score(frame("wai_sr", 12, [WAI_SR_ROW]), "wai-sr", metric="sum")
    close(
        out[["wai_sr_total", "wai_sr_goal", "wai_sr_task", "wai_sr_bond"]].iloc[0], [39, 13, 12, 14]
    )


def test_wai_sr_subscale_boundary():
    rows = [
        with_missing(WAI_SR_ROW, [4]),  # goal 1 missing: allowed
        with_missing(WAI_SR_ROW, [4, 6]),  # goal 2 missing: not scored; total 2 missing: scored
        with_missing(WAI_SR_ROW, [4, 1, 3]),  # one per subscale: subscales ok, total 3 > 2
    ]
    out = al.score(frame("wai_sr", 12, rows), "wai-sr")
    close(out["wai_sr_goal"], [(1 + 3 + 5) / 3, NA, (1 + 3 + 5) / 3])
    close(out["wai_sr_task"], [3.0, 3.0, (2 + 5 + 4) / 3])
    close(out["wai_sr_bond"], [3.5, 3.5, (5 + 2 + 4) / 3])
    close(out["wai_sr_total"], [35 / 11, 34 / 10, NA])
    assert out["wai_sr_n_missing"].tolist() == [1, 2, 3]
    assert out["wai_sr_prorated"].tolist() == [True, True, True]
    assert (
        out["wai_sr_problem"].iloc[1]
        == "wai_sr_goal not scored: 2 of 4 items missing (at most 1 allowed)"
    )
    assert (
        out["wai_sr_problem"].iloc[2]
        == "wai_sr_total not scored: 3 of 12 items missing (at most 2 allowed)"
    )


def test_wai_sr_prorated_sum():
    out = al.score(frame("wai_sr", 12, [with_missing(WAI_SR_ROW, [4])]), "wai-sr", metric="sum")
    close(out["wai_sr_total"], [35 / 11 * 12])
    close(out["wai_sr_goal"], [9 / 3 * 4])


# ---------------------------------------------------------------------------------------------
# WAI-S (s2): 1-7, reverse 4 and 10; goal 4,6,10,11; task 1,2,8,12; bond 3,5,7,9
# ---------------------------------------------------------------------------------------------


def test_wai_s_reverse_keys_and_subscales():
    ones = [1] * 12  # items 4 and 10 reversed to 7
    out = al.score(
        frame("wai_s", 12, [ones, with_missing(ones, [4]), with_missing(ones, [4, 10])]), "wai-s"
    )
    close(out["wai_s_goal"], [(7 + 1 + 7 + 1) / 4, (1 + 7 + 1) / 3, NA])
    close(out["wai_s_task"], [1, 1, 1])
    close(out["wai_s_bond"], [1, 1, 1])
    close(out["wai_s_total"], [24 / 12, 17 / 11, 10 / 10])
    # sums: the scored value of a reversed item is 8 - x
    out = al.score(frame("wai_s", 12, [[2] * 12]), "wai-s", metric="sum")
    close(out[["wai_s_total", "wai_s_goal"]].iloc[0], [10 * 2 + 2 * 6, 2 + 6 + 6 + 2])


def test_wai_s_total_boundary():
    row = [3] * 12
    out = al.score(
        frame("wai_s", 12, [with_missing(row, [1, 3]), with_missing(row, [1, 3, 4])]), "wai-s"
    )
    close(out["wai_s_total"], [(8 * 3 + 2 * 5) / 10, NA])  # items 4, 10: 8 - 3 = 5


# ---------------------------------------------------------------------------------------------
# WAI 36 (s1): 1-7, 14 reverse items; total needs <= 3 missing and every subscale (<= 1 each)
# ---------------------------------------------------------------------------------------------

WAI_REVERSE = {1, 3, 7, 9, 10, 11, 12, 15, 20, 27, 29, 31, 33, 34}


def test_wai_each_reverse_key():
    # row k has item k = 2 and all others 1, so item k's scored value is 6 if reversed else 2
    rows = [[2 if i == k else 1 for i in range(1, 37)] for k in range(1, 37)]
    out = al.score(frame("wai", 36, rows), "wai", metric="sum")
    base = 14 * 7 + 22 * 1  # all ones: reversed items score 7
    expected = [base + (-1 if k in WAI_REVERSE else 1) for k in range(1, 37)]
    close(out["wai_total"], expected)
    # subscale sums for the all-ones pattern: goal 6 reversed, task 5, bond 3
    goal = {3, 6, 9, 10, 12, 14, 22, 25, 27, 30, 32, 34}
    task = {2, 4, 7, 11, 13, 15, 16, 18, 24, 31, 33, 35}
    for name, items, n_rev in (("goal", goal, 6), ("task", task, 5)):
        exp = [
            n_rev * 7 + (12 - n_rev) + ((-1 if k in WAI_REVERSE else 1) if k in items else 0)
            for k in range(1, 37)
        ]
        close(out[f"wai_{name}"], exp)
    out = al.score(frame("wai", 36, [[1] * 36]), "wai")
    close(out[["wai_total", "wai_goal", "wai_task", "wai_bond"]].iloc[0], [120 / 36, 4.0, 3.5, 2.5])


def test_wai_missing_boundaries():
    ones = [1] * 36
    rows = [
        with_missing(ones, [3, 2, 1]),  # one per subscale (goal, task, bond): all scored
        with_missing(ones, [3, 6]),  # goal 2 missing -> goal and total not scored
        with_missing(ones, [3, 2, 1, 5]),  # 4 missing (bond 2) -> total, bond not scored
    ]
    out = al.score(frame("wai", 36, rows), "wai")
    close(out["wai_goal"], [(5 * 7 + 6) / 11, NA, (5 * 7 + 6) / 11])
    close(out["wai_total"], [(12 * 7 + 21) / 33, NA, NA])
    close(out["wai_bond"], [(2 * 7 + 9) / 11, 2.5, NA])
    assert out["wai_problem"].iloc[1] == (
        "wai_goal not scored: 2 of 12 items missing (at most 1 allowed); "
        "wai_total not scored: needs every subscale scored"
    )
    assert (
        "wai_total not scored: 4 of 36 items missing (at most 3 allowed)"
        in out["wai_problem"].iloc[2]
    )


# ---------------------------------------------------------------------------------------------
# HAq-II (s9): 1-6, reverse 4, 8, 11, 16, 19; mean; total <= 2 missing (ours)
# ---------------------------------------------------------------------------------------------


def test_haq_reverse_and_boundary():
    ones = [1] * 19
    rows = [ones, with_missing(ones, [1, 4]), with_missing(ones, [1, 2, 4])]
    out = al.score(frame("haq", 19, rows), "haq-ii")
    close(out["haq_total"], [(5 * 6 + 14) / 19, (4 * 6 + 13) / 17, NA])
    out = al.score(frame("haq", 19, [[2] * 19]), "haq-ii", metric="sum")
    close(out["haq_total"], [5 * 5 + 14 * 2])


# ---------------------------------------------------------------------------------------------
# OQ-45.2 (s5): 0-4, reverse 1,12,13,20,21,24,31,37,43; sum; <= 4 missing imputed by the
# rounded mean of the item's own subscale; 5 or more -> not scored
# ---------------------------------------------------------------------------------------------

_OQ = EXPECTED["oq-45.2"]
OQ_REVERSE = set(_OQ[5])
OQ_SD, OQ_IR, OQ_SR = (set(_OQ[6][name]) for name in ("sd", "ir", "sr"))


def test_oq_each_reverse_key_and_subscale():
    rows = [[1 if i == k else 0 for i in range(1, 46)] for k in range(1, 46)]
    out = al.score(frame("oq", 45, rows), "oq-45.2")
    # all zeros: each reversed item scores 4; SD has 3 (13, 24, 31), IR 4, SR 2
    base = {"total": 36, "sd": 12, "ir": 16, "sr": 8}
    for name, items in (("total", set(range(1, 46))), ("sd", OQ_SD), ("ir", OQ_IR), ("sr", OQ_SR)):
        exp = [
            base[name] + ((-1 if k in OQ_REVERSE else 1) if k in items else 0) for k in range(1, 46)
        ]
        close(out[f"oq_{name}"], exp)
    assert not out["oq_prorated"].any()


def test_oq_imputation_boundary():
    twos = [2] * 45  # scored value 2 for every item, reversed or not
    rows = [
        with_missing(twos, [2, 3, 7, 4]),  # 4 missing: imputed with 2
        with_missing(twos, [2, 3, 7, 4, 5]),  # 5 missing: not scored
    ]
    out = al.score(frame("oq", 45, rows), "oq-45.2")
    close(out["oq_total"], [90, NA])
    close(out["oq_sd"], [50, NA])
    close(out["oq_ir"], [22, NA])
    close(out["oq_sr"], [18, NA])
    assert out["oq_n_missing"].tolist() == [4, 5]
    assert out["oq_prorated"].tolist() == [True, False]
    assert (
        out["oq_problem"]
        .iloc[1]
        .startswith(
            "oq_total not scored: 5 of 45 items missing (at most 4 allowed); oq_sd not scored: needs oq_total scored"
        )
    )


def test_oq_imputation_rounds_half_up_within_own_subscale():
    row = [0] * 45
    for i in (14, 28, 32, 38):
        row[i - 1] = 2  # scored 2
    for i in (39, 44):
        row[i - 1] = 3  # scored 3
    for i in (12, 21):
        row[i - 1] = 1  # reversed: scored 3
    row[4 - 1] = None  # SR mean of the 8 answered = 20 / 8 = 2.5 -> imputed 3
    out = al.score(frame("oq", 45, [row]), "oq-45.2")
    close(out[["oq_sr", "oq_sd", "oq_ir", "oq_total"]].iloc[0], [23, 12, 16, 51])
    row[39 - 1] = 2  # SR mean 19 / 8 = 2.375 -> imputed 2
    out = al.score(frame("oq", 45, [row]), "oq-45.2")
    close(out[["oq_sr", "oq_total"]].iloc[0], [21, 49])


def test_oq_mean_metric_uses_imputed_items():
    out = al.score(frame("oq", 45, [with_missing([2] * 45, [2])]), "oq-45.2", metric="mean")
    close(out["oq_total"], [2.0])


# ---------------------------------------------------------------------------------------------
# PHQ-9 (s6), GAD-7 (s7): sum; complete by default; prorate= is a local option
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ident", "prefix", "n"), [("phq-9", "phq9", 9), ("gad-7", "gad7", 7)])
def test_phq_gad_sum_and_prorate(ident, prefix, n):
    row = [i % 4 for i in range(1, n + 1)]  # 1, 2, 3, 0, 1, ...
    rows = [row, with_missing(row, [1]), with_missing(row, [1, 2])]
    out = al.score(frame(prefix, n, rows), ident)
    close(out[f"{prefix}_total"], [sum(row), NA, NA])
    assert "0 allowed" in out[f"{prefix}_problem"].iloc[1]
    out = al.score(frame(prefix, n, rows), ident, prorate=1)
    close(out[f"{prefix}_total"], [sum(row), (sum(row) - 1) / (n - 1) * n, NA])
    assert out[f"{prefix}_prorated"].tolist() == [False, True, False]
    assert any("prorate=1" in r for r in out.attrs["scoring"][prefix]["local_rules"])


# ---------------------------------------------------------------------------------------------
# CORE-OM (s8): 0-4, reverse 3,4,7,12,19,21,31,32; clinical score = 10 x mean; total and
# non-risk <= 3 missing, problems and functioning <= 1, well-being and risk none
# ---------------------------------------------------------------------------------------------


def test_core_om_reverse_keys_and_domains():
    out = al.score(frame("core_om", 34, [[0] * 34]), "core-om")
    close(
        out[
            [
                "core_om_total",
                "core_om_wellbeing",
                "core_om_problems",
                "core_om_functioning",
                "core_om_risk",
                "core_om_non_risk",
            ]
        ].iloc[0],
        [320 / 34, 20, 0, 20, 0, 320 / 28],
    )
    out = al.score(frame("core_om", 34, [[0] * 34]), "core-om", metric="sum")
    close(out["core_om_total"], [32])


def test_core_om_missing_boundaries():
    zeros = [0] * 34
    rows = [
        with_missing(zeros, [2, 5, 1]),  # total 3 (ok); problems 2 (no); functioning 1 (ok)
        with_missing(zeros, [2, 5, 1, 8]),  # total 4: not scored
        with_missing(zeros, [14]),  # well-being 1 missing: not scored (none allowed)
        with_missing(zeros, [6]),  # risk 1 missing: not scored; non-risk complete
    ]
    out = al.score(frame("core_om", 34, rows), "core-om")
    close(out["core_om_total"], [320 / 31, NA, 320 / 33, 320 / 33])
    close(out["core_om_problems"], [NA, NA, 0, 0])
    close(out["core_om_functioning"], [240 / 11, 240 / 11, 20, 20])
    close(out["core_om_non_risk"], [320 / 25, NA, 320 / 27, 320 / 28])
    close(out["core_om_wellbeing"], [20, 20, NA, 20])
    close(out["core_om_risk"], [0, 0, 0, NA])
    assert (
        "core_om_wellbeing not scored: 1 of 4 items missing (at most 0 allowed)"
        == out["core_om_problem"].iloc[2]
    )


# ---------------------------------------------------------------------------------------------
# CORE-10 (s8): reverse 2 and 3; sum when complete; one missing -> 10 x mean of nine
# ---------------------------------------------------------------------------------------------


def test_core10():
    zeros = [0] * 10
    row = [1, 0, 4, 2, 3, 0, 1, 2, 3, 4]  # scored: 1, 4, 0, 2, 3, 0, 1, 2, 3, 4 = 20
    rows = [zeros, row, with_missing(row, [2]), with_missing(row, [2, 3])]
    out = al.score(frame("core10", 10, rows), "core-10")
    close(out["core10_total"], [8, 20, 10 * 16 / 9, NA])
    assert out["core10_prorated"].tolist() == [False, False, True, False]


# ---------------------------------------------------------------------------------------------
# SRS, ORS (s4): four 0-10 marks, decimals allowed, sum 0-40, no missing item
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ident", "prefix"), [("srs", "srs"), ("ors", "ors")])
def test_visual_analogue(ident, prefix):
    rows = [[8.5, 9.1, 7.25, 10.0], [0, 0, 0, 0], [8.5, None, 7.0, 10.0]]
    out = al.score(frame(prefix, 4, rows), ident)
    close(out[f"{prefix}_total"], [34.85, 0, NA])
    with pytest.raises(ScoringError, match=f"{prefix}_2 = 10.5 is outside 0-10"):
        al.score(frame(prefix, 4, [[1, 10.5, 1, 1]]), ident)


# ---------------------------------------------------------------------------------------------
# Bad input, errors= modes, missing codes, bookkeeping
# ---------------------------------------------------------------------------------------------


def messy():
    rows = [
        WAI_SR_ROW,
        [1, 2, 7, 4, 5, 1, 2, 3, 4, 5, 5, 4],  # out of range
        [1, 2, 3, 4, 2.5, 1, 2, 3, 4, 5, 5, 4],  # non-integer
        [1, 2, 3, "n/a", 5, 1, 2, 3, 4, 5, 5, 4],  # text
        [1, 2, 3, 4, 5, "—", 2, 3, 4, 5, 5, 4],  # dash
        [1, 2, 3, 4, 5, 1, 2, -99, 4, 5, 5, 4],  # missing code
        [None] * 12,  # not administered
        [1, 2, 3, 4, 5, 1, 2, 3, "3,5", 5, 5, 4],  # decimal comma
    ]
    return frame("wai_sr", 12, rows, client=["01", "02", "03", "04", "05", "06", "07", "08"])


def test_raise_lists_every_cell_with_row_client_session():
    with pytest.raises(ScoringError) as info:
        al.score(messy(), "wai-sr", missing_codes=[-99])
    err = info.value
    assert isinstance(err, ValueError)
    assert err.cells["row"].tolist() == [3, 4, 5, 6, 9]
    msg = str(err)
    assert "5 invalid item cell(s) for wai-sr in 5 row(s)" in msg
    assert "row 3, client '02', session 2: wai_sr_3 = 7 is outside 1-5" in msg
    assert "row 4, client '03', session 3: wai_sr_5 = 2.5 is not a whole number" in msg
    assert "row 5, client '04', session 4: wai_sr_4 = 'n/a' is text, not a number" in msg
    assert "wai_sr_6 = '—' is text, not a number" in msg
    assert "wai_sr_9 = '3,5' is text, not a number (decimal comma?)" in msg
    # the typed fields name the first cell and what to do
    assert (err.row, err.column, err.value) == (3, "wai_sr_3", 7)
    assert isinstance(err, al.AllianceError) and "missing_codes=" in err.hint


def test_raise_message_caps_at_twenty_cells():
    rows = [[9] * 12 for _ in range(3)]
    with pytest.raises(ScoringError) as info:
        al.score(frame("wai_sr", 12, rows), "wai-sr")
    assert len(info.value.cells) == 36
    assert "... and 16 more" in str(info.value)


def test_quarantine_keeps_rows_and_explains():
    df = messy()
    out = al.score(df, "wai-sr", missing_codes=[-99], errors="quarantine")
    assert len(out) == len(df)
    assert out.index.equals(df.index)
    assert list(out.columns[: len(df.columns)]) == list(df.columns)
    pd.testing.assert_frame_equal(out[df.columns], df)  # input columns untouched
    assert out["wai_sr_total"].notna().tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    close(out["wai_sr_total"].iloc[5], (39 - 3) / 11)  # -99 became missing: prorated
    assert out["wai_sr_problem"].tolist()[1:5] == [
        "wai_sr_3 = 7 is outside 1-5",
        "wai_sr_5 = 2.5 is not a whole number (the 1-5 scale has whole-number answers)",
        "wai_sr_4 = 'n/a' is text, not a number",
        "wai_sr_6 = '—' is text, not a number",
    ]
    assert out["wai_sr_problem"].iloc[6] == "not administered (all 12 items missing)"
    assert out["wai_sr_n_missing"].tolist() == [0, 0, 0, 0, 0, 1, 12, 0]
    assert out.attrs["scoring"]["wai_sr"]["missing_codes"] == {"wai_sr_8": 1}
    assert out.attrs["scoring"]["wai_sr"]["n_rows_invalid"] == 5


def test_missing_codes_as_text_and_numbers():
    rows = [[1, 2, 3, 4, 5, 1, 2, "999", 4, 5, 5, " -99 "]]
    out = al.score(frame("wai_sr", 12, rows), "wai-sr", missing_codes=(-99, 999))
    assert out["wai_sr_n_missing"].tolist() == [2]
    out = al.score(frame("wai_sr", 12, [[1] * 11 + ["NA"]]), "wai-sr", missing_codes=("NA",))
    assert out["wai_sr_n_missing"].tolist() == [1]


def test_missing_item_columns_suggest_names():
    df = frame("wai_sr", 12, [WAI_SR_ROW]).rename(
        columns={"wai_sr_3": "wai_sr3", "wai_sr_4": "WAI_SR_4"}
    )
    with pytest.raises(MissingColumnsError) as info:
        al.score(df, "wai-sr")
    assert info.value.missing == ["wai_sr_3", "wai_sr_4"]
    assert info.value.suggestions == {"wai_sr_3": "wai_sr3", "wai_sr_4": "WAI_SR_4"}
    assert "Did you mean 'wai_sr3' for 'wai_sr_3'" in str(info.value)


def test_multi_instrument_table_and_rescoring():
    wai = frame("wai_sr", 12, [WAI_SR_ROW, WAI_SR_ROW])
    for i in range(1, 46):
        wai[f"oq_{i}"] = [2, None]  # second row: a therapist row without OQ items
    out = al.score(al.score(wai, "wai-sr"), "oq-45.2")
    close(out["oq_total"], [90, NA])
    assert out["oq_problem"].tolist()[1] == "not administered (all 45 items missing)"
    again = al.score(out, "wai-sr", metric="sum")  # re-scoring replaces, never duplicates
    assert list(again.columns).count("wai_sr_total") == 1
    close(again["wai_sr_total"], [39, 39])
    assert set(again.attrs["scoring"]) == {"wai_sr", "oq"}


def test_uncertain_facts_are_reported():
    out = al.score(frame("oq", 45, [[1] * 45]), "oq-45.2")
    assert out.attrs["scoring"]["oq"]["uncertain"] == {
        "oq_sd": ["subscales"],
        "oq_ir": ["subscales"],
        "oq_sr": ["subscales"],
    }
    out = al.score(frame("wai_sr", 12, [WAI_SR_ROW]), "wai-sr")
    assert out.attrs["scoring"]["wai_sr"]["uncertain"] == {}
    assert out.attrs["scoring"]["wai_sr"]["local_rules"] == ["metric", "missing_rule"]


def test_arguments_are_checked():
    df = frame("wai_sr", 12, [WAI_SR_ROW])
    with pytest.raises(ValueError, match="metric must be one of"):
        al.score(df, "wai-sr", metric="median")
    with pytest.raises(ValueError, match="errors must be"):
        al.score(df, "wai-sr", errors="ignore")
    with pytest.raises(ValueError, match="unknown scale"):
        al.score(df, "wai-sr", prorate={"tusk": 1})


def test_nullable_and_integer_dtypes():
    df = frame("wai_sr", 12, [WAI_SR_ROW, WAI_SR_ROW])
    for c in [c for c in df.columns if c.startswith("wai_sr_")]:
        df[c] = df[c].astype("Int64")
    df.loc[3, "wai_sr_4"] = pd.NA
    out = al.score(df, "wai-sr")
    close(out["wai_sr_goal"], [3.25, 3.0])


def test_empty_frame():
    df = frame("wai_sr", 12, [WAI_SR_ROW]).iloc[:0]
    out = al.score(df, "wai-sr")
    assert len(out) == 0 and "wai_sr_total" in out.columns


def test_reverse_items_is_an_involution():
    x = np.array([[1.0, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5]])
    once = al.reverse_items(x, "wai-s")
    assert once[0, 3] == 4 and once[0, 9] == 5
    close(al.reverse_items(once, "wai-s"), x)


# Literal reverse keys from instruments.md (s1, s2, s5, s8, s9), independent of the YAML files.
REVERSE = {
    "wai-sr": set(),
    "wai-s": {4, 10},
    "wai": WAI_REVERSE,
    "haq-ii": {4, 8, 11, 16, 19},
    "oq-45.2": OQ_REVERSE,
    "core-om": {3, 4, 7, 12, 19, 21, 31, 32},
    "core-10": {2, 3},
    "phq-9": set(),
    "gad-7": set(),
    "srs": set(),
    "ors": set(),
}


@pytest.mark.parametrize("ident", sorted(REVERSE))
def test_each_item_is_keyed_as_in_the_reference(ident):
    inst = al.get_instrument(ident)
    lo, hi, n = inst.scale_min, inst.scale_max, inst.n_items
    # row k: item k one step above the minimum, the rest at the minimum; sum metric
    rows = [[lo + 1 if i == k else lo for i in range(1, n + 1)] for k in range(1, n + 1)]
    out = al.score(frame(inst.prefix, n, rows), ident, metric="sum")
    n_rev = len(REVERSE[ident])
    base = n_rev * hi + (n - n_rev) * lo  # reversed items at the minimum score the maximum
    expected = [base + (-1 if k in REVERSE[ident] else 1) for k in range(1, n + 1)]
    close(out[f"{inst.prefix}_total"], expected)


def test_core_om_problems_and_functioning_one_missing_allowed():
    zeros = [0] * 34
    rows = [with_missing(zeros, [2]), with_missing(zeros, [1, 10])]  # P 1 missing; F 2 missing
    out = al.score(frame("core_om", 34, rows), "core-om")
    close(out["core_om_problems"], [0, 0])
    close(out["core_om_functioning"], [20, NA])
    close(out["core_om_total"], [320 / 33, 320 / 32])
    close(out["core_om_non_risk"], [320 / 27, 320 / 26])


def test_error_names_the_file():
    df = frame("wai_sr", 12, [[0] * 12])
    df.attrs["source"] = "wave1.csv"
    with pytest.raises(ScoringError, match=r"^wave1.csv: 12 invalid item cell\(s\)") as info:
        al.score(df, "wai-sr")
    assert info.value.file == "wave1.csv"
    assert info.value.cells.loc[0, ["row", "client", "session", "column", "value"]].tolist() == [
        2,
        "c0",
        1,
        "wai_sr_1",
        0,
    ]


# ---------------------------------------------------------------------------------------------
# Speed-ups keep the results: chunked screening, row-limited imputation, joined problem texts
# ---------------------------------------------------------------------------------------------

scoring_module = __import__("alliance_lib.scoring", fromlist=["_CHUNK"])


def test_join_by_pos_keeps_the_order_of_the_pieces_per_row():
    pieces = [
        (np.array([3, 1]), np.array(["a", "b"], dtype=object)),
        (np.array([], dtype=np.int64), np.array([], dtype=object)),
        (np.array([1]), np.array(["c"], dtype=object)),
        (np.array([3, 3, 0]), np.array(["d", "e", "f"], dtype=object)),
    ]
    pos, text = scoring_module._join_by_pos(pieces)
    assert pos.tolist() == [0, 1, 3]
    assert text.tolist() == ["f", "b; c", "a; d; e"]
    pos, text = scoring_module._join_by_pos([])
    assert pos.tolist() == [] and text.tolist() == []


def test_screening_in_chunks_finds_every_cell(monkeypatch):
    # chunks of 3 rows: the invalid cells and missing codes fall in different chunks, and one
    # chunk (rows 5-7) is entirely missing in item 2
    rows = [list(WAI_SR_ROW) for _ in range(10)]
    rows[0][0] = 7  # chunk 1: out of range
    rows[4][2] = 2.5  # chunk 2: fraction
    rows[8][0] = -99  # chunk 3: missing code outside the scale
    rows[9][0] = 0  # chunk 4: out of range below
    for k in (3, 4, 5):
        rows[k][1] = None
    df = frame("wai_sr", 12, rows)
    whole = al.score(df, "wai-sr", errors="quarantine", missing_codes=[-99])
    monkeypatch.setattr(scoring_module, "_CHUNK", 3)
    chunked = al.score(df, "wai-sr", errors="quarantine", missing_codes=[-99])
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    assert chunked.attrs == whole.attrs
    problems = chunked["wai_sr_problem"]
    assert problems.loc[2] == "wai_sr_1 = 7 is outside 1-5"
    assert problems.loc[6] == (
        "wai_sr_3 = 2.5 is not a whole number (the 1-5 scale has whole-number answers)"
    )
    assert problems.loc[11] == "wai_sr_1 = 0 is outside 1-5"
    assert problems.isna().sum() == 7
    assert chunked["wai_sr_n_missing"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 0]
    assert chunked.attrs["scoring"]["wai_sr"]["missing_codes"] == {"wai_sr_1": 1}
    # row 10 (index 10): item 1 missing -> task = (2 + 5 + 4) / 3
    close(chunked.loc[10, "wai_sr_task"], 11 / 3)


def test_imputation_limited_to_rows_with_gaps_equals_every_row():
    inst = al.get_instrument("oq-45.2")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, (200, 45)).astype(float)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[7] = np.nan  # nothing to impute from
    full = scoring_module._impute_subscale_means(np.asfortranarray(x), inst)
    rows = {}
    for s, items in inst.scales.items():
        nan = np.isnan(x[:, np.asarray(items) - 1]).sum(axis=1)
        rows[s] = np.flatnonzero((nan > 0) & (nan < len(items)))
    limited = scoring_module._impute_subscale_means(np.asfortranarray(x), inst, rows)
    np.testing.assert_array_equal(limited, full)
    # by hand for one row: a missing SR item gets the rounded mean of the row's other SR items
    sr = np.asarray(inst.subscales["sr"]) - 1
    k = next(r for r in range(200) if np.isnan(x[r, sr]).sum() == 1)
    gap = sr[np.isnan(x[k, sr])][0]
    assert full[k, gap] == np.floor(np.nanmean(x[k, sr]) + 0.5)


def test_scales_with_negative_answers_zero_missing_cells_the_general_way():
    # the same PHQ-9 answers on a shifted scale (-1..2 instead of 0..3): sums shift by -9
    import dataclasses

    inst = al.get_instrument("phq-9")
    shifted = dataclasses.replace(inst, scale_min=-1, scale_max=2)
    rows = [[1, 2, 3, 0, 1, 2, 3, 0, 1], with_missing([1, 2, 3, 0, 1, 2, 3, 0, 1], [2])]
    df = frame("phq9", 9, rows)
    low = frame("phq9", 9, [[None if v is None else v - 1 for v in r] for r in rows])
    out = al.score(df, inst, prorate=1)
    out_low = al.score(low, shifted, prorate=1)
    close(out["phq9_total"], [13.0, 11 / 8 * 9])
    close(out_low["phq9_total"], [13.0 - 9, (11 - 8) / 8 * 9])


# ---------------------------------------------------------------------------------------------
# score() after validate(): the checked item block is used without a second check (issue 6)
# ---------------------------------------------------------------------------------------------


def raw_table(ids, n=400, seed=11):
    """Random answers for several instruments: missing cells, rows with many or all items
    missing, the missing code -99, a few invalid cells (quarantined by validate) and, on the
    0-10 scales, fractional answers."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"client_id": [f"c{k // 4}" for k in range(n)], "session": np.arange(n) % 4},
        index=pd.RangeIndex(2, n + 2, name="row"),
    )
    for ident in ids:
        inst = al.get_instrument(ident)
        lo, hi = inst.scale_min, inst.scale_max
        x = rng.integers(lo, hi + 1, (n, inst.n_items)).astype(float)
        if not inst.integer_scale:
            x += np.round(rng.random(x.shape), 1) * (x < hi)
        x[rng.random(x.shape) < 0.04] = np.nan
        x[rng.random(x.shape) < 0.02] = -99
        x[rng.random(n) < 0.2, : inst.n_items // 3] = np.nan  # many missing
        x[rng.random(n) < 0.05] = np.nan  # not administered
        x[rng.choice(n, 3, replace=False), 0] = hi + 1  # invalid: quarantined
        for j, col in enumerate(inst.columns):
            df[col] = x[:, j]
    return df


def scored_part(out, inst):
    cols = [c for c in out.columns if c.startswith(inst.prefix + "_")]
    return out[[c for c in cols if c not in inst.columns]]


@pytest.mark.parametrize(
    "ident, options",
    [
        ("wai-sr", {}),
        ("wai-sr", {"metric": "sum", "prorate": 3}),
        ("wai-s", {}),  # reverse items
        ("oq-45.2", {}),  # subscale-mean imputation, reverse items
        ("core-om", {"prorate": 4}),
        ("ors", {"prorate": 1}),  # 0-10, fractional answers
        ("phq-9", {}),
    ],
)
def test_score_after_validate_equals_score_of_the_raw_rows(ident, options):
    inst = al.get_instrument(ident)
    df = raw_table(["wai-sr", ident])
    v = al.validate(df, ["wai-sr", ident], missing_codes=[-99])
    assert v.n_quarantined >= 3
    # validate hands its checked block over explicitly: score uses it without a second check
    assert set(v.checked_items) == {"wai-sr", ident}
    assert scoring_module._checked_block(v.clean, inst, v, ()) is not None
    assert scoring_module._checked_block(v.clean, inst, None, ()) is None  # not handed over
    assert scoring_module._checked_block(v.clean.copy(), inst, v, ()) is None  # other memory
    fast = al.score(v, ident, **options)
    raw = al.score(df.loc[v.clean.index], ident, missing_codes=[-99], **options)
    pd.testing.assert_frame_equal(scored_part(fast, inst), scored_part(raw, inst), check_exact=True)
    pd.testing.assert_frame_equal(fast[list(v.clean.columns)], v.clean, check_exact=True)
    prov, prov_raw = fast.attrs["scoring"][inst.prefix], raw.attrs["scoring"][inst.prefix]
    assert prov["missing_codes"] == {}  # validate replaced them (counted in v.missing_codes)
    assert {**prov, "missing_codes": None} == {**prov_raw, "missing_codes": None}
    # the same as checking the cells again (a deep copy is not the checked block)
    checked_again = al.score(v.clean.copy(), ident, **options)
    pd.testing.assert_frame_equal(fast, checked_again, check_exact=True)
    assert fast.attrs == checked_again.attrs
    # v.score() and checked= give the same scores, for every validated instrument in turn
    both = v.score(**options)
    pd.testing.assert_frame_equal(scored_part(both, inst), scored_part(fast, inst))
    after_wai = al.score(v, "wai-sr")
    assert scoring_module._checked_block(after_wai, inst, v, ()) is not None
    # some rows were actually rescored from gaps, and some are not administered
    assert (fast[f"{inst.prefix}_n_missing"] > 0).any()
    assert fast[f"{inst.prefix}_problem"].str.startswith("not administered").any()
    assert fast[f"{inst.prefix}_total"].notna().sum() > 100


def test_changes_after_validate_are_checked_again():
    inst = al.get_instrument("wai-sr")
    df = raw_table(["wai-sr"], n=40)
    v = al.validate(df, "wai-sr", missing_codes=[-99])
    clean = v.clean
    items = list(inst.columns)
    original = clean[items].to_numpy().copy()
    first, second = clean.index[0], clean.index[1]
    before = al.score(v, "wai-sr")
    raw = df.loc[clean.index]

    edited = clean.copy(deep=False)  # shares the block until changed (copy-on-write)
    assert scoring_module._checked_block(edited, inst, v, ()) is not None
    edited.loc[first, "wai_sr_3"] = 7
    assert scoring_module._checked_block(edited, inst, v, ()) is None
    with pytest.raises(ScoringError, match="wai_sr_3 = 7 is outside 1-5"):
        al.score(edited, "wai-sr", checked=v)
    # changes in place to valid answers are scored from the new values
    clean.iloc[1, clean.columns.get_loc("wai_sr_1")] = 1.0
    clean.replace({"wai_sr_2": {np.nan: 5.0}}, inplace=True)
    assert scoring_module._checked_block(clean, inst, v, ()) is None
    after = al.score(clean, "wai-sr", checked=v)
    expect = al.score(
        raw.assign(wai_sr_1=clean["wai_sr_1"], wai_sr_2=clean["wai_sr_2"]),
        "wai-sr",
        missing_codes=[-99],
    )
    pd.testing.assert_frame_equal(scored_part(after, inst), scored_part(expect, inst))
    assert after.loc[second, "wai_sr_1"] == 1.0
    assert not after["wai_sr_2"].isna().any()
    assert not scored_part(after, inst).equals(scored_part(before, inst))
    # the checked block itself was never written: it still holds the old answers
    np.testing.assert_array_equal(v.checked_items["wai-sr"], original)
    assert not v.checked_items["wai-sr"].flags.writeable
    held = v._witness
    assert scoring_module._checked_block(held, inst, v, ()) is not None
    pd.testing.assert_frame_equal(
        scored_part(al.score(held, "wai-sr", checked=v), inst), scored_part(before, inst)
    )
    # a missing code inside the scale must be looked for: the cells are checked again
    assert scoring_module._checked_block(held, inst, v, [3]) is None
    coded = al.score(held, "wai-sr", missing_codes=[3], checked=v)
    assert coded.attrs["scoring"]["wai_sr"]["missing_codes"]
    pd.testing.assert_frame_equal(
        scored_part(coded, inst),
        scored_part(al.score(raw, "wai-sr", missing_codes=[-99, 3]), inst),
    )
    # a subset of the rows is not the checked block (checked again, same scores)
    assert scoring_module._checked_block(held.iloc[:5], inst, v, ()) is None
    head = al.score(held.iloc[:5], "wai-sr", checked=v)
    pd.testing.assert_frame_equal(scored_part(head, inst), scored_part(before.iloc[:5], inst))


def test_no_state_outside_the_validated_result():
    """The address-keyed module cache is gone: a plain frame is always checked."""
    inst = al.get_instrument("wai-sr")
    df = raw_table(["wai-sr"], n=40)
    v = al.validate(df, "wai-sr", missing_codes=[-99])
    assert not any(n.startswith("_CHECKED") for n in vars(scoring_module))
    clean = v.clean
    del v
    clean.loc[clean.index[0], "wai_sr_5"] = 0.0  # no result protects the block: checked
    with pytest.raises(ScoringError, match="wai_sr_5 = 0 is outside 1-5"):
        al.score(clean, "wai-sr")
    # a block checked for another scale is not used
    v = al.validate(df, "wai-sr", missing_codes=[-99])
    other = dataclasses.replace(inst, scale_max=3.0)
    assert scoring_module._checked_block(v.clean, other, v, ()) is None


def test_existing_score_columns_are_never_overwritten_silently():
    """Silent result 4 of issue 11: REDCap's calculated phq9_total was replaced by ours."""
    inst = al.get_instrument("phq-9")
    df = frame(inst.prefix, 9, [[1] * 9, [3] * 9])
    total = f"{inst.prefix}_total"
    df[total] = [8.0, 99.0]  # a total calculated by REDCap (the second one is wrong)
    with pytest.raises(al.DataError, match=f"already have column.*{total}.*existing='keep'") as e:
        al.score(df, "phq-9")
    assert e.value.column == total and "existing" in e.value.hint
    kept = al.score(df, "phq-9", existing="keep")
    close(kept[total], [9, 27])
    close(kept[f"{total}_input"], [8, 99])  # compare them
    replaced = al.score(df, "phq-9", existing="replace")
    close(replaced[total], [9, 27])
    assert f"{total}_input" not in replaced
    # through validate as well
    v = al.validate(df.assign(client_id=["a", "b"], session=[1, 1]), "phq-9")
    with pytest.raises(al.DataError, match="already have column"):
        v.score()
    close(v.score(existing="keep")[f"{total}_input"], [8, 99])
    with pytest.raises(ValueError, match="existing must be"):
        al.score(df, "phq-9", existing="ignore")


@pytest.mark.parametrize("ident", ["core-10", "core-om", "haq-ii", "oq-45.2", "wai", "wai-s"])
@pytest.mark.parametrize("p_missing", [0.002, 0.3])
def test_validated_blocks_score_like_a_private_copy(ident, p_missing):
    """Scoring from validate's shared, read-only block (reverse-keyed columns reflected and
    missing cells zeroed column by column as they are summed) gives exactly the scores of
    scoring a private copy of the same cells in place."""
    from alliance_lib import validate

    inst = al.get_instrument(ident)
    rng = np.random.default_rng(11)
    n = 3000
    items = rng.integers(inst.scale_min, inst.scale_max + 1, (n, inst.n_items)).astype(float)
    items[rng.random(items.shape) < p_missing] = np.nan
    items[:50] = np.nan  # not administered
    df = pd.DataFrame(items, columns=list(inst.columns))
    df.insert(0, "session", np.arange(n) % 9 + 1)
    df.insert(0, "client_id", [f"c{i // 9}" for i in range(n)])
    checked = validate(df, ident)
    assert not checked.checked_items[inst.id].flags.writeable
    shared = checked.score(ident)
    private = al.score(checked.clean.copy(deep=True), ident)
    scores = [c for c in shared.columns if c.startswith(inst.prefix + "_") and c not in df]
    assert len(scores) > 3
    pd.testing.assert_frame_equal(shared[scores], private[scores], check_exact=True)
    # and both are the manual's total, by hand, on the rows with every item answered
    x = df.loc[checked.clean.index, list(inst.columns)].to_numpy(copy=True)
    x[:, [i - 1 for i in inst.reverse]] = (
        inst.scale_min + inst.scale_max - x[:, [i - 1 for i in inst.reverse]]
    )
    x = x[:, [i - 1 for i in inst.scales["total"]]]
    complete = ~np.isnan(x).any(axis=1)
    by_hand = {"sum": x.sum(axis=1), "mean": x.mean(axis=1), "mean_x10": 10 * x.mean(axis=1)}
    if p_missing < 0.01:  # (at 30% missing few rows have every item)
        assert complete.sum() > 100
    np.testing.assert_allclose(
        shared[f"{inst.prefix}_total"].to_numpy()[complete],
        by_hand[inst.metric][complete],
        rtol=1e-12,
    )
    # and the shared block is unchanged (reflection and zeroing happened outside it)
    block = checked.checked_items[inst.id]
    assert np.array_equal(block, df.loc[checked.clean.index, list(inst.columns)], equal_nan=True)
