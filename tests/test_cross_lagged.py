"""fit_cross_lagged against lavaan 0.6-14 (tests/reference/lavaan_cross_lagged.R), API and errors.

Tolerances: estimates within 1e-4 relative to max(|estimate|, SE) (a relative tolerance on
estimates near 0 would test digits nobody reports), SEs within 1e-3 relative, log-likelihood
within 1e-3, chi-square, CFI, TLI, RMSEA (with its 90 % CI) and SRMR within 1e-3.
"""

import dataclasses
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_lib import fit_cross_lagged
from alliance_lib.cross_lagged import EFFECTS, cross_lagged_syntax
from alliance_lib.errors import MissingColumnsError
from alliance_lib.simulate import SimulationTruth, simulate_study
from alliance_lib.trajectories import ModelError

FX = Path(__file__).resolve().parent / "reference" / "fixtures"
REF = json.loads((FX / "lavaan_cross_lagged.json").read_text())
CASES = sorted(REF["fits"])
FIT_KEYS = {
    "chisq": "chisq",
    "df": "df",
    "npar": "npar",
    "cfi": "cfi",
    "tli": "tli",
    "rmsea": "rmsea",
    "rmsea.ci.lower": "rmsea_ci_low",
    "rmsea.ci.upper": "rmsea_ci_high",
    "srmr": "srmr",
    "baseline.chisq": "baseline_chisq",
}


@cache
def _data(name):
    return pd.read_csv(FX / f"cross_lagged_{name}.csv")


@cache
def _fit(case):
    name, m = case.split("/")
    model, _, variant = m.partition("_")
    kw = {"lag": 2} if variant == "lag2" else {"constraints": variant or "lags"}
    return fit_cross_lagged(
        _data(name), "alliance", "outcome", model=model, test_constraints=False, **kw
    )


def _key(lhs, op, rhs):
    return (lhs, op, rhs) if op != "~~" else (min(lhs, rhs), op, max(lhs, rhs))


def test_fixture_records_versions():
    assert REF["versions"]["lavaan"] == "0.6.14"
    assert REF["versions"]["R"].startswith("R version 4.2")


@pytest.mark.parametrize("case", CASES)
def test_estimates_and_ses_match_lavaan(case):
    # R: lavaan::lavaan(..., missing = "ml"); parameterEstimates(fit)
    ref = pd.DataFrame(REF["fits"][case]["parameters"])
    ref = ref[ref["se"] > 0]
    fit = _fit(case)
    assert fit.converged and REF["fits"][case]["converged"]
    mine = fit.parameters[fit.parameters["free"] > 0]
    got = {_key(r.lhs, r.op, r.rhs): (r.estimate, r.se) for r in mine.itertuples()}
    assert len(got) == len(ref)
    est = np.array([got[_key(r.lhs, r.op, r.rhs)][0] for r in ref.itertuples()])
    se = np.array([got[_key(r.lhs, r.op, r.rhs)][1] for r in ref.itertuples()])
    scale = np.maximum(np.abs(ref["est"].to_numpy()), ref["se"].to_numpy())
    assert np.max(np.abs(est - ref["est"].to_numpy()) / scale) < 1e-4
    np.testing.assert_allclose(se, ref["se"].to_numpy(), rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_loglik_and_fit_indices_match_lavaan(case):
    # R: lavaan::fitMeasures(fit)
    ref = REF["fits"][case]["fit"]
    fit = _fit(case)
    assert abs(fit.loglik - ref["logl"]) < 1e-3
    assert abs(fit.fit_indices["loglik_h1"] - ref["unrestricted.logl"]) < 1e-3
    for k_ref, k in FIT_KEYS.items():
        assert abs(fit.fit_indices[k] - ref[k_ref]) < 1e-3 * max(1.0, abs(ref[k_ref]) * 1e-2), k
    assert fit.n_clients == REF["fits"][case]["nobs"]


@pytest.mark.parametrize("model", ["riclpm", "mlsem"])
@pytest.mark.parametrize("name", ["complete", "missing"])
def test_constraint_test_is_the_lavaan_likelihood_ratio(name, model):
    fit = fit_cross_lagged(_data(name), "alliance", "outcome", model=model)
    lags = REF["fits"][f"{name}/{model}"]["fit"]
    free = REF["fits"][f"{name}/{model}_none"]["fit"]
    assert abs(fit.constraint_test["chisq"] - 2 * (free["logl"] - lags["logl"])) < 1e-3
    assert fit.constraint_test["df"] == lags["df"] - free["df"]


def test_effects_layout_and_labels():
    fit = _fit("missing/riclpm")
    assert list(fit.effects.index) == list(EFFECTS)
    assert list(fit.effects.columns) == ["estimate", "se", "ci_low", "ci_high", "p"]
    pe = pd.DataFrame(REF["fits"]["missing/riclpm"]["parameters"])
    beta = pe[pe["label"] == "beta"].iloc[0]
    cay = pe[pe["label"] == "cay"].iloc[0]
    b = fit.effects.loc["alliance -> outcome"]
    assert abs(b["estimate"] - beta["est"]) < 1e-4 * beta["se"] + 1e-6
    assert abs(fit.effects.loc["outcome -> alliance", "estimate"] - cay["est"]) < 1e-6
    assert b["ci_low"] < b["estimate"] < b["ci_high"]
    # ML-SEM has no alliance equation
    assert _fit("missing/mlsem").effects.loc["outcome -> alliance"].isna().all()
    ri = fit.random_intercepts
    r = ri.loc["covariance", "estimate"] / np.sqrt(
        ri.loc["alliance variance", "estimate"] * ri.loc["outcome variance", "estimate"]
    )
    assert abs(ri.loc["correlation", "estimate"] - r) < 1e-12
    lr = fit.long_run
    py = fit.effects.loc["outcome -> outcome", "estimate"]
    assert abs(lr["estimate"] - b["estimate"] / (1 - py)) < 1e-10 and lr["se"] > b["se"]


def test_free_lags_report_the_mean_over_waves():
    fit = _fit("complete/riclpm_none")
    p = fit.parameters
    beta = p[(p["op"] == "~") & p["lhs"].str.startswith("wy") & p["rhs"].str.startswith("wa")]
    assert len(beta) == 7
    assert abs(fit.effects.loc["alliance -> outcome", "estimate"] - beta["estimate"].mean()) < 1e-10


def test_syntax_summary_and_dict():
    fit = _fit("missing/riclpm")
    assert fit.lavaan_syntax == cross_lagged_syntax(8)
    assert "wy2 ~ py*wy1 + beta*wa1" in fit.lavaan_syntax
    text = fit.summary()
    for bit in ("Model Test User Model:", "Regressions:", "(beta)", "Number of missing patterns"):
        assert bit in text
    d = fit.to_dict()
    json.dumps(d)
    assert d["effects"]["alliance -> outcome"]["estimate"] == pytest.approx(
        fit.effects.loc["alliance -> outcome", "estimate"]
    )
    assert "client" not in json.dumps(d).lower() or "clients" in json.dumps(d)


def test_lag2_adds_paths_and_nests_lag1():
    d = _data("complete")
    f1 = _fit("complete/riclpm")
    f2 = fit_cross_lagged(d, "alliance", "outcome", lag=2, test_constraints=False)
    assert f2.loglik >= f1.loglik - 1e-6
    assert (f2.parameters["label"] == "beta2").any()
    assert f2.fit_indices["npar"] == f1.fit_indices["npar"] + 4


def test_listwise_uses_complete_cases_only():
    d = _data("missing")
    fit = fit_cross_lagged(d, "alliance", "outcome", missing="listwise", test_constraints=False)
    assert fit.n_patterns == 1 and fit.n_clients < 300


def test_errors_name_the_problem():
    d = _data("complete")
    with pytest.raises(ModelError, match="model must be"):
        fit_cross_lagged(d, "alliance", "outcome", model="clpm")
    with pytest.raises(MissingColumnsError, match=r"not found: wai \(alliance\)"):
        fit_cross_lagged(d, "wai", "outcome")
    with pytest.raises(ModelError, match="more than one row"):
        fit_cross_lagged(pd.concat([d, d.iloc[:1]]), "alliance", "outcome")
    with pytest.raises(ModelError, match="at least 3 waves"):
        fit_cross_lagged(d[d["session"] <= 2], "alliance", "outcome")


@pytest.mark.slow
def test_recovery_riclpm_inertia_reverse_path_dropout():
    """Monte Carlo: RI-CLPM by FIML recovers the within effect (bias < 5 %, coverage 91-98 %)."""
    truth = SimulationTruth(
        sd_client_slope=0.0,
        sd_outcome_slope=0.0,
        alliance_inertia=0.3,
        outcome_inertia=0.3,
        reverse_change_effect=0.012,
        dropout_alliance=0.0,
        dropout_base=-2.6,
        dropout_outcome=-0.8,
    )
    implied = truth.implied()
    est = {k: [] for k in EFFECTS}
    cover = {k: [] for k in EFFECTS}
    for rep in range(60):
        df = simulate_study(
            n_clients=300, max_sessions=10, output="scores", truth=truth, seed=1000 + rep
        )
        fit = fit_cross_lagged(
            df[df["session"] >= 1], "alliance", "outcome", test_constraints=False
        )
        for k in EFFECTS:
            e = fit.effects.loc[k]
            est[k].append(e["estimate"])
            cover[k].append(e["ci_low"] <= implied[k] <= e["ci_high"])
    beta = np.mean(est["alliance -> outcome"])
    assert abs(beta / implied["alliance -> outcome"] - 1) < 0.05
    assert 0.91 <= np.mean(cover["alliance -> outcome"]) <= 0.98
    for k in EFFECTS:
        assert abs(np.mean(est[k]) - implied[k]) < 0.1 * max(abs(implied[k]), 0.01) + 0.02, k
        assert np.mean(cover[k]) >= 0.85, k


def test_descriptive_multilevel_model_says_what_it_is_and_warns():
    from alliance_lib import fit_alliance_outcome

    d = _data("complete")
    res = fit_alliance_outcome(d, "alliance", "outcome")
    assert res.description.startswith("descriptive multilevel model")
    assert any("lagged outcome" in w and "fit_cross_lagged" in w for w in res.warnings)
    if res.fit.singular:
        assert any("singular" in w for w in res.warnings)
    assert res.to_dict()["warnings"] == res.warnings
    quiet = fit_alliance_outcome(d, "alliance", "outcome", control_prior_outcome=False)
    assert not any("lagged outcome" in w for w in quiet.warnings)


def test_singular_flag_for_a_boundary_fit():
    rng = np.random.default_rng(7)
    # no stable client differences: the random-intercept variances go to the boundary
    n, T = 300, 5
    rows = pd.DataFrame(
        {
            "client_id": np.repeat(np.arange(n), T).astype(str),
            "session": np.tile(np.arange(1, T + 1), n),
            "alliance": rng.normal(size=n * T),
            "outcome": rng.normal(size=n * T),
        }
    )
    fit = fit_cross_lagged(rows, "alliance", "outcome", test_constraints=False)
    ri = fit.random_intercepts
    assert abs(ri.loc["alliance variance", "estimate"]) < 0.05
    if ri.loc[["alliance variance", "outcome variance"], "estimate"].min() <= 0:
        assert fit.singular
    good = _fit("complete/riclpm")
    assert not good.singular
    # the same fit with the alliance random-intercept variance at the boundary
    p = good.parameters.copy()
    p.loc[(p["lhs"] == "RIa") & (p["rhs"] == "RIa"), "estimate"] = 0.0
    assert dataclasses.replace(good, parameters=p).singular
    assert fit.to_dict()["singular"] == fit.singular
