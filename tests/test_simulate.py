"""simulate_study: realistic structure, exact regeneration of the demo study, known truths."""

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_lib.simulate import SimulationTruth, simulate_study, write_demo_study

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_demo_study_regenerates_byte_identical(tmp_path):
    written = write_demo_study(tmp_path)
    for path in written:
        assert filecmp.cmp(path, DEMO / path.name, shallow=False), f"{path.name} differs"


def test_waves_are_cumulative():
    waves = [pd.read_csv(DEMO / f"wave{k}.csv", dtype={"client_id": str}) for k in (1, 2, 3)]
    for small, big in zip(waves, waves[1:], strict=False):
        assert set(small["client_id"]) <= set(big["client_id"])
        key = ["client_id", "session", "rater"]
        merged = small[key].merge(big[key].drop_duplicates(), how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
        assert len(small) < len(big)


def test_demo_looks_like_practice_data():
    d = pd.read_csv(DEMO / "wave3.csv", dtype={"client_id": str, "therapist_id": str})
    assert d["client_id"].str.fullmatch(r"CL-\d{4}").all()
    assert d["client_id"].nunique() == 300 and d["therapist_id"].nunique() == 20
    assert d["session"].between(0, 16).all()
    assert set(d["rater"]) == {"client", "therapist"}
    wai = d.filter(regex=r"^wai_sr_\d+$")
    oq = d.filter(regex=r"^oq_\d+$")
    assert wai.shape[1] == 12 and oq.shape[1] == 45
    assert (wai == -99).to_numpy().sum() > 0 and (oq == -99).to_numpy().sum() > 0
    out_of_range = ((wai > 5) & (wai != 999)).to_numpy().sum() + (
        (oq > 4) & (oq != 999)
    ).to_numpy().sum()
    assert 1 <= out_of_range <= 10
    assert d.duplicated().sum() == 1
    last = d.groupby("client_id")["session"].max()
    assert 0.2 < (last < 16).mean() < 0.8, "dropout should be realistic, neither none nor all"
    therapist_rows = d[d["rater"] == "therapist"]
    assert therapist_rows.filter(regex=r"^oq_").isna().all().all()


def test_scores_output_has_truth_and_no_errors():
    d = simulate_study(n_clients=60, n_therapists=6, seed=3, output="scores")
    assert d.attrs["truth"] == SimulationTruth().to_dict()
    assert d["outcome"].notna().all()
    assert d.loc[d["session"] == 0, "alliance"].isna().all()
    assert d.loc[d["session"] >= 1, "alliance"].notna().all()


def test_same_seed_same_data_other_seed_other_data():
    a = simulate_study(n_clients=30, n_therapists=3, seed=11)
    b = simulate_study(n_clients=30, n_therapists=3, seed=11)
    c = simulate_study(n_clients=30, n_therapists=3, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_truth_is_recovered_by_simple_moments():
    # Independent check of the generator (no model code): with no dropout, the session means
    # of the latent alliance follow the true mean line, and its residual SD within clients is
    # the true one once person-specific lines are removed.
    truth = SimulationTruth(sd_therapist=0.0)
    d = simulate_study(
        n_clients=4000,
        n_therapists=40,
        seed=5,
        output="scores",
        truth=truth,
        dropout=False,
        max_sessions=8,
    )
    a = d.dropna(subset=["alliance"])
    means = a.groupby("session")["alliance"].mean()
    slope, intercept = np.polyfit(means.index, means.to_numpy(), 1)
    assert slope == pytest.approx(truth.alliance_slope, abs=0.004)
    assert intercept == pytest.approx(truth.alliance_intercept, abs=0.03)
    g = a.groupby("client_id")
    xc = a["session"] - g["session"].transform("mean")
    yc = a["alliance"] - g["alliance"].transform("mean")
    b = (xc * yc).groupby(a["client_id"]).transform("sum") / (xc**2).groupby(
        a["client_id"]
    ).transform("sum")
    r = yc - b * xc
    # a per-client line through 8 points loses 2 df per client
    sd = np.sqrt((r**2).sum() / (len(r) - 2 * a["client_id"].nunique()))
    assert sd == pytest.approx(truth.sd_residual, rel=0.03)
    assert len(a) == 4000 * 8


def test_bad_arguments():
    with pytest.raises(ValueError, match="output"):
        simulate_study(output="wide")
    with pytest.raises(ValueError, match="therapist"):
        simulate_study(n_therapists=0)


# ----------------------------------------------------------------- dynamics (issue 12, item 5)
def _wide(d, col):
    return d.pivot(index="client_id", columns="session", values=col)


def test_static_defaults_are_unchanged_by_zero_dynamics():
    # the new options switched off give the very same numbers (and so the same demo files)
    a = simulate_study(n_clients=40, n_therapists=4, seed=8, output="scores")
    b = simulate_study(
        n_clients=40,
        n_therapists=4,
        seed=8,
        output="scores",
        truth=SimulationTruth(alliance_inertia=0.0, outcome_inertia=0.0, dropout_outcome=0.0),
    )
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["truth_implied"]["outcome -> outcome"] == 0.0


def test_dynamics_follow_the_stated_equations():
    # Independent check by moments (no model code): with no client differences and no
    # dropout, the within-client series is the VAR(1) of SimulationTruth.implied(), so the
    # least-squares regressions of each score on both lagged scores recover its coefficients.
    truth = SimulationTruth(
        sd_client_intercept=0.0,
        sd_client_slope=0.0,
        sd_therapist=0.0,
        sd_outcome_intercept=1e-9,
        sd_outcome_slope=0.0,
        between_effect=0.0,
        alliance_inertia=0.4,
        outcome_inertia=0.3,
        reverse_change_effect=0.015,
    )
    d = simulate_study(
        n_clients=6000,
        n_therapists=20,
        seed=9,
        output="scores",
        truth=truth,
        dropout=False,
        max_sessions=8,
    )
    a = _wide(d, "alliance").to_numpy()[:, 1:]
    y = _wide(d, "outcome").to_numpy()[:, 1:]
    a = a - a.mean(0)
    y = y - y.mean(0)
    X = np.column_stack([a[:, 2:-1].ravel(), y[:, 2:-1].ravel()])
    imp = truth.implied()
    coef_y = np.linalg.lstsq(X, y[:, 3:].ravel(), rcond=None)[0]
    coef_a = np.linalg.lstsq(X, a[:, 3:].ravel(), rcond=None)[0]
    np.testing.assert_allclose(
        coef_y, [imp["alliance -> outcome"], imp["outcome -> outcome"]], atol=0.15
    )
    np.testing.assert_allclose(
        coef_a, [imp["alliance -> alliance"], imp["outcome -> alliance"]], atol=0.02
    )
    assert imp["outcome -> alliance"] == pytest.approx(0.015 * 0.7)
    assert imp["alliance -> alliance"] == pytest.approx(0.4 + 0.015 * 6)


def test_outcome_dropout_is_missing_at_random_on_the_observed_outcome():
    base = SimulationTruth(dropout_alliance=0.0, dropout_base=-2.0)
    kw = dict(n_clients=3000, n_therapists=30, seed=4, output="scores", max_sessions=8)
    none = simulate_study(truth=base, **kw)
    worse = simulate_study(
        truth=SimulationTruth(**{**base.to_dict(), "dropout_outcome": 1.5}), **kw
    )
    last = worse.groupby("client_id")["session"].max()
    intake = worse[worse["session"] == 0].set_index("client_id")["outcome"]
    # clients with higher symptoms leave sooner (here: a positive logit per SD)
    assert np.corrcoef(intake.loc[last.index], last)[0, 1] < -0.1
    last0 = none.groupby("client_id")["session"].max()
    intake0 = none[none["session"] == 0].set_index("client_id")["outcome"]
    assert abs(np.corrcoef(intake0.loc[last0.index], last0)[0, 1]) < 0.05


def test_item_error_sets_the_measurement_model():
    kw = dict(
        n_clients=200,
        n_therapists=5,
        seed=6,
        therapist_ratings=False,
        n_typos=0,
        n_duplicates=0,
        missing_item_rate=0.0,
        missing_code_rate=0.0,
    )
    noisy = simulate_study(truth=SimulationTruth(wai_item_sd=1.0), **kw)
    clean = simulate_study(truth=SimulationTruth(wai_item_sd=0.05, wai_facet_sd=0.0), **kw)
    lat = simulate_study(output="scores", **kw)
    lat = lat[lat["session"] >= 1]
    items = [f"wai_sr_{k}" for k in range(1, 13)]

    def r(items_df):
        sc = items_df[items_df["session"] >= 1][items].astype(float).mean(axis=1)
        return np.corrcoef(sc.to_numpy(), lat["alliance"].to_numpy())[0, 1]

    assert r(clean) > r(noisy)
    imp = SimulationTruth().implied()
    assert imp["alliance_score_error_variance"] == pytest.approx(0.2**2 / 3 + 0.45**2 / 12)
