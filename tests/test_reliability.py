"""Tests for alliance_lib.reliability.

Reference values: R 4.2.2 + psych 2.2.9 via tests/reference/psych_reference.R, saved in
tests/reference/fixtures/psych_reference.json (the script also writes the CSV inputs).

Tolerances:
* alpha, std alpha, alpha-if-deleted, item-total correlations: 1e-6 absolute (closed-form
  covariance algebra; we agree to ~1e-15).
* Feldt confidence limits: 1e-4 absolute (F quantiles from two implementations).
* omega and factor loadings: 1e-4 absolute. psych::fa(fm="ml") stops L-BFGS-B at optim's default
  factr = 1e7 (relative objective change ~2e-9), which leaves its loadings converged to only
  ~1e-6..1e-5, while ours are optimised to ~1e-12; the observed gap is ~1e-6.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import alliance_lib as al
from alliance_lib.errors import MissingColumnsError
from alliance_lib.reliability import (
    AlphaResult,
    OmegaResult,
    ReliabilityError,
    cronbach_alpha,
    item_statistics,
    multilevel_omega,
    multilevel_reliability,
    omega,
    omega_hierarchical,
    reliability,
)

FIXTURES = Path(__file__).parent / "reference" / "fixtures"
REF = json.loads((FIXTURES / "psych_reference.json").read_text())
ALPHA_REF = REF["alpha_items"]
ITEMS = pd.read_csv(FIXTURES / "alpha_items.csv")
ITEMS_MISSING = pd.read_csv(FIXTURES / "alpha_items_missing.csv")
SCALE_ITEMS = pd.read_csv(FIXTURES / "scale_items.csv")

ALPHA_TOL = 1e-6
CI_TOL = 1e-4
OMEGA_TOL = 1e-4
# psych::omega (GPArotation stops oblimin at eps 1e-5; we converge to 1e-10): observed <= 2e-6
SL_TOL = 1e-5
# lavaan two-level CFA: observed loglik gap <= 2e-8, omegas <= 7e-7, loadings <= 2e-6
ML_LOGLIK_TOL = 1e-5
ML_OMEGA_TOL = 1e-5
ML_LOADING_TOL = 1e-4
RREF = json.loads((FIXTURES / "reliability_reference.json").read_text())
WAI_FIRST = pd.read_csv(FIXTURES / "wai_first_admin.csv", dtype={"client_id": str})
WAI_TWO_LEVEL = pd.read_csv(FIXTURES / "wai_two_level.csv", dtype={"client_id": str})
WAI_ITEMS = [f"wai_sr_{k}" for k in range(1, 13)]

CASES = {
    # fixture key: (data, nan_policy); R: psych::alpha(x, use=...)
    "complete": (ITEMS, "listwise"),
    "pairwise": (ITEMS_MISSING, "pairwise"),
    "listwise": (ITEMS_MISSING, "listwise"),
}


def test_reference_versions_recorded():
    assert REF["versions"]["psych"] == "2.2.9"
    assert REF["versions"]["R"].startswith("R version 4.2.2")


# ---------------------------------------------------------------------------------------------
# cronbach_alpha


@pytest.mark.parametrize("case", list(CASES))
def test_alpha_matches_psych(case):
    data, policy = CASES[case]
    ref = ALPHA_REF[case]
    res = cronbach_alpha(data, nan_policy=policy)
    assert isinstance(res, AlphaResult)
    # R: psych::alpha(x, use=...)$total$raw_alpha, std.alpha, average_r
    assert res.alpha == pytest.approx(ref["raw_alpha"], abs=ALPHA_TOL)
    assert float(res) == res.alpha
    assert res.std_alpha == pytest.approx(ref["std_alpha"], abs=ALPHA_TOL)
    assert res.average_r == pytest.approx(ref["average_r"], abs=ALPHA_TOL)
    assert res.n_items == 8


@pytest.mark.parametrize("case", ["complete", "pairwise"])
def test_feldt_ci_matches_psych(case):
    data, policy = CASES[case]
    ref = ALPHA_REF[case]
    res = cronbach_alpha(data, nan_policy=policy)
    # R: psych::alpha(x)$feldt (n = all rows, each with at least one answered item)
    assert res.n == ref["nsub"] == 150
    assert res.ci_low == pytest.approx(ref["feldt_lower"], abs=CI_TOL)
    assert res.ci_high == pytest.approx(ref["feldt_upper"], abs=CI_TOL)
    assert res.ci_low < res.alpha < res.ci_high


def test_feldt_ci_listwise_uses_complete_cases():
    ref = ALPHA_REF["listwise"]
    res = cronbach_alpha(ITEMS_MISSING)  # listwise is the default
    assert res.n == ref["n_complete"] == int(ITEMS_MISSING.notna().all(axis=1).sum())
    # R: psych::alpha.ci(raw_alpha, n_complete, 8) and psych::alpha(na.omit(x))$feldt
    assert res.ci_low == pytest.approx(ref["feldt_lower_ncomplete"], abs=CI_TOL)
    assert res.ci_high == pytest.approx(ref["feldt_upper_ncomplete"], abs=CI_TOL)
    assert res.ci_low == pytest.approx(ref["feldt_lower_na_omit"], abs=CI_TOL)
    # documented difference: psych::alpha(use="complete.obs") counts all 150 rows for its CI,
    # which gives a visibly narrower interval than the 90 complete cases support
    assert res.ci_low < ref["feldt_lower"] - 0.005
    assert res.ci_high > ref["feldt_upper"] + 0.005


def test_feldt_ci_level():
    res = cronbach_alpha(ITEMS, ci=0.90)
    # R: psych::alpha.ci(raw_alpha, 150, 8, p.val = 0.10)
    assert res.ci_low == pytest.approx(ALPHA_REF["complete"]["feldt90_lower"], abs=CI_TOL)
    assert res.ci_high == pytest.approx(ALPHA_REF["complete"]["feldt90_upper"], abs=CI_TOL)
    wide = cronbach_alpha(ITEMS, ci=0.95)
    assert wide.ci_low < res.ci_low and wide.ci_high > res.ci_high


def test_alpha_by_hand_from_variances():
    # alpha = k/(k-1) * (1 - sum of item variances / variance of the sum score), computed here
    # from row sums, independently of the covariance-matrix code
    x = np.array([[1, 2, 2], [2, 2, 3], [3, 4, 3], [4, 4, 5], [2, 3, 2]], dtype=float)
    item_var = x.var(axis=0, ddof=1).sum()  # 5.2/4 + 4/4 + 6/4 = 1.3 + 1.0 + 1.5 = 3.8
    total_var = x.sum(axis=1).var(ddof=1)  # sums 5, 7, 10, 13, 7: 39.2/4 = 9.8
    assert item_var == pytest.approx(3.8) and total_var == pytest.approx(9.8)
    expected = 1.5 * (1 - 3.8 / 9.8)
    assert cronbach_alpha(x).alpha == pytest.approx(expected, abs=1e-12)


def test_alpha_array_and_frame_agree_and_missing_codes():
    arr = ITEMS.to_numpy(dtype=float)
    assert cronbach_alpha(arr).alpha == pytest.approx(cronbach_alpha(ITEMS).alpha, abs=1e-15)
    coded = ITEMS_MISSING.fillna(-99)
    with_codes = cronbach_alpha(coded, nan_policy="pairwise", missing_codes=(-99,))
    assert with_codes.alpha == pytest.approx(ALPHA_REF["pairwise"]["raw_alpha"], abs=ALPHA_TOL)
    # without declaring the code, -99 is a value and alpha changes a lot
    assert abs(cronbach_alpha(coded).alpha - with_codes.alpha) > 0.05


def test_rows_not_administered_are_dropped():
    empty = pd.DataFrame(np.nan, index=range(5), columns=ITEMS_MISSING.columns)
    padded = pd.concat([ITEMS_MISSING, empty], ignore_index=True)
    res = cronbach_alpha(padded, nan_policy="pairwise")
    assert res.n == 150
    assert res.alpha == pytest.approx(ALPHA_REF["pairwise"]["raw_alpha"], abs=ALPHA_TOL)
    assert res.ci_low == pytest.approx(ALPHA_REF["pairwise"]["feldt_lower"], abs=CI_TOL)


def test_alpha_bad_input():
    bad = ITEMS.astype(object)
    bad.loc[7, "item_3"] = "n/a"
    with pytest.raises(ReliabilityError, match=r"item_3.*row 7.*'n/a'") as exc:
        cronbach_alpha(bad)
    assert (exc.value.column, exc.value.row, exc.value.value) == ("item_3", 7, "n/a")
    with pytest.raises(ReliabilityError, match="nan_policy"):
        cronbach_alpha(ITEMS, nan_policy="complete")
    with pytest.raises(ReliabilityError, match="at least 2 items"):
        cronbach_alpha(ITEMS[["item_1"]])
    with pytest.raises(ReliabilityError, match="at least 2 complete rows"):
        cronbach_alpha(pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, 2.0]}))
    with pytest.raises(ReliabilityError, match="ci must be"):
        cronbach_alpha(ITEMS, ci=95)


# ---------------------------------------------------------------------------------------------
# item_statistics


@pytest.mark.parametrize("case", list(CASES))
def test_item_statistics_match_psych(case):
    data, policy = CASES[case]
    ref = ALPHA_REF[case]
    st = item_statistics(data, nan_policy=policy)
    assert list(st.index) == ref["items"]
    # R: psych::alpha(x, use=...)$alpha.drop$raw_alpha / std.alpha, $item.stats$r.drop / raw.r
    assert_allclose(st["alpha_if_deleted"], ref["alpha_drop"], atol=ALPHA_TOL, rtol=0)
    assert_allclose(st["std_alpha_if_deleted"], ref["std_alpha_drop"], atol=ALPHA_TOL, rtol=0)
    assert_allclose(st["r_drop"], ref["r_drop"], atol=ALPHA_TOL, rtol=0)
    assert_allclose(st["r_total"], ref["raw_r"], atol=ALPHA_TOL, rtol=0)
    if case != "listwise":  # psych counts available values; listwise we count complete cases
        assert st["n"].tolist() == ref["item_n"]
    else:
        assert (st["n"] == ALPHA_REF["listwise"]["n_complete"]).all()


def test_item_statistics_by_hand():
    x = pd.DataFrame({"a": [1.0, 2, 3, 4, 2], "b": [2.0, 2, 4, 4, 3], "c": [2.0, 3, 3, 5, 2]})
    st = item_statistics(x)
    # corrected item-total: correlate the item with the sum of the other two
    for col in x:
        rest = x.drop(columns=col).sum(axis=1)
        assert st.loc[col, "r_drop"] == pytest.approx(np.corrcoef(x[col], rest)[0, 1], abs=1e-12)
        assert st.loc[col, "r_total"] == pytest.approx(
            np.corrcoef(x[col], x.sum(axis=1))[0, 1], abs=1e-12
        )
        assert st.loc[col, "alpha_if_deleted"] == pytest.approx(
            cronbach_alpha(x.drop(columns=col)).alpha, abs=1e-12
        )
    assert_allclose(st["mean"], x.mean())
    assert_allclose(st["sd"], x.std())


# ---------------------------------------------------------------------------------------------
# omega


@pytest.mark.parametrize("case", list(CASES))
def test_omega_matches_psych_fa(case):
    data, policy = CASES[case]
    ref = ALPHA_REF[case]["omega"]
    res = omega(data, nan_policy=policy)
    assert isinstance(res, OmegaResult)
    assert res.converged and not res.heywood
    # R: psych::fa(x, nfactors=1, fm="ml", use=...)$loadings
    assert_allclose(res.loadings, ref["loadings"], atol=OMEGA_TOL, rtol=0)
    assert_allclose(1 - res.uniquenesses, ref["h2"], atol=OMEGA_TOL, rtol=0)
    # R: (sum l)^2 / ((sum l)^2 + sum(1 - h2)), and the raw-scale version from l * sd
    assert res.omega_std == pytest.approx(ref["omega_std"], abs=OMEGA_TOL)
    assert res.omega == pytest.approx(ref["omega_raw"], abs=OMEGA_TOL)
    assert float(res) == res.omega


def test_omega_three_items_closed_form():
    # With 3 items the one-factor model is just identified: l1 = sqrt(r12 * r13 / r23), etc.
    rng = np.random.default_rng(7)
    f = rng.normal(size=400)
    x = np.column_stack([lam * f + rng.normal(size=400) for lam in (0.8, 1.1, 1.4)])
    r = np.corrcoef(x, rowvar=False)
    expected = np.sqrt(
        [r[0, 1] * r[0, 2] / r[1, 2], r[0, 1] * r[1, 2] / r[0, 2], r[0, 2] * r[1, 2] / r[0, 1]]
    )
    res = omega(x)
    assert_allclose(res.loadings, expected, atol=1e-7)
    u = 1 - expected**2
    assert res.omega_std == pytest.approx(expected.sum() ** 2 / (expected.sum() ** 2 + u.sum()))
    sd = x.std(axis=0, ddof=1)
    lam, psi = expected * sd, u * sd**2
    assert res.omega == pytest.approx(lam.sum() ** 2 / (lam.sum() ** 2 + psi.sum()), abs=1e-7)


def test_omega_scale_behaviour():
    z = (ITEMS - ITEMS.mean()) / ITEMS.std()
    res_z = omega(z)
    # on standardised items the raw-scale and correlation-scale omegas coincide
    assert res_z.omega == pytest.approx(res_z.omega_std, abs=1e-10)
    # loadings are scale free; raw loadings scale with the item
    doubled = ITEMS.assign(item_1=ITEMS["item_1"] * 2)
    a, b = omega(ITEMS), omega(doubled)
    assert_allclose(a.loadings, b.loadings, atol=1e-7)
    assert b.raw_loadings["item_1"] == pytest.approx(2 * a.raw_loadings["item_1"], rel=1e-6)
    assert b.omega_std == pytest.approx(a.omega_std, abs=1e-8)
    # omega total is at least alpha for congeneric items (here, by a small margin)
    assert a.omega >= cronbach_alpha(ITEMS).alpha


def test_omega_flag_false_but_optimal_is_converged(monkeypatch):
    """Issue 10: an optimiser reporting failure at the optimum still gives a converged omega."""
    rel = sys.modules["alliance_lib.reliability"]

    real = rel.optimize.minimize

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        res.success = False
        res.message = "ABNORMAL_TERMINATION_IN_LNSRCH"
        return res

    monkeypatch.setattr(rel.optimize, "minimize", failing)
    res = omega(ITEMS)
    assert res.converged
    assert res.optimizer_message == "ABNORMAL_TERMINATION_IN_LNSRCH"
    assert res.loadings.tolist() == pytest.approx(
        ALPHA_REF["complete"]["omega"]["loadings"], abs=OMEGA_TOL
    )


def test_omega_flag_true_but_not_stationary_is_not_converged(monkeypatch):
    """An optimiser that stops at its start and reports success does not give convergence."""
    import types as _types

    rel = sys.modules["alliance_lib.reliability"]

    def stop_at_start(fun, x0, **kwargs):
        return _types.SimpleNamespace(x=np.asarray(x0), success=True, message="CONVERGENCE")

    monkeypatch.setattr(rel.optimize, "minimize", stop_at_start)
    res = omega(ITEMS)
    assert not res.converged
    assert res.optimizer_message == "CONVERGENCE"
    table = reliability(
        SCALE_ITEMS.assign(client_id=np.arange(len(SCALE_ITEMS)).astype(str), session=1),
        _tst_instrument(),
    )
    assert table["note"].str.contains("did not converge").any()


def test_omega_needs_three_items_and_pd_matrix():
    with pytest.raises(ReliabilityError, match="at least 3 items"):
        omega(ITEMS[["item_1", "item_2"]])
    dup = ITEMS.assign(copy=ITEMS["item_1"])
    with pytest.raises(ReliabilityError, match="not positive definite"):
        omega(dup)


# ---------------------------------------------------------------------------------------------
# reliability(df, instrument)


def _tst_instrument():
    # a 9-item 0-4 instrument with items 2 and 7 reverse keyed (as in psych_reference.R)
    return dataclasses.replace(
        al.get_instrument("core-10"),
        id="tst",
        prefix="tst",
        n_items=9,
        reverse=(2, 7),
        subscales=types.MappingProxyType({"a": (1, 2, 3, 4, 5), "b": (6, 7, 8, 9)}),
    )


def test_reliability_matches_psych_per_scale():
    table = reliability(SCALE_ITEMS, _tst_instrument(), administration="all")
    assert table["scale"].tolist() == ["total", "a", "b"]
    assert table["n_items"].tolist() == [9, 5, 4]
    for _, row in table.iterrows():
        ref = REF["scale_items"][row["scale"]]
        # R: psych::alpha(reversed items, use="complete.obs"), alpha.ci at the complete n,
        # omega from psych::fa(x, 1, fm="ml")
        assert row["n"] == ref["n"]
        assert row["alpha"] == pytest.approx(ref["raw_alpha"], abs=ALPHA_TOL)
        assert row["std_alpha"] == pytest.approx(ref["std_alpha"], abs=ALPHA_TOL)
        assert row["alpha_ci_low"] == pytest.approx(ref["feldt_lower"], abs=CI_TOL)
        assert row["alpha_ci_high"] == pytest.approx(ref["feldt_upper"], abs=CI_TOL)
        if row["scale"] == "total":
            # two subscales: the total is multidimensional, so its omega is psych::omega's
            # omega total of a Schmid-Leiman solution with 2 group factors (see below)
            ref_h = RREF["omega_scale_items"]
            assert row["omega"] == pytest.approx(ref_h["omega_total"], abs=SL_TOL)
            assert row["omega_h"] == pytest.approx(ref_h["omega_h"], abs=SL_TOL)
            assert row["omega_model"].startswith("Schmid-Leiman, 2 group factors")
        else:
            assert row["omega"] == pytest.approx(ref["omega_raw"], abs=OMEGA_TOL)
            assert row["omega_std"] == pytest.approx(ref["omega_std"], abs=OMEGA_TOL)
            assert np.isnan(row["omega_h"])
            assert row["omega_model"] == "one factor (unidimensional scale)"
        assert row["note"] == ""
    # R: psych::alpha(x, keys = c("tst_2", "tst_7")) gives the same total alpha
    assert table.loc[0, "alpha"] == pytest.approx(
        REF["scale_items"]["total"]["raw_alpha_psych_keys"], abs=ALPHA_TOL
    )
    assert table.attrs["instrument"] == "tst" and table.attrs["n_omitted"] == 0


def test_reliability_reverse_keys_matter():
    unkeyed = dataclasses.replace(_tst_instrument(), reverse=())
    keyed = reliability(SCALE_ITEMS, _tst_instrument(), administration="all")
    plain = reliability(SCALE_ITEMS, unkeyed, administration="all")
    assert plain.loc[0, "alpha"] < keyed.loc[0, "alpha"] - 0.2


def test_reliability_missing_codes_and_bad_values():
    coded = SCALE_ITEMS.copy()
    coded.loc[coded["tst_1"].isna() & coded["tst_2"].notna(), "tst_1"] = -99
    coded.loc[coded["tst_9"].isna() & coded["tst_8"].notna(), "tst_9"] = 999
    inst = _tst_instrument()
    with pytest.raises(ReliabilityError, match="outside the scale 0-4") as exc:
        reliability(coded, inst, administration="all")
    assert exc.value.column in ("tst_1", "tst_9") and exc.value.value in (-99, 999)
    same = reliability(coded, inst, missing_codes=(-99, 999), administration="all")
    expected = reliability(SCALE_ITEMS, inst, administration="all")
    pd.testing.assert_frame_equal(same, expected)

    typo = SCALE_ITEMS.copy()
    typo.loc[3, "tst_4"] = 44
    typo.loc[5, "tst_5"] = 2.5
    with pytest.raises(ReliabilityError, match=r"row 3 tst_4=44.*row 5 tst_5=2.5") as exc:
        reliability(typo, inst, administration="all")
    assert (exc.value.row, exc.value.column) == (3, "tst_4")
    omitted = reliability(typo, inst, errors="omit", administration="all")
    assert omitted.attrs["n_omitted"] == 2
    manual = reliability(typo.drop(index=[3, 5]), inst, administration="all")
    pd.testing.assert_series_equal(omitted["alpha"], manual["alpha"])

    with pytest.raises(MissingColumnsError, match="not found: tst_9"):
        reliability(SCALE_ITEMS.drop(columns="tst_9"), inst, administration="all")


def test_reliability_by_group():
    df = SCALE_ITEMS.assign(site=np.where(np.arange(len(SCALE_ITEMS)) % 2 == 0, "x", "y"))
    table = reliability(df, _tst_instrument(), by="site", administration="all")
    assert table.columns[:2].tolist() == ["site", "scale"]
    assert len(table) == 6
    x_only = reliability(df[df["site"] == "x"], _tst_instrument(), administration="all")
    got = table[table["site"] == "x"].drop(columns="site").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, x_only, check_dtype=False)


def test_reliability_registry_instrument_on_simulated_data():
    df = al.simulate_study(n_therapists=3, n_clients=40, max_sessions=3, seed=11)
    rows = df[(df["session"] == 1) & (df["rater"] == "client")]
    table = reliability(rows, "wai-sr", missing_codes=(-99, 999), errors="omit")
    inst = al.get_instrument("wai-sr")
    assert table["scale"].tolist() == list(inst.scales)
    assert (table["n_items"] == [12, 4, 4, 4]).all()
    # the total alpha equals cronbach_alpha on the same complete item rows
    items = rows[list(inst.columns)].replace([-99, 999], np.nan)
    items = items[((items >= 1) & (items <= 5) | items.isna()).all(axis=1)]
    assert table.loc[0, "alpha"] == pytest.approx(cronbach_alpha(items).alpha, abs=1e-12)
    assert table["alpha"].between(0.5, 1).all()


def test_reliability_short_scale_note():
    inst = dataclasses.replace(
        _tst_instrument(), subscales=types.MappingProxyType({"pair": (1, 3)})
    )
    table = reliability(SCALE_ITEMS, inst, administration="all").set_index("scale")
    assert np.isnan(table.loc["pair", "omega"])
    assert "at least 3 items" in table.loc["pair", "note"]
    assert np.isfinite(table.loc["pair", "alpha"])


def test_constant_and_disjoint_items_are_named():
    const = ITEMS.assign(ceiling=5.0)
    with pytest.raises(ReliabilityError, match=r"'ceiling' has no variance .*every answer is 5"):
        cronbach_alpha(const)
    with pytest.raises(ReliabilityError, match="'ceiling' has no variance"):
        omega(const)
    disjoint = pd.DataFrame(
        {"a": [1.0, 2, 3, np.nan, np.nan], "b": [np.nan, np.nan, 2, 3, 1], "c": [2.0, 1, 3, 4, 2]}
    )
    with pytest.raises(ReliabilityError, match="'a' and 'b' are answered together on fewer"):
        cronbach_alpha(disjoint, nan_policy="pairwise")


def test_public_names_exported():
    for name in ("cronbach_alpha", "omega", "item_statistics", "reliability"):
        assert getattr(al, name) is globals()[name]


# ---------------------------------------------------------------------------------------------
# issue 13 item 1: one administration per client, hierarchical omega, multilevel omega


def _repeated(seed=5):
    df = al.simulate_study(n_therapists=4, n_clients=60, max_sessions=5, seed=seed)
    return df[df["rater"] == "client"]


def test_reliability_one_administration_per_client_by_default():
    df = _repeated()
    table = reliability(df, "wai-sr", missing_codes=(-99, 999), errors="omit")
    assert table.attrs["administration"] == "first"
    # the same numbers as choosing each client's first administered session by hand
    inst = al.get_instrument("wai-sr")
    v = df[list(inst.columns)].replace([-99, 999], np.nan)
    bad = (v.notna() & ((v < 1) | (v > 5) | (v != v.round()))).any(axis=1)
    ok = v.notna().any(axis=1) & ~bad
    first_session = df[ok].groupby("client_id")["session"].transform("min")
    rows = df[ok][df[ok]["session"] == first_session]
    assert rows["client_id"].is_unique
    by_hand = reliability(rows, "wai-sr", administration="all", missing_codes=(-99, 999))
    pd.testing.assert_series_equal(table["alpha"], by_hand["alpha"])
    assert table.loc[0, "n"] <= rows["client_id"].nunique()
    pooled = reliability(
        df, "wai-sr", administration="all", missing_codes=(-99, 999), errors="omit"
    )
    assert pooled.loc[0, "n"] > 2 * table.loc[0, "n"]  # pooling counts clients many times
    # the first session is the first at which the alliance was given, not intake session 0
    assert (rows["session"] >= 1).all()


def test_reliability_fixed_session_and_errors():
    df = _repeated()
    s2 = reliability(df, "wai-sr", administration=2, missing_codes=(-99, 999), errors="omit")
    manual = reliability(
        df[df["session"] == 2],
        "wai-sr",
        administration="all",
        missing_codes=(-99, 999),
        errors="omit",
    )
    pd.testing.assert_series_equal(s2["alpha"], manual["alpha"])
    with pytest.raises(ReliabilityError, match="administration='all'") as exc:
        reliability(SCALE_ITEMS, _tst_instrument())
    assert exc.value.column == "client_id"
    with pytest.raises(ReliabilityError, match="administration must be"):
        reliability(df, "wai-sr", administration="last", errors="omit")
    both = pd.concat([WAI_FIRST.assign(rater="client"), WAI_FIRST.assign(rater="therapist")])
    with pytest.raises(ReliabilityError, match="by='rater'"):
        reliability(both.reset_index(drop=True), "wai-sr")
    both = both.reset_index(drop=True)
    per_rater = reliability(both, "wai-sr", by="rater")
    assert set(per_rater["rater"]) == {"client", "therapist"}
    kept = reliability(both, "wai-sr", errors="omit")  # keeps the first row of each client
    assert kept.attrs["n_duplicates"] == len(WAI_FIRST)


def test_omega_hierarchical_matches_psych_omega():
    ref = RREF["omega_wai_first"]
    assert RREF["versions"]["psych"] == "2.2.9" and RREF["versions"]["GPArotation"] == "2022.10.2"
    # R: psych::omega(x, nfactors = 3, fm = "ml")
    res = omega_hierarchical(WAI_FIRST[WAI_ITEMS], 3)
    assert res.converged and res.n == ref["n"]
    assert res.omega_h == pytest.approx(ref["omega_h"], abs=SL_TOL)
    assert res.omega_total == pytest.approx(ref["omega_total"], abs=SL_TOL)
    assert_allclose(res.loadings["g"], ref["g"], atol=1e-4)
    assert_allclose(res.loadings["h2"], ref["h2"], atol=1e-4)
    assert_allclose(res.omega_group["total"], ref["omega_group_total"], atol=SL_TOL)
    assert_allclose(res.omega_group["general"], ref["omega_group_general"], atol=SL_TOL)
    assert_allclose(res.omega_group["group"].iloc[1:], ref["omega_group_group"][1:], atol=SL_TOL)
    # the reliability table reports it for the (multidimensional) WAI-SR total
    table = reliability(WAI_FIRST, "wai-sr").set_index("scale")
    assert table.loc["total", "omega_h"] == pytest.approx(ref["omega_h"], abs=SL_TOL)
    assert table.loc["total", "omega"] == pytest.approx(ref["omega_total"], abs=SL_TOL)
    assert "3 group factors" in table.loc["total", "omega_model"]
    assert table.loc[["goal", "task", "bond"], "omega_model"].str.startswith("one factor").all()
    # the one-factor omega of the total is not reported: it would differ
    one_factor = omega(WAI_FIRST[WAI_ITEMS]).omega
    assert abs(one_factor - table.loc["total", "omega"]) > 1e-3


def test_omega_hierarchical_two_factors_equal_option():
    ref = RREF["omega_scale_items"]
    keyed = SCALE_ITEMS.copy()
    keyed[["tst_2", "tst_7"]] = 4 - keyed[["tst_2", "tst_7"]]
    res = omega_hierarchical(keyed.dropna(), 2)
    # R: psych::omega(x, nfactors = 2, fm = "ml")  (option = "equal")
    assert res.omega_h == pytest.approx(ref["omega_h"], abs=SL_TOL)
    assert res.omega_total == pytest.approx(ref["omega_total"], abs=SL_TOL)
    with pytest.raises(ReliabilityError, match="n_factors"):
        omega_hierarchical(keyed.dropna(), 1)


def test_omega_hierarchical_recovers_bifactor_truth():
    rng = np.random.default_rng(11)
    n, g_load, s_load = 4000, 0.6, 0.5
    g = rng.normal(size=(n, 1))
    blocks = [
        g_load * g + s_load * rng.normal(size=(n, 1)) + 0.6 * rng.normal(size=(n, 4))
        for _ in range(3)
    ]
    x = np.hstack(blocks)
    var = g_load**2 + s_load**2 + 0.36
    lg = g_load / np.sqrt(var)
    ls = s_load / np.sqrt(var)
    vt = (12 * lg) ** 2 + 3 * (4 * ls) ** 2 + 12 * (1 - lg**2 - ls**2)
    res = omega_hierarchical(x, 3)
    assert res.omega_h == pytest.approx((12 * lg) ** 2 / vt, abs=0.02)
    assert res.omega_total == pytest.approx(1 - 12 * (1 - lg**2 - ls**2) / vt, abs=0.01)


@pytest.mark.parametrize("scale", ["total", "task", "bond", "goal"])
def test_multilevel_omega_matches_lavaan(scale):
    ref = RREF["two_level"][scale]
    assert RREF["versions"]["lavaan"] == "0.6.14"
    # R: lavaan::sem("level: 1 fw =~ ... level: 2 fb =~ ...", cluster = "client_id", std.lv = TRUE)
    res = multilevel_omega(WAI_TWO_LEVEL[ref["items"]], WAI_TWO_LEVEL["client_id"])
    assert res.converged and not res.heywood
    assert (res.n, res.n_clients) == (ref["n"], ref["n_clients"])
    assert res.loglik == pytest.approx(ref["loglik"], abs=ML_LOGLIK_TOL)
    assert res.omega_within == pytest.approx(ref["omega_within"], abs=ML_OMEGA_TOL)
    assert res.omega_between == pytest.approx(ref["omega_between"], abs=ML_OMEGA_TOL)
    assert_allclose(res.loadings_within, ref["loadings_within"], atol=ML_LOADING_TOL)
    assert_allclose(res.loadings_between, ref["loadings_between"], atol=ML_LOADING_TOL)
    assert_allclose(res.residuals_within, ref["residuals_within"], atol=ML_LOADING_TOL)
    assert_allclose(res.residuals_between, ref["residuals_between"], atol=ML_LOADING_TOL)


def test_multilevel_reliability_table():
    df = _repeated(seed=8)
    table = multilevel_reliability(df, "wai-sr", missing_codes=(-99, 999), errors="omit")
    table = table.set_index("scale")
    assert list(table.index) == ["total", "goal", "task", "bond"]
    inst = al.get_instrument("wai-sr")
    v = df[list(inst.columns)].replace([-99, 999], np.nan)
    bad = (v.notna() & ((v < 1) | (v > 5) | (v != v.round()))).any(axis=1)
    cols = list(inst.item_columns("task"))
    direct = multilevel_omega(v.loc[~bad, cols], df.loc[~bad, "client_id"])
    assert table.loc["task", "omega_within"] == pytest.approx(direct.omega_within, abs=1e-12)
    assert table.loc["task", "omega_between"] == pytest.approx(direct.omega_between, abs=1e-12)
    assert table.loc["task", "n"] == direct.n
    assert "subscales" in table.loc["total", "note"]
    with pytest.raises(ReliabilityError, match="client"):
        multilevel_reliability(df.drop(columns="client_id"), "wai-sr")


def test_multilevel_omega_recovers_truth():
    rng = np.random.default_rng(21)
    n_clients, p = 400, 5
    client = np.repeat(np.arange(n_clients), 6)
    lb, sb, lw, sw = 0.5, 0.25, 0.6, 0.5
    x = (
        lb * rng.normal(size=(n_clients, 1))[client]
        + sb * rng.normal(size=(n_clients, p))[client]
        + lw * rng.normal(size=(client.size, 1))
        + sw * rng.normal(size=(client.size, p))
    )
    res = multilevel_omega(x, client)
    true_w = (p * lw) ** 2 / ((p * lw) ** 2 + p * sw**2)
    true_b = (p * lb) ** 2 / ((p * lb) ** 2 + p * sb**2)
    assert res.omega_within == pytest.approx(true_w, abs=0.02)
    assert res.omega_between == pytest.approx(true_b, abs=0.03)
