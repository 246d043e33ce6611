"""Teaching figures of alliance_lib.plots: each returns a Figure drawn from the data it is given."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import alliance_lib as al
from alliance_lib import plots


@pytest.fixture(scope="module")
def scores():
    return al.simulate_study(n_clients=40, n_therapists=5, max_sessions=6, seed=3, output="scores")


def test_item_answer_plot_one_bar_per_item_and_answer():
    raw = al.simulate_study(n_clients=30, n_therapists=3, max_sessions=2, seed=1)
    wai = al.get_instrument("wai-sr")
    fig = plots.item_answer_plot(raw[raw["session"] == 1], wai, title="t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 12 and all(lab.split()[0] in wai.subscales for lab in labels)
    # stacked shares: every item's bars add up to 1
    widths = np.zeros(12)
    for patch in ax.patches:
        widths[round(patch.get_y() + patch.get_height() / 2)] += patch.get_width()
    assert np.allclose(widths, 1.0)


def test_score_truth_plot_reports_r():
    d = pd.DataFrame({"t": [1.0, 2, 3, 4, 5], "s": [1.0, 2.2, 2.8, 4.1, 5.0]})
    fig = plots.score_truth_plot(d, truth="t", score="s")
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title() == f"Score against truth: r = {d['t'].corr(d['s']):.2f}"
    assert len(fig.axes[0].collections[0].get_offsets()) == 5


def test_correlation_heatmap_annotates_each_cell():
    d = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 4, 3], "c": [1.0, 1, 2, 2]})
    fig = plots.correlation_heatmap(d, ["a", "b", "c"], title="x")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 9 and texts[0] == "1.00"


def test_reliability_plot_one_row_per_scale():
    rel = pd.DataFrame(
        {
            "scale": ["total", "goal", "bond"],
            "alpha": [0.9, 0.8, 0.82],
            "alpha_ci_low": [0.88, 0.75, 0.78],
            "alpha_ci_high": [0.92, 0.85, 0.86],
            "omega": [0.91, 0.8, 0.83],
        }
    )
    fig = plots.reliability_plot(rel)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["total", "goal", "bond"]
    assert ax.get_xlim() == (0.6, 1.0)


def test_dropout_bias_plot_labels_the_three_slopes(scores):
    sessions = scores.dropna(subset=["alliance"])
    curve = pd.DataFrame({"session": np.arange(1, 7), "estimate": 3.5 + 0.03 * np.arange(1, 7)})
    fig = plots.dropout_bias_plot(sessions, curve, true_intercept=3.55, true_slope=0.03)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[0] == "mixed model (slope 0.030)" and labels[1] == "truth (slope 0.030)"
    assert labels[2].startswith("session means (slope ")
    assert len(fig.axes[1].patches) == sessions["session"].nunique()


def test_between_within_plot_three_panels(scores):
    fit = al.fit_alliance_outcome(
        scores, "alliance", "outcome", detrend=True, control_prior_outcome=False
    )
    fig = plots.between_within_plot(fit.data, title="World")
    assert len(fig.axes) == 3 and fig._suptitle.get_text() == "World"
    assert fig.axes[1].collections[0].get_offsets().shape[0] == fit.data["client_id"].nunique()


def test_estimates_by_group_plot_one_panel_per_group():
    e = pd.DataFrame(
        {
            "world": ["A", "A", "B", "B"],
            "analysis": ["naive", "within"] * 2,
            "estimate": [-9.0, 0.2, -11, -6.1],
            "ci_low": [-10.0, -0.8, -12, -7.0],
            "ci_high": [-8.0, 1.2, -10, -5.2],
            "truth": [np.nan, 0.0, np.nan, -6.0],
        }
    )
    fig = plots.estimates_by_group_plot(e, xlabel="points")
    assert [ax.get_title() for ax in fig.axes] == ["A", "B"]
    assert fig.axes[0].get_xlabel() == "points"


def test_cluster_spread_plot_sorts_clusters(scores):
    sessions = scores.dropna(subset=["alliance"])
    fig = plots.cluster_spread_plot(sessions)
    means = fig.axes[0].lines[0].get_ydata()
    assert len(means) == sessions["therapist_id"].nunique()
    assert np.all(np.diff(means) >= 0)


def test_replication_plot_marks_truth():
    r = pd.DataFrame({"design": ["10", "10", "40", "40"], "sd": [0.1, 0.3, 0.17, 0.19]})
    fig = plots.replication_plot(r, x="sd", truth=0.18, xlabel="SD")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "SD" and ax.lines[-1].get_xdata()[0] == 0.18


def test_two_level_plot_uses_cluster_means():
    p = pd.DataFrame(
        {
            "therapist_id": list("aabbcc"),
            "alliance_therapist_mean": [3, 3, 4, 4, 5, 5.0],
            "alliance_within_therapist": [-0.1, 0.1, -0.2, 0.2, 0, 0.1],
            "post": [50, 48, 40, 41, 30, 33.0],
        }
    )
    fig = plots.two_level_plot(p)
    assert fig.axes[0].collections[0].get_offsets().shape[0] == 3
    assert fig.axes[1].collections[0].get_offsets().shape[0] == 6


def test_rupture_examples_plot_one_panel_per_kind():
    d = pd.DataFrame(
        {
            "client_id": ["a"] * 6 + ["b"] * 6 + ["c"] * 6,
            "session": list(range(1, 7)) * 3,
            "alliance": [4, 4.1, 2, 4, 4.1, 4] + [4, 4, 3, 3, 3, 3] + [4, 4, 4.1, 3.9, 4, 4.0],
        }
    )
    ep = pd.DataFrame({"client_id": ["a"], "rupture_session": [3], "score": [2.0]})
    pl = pd.DataFrame({"kind": ["dip", "drop", "none"], "at": [3, 3, 4]}, index=["a", "b", "c"])
    fig = plots.rupture_examples_plot(d, ep, pl)
    assert [ax.get_title() for ax in fig.axes] == [
        "planted: dip at session 3",
        "planted: drop at session 3",
        "nothing planted",
    ]


def test_pattern_share_plot_one_panel_per_rule():
    idx = pd.MultiIndex.from_product(
        [["stiles", "strauss"], ["dip", "none"]], names=["rule", "planted"]
    )
    t = pd.DataFrame(
        {"no rupture": [0.1, 0.9, 0.05, 0.6], "repaired": [0.9, 0.1, 0.95, 0.4]}, index=idx
    )
    fig = plots.pattern_share_plot(t)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_sudden_gain_examples_plot_draws_each_gain():
    d = pd.DataFrame(
        {
            "client_id": ["a"] * 6 + ["b"] * 6,
            "session": list(range(6)) * 2,
            "outcome": [80, 78, 77, 55, 54, 53.0] + [70, 69, 68, 67, 66, 65.0],
        }
    )
    g = pd.DataFrame(
        {
            "client_id": ["a"],
            "pre_session": [2],
            "post_session": [3],
            "score_n": [77.0],
            "score_n_plus_1": [55.0],
        }
    )
    fig = plots.sudden_gain_examples_plot(d, g, pd.Series({"a": 3, "b": 2}))
    assert [ax.get_title() for ax in fig.axes] == [
        "1 sudden gain(s) found",
        "0 sudden gain(s) found",
    ]
    assert len(fig.axes[0].texts) == 1  # one arrow


def test_rci_null_plot_reports_share_beyond_limits():
    rci = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.5, np.nan, 0.1])
    fig = plots.rci_null_plot(rci)
    assert fig.axes[0].get_title() == "28.6% of unchanged clients cross ±1.96 by chance"


def test_change_histogram_plot_lines_at_truth_and_threshold():
    fig = plots.change_histogram_plot(
        np.array([-30.0, -20, -25]), true_change=-26.4, threshold=16.6
    )
    xs = [line.get_xdata()[0] for line in fig.axes[0].lines]
    assert xs == [-26.4, -16.6]


@pytest.fixture(scope="module")
def monitored():
    df = al.simulate_study(n_therapists=8, n_clients=160, seed=5, output="scores")
    ref = al.expected_response(df, "outcome")
    return ref, al.not_on_track(df, "outcome", reference=ref, cutoff=64)


def test_expected_response_plot_bands_and_states(monitored):
    ref, nt = monitored
    # a client who has both a red and a non-red session, so several states are drawn
    has = nt.groupby("client_id")["state"].agg(lambda s: {"red", "green"} <= set(s))
    one = nt[nt["client_id"] == has[has].index[0]]
    fig = plots.expected_response_plot(one, ref, cutoff=64)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    intake = float(one["intake"].iloc[0])
    red = lines["red boundary (90th percentile)"]
    x = red.get_xdata()
    np.testing.assert_allclose(red.get_ydata(), ref.quantile(intake, x, 0.9))
    np.testing.assert_allclose(lines["expected (median)"].get_ydata(), ref.quantile(intake, x, 0.5))
    # the client's line starts at the intake score at session 0
    client = lines["this client"]
    assert client.get_xdata()[0] == 0 and client.get_ydata()[0] == intake
    # every state's markers sit at that state's sessions, and red ones lie above the boundary
    drawn = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label()}
    for state, (label, _, _) in plots.ALERT_STYLE.items():
        rows = one[one["state"] == state]
        if rows.empty:
            assert label not in drawn
            continue
        np.testing.assert_allclose(drawn[label][:, 0], rows["session"])
        np.testing.assert_allclose(drawn[label][:, 1], rows["observed"])
    reds = one[one["state"] == "red"]
    assert (reds["observed"] > ref.quantile(intake, reds["session"], 0.9)).all()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "clinical cutoff" in legend and "80% of comparable clients" in legend


def test_expected_response_plot_needs_one_client(monitored):
    ref, nt = monitored
    with pytest.raises(al.errors.DataError, match="one client"):
        plots.expected_response_plot(nt, ref)
    with pytest.raises(al.errors.DataError, match="no rows"):
        plots.expected_response_plot(nt.iloc[:0], ref)


def test_large_scatters_draw_a_stated_sample_and_the_line_uses_every_row():
    import matplotlib.pyplot as plt

    from alliance_lib import plots

    rng = np.random.default_rng(1)
    n = plots.MAX_POINTS * 3
    x = rng.normal(4, 0.6, n)
    t = pd.DataFrame({"a": x, "b": -5 * x + rng.normal(0, 3, n)})
    fig = plots.early_alliance_plot(t, x="a", y="b")
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")) <= (
        plots.MAX_POINTS + 200  # the band's polygon is a collection too
    )
    notes = [txt.get_text() for txt in ax.texts]
    assert any(f"5,000 of {n:,} clients drawn" in s for s in notes)
    line = ax.lines[0]
    slope = np.polyfit(line.get_xdata(), line.get_ydata(), 1)[0]
    assert slope == pytest.approx(np.polyfit(x, t["b"], 1)[0], rel=1e-9)  # all rows
    small = plots.early_alliance_plot(t.iloc[:100], x="a", y="b")
    assert not small.axes[0].texts  # no note when every point is drawn
    plt.close("all")


def test_ols_band_is_the_t_interval_of_the_mean_line():
    import matplotlib.pyplot as plt
    from scipy import stats

    from alliance_lib import plots

    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 50)
    y = 1 + 2 * x + rng.normal(0, 1, 50)
    fig, ax = plt.subplots()
    plots._ols_band(ax, x, y)
    band = ax.collections[0].get_paths()[0].vertices
    res = stats.linregress(x, y)
    x0 = float(x.min())
    s = np.sqrt(((y - res.intercept - res.slope * x) ** 2).sum() / 48)
    half = (
        stats.t.ppf(0.975, 48)
        * s
        * np.sqrt(1 / 50 + (x0 - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    )
    at_x0 = band[np.isclose(band[:, 0], x0)][:, 1]
    fit0 = res.intercept + res.slope * x0
    assert at_x0.min() == pytest.approx(fit0 - half, rel=1e-9)
    assert at_x0.max() == pytest.approx(fit0 + half, rel=1e-9)
    plt.close("all")


def test_box_plots_of_many_values_leave_the_outliers_out_and_say_so(monkeypatch):
    from alliance_lib import plots

    rng = np.random.default_rng(4)
    d = pd.DataFrame({"session": np.repeat([1, 2], 500), "outcome": rng.standard_t(2, 1000)})
    few = plots.distribution_by_session(d, score="outcome")
    assert any(len(line.get_xdata()) for line in few.axes[0].lines if line.get_marker() != "None")
    assert not few.axes[0].texts
    monkeypatch.setattr(plots, "MAX_FLIERS", 999)
    many = plots.distribution_by_session(d, score="outcome")
    fliers = [line for line in many.axes[0].lines if line.get_marker() not in ("None", "")]
    assert all(len(line.get_xdata()) == 0 for line in fliers)
    assert [t.get_text() for t in many.axes[0].texts] == ["outliers not drawn (1,000 values)"]


def test_caterpillar_labels_few_units_and_draws_many_by_rank():
    rng = np.random.default_rng(4)

    def effects(n):
        est = rng.normal(0, 0.2, n)
        return pd.DataFrame(
            {
                "therapist_id": [f"T{i}" for i in range(n)],
                "estimate": est,
                "ci_low": est - 0.1,
                "ci_high": est + 0.1,
            }
        )

    few = plots.caterpillar_plot(effects(12))
    labels = [t.get_text() for t in few.axes[0].get_yticklabels()]
    assert len(labels) == 12 and set(labels) == {f"T{i}" for i in range(12)}
    many = effects(plots.MAX_LABELLED + 1)
    fig = plots.caterpillar_plot(many)
    ax = fig.axes[0]
    # a fixed height, no unit labels, and every unit's interval drawn at its rank
    assert fig.get_figheight() == 4.8 and ax.get_ylabel().startswith("Rank")
    assert not any(t.get_text().startswith("T") for t in ax.get_yticklabels())
    segments = ax.collections[0].get_segments()
    assert len(segments) == len(many)
    lows = sorted(float(s[0][0]) for s in segments)
    assert np.allclose(lows, np.sort(many["ci_low"]))
    assert any(f"{len(many)} therapists by rank" in t.get_text() for t in ax.texts)
