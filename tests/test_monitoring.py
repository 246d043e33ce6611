"""Expected treatment response curves, not-on-track alerts and their validation.

Truth comes from ``simulate_study(response=...)`` (alliance_lib._simulate_response): a
responder / non-responder growth mixture whose per-client parameters and ideal failure
predictor are known.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alliance_lib as al
from alliance_lib import monitoring as mon
from alliance_lib._simulate_response import ResponseMixture, ideal_failure_probability
from alliance_lib.errors import DataError

GAUSS = {"nonresponder_share": 0.0}  # one class: the mixed model is the true model


def _sim(n_clients, seed, response=None, n_therapists=20, **kw):
    return al.simulate_study(
        n_therapists=n_therapists,
        n_clients=n_clients,
        seed=seed,
        output="scores",
        dropout=kw.pop("dropout", False),
        response={} if response is None else response,
        **kw,
    )


def _binomial_ok(k, n, p, alpha=0.001):
    """k successes in n trials are compatible with rate p (two-sided exact test)."""
    return stats.binomtest(int(k), int(n), p).pvalue > alpha


@pytest.fixture(scope="module")
def mixture():
    return _sim(600, 3)


@pytest.fixture(scope="module")
def validation(mixture):
    return mon.validate_alerts(
        mixture,
        "outcome",
        therapist="therapist_id",
        cutoff=64,
        rci=14,
        sessions=[1, 3, 5, 8],
        n_boot=100,
        seed=1,
    )


# ----------------------------------------------------------------------------- the reference
def test_expected_curve_matches_the_analytic_conditional_mean():
    # One Gaussian class: E[y_t | y_0] = 80 - 2.2 t + k (y_0 - 80), k = 18^2 / (18^2 + 7^2),
    # Var(y_t | y_0) = 18^2 + tau^2 t^2 + 7^2 - 18^4 / (18^2 + 7^2), tau^2 = .8^2 + .3^2.
    m = ResponseMixture(nonresponder_share=0.0)
    df = _sim(4000, 11, GAUSS, n_therapists=100)
    ref = mon.expected_response(df, "outcome", therapist="therapist_id")
    k = m.sd_intercept**2 / (m.sd_intercept**2 + m.sd_residual**2)
    tau2 = m.sd_slope**2 + m.sd_therapist_slope**2
    grid = ref.predict([60.0, 80.0, 110.0], sessions=[2, 8, 16])
    expect = 80 - 2.2 * grid["session"] + k * (grid["intake"] - 80)
    # within 4 standard errors of the fitted mean (therapist slopes make the MC error grow with t)
    X, _, _ = ref._design(grid["intake"].to_numpy(), grid["session"].to_numpy())
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, ref._vbeta, X))
    assert (np.abs(grid["expected"] - expect) < 4 * se + 0.1).all()
    assert se.max() < 0.8
    var = (
        m.sd_intercept**2
        + tau2 * grid["session"] ** 2
        + m.sd_residual**2
        - m.sd_intercept**4 / (m.sd_intercept**2 + m.sd_residual**2)
    )
    np.testing.assert_allclose(grid["sd"], np.sqrt(var), rtol=0.06)
    assert ref.to_dict()["fixed"]["intake"] == pytest.approx(k, abs=0.03)


@pytest.mark.parametrize("method", ["normal", "conformal"])
def test_band_coverage_on_a_fresh_study(method):
    train, fresh = _sim(1500, 21, GAUSS, n_therapists=50), _sim(1500, 22, GAUSS, n_therapists=50)
    ref = mon.expected_response(train, "outcome", therapist="therapist_id", method=method)
    nt = mon.not_on_track(fresh, "outcome", reference=ref)
    for s in (2, 5, 10):
        at = nt[nt["session"] == s]
        for q in (0.5, 0.9):
            k = int((at["observed"] > ref.quantile(at["intake"], s, q)).sum())
            assert _binomial_ok(k, len(at), 1 - q), (method, s, q, k / len(at))


def test_conformal_bands_hold_coverage_where_normal_bands_are_misspecified():
    # a strongly skewed mixture: 30 % non-responders whose scores climb
    mix = {"nonresponder_share": 0.3, "nonresponder_slope": 2.0, "sd_slope": 0.3}
    train, fresh = _sim(1500, 31, mix, n_therapists=50), _sim(1500, 32, mix, n_therapists=50)
    ref = mon.expected_response(train, "outcome", method="conformal")
    at = mon.not_on_track(fresh, "outcome", reference=ref)
    at = at[at["session"] == 12]
    k = int((at["percentile"] > 0.9).sum())
    assert _binomial_ok(k, len(at), 0.10)
    normal = mon.expected_response(train, "outcome")
    k_norm = int((normal.percentile(at["intake"], 12, at["observed"]) > 0.9).sum())
    assert abs(k_norm / len(at) - 0.10) > abs(k / len(at) - 0.10)


def test_higher_is_better_mirrors_the_bands():
    df = _sim(300, 5, GAUSS)
    flipped = df.assign(outcome=200 - df["outcome"])
    a = mon.not_on_track(df, "outcome", cutoff=64)
    b = mon.not_on_track(flipped, "outcome", cutoff=200 - 64 + 1e-9, direction="higher_is_better")
    np.testing.assert_allclose(a["percentile"], b["percentile"], atol=1e-6)
    np.testing.assert_allclose(a["expected"], 200 - b["expected"], atol=1e-6)
    assert (a["state"] == b["state"]).all()


def test_reference_needs_clients_with_an_intake():
    df = _sim(30, 1, GAUSS, n_therapists=3)
    with pytest.raises(DataError, match="intake"):
        mon.expected_response(df[df["session"] > 0], "outcome")
    with pytest.raises(DataError, match="no_such"):
        mon.expected_response(df, "no_such")
    with pytest.raises(DataError, match="method"):
        mon.expected_response(df, "outcome", method="bayes")


# ----------------------------------------------------------------------------- alerts
def test_states_follow_the_bands_and_thresholds():
    df = _sim(300, 6, GAUSS)
    ref = mon.expected_response(df, "outcome")
    intake, s = 90.0, 4
    probe = pd.DataFrame(
        {
            "client_id": ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["d"] * 2,
            "session": [0, s] * 4,
            "outcome": [
                intake,
                float(ref.quantile(intake, s, 0.95)),
                intake,
                float(ref.quantile(intake, s, 0.70)),
                intake,
                float(ref.quantile(intake, s, 0.30)),
                intake,
                50.0,
            ],
        }
    )
    nt = mon.not_on_track(probe, "outcome", reference=ref, cutoff=64)
    assert nt["state"].tolist() == ["red", "yellow", "green", "white"]
    np.testing.assert_allclose(nt["percentile"].iloc[:3], [0.95, 0.70, 0.30], atol=1e-9)
    # thresholds are parameters
    nt2 = mon.not_on_track(probe, "outcome", reference=ref, cutoff=None, red=0.97, yellow=0.25)
    assert nt2["state"].tolist() == ["yellow", "yellow", "yellow", "green"]
    # the registry's OQ-45.2 norms give the same white state (clinical from 64)
    nt3 = mon.not_on_track(probe, "outcome", reference=ref, instrument="oq-45.2")
    assert nt3["state"].tolist() == nt["state"].tolist()


def test_deleting_later_sessions_never_changes_earlier_alerts(mixture):
    ref = mon.expected_response(mixture, "outcome", therapist="therapist_id")
    full = mon.not_on_track(
        mixture, "outcome", reference=ref, cutoff=64, rci=14, failure="no_reliable_improvement"
    )
    rng = np.random.default_rng(0)
    clients = mixture["client_id"].unique()
    cut = pd.Series(rng.integers(1, 16, clients.size), index=clients)
    short = mixture[mixture["session"] <= cut.reindex(mixture["client_id"]).to_numpy()]
    part = mon.not_on_track(
        short, "outcome", reference=ref, cutoff=64, rci=14, failure="no_reliable_improvement"
    )
    keep = full["session"].to_numpy() <= cut.reindex(full["client_id"]).to_numpy()
    a = full[keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, part.reset_index(drop=True), check_exact=True)
    # the failure probability does use the history: it changes as sessions accrue
    one = full[full["client_id"] == clients[0]]["p_failure"]
    assert one.nunique() > 1


def test_failure_probability_without_a_reference_is_fitted_on_the_data(mixture):
    nt = mon.not_on_track(mixture, "outcome", cutoff=64, rci=14, failure="reliable_deterioration")
    assert nt["p_failure"].between(0, 1).all()
    assert len(nt) == int((mixture["session"] > 0).sum())


def test_alert_auc_at_chance_under_a_null_model():
    # identical classes: the latent "non-responder" label carries no information at all
    null = {"nonresponder_share": 0.3, "nonresponder_slope": -2.2}
    alt = {"nonresponder_share": 0.3, "nonresponder_slope": 0.4}
    res = {}
    for name, mix in (("null", null), ("alt", alt)):
        df = _sim(800, 41, mix, n_therapists=40)
        truth = al.client_truth(df)
        nt = mon.not_on_track(df, "outcome", rci=14, failure="no_reliable_improvement")
        at = nt[nt["session"] == 5]
        label = ~truth.loc[at["client_id"], "responder"].to_numpy()
        res[name] = (mon.auc(at["p_failure"], label), mon.auc(at["percentile"], label))
    for a in res["null"]:
        assert abs(a - 0.5) < 0.06
    for a in res["alt"]:
        assert a > 0.8


def test_auc_helper_against_scipy_mann_whitney():
    rng = np.random.default_rng(3)
    s = np.round(rng.normal(size=300), 1)  # ties
    y = rng.random(300) < 0.3
    u = stats.mannwhitneyu(s[y], s[~y]).statistic
    assert mon.auc(s, y) == pytest.approx(u / (y.sum() * (~y).sum()))


def _weighted_auc_reference(score, label, W):
    """The AUC before issue 16 (np.add.at on a replicates x n matrix), kept to test against."""
    order = np.argsort(score, kind="stable")
    sc, lab, Wo = score[order], label[order], W[:, order]
    _, grp = np.unique(sc, return_inverse=True)
    wneg = Wo * (~lab)
    wpos = Wo * lab
    ng = grp.max() + 1 if grp.size else 0
    neg_g = np.zeros((W.shape[0], ng))
    np.add.at(neg_g.T, grp, wneg.T)
    below = np.cumsum(neg_g, axis=1) - neg_g
    contrib = (below[:, grp] + 0.5 * neg_g[:, grp]) * wpos
    denom = wpos.sum(axis=1) * wneg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return contrib.sum(axis=1) / denom


@pytest.mark.parametrize("chunk_cells", [mon._CHUNK_CELLS, 97, 1])
def test_weighted_auc_equals_the_reference_exactly_with_ties(chunk_cells):
    rng = np.random.default_rng(11)
    n, n_clusters, n_boot = 700, 23, 60
    score = np.round(rng.normal(size=n), 1)  # many ties
    score[:5] = np.nan  # NaNs tie with each other
    label = rng.random(n) < 0.35
    cluster = rng.integers(0, n_clusters, n)
    Wc = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot)
    Wc = np.vstack([np.ones(n_clusters), Wc]).astype(float)
    ref = _weighted_auc_reference(score, label, Wc[:, cluster])
    new = mon._weighted_auc(score, label, Wc, cluster, chunk_cells=chunk_cells)
    # integer weights: every sum is exact, so the replicates agree to the last bit
    assert np.array_equal(new, ref, equal_nan=True)
    dense = mon._weighted_auc(score, label, Wc[:, cluster], chunk_cells=chunk_cells)
    assert np.array_equal(dense, ref, equal_nan=True)
    # a replicate without positives (all weight on one negative-only cluster) is NaN in both
    only_neg = np.zeros((1, n_clusters))
    neg_clusters = np.setdiff1d(np.arange(n_clusters), cluster[label])
    if neg_clusters.size:
        only_neg[0, neg_clusters[0]] = 3.0
        assert np.isnan(mon._weighted_auc(score, label, only_neg, cluster))[0]
    # fractional weights: same up to rounding of the (reordered) sums
    Wf = rng.random((7, n))
    np.testing.assert_allclose(
        mon._weighted_auc(score, label, Wf), _weighted_auc_reference(score, label, Wf), rtol=1e-12
    )


def test_metrics_with_cluster_weights_equal_the_expanded_weights():
    rng = np.random.default_rng(5)
    n, c = 400, 17
    score = np.round(rng.random(n), 2)
    label = rng.random(n) < 0.4
    alert = score > 0.6
    cluster = rng.integers(0, c, n)
    Wc = np.vstack([np.ones(c), rng.multinomial(c, np.full(c, 1 / c), size=40)]).astype(float)
    a = mon._metrics(score, alert, label, Wc, cluster)
    b = mon._metrics(score, alert, label, Wc[:, cluster])
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=True), key


def test_client_codes_follow_the_text_order_of_the_ids():
    raw = pd.Series([10, 9, 10, 100, 9])
    codes, levels = mon._client_codes(raw)
    assert levels.tolist() == ["10", "100", "9"]  # sorted as text, as astype(str) sorts
    assert levels[codes].tolist() == raw.astype(str).tolist()


# ----------------------------------------------------------------------------- validation
def test_validation_auc_is_close_to_the_ideal_predictor(validation):
    for t in (3, 5, 8):
        tab = validation.at(t)
        ideal, omniscient = (
            tab.loc["ideal (history)", "auc"],
            tab.loc["ideal (true parameters)", "auc"],
        )
        got = tab.loc["failure probability", "auc"]
        assert got == pytest.approx(ideal, abs=0.03), t
        assert got <= omniscient
        assert tab.loc["expected curve", "auc"] <= ideal + 0.02
        lo, hi = tab.loc["failure probability", ["auc_low", "auc_high"]]
        assert lo < got < hi
    # the ideal posterior itself is the mixture model's: check a few clients by brute force
    ideal = validation.scores.set_index(["client", "session"])[
        "ideal_history_no_reliable_improvement"
    ]
    assert ideal.between(0, 1).all()


def test_validation_table_layout_and_alert_burden(validation):
    tab = validation.table
    assert set(tab["failure"]) == set(mon.FAILURES)
    assert {"expected curve", "failure probability", "rational rule", "intake only"} <= set(
        tab["predictor"]
    )
    for m in mon.METRICS:
        assert {m, f"{m}_low", f"{m}_high"} <= set(tab.columns)
    b = validation.burden.set_index("predictor")
    flags = validation.scores.assign(red=validation.scores["state"] == "red")
    flags = flags[flags["session"] < flags["end"]]
    assert b.loc["expected curve", "ever_flagged"] == pytest.approx(
        flags.groupby("client")["red"].any().mean()
    )
    assert b.loc["expected curve", "flagged_by_3"] <= b.loc["expected curve", "flagged_by_5"]
    # sensitivity / specificity by hand at session 5
    at = validation.scores[(validation.scores["session"] == 5)]
    lab = (
        at["intake"] - at["client"].map(validation.scores.groupby("client")["observed"].last())
    ) < 14
    red = at["state"] == "red"
    row = validation.at(5).loc["expected curve"]
    assert row["sensitivity"] == pytest.approx((red & lab).sum() / lab.sum())
    assert row["specificity"] == pytest.approx((~red & ~lab).sum() / (~lab).sum())
    cal = validation.calibration
    c = cal[(cal["predictor"] == "failure probability") & (cal["session"] == 5)]
    assert c["calibration_slope"].between(0.6, 1.5).all()


def test_out_of_sample_estimate_is_not_optimistic(mixture, validation):
    # a reference fitted on an independent study, applied to the same clients
    other = _sim(600, 99)
    ref = mon.expected_response(other, "outcome", therapist="therapist_id")
    nt = mon.not_on_track(
        mixture, "outcome", reference=ref, cutoff=64, rci=14, failure="no_reliable_improvement"
    )
    scores = validation.scores
    for t in (3, 5):
        at = nt[(nt["session"] == t)].set_index("client_id")
        end = scores.groupby("client")["observed"].last()
        lab = (at["intake"] - end.reindex(at.index)) < 14
        fresh = mon.auc(at["p_failure"], lab)
        row = validation.at(t).loc["failure probability"]
        assert row["auc"] == pytest.approx(fresh, abs=0.02)
        assert row["auc_in_sample"] >= row["auc"] - 0.01
    # held-out predictions really differ from in-sample ones
    assert not np.allclose(scores["percentile"], scores["percentile_in_sample"])


def test_k_fold_by_client_and_in_sample_modes(mixture):
    kf = mon.validate_alerts(
        mixture,
        "outcome",
        cv="client",
        k=5,
        cutoff=64,
        rci=14,
        sessions=[4],
        n_boot=20,
        failures=["reliable_deterioration"],
        in_sample=False,
    )
    assert kf.settings["n_folds"] == 5
    assert kf.at(4, "reliable_deterioration").loc["expected curve", "n"] == 600
    with pytest.raises(DataError, match="therapist"):
        mon.validate_alerts(mixture, "outcome", rci=14)
    with pytest.raises(DataError, match="rci"):
        mon.validate_alerts(mixture, "outcome", therapist="therapist_id")


def _record_folds(monkeypatch):
    """Wrap _score_fold to record the therapists of each fold's training and test clients."""
    folds = []
    real = mon._score_fold

    def spy(train, test, *a, **kw):  # in_sample=False: only the folds call it
        folds.append((set(train["therapist"]), set(test["therapist"]), len(test)))
        return real(train, test, *a, **kw)

    monkeypatch.setattr(mon, "_score_fold", spy)
    return folds


def test_therapist_cv_switches_to_grouped_k_fold_above_the_threshold(mixture, monkeypatch):
    kw = dict(therapist="therapist_id", cutoff=64, rci=14, sessions=[3], n_boot=10)
    kw.update(failures=["no_reliable_improvement"], in_sample=False, ideal=False)
    n_ther = mixture["therapist_id"].nunique()  # 20
    folds = _record_folds(monkeypatch)
    loto = mon.validate_alerts(mixture, "outcome", **kw)
    assert loto.settings["scheme"] == "leave-one-therapist-out"
    assert loto.settings["n_folds"] == n_ther == len(folds)
    assert all(len(test) == 1 for _, test, _ in folds)
    # more therapists than loto_max: whole therapists to k folds, assigned by the seed
    folds.clear()
    grouped = mon.validate_alerts(mixture, "outcome", loto_max=n_ther - 1, k=4, seed=3, **kw)
    assert grouped.settings["scheme"] == "grouped k-fold by therapist"
    assert grouped.settings["n_folds"] == 4 == len(folds) and grouped.settings["k"] == 4
    tested = [t for _, test, _ in folds for t in test]
    assert sorted(tested) == sorted(mixture["therapist_id"].unique())  # each tested once
    for train, test, _ in folds:
        assert not train & test  # no therapist in both the training and the test clients
        assert len(test) == n_ther // 4
    # every client scored once, out of sample
    assert grouped.scores.groupby(["client", "session"]).size().max() == 1
    rows = [v.at(3, "no_reliable_improvement").loc["expected curve", "n"] for v in (loto, grouped)]
    assert rows[0] == rows[1]  # the same clients at risk, all scored out of sample
    # the folds depend on the seed, and the same seed gives the same folds
    first = [sorted(test) for _, test, _ in folds]
    folds.clear()
    mon.validate_alerts(mixture, "outcome", loto_max=n_ther - 1, k=4, seed=3, **kw)
    assert [sorted(test) for _, test, _ in folds] == first
    folds.clear()
    mon.validate_alerts(mixture, "outcome", loto_max=n_ther - 1, k=4, seed=4, **kw)
    assert [sorted(test) for _, test, _ in folds] != first
    # at the threshold itself: still leave-one-therapist-out
    at = mon.validate_alerts(mixture, "outcome", loto_max=n_ther, **kw)
    assert at.settings["scheme"] == "leave-one-therapist-out"


def test_in_sample_scores_reuse_the_same_fit(mixture):
    kw = dict(therapist="therapist_id", cutoff=64, rci=14, sessions=[3], n_boot=10, ideal=False)
    kw.update(failures=["no_reliable_improvement"], cv="client", k=3)
    ref = mon.expected_response(mixture, "outcome", therapist="therapist_id")
    reused = mon.validate_alerts(mixture, "outcome", reference=ref, **kw)
    refit = mon.validate_alerts(mixture, "outcome", **kw)
    pd.testing.assert_frame_equal(reused.scores, refit.scores, check_exact=True)
    pd.testing.assert_frame_equal(reused.table, refit.table, check_exact=True)
    other = mon.expected_response(
        mixture[mixture["session"] <= 6], "outcome", therapist="therapist_id"
    )
    with pytest.raises(DataError, match="same fit"):
        mon.validate_alerts(mixture, "outcome", reference=other, **kw)


def test_section_names_the_cross_validation_scheme():
    from alliance_lib.sections.monitoring import _cv_words

    grouped = {"scheme": "grouped k-fold by therapist", "k": 10, "loto_max_therapists": 50}
    assert _cv_words(grouped).startswith("10-fold by therapist")
    assert "above 50 therapists" in _cv_words(grouped)
    assert _cv_words({"scheme": "leave-one-therapist-out", "k": None}) == (
        "leave-one-therapist-out"
    )
    assert _cv_words({"scheme": "k-fold by client", "k": 10}) == "10-fold by client"


def test_ideal_predictor_is_the_bayes_posterior_by_monte_carlo():
    # P(failure | history) from the closed form against simulation of the same clients' futures
    mix = ResponseMixture()
    df = _sim(400, 8, {})
    end = df.groupby("client_id")["session"].max()
    p = ideal_failure_probability(
        df, at_session=2, end=end, failure="no_reliable_improvement", rci=14, cutoff=64
    )
    # law of total probability: the mean posterior equals the failure rate's expectation
    y0 = df[df["session"] == 0].set_index("client_id")["outcome"]
    yT = df[df["session"] == 16].set_index("client_id")["outcome"]
    observed = ((y0 - yT) < 14).mean()
    se = np.sqrt(observed * (1 - observed) / len(y0))
    assert p.mean() == pytest.approx(observed, abs=4 * se)
    assert mix.nonresponder_share == 0.25


# ----------------------------------------------------------------------------- alliance
def test_alliance_signals_hand_computed():
    d = pd.DataFrame(
        {
            "client_id": ["a"] * 6 + ["b"] * 2,
            "session": [1, 2, 3, 4, 5, 6, 1, 2],
            "srs": [38.0, 38.5, 37.5, 38.0, 33.0, 37.0, 35.0, 36.0],
        }
    )
    out = mon.alliance_signals(d, "srs")
    a = out[out["client_id"] == "a"]
    assert a["low"].tolist() == [False, False, False, False, True, False]
    # drops of >= 1 point from the previous session: 38.5 -> 37.5, 38 -> 33
    assert a["drop"].tolist()[1:] == [False, True, False, True, False]
    assert pd.isna(a["drop"].iloc[0])
    # session 5: prior mean 38, prior SD sd([38, 38.5, 37.5, 38]) = .408: 33 < 38 - 2 * .408
    assert pd.isna(a["rupture"].iloc[2]) and a["rupture"].iloc[3] is not pd.NA
    assert bool(a["rupture"].iloc[4]) and not bool(a["rupture"].iloc[3])
    # session 6: prior includes the rupture, SD widens: 37 is not a rupture
    assert not bool(a["rupture"].iloc[5])
    b = out[out["client_id"] == "b"]
    assert b["low"].tolist() == [True, False] and b["any_signal"].tolist() == [True, False]


def test_past_only_ruptures_do_not_change_when_later_sessions_are_deleted():
    df = al.simulate_study(n_therapists=5, n_clients=80, seed=4, output="scores")
    full = mon.alliance_signals(df, "alliance", cutoff=3.0, drop=0.5)
    cut = df[df["session"] <= 6]
    part = mon.alliance_signals(cut, "alliance", cutoff=3.0, drop=0.5)
    a = full[full["session"] <= 6].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, part, check_exact=True)
    # the whole-series rule of ruptures() uses future sessions; ours never does
    assert full["rupture"].notna().any()


@pytest.mark.slow
def test_alliance_signals_predict_dropout_only_when_the_alliance_drives_it():
    res = {}
    for name, truth in (
        ("linked", al.SimulationTruth()),
        ("null", al.SimulationTruth(dropout_alliance=0.0, between_effect=0.0, within_effect=0.0)),
    ):
        df = al.simulate_study(
            n_therapists=30, n_clients=1500, seed=12, output="scores", truth=truth
        )
        low = float(df.loc[df["session"] == 1, "alliance"].quantile(0.2))
        ev = mon.evaluate_alliance_signals(
            df,
            "alliance",
            "outcome",
            cutoff=low,
            drop=None,
            rci=14,
            outcome_cutoff=64,
            by_sessions=(3,),
        )
        res[name] = ev[(ev["target"] == "dropout")].set_index("signal")
    assert res["linked"].loc["low", "risk_ratio"] > 1.5
    assert res["linked"].loc["low", "auc"] > 0.55
    assert abs(res["null"].loc["low", "auc"] - 0.5) < 0.05
    # combining the signal with the outcome alert raises sensitivity, never lowers it
    both = res["linked"]
    assert both.loc["outcome red or low", "sensitivity"] >= both.loc["outcome red", "sensitivity"]


# ----------------------------------------------------------------------------- report section
@pytest.fixture(scope="module")
def demo_sections():
    from pathlib import Path

    from alliance_lib.sections.monitoring import monitoring_section

    study = al.load_study(Path(__file__).resolve().parents[1] / "data" / "demo" / "study.yaml")
    return {w: (al.prepare_wave(study, w), monitoring_section) for w in (2, 3)}


@pytest.mark.slow
def test_monitoring_section_on_the_demo_study(demo_sections):
    import json

    wave, section = demo_sections[3]
    s = section(wave, n_boot=50)
    assert s.applies and s.key == "monitoring"
    json.dumps(s.numbers, allow_nan=False)
    assert s.numbers["reference"]["outcome"] == "outcome"
    assert s.numbers["validation_settings"]["cv"] == "therapist"  # the demo has therapists
    # 20 therapists (<= 50): leave-one-therapist-out, as before issue 16
    assert s.numbers["validation_settings"]["scheme"] == "leave-one-therapist-out"
    assert s.numbers["validation_settings"]["n_folds"] == 20
    assert "estimated leave-one-therapist-out" in s.methods
    v3 = {r["predictor"]: r for r in s.numbers["validation"]["3"]["no_reliable_improvement"]}
    assert 0.5 < v3["expected curve"]["auc"] <= 1
    titles = [t.title for t in s.tables]
    assert titles[0].startswith("Accuracy of Not-on-Track Alerts")
    vt = s.tables[0].data  # accuracy, then predictive values (two tables: each fits the page)
    assert set(vt["Session"]) == {3, 5} and titles[1].startswith("Predictive Values")
    assert {"Sensitivity", "Sensitivity 95% CI", "Specificity"} <= set(vt.columns)
    assert {"PPV", "NPV", "AUC", "AUC 95% CI"} <= set(s.tables[1].data.columns)
    assert len(s.figures) == 1 and s.figures[0].caption
    assert titles[4] == "Alliance Signals as Early Warnings"
    at = s.tables[4].data
    # the WAI-SR has no published cutoff: the study's 10th percentile, and no drop rule
    assert at["Signal"].str.contains("10th percentile").any()
    assert not at["Signal"].str.startswith("Drop").any()
    assert s.numbers["clients_ongoing"] == s.numbers["current"]["clients"] > 0
    assert s.summary and s.methods and s.references
    # no raw ids, no paths in anything the report shows
    shown = json.dumps(s.numbers) + " ".join(s.sentences) + s.tables[3].data.to_csv()
    assert "CL-" not in shown and "TH-" not in shown and "/work" not in shown


@pytest.mark.slow
def test_not_on_track_list_is_pseudonymous_and_respects_small_cells(demo_sections):
    wave, section = demo_sections[2]
    s = section(wave, n_boot=20)
    listed = s.tables[3].data
    assert s.numbers["current"]["states"]["red"] == len(listed) > 0
    assert listed["Client"].str.match(r"^C-[0-9a-f]{8}$").all()
    per_ther = wave.sessions().drop_duplicates("client_id")["therapist_id"].value_counts()
    for ther in listed["Therapist"].dropna():
        assert per_ther[ther] >= wave.study.small_cell
    # a threshold above every therapist's caseload hides every therapist pseudonym
    import dataclasses

    strict = dataclasses.replace(wave, study=dataclasses.replace(wave.study, small_cell=10_000))
    hidden = section(strict, n_boot=20).tables[3].data
    assert len(hidden) == len(listed) and hidden["Therapist"].isna().all()


@pytest.mark.slow
def test_monitoring_validates_on_sampled_therapists_above_the_cap(demo_sections, monkeypatch):
    """Above VALIDATION_MAX_CLIENTS ended clients the accuracy is estimated on the clients of
    seeded, whole, randomly drawn therapists; the expected curves still use every client."""
    import dataclasses

    from alliance_lib.sections import monitoring as sm

    wave, section = demo_sections[3]
    full = section(wave, n_boot=20)
    assert full.numbers["validation_sample"] is None and "seeded random sample" not in full.methods
    monkeypatch.setattr(sm, "VALIDATION_MAX_CLIENTS", 100)
    fresh = dataclasses.replace(wave)  # no cached analyses from the run above
    part = section(fresh, n_boot=20)
    info = part.numbers["validation_sample"]
    assert info["unit"] == "therapists" and info["of_units"] == 20
    assert 100 <= info["clients"] < info["of_clients"] == full.numbers["clients_ended"]
    assert info["units"] < 20
    assert part.numbers["reference"] == full.numbers["reference"]  # every client
    n_part = {r["predictor"]: r["n"] for r in part.numbers["validation"]["3"][sm.FAILURE]}
    n_full = {r["predictor"]: r["n"] for r in full.numbers["validation"]["3"][sm.FAILURE]}
    assert n_part["expected curve"] < n_full["expected curve"]
    assert f"{info['clients']:,} ended clients of a seeded random sample" in part.methods
    assert f"seeded random sample of {info['units']} of 20 therapists" in part.tables[0].note
    assert "seeded random sample" not in full.tables[0].note
    # the same seed draws the same therapists
    again = section(dataclasses.replace(wave), n_boot=20).numbers["validation_sample"]
    assert again == info


def test_monitoring_section_skips_without_an_outcome(demo_sections):
    import dataclasses

    wave, section = demo_sections[3]
    s = section(dataclasses.replace(wave, outcome=None))
    assert not s.applies and "outcome" in s.not_applicable


# ----------------------------------------------------------------------------- against lme4
def test_expected_response_against_lme4():
    # R: tests/reference/lme4_monitoring.R (lmer(outcome ~ t * c + (t | client) + (1 | therapist)),
    # predictive SDs and the conditional normal of one client's session-12 score in matrix algebra)
    import json
    from pathlib import Path

    fx = Path(__file__).parent / "reference" / "fixtures"
    r = json.loads((fx / "lme4_monitoring.json").read_text())
    df = pd.read_csv(fx / "monitoring_etr.csv", dtype={"client_id": str, "therapist_id": str})
    ref = mon.expected_response(df, "outcome", therapist="therapist_id")
    assert ref.intake_mean == pytest.approx(r["intake_mean"], rel=1e-12)
    est = ref.fit.fixed["estimate"].to_numpy()
    np.testing.assert_allclose(est, list(r["fixed"].values()), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref._G, r["G"], rtol=2e-3, atol=1e-3)
    assert ref._sigma2 == pytest.approx(r["sigma2"], rel=1e-4)
    grid = pd.DataFrame(r["grid"])
    mean, sd = ref._moments(grid["intake"].to_numpy(), grid["session"].to_numpy())
    np.testing.assert_allclose(mean, grid["mean"], rtol=1e-5)
    np.testing.assert_allclose(sd, grid["sd"], rtol=1e-4)
    one = df[df["client_id"] == r["client"]]
    for c in r["conditional"]:
        post, _, _ = mon._frame(
            one[one["session"] <= c["k"]], "outcome", "client_id", "session", None, 0, 1.0
        )
        mu, s = mon._end_score_moments(ref, post, 12)
        assert mu[-1] == pytest.approx(c["mean"], rel=1e-4)
        assert s[-1] == pytest.approx(c["sd"], rel=1e-4)


@pytest.mark.parametrize(("shape", "knot"), [("log", None), ("quadratic", None), ("piecewise", 4)])
def test_other_curve_shapes(shape, knot):
    df = _sim(300, 7, GAUSS)
    ref = mon.expected_response(df, "outcome", shape=shape, knot=knot)
    grid = ref.predict([80.0], sessions=[1, 4, 8, 16])
    assert grid["expected"].is_monotonic_decreasing  # everyone improves in this world
    assert (grid["p90"] > grid["expected"]).all() and (grid["p10"] < grid["expected"]).all()
    nt = mon.not_on_track(df, "outcome", reference=ref, rci=14, failure="no_reliable_improvement")
    assert nt["p_failure"].between(0, 1).all()


def test_large_data_folds_start_from_the_first_fit_and_agree_with_cold_fits(mixture, monkeypatch):
    """From WARM_START_MIN_CLIENTS clients each fold's fit starts from the optimum of a fit of
    overlapping data (the reference, or the first fold): the fold optima agree with fits from
    scratch to the optimiser's tolerance, and so do the alert scores."""
    kw = dict(therapist="therapist_id", cutoff=64, rci=14, sessions=[3], n_boot=10)
    kw.update(failures=["no_reliable_improvement"], in_sample=False, ideal=False, k=4, seed=3)
    kw.update(loto_max=5)
    starts = []
    real = mon._fit_reference

    def spy(post, **options):
        starts.append(options.get("start"))
        return real(post, **options)

    monkeypatch.setattr(mon, "_fit_reference", spy)
    cold = mon.validate_alerts(mixture, "outcome", **kw)
    assert len(starts) == 4 and all(s is None for s in starts)  # small data: from scratch
    starts.clear()
    monkeypatch.setattr(mon, "WARM_START_MIN_CLIENTS", 10)
    warm = mon.validate_alerts(mixture, "outcome", **kw)
    assert starts[0] is None and all(s is not None for s in starts[1:]) and len(starts) == 4
    pd.testing.assert_series_equal(
        warm.scores["percentile"], cold.scores["percentile"], check_exact=False, atol=1e-6
    )
    a = warm.at(3, "no_reliable_improvement").loc["expected curve"]
    b = cold.at(3, "no_reliable_improvement").loc["expected curve"]
    assert a["n"] == b["n"] and abs(a["auc"] - b["auc"]) < 1e-6
