"""Tests for alliance_lib.change: sudden gains/losses, reliable and clinically significant change.

Independent references used here:

* tests/reference/fixtures/sgdata_sudden_*.csv: written by tests/reference/sudden_gains_reference.R,
  a base-R implementation of suddengains' identify_sg / identify_sl / create_bysg (R 4.2.2, see
  sudden_gains_reference_info.txt), run on suddengains' own example data sgdata.
* suddengains' own testthat expectations (tests/testthat/test-identify_sg.R, test-identify_sl.R,
  test-create_bysg.R, test-create_byperson.R, test-count_intervals.R; milanwiedemann/suddengains,
  MIT), transcribed below as numbers.
* hand-computed cases at each criterion's boundary (the arithmetic is in the comments).
* Jacobson & Truax (1991) worked example (SD 7.5, r .80 -> 9.30 points) and the cutoff values of
  clinicalsignificance's test-calc_cutoff.R (M 40/60, SD 7.5 -> a 55/25, b 45/75, c 50).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import alliance_lib as al
from alliance_lib.change import ChangeInputError
from alliance_lib.errors import MissingColumnsError

HERE = Path(__file__).parent
SGDATA = HERE / "data" / "sgdata.csv"
FIXTURES = HERE / "reference" / "fixtures"


def long_bdi(ids=None) -> pd.DataFrame:
    """sgdata BDI sessions 1-12 as long data (absent rows for missing values)."""
    wide = pd.read_csv(SGDATA)
    if ids is not None:
        wide = wide[wide["id"].isin(ids)]
    cols = [f"bdi_s{i}" for i in range(1, 13)]
    long = wide.melt(id_vars="id", value_vars=cols, var_name="s", value_name="bdi")
    long["session"] = long["s"].str.removeprefix("bdi_s").astype(int)
    long = long.dropna(subset=["bdi"]).rename(columns={"id": "client_id"})
    return long[["client_id", "session", "bdi"]].reset_index(drop=True)


def int_ids(out: pd.DataFrame) -> pd.DataFrame:
    """Our client ids are text (the intake stage keeps ids as text); the references' are ints."""
    return out.assign(client_id=out["client_id"].astype(int))


def series(values, start=1, client="a", name="y") -> pd.DataFrame:
    """Long data for one client; None/NaN values become absent rows."""
    df = pd.DataFrame(
        {"client_id": client, "session": np.arange(start, start + len(values)), name: values}
    )
    return df.dropna(subset=[name]).reset_index(drop=True)


def gains_at(df, **kw):
    kw.setdefault("cutoff", 7)
    return al.sudden_gains(df, "y", **kw)["pre_session"].tolist()


# ---------------------------------------------------------------------------------------------
# sgdata against the base-R reference (exact up to floating point: rtol 1e-12)
# ---------------------------------------------------------------------------------------------

EVENT_COLS = [
    "pre_session",
    "post_session",
    "n_events",
    "score_n_minus_2",
    "score_n_minus_1",
    "score_n",
    "score_n_plus_1",
    "score_n_plus_2",
    "score_n_plus_3",
    "magnitude",
    "tx_start_score",
    "tx_end_score",
    "tx_change",
    "change_proportion",
    "reversal_value",
]


@pytest.fixture(scope="module")
def r_events():
    return pd.read_csv(FIXTURES / "sgdata_sudden_events.csv")


@pytest.fixture(scope="module")
def r_intervals():
    return pd.read_csv(FIXTURES / "sgdata_sudden_intervals.csv")


@pytest.mark.parametrize("kind", ["gain", "loss"])
def test_sgdata_events_match_r_reference(kind, r_events):
    # R: tests/reference/sudden_gains_reference.R (suddengains defaults, BDI s1-s12)
    func = al.sudden_gains if kind == "gain" else al.sudden_losses
    ours = int_ids(func(long_bdi(), "bdi", cutoff=7)).sort_values(["client_id", "pre_session"])
    ref = r_events[r_events["kind"] == kind].sort_values(["id", "pre_session"])
    assert len(ours) == len(ref) == {"gain": 24, "loss": 3}[kind]
    assert_array_equal(ours["client_id"].to_numpy(), ref["id"].to_numpy())
    for col in EVENT_COLS:
        assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12)
    assert_array_equal(ours["reversal"].to_numpy(), ref["reversal"].to_numpy() == 1)


def test_sgdata_loss_quirk_does_not_matter_on_sgdata(r_events):
    # suddengains' identify_sl criterion 2 (pre - post <= .25 pre) gives the same 3 losses on
    # sgdata as the corrected criterion (methods.md 1.2); our losses equal both sets.
    key = ["id", "pre_session"]
    loss = r_events[r_events["kind"] == "loss"][key].to_numpy()
    quirk = r_events[r_events["kind"] == "loss_sg_quirk"][key].to_numpy()
    assert_array_equal(loss, quirk)
    # and create_bysg's off-by-one reversal window gives the same flags on sgdata
    assert_array_equal(r_events["reversal"], r_events["reversal_sg_quirk"])


@pytest.mark.parametrize("kind", ["gain", "loss"])
def test_sgdata_interval_criteria_match_r_reference(kind, r_intervals):
    ours = int_ids(al.sudden_gain_intervals(long_bdi(), "bdi", cutoff=7, kind=kind))
    # one row per client x tested interval: 43 clients x (12 - 3) intervals
    assert len(ours) == len(r_intervals) == 43 * 9
    ref = r_intervals.sort_values(["id", "pre_session"]).reset_index(drop=True)
    ours = ours.sort_values(["client_id", "pre_session"]).reset_index(drop=True)
    assert_array_equal(ours["pre_session"], ref["pre_session"])
    for ours_col, ref_col in [
        ("crit1", f"{kind}_crit1"),
        ("crit2", f"{kind}_crit2"),
        ("crit3", f"{kind}_crit3"),
        ("event", kind),
    ]:
        got = ours[ours_col].astype("float").to_numpy()
        assert_array_equal(np.isnan(got), ref[ref_col].isna().to_numpy(), err_msg=ours_col)
        ok = ~np.isnan(got)
        assert_array_equal(got[ok], ref[ref_col].to_numpy()[ok], err_msg=ours_col)
    for col in ("n_pre", "n_post", "mean_pre", "mean_post", "t_crit"):
        assert_allclose(ours[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-12)


def test_sgdata_count_intervals_match_r_reference(r_intervals):
    counts = al.count_intervals(long_bdi(), "bdi")
    assert len(counts) == 43
    assert counts["n_intervals"].sum() == 43 * 11
    assert counts["n_tested"].sum() == 43 * 9
    assert counts["n_analysable"].sum() == r_intervals["gain"].notna().sum()
    assert counts["n_not_analysable"].sum() == r_intervals["gain"].isna().sum()


# suddengains tests/testthat/test-create_bysg.R: the first 18 clients of sgdata, cutoff 7.
# (id, N, magnitude, tx_change, change_proportion, reversal_value, reversal)
SUDDENGAINS_BYSG = [
    (1, 3, 11, 28, 0.39285714285714285, 28.5, 1),
    (1, 7, 12, 28, 0.42857142857142855, 23, 0),
    (3, 8, 9, 16, 0.5625, 30.5, 0),
    (4, 3, 10, 3, 3.3333333333333335, 27, 1),
    (5, 3, 10, 31, 0.3225806451612903, 31, 0),
    (5, 8, 13, 31, 0.41935483870967744, 12.5, 0),
    (9, 3, 9, 24, 0.375, 27.5, 0),
    (10, 2, 10, 27, 0.37037037037037035, 30, 0),
    (10, 4, 8, 27, 0.2962962962962963, 21, 0),
    (12, 3, 8, 13, 0.6153846153846154, 27, 1),
    (13, 3, 13, 25, 0.52, 29.5, 0),
    (13, 8, 8, 25, 0.32, 14, 0),
    (14, 2, 14, 25, 0.56, 30, 0),
    (18, 3, 11, np.nan, np.nan, 29.5, 0),
]


def test_first_18_clients_match_suddengains_testthat():
    ours = int_ids(al.sudden_gains(long_bdi(range(1, 19)), "bdi", cutoff=7))
    ours = ours.sort_values(["client_id", "pre_session"])
    exp = pd.DataFrame(
        SUDDENGAINS_BYSG, columns=["id", "n", "mag", "tx", "prop", "rev_value", "rev"]
    )
    assert_array_equal(ours["client_id"], exp["id"])
    assert_array_equal(ours["pre_session"], exp["n"])
    assert_allclose(ours["magnitude"], exp["mag"], rtol=1e-12)
    assert_allclose(ours["tx_change"], exp["tx"], rtol=1e-12)
    assert_allclose(ours["change_proportion"], exp["prop"], rtol=1e-12)
    assert_allclose(ours["reversal_value"], exp["rev_value"], rtol=1e-12)
    assert_array_equal(ours["reversal"], exp["rev"] == 1)


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        # test-create_byperson.R: multiple_sg_select = "first" and "largest"
        ("first", {1: 3, 3: 8, 4: 3, 5: 3, 9: 3, 10: 2, 12: 3, 13: 3, 14: 2, 18: 3}),
        ("largest", {1: 7, 3: 8, 4: 3, 5: 8, 9: 3, 10: 2, 12: 3, 13: 3, 14: 2, 18: 3}),
        # by hand from the list above
        ("last", {1: 7, 3: 8, 4: 3, 5: 8, 9: 3, 10: 4, 12: 3, 13: 8, 14: 2, 18: 3}),
        ("smallest", {1: 3, 3: 8, 4: 3, 5: 3, 9: 3, 10: 4, 12: 3, 13: 8, 14: 2, 18: 3}),
    ],
)
def test_by_client_selection(select, expected):
    out = al.sudden_gains_by_client(long_bdi(range(1, 19)), "bdi", cutoff=7, select=select)
    out = int_ids(out)
    assert out["client_id"].tolist() == list(range(1, 19))
    with_gain = out[out["has_event"]]
    assert dict(zip(with_gain["client_id"], with_gain["pre_session"], strict=True)) == expected
    freq = {1: 2, 3: 1, 4: 1, 5: 2, 9: 1, 10: 2, 12: 1, 13: 2, 14: 1, 18: 1}
    assert dict(zip(out["client_id"], out["n_events"], strict=True)) == {
        i: freq.get(i, 0) for i in range(1, 19)
    }
    assert out.loc[~out["has_event"], "magnitude"].isna().all()


# ---------------------------------------------------------------------------------------------
# suddengains' own small test cases (test-identify_sg.R / test-identify_sl.R)
# ---------------------------------------------------------------------------------------------

NA = np.nan


def wide_to_long(rows):
    recs = [
        (cid, pos + 1, v) for cid, vals in rows for pos, v in enumerate(vals) if not np.isnan(v)
    ]
    return pd.DataFrame(recs, columns=["client_id", "session", "y"])


def interval_flags(df, **kw):
    """{client: [event at 2->3, 3->4, 4->5]} with None for not analysable."""
    t = int_ids(al.sudden_gain_intervals(df, "y", cutoff=7, sessions=range(1, 7), **kw))
    return {
        c: [None if pd.isna(v) else int(v) for v in g["event"]] for c, g in t.groupby("client_id")
    }


def test_identify_sg_testthat_df1():
    df1 = [
        (1, [28, 19, 23, 12, 13, NA]),
        (2, [28, 19, 23, 11, 12, NA]),
        (3, [28, 19, NA, 12, 13, NA]),
        (4, [28, 19, 23, 12, 13, NA]),
        (5, [28, 19, 23, 12, 14, NA]),
        (6, [28, 19, NA, 12, 13, NA]),
        (7, [28, 19, 23, 11, 12, NA]),
        (8, [28, 25, 28, 11, 12, NA]),
        (9, [28, 26, 28, 11, 12, NA]),
        (10, [NA, 26, 28, NA, 12, 11]),
    ]
    expected = {
        1: [0, 0, None],
        2: [0, 1, None],
        3: [None, None, None],
        4: [0, 0, None],
        5: [0, 0, None],
        6: [None, None, None],
        7: [0, 1, None],
        8: [0, 1, None],
        9: [0, 1, None],
        10: [None, None, None],
    }
    assert interval_flags(wide_to_long(df1)) == expected


def test_identify_sg_and_sl_testthat_df2():
    gains = [
        (1, [35, 37, 23, 23, 24, 21]),
        (2, [35, 37, 34, 24, 24, 21]),
        (3, [35, 37, 34, 34, 24, 21]),
        (4, [35, 37, 34, 37, 37, 37]),
    ]
    assert interval_flags(wide_to_long(gains)) == {
        1: [1, 0, 0],
        2: [0, 1, 0],
        3: [0, 0, 1],
        4: [0, 0, 0],
    }
    losses = [
        (1, [10, 11, 12, 30, 28, 33]),
        (2, [10, 11, 12, 10, 28, 33]),
        (3, [10, 11, 30, 30, 28, 33]),
        (4, [35, 37, 34, 23, 24, 21]),
    ]
    assert interval_flags(wide_to_long(losses), kind="loss") == {
        1: [0, 1, 0],
        2: [0, 0, 1],
        3: [1, 0, 0],
        4: [0, 0, 0],
    }


def test_count_intervals_testthat_case():
    # test-count_intervals.R: 2 clients; its sg_var_list repeats bdi_s7, which dplyr::select
    # drops, so identify_sg sees 8 columns: 6 analysable and 4 not-analysable intervals.
    df = wide_to_long(
        [(1, [33, 35, 37, 34, 10, 10, 35, 35]), (2, [26, 26, NA, 26, NA, 27, 31, 30])]
    )
    counts = al.count_intervals(df, "y", sessions=range(1, 9))
    assert counts["n_analysable"].tolist() == [5, 1]
    assert counts["n_not_analysable"].sum() == 4
    assert counts["n_intervals"].tolist() == [7, 7]


# ---------------------------------------------------------------------------------------------
# Hand-computed boundary cases
# ---------------------------------------------------------------------------------------------


def test_crit1_inclusive_boundary():
    # 20 -> 13: d = 7 >= 7 (inclusive); 7 >= .25 * 20 = 5; windows 20,20,20 / 13,13,13 have
    # s_p = 0 and 20 - 13 = 7 > 2.776 * 0.
    df = series([20, 20, 20, 13, 13, 13])
    assert gains_at(df, cutoff=7) == [3]
    assert gains_at(df, cutoff=7.000001) == []


def test_crit2_inclusive_boundary():
    # 28 -> 21: d = 7 = .25 * 28 (inclusive) -> gain; 32 -> 25: d = 7 < .25 * 32 = 8 -> none
    assert gains_at(series([28, 28, 28, 21, 21, 21])) == [3]
    assert gains_at(series([32, 32, 32, 25, 25, 25])) == []
    assert gains_at(series([32, 32, 32, 25, 25, 25]), pct=None) == [3]  # criterion 2 off


def test_crit3_strict_boundary():
    # windows 11,10,9 (mean 10, s 1) and 5,4,3 (mean 4, s 1): s_p = sqrt((2 + 2) / 4) = 1,
    # mean difference 6. With a fixed critical value of 6: 6 > 6 is false (strict).
    df = series([11, 10, 9, 5, 4, 3])
    kw = dict(cutoff=4, adjust_crit3=False)
    assert gains_at(df, critical_value=6, **kw) == []
    assert gains_at(df, critical_value=5.999, **kw) == [3]
    assert gains_at(df, crit3=False, cutoff=4) == [3]
    # adjusted: t(.975, 4) = 2.776 * 1 < 6 -> gain
    assert gains_at(df, cutoff=4) == [3]


@pytest.mark.parametrize(
    ("values", "t_expected"),
    [
        # Lutz et al. (2013) / suddengains docs: 2.776 (3+3), 3.182 (2+3 or 3+2), 4.303 (2+2)
        ([30, 30, 30, 20, 20, 20, 20], 2.776),
        ([30, NA, 30, 20, 20, 20, 20], 3.182),
        ([30, 30, 30, 20, NA, 20, 20], 3.182),
        ([30, NA, 30, 20, NA, 20, 20], 4.303),
    ],
)
def test_adjusted_critical_values(values, t_expected):
    t = al.sudden_gain_intervals(series(values), "y", cutoff=7)
    row = t[t["pre_session"] == 3].iloc[0]
    assert row["t_crit"] == pytest.approx(t_expected, abs=5e-4)
    assert bool(row["event"]) is True


def test_product_semantics_missing_criterion_makes_interval_not_analysable():
    # 29 -> 28 fails criterion 1, but the pre window (NA, NA, 29) has one value, so criterion 3
    # is NA and the interval is not analysable (NA * FALSE = NA in R).
    df = series([NA, NA, 29, 28, 27, 26, 25])
    t = al.sudden_gain_intervals(df, "y", cutoff=7, sessions=range(1, 8))
    row = t[t["pre_session"] == 3].iloc[0]
    assert row["crit1"] == False  # noqa: E712
    assert pd.isna(row["crit3"]) and pd.isna(row["event"])
    # with criterion 3 off the same interval is analysable (and not a gain)
    t2 = al.sudden_gain_intervals(df, "y", cutoff=7, crit3=False, sessions=range(1, 8))
    assert t2.loc[t2["pre_session"] == 3, "event"].iloc[0] == False  # noqa: E712


def test_missing_pregain_or_postgain_value_is_not_analysable():
    t = al.sudden_gain_intervals(series([30, 30, 30, NA, 20, 20, 20]), "y", cutoff=7)
    assert t.set_index("pre_session")["event"].isna().loc[[3, 4]].all()


def test_first_and_last_interval_never_tested():
    # big drop at the last interval (5 -> 6 on a 6-session grid): never tested
    assert gains_at(series([30, 30, 30, 30, 30, 10])) == []
    # the same drop with one more session after it is tested (post window 2 values, t(3))
    assert gains_at(series([30, 30, 30, 30, 30, 10, 10])) == [5]
    # the first interval (1 -> 2) is not tested, even without criterion 3
    assert gains_at(series([30, 10, 10, 10, 10, 10]), crit3=False) == []


def test_absent_session_is_a_missing_value():
    values = [30, 31, NA, 29, 18, 17, 16]
    with_nan_row = pd.DataFrame({"client_id": "a", "session": range(1, 8), "y": values})
    dropped = series(values)
    assert 3 not in dropped["session"].tolist() and len(with_nan_row) == 7

    def events(df):
        t = al.sudden_gain_intervals(df, "y", cutoff=7)
        return t["event"].astype("Float64").to_numpy(float, na_value=np.nan)

    assert_array_equal(events(with_nan_row), events(dropped))
    # 29 -> 18 at 4 -> 5: pre window (31, NA, 29) has 2 values: t(.975, 3) = 3.182;
    # s_p = sqrt((2 + 2) / 3) = 1.1547, 30 - 17 = 13 > 3.674 -> gain
    assert gains_at(dropped) == [4]


def test_explicit_session_grid_extends_missing_edges():
    # sessions=1..8 adds two absent sessions after the data: the drop at 5 -> 6 is no longer the
    # last interval, and its post window (10, NA, NA) has one value -> not analysable.
    df = series([30, 30, 30, 30, 30, 10])
    assert gains_at(df, sessions=range(1, 9)) == []
    t = al.sudden_gain_intervals(df, "y", cutoff=7, sessions=range(1, 9))
    assert pd.isna(t.set_index("pre_session").loc[5, "event"])


def test_higher_is_better_gain_is_an_increase():
    df = series([10, 10, 10, 20, 20, 20])
    assert gains_at(df, cutoff=5, higher_is_better=True) == [3]
    assert gains_at(df, cutoff=5) == []
    assert al.sudden_losses(df, "y", cutoff=5)["pre_session"].tolist() == [3]


def test_loss_uses_pct_in_the_loss_direction():
    # 40 -> 48: +8 >= 7 but 8 < .25 * 40 = 10. suddengains' identify_sl criterion 2
    # (40 - 48 = -8 <= 10) would accept it; we do not.
    df = series([40, 40, 40, 48, 48, 48])
    assert al.sudden_losses(df, "y", cutoff=7)["pre_session"].tolist() == []
    assert al.sudden_losses(df, "y", cutoff=7, pct=0.2)["pre_session"].tolist() == [3]


def test_reversal_counts_from_the_session_after_postgain():
    # 30,30,30 -> 20,26,20,20: gain at 3 -> 4 (post window mean 22, s_p = sqrt(24/4) = 2.449,
    # 8 > 2.776 * 2.449 = 6.80). Reversal value 20 + 10/2 = 25; session 5 (N+2) scores 26 > 25.
    # suddengains' create_bysg starts at N+3 and would report no reversal.
    g = al.sudden_gains(series([30, 30, 30, 20, 26, 20, 20]), "y", cutoff=7)
    assert g["pre_session"].tolist() == [3]
    assert g["reversal_value"].iloc[0] == 25
    assert bool(g["reversal"].iloc[0]) is True
    # exactly at the reversal value is not a reversal (strict, as suddengains)
    g2 = al.sudden_gains(series([30, 30, 30, 20, 25, 20, 20]), "y", cutoff=7)
    assert bool(g2["reversal"].iloc[0]) is False


def test_zero_treatment_change_gives_nan_proportion():
    g = al.sudden_gains(series([20, 20, 20, 10, 10, 10, 20]), "y", cutoff=7)
    assert g["tx_change"].iloc[0] == 0
    assert np.isnan(g["change_proportion"].iloc[0])  # suddengains: +Inf


def test_tx_start_and_end_sessions():
    g = al.sudden_gains(series([20, 20, 20, 10, 10, 10, 20]), "y", cutoff=7, tx_end=6)
    assert g["tx_change"].iloc[0] == 10 and g["change_proportion"].iloc[0] == 1.0
    with pytest.raises(ValueError, match="not on the session grid"):
        al.sudden_gains(series([20, 20, 20, 10, 10, 10, 20]), "y", cutoff=7, tx_end=99)


def test_several_clients_in_one_call_match_single_calls():
    a = series([30, 31, 29, 18, 17, 16, 8, 7], client="a")
    b = series([20, 20, 20, 13, 13, 13, 13, 13], client="b")
    both = al.sudden_gains(pd.concat([a, b]), "y", cutoff=7)
    assert both["client_id"].tolist() == ["a", "a", "b"]
    assert both["pre_session"].tolist() == [3, 6, 3]
    assert both["n_events"].tolist() == [2, 2, 1]


def test_bad_input_messages():
    df = series([30, 31, 29, 18, 17, 16])
    with pytest.raises(MissingColumnsError, match=r"not found: bdi \(score\)"):
        al.sudden_gains(df, "bdi", cutoff=7)
    with pytest.raises(ValueError, match="positive number"):
        al.sudden_gains(df, "y", cutoff=-7)
    with pytest.raises(ValueError, match="switched off"):
        al.sudden_gains(df, "y", cutoff=None, pct=None, crit3=False)
    dup = pd.concat([df, df.iloc[[2]]])
    with pytest.raises(ChangeInputError, match="more than one row for session 3"):
        al.sudden_gains(dup, "y", cutoff=7)
    bad = df.astype({"y": object})
    bad.loc[4, "y"] = "n/a"
    with pytest.raises(ChangeInputError) as err:
        al.sudden_gains(bad, "y", cutoff=7)
    assert (err.value.row, err.value.column, err.value.value) == (4, "y", "n/a")
    frac = df.astype({"session": float})
    frac.loc[1, "session"] = 2.5
    with pytest.raises(ChangeInputError, match="whole number"):
        al.sudden_gains(frac, "y", cutoff=7)


def test_no_clients_with_enough_data_gives_empty_table():
    g = al.sudden_gains(series([30, 20]), "y", cutoff=7)
    assert g.empty and "magnitude" in g.columns


# ---------------------------------------------------------------------------------------------
# Reliable change (Jacobson & Truax 1991)
# ---------------------------------------------------------------------------------------------


def test_jacobson_truax_worked_example():
    # SD 7.5, r .80: SE = 7.5 * sqrt(.2) = 3.354; S_diff = sqrt(2) * 3.354 = 4.743;
    # threshold = 1.96 * 4.743 = 9.30 points (J&T 1991 as cited by CECPfuns).
    df = pd.DataFrame({"pre": [30.0, 30.0, 30.0, 30.0], "post": [20.0, 21.0, 39.0, 40.0]})
    out = al.reliable_change(
        df, pre="pre", post="post", sd=7.5, reliability=0.8, higher_is_better=False
    )
    assert out["rc_threshold"].iloc[0] == pytest.approx(9.30, abs=0.005)
    assert out["rci"].iloc[0] == pytest.approx(-10 / 4.743416, rel=1e-6)
    assert out["category"].tolist() == ["improved", "unchanged", "unchanged", "deteriorated"]
    assert out.columns[:2].tolist() == ["pre", "post"]  # input columns kept


def test_reliable_change_strict_by_default_inclusive_on_request():
    thr = 1.959963984540054 * 7.5 * np.sqrt(2) * np.sqrt(0.2)
    df = pd.DataFrame({"pre": [30.0], "post": [30.0 - thr]})
    kw = dict(pre="pre", post="post", sd=7.5, reliability=0.8, higher_is_better=False)
    assert al.reliable_change(df, **kw)["rci"].iloc[0] == pytest.approx(-1.959964, abs=1e-6)
    # exactly at the threshold (up to rounding in the subtraction) is not "improved" when strict
    df2 = pd.DataFrame({"pre": [0.0], "post": [-9.0]})
    assert al.reliable_change(df2, **kw)["category"].iloc[0] == "unchanged"
    # 90 % confidence: z = 1.644854 -> 7.80 points
    out = al.reliable_change(df2, confidence=0.90, **kw)
    assert out["rc_threshold"].iloc[0] == pytest.approx(1.644854 * 4.743416, rel=1e-6)
    assert out["category"].iloc[0] == "improved"


def test_reliable_change_direction_and_missing():
    df = pd.DataFrame({"pre": [3.0, 3.0, np.nan], "post": [5.0, 1.0, 4.0]})
    out = al.reliable_change(
        df, pre="pre", post="post", sd=1, reliability=0.8, higher_is_better=True
    )
    # threshold 1.96 * sqrt(2) * sqrt(.2) = 1.2396
    assert out["category"].tolist()[:2] == ["improved", "deteriorated"]
    assert pd.isna(out["category"].iloc[2]) and np.isnan(out["rci"].iloc[2])
    with pytest.raises(ValueError, match="higher_is_better"):
        al.reliable_change(df, pre="pre", post="post", sd=1, reliability=0.8)


def test_reliable_change_default_sd_is_pre_sd_of_complete_pairs():
    df = pd.DataFrame({"pre": [10.0, 20.0, 30.0, 99.0], "post": [5.0, 15.0, 40.0, np.nan]})
    out = al.reliable_change(df, pre="pre", post="post", reliability=0.9, higher_is_better=False)
    sd = 10.0  # SD of 10, 20, 30
    assert out["rc_threshold"].iloc[0] == pytest.approx(1.959964 * sd * np.sqrt(2 * 0.1), rel=1e-6)


def test_reliable_change_from_long_first_and_last_observed():
    df = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b", "c", "c"],
            "session": [0, 3, 7, 2, 1, 4],
            "y": [30.0, np.nan, 15.0, 20.0, 10.0, 25.0],
        }
    )
    out = al.reliable_change_from_long(df, "y", sd=7.5, reliability=0.8, higher_is_better=False)
    out = out.set_index("client_id")
    assert out.loc["a", ["pre_session", "pre", "post_session", "post"]].tolist() == [0, 30, 7, 15]
    assert out.loc["a", "category"] == "improved"
    assert np.isnan(out.loc["b", "post"]) and pd.isna(out.loc["b", "category"])
    assert out.loc["c", "category"] == "deteriorated"
    fixed = al.reliable_change_from_long(
        df, "y", first=0, last=7, sd=7.5, reliability=0.8, higher_is_better=False
    ).set_index("client_id")
    assert fixed.loc["a", "change"] == -15 and np.isnan(fixed.loc["c", "change"])


# ---------------------------------------------------------------------------------------------
# Clinical significance
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("higher_is_better", "criterion", "expected"),
    [
        # clinicalsignificance tests/testthat/test-calc_cutoff.R: M_clin 40, M_func 60, SD 7.5
        (True, "a", 55.0),
        (False, "a", 25.0),
        (True, "b", 45.0),
        (False, "b", 75.0),
        (True, "c", 50.0),
        (False, "c", 50.0),
    ],
)
def test_cutoffs_match_clinicalsignificance(higher_is_better, criterion, expected):
    df = pd.DataFrame({"pre": [40.0, 41.0], "post": [60.0, 61.0]})
    out = al.clinical_significance(
        df, pre="pre", post="post", cutoff=criterion, clinical_mean=40, clinical_sd=7.5,
        functional_mean=60, functional_sd=7.5, sd=7.5, reliability=0.8,
        higher_is_better=higher_is_better,
    )  # fmt: skip
    assert out["cutoff"].iloc[0] == pytest.approx(expected, abs=1e-12)


def test_cutoff_b_sd_choice_and_multiplier():
    # lower is better; clinical 60 (SD 10), functional 40 (SD 5)
    kw = dict(
        pre="pre", post="post", clinical_mean=60, clinical_sd=10, functional_mean=40,
        functional_sd=5, sd=10, reliability=0.8, higher_is_better=False,
    )  # fmt: skip
    df = pd.DataFrame({"pre": [60.0, 62.0], "post": [40.0, 45.0]})

    def cut(**extra):
        return al.clinical_significance(df, **kw, **extra)["cutoff"].iloc[0]

    assert cut(cutoff="a") == pytest.approx(40.0)  # 60 - 2 * 10
    assert cut(cutoff="b") == pytest.approx(50.0)  # 40 + 2 * 5 (J&T: functional SD)
    assert cut(cutoff="b", b_sd="clinical") == pytest.approx(60.0)  # clinicalsignificance
    assert cut(cutoff="c") == pytest.approx(700 / 15)  # (10 * 40 + 5 * 60) / 15
    assert cut(cutoff="a", sd_multiplier=1.96) == pytest.approx(60 - 19.6)  # JTRCI
    assert cut() == pytest.approx(700 / 15)  # default c when functional norms are given


def test_clinical_significance_categories_by_hand():
    # lower is better, cutoff 50, threshold 9.30 points
    df = pd.DataFrame(
        {
            "pre": [60.0, 60.0, 60.0, 45.0, 45.0, 50.0, 60.0, np.nan],
            "post": [40.0, 55.0, 58.0, 60.0, 30.0, 40.0, 50.0, 40.0],
        }
    )
    out = al.clinical_significance(
        df, pre="pre", post="post", cutoff=50, sd=7.5, reliability=0.8, higher_is_better=False
    )
    assert out["category"].tolist()[:7] == [
        "recovered",  # -20, crosses 50
        "unchanged",  # -5
        "unchanged",
        "deteriorated",  # +15
        "improved",  # -15 but started functional (45 < 50): not "recovered"
        "recovered",  # 50 is clinical (at the cutoff), 40 functional, -10 reliable
        "improved",  # -10 reliable, but 50 is not functional
    ]
    assert pd.isna(out["category"].iloc[7])
    # the reliable-change category is kept under its own name
    assert out["reliable_change"].tolist()[:5] == [
        "improved",
        "unchanged",
        "unchanged",
        "deteriorated",
        "improved",
    ]
    assert out["clinical_pre"].tolist()[:6] == [True, True, True, False, False, True]
    assert out["functional_post"].tolist()[6] == False  # noqa: E712


# ---------------------------------------------------------------------------------------------
# Instrument norms (alliance_lib.registry; numbers from instruments.md sections 4, 5 and 8)
# ---------------------------------------------------------------------------------------------


def test_oq45_reliable_change_is_14_points_or_more():
    # OQ-45.2 scoring sheet: "changes by 14 points or more"; higher is worse
    df = pd.DataFrame({"pre": [80.0, 80.0, 80.0, 80.0], "post": [66.0, 67.0, 94.0, 93.0]})
    out = al.reliable_change(df, pre="pre", post="post", instrument="oq-45.2")
    assert out["rc_threshold"].iloc[0] == 14
    assert out["category"].tolist() == ["improved", "unchanged", "deteriorated", "unchanged"]
    # RCI on the z scale: S_diff = 14 / 1.959964
    assert out["rci"].iloc[0] == pytest.approx(-14 / (14 / 1.959963984540054), rel=1e-12)
    strict = al.reliable_change(df, pre="pre", post="post", instrument="oq-45.2", inclusive=False)
    assert strict["category"].iloc[0] == "unchanged"


def test_core10_points_are_at_90_percent_and_ors_is_higher_better():
    df = pd.DataFrame({"pre": [20.0], "post": [14.0]})
    out = al.reliable_change(df, pre="pre", post="post", instrument="core-10")
    assert out["rc_threshold"].iloc[0] == 6
    assert out["rci"].iloc[0] == pytest.approx(-6 / (6 / 1.6448536269514722), rel=1e-12)
    assert out["category"].iloc[0] == "improved"
    ors = al.reliable_change(df, pre="pre", post="post", instrument="ors")
    assert ors["category"].iloc[0] == "deteriorated"  # ORS: higher is better, 5 points


def test_instrument_direction_with_sample_sd():
    # sd and reliability override the published points; the direction still comes from the
    # instrument (OQ-45.2: higher is worse)
    df = pd.DataFrame({"pre": [80.0], "post": [70.0]})
    out = al.reliable_change(
        df, pre="pre", post="post", instrument="oq-45.2", sd=7.5, reliability=0.8
    )
    assert out["rc_threshold"].iloc[0] == pytest.approx(9.2969, abs=1e-4)  # 1.959964 * 4.743416
    assert out["category"].iloc[0] == "improved"


def test_clinical_significance_with_oq45_cutoff():
    # OQ-45.2 total cutoff: 64 and above is clinical
    df = pd.DataFrame({"pre": [80.0, 80.0, 64.0, 63.0], "post": [63.0, 64.0, 50.0, 80.0]})
    out = al.clinical_significance(df, pre="pre", post="post", instrument="oq-45.2")
    assert out["cutoff"].iloc[0] == 64
    assert out["clinical_pre"].tolist() == [True, True, True, False]
    assert out["functional_post"].tolist() == [True, False, True, False]
    assert out["category"].tolist() == ["recovered", "improved", "recovered", "deteriorated"]


def test_clinical_significance_uses_instrument_tie_rule():
    # SRS: "below 36" is the concern range, so 36 itself is not clinical
    df = pd.DataFrame({"pre": [30.0, 30.0], "post": [36.0, 35.9]})
    out = al.clinical_significance(
        df, pre="pre", post="post", instrument="srs", sd=4, reliability=0.8
    )
    assert out["cutoff"].iloc[0] == 36
    assert out["functional_post"].tolist() == [True, False]
    # threshold 1.96 * 4 * sqrt(.4) = 4.96: +6 improved and crosses; +5.9 improved only
    assert out["category"].tolist() == ["recovered", "improved"]
    ties_clinical = al.clinical_significance(
        df, pre="pre", post="post", instrument="srs", sd=4, reliability=0.8, clinical_if="<="
    )
    assert ties_clinical["functional_post"].tolist() == [False, False]


def test_unscored_rows_of_another_rater_do_not_count_as_duplicates():
    client_rows = series([30, 31, 29, 18, 17, 16])
    therapist_rows = client_rows.assign(y=np.nan)  # same sessions, no score
    both = pd.concat([client_rows, therapist_rows], ignore_index=True)
    assert gains_at(both) == gains_at(client_rows) == [3]
    with pytest.raises(ChangeInputError, match="more than one row"):
        al.sudden_gains(pd.concat([client_rows, client_rows]), "y", cutoff=7)


def test_empty_and_degenerate_input():
    empty = pd.DataFrame({"client_id": [], "session": [], "y": []})
    assert al.sudden_gains(empty, "y", cutoff=7).empty
    assert al.count_intervals(empty, "y").empty
    assert al.sudden_gains(series([30, 20, 10]), "y", cutoff=7, sessions=[]).empty
    all_missing = pd.DataFrame({"client_id": "a", "session": [1, 2, 3, 4, 5], "y": np.nan})
    out = al.sudden_gains_by_client(all_missing, "y", cutoff=7)
    assert out["has_event"].tolist() == [False] and out["n_events"].tolist() == [0]


# ---------------------------------------------------------------------------------------------
# The six reliable-change methods against clinicalsignificance 3.0.0 on its own data (claus_2020)
# ---------------------------------------------------------------------------------------------
# Counts: tests/reference/fixtures/clinicalsignificance_counts.json, transcribed from the
# package's test snapshots (_snaps/cs_distribution.md, _snaps/cs_combined.md) and vignettes.
# The data (GPL >= 3) are not copied into this MIT repository: they are read from the project's
# shared reference data (../shared/reference-data/external/clinicalsignificance/, found by
# walking up from this file, or the folder named by $ALLIANCE_REFERENCE_DATA).

CS_COUNTS = FIXTURES / "clinicalsignificance_counts.json"


def _reference_data_dir() -> Path | None:
    import os

    env = os.environ.get("ALLIANCE_REFERENCE_DATA")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "reference-data" for p in HERE.resolve().parents]
    for c in candidates:
        if (c / "external" / "clinicalsignificance" / "claus_2020.csv").exists():
            return c
    return None


@pytest.fixture(scope="module")
def claus():
    ref = _reference_data_dir()
    if ref is None:
        pytest.skip("clinicalsignificance's claus_2020 not found (set ALLIANCE_REFERENCE_DATA)")
    long = pd.read_csv(ref / "external" / "clinicalsignificance" / "claus_2020.csv")
    assert long.shape == (172, 9)

    def wide(outcome):
        w = long.pivot(index="id", columns="time", values=outcome)[[1, 4]]
        w.columns = ["pre", "post"]
        w = w.reset_index()
        return w.merge(long[["id", "treatment"]].drop_duplicates(), on="id")

    return wide


@pytest.fixture(scope="module")
def cs_counts():
    import json

    return json.loads(CS_COUNTS.read_text())


def _counts(cat: pd.Series) -> dict:
    return {k: int(v) for k, v in cat.value_counts(sort=False).items()}


@pytest.mark.parametrize("method", ["JT", "GLN", "HLL", "EN", "NK", "HA"])
def test_rci_methods_match_clinicalsignificance_counts(method, claus, cs_counts):
    # R: cs_distribution(claus_2020, id, time, hamd, pre = 1, post = 4, reliability = 0.8,
    #    rci_method = method) -- tolerance: every count exact
    expected = dict(cs_counts["distribution"]["counts"][method])
    r_post = expected.pop("reliability_post", None)
    out = al.reliable_change(
        claus("hamd"), pre="pre", post="post", reliability=0.8, higher_is_better=False,
        method=method, reliability_post=r_post,
    )  # fmt: skip
    assert out["category"].notna().sum() == 40  # 43 patients, 40 complete pairs
    assert _counts(out["category"]) == expected
    assert out.attrs["reliable_change"]["method"] == method


def test_rci_intermediate_values_on_claus_hamd(claus):
    # methods.md section 2.2 (recomputed from clinicalsignificance's source): M_pre 24.85,
    # SD_pre 3.340121, SD_post 7.711089, r12 .163119, SEM 1.493748, S_diff 2.112478,
    # SE_pred 2.004073, r_dd .928272
    w = claus("hamd")
    kw = dict(pre="pre", post="post", reliability=0.8, higher_is_better=False)
    jt = al.reliable_change(w, **kw).attrs["reliable_change"]
    assert jt["m_pre"] == pytest.approx(24.85) and jt["sd_pre"] == pytest.approx(3.340121, 1e-6)
    assert jt["se_measurement"] == pytest.approx(1.493748, rel=1e-6)
    assert al.reliable_change(w, **kw)["rc_threshold"].iloc[0] == pytest.approx(
        1.959964 * 2.112478, rel=1e-6
    )
    gln = al.reliable_change(w, method="GLN", **kw).attrs["reliable_change"]
    assert gln["se_prediction"] == pytest.approx(2.004073, rel=1e-6)
    ha = al.reliable_change(w, method="HA", **kw).attrs["reliable_change"]
    assert ha["r_dd"] == pytest.approx(0.928272, rel=1e-5)
    assert ha["r_pre_post"] == pytest.approx(0.163119, rel=1e-5)
    assert ha["critical_value"] == pytest.approx(1.644854, rel=1e-6)  # one-sided


@pytest.mark.parametrize("method", ["JT", "GLN", "HLL", "EN", "NK", "HA"])
def test_clinical_significance_methods_match_clinicalsignificance_counts(method, claus, cs_counts):
    # R: cs_combined(claus_2020, id, time, hamd, pre = 1, post = 4, reliability = 0.8,
    #    m_functional = 8, sd_functional = 8, cutoff_type = "c", rci_method = method)
    # -- tolerance: every count exact; HA group level to the 2 decimals printed (in percent)
    out = al.clinical_significance(
        claus("hamd"), pre="pre", post="post", reliability=0.8, higher_is_better=False,
        cutoff="c", functional_mean=8, functional_sd=8, method=method,
        reliability_post=0.5 if method == "NK" else None, harmed=True,
    )  # fmt: skip
    assert _counts(out["category"]) == cs_counts["combined"]["counts"][method]
    if method == "HA":
        level = out.attrs["group_level"]
        pct = cs_counts["combined"]["ha_group_level_percent"]
        assert 100 * level["changed"] == pytest.approx(pct["changed"], abs=0.005)
        assert 100 * level["functional"] == pytest.approx(pct["functional"], abs=0.005)
        assert "cs_indiv" in out.columns
    # without harmed=True the harmed clients are counted as deteriorated (Jacobson & Truax)
    four = al.clinical_significance(
        claus("hamd"), pre="pre", post="post", reliability=0.8, higher_is_better=False,
        cutoff="c", functional_mean=8, functional_sd=8, method=method,
        reliability_post=0.5 if method == "NK" else None,
    )  # fmt: skip
    exp = dict(cs_counts["combined"]["counts"][method])
    exp["deteriorated"] += exp.pop("harmed")
    assert _counts(four["category"]) == exp


def test_vignette_counts_who_higher_and_by_group(claus, cs_counts):
    v = cs_counts["vignette_distribution"]
    who = al.reliable_change(
        claus("who"), pre="pre", post="post", reliability=0.85, higher_is_better=True
    )
    assert _counts(who["category"]) == v["who_higher"]["counts"]
    # grouped analysis: the RCI from the whole sample, counts by treatment arm
    hamd = al.reliable_change(
        claus("hamd"), pre="pre", post="post", reliability=0.8, higher_is_better=False
    )
    for arm, exp in v["hamd_by_treatment"]["counts"].items():
        assert _counts(hamd.loc[hamd["treatment"] == arm, "category"]) == exp


def test_vignette_bdi_jacobson_truax_cutoff_c(claus, cs_counts):
    v = cs_counts["vignette_bdi_jt"]
    kw = dict(
        pre="pre", post="post", reliability=0.801, higher_is_better=False, cutoff="c",
        functional_mean=7.69, functional_sd=7.52, harmed=True,
    )  # fmt: skip
    out = al.clinical_significance(claus("bdi"), **kw)
    assert out["cutoff"].iloc[0] == pytest.approx(v["cutoff"], abs=0.005)
    assert _counts(out["category"]) == v["counts"]
    level = al.clinical_significance(claus("bdi"), method="HA", **kw).attrs["group_level"]
    assert level["changed"] == pytest.approx(v["ha_group_level"]["changed"], abs=5e-4)
    assert level["functional"] == pytest.approx(v["ha_group_level"]["functional"], abs=5e-4)


def test_ha_true_score_cutoffs_bauer_example():
    # clinicalsignificance test-calc_cutoff.R, Bauer et al. (2004): M 68.35 / 50, SD 22.33 / 22,
    # r .93 for both. Here r_t is derived from the SEM of the clinical SD, so the functional
    # reliability is 1 - (1 - .93) * 22.33^2 / 22^2; a and b only use the clinical one (.93).
    m1, s1, m0, s0, r = 68.35, 22.33, 50.0, 22.0, 0.93
    df = pd.DataFrame({"pre": [70.0, 60.0, 80.0], "post": [30.0, 55.0, 80.0]})
    kw = dict(
        pre="pre", post="post", reliability=r, clinical_mean=m1, clinical_sd=s1, sd=s1,
        functional_mean=m0, functional_sd=s0, method="HA", b_sd="clinical",
    )  # fmt: skip
    for hib, d in ((True, 1), (False, -1)):
        a = al.clinical_significance(df, cutoff="a", higher_is_better=hib, **kw)["cutoff"][0]
        b = al.clinical_significance(df, cutoff="b", higher_is_better=hib, **kw)["cutoff"][0]
        assert a == pytest.approx(m1 + d * 2 * s1 * np.sqrt(r))
        assert b == pytest.approx(m0 - d * 2 * s1 * np.sqrt(r))
    r0 = 1 - (1 - r) * s1**2 / s0**2
    c = al.clinical_significance(df, cutoff="c", higher_is_better=False, **kw)["cutoff"][0]
    t1, t0 = s1 * np.sqrt(r), s0 * np.sqrt(r0)
    assert c == pytest.approx((t1 * m0 + t0 * m1) / (t1 + t0))


def test_rci_method_errors():
    df = pd.DataFrame({"pre": [30.0, 25.0, 35.0], "post": [18.0, 24.0, 30.0]})
    kw = dict(pre="pre", post="post", higher_is_better=False)
    with pytest.raises(ValueError, match="method must be one of"):
        al.reliable_change(df, reliability=0.8, method="XX", **kw)
    with pytest.raises(ValueError, match="needs reliability"):
        al.reliable_change(df, method="GLN", instrument="oq-45.2", pre="pre", post="post")
    with pytest.raises(ValueError, match="NK"):
        al.reliable_change(df, reliability=0.8, reliability_post=0.7, method="EN", **kw)
    # NK with equal reliabilities equals NK without reliability_post
    a = al.reliable_change(df, reliability=0.8, method="NK", **kw)["rci"]
    b = al.reliable_change(df, reliability=0.8, reliability_post=0.8, method="NK", **kw)["rci"]
    assert_allclose(a, b)
    with pytest.raises(ValueError, match="post SD"):
        al.clinical_significance(
            pd.DataFrame({"pre": [30.0, 20.0, 40.0], "post": [20.0, 21.0, 20.5]}),
            reliability=0.8, method="HA", **kw,
        )  # fmt: skip
    # method names are case-insensitive
    assert (
        al.reliable_change(df, reliability=0.8, method="gln", **kw).attrs["reliable_change"][
            "method"
        ]
        == "GLN"
    )


def test_rci_methods_by_hand():
    # pre 10, 20, 30 (M 20, SD 10), post 5, 15, 40 (M 20, SD 17.32); r .8
    df = pd.DataFrame({"pre": [10.0, 20.0, 30.0], "post": [5.0, 15.0, 40.0]})
    kw = dict(pre="pre", post="post", reliability=0.8, higher_is_better=False)
    sem, se_pred = 10 * np.sqrt(0.2), 10 * np.sqrt(1 - 0.64)
    rci = {m: al.reliable_change(df, method=m, **kw)["rci"].to_numpy() for m in al.RCI_METHODS}
    x1, x2 = df["pre"].to_numpy(), df["post"].to_numpy()
    assert_allclose(rci["JT"], (x2 - x1) / (np.sqrt(2) * sem))
    assert_allclose(rci["GLN"], ((x2 - 20) - 0.8 * (x1 - 20)) / se_pred)
    assert_allclose(rci["HLL"], ((x2 - 20) - 0.8 * (x1 - 20)) / se_pred)  # M_post = M_pre
    assert_allclose(rci["EN"], (x2 - (0.8 * (x1 - 20) + 20)) / sem)
    assert_allclose(rci["NK"], (x2 - (0.8 * (x1 - 20) + 20)) / np.sqrt(64 * 0.2 + 100 * 0.2))


# ---------------------------------------------------------------------------------------------
# select_sudden_gain_cases: suddengains' select_cases
# ---------------------------------------------------------------------------------------------

# suddengains tests/testthat/test-select_cases.R (6 sessions; 1 = observed): expected sg_select
SELECT_CASES_TESTTHAT = [
    ("011110", True, False),
    ("011101", True, False),
    ("101110", True, False),
    ("101111", True, True),
    ("100111", False, False),
    ("100001", False, False),
    ("111111", True, True),
]


def test_select_cases_matches_suddengains_testthat():
    rows = [
        (i, s + 1, 10.0)
        for i, (pattern, _, _) in enumerate(SELECT_CASES_TESTTHAT, start=1)
        for s, ch in enumerate(pattern)
        if ch == "1"
    ]
    df = pd.DataFrame(rows, columns=["id", "session", "bdi"])
    pat = al.select_sudden_gain_cases(df, "bdi", client="id", sessions=range(1, 7))
    mins = al.select_sudden_gain_cases(
        df, "bdi", client="id", sessions=range(1, 7), method="min_sess", min_sessions=5
    )
    assert pat["selected"].tolist() == [p for _, p, _ in SELECT_CASES_TESTTHAT]
    assert mins["selected"].tolist() == [m for _, _, m in SELECT_CASES_TESTTHAT]
    assert pat["n_sessions"].tolist() == [p.count("1") for p, _, _ in SELECT_CASES_TESTTHAT]


def test_select_cases_sgdata_matches_r_reference():
    # R: tests/reference/select_cases_reference.R (suddengains' string logic in base R) on
    # sgdata bdi_s1 ... bdi_s12: pattern selects 39 of 43, min_sess 9 selects 35; exact.
    ref = pd.read_csv(FIXTURES / "sgdata_select_cases.csv")
    long = long_bdi()
    pat = al.select_sudden_gain_cases(long, "bdi", sessions=range(1, 13))
    mins = al.select_sudden_gain_cases(
        long, "bdi", sessions=range(1, 13), method="min_sess", min_sessions=9
    )
    assert_array_equal(pat["client_id"], ref["id"].astype(str))  # ids are text
    assert_array_equal(pat["n_sessions"], ref["n_sessions"])
    assert_array_equal(pat["selected"], ref["select_pattern"])
    assert_array_equal(mins["selected"], ref["select_min_sess_9"])
    assert (pat["selected"].sum(), mins["selected"].sum()) == (39, 35)


def test_select_cases_pattern_means_an_analysable_interval():
    # A client is selected by "pattern" exactly when some interval has all three criteria
    # computable (count_intervals: n_analysable > 0) on a grid with room on both sides.
    rng = np.random.default_rng(7)
    keep = rng.random((300, 10)) < 0.7
    rows = [(c, s, 20.0) for c, s in zip(*np.nonzero(keep), strict=True)]
    df = pd.DataFrame(rows, columns=["client_id", "session", "y"])
    grid = range(-1, 12)  # two empty sessions either side: every real interval is tested
    sel = al.select_sudden_gain_cases(df, "y", sessions=grid).set_index("client_id")
    n_ok = al.count_intervals(df, "y", sessions=grid).set_index("client_id")["n_analysable"]
    assert_array_equal(sel["selected"], n_ok.loc[sel.index] > 0)


def test_select_cases_errors_and_short_grid():
    df = series([10, 11, 12], name="bdi")
    assert not al.select_sudden_gain_cases(df, "bdi")["selected"].any()
    with pytest.raises(ValueError, match="min_sessions"):
        al.select_sudden_gain_cases(df, "bdi", method="min_sess")
    with pytest.raises(ValueError, match="pattern"):
        al.select_sudden_gain_cases(df, "bdi", method="all")


# ---------------------------------------------------------------------------------------------
# Ended vs ongoing clients
# ---------------------------------------------------------------------------------------------


def _dated(rows):
    return pd.DataFrame(rows, columns=["client_id", "session", "date"])


def test_treatment_status_date_rule_boundaries():
    # cut-off = latest date 2025-03-31; a: last 28 days before (ongoing, "within" is
    # inclusive); b: 29 days before (ended); c: on the cut-off day (ongoing)
    df = _dated(
        [
            ("a", 1, "2025-02-24"), ("a", 2, "2025-03-03"),
            ("b", 1, "2025-02-23"), ("b", 2, "2025-03-02"),
            ("c", 1, "2025-03-31"),
        ]
    )  # fmt: skip
    st = al.treatment_status(df, date="date", ongoing_within_days=28).set_index("client_id")
    assert st["days_since_last"].tolist() == [28.0, 29.0, 0.0]
    assert st["status"].tolist() == ["ongoing", "ended", "ongoing"]
    assert st.loc["b", "reason"] == "no session within 28 days of the cut-off"
    # an explicit cut-off a week later: a is now 35 days out
    st2 = al.treatment_status(df, date="date", cutoff_date="2025-04-07").set_index("client_id")
    assert st2["status"].tolist() == ["ended", "ended", "ongoing"]
    assert str(st2["status"].dtype) == "category"


def test_treatment_status_end_column_and_combination():
    df = pd.DataFrame(
        {
            "client_id": ["a", "a", "b", "b", "c", "d", "e"],
            "session": [1, 2, 1, 2, 1, 1, 1],
            "date": ["2025-03-24", "2025-03-31", "2025-01-06", "2025-01-13", "2025-03-30",
                     None, "2025-03-31"],
            "eot": [None, "yes", "", "no", "2025-03-30", None, "0"],
        }
    )  # fmt: skip
    only_end = al.treatment_status(df, end="eot").set_index("client_id")
    assert only_end["marked_ended"].tolist() == [True, False, True, False, False]
    assert only_end["status"].tolist() == ["ended", "ongoing", "ended", "ongoing", "ongoing"]
    both = al.treatment_status(df, date="date", end="eot").set_index("client_id")
    # a marked (though seen on the cut-off day); b not marked but last seen 77 days before;
    # d has neither a mark nor a date
    assert both["status"].tolist() == ["ended", "ended", "ended", "unknown", "ongoing"]
    assert both.loc["a", "reason"] == "marked as ended"
    assert both.loc["d", "reason"] == "no session date"
    bools = al.treatment_status(df.assign(eot=[0, 1, 0, 0, 1, 0, 0]), end="eot")
    assert bools["status"].tolist() == ["ended", "ongoing", "ended", "ongoing", "ongoing"]


def test_treatment_status_ended_early_and_errors():
    df = _dated([("a", 1, "2025-01-06"), ("a", 12, "2025-03-24"), ("b", 3, "2025-01-20")])
    st = al.treatment_status(df, date="date", last_planned_session=12).set_index("client_id")
    assert st["status"].tolist() == ["ongoing", "ended"]
    assert pd.isna(st.loc["a", "ended_early"]) and st.loc["b", "ended_early"]
    assert st.loc["a", "n_sessions"] == 2 and st.loc["a", "last_session"] == 12
    with pytest.raises(ValueError, match="date="):
        al.treatment_status(df)
    with pytest.raises(ChangeInputError, match="not a date"):
        al.treatment_status(df.assign(date=["2025-01-06", "soon", None]), date="date")
    with pytest.raises(ChangeInputError, match="end-of-treatment"):
        al.treatment_status(df.assign(eot=["yes", "maybe", None]), end="eot")
    with pytest.raises(ChangeInputError, match="client"):
        al.treatment_status(df, date="date", client="id")


def test_treatment_status_never_ends_a_client_still_in_weekly_treatment():
    # Recovery: 400 clients start on random days, attend weekly (each session missed with
    # probability .15, so gaps stay below 28 days with near certainty; the simulation keeps
    # only clients whose gaps are < 28 days) and stop after a random number of sessions. At
    # a data cut-off, a client truly in treatment (next session after the cut-off) must be
    # classified ongoing, and a client whose last session is more than 28 days before the
    # cut-off must be classified ended.
    rng = np.random.default_rng(4)
    rows, truth = [], {}
    cut = pd.Timestamp("2025-06-30")
    for c in range(400):
        start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=int(rng.integers(0, 170)))
        n = int(rng.integers(2, 21))
        weeks = np.nonzero(rng.random(3 * n) > 0.15)[0][:n]
        if np.diff(weeks, prepend=0).max() >= 4:
            continue
        dates = start + pd.to_timedelta(7 * weeks, unit="D")
        seen = dates[dates <= cut]
        if not len(seen):
            continue
        in_treatment = bool((dates > cut).any())
        truth[c] = (in_treatment, (cut - seen.max()).days)
        rows += [(c, s + 1, d.date().isoformat()) for s, d in enumerate(seen)]
    df = _dated(rows)
    st = al.treatment_status(df, date="date", cutoff_date=cut).set_index("client_id")
    in_tx = np.array([truth[c][0] for c in st.index])
    long_gone = np.array([(not truth[c][0]) and truth[c][1] > 28 for c in st.index])
    assert in_tx.sum() > 50 and long_gone.sum() > 50
    assert (st["status"][in_tx] == "ongoing").all()
    assert (st["status"][long_gone] == "ended").all()


def test_reliable_change_for_ended_clients_only():
    df = pd.DataFrame(
        {
            "client_id": ["a", "a", "b", "b", "c", "c"],
            "session": [1, 8, 1, 3, 1, 2],
            "y": [30.0, 15.0, 30.0, 14.0, 30.0, 31.0],
        }
    )
    status = pd.DataFrame({"client_id": ["a", "b", "c"], "status": ["ended", "ongoing", "ended"]})
    kw = dict(sd=7.5, reliability=0.8, higher_is_better=False)
    out = al.reliable_change_from_long(df, "y", status=status, **kw)
    assert out["client_id"].tolist() == ["a", "c"]  # b is still in treatment
    assert out.attrs["treatment_status"] == {"ended": 2, "ongoing": 1, "unknown": 0}
    # identical to filtering first with the documented pre-filter
    pre = al.keep_ended_clients(df, status)
    assert pre.attrs["treatment_status"] == {"ended": 2, "ongoing": 1, "unknown": 0}
    same = al.reliable_change_from_long(pre, "y", **kw)
    assert_allclose(out["rci"], same["rci"])
    # a client missing from the status table counts as unknown and is left out
    part = al.reliable_change_from_long(df, "y", status=status.iloc[:2], **kw)
    assert part["client_id"].tolist() == ["a"]
    assert part.attrs["treatment_status"]["unknown"] == 1


def test_study_defaults_have_treatment_status_settings():
    from alliance_lib.study import ANALYSIS_DEFAULTS

    assert ANALYSIS_DEFAULTS["ongoing_within_days"] == 28
    assert ANALYSIS_DEFAULTS["end_of_treatment"] is None


# ---------------------------------------------------------------------------------------------
# Scale (issue 16): the grid-sharing code against the implementation before it
# (tests/events_reference.py), on random data with ties, missing sessions, single-session
# clients and clients without an outcome score. Tolerance: exact (assert_frame_equal, no rtol).
# ---------------------------------------------------------------------------------------------

import events_reference as ref  # noqa: E402

from alliance_lib import change  # noqa: E402


def messy_panel(seed: int, n_clients: int = 400) -> pd.DataFrame:
    """Long data: 1-16 sessions per client starting at 0-2, a third of the sessions missing,
    integer scores (ties), some single-session clients and a client with no outcome at all."""
    rng = np.random.default_rng(seed)
    n_sess = rng.integers(1, 17, n_clients)
    n_sess[:20] = 1
    start = rng.integers(0, 3, n_clients)
    cid = np.repeat(np.arange(n_clients), n_sess)
    sess = np.concatenate([np.arange(n) for n in n_sess]) + np.repeat(start, n_sess)
    level = rng.normal(70, 15, n_clients)
    drift = rng.normal(-1.5, 1.5, n_clients)
    y = np.round(level[cid] + drift[cid] * sess + rng.normal(0, 8, len(cid)) * 1.4)
    jump = rng.random(len(cid)) < 0.06
    y[jump] -= rng.integers(10, 30, jump.sum())
    y[rng.random(len(cid)) < 0.3] = np.nan  # a row without a score (e.g. alliance only)
    y[cid == 5] = np.nan
    df = pd.DataFrame({"client_id": [f"c{i:03d}" for i in cid], "session": sess, "outcome": y})
    keep = rng.random(len(df)) > 0.1  # absent rows: missing sessions on the grid
    keep[cid < 20] = True
    return df[keep].sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grid_subset_equals_the_grid_of_the_subset(seed):
    df = messy_panel(seed)
    grid = change._session_grid(df, "outcome", "client_id", "session")
    pick = np.random.default_rng(seed).random(len(grid.clients)) < 0.3
    pick[np.argmin(grid.first)] = False  # the subset's range is narrower than the full grid's
    sub = grid.subset(pick)
    rows = df[df["client_id"].isin(grid.clients[pick])]
    direct = change._session_grid(rows, "outcome", "client_id", "session")
    assert sub.clients.equals(direct.clients)
    assert_array_equal(sub.sessions, direct.sessions)
    assert_array_equal(sub.values, direct.values)
    old = ref._session_grid(df, "outcome", "client_id", "session")
    assert_array_equal(grid.values, old.values) and grid.clients.equals(old.clients)
    given = change._session_grid(df, "outcome", "client_id", "session", sessions=range(0, 20))
    assert_array_equal(given.subset(pick).sessions, np.arange(20))  # a given grid is kept
    assert grid.subset(np.zeros(len(grid.clients), bool)).values.shape == (0, 0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("better", [False, True])
def test_sudden_gain_pipeline_matches_the_previous_implementation(seed, better):
    df = messy_panel(seed)
    chosen, gains, losses, counts = ref.old_gains_and_losses(df, cutoff=9, better=better)
    grid = change._session_grid(df, "outcome", "client_id", "session")
    sel = change._select_cases_on_grid(grid, client="client_id", method="pattern")
    pd.testing.assert_frame_equal(sel, chosen)
    sub = grid.subset(sel["selected"].to_numpy())
    for kind, old in (("gain", gains), ("loss", losses)):
        new = change._sudden_on_grid(
            sub, kind=kind, client="client_id", cutoff=9, higher_is_better=better
        )
        pd.testing.assert_frame_equal(new, old)
    assert len(gains) > 0 and len(losses) > 0 and len(gains) + len(losses) > 8  # not vacuous
    for crit3 in (True, False):
        pd.testing.assert_frame_equal(
            change._count_intervals_on_grid(grid, client="client_id", crit3=crit3),
            ref.count_intervals(df, "outcome", crit3=crit3),
        )
    # the public functions (their own grid) agree too
    pd.testing.assert_frame_equal(al.count_intervals(df, "outcome"), counts)
    pd.testing.assert_frame_equal(al.select_sudden_gain_cases(df, "outcome"), chosen)
    sub_rows = df[df["client_id"].isin(chosen.loc[chosen["selected"], "client_id"])]
    pd.testing.assert_frame_equal(
        al.sudden_gains(sub_rows, "outcome", cutoff=9, higher_is_better=better), gains
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_reliable_change_on_the_ended_subset_matches_the_previous_implementation(seed):
    df = messy_panel(seed)
    rng = np.random.default_rng(seed)
    status = al.treatment_status(
        df.assign(end=rng.random(len(df)) < 0.05), end="end", ongoing_within_days=None
    )
    status = status.iloc[3:]  # clients absent from the status table count as unknown
    inst = al.get_instrument("oq-45.2")
    old = ref.old_clinical_change(df, status, inst)
    grid = change._session_grid(df, "outcome", "client_id", "session")
    st = status.set_index("client_id")["status"].astype(str)
    st = st.reindex(grid.clients).fillna("unknown").to_numpy()
    new = change._reliable_change_on_grid(grid.subset(st == "ended"), client="client_id",
                                          instrument=inst)  # fmt: skip
    new = new[new["post_session"] > new["pre_session"]]
    pd.testing.assert_frame_equal(new, old)
    assert {s: int((st == s).sum()) for s in change.TREATMENT_STATUSES} == old.attrs[
        "treatment_status"
    ]
    public = al.reliable_change_from_long(df, "outcome", instrument=inst, status=status)
    assert public.attrs["treatment_status"] == old.attrs["treatment_status"]


def test_demo_event_analyses_match_the_previous_implementation(demo_study_yaml):
    from alliance_lib.sections import common as c
    from alliance_lib.study import load_study
    from alliance_lib.waves import prepare_wave

    w = prepare_wave(load_study(demo_study_yaml), 3)
    s = c.sessions(w)
    better = c.outcome_instrument(w).direction == "higher_is_better"
    chosen, gains, losses, counts = ref.old_gains_and_losses(s, c.sudden_gain_cutoff(w), better)
    new = c.gains_and_losses(w)
    pd.testing.assert_frame_equal(c.sudden_gain_cases(w), chosen)
    for a, b in zip(new, (gains, losses, counts), strict=True):
        pd.testing.assert_frame_equal(a, b)
    status, _ = c.treatment_status(w)
    old_rc = ref.old_clinical_change(s, status, c.outcome_instrument(w))
    rc, _ = c.clinical_change(w)
    pd.testing.assert_frame_equal(rc, old_rc)
    assert rc.attrs["treatment_status"] == old_rc.attrs["treatment_status"]


def test_treatment_status_helpers_match_pandas():
    """The large-data steps of treatment_status give pandas' own results: sorted client codes
    (text ids, with non-ASCII, a trailing NUL and numbers that fall back to pandas), distinct
    sessions per client (missing sessions not counted) and dates parsed once per value."""
    from alliance_lib.change import _dates_by_value, _distinct_per_code, _sorted_codes

    rng = np.random.default_rng(11)
    words = np.array(["C-0a", "C-0A", "c-01", "Ärzt", "b", "ab", "a", "Z9", "é", "e\u0301"])
    for ids in (
        pd.Series(rng.choice(words, 500)),
        pd.Series(rng.choice(words, 500), dtype="str"),
        pd.Series(rng.choice(np.r_[words, ["x\x00"]], 500)),
        pd.Series(rng.integers(0, 40, 500)),
    ):
        codes, uniq = _sorted_codes(ids)
        ref_codes, ref_uniq = pd.factorize(ids, sort=True)
        assert_array_equal(codes, ref_codes)
        assert list(uniq) == list(ref_uniq)
    codes = rng.integers(0, 30, 2000)
    sess = rng.integers(0, 12, 2000).astype(float)
    sess[rng.random(2000) < 0.1] = np.nan
    for values in (sess, np.round(rng.random(2000) * 500, 0)):  # dense, then sparse keys
        ref = pd.Series(values).groupby(codes).nunique().reindex(range(30)).to_numpy()
        assert_array_equal(_distinct_per_code(codes, values, 30), ref)
    raw = pd.Series(rng.choice(["2025-01-06", "06.01.2025", "", None, "2025-02-30", "x"], 300))
    raw[7] = "2025-03-01 10:15"
    got = _dates_by_value(raw)
    expected = pd.to_datetime(raw, errors="coerce", format="mixed")
    pd.testing.assert_series_equal(got, expected)
