"""The intake stage (alliance_lib.frame): columns, the one numeric rule, ids as text, drops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.errors import AllianceError, DataError, DefinitionError, MissingColumnsError
from alliance_lib.frame import ModelFrame, factorize_text, model_frame, to_float

ROLES = {"score": "wai", "client": "client_id", "session": "session"}


def table(**cols):
    base = {
        "client_id": ["001", "001", "002", "002"],
        "session": [1, 2, 1, 2],
        "wai": [3.0, 4.0, 2.5, 5.0],
    }
    base.update(cols)
    return pd.DataFrame(base, index=pd.RangeIndex(2, 6, name="row"))


def frame_of(df, **kw):
    opts = {"numeric": ["score", "session"], "ids": ["client"], "what": "demo"} | kw
    return model_frame(df, ROLES, **opts)


def test_returns_a_frozen_frame_with_codes_levels_and_row_labels():
    mf = frame_of(table())
    assert isinstance(mf, ModelFrame)
    with pytest.raises(AttributeError):
        mf.n_in = 3
    assert mf.levels["client"].tolist() == ["001", "002"]
    assert mf.codes["client"].tolist() == [0, 0, 1, 1]
    assert mf.rows.tolist() == [2, 3, 4, 5]
    assert mf.values("score").dtype == np.float64
    assert mf.values("client").tolist() == ["001", "001", "002", "002"]
    assert mf.data["client_id"].dtype == "str"
    assert list(mf.data.columns) == ["wai", "client_id", "session"]
    assert mf.n == mf.n_in == 4 and mf.n_dropped == {}


def test_misspelt_columns_are_all_named_with_did_you_mean():
    df = table()
    with pytest.raises(MissingColumnsError) as err:
        model_frame(df, {"score": "wia", "client": "client", "session": "sesion"}, what="demo")
    e = err.value
    assert e.missing == ["wia", "client", "sesion"]
    assert e.suggestions == {"wia": "wai", "client": "client_id", "sesion": "session"}
    assert e.roles == {"wia": "score", "client": "client", "sesion": "session"}
    assert str(e).startswith("demo: column(s) not found: wia (score), client, sesion (session).")
    assert "Did you mean 'wai' for 'wia'" in str(e)
    assert isinstance(e, DataError) and isinstance(e, AllianceError) and isinstance(e, ValueError)
    assert e.column == "wia" and e.hint == "did you mean 'wai'?"


def test_optional_and_absent_roles():
    df = table()
    mf = model_frame(
        df, {**ROLES, "therapist": "therapist_id", "rater": None}, optional=["therapist"]
    )
    assert "therapist" not in mf and "rater" not in mf
    with pytest.raises(MissingColumnsError, match="therapist_id"):
        model_frame(df, {**ROLES, "therapist": "therapist_id"})


@pytest.mark.parametrize(
    "raw, expect",
    [
        (["4", " 4.0 ", "-1e3", "2.5"], [4.0, 4.0, -1000.0, 2.5]),  # numbers stored as text
        (["4", "", None, "  "], [4.0, np.nan, np.nan, np.nan]),  # blank text is missing
        ([4, None, 3.5, 1], [4.0, np.nan, 3.5, 1.0]),
        (pd.array([4, None, 3, 1], dtype="Int64"), [4.0, np.nan, 3.0, 1.0]),
        ([True, False, True, False], [1.0, 0.0, 1.0, 0.0]),
        (np.array([4, "5", None, 2.0], dtype=object), [4.0, 5.0, np.nan, 2.0]),
    ],
)
def test_the_one_numeric_rule_accepts(raw, expect):
    np.testing.assert_array_equal(to_float(pd.Series(raw)), expect)
    np.testing.assert_array_equal(frame_of(table(wai=raw)).values("score"), expect)


@pytest.mark.parametrize("bad", ["n/a", "4,5", "four", "inf", "NA"])
def test_the_one_numeric_rule_rejects_naming_row_column_and_value(bad):
    df = table(wai=["3", bad, "2", bad])
    with pytest.raises(DataError) as err:
        frame_of(df)
    e = err.value
    assert (e.row, e.column, e.value) == (3, "wai", bad)
    assert f"demo: column 'wai', row 3: value {bad!r}; row 5: value {bad!r}" in str(e)
    assert "2 such cell(s)" in str(e)
    assert e.cells["row"].tolist() == [3, 5]


def test_infinite_numbers_are_rejected():
    with pytest.raises(DataError, match="row 4: value inf: infinite") as err:
        frame_of(table(wai=[1.0, 2.0, np.inf, 3.0]))
    assert err.value.row == 4


def test_the_rule_is_the_same_in_every_analysis():
    """Numbers stored as text: accepted by every analysis, and rejected text named by row."""
    df = al.simulate_study(n_therapists=4, n_clients=30, seed=2, output="scores")
    as_text = df.assign(alliance=df["alliance"].map(lambda v: f" {v!r} ", na_action="ignore"))
    a = al.fit_trajectory(df, "alliance")
    b = al.fit_trajectory(as_text, "alliance")
    pd.testing.assert_frame_equal(a.fixed, b.fixed)
    bad = as_text.copy()
    bad.loc[bad.index[5], "alliance"] = "n/a"
    calls = [
        lambda d: al.fit_trajectory(d, "alliance"),
        lambda d: al.decompose(d, "alliance"),
        lambda d: al.fit_alliance_outcome(d, "alliance", "outcome"),
        lambda d: al.ruptures(d, "alliance"),
        lambda d: al.sudden_gains(d, "alliance", cutoff=1.0),
    ]
    for call in calls:
        call(as_text)  # accepted
        with pytest.raises(DataError, match=r"column 'alliance', row \d+: value 'n/a'") as e:
            call(bad)
        assert e.value.value == "n/a" and e.value.column == "alliance"


def test_integer_roles_must_be_whole_numbers():
    with pytest.raises(DataError, match="row 3: value 1.5: not a whole number"):
        frame_of(table(session=[1, 1.5, 1, 2]), integer=["session"])


@pytest.mark.parametrize(
    "ids, levels",
    [
        ([101, 101, 102, 103], ["101", "102", "103"]),
        ([101.0, 101.0, np.nan, 103.0], ["101", "103"]),  # never "101.0"
        (["000001", "1", "012", "0012"], ["000001", "1", "012", "0012"]),  # zeros survive
        ([" 01", "01", "", None], ["01"]),  # stripped; blank is missing
        (pd.array(["a", "a", None, "b"], dtype="str"), ["a", "b"]),
        (np.array([7, "7", "x", 7.0], dtype=object), ["7", "x"]),
    ],
)
def test_ids_are_text(ids, levels):
    codes, lv = factorize_text(pd.Series(ids))
    assert lv.tolist() == levels
    assert codes.max() == len(levels) - 1 and set(codes) <= {-1, *range(len(levels))}
    mf = frame_of(table(client_id=ids))
    assert mf.levels["client"].tolist() == levels
    assert all(isinstance(x, str) for x in mf.data["client_id"].dropna())


def test_arrow_run_encoding_and_unsorted_ids_agree():
    ids = pd.array(["b"] * 50 + ["a"] * 50 + [None] * 3 + ["b "] * 10, dtype="str")
    codes, lv = factorize_text(pd.Series(ids))
    assert lv.tolist() == ["b", "a"]
    plain = factorize_text(pd.Series(np.asarray(ids, dtype=object)))
    np.testing.assert_array_equal(codes, plain[0])


def test_missing_rows_are_dropped_and_counted_by_first_reason():
    df = table(wai=[3.0, None, None, 5.0], session=[1, None, 1, 2], client_id=["a", "a", None, "b"])
    mf = frame_of(df, dropna=True)
    assert mf.n_dropped == {"missing score": 2, "missing session": 0, "missing client": 0}
    assert mf.rows.tolist() == [2, 5]
    assert mf.levels["client"].tolist() == ["a", "b"]
    named = frame_of(df, dropna={"outcome": ["score"], "ids": ["client", "session"]})
    assert named.n_dropped == {"outcome": 2, "ids": 0}
    kept = frame_of(df)
    assert kept.n == 4 and kept.codes["client"].tolist() == [0, 0, -1, 1]
    s = frame_of(table(client_id=["z", "y", "z", "x"]), sort_levels=True)
    assert s.levels["client"].tolist() == ["x", "y", "z"]
    assert s.values("client").tolist() == ["z", "y", "z", "x"]


def test_levels_follow_the_kept_rows():
    mf = frame_of(table(client_id=["z", "y", "z", "x"], wai=[1.0, None, 2.0, 3.0]), dropna=True)
    assert mf.levels["client"].tolist() == ["z", "x"]
    assert mf.codes["client"].tolist() == [0, 0, 1]


def test_required_roles_name_the_row():
    with pytest.raises(DataError, match=r"column 'client_id', row 4: missing id") as err:
        frame_of(table(client_id=["a", "a", None, "b"]), required=["client"])
    assert err.value.row == 4 and err.value.column == "client_id"
    with pytest.raises(DataError, match=r"column 'session', row 3: missing value"):
        frame_of(table(session=[1, None, 1, 2]), required=["session"])


def test_list_roles_and_keep_all():
    df = table(age=["30", "41", "52", "63"], female=[True, False, True, True], note=list("abcd"))
    mf = model_frame(
        df, {**ROLES, "covariates": ["age", "female"]}, numeric=["score", "covariates"], keep="all"
    )
    assert mf.values("covariates").shape == (4, 2)
    assert mf.values("covariates")[:, 0].tolist() == [30.0, 41.0, 52.0, 63.0]
    assert list(mf.data.columns) == list(df.columns)
    assert mf.data["note"].tolist() == list("abcd") and mf.data["age"].dtype == np.float64


def test_the_input_is_never_changed():
    df = table(wai=["3", "4", "2", "5"], client_id=[1, 1, 2, 2])
    before = df.copy()
    frame_of(df, dropna=True)
    pd.testing.assert_frame_equal(df, before)
    # nor through the frame: writing to it leaves the input as it was
    text = table(client_id=pd.array(["a", "a", "b", "b"], dtype="str"))
    before = text.copy()
    for kw in ({}, {"keep": "all"}, {"dropna": True}):
        mf = frame_of(text, **kw)
        mf.data.loc[mf.rows[0], "client_id"] = "zzz"
        mf.data.loc[mf.rows[0], "wai"] = -1.0
        pd.testing.assert_frame_equal(text, before)


def test_a_column_given_twice_is_named():
    df = pd.concat([table(), table()[["wai"]]], axis=1)
    with pytest.raises(DataError, match="wai appear more than once") as err:
        frame_of(df)
    assert err.value.column == "wai"


def test_not_a_dataframe_and_bad_options():
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        model_frame([1, 2], ROLES)
    with pytest.raises(DefinitionError, match="keep must be"):
        model_frame(table(), ROLES, keep="some")
    with pytest.raises(DefinitionError, match="not mapped"):
        model_frame(table(), ROLES, numeric=["therapist"])


def test_vectorised_on_a_million_rows():
    import time

    n = 1_000_000
    df = pd.DataFrame(
        {
            "client_id": pd.array(np.char.zfill((np.arange(n) // 16).astype(str), 6), dtype="str"),
            "session": np.arange(n) % 16,
            "wai": np.random.default_rng(1).normal(4, 1, n),
        }
    )
    t0 = time.perf_counter()
    mf = frame_of(df, dropna=True)
    assert time.perf_counter() - t0 < 5.0  # a per-row Python loop would take far longer
    assert len(mf.levels["client"]) == n // 16


def test_numbers_as_text_in_item_and_pre_post_analyses():
    rng = np.random.default_rng(4)
    items = pd.DataFrame(rng.integers(1, 6, (40, 4)).astype(float), columns=list("abcd"))
    items += rng.integers(0, 2, (40, 1))  # some shared variance
    text = items.map(lambda v: f" {v:g} ")
    assert al.cronbach_alpha(text).alpha == pytest.approx(al.cronbach_alpha(items).alpha)
    pp = pd.DataFrame({"pre": [30.0, 25.0, 28.0], "post": [10.0, 24.0, 35.0]})
    a = al.reliable_change(
        pp, pre="pre", post="post", sd=5.0, reliability=0.8, higher_is_better=False
    )
    b = al.reliable_change(
        pp.astype(str), pre="pre", post="post", sd=5.0, reliability=0.8, higher_is_better=False
    )
    assert a["category"].tolist() == b["category"].tolist()
    bad = pp.astype(object)
    bad.loc[1, "post"] = "twenty"
    with pytest.raises(DataError, match=r"column 'post', row 1: value 'twenty': not a number"):
        al.reliable_change(
            bad, pre="pre", post="post", sd=5.0, reliability=0.8, higher_is_better=False
        )
    text.loc[3, "c"] = "n/a"
    with pytest.raises(DataError, match=r"column 'c', row 3: value 'n/a'"):
        al.cronbach_alpha(text)
