"""Tests for alliance_lib.raters.rater_agreement.

Reference values: R 4.2.2 + psych 2.2.9 via tests/reference/psych_reference.R, saved in
tests/reference/fixtures/psych_reference.json. ICCs are ``psych::ICC(x, lmer=FALSE)`` ICC2
(= ICC(A,1)) and ICC3 (= ICC(C,1)); the Bland-Altman numbers, the per-client slopes (``lm``) and
their correlation (``cor.test``) are computed in base R in the same script.

Tolerances: ICCs 1e-6 and their CIs 1e-4 absolute (as agreed for the project); the Bland-Altman
statistics, slopes and slope correlation are closed-form and compared at 1e-9.

The clustered analysis (the default) is checked against tests/reference/raters_reference.R
(R 4.2.2, lme4 1.1.31): variance components of lmer(score ~ rater + (1 | client_id) +
(1 | client_id:session)) at 1e-5 relative (observed ~1e-7), the ICCs formed from them at 1e-6,
and the Bland & Altman (2007) repeated-measures limits computed by hand in R from a one-way
ANOVA of the differences (lm/anova) at 1e-9.

Issue 16: the default ``path="sums"`` (REML from per-client pair sums, bootstrap replicates as
client weights) is compared with the engine (``path="refit"``, the previous code) on simulated
data (unbalanced, single-pair clients, variances at 0, small and large) and the demo wave: point
fits, ``vcov[1, 1]`` and each of 30 bootstrap replicates at 1e-6 relative.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from alliance_lib.errors import MissingColumnsError
from alliance_lib.raters import RaterAgreement, RaterAgreementError, rater_agreement

FIXTURES = Path(__file__).parent / "reference" / "fixtures"
REF = json.loads((FIXTURES / "psych_reference.json").read_text())
R_REF = REF["raters"]
TINY_REF = REF["tiny_raters"]
DATA = pd.read_csv(FIXTURES / "rater_data.csv")
CLUSTERED = pd.read_csv(FIXTURES / "rater_clustered.csv")
LME4 = json.loads((FIXTURES / "raters_reference.json").read_text())

ICC_TOL = 1e-6
CI_TOL = 1e-4
EXACT_TOL = 1e-9


@pytest.fixture(scope="module")
def result() -> RaterAgreement:
    return rater_agreement(DATA, "score", clustered=False)


def tiny() -> pd.DataFrame:
    """Two clients, three sessions, client and therapist ratings (the docstring example)."""
    return pd.DataFrame(
        {
            "client_id": ["a"] * 6 + ["b"] * 6,
            "session": [1, 1, 2, 2, 3, 3] * 2,
            "rater": ["client", "therapist"] * 6,
            "wai": [4.0, 3.5, 4.2, 3.9, 4.5, 4.1, 3.0, 3.2, 3.1, 3.0, 3.6, 3.3],
        }
    )


def test_counts_match_r(result):
    assert result.n_pairs == R_REF["n_pairs"] == 180
    assert result.n_clients == R_REF["n_clients"] == 30
    assert result.n_slope_clients == len(R_REF["slope_clients"]) == 28
    assert result.raters == ("client", "therapist")


def test_icc_matches_psych(result):
    icc = result.icc
    assert list(icc.index) == ["ICC(A,1)", "ICC(C,1)"]
    # R: psych::ICC(wide, lmer=FALSE)$results["Single_random_raters", ] (ICC2)
    assert icc.loc["ICC(A,1)", "icc"] == pytest.approx(R_REF["icc2"], abs=ICC_TOL)
    assert icc.loc["ICC(A,1)", "ci_low"] == pytest.approx(R_REF["icc2_lower"], abs=CI_TOL)
    assert icc.loc["ICC(A,1)", "ci_high"] == pytest.approx(R_REF["icc2_upper"], abs=CI_TOL)
    # R: ... ["Single_fixed_raters", ] (ICC3)
    assert icc.loc["ICC(C,1)", "icc"] == pytest.approx(R_REF["icc3"], abs=ICC_TOL)
    assert icc.loc["ICC(C,1)", "ci_low"] == pytest.approx(R_REF["icc3_lower"], abs=CI_TOL)
    assert icc.loc["ICC(C,1)", "ci_high"] == pytest.approx(R_REF["icc3_upper"], abs=CI_TOL)
    assert icc.loc["ICC(C,1)", "F"] == pytest.approx(R_REF["F"], rel=1e-9)
    assert (icc["df1"] == R_REF["df1"]).all() and (icc["df2"] == R_REF["df2"]).all()
    assert icc.loc["ICC(C,1)", "p"] == pytest.approx(R_REF["p"], rel=1e-6)
    # the therapist rates lower on average, so absolute agreement < consistency
    assert icc.loc["ICC(A,1)", "icc"] < icc.loc["ICC(C,1)", "icc"]


def test_bland_altman_matches_r(result):
    assert result.mean_difference == pytest.approx(R_REF["mean_diff"], abs=EXACT_TOL)
    assert result.sd_difference == pytest.approx(R_REF["sd_diff"], abs=EXACT_TOL)
    assert_allclose(
        result.mean_difference_ci, [R_REF["mean_diff_lower"], R_REF["mean_diff_upper"]], atol=1e-9
    )
    assert result.loa_low == pytest.approx(R_REF["loa_low"], abs=EXACT_TOL)
    assert result.loa_high == pytest.approx(R_REF["loa_high"], abs=EXACT_TOL)
    assert_allclose(result.loa_low_ci, [R_REF["loa_low_lower"], R_REF["loa_low_upper"]], atol=1e-9)
    assert_allclose(
        result.loa_high_ci, [R_REF["loa_high_lower"], R_REF["loa_high_upper"]], atol=1e-9
    )


def test_slopes_match_r(result):
    slopes = result.slopes
    assert list(slopes.index) == R_REF["slope_clients"]
    # R: coef(lm(score ~ session)) per client over the sessions rated by both
    assert_allclose(slopes["slope_client"], R_REF["slope_client"], atol=EXACT_TOL, rtol=0)
    assert_allclose(slopes["slope_therapist"], R_REF["slope_therapist"], atol=EXACT_TOL, rtol=0)
    # R: cor.test(slope_client, slope_therapist)
    assert result.slope_r == pytest.approx(R_REF["slope_r"], abs=EXACT_TOL)
    assert_allclose(result.slope_r_ci, [R_REF["slope_r_lower"], R_REF["slope_r_upper"]], atol=1e-9)
    assert result.slope_p == pytest.approx(R_REF["slope_p"], rel=1e-6)
    assert (slopes["n_sessions"] >= 2).all()


def test_tiny_example_by_hand():
    res = rater_agreement(tiny(), "wai", clustered=False)
    # differences client - therapist: 0.5, 0.3, 0.4, -0.2, 0.1, 0.3
    # mean 1.4 / 6 = 7/30; squared deviations (in tenths, x9): 64+4+25+169+16+4 = 282,
    # so var = 282 / 900 / 5 = 282 / 4500
    sd = math.sqrt(282 / 4500)
    assert res.n_pairs == 6 and res.n_clients == 2
    assert res.mean_difference == pytest.approx(7 / 30, abs=1e-12)
    assert res.sd_difference == pytest.approx(sd, abs=1e-12)
    z975 = 1.959963984540054  # qnorm(0.975)
    t975_5 = 2.570581835636314  # qt(0.975, 5)
    assert res.loa_low == pytest.approx(7 / 30 - z975 * sd, abs=1e-12)
    assert res.loa_high == pytest.approx(7 / 30 + z975 * sd, abs=1e-12)
    half = t975_5 * sd / math.sqrt(6)
    assert_allclose(res.mean_difference_ci, [7 / 30 - half, 7 / 30 + half], atol=1e-12)
    half_loa = t975_5 * math.sqrt(3 * sd**2 / 6)
    assert_allclose(res.loa_high_ci, [res.loa_high - half_loa, res.loa_high + half_loa])
    # slopes over sessions 1-3 are (last - first) / 2 for three equally spaced points
    # a: client 4.0 -> 4.5, therapist 3.5 -> 4.1 (3.9 in between: OLS still (4.1 - 3.5) / 2)
    # b: client 3.0 -> 3.6, therapist 3.2 -> 3.3
    assert_allclose(res.slopes["slope_client"], [0.25, 0.30], atol=1e-12)
    assert_allclose(res.slopes["slope_therapist"], [0.30, 0.05], atol=1e-12)
    # two clients: no correlation
    assert np.isnan(res.slope_r) and np.isnan(res.slope_r_ci[0])
    # ICCs: R psych::ICC(lmer=FALSE) on the 6 x 2 table
    assert res.icc.loc["ICC(A,1)", "icc"] == pytest.approx(TINY_REF["icc2"], abs=ICC_TOL)
    assert res.icc.loc["ICC(C,1)", "icc"] == pytest.approx(TINY_REF["icc3"], abs=ICC_TOL)
    assert res.icc.loc["ICC(A,1)", "ci_low"] == pytest.approx(TINY_REF["icc2_lower"], abs=CI_TOL)
    assert res.icc.loc["ICC(A,1)", "ci_high"] == pytest.approx(TINY_REF["icc2_upper"], abs=CI_TOL)
    assert res.icc.loc["ICC(C,1)", "ci_low"] == pytest.approx(TINY_REF["icc3_lower"], abs=CI_TOL)
    assert res.icc.loc["ICC(C,1)", "ci_high"] == pytest.approx(TINY_REF["icc3_upper"], abs=CI_TOL)
    # ICC(C,1) and F by hand from the two-way mean squares (k = 2, n = 6):
    # row means 3.75, 4.05, 4.30, 3.10, 3.05, 3.45 (grand mean 21.7 / 6);
    # MSR = 2 * sum((row mean - grand)^2) / 5 = 2 * 1.288333 / 5 = 0.515333;
    # for two raters the residual SS is sum((d - mean d)^2) / 2, so MSE = (282 / 900) / 2 / 5
    row_means = np.array([3.75, 4.05, 4.30, 3.10, 3.05, 3.45])
    msr = 2 * ((row_means - 21.7 / 6) ** 2).sum() / 5
    mse = 282 / 900 / 2 / 5
    assert msr == pytest.approx(0.5153333, abs=1e-6)
    assert res.icc.loc["ICC(C,1)", "icc"] == pytest.approx((msr - mse) / (msr + mse), abs=1e-12)
    assert res.icc.loc["ICC(C,1)", "F"] == pytest.approx(msr / mse, rel=1e-12)
    assert res.icc.loc["ICC(C,1)", "F"] == pytest.approx(TINY_REF["F"], rel=1e-9)


def test_swapping_raters_flips_differences_only(result):
    swapped = rater_agreement(DATA, "score", raters=("therapist", "client"), clustered=False)
    assert swapped.mean_difference == pytest.approx(-result.mean_difference, abs=1e-12)
    assert swapped.loa_low == pytest.approx(-result.loa_high, abs=1e-12)
    assert_allclose(swapped.icc.to_numpy(), result.icc.to_numpy(), atol=1e-12)
    assert swapped.slope_r == pytest.approx(result.slope_r, abs=1e-12)


def test_other_raters_missing_scores_and_column_names():
    df = DATA.rename(columns={"client_id": "pid", "session": "visit", "rater": "who"})
    extra = df[df["who"] == "client"].assign(who="observer", score=1.0)
    res = rater_agreement(
        pd.concat([df, extra], ignore_index=True),
        "score",
        client="pid",
        session="visit",
        rater="who",
        clustered=False,
    )
    assert res.n_pairs == R_REF["n_pairs"]
    assert res.icc.loc["ICC(A,1)", "icc"] == pytest.approx(R_REF["icc2"], abs=ICC_TOL)
    assert list(res.pairs.columns[:4]) == ["pid", "visit", "client", "therapist"]


def test_level_changes_intervals(result):
    narrow = rater_agreement(DATA, "score", ci=0.80, clustered=False)
    z90 = 1.2815515655446004  # qnorm(0.90)
    assert narrow.loa_high == pytest.approx(
        narrow.mean_difference + z90 * narrow.sd_difference, abs=1e-12
    )
    assert narrow.icc.loc["ICC(C,1)", "ci_low"] > result.icc.loc["ICC(C,1)", "ci_low"]
    assert narrow.icc.loc["ICC(C,1)", "icc"] == result.icc.loc["ICC(C,1)", "icc"]


def test_tidy_outputs(result):
    frame = result.to_frame()
    assert frame["statistic"].tolist() == [
        "ICC(A,1)",
        "ICC(C,1)",
        "mean_difference",
        "loa_low",
        "loa_high",
        "slope_r",
    ]
    assert frame.loc[5, "n"] == 28 and frame.loc[0, "n"] == 180
    assert frame.loc[2, "estimate"] == result.mean_difference
    d = result.to_dict()
    assert d["raters"] == ["client", "therapist"] and d["icc"][0]["type"] == "ICC(A,1)"
    json.dumps(d)  # JSON-ready
    pairs = result.pairs
    assert_allclose(pairs["difference"], pairs["client"] - pairs["therapist"])


def test_errors():
    dup = pd.concat([DATA, DATA.iloc[[4]]])
    with pytest.raises(RaterAgreementError, match=r"share a client_id x session x rater.*C00"):
        rater_agreement(dup, "score")
    with pytest.raises(MissingColumnsError, match=r"not found: wai \(score\)") as exc:
        rater_agreement(DATA, "wai")
    assert exc.value.column == "wai"
    with pytest.raises(RaterAgreementError, match="two different values"):
        rater_agreement(DATA, "score", raters=("client", "client"))
    text = DATA.astype({"score": object})
    text.loc[10, "score"] = "n/a"
    with pytest.raises(RaterAgreementError, match=r"'score', row 10: value 'n/a'"):
        rater_agreement(text, "score")
    with pytest.raises(RaterAgreementError, match="only 2 .* pair"):
        rater_agreement(tiny().iloc[:4], "wai")


def test_perfect_consistency_and_agreement():
    df = tiny()
    therapist = df["rater"] == "therapist"
    shifted = df.copy()
    shifted.loc[therapist, "wai"] = df.loc[~therapist, "wai"].to_numpy() - 0.5
    res = rater_agreement(shifted, "wai", clustered=False)
    # a constant offset: perfect consistency, imperfect absolute agreement
    assert res.icc.loc["ICC(C,1)", "icc"] == pytest.approx(1.0)
    assert res.icc.loc["ICC(A,1)", "icc"] < 1.0
    assert res.sd_difference == pytest.approx(0.0, abs=1e-12)
    assert res.mean_difference == pytest.approx(0.5)
    assert_allclose(res.slopes["slope_client"], res.slopes["slope_therapist"], atol=1e-12)


# --------------------------------------------------------------------------------------------
# issue 13 item 2: clients and sessions as random effects, cluster bootstrap, Bland-Altman 2007


@pytest.fixture(scope="module")
def clustered_results() -> dict:
    return {
        "rater_data": rater_agreement(DATA, "score", n_boot=60, seed=1),
        "rater_clustered": rater_agreement(CLUSTERED, "score", n_boot=60, seed=1),
    }


@pytest.mark.parametrize("name", ["rater_data", "rater_clustered"])
def test_clustered_variance_components_match_lme4(clustered_results, name):
    ref = LME4[name]
    assert LME4["versions"]["lme4"] == "1.1.31"
    res = clustered_results[name]
    assert res.clustered and (res.n_pairs, res.n_clients) == (ref["n_pairs"], ref["n_clients"])
    vc = res.variance_components["variance"]
    # R: as.data.frame(VarCorr(lmer(score ~ rater + (1 | client_id) + (1 | client_id:session))))
    assert vc["client"] == pytest.approx(ref["v_client"], rel=1e-5)
    assert vc["session"] == pytest.approx(ref["v_session"], rel=1e-5)
    assert vc["residual"] == pytest.approx(ref["v_residual"], rel=1e-5)
    assert vc["rater"] == pytest.approx(ref["v_rater"], rel=1e-4)
    assert res.variance_components.attrs["converged"]
    assert res.icc.loc["ICC(A,1)", "icc"] == pytest.approx(ref["icc_a"], abs=ICC_TOL)
    assert res.icc.loc["ICC(C,1)", "icc"] == pytest.approx(ref["icc_c"], abs=ICC_TOL)


@pytest.mark.parametrize("name", ["rater_data", "rater_clustered"])
def test_bland_altman_2007_matches_hand_formulas_in_r(clustered_results, name):
    ref = LME4[name]
    ba = clustered_results[name].bland_altman
    assert ba.method == "repeated measures (Bland & Altman 2007)"
    assert ba.mean_difference == pytest.approx(ref["ba_mean"], abs=EXACT_TOL)
    assert ba.sd_between == pytest.approx(ref["ba_sd_between"], abs=EXACT_TOL)
    assert ba.sd_within == pytest.approx(ref["ba_sd_within"], abs=EXACT_TOL)
    assert ba.sd_difference == pytest.approx(ref["ba_sd_total"], abs=EXACT_TOL)
    assert ba.loa_low == pytest.approx(ref["ba_loa_low"], abs=EXACT_TOL)
    assert ba.loa_high == pytest.approx(ref["ba_loa_high"], abs=EXACT_TOL)
    res = clustered_results[name]
    assert (res.loa_low, res.loa_high) == (ba.loa_low, ba.loa_high)
    # a client-level difference component widens the limits over independent pairs
    if name == "rater_clustered":
        assert ba.sd_between > 0.2
        assert ba.loa_low_ci[0] < ba.loa_low < ba.loa_low_ci[1]


def test_clustered_keeps_the_independent_numbers_as_sensitivity(clustered_results, result):
    res = clustered_results["rater_data"]
    pd.testing.assert_frame_equal(res.icc_independent, result.icc)
    assert res.bland_altman_independent == result.bland_altman
    frame = res.to_frame()
    sens = frame[frame["analysis"] == "independent pairs (sensitivity)"].set_index("statistic")
    assert sens.loc["ICC(A,1)", "estimate"] == pytest.approx(R_REF["icc2"], abs=ICC_TOL)
    assert sens.loc["loa_low", "estimate"] == pytest.approx(R_REF["loa_low"], abs=EXACT_TOL)
    main = frame[frame["analysis"] == "clustered"].set_index("statistic")
    assert list(main.index) == ["ICC(A,1)", "ICC(C,1)", "mean_difference", "loa_low", "loa_high"]
    assert np.isnan(res.icc["F"]).all()
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["icc"][0]["F"] is None  # no F test for the model-based ICC
    assert d["clustered"] and d["bland_altman"]["method"].startswith("repeated")
    assert set(d["variance_components"]) == {"client", "session", "rater", "residual"}


def test_cluster_bootstrap_is_seeded_and_brackets_the_estimate(clustered_results):
    res = clustered_results["rater_clustered"]
    again = rater_agreement(CLUSTERED, "score", n_boot=60, seed=1)
    pd.testing.assert_frame_equal(again.icc, res.icc)
    other = rater_agreement(CLUSTERED, "score", n_boot=60, seed=2)
    assert not other.icc["ci_low"].equals(res.icc["ci_low"])
    for stat in ("ICC(A,1)", "ICC(C,1)"):
        row = res.icc.loc[stat]
        assert row["ci_low"] < row["icc"] < row["ci_high"]
    assert res.n_boot == 60 and res.seed == 1
    assert "cluster bootstrap over clients" in res.bland_altman.interval


def test_clustered_interval_is_wider_than_independent_pairs():
    # 40 clients x 12 sessions with a strong client-level rater difference: treating the 480
    # pairs as independent understates the uncertainty of the bias
    rng = np.random.default_rng(8)
    client = np.repeat(np.arange(40), 12)
    level = rng.normal(3.5, 0.5, 40)[client] + rng.normal(0, 0.2, client.size)
    bias = rng.normal(-0.3, 0.35, 40)[client]
    df = pd.DataFrame(
        {
            "client_id": np.concatenate([client, client]).astype(str),
            "session": np.tile(np.tile(np.arange(1, 13), 40), 2),
            "rater": np.repeat(["client", "therapist"], client.size),
            "score": np.concatenate(
                [
                    level + rng.normal(0, 0.2, client.size),
                    level + bias + rng.normal(0, 0.2, client.size),
                ]
            ),
        }
    )
    res = rater_agreement(df, "score", n_boot=100, seed=3)
    width = np.diff(res.mean_difference_ci)[0]
    naive = np.diff(res.bland_altman_independent.mean_difference_ci)[0]
    assert width > 2 * naive  # design effect sqrt(1 + 11 * 0.6) ~ 2.8
    # the truth: bias SD 0.35 between clients, within SD sqrt(2) * 0.2
    assert res.bland_altman.sd_between == pytest.approx(0.35, abs=0.1)
    assert res.bland_altman.sd_within == pytest.approx(math.sqrt(2) * 0.2, abs=0.03)


def test_clustered_needs_enough_clients():
    with pytest.raises(RaterAgreementError, match="clustered=False"):
        rater_agreement(tiny(), "wai")


# --------------------------------------------------------------------------------------------
# issue 16: the clustered model from per-client pair sums (path="sums", the default) against
# the general engine refitted per replicate (path="refit", the previous code kept as the
# reference). Tolerances: variances, ICCs and vcov[1, 1] 1e-6 relative (observed ~1e-12 for
# point fits, ~3e-8 for bootstrap refits, which the engine starts from the point fit's theta);
# a variance at 0 must be 0 on both paths (1e-10 absolute); Bland-Altman numbers 1e-10.

from scipy import stats  # noqa: E402

from alliance_lib import raters as R  # noqa: E402

REL = 1e-6
Z95 = stats.norm.ppf(0.975)


def sim_pairs(n_clients, seed, v_client=0.3, v_session=0.1, v_res=0.2, sizes=(1, 12)):
    """Complete pairs (y1, y2) of ``n_clients`` clients with n_i ~ U{sizes} pairs each."""
    rng = np.random.default_rng(seed)
    n = rng.integers(sizes[0], sizes[1] + 1, n_clients)
    codes = np.repeat(np.arange(n_clients), n)
    level = (
        3.0
        + rng.normal(0, math.sqrt(v_client), n_clients)[codes]
        + rng.normal(0, math.sqrt(v_session), codes.size)
    )
    noise = rng.normal(0, math.sqrt(v_res), (codes.size, 2))
    return level[:, None] + np.array([0.0, 0.3]) + noise, codes


def as_long(y, codes) -> pd.DataFrame:
    n = codes.size
    session = np.arange(n) - np.searchsorted(codes, codes)  # 0, 1, ... within a client
    return pd.DataFrame(
        {
            "client_id": np.tile(codes, 2).astype(str),
            "session": np.tile(session, 2),
            "rater": np.repeat(["client", "therapist"], n),
            "score": np.concatenate([y[:, 0], y[:, 1]]),
        }
    )


SCENARIOS = {  # name: (arguments of sim_pairs, which variances the data put at 0)
    "unbalanced": (dict(n_clients=80, seed=1), ()),
    "one or two pairs": (dict(n_clients=60, seed=2, sizes=(1, 2)), ()),
    "v_session 0": (dict(n_clients=80, seed=0, v_session=0.0), ("v_session",)),
    "v_client 0": (dict(n_clients=80, seed=0, v_client=0.0), ("v_client",)),
    "both 0": (dict(n_clients=80, seed=0, v_client=0.0, v_session=0.0), ("v_client", "v_session")),
    "small": (dict(n_clients=6, seed=3, sizes=(2, 4)), ()),
    "strong client level": (dict(n_clients=50, seed=4, v_client=50.0, v_res=0.01), ()),
    "large": (dict(n_clients=2500, seed=6, sizes=(1, 20)), ()),
}


def point_sums(y, codes) -> dict:
    ps = R._pair_sums(y, codes)
    return {k: float(v[0]) for k, v in R._fit_sums(ps, np.ones((1, ps.n_clients))).items()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_pair_sums_fit_equals_the_engine(name):
    kwargs, zeros = SCENARIOS[name]
    y, codes = sim_pairs(**kwargs)
    new = point_sums(y, codes)
    fit = R._pair_model(y, codes)
    icc_a, icc_c, comps = R._model_iccs(fit)
    assert fit.converged and new["converged"]
    for key, ref in zip(("v_client", "v_session", "v_rater", "v_residual"), comps, strict=True):
        assert new[key] == pytest.approx(ref, rel=REL, abs=1e-10), key
    for key in zeros:  # the boundary is reached exactly by the closed form
        assert new[key] == 0.0
    assert new["icc_a"] == pytest.approx(icc_a, rel=REL)
    assert new["icc_c"] == pytest.approx(icc_c, rel=REL)
    assert new["beta"] == pytest.approx(fit.beta[1], rel=1e-12, abs=1e-13)
    assert new["var_beta"] == pytest.approx(fit.vcov[1, 1], rel=REL)  # v_rater uses it
    mean_d, sd_b, sd_w = R._ba_repeated(y[:, 0] - y[:, 1], codes)
    assert (new["mean_d"], new["sd_b"], new["sd_w"]) == pytest.approx(
        (mean_d, sd_b, sd_w), abs=1e-10
    )


@pytest.mark.parametrize("name", ["unbalanced", "one or two pairs", "v_session 0", "both 0"])
def test_bootstrap_replicates_equal_per_replicate_refits(name):
    y, codes = sim_pairs(**SCENARIOS[name][0])
    fit = R._pair_model(y, codes)
    ref = R._cluster_bootstrap_refit(y, codes, Z95, 30, 7, fit.theta)
    new, refitted = R._cluster_bootstrap_sums(y, codes, Z95, 30, 7)
    assert refitted == 0 and np.isfinite(new).all()
    assert_allclose(new[:, :2], ref[:, :2], rtol=REL, atol=1e-12)  # ICC(A,1), ICC(C,1) each
    assert_allclose(new[:, 2:], ref[:, 2:], rtol=1e-10, atol=1e-12)  # bias and limits


def test_bootstrap_blocks_do_not_change_the_replicates(monkeypatch):
    y, codes = sim_pairs(n_clients=40, seed=9)
    whole, _ = R._cluster_bootstrap_sums(y, codes, Z95, 25, 3)
    monkeypatch.setattr(R, "_BOOT_BLOCK", 40 * 7)  # blocks of 7 replicates (7, 7, 7, 4)
    blocked, _ = R._cluster_bootstrap_sums(y, codes, Z95, 25, 3)
    assert_allclose(blocked, whole, rtol=1e-13)


def test_degenerate_replicates_are_refitted_with_the_engine(monkeypatch):
    y, codes = sim_pairs(n_clients=30, seed=4)
    fit = R._pair_model(y, codes)
    ref = R._cluster_bootstrap_refit(y, codes, Z95, 5, 2, fit.theta)
    original = R._fit_sums

    def spoil_second(ps, weights):
        out = original(ps, weights)
        if weights.shape[0] > 1:
            out["icc_a"][1] = np.nan
        return out

    monkeypatch.setattr(R, "_fit_sums", spoil_second)
    new, refitted = R._cluster_bootstrap_sums(y, codes, Z95, 5, 2)
    assert refitted == 1
    assert_allclose(new, ref, rtol=REL)  # the refitted replicate is the engine's again


def test_one_pair_per_client_gives_the_engines_iccs():
    # only v_client + v_session is identified; the ICCs use the sum only
    y, codes = sim_pairs(n_clients=120, seed=8, sizes=(1, 1))
    new = point_sums(y, codes)
    icc_a, icc_c, comps = R._model_iccs(R._pair_model(y, codes))
    assert new["icc_a"] == pytest.approx(icc_a, rel=REL)
    assert new["icc_c"] == pytest.approx(icc_c, rel=REL)
    assert new["v_client"] == 0.0
    assert new["v_session"] == pytest.approx(comps[0] + comps[1], rel=REL)
    assert new["v_residual"] == pytest.approx(comps[3], rel=REL)


def test_paths_give_the_same_results_and_say_which_ran():
    res = {
        p: rater_agreement(CLUSTERED, "score", n_boot=30, seed=5, path=p) for p in ("sums", "refit")
    }
    assert res["sums"].fit_path == "pair sums"
    assert res["refit"].fit_path == "engine refit"
    assert res["sums"].variance_components.attrs["fit_path"] == "pair sums"
    num = ["estimate", "ci_low", "ci_high"]
    assert_allclose(res["sums"].to_frame()[num], res["refit"].to_frame()[num], rtol=REL)
    assert_allclose(
        res["sums"].variance_components["variance"],
        res["refit"].variance_components["variance"],
        rtol=REL,
    )
    assert rater_agreement(DATA, "score", clustered=False).fit_path is None
    with pytest.raises(RaterAgreementError, match="path"):
        rater_agreement(CLUSTERED, "score", n_boot=5, path="fast")


def test_identical_differences_fit_without_error():
    # therapist = client - 0.5 everywhere: residual variance 0 (the engine cannot reach it)
    y, codes = sim_pairs(n_clients=12, seed=2, v_res=0.0)
    res = rater_agreement(as_long(y, codes), "score", n_boot=20, seed=1)
    vc = res.variance_components["variance"]
    assert vc["residual"] == pytest.approx(0.0, abs=1e-20) and vc["rater"] == pytest.approx(
        0.045, rel=1e-9
    )
    assert res.icc.loc["ICC(C,1)", "icc"] == pytest.approx(1.0)
    assert res.slope_r == pytest.approx(1.0) and res.slope_p < 1e-12


@pytest.mark.slow
def test_demo_wave_paths_agree():
    import alliance_lib as al
    from alliance_lib.sections import common

    wave = al.prepare_wave(al.load_study(Path(__file__).parents[1] / "data/demo/study.yaml"), 3)
    col = f"{common.alliance_instrument(wave).prefix}_total"
    found = common.rater_perspectives(wave)
    assert len(found) >= 2
    num = ["estimate", "ci_low", "ci_high"]
    for i, a in enumerate(found):  # every pair of perspectives, as the report compares them
        for b in found[i + 1 :]:
            kw = dict(**common.COLUMNS, rater="rater", raters=(a, b), n_boot=40, seed=3)
            new = rater_agreement(wave.scored, col, **kw)
            ref = rater_agreement(wave.scored, col, path="refit", **kw)
            assert new.fit_path == "pair sums"
            assert_allclose(new.to_frame()[num], ref.to_frame()[num], rtol=REL)
