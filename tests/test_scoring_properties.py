"""Property-based tests (hypothesis) for scoring and validation."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import alliance_lib as al
from alliance_lib.validate import validate

IDS = sorted(al.list_instruments()["id"])
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def answers(draw, ident, max_rows=12, p_missing=True):
    """An (n_rows, n_items) float array of valid answers, NaN for missing."""
    inst = al.get_instrument(ident)
    n = draw(st.integers(0, max_rows))
    if inst.integer_scale:
        values = st.sampled_from(
            [float(v) for v in range(int(inst.scale_min), int(inst.scale_max) + 1)]
        )
    else:
        values = st.integers(0, 100).map(lambda v: v / 10)  # VAS read to the nearest mm
    if p_missing:
        values = st.one_of(values, st.just(np.nan))
    return inst, draw(arrays(np.float64, (n, inst.n_items), elements=values))


def as_frame(inst, x):
    df = pd.DataFrame(x, columns=list(inst.columns))
    df.insert(0, "session", np.arange(len(df)))
    df.insert(0, "client_id", [f"{i:04d}" for i in range(len(df))])
    df.index = pd.RangeIndex(2, 2 + len(df), name="row")
    return df


@SETTINGS
@given(data=st.data(), ident=st.sampled_from(IDS))
def test_reversal_is_an_involution_and_stays_on_the_scale(data, ident):
    inst, x = data.draw(answers(ident))
    once = al.reverse_items(x, inst)
    np.testing.assert_array_equal(al.reverse_items(once, inst), x)
    finite = once[~np.isnan(once)]
    assert ((finite >= inst.scale_min) & (finite <= inst.scale_max)).all()
    untouched = [i - 1 for i in inst.items if i not in inst.reverse]
    np.testing.assert_array_equal(once[:, untouched], x[:, untouched])


@SETTINGS
@given(
    data=st.data(), ident=st.sampled_from(IDS), metric=st.sampled_from(["mean", "sum", "mean_x10"])
)
def test_scores_stay_in_range_and_rows_are_kept(data, ident, metric):
    inst, x = data.draw(answers(ident))
    df = as_frame(inst, x)
    out = al.score(df, inst, metric=metric)
    assert len(out) == len(df) and out.index.equals(df.index)
    for scale in inst.scales:
        lo, hi = inst.score_range(scale, metric)
        col = out[f"{inst.prefix}_{scale}"].dropna()
        assert ((col >= lo - 1e-9) & (col <= hi + 1e-9)).all(), (scale, col.tolist())
    n_missing = np.isnan(x).sum(axis=1)
    assert out[f"{inst.prefix}_n_missing"].tolist() == n_missing.tolist()
    complete = n_missing == 0
    assert out.loc[complete, f"{inst.prefix}_total"].notna().all()
    assert not out.loc[complete, f"{inst.prefix}_prorated"].any()
    # a row's score never depends on the other rows
    if len(df) > 1:
        flipped = al.score(df.iloc[::-1], inst, metric=metric)
        pd.testing.assert_frame_equal(flipped.iloc[::-1], out)


@SETTINGS
@given(data=st.data(), ident=st.sampled_from(IDS))
def test_sum_equals_mean_times_items_on_complete_rows(data, ident):
    inst, x = data.draw(answers(ident, p_missing=False))
    df = as_frame(inst, x)
    mean = al.score(df, inst, metric="mean")
    total = al.score(df, inst, metric="sum")
    for scale, items in inst.scales.items():
        col = f"{inst.prefix}_{scale}"
        np.testing.assert_allclose(total[col], mean[col] * len(items), rtol=1e-12, atol=1e-9)


JUNK = st.sampled_from(["n/a", "—", "", " ", "-99", "3,5", "99", "2.5", "x"])


@SETTINGS
@given(
    data=st.data(),
    ident=st.sampled_from(["wai-sr", "oq-45.2", "srs", "core-10"]),
    junk=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 44), JUNK), max_size=6),
    ids=st.lists(st.sampled_from(["a", "b", None, " ", "007"]), min_size=12, max_size=12),
    sessions=st.lists(st.sampled_from([0, 1, 1, 2, -1, 2.5, "x", None]), min_size=12, max_size=12),
)
def test_rows_in_equal_rows_out_on_messy_input(data, ident, junk, ids, sessions):
    inst, x = data.draw(answers(ident, max_rows=12))
    df = as_frame(inst, x).astype({c: object for c in inst.columns})
    for r, c, value in junk:
        if r < len(df):
            df.iloc[r, 2 + c % inst.n_items] = value
    df["client_id"] = pd.array(ids[: len(df)], dtype=object)
    df["session"] = pd.array(sessions[: len(df)], dtype=object)
    v = validate(df, inst, missing_codes=[-99])
    assert v.n_clean + v.n_quarantined == v.n_in == len(df)
    assert v.clean.index.intersection(v.quarantined.index).empty
    assert sorted([*v.clean.index, *v.quarantined.index]) == list(df.index)
    assert v.quarantined["reason"].notna().all()
    assert (v.quarantined["reason"].str.len() > 0).all()
    out = al.score(df, inst, missing_codes=[-99], errors="quarantine")
    assert len(out) == len(df) and out.index.equals(df.index)
    # rows that validate quarantined for their items have NaN scores and a problem text
    scored = al.score(v.clean, inst)  # clean rows never raise
    assert len(scored) == v.n_clean
