"""Tests for alliance_lib.trajectories against lme4 1.1-31 / lmerTest 3.1-3 (R 4.2.2).

Reference values: tests/reference/lme4_trajectories.R -> fixtures/lme4_trajectories.json (data
from tests/reference/make_trajectory_data.py and lme4's sleepstudy). Tolerances (issue 4): fixed
effects 1e-5 relative, SEs 1e-3 relative, sdcor 1e-3 absolute, logLik 1e-3 absolute,
Satterthwaite df and p 1e-3 relative.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alliance_lib.errors import MissingColumnsError
from alliance_lib.trajectories import (
    ICC_DELTA_MIN_CLIENTS,
    ModelError,
    compare_trajectories,
    fit_mixed,
    fit_trajectory,
)

FIX = Path(__file__).parent / "reference" / "fixtures"
REF = json.loads((FIX / "lme4_trajectories.json").read_text())["models"]
ANOVA = json.loads((FIX / "lme4_trajectories.json").read_text())["anova"]


def _data(name: str) -> pd.DataFrame:
    df = pd.read_csv(FIX / f"{name}.csv", dtype={"client_id": str, "therapist_id": str})
    if name == "sleepstudy":
        df["Subject"] = df["Subject"].astype(str)
    return df


SLEEP = _data("sleepstudy")
THREE = _data("traj_three_level")
DROP = _data("traj_dropout")
BOUND = _data("traj_boundary")

LME4_TERM = {
    "Intercept": "(Intercept)",
    "session^2": "I(session^2)",
    "log(session)": "log(session)",
    "session_to_4": "t1",
    "session_after_4": "t2",
}


def _fits():
    # the lme4 references (lme4_trajectories.R) use uncentred session: time_zero=0
    sleep = {"client": "Subject"}
    three = {"therapist": "therapist_id"}
    return {
        "sleep_reml": lambda: fit_mixed(SLEEP, "Reaction", ["Days"], random=["Days"], **sleep),
        "sleep_ml": lambda: fit_mixed(
            SLEEP, "Reaction", ["Days"], random=["Days"], method="ml", **sleep
        ),
        "three_reml": lambda: fit_trajectory(THREE, "wai", time_zero=0, **three),
        "three_ml": lambda: fit_trajectory(THREE, "wai", time_zero=0, method="ml", **three),
        "three_cov": lambda: fit_trajectory(
            THREE,
            "wai",
            time_zero=0,
            covariates=["experience", "ipp", ("experience", "ipp")],
            **three,
        ),
        "linear": lambda: fit_trajectory(THREE, "wai", time_zero=0),
        "quadratic": lambda: fit_trajectory(THREE, "wai", time_zero=0, shape="quadratic"),
        "log": lambda: fit_trajectory(THREE, "wai", time_zero=1, shape="log"),  # log(1) = 0
        "piecewise": lambda: fit_trajectory(THREE, "wai", time_zero=0, shape="piecewise", knot=4),
        "dropout": lambda: fit_trajectory(DROP, "wai", time_zero=0),
        "boundary": lambda: fit_trajectory(BOUND, "wai", time_zero=0),
    }


FITS = _fits()
_CACHE: dict = {}


def get_fit(name):
    if name not in _CACHE:
        _CACHE[name] = FITS[name]()
    return _CACHE[name]


def _ours_fixed(fit) -> pd.DataFrame:
    f = fit.fixed.copy()
    f.index = [LME4_TERM.get(t, t) for t in f.index]
    return f


def _key(grp, v1, v2):
    def norm(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return {"session_to_4": "t1", "session_after_4": "t2"}.get(v, v)

    return (grp, norm(v1), norm(v2))


@pytest.mark.parametrize("name", list(FITS))
def test_fixed_effects_and_se_match_lme4(name):
    # R: summary(lmer(...))$coefficients (lmerTest)
    ref = pd.DataFrame(REF[name]["fixed"]).set_index("term")
    ours = _ours_fixed(get_fit(name))
    assert set(ours.index) == set(ref.index)
    ours = ours.loc[ref.index]
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=1e-5)
    np.testing.assert_allclose(ours["se"], ref["se"], rtol=1e-3)


@pytest.mark.parametrize("name", list(FITS))
def test_variance_components_loglik_singular_match_lme4(name):
    # R: as.data.frame(VarCorr(m)); logLik(m); isSingular(m)
    ref = REF[name]
    fit = get_fit(name)
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    assert fit.aic == pytest.approx(ref["aic"], abs=2e-3)
    assert fit.bic == pytest.approx(ref["bic"], abs=2e-3)
    assert fit.nobs == ref["nobs"]
    assert fit.singular is bool(ref["singular"])
    ref_rand = {_key(r["grp"], r.get("var1"), r.get("var2")): r["sdcor"] for r in ref["random"]}
    ours = {_key(r.grp, r.var1, r.var2): r.sdcor for r in fit.random.itertuples(index=False)}
    assert set(ours) == set(ref_rand)
    for k, v in ref_rand.items():
        if v is None:  # correlation undefined at a zero variance
            assert not np.isfinite(ours[k]) or abs(ours[k]) <= 1
            continue
        assert ours[k] == pytest.approx(v, abs=1e-3), k


NONSINGULAR = [n for n in FITS if not REF[n]["singular"]]


@pytest.mark.parametrize("name", NONSINGULAR)
def test_satterthwaite_df_and_p_match_lmertest(name):
    # R: lmerTest summary()$coefficients[, c("df", "Pr(>|t|)")]
    ref = pd.DataFrame(REF[name]["fixed"]).set_index("term")
    ours = _ours_fixed(get_fit(name)).loc[ref.index]
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-3)
    np.testing.assert_allclose(ours["t"], ref["t"], rtol=1e-3)
    # p within 1e-3 relative; below 1e-12 p is so sensitive to t (d log p / d t ~ t) that the
    # 1e-5 differences in t between lme4 and us dominate, so compare log10 p there instead.
    big = ref["p"].to_numpy() > 1e-12
    np.testing.assert_allclose(ours["p"].to_numpy()[big], ref["p"].to_numpy()[big], rtol=1e-3)
    np.testing.assert_allclose(
        np.log10(ours["p"].to_numpy()[~big]), np.log10(ref["p"].to_numpy()[~big]), rtol=1e-3
    )


@pytest.mark.parametrize(
    ("name", "client", "therapist"),
    [
        ("sleep_reml", "Subject", None),
        ("sleep_ml", "Subject", None),
        ("three_reml", "client_id", "therapist_id"),
    ],
)
def test_empirical_bayes_effects_match_lme4_ranef(name, client, therapist):
    # R: as.data.frame(ranef(m, condVar = TRUE)) -> condval, condsd
    ref = pd.DataFrame(REF[name]["ranef"])
    fit = get_fit(name)
    ours = fit.client_effects()
    rc = ref[ref["grp"] == client]
    for term in rc["term"].unique():
        col = "Intercept" if term == "(Intercept)" else term
        r = rc[rc["term"] == term].set_index("level")
        o = ours.loc[r.index.astype(str)]
        scale = np.abs(r["condval"]).max()
        np.testing.assert_allclose(o[col], r["condval"], atol=1e-4 * scale)
        np.testing.assert_allclose(o[f"{col}_sd"], r["condsd"], rtol=2e-3)
    if therapist:
        rt = ref[ref["grp"] == therapist].set_index("level")
        ot = fit.client_effects("therapist").loc[rt.index.astype(str)]
        scale = np.abs(rt["condval"]).max()
        np.testing.assert_allclose(ot["Intercept"], rt["condval"], atol=1e-4 * scale)
        np.testing.assert_allclose(ot["Intercept_sd"], rt["condsd"], rtol=2e-3)


def test_compare_trajectories_matches_lme4_anova():
    # R: anova(lmer(linear), lmer(quadratic)) -- both refitted with ML
    ref = pd.DataFrame(ANOVA).set_index("model")
    out = compare_trajectories([get_fit("linear"), get_fit("quadratic")])
    assert list(out.index) == ["linear", "quadratic"]
    np.testing.assert_array_equal(out["npar"], ref["npar"])
    np.testing.assert_allclose(out["loglik"], ref["loglik"], atol=1e-3)
    np.testing.assert_allclose(out["aic"], ref["aic"], atol=2e-3)
    np.testing.assert_allclose(out["bic"], ref["bic"], atol=2e-3)
    assert out.loc["quadratic", "chisq"] == pytest.approx(ref.loc["quadratic", "chisq"], abs=2e-3)
    assert out.loc["quadratic", "df"] == 1
    assert out.loc["quadratic", "p"] == pytest.approx(ref.loc["quadratic", "p"], rel=1e-3)
    assert np.isnan(out.loc["linear", "p"])


def test_compare_trajectories_tests_only_nested_models():
    # npar: intercept-only random part 4, log 6, linear 6, quadratic 7, piecewise 10
    fits = {
        "log": get_fit("log"),
        "ri": fit_trajectory(THREE, "wai", random_slope=False),
        "linear": get_fit("linear"),
        "quadratic": get_fit("quadratic"),
        "piecewise": get_fit("piecewise"),
    }
    out = compare_trajectories(fits)
    assert list(out.index) == ["ri", "log", "linear", "quadratic", "piecewise"]
    assert list(out["npar"]) == [4, 6, 6, 7, 10]
    # log(session) is not nested in the random-intercept linear model (nor in any other)
    for name in ("ri", "log", "piecewise"):
        assert pd.isna(out.loc[name, "tested_against"]), name
        assert out.loc[name, ["chisq", "df", "p"]].isna().all(), name
    # linear is tested against ri (skipping the non-nested log), quadratic against linear
    assert out.loc["linear", "tested_against"] == "ri"
    assert out.loc["quadratic", "tested_against"] == "linear"
    ll_ri = fit_trajectory(THREE, "wai", random_slope=False, method="ml").loglik
    ll_lin = fit_trajectory(THREE, "wai", method="ml").loglik
    chisq = 2 * (ll_lin - ll_ri)
    assert out.loc["linear", "chisq"] == pytest.approx(chisq, rel=1e-9)
    assert out.loc["linear", "df"] == 2
    assert out.loc["linear", "p"] == pytest.approx(stats.chi2.sf(chisq, 2), rel=1e-9)
    # the lme4 anova() numbers hold inside the larger table
    ref = pd.DataFrame(ANOVA).set_index("model")
    assert out.loc["quadratic", "chisq"] == pytest.approx(ref.loc["quadratic", "chisq"], abs=2e-3)
    assert out.loc["quadratic", "p"] == pytest.approx(ref.loc["quadratic", "p"], rel=1e-3)
    # a therapist intercept added to the same client model is nested; the reverse is not
    ther = compare_trajectories({"three": get_fit("three_reml"), "log": get_fit("log")})
    assert list(ther.index) == ["log", "three"] and ther["tested_against"].isna().all()
    both = compare_trajectories({"linear": get_fit("linear"), "three": get_fit("three_reml")})
    assert both.loc["three", "tested_against"] == "linear"
    assert both.loc["three", "df"] == 1


def test_compare_trajectories_rejects_different_rows():
    a = get_fit("linear")
    b = fit_trajectory(THREE[THREE["session"] > 1], "wai")
    with pytest.raises(ModelError, match="different rows"):
        compare_trajectories({"a": a, "b": b})


def test_statsmodels_engine_agrees_on_two_level_model():
    # Cross-check: statsmodels MixedLM's own estimates against the profiled engine.
    ours = get_fit("sleep_reml")
    sm = fit_mixed(
        SLEEP, "Reaction", ["Days"], client="Subject", random=["Days"], engine="statsmodels"
    )
    assert sm.engine == "statsmodels"
    np.testing.assert_allclose(sm.raw.fe_params, ours.fixed["estimate"], rtol=1e-5)
    np.testing.assert_allclose(sm.raw.bse_fe, ours.fixed["se"], rtol=1e-3)
    assert sm.raw.llf == pytest.approx(ours.loglik, abs=1e-3)
    np.testing.assert_allclose(sm.random["sdcor"], ours.random["sdcor"], atol=1e-3)
    with pytest.raises(ModelError, match="therapist"):
        fit_trajectory(THREE, "wai", therapist="therapist_id", engine="statsmodels")


def test_dropout_rows_with_missing_score_are_dropped_and_counted():
    fit = get_fit("dropout")
    n_missing = int(DROP["wai"].isna().sum())
    assert n_missing > 0
    assert fit.n_dropped["outcome"] == n_missing
    assert fit.nobs == len(DROP) - n_missing
    assert fit.n_clients == DROP.loc[DROP["wai"].notna(), "client_id"].nunique()


def test_boundary_fit_is_flagged_singular_with_captured_warning():
    fit = get_fit("boundary")
    assert fit.singular
    assert fit.theta[2] < 1e-4  # slope diagonal of the relative Cholesky factor
    assert any("singular" in w for w in fit.warnings)


def test_no_warning_reaches_the_caller(recwarn):
    for fit in (
        fit_trajectory(BOUND, "wai"),
        fit_trajectory(THREE, "wai", shape="piecewise", knot=4, therapist="therapist_id"),
        fit_mixed(
            SLEEP, "Reaction", ["Days"], client="Subject", random=["Days"], engine="statsmodels"
        ),
    ):
        fit.client_effects()
        fit.summary()
        fit.to_dict()
        fit.icc()
    get_fit("boundary").predict()
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]


def test_log_shape_needs_sessions_of_at_least_one():
    assert DROP["session"].min() == 0
    with pytest.raises(ModelError, match=r"pass offset=1 to model log\(session \+ 1\)") as err:
        fit_trajectory(DROP, "wai", shape="log")
    assert err.value.column == "session"
    assert err.value.value == 0
    with pytest.raises(ModelError, match=r"session \+ offset must be > 0 \(offset=-0.5\)"):
        fit_trajectory(DROP, "wai", shape="log", offset=-0.5)
    fit = fit_trajectory(DROP, "wai", shape="log", offset=1)
    assert "log(session + 1)" in fit.fixed.index


def test_piecewise_needs_a_knot_inside_the_range():
    with pytest.raises(ModelError, match="knot"):
        fit_trajectory(THREE, "wai", shape="piecewise")
    with pytest.raises(ModelError, match="inside"):
        fit_trajectory(THREE, "wai", shape="piecewise", knot=12)


def test_bad_input_errors_name_the_column():
    with pytest.raises(MissingColumnsError, match="'nope'|nope \\(score\\)"):
        fit_trajectory(THREE, "nope")
    as_text = THREE.assign(ipp=THREE["ipp"].astype(str))  # numbers stored as text: accepted
    same = fit_trajectory(as_text, "wai", covariates=["ipp"])
    pd.testing.assert_frame_equal(
        same.fixed, fit_trajectory(THREE, "wai", covariates=["ipp"]).fixed
    )
    bad = as_text.copy()
    bad.loc[bad.index[3], "ipp"] = "n/a"
    with pytest.raises(ModelError, match="'ipp', row .*: value 'n/a': not a number") as err:
        fit_trajectory(bad, "wai", covariates=["ipp"])
    assert err.value.column == "ipp" and err.value.row == bad.index[3]
    crossed = THREE.copy()
    crossed.loc[crossed.index[0], "therapist_id"] = "T29"
    with pytest.raises(ModelError, match="nested") as err:
        fit_trajectory(crossed, "wai", therapist="therapist_id")
    assert err.value.value == "C000"
    with pytest.raises(ModelError, match="shape"):
        fit_trajectory(THREE, "wai", shape="cubic")


def test_predict_is_the_fixed_part_with_a_delta_method_band():
    fit = get_fit("three_cov")
    pred = fit.predict(sessions=[1, 6], covariates={"experience": 10.0, "ipp": -1.0})
    b = fit.fixed["estimate"]
    # hand-built design row for session 6, experience 10, ipp -1
    x = pd.Series(
        {
            "Intercept": 1,
            "session": 6,
            "experience": 10,
            "ipp": -1,
            "session:experience": 60,
            "session:ipp": -6,
            "experience:ipp": -10,
        }
    )[b.index]
    assert pred["estimate"].iloc[1] == pytest.approx(float(x @ b), rel=1e-12)
    V = fit._efit.vcov
    se = math.sqrt(float(x.to_numpy() @ V @ x.to_numpy()))
    assert pred["se"].iloc[1] == pytest.approx(se, rel=1e-12)
    assert pred["ci_high"].iloc[1] - pred["estimate"].iloc[1] == pytest.approx(
        1.959964 * se, rel=1e-6
    )
    default = get_fit("three_reml").predict()
    assert list(default["session"]) == list(range(1, 13))


def test_icc_uses_the_variance_components():
    fit = get_fit("three_reml")
    r = fit.random.set_index(["grp", "var1"])
    tc = r.loc[("client_id", "(Intercept)"), "vcov"].iloc[0]
    tt = r.loc[("therapist_id", "(Intercept)"), "vcov"]
    s2 = fit.sigma**2
    icc = fit.icc()
    assert icc["client"] == pytest.approx(tc / (tc + tt + s2), rel=1e-12)
    assert icc["therapist"] == pytest.approx(tt / (tc + tt + s2), rel=1e-12)


def test_to_dict_is_json_ready_without_nan():
    fit = get_fit("boundary")  # has an undefined correlation
    d = fit.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["singular"] is True
    assert d["fixed"][0]["term"] == "Intercept"


def test_summary_prints_like_lme4():
    text = str(get_fit("sleep_reml").summary())
    assert "REML criterion at convergence: 1743.6" in text
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert "Scaled residuals:" in text and "-3.9536" in text  # lme4: Min -3.9536
    assert "(Intercept)" in text and "Days" in text


@pytest.mark.slow
def test_simulation_recovery_slope_ci_coverage():
    # 200 simulated three-level data sets with known slope 0.03: the 95 % CI (Satterthwaite t)
    # of the fixed slope should cover the truth in 91-98 % of them.
    from alliance_lib.simulate import simulate_study

    truth = None
    covered = []
    for seed in range(200):
        df = simulate_study(
            n_therapists=8, n_clients=60, max_sessions=10, seed=1000 + seed, output="scores"
        )
        truth = df.attrs["truth"]["alliance_slope"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit = fit_trajectory(df, "alliance", therapist="therapist_id")
        lo, hi = fit.fixed.loc["session", ["ci_low", "ci_high"]]
        covered.append(lo <= truth <= hi)
    coverage = float(np.mean(covered))
    assert 0.91 <= coverage <= 0.98, f"coverage {coverage:.3f}"


# --------------------------------------------------------------------------------------------
# issue 13 items 4 and 5: time zero, one ICC definition, ICC intervals, few therapists


def _with_intake(df: pd.DataFrame) -> pd.DataFrame:
    """Add an intake row (session 0) per client where the score is not measured."""
    intake = df.drop_duplicates("client_id").assign(session=0, wai=np.nan)
    return pd.concat([intake, df], ignore_index=True)


def test_time_zero_defaults_to_the_first_observed_session():
    data = _with_intake(THREE)
    fit = fit_trajectory(data, "wai", therapist="therapist_id")
    assert fit.time_zero == 1.0  # not the intake session 0, where wai is never observed
    assert fit.to_dict()["time_zero"] == 1.0
    raw = get_fit("three_reml")  # the same model with time_zero=0 (lme4's uncentred fit)
    # centring reparametrises: same likelihood and slope, intercept = the curve at session 1
    assert fit.loglik == pytest.approx(raw.loglik, abs=1e-6)
    assert fit.fixed.loc["session", "estimate"] == pytest.approx(
        raw.fixed.loc["session", "estimate"], rel=1e-6
    )
    at_one = raw.predict(sessions=[1.0])
    assert fit.fixed.loc["Intercept", "estimate"] == pytest.approx(
        at_one["estimate"].iloc[0], rel=1e-6
    )
    assert fit.fixed.loc["Intercept", "se"] == pytest.approx(at_one["se"].iloc[0], rel=1e-4)
    # one ICC definition: at time zero; the same number from the uncentred fit at session 1
    assert fit.icc()["client"] == pytest.approx(raw.icc(at={"session": 1})["client"], rel=1e-5)
    assert raw.icc()["client"] != pytest.approx(fit.icc()["client"], rel=1e-3)
    # predictions take raw sessions whatever the centring
    pd.testing.assert_frame_equal(
        fit.predict(sessions=[1, 5, 12]), raw.predict(sessions=[1, 5, 12]), rtol=1e-5
    )


@pytest.mark.parametrize(
    "shape,kw", [("quadratic", {}), ("piecewise", {"knot": 4}), ("log", {"offset": 1.0})]
)
def test_time_zero_centring_for_every_shape(shape, kw):
    a = fit_trajectory(THREE, "wai", shape=shape, time_zero=0, **kw)
    b = fit_trajectory(THREE, "wai", shape=shape, time_zero=3, **kw)
    assert b.time_zero == 3.0
    assert b.loglik == pytest.approx(a.loglik, abs=1e-5)
    assert b.fixed.loc["Intercept", "estimate"] == pytest.approx(
        a.predict(sessions=[3.0])["estimate"].iloc[0], rel=1e-5
    )
    assert b.icc()["client"] == pytest.approx(a.icc(at={"session": 3})["client"], rel=1e-4)


def test_time_zero_errors():
    with pytest.raises(ModelError, match="time_zero"):
        fit_trajectory(THREE, "wai", time_zero="intake")
    with pytest.raises(ModelError, match="time_zero"):
        fit_trajectory(DROP, "wai", shape="log", offset=1, time_zero=-1)


def test_icc_interval_is_a_seeded_parametric_bootstrap():
    fit = get_fit("three_reml")
    res = fit.icc(ci=0.9, n_boot=60, seed=3)
    for level in ("client", "therapist"):
        assert res[f"{level}_ci_low"] < res[level] < res[f"{level}_ci_high"]
    assert res["n_boot"] == 60
    assert fit.icc(ci=0.9, n_boot=60, seed=3) == res  # reproducible
    assert fit.icc(ci=0.9, n_boot=60, seed=4) != res
    boot = fit.icc_bootstrap(n_boot=60, seed=3)
    assert list(boot.columns) == ["client", "therapist", "converged"] and boot["converged"].all()
    assert res["client_ci_low"] == pytest.approx(boot["client"].quantile(0.05))
    table = fit.icc_table(ci=0.9, n_boot=60, seed=3)
    assert list(table.index) == ["client", "therapist"]
    assert table.loc["client", "ci_low"] == res["client_ci_low"]
    assert table.attrs["method"].startswith("parametric bootstrap")
    assert table.loc["therapist", "n_groups"] == fit.n_therapists


def test_few_therapists_flag_the_therapist_variance():
    from alliance_lib.simulate import simulate_study

    few = simulate_study(n_therapists=6, n_clients=48, max_sessions=5, seed=9, output="scores")
    fit = fit_trajectory(few, "alliance", therapist="therapist_id")
    assert fit.n_therapists == 6 and fit.therapist_imprecise
    assert any("therapist variance and ICC are imprecise" in w for w in fit.warnings)
    table = fit.icc_table(n_boot=20, seed=1)
    assert (
        bool(table.loc["therapist", "imprecise"])
        and "6 therapists" in table.loc["therapist", "note"]
    )
    assert not table.loc["client", "imprecise"]
    assert fit.to_dict()["therapist_imprecise"] is True
    many = get_fit("three_reml")  # 30 therapists
    assert many.n_therapists >= 15 and not many.therapist_imprecise
    assert not get_fit("linear").therapist_imprecise  # no therapist level


@pytest.mark.slow
def test_icc_interval_coverage_by_simulation():
    # 40 data sets (60 clients x 5 sessions, random intercept, true ICC 0.4): the 90 % parametric
    # bootstrap interval (99 replicates) should cover the true ICC in about 90 % of them; with 40
    # data sets the binomial SE is ~0.05, so accept 0.75-1.
    rng = np.random.default_rng(2026)
    client = np.repeat(np.arange(60), 5)
    session = np.tile(np.arange(1.0, 6.0), 60)
    covered = []
    for _ in range(40):
        y = 3 + 0.05 * session + rng.normal(0, math.sqrt(0.4), 60)[client]
        y = y + rng.normal(0, math.sqrt(0.6), client.size)
        df = pd.DataFrame({"client_id": client.astype(str), "session": session, "wai": y})
        fit = fit_trajectory(df, "wai", random_slope=False)
        res = fit.icc(ci=0.9, n_boot=99, seed=int(rng.integers(1 << 31)))
        covered.append(res["client_ci_low"] <= 0.4 <= res["client_ci_high"])
    coverage = float(np.mean(covered))
    assert 0.75 <= coverage <= 1.0, coverage


def test_icc_delta_interval_and_the_auto_rule():
    fit = get_fit("three_reml")
    res = fit.icc(ci=0.9, interval="delta")
    assert res["interval"] == "delta" and res["n_boot"] == 0
    for level in ("client", "therapist"):
        assert 0 < res[f"{level}_ci_low"] < res[level] < res[f"{level}_ci_high"] < 1
        assert res[f"{level}_se"] > 0
    # on the logit scale the interval is symmetric around the estimate
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    c = res["client"]
    assert logit(c) - logit(res["client_ci_low"]) == pytest.approx(
        logit(res["client_ci_high"]) - logit(c), rel=1e-9
    )
    # a wider level gives a wider interval, by the normal quantiles
    wide = fit.icc(ci=0.99, interval="delta")
    ratio = (logit(wide["client_ci_high"]) - logit(c)) / (logit(res["client_ci_high"]) - logit(c))
    assert ratio == pytest.approx(stats.norm.ppf(0.995) / stats.norm.ppf(0.95), rel=1e-9)
    # "auto" keeps the bootstrap below ICC_DELTA_MIN_CLIENTS clients
    assert fit.n_clients < ICC_DELTA_MIN_CLIENTS
    auto = fit.icc(ci=0.9, n_boot=30, seed=3, interval="auto")
    assert auto["interval"] == "bootstrap" and auto == fit.icc(ci=0.9, n_boot=30, seed=3)
    table = fit.icc_table(ci=0.9, interval="delta")
    assert table.attrs["interval"] == "delta" and table.attrs["method"].startswith("delta")
    with pytest.raises(ValueError, match="interval"):
        fit.icc(ci=0.9, interval="wald")


def test_icc_delta_falls_back_to_the_bootstrap_at_a_zero_variance():
    rng = np.random.default_rng(5)
    client = np.repeat(np.arange(80), 4)
    df = pd.DataFrame(
        {
            "client_id": client.astype(str),
            "session": np.tile(np.arange(1.0, 5.0), 80),
            "wai": rng.normal(4, 1, client.size),
        }
    )
    # every client's mean equal: the client variance estimate is 0 (a boundary fit)
    df["wai"] += 4 - df.groupby("client_id")["wai"].transform("mean")
    fit = fit_trajectory(df, "wai", random_slope=False)
    assert fit.icc()["client"] < 1e-6
    assert fit.icc_delta(ci=0.95) is None
    res = fit.icc(ci=0.95, n_boot=20, seed=1, interval="delta")
    assert res["interval"] == "bootstrap" and res["n_boot"] == 20


@pytest.mark.slow
def test_icc_delta_interval_agrees_with_the_parametric_bootstrap_in_a_large_study():
    from alliance_lib.simulate import simulate_study

    d = simulate_study(n_clients=ICC_DELTA_MIN_CLIENTS, n_therapists=200, seed=2, output="scores")
    fit = fit_trajectory(d, "alliance", therapist="therapist_id")
    delta = fit.icc(ci=0.95, interval="auto")
    assert delta["interval"] == "delta"
    boot = fit.icc(ci=0.95, n_boot=200, seed=1)
    for level in ("client", "therapist"):
        width = boot[f"{level}_ci_high"] - boot[f"{level}_ci_low"]
        # the bootstrap's own Monte Carlo error of a 2.5 % quantile at 200 replicates is about
        # 10 % of the interval's width: accept endpoints within 20 % of it
        for end in ("ci_low", "ci_high"):
            assert abs(delta[f"{level}_{end}"] - boot[f"{level}_{end}"]) < 0.2 * width, level


def test_study_analysis_option_time_zero(tmp_path):
    from alliance_lib.study import StudyError, load_study

    def study(extra: str):
        path = tmp_path / "study.yaml"
        path.write_text(
            "study: T\ndata: {1: w1.csv}\ninstruments: {alliance: wai-sr}\n" + extra,
            encoding="utf-8",
        )
        return load_study(path, check_files=False)

    assert study("").analysis["time_zero"] is None
    assert study("analysis: {time_zero: 2}\n").analysis["time_zero"] == 2
    with pytest.raises(StudyError, match="analysis.time_zero"):
        study("analysis: {time_zero: -1}\n")
