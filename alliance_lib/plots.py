"""Figures for reports and teaching; each function returns a matplotlib Figure.

All figures take tidy DataFrames, use pseudonymous IDs only, draw client samples with an explicit
``seed``, and never label individual clients.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = [
    "thin",
    "trajectory_plot",
    "distribution_by_session",
    "early_alliance_plot",
    "missingness_plot",
    "rater_plot",
    "caterpillar_plot",
    "wave_plot",
    "event_timeline_plot",
    "shape_comparison_plot",
    "jacobson_truax_plot",
]

#: Okabe & Ito (2008) colour-blind-safe palette (distinguishable under the common colour-vision
#: deficiencies); every figure draws its colours from it.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",
)
PALETTE = {"client": "#0072B2", "therapist": "#D55E00", "mean": "#000000", "band": "#56B4E9"}


def _fig(width: float = 7.5, height: float = 4.2):
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


#: Most points a scatter draws: beyond it a seeded random sample is drawn and the figure says
#: so (lines, bands and counts still use every row). Keeps figures readable and their SVG small.
MAX_POINTS = 5000
#: Box plots draw their outliers up to this many values (beyond: boxes and whiskers only).
MAX_FLIERS = 20000


def thin(data: pd.DataFrame, max_points: int = MAX_POINTS, seed: int = 0) -> pd.DataFrame:
    """At most ``max_points`` rows of ``data`` for a scatter: a seeded random sample in the
    original order (all rows when there are fewer).

    Examples
    --------
    >>> d = pd.DataFrame({"x": range(10)})
    >>> len(thin(d, 4)), thin(d, 4).index.is_monotonic_increasing, len(thin(d, 40))
    (4, True, 10)
    """
    if len(data) <= max_points:
        return data
    pick = np.sort(np.random.default_rng(seed).choice(len(data), max_points, replace=False))
    return data.iloc[pick]


def _corner_note(ax, text: str, *, top: bool = False) -> None:
    """A small grey note in the axes' right corner (bottom, or top)."""
    ax.text(
        0.99,
        0.99 if top else 0.01,
        text,
        transform=ax.transAxes,
        ha="right",
        va="top" if top else "bottom",
        fontsize=7,
        color="#555555",
    )


def _sample_note(ax, shown: int, total: int, what: str = "points") -> None:
    """A small note in the axes when a scatter shows a sample of its rows."""
    if shown < total:
        _corner_note(ax, f"{shown:,} of {total:,} {what} drawn (random sample); lines use all")


def _ols_band(ax, x: np.ndarray, y: np.ndarray, *, level: float = 0.95, color=None) -> None:
    """The least-squares line of ``y`` on ``x`` with its pointwise confidence band (t-based,
    exact under the normal linear model; Weisberg 2014, section 2.8)."""
    from scipy import stats

    n = x.size
    if n < 3 or not np.ptp(x) > 0:
        return
    xbar = float(x.mean())
    sxx = float(((x - xbar) ** 2).sum())
    b = float(((x - xbar) * (y - y.mean())).sum() / sxx)
    a = float(y.mean() - b * xbar)
    s = math.sqrt(float(((y - a - b * x) ** 2).sum()) / (n - 2))
    grid = np.linspace(float(x.min()), float(x.max()), 100)
    half = stats.t.ppf(0.5 + level / 2, n - 2) * s * np.sqrt(1 / n + (grid - xbar) ** 2 / sxx)
    fit = a + b * grid
    ax.plot(grid, fit, color=color or PALETTE["mean"], lw=1.6)
    ax.fill_between(grid, fit - half, fit + half, color=color or PALETTE["mean"], alpha=0.15, lw=0)


def trajectory_plot(
    sessions: pd.DataFrame,
    *,
    score: str = "alliance",
    client: str = "client_id",
    session: str = "session",
    curve: pd.DataFrame | None = None,
    n_clients: int = 40,
    seed: int = 0,
    ylabel: str | None = None,
    title: str | None = None,
):
    """Individual trajectories of a random sample of clients with the fitted mean curve.

    Parameters
    ----------
    sessions : DataFrame
        Long data with one row per client × session.
    score : str
        Column to plot.
    curve : DataFrame, optional
        Population curve with columns ``session`` (or the time column), ``estimate``,
        ``ci_low`` and ``ci_high``, e.g. from ``TrajectoryFit.predict()``.
    n_clients : int
        Clients drawn at random (with ``seed``) for the spaghetti lines.

    Returns
    -------
    Figure

    Examples
    --------
    >>> from alliance_lib.simulate import simulate_study
    >>> d = simulate_study(n_clients=30, n_therapists=3, seed=1, output="scores")
    >>> fig = trajectory_plot(d.dropna(subset=["alliance"]), n_clients=10)
    >>> len(fig.axes)
    1
    """
    data = sessions.dropna(subset=[score])
    ids = np.sort(data[client].unique())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(n_clients, len(ids)), replace=False)
    sample = data[data[client].isin(chosen)].sort_values([client, session])
    fig, ax = _fig()
    for _, g in sample.groupby(client, sort=True):
        ax.plot(g[session], g[score], color=PALETTE["client"], alpha=0.25, lw=0.9)
    if curve is not None:
        x = curve[session] if session in curve else curve.iloc[:, 0]
        ax.fill_between(
            x,
            curve["ci_low"],
            curve["ci_high"],
            color=PALETTE["band"],
            alpha=0.6,
            label="95% CI of the mean curve",
        )
        ax.plot(x, curve["estimate"], color=PALETTE["mean"], lw=2.5, label="fitted mean")
        ax.legend(loc="lower right", frameon=False)
    ax.set_xlabel("Session")
    ax.set_ylabel(ylabel or score)
    ax.set_title(title or f"Individual trajectories ({len(chosen)} of {len(ids)} clients)")
    sns.despine(fig)
    return fig


def distribution_by_session(
    sessions: pd.DataFrame,
    *,
    score: str,
    session: str = "session",
    ylabel: str | None = None,
    title: str | None = None,
):
    """Box plots of a score at every session, with the number of clients measured.

    Examples
    --------
    >>> from alliance_lib.simulate import simulate_study
    >>> d = simulate_study(n_clients=30, n_therapists=3, seed=1, output="scores")
    >>> distribution_by_session(d, score="outcome").axes[0].get_xlabel()
    'Session'
    """
    data = sessions.dropna(subset=[score])
    fig, ax = _fig()
    order = sorted(data[session].unique())
    groups = [g.to_numpy() for _, g in data.groupby(session, sort=True)[score]]
    ax.boxplot(
        groups,
        positions=range(len(order)),
        widths=0.6,
        patch_artist=True,
        boxprops={"facecolor": "#cfe3f1", "linewidth": 0.8},
        medianprops={"color": PALETTE["client"], "linewidth": 1.6},
        flierprops={"markersize": 1.5},
        showfliers=len(data) <= MAX_FLIERS,
    )
    if len(data) > MAX_FLIERS:
        _corner_note(ax, f"outliers not drawn ({len(data):,} values)", top=True)
    counts = data.groupby(session).size().reindex(order)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{s}\nn={n}" for s, n in zip(order, counts, strict=True)], fontsize=7)
    ax.set_xlabel("Session")
    ax.set_ylabel(ylabel or score)
    ax.set_title(title or f"Distribution of {ylabel or score} by session")
    sns.despine(fig)
    return fig


def early_alliance_plot(
    table: pd.DataFrame,
    *,
    x: str,
    y: str,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
):
    """Scatter of early alliance against later outcome, with the least-squares line and its 95% CI.

    Examples
    --------
    >>> t = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 0, -1]})
    >>> early_alliance_plot(t, x="a", y="b").axes[0].get_xlabel()
    'a'
    """
    data = table.dropna(subset=[x, y])
    fig, ax = _fig(6.0, 4.5)
    shown = thin(data)
    ax.scatter(shown[x], shown[y], s=12, alpha=0.5, color=PALETTE["client"], lw=0)
    _ols_band(ax, data[x].to_numpy(dtype=float), data[y].to_numpy(dtype=float))
    _sample_note(ax, len(shown), len(data), "clients")
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title or f"{xlabel or x} and {ylabel or y} (n = {len(data)})")
    sns.despine(fig)
    return fig


def missingness_plot(table: pd.DataFrame, *, session: str = "session", title: str | None = None):
    """Share of missing item responses by session and instrument.

    ``table`` has columns ``session``, ``instrument`` and ``missing_share``.
    """
    fig, ax = _fig(7.5, 3.6)
    sns.lineplot(
        data=table,
        x=session,
        y="missing_share",
        hue="instrument",
        style="instrument",
        markers=True,
        palette=list(OKABE_ITO[: table["instrument"].nunique()]),
        ax=ax,
    )
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.1f}%")
    ax.set_ylabel("Item responses missing")
    ax.set_xlabel("Session")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Item-level missingness by session")
    sns.despine(fig)
    return fig


def rater_plot(
    sessions: pd.DataFrame,
    *,
    client_col: str = "alliance",
    therapist_col: str = "alliance_therapist",
    label: str | None = None,
    title: str | None = None,
    limits: tuple[float, float, float] | None = None,
):
    """Client against therapist ratings of the same sessions, with the identity line, and the
    Bland-Altman difference plot beside it; ``label`` names the instrument on the axes.
    ``limits`` = (bias, lower, upper) draws given limits of agreement (e.g. the repeated-measures
    limits of Bland & Altman 2007 from :func:`alliance_lib.rater_agreement`); default: mean
    difference -/+ 1.96 SD of the pairs (Bland & Altman 1986)."""
    data = sessions.dropna(subset=[client_col, therapist_col])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    shown = thin(data)
    ax1.scatter(shown[client_col], shown[therapist_col], s=6, alpha=0.3, color=PALETTE["client"])
    _sample_note(ax1, len(shown), len(data), "sessions")
    lo = float(np.nanmin(data[[client_col, therapist_col]].to_numpy()))
    hi = float(np.nanmax(data[[client_col, therapist_col]].to_numpy()))
    ax1.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=0.8)
    what = f" ({label})" if label else ""
    ax1.set_xlabel(f"Client rating{what}")
    ax1.set_ylabel(f"Therapist rating{what}")
    ax1.set_title("Same sessions, two raters")
    mean = (data[client_col] + data[therapist_col]) / 2
    diff = data[client_col] - data[therapist_col]
    md, sd = diff.mean(), diff.std(ddof=1)
    lines = limits if limits is not None else (md, md - 1.96 * sd, md + 1.96 * sd)
    ax2.scatter(
        mean.loc[shown.index], diff.loc[shown.index], s=6, alpha=0.3, color=PALETTE["therapist"]
    )
    _sample_note(ax2, len(shown), len(data), "sessions")
    for v, ls in zip(lines, ("-", "--", "--"), strict=True):
        ax2.axhline(v, color="black", ls=ls, lw=0.8)
    ax2.set_xlabel(f"Mean of the two ratings{what}")
    ax2.set_ylabel("Client − therapist")
    ax2.set_title("Bland-Altman: bias and 95% limits of agreement")
    fig.suptitle(title or "Client and therapist ratings of the alliance")
    sns.despine(fig)
    return fig


#: Most units a caterpillar plot labels one by one; beyond it the units are drawn by rank
#: (a fixed-height figure without per-unit labels; the report keeps the IDs in results.json).
MAX_LABELLED = 60


def caterpillar_plot(
    effects: pd.DataFrame,
    *,
    estimate: str = "estimate",
    low: str = "ci_low",
    high: str = "ci_high",
    label: str = "therapist_id",
    xlabel: str = "Therapist effect",
    title: str | None = None,
    max_labelled: int = MAX_LABELLED,
    units: str = "therapists",
):
    """Therapist (or client) effects sorted by size with their intervals.

    Up to ``max_labelled`` units each get a row with its label; beyond it the units are drawn
    by rank in a figure of fixed height (the figure says so): 2,000 labelled rows would make a
    figure 440 inches tall that no reader can use, and cost seconds to draw.

    Examples
    --------
    >>> import pandas as pd
    >>> fx = pd.DataFrame({"therapist_id": ["T1", "T2"], "estimate": [0.2, -0.1],
    ...                    "ci_low": [0.0, -0.3], "ci_high": [0.4, 0.1]})
    >>> [t.get_text() for t in caterpillar_plot(fx).axes[0].get_yticklabels()]
    ['T2', 'T1']
    """
    data = effects.dropna(subset=[estimate]).sort_values(estimate).reset_index(drop=True)
    labelled = len(data) <= max_labelled
    height = max(3.0, 0.22 * len(data) + 1.2) if labelled else 4.8
    fig, ax = _fig(6.5, height)
    y = np.arange(len(data))
    if labelled:
        ax.errorbar(
            data[estimate],
            y,
            xerr=[data[estimate] - data[low], data[high] - data[estimate]],
            fmt="o",
            ms=4,
            color=PALETTE["client"],
            ecolor=PALETTE["band"],
            capsize=0,
        )
        ax.set_yticks(y)
        ax.set_yticklabels(data[label], fontsize=7)
    else:
        ax.hlines(y, data[low], data[high], color=PALETTE["band"], lw=0.6)
        ax.plot(data[estimate], y, ls="none", marker="o", ms=1.5, color=PALETTE["client"])
        ax.set_ylim(-0.01 * len(data), 1.01 * len(data) - 1)
        ax.set_ylabel("Rank (lowest effect at the bottom)")
        _corner_note(ax, f"{len(data):,} {units} by rank, unlabelled above {max_labelled}")
    ax.axvline(0, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title or "Therapist effects (empirical Bayes, 95% intervals)")
    sns.despine(fig)
    return fig


def wave_plot(
    table: pd.DataFrame,
    *,
    wave: str = "wave",
    estimate: str = "estimate",
    low: str = "ci_low",
    high: str = "ci_high",
    term: str = "term",
    title: str | None = None,
):
    """Key estimates across waves, one panel per term, with 95% intervals."""
    terms = list(dict.fromkeys(table[term]))
    fig, axes = plt.subplots(
        1, len(terms), figsize=(3.2 * len(terms) + 0.5, 3.4), layout="constrained", squeeze=False
    )
    for ax, t in zip(axes[0], terms, strict=True):
        d = table[table[term] == t]
        ax.errorbar(
            d[wave],
            d[estimate],
            yerr=[d[estimate] - d[low], d[high] - d[estimate]],
            fmt="o-",
            color=PALETTE["client"],
            capsize=3,
        )
        ax.set_xticks(d[wave])
        ax.set_xlabel("Wave")
        ax.set_title(t, fontsize=9)
    fig.suptitle(title or "Key estimates wave over wave")
    sns.despine(fig)
    return fig


def event_timeline_plot(
    events: pd.DataFrame,
    *,
    client: str = "client_id",
    session: str = "session",
    kind: str = "kind",
    n_sessions: pd.Series | None = None,
    title: str | None = None,
):
    """One line per client with events (ruptures, repairs, sudden gains …) marked by kind."""
    clients = list(dict.fromkeys(events[client]))
    pos = {c: i for i, c in enumerate(clients)}
    fig, ax = _fig(7.5, max(3.0, 0.18 * len(clients) + 1.2))
    if n_sessions is not None:
        for c in clients:
            ax.hlines(pos[c], 1, n_sessions.get(c, 1), color="#dddddd", lw=1)
    kinds = sorted(events[kind].unique())
    markers = dict(zip(kinds, "ovs^Dx", strict=False))
    colours = dict(zip(kinds, OKABE_ITO, strict=False))
    for k, g in events.groupby(kind, sort=True):
        ax.scatter(
            g[session], g[client].map(pos), marker=markers[k], s=22, label=k, color=colours[k]
        )
    ax.set_yticks([])
    ax.set_xlabel("Session")
    ax.set_ylabel(f"Clients with an event (n = {len(clients)})")
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    ax.set_title(title or "Change events by client")
    sns.despine(fig)
    return fig


def shape_comparison_plot(
    curves: pd.DataFrame,
    observed: pd.DataFrame | None = None,
    *,
    session: str = "session",
    shape: str = "shape",
    ylabel: str | None = None,
    title: str | None = None,
):
    """Fitted mean curves of several trajectory shapes, over the observed session means.

    ``observed`` has columns ``session``, ``mean``, ``se`` and, optionally, ``n`` (clients
    measured): the n is printed under each session, since later means rest on fewer clients.

    Examples
    --------
    >>> curves = pd.DataFrame({"session": [1, 2, 1, 2], "estimate": [3.0, 3.2, 3.1, 3.2],
    ...                        "shape": ["linear", "linear", "log", "log"]})
    >>> obs = pd.DataFrame({"session": [1, 2], "mean": [3.0, 3.3], "se": [0.1, 0.1], "n": [9, 5]})
    >>> fig = shape_comparison_plot(curves, obs, ylabel="WAI-SR")
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['n', '9', '5']
    """
    fig, ax = _fig()
    if observed is not None:
        ax.errorbar(
            observed[session],
            observed["mean"],
            yerr=1.96 * observed["se"],
            fmt="o",
            color="#555555",
            ms=3,
            label="observed mean ± 1.96 SE",
        )
    styles = ("-", "--", "-.", ":")
    for i, (name, g) in enumerate(curves.groupby(shape, sort=False)):
        ax.plot(
            g[session],
            g["estimate"],
            lw=2,
            ls=styles[i % len(styles)],
            color=OKABE_ITO[i % len(OKABE_ITO)],
            label=name,
        )
    if observed is not None and "n" in observed:
        transform = ax.get_xaxis_transform()
        ax.text(
            0,
            0.02,
            "n",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6.5,
            color="#555555",
        )
        for x, n in zip(observed[session], observed["n"], strict=True):
            ax.text(
                x,
                0.02,
                f"{int(n)}",
                transform=transform,
                ha="center",
                va="bottom",
                fontsize=6.5,
                color="#555555",
            )
    ax.set_xlabel("Session")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    ax.set_title(title or "Trajectory shapes compared")
    sns.despine(fig)
    return fig


def jacobson_truax_plot(
    table: pd.DataFrame,
    *,
    pre: str = "pre",
    post: str = "post",
    cutoff: float | None = None,
    rc_points: float | None = None,
    category: str = "category",
    label: str = "score",
    title: str | None = None,
):
    """Pre against post scores with the no-change line, the reliable-change band and the
    clinical cutoff (Jacobson & Truax 1991), points coloured by outcome category.

    Examples
    --------
    >>> t = pd.DataFrame({"pre": [80.0, 70, 60], "post": [40.0, 68, 75],
    ...                   "category": ["recovered", "unchanged", "deteriorated"]})
    >>> jacobson_truax_plot(t, cutoff=64, rc_points=14).axes[0].get_xlabel()
    'score at intake'
    """
    data = table.dropna(subset=[pre, post])
    fig, ax = _fig(6.0, 5.6)
    colours = {
        "recovered": OKABE_ITO[2],
        "improved": OKABE_ITO[5],
        "unchanged": "#999999",
        "deteriorated": OKABE_ITO[3],
    }
    shown = thin(data)
    counts = data.groupby(category, sort=True).size()
    for cat, g in shown.groupby(category, sort=True):
        ax.scatter(
            g[pre],
            g[post],
            s=14,
            alpha=0.75,
            color=colours.get(cat, PALETTE["client"]),
            label=f"{cat} ({counts[cat]:,})",
        )
    _sample_note(ax, len(shown), len(data), "clients")
    lo = float(min(data[pre].min(), data[post].min()))
    hi = float(max(data[pre].max(), data[post].max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    if rc_points is not None:
        for sign in (-1, 1):
            ax.plot(
                [lo, hi],
                [lo + sign * rc_points, hi + sign * rc_points],
                color="black",
                lw=0.6,
                ls="--",
            )
    if cutoff is not None:
        ax.axhline(cutoff, color=OKABE_ITO[1], lw=1.2, label=f"cutoff {cutoff:g}")
        ax.axvline(cutoff, color=OKABE_ITO[1], lw=1.2)
    ax.set_xlabel(f"{label} at intake")
    ax.set_ylabel(f"{label} at last session")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or "Reliable and clinically significant change")
    sns.despine(fig)
    return fig


# --------------------------------------------------------------------------------------------
# Teaching figures (notebooks/teaching): one function per figure, so lesson cells stay short.

__all__ += [
    "item_answer_plot",
    "score_truth_plot",
    "correlation_heatmap",
    "reliability_plot",
    "dropout_bias_plot",
    "between_within_plot",
    "estimates_by_group_plot",
    "cluster_spread_plot",
    "replication_plot",
    "two_level_plot",
    "rupture_examples_plot",
    "pattern_share_plot",
    "sudden_gain_examples_plot",
    "rci_null_plot",
    "change_histogram_plot",
]


def item_answer_plot(data: pd.DataFrame, instrument, *, title: str | None = None):
    """Stacked shares of each answer per item, items labelled by their subscale.

    Parameters
    ----------
    data : DataFrame
        Rows with the instrument's item columns (raw answers; out-of-range values are ignored).
    instrument : Instrument
        From :func:`alliance_lib.get_instrument`; gives the subscales, item columns and scale.

    Examples
    --------
    >>> import alliance_lib as al
    >>> d = al.simulate_study(n_clients=20, n_therapists=2, seed=1)
    >>> fig = item_answer_plot(d[d["session"] == 1], al.get_instrument("wai-sr"))
    >>> fig.axes[0].get_xlabel()
    'Share of answers'
    """
    answers = data[list(instrument.columns)].melt(var_name="item", value_name="answer").dropna()
    answers = answers[answers["answer"].between(instrument.scale_min, instrument.scale_max)]
    labels = {
        col: f"{part} {col.rsplit('_', 1)[-1]}"
        for part in instrument.subscales
        for col in instrument.item_columns(part)
    }
    answers["item"] = answers["item"].map(labels)
    shares = pd.crosstab(answers["item"], answers["answer"], normalize="index").sort_index()
    fig, ax = _fig(7.5, 4.5)
    shares.plot.barh(stacked=True, colormap="RdYlBu", width=0.85, ax=ax)
    ax.set_xlabel("Share of answers")
    ax.set_ylabel("Subscale and item")
    ax.legend(title="Answer", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title or "Answers by item and subscale")
    return fig


def score_truth_plot(
    data: pd.DataFrame,
    *,
    truth: str,
    score: str,
    xlabel: str | None = None,
    ylabel: str | None = None,
):
    """Observed score against the true (latent) value, with the identity line and r in the title.

    Examples
    --------
    >>> d = pd.DataFrame({"true": [1.0, 2, 3, 4], "score": [1.2, 1.9, 3.1, 3.8]})
    >>> score_truth_plot(d, truth="true", score="score").axes[0].get_title()
    'Score against truth: r = 0.99'
    """
    both = data.dropna(subset=[truth, score])
    fig, ax = _fig(5.5, 5.0)
    ax.scatter(both[truth], both[score], s=5, alpha=0.3)
    lo = float(min(both[truth].min(), both[score].min()))
    hi = float(max(both[truth].max(), both[score].max()))
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
    ax.set_xlabel(xlabel or f"True {truth}")
    ax.set_ylabel(ylabel or score)
    ax.set_title(f"Score against truth: r = {both[truth].corr(both[score]):.2f}")
    return fig


def correlation_heatmap(data: pd.DataFrame, columns, *, title: str | None = None):
    """Annotated correlation matrix of ``columns`` (pairwise complete rows).

    Examples
    --------
    >>> d = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 4, 3]})
    >>> len(correlation_heatmap(d, ["a", "b"]).axes)
    2
    """
    fig, ax = _fig(4.5, 3.8)
    sns.heatmap(
        data[list(columns)].corr(), annot=True, fmt=".2f", vmin=0, vmax=1, cmap="Blues", ax=ax
    )
    ax.set_title(title or "Correlations")
    return fig


def reliability_plot(table: pd.DataFrame, *, xlim: tuple[float, float] = (0.6, 1.0)):
    """Alpha with its 95% CI and omega per scale, from :func:`alliance_lib.reliability`.

    Examples
    --------
    >>> t = pd.DataFrame({"scale": ["goal", "total"], "alpha": [0.8, 0.9], "alpha_ci_low": [0.75, 0.88],
    ...                   "alpha_ci_high": [0.85, 0.92], "omega": [0.81, 0.9]})
    >>> reliability_plot(t).axes[0].get_xlabel()
    'Reliability'
    """
    fig, ax = _fig(6.0, 3.0)
    err = [table["alpha"] - table["alpha_ci_low"], table["alpha_ci_high"] - table["alpha"]]
    ax.errorbar(
        table["alpha"], table["scale"], xerr=err, fmt="o", capsize=3, label="alpha (95% CI)"
    )
    ax.scatter(table["omega"], table["scale"], marker="x", color="black", label="omega", zorder=3)
    ax.set_xlim(*xlim)
    ax.set_xlabel("Reliability")
    ax.legend(frameon=False, loc="lower left")
    ax.invert_yaxis()
    return fig


def dropout_bias_plot(
    sessions: pd.DataFrame,
    curve: pd.DataFrame,
    *,
    true_intercept: float,
    true_slope: float,
    score: str = "alliance",
    session: str = "session",
):
    """Session means (with the clients still in treatment) against the model curve and the truth.

    Parameters
    ----------
    sessions : DataFrame
        One row per client × session with ``score``.
    curve : DataFrame
        Population curve with ``session`` and ``estimate`` (``TrajectoryFit.predict()``).
    true_intercept, true_slope : float
        The generating line.

    Examples
    --------
    >>> d = pd.DataFrame({"session": [1, 2, 3, 1, 2], "alliance": [3.0, 3.1, 3.3, 2.9, 3.0]})
    >>> c = pd.DataFrame({"session": [1, 2, 3], "estimate": [3.0, 3.05, 3.1]})
    >>> len(dropout_bias_plot(d, c, true_intercept=2.95, true_slope=0.05).axes)
    2
    """
    observed = sessions.groupby(session)[score].agg(["mean", "sem", "size"])
    naive = np.polyfit(observed.index, observed["mean"], 1)[0]
    model = np.polyfit(curve[session], curve["estimate"], 1)[0]
    fig, ax = _fig(7.0, 4.0)
    ax.errorbar(
        observed.index,
        observed["mean"],
        yerr=1.96 * observed["sem"],
        fmt="o",
        color="grey",
        label=f"session means (slope {naive:.3f})",
    )
    ax.plot(curve[session], curve["estimate"], lw=2, label=f"mixed model (slope {model:.3f})")
    ax.plot(
        curve[session],
        true_intercept + true_slope * curve[session],
        ls="--",
        color="black",
        label=f"truth (slope {true_slope:.3f})",
    )
    ax2 = ax.twinx()
    ax2.bar(observed.index, observed["size"], alpha=0.12, color="tab:red")
    ax2.set_ylabel("clients still in treatment", color="tab:red")
    ax.set_xlabel("Session")
    ax.set_ylabel(score.capitalize())
    ax.legend(frameon=False, loc="upper left")
    return fig


def between_within_plot(
    pairs: pd.DataFrame,
    *,
    x: str = "alliance",
    y: str = "outcome_next",
    client: str = "client_id",
    title: str | None = None,
):
    """Three panels: all pairs pooled, client means (between), deviations from own level (within).

    ``pairs`` is ``fit.data`` of :func:`alliance_lib.fit_alliance_outcome` (it holds
    ``x``, ``y`` and ``{x}_within``); the within panel centres ``y`` on each client's mean.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = pd.DataFrame({"client_id": np.repeat(list("abcd"), 5), "alliance": rng.normal(size=20),
    ...                   "outcome_next": rng.normal(size=20), "alliance_within": rng.normal(size=20)})
    >>> len(between_within_plot(p).axes)
    3
    """
    data = pairs.assign(_y_within=pairs[y] - pairs.groupby(client)[y].transform("mean"))
    means = data.groupby(client)[[x, y]].mean()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    sns.regplot(data=data, x=x, y=y, ax=axes[0], scatter_kws={"s": 4, "alpha": 0.2})
    axes[0].set_title("Naive: all sessions pooled")
    sns.regplot(data=means, x=x, y=y, ax=axes[1], scatter_kws={"s": 8, "alpha": 0.5})
    axes[1].set_title("Between clients: client means")
    sns.regplot(
        data=data, x=f"{x}_within", y="_y_within", ax=axes[2], scatter_kws={"s": 4, "alpha": 0.2}
    )
    axes[2].set_title("Within clients: deviations from own level")
    axes[2].set_xlabel(f"{x} above/below the client's own line")
    axes[2].set_ylabel(f"{y} minus client mean")
    if title:
        fig.suptitle(title)
    return fig


def estimates_by_group_plot(
    estimates: pd.DataFrame,
    *,
    group: str = "world",
    label: str = "analysis",
    truth: str = "truth",
    xlabel: str = "estimate",
):
    """One panel per group: estimates with 95% intervals, the true values as vertical ticks.

    Examples
    --------
    >>> e = pd.DataFrame({"world": ["A", "A", "B"], "analysis": ["naive", "within", "within"],
    ...                   "estimate": [-9.0, 0.2, -6.1], "ci_low": [-10.0, -0.8, -7.0],
    ...                   "ci_high": [-8.0, 1.2, -5.2], "truth": [np.nan, 0.0, -6.0]})
    >>> len(estimates_by_group_plot(e).axes)
    2
    """
    groups = list(dict.fromkeys(estimates[group]))
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(4.4 * len(groups), 3.6),
        layout="constrained",
        sharex=True,
        squeeze=False,
    )
    for ax, name in zip(axes[0], groups, strict=True):
        est = estimates[estimates[group] == name]
        yy = np.arange(len(est))
        err = [est["estimate"] - est["ci_low"], est["ci_high"] - est["estimate"]]
        ax.errorbar(est["estimate"], yy, xerr=err, fmt="o", capsize=3)
        ax.scatter(est[truth], yy, marker="|", s=400, color="black", label="truth")
        ax.axvline(0, color="grey", lw=0.6, ls=":")
        ax.set_yticks(yy, est[label])
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.invert_yaxis()
    axes[0][-1].legend(frameon=False, loc="lower left")
    return fig


def cluster_spread_plot(
    sessions: pd.DataFrame,
    *,
    score: str = "alliance",
    cluster: str = "therapist_id",
    client: str = "client_id",
    xlabel: str | None = None,
):
    """Client means per cluster (therapist), clusters sorted by the mean of their client means.

    Examples
    --------
    >>> d = pd.DataFrame({"therapist_id": list("aabb"), "client_id": list("wxyz"),
    ...                   "alliance": [3.0, 3.4, 4.0, 4.2]})
    >>> cluster_spread_plot(d).axes[0].get_ylabel()
    "Client's mean alliance"
    """
    client_means = sessions.groupby([cluster, client])[score].mean().reset_index()
    # each client counts once in its cluster's mean, as in the points drawn
    cluster_means = client_means.groupby(cluster)[score].mean().sort_values()
    order = list(cluster_means.index)
    fig, ax = _fig(7.5, 4.0)
    sns.stripplot(data=client_means, x=cluster, y=score, order=order, size=3, alpha=0.6, ax=ax)
    ax.plot(range(len(order)), cluster_means, "k_", ms=12, mew=2, label=f"{cluster} mean")
    ax.set_xticks([])
    ax.set_xlabel(xlabel or f"{len(order)} clusters, sorted by their clients' mean {score}")
    ax.set_ylabel(f"Client's mean {score}")
    ax.legend(frameon=False)
    return fig


def replication_plot(
    replications: pd.DataFrame,
    *,
    x: str,
    y: str = "design",
    truth: float | None = None,
    xlabel: str | None = None,
):
    """Estimates from replicated simulations, one row of points per design, truth dashed.

    Examples
    --------
    >>> r = pd.DataFrame({"design": ["10", "10", "40"], "sd": [0.1, 0.3, 0.18]})
    >>> replication_plot(r, x="sd", truth=0.18).axes[0].get_xlabel()
    'sd'
    """
    fig, ax = _fig(6.0, 3.5)
    sns.stripplot(data=replications, x=x, y=y, size=7, alpha=0.7, ax=ax)
    if truth is not None:
        ax.axvline(truth, color="black", ls="--", label="truth")
        ax.legend(frameon=False)
    ax.set_xlabel(xlabel or x)
    return fig


def two_level_plot(
    parts: pd.DataFrame,
    *,
    cluster: str = "therapist_id",
    between: str = "alliance_therapist_mean",
    within: str = "alliance_within_therapist",
    outcome: str = "post",
):
    """Baldwin et al.'s two levels: cluster means of predictor and outcome; within-cluster part.

    ``parts`` is ``therapist_effects(...).data`` (one row per client).

    Examples
    --------
    >>> p = pd.DataFrame({"therapist_id": list("aabbcc"), "alliance_therapist_mean": [3, 3, 4, 4, 5, 5.0],
    ...                   "alliance_within_therapist": [-.1, .1, -.2, .2, 0, .1], "post": [50, 48, 40, 41, 30, 33.0]})
    >>> len(two_level_plot(p).axes)
    2
    """
    by_cluster = parts.groupby(cluster)[[between, outcome]].mean()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    sns.regplot(data=by_cluster, x=between, y=outcome, ax=axes[0])
    axes[0].set_title("Therapist level: mean alliance and mean post outcome")
    sns.regplot(data=parts, x=within, y=outcome, ax=axes[1], scatter_kws={"s": 6, "alpha": 0.4})
    axes[1].set_title("Client level: alliance relative to the therapist's mean")
    return fig


def rupture_examples_plot(
    data: pd.DataFrame,
    episodes: pd.DataFrame,
    planted: pd.DataFrame,
    *,
    score: str = "alliance",
    client: str = "client_id",
    session: str = "session",
):
    """One client per planted kind (first of each), with the 2-SD and 1-SD rupture lines.

    Parameters
    ----------
    data : DataFrame
        Long scores.
    episodes : DataFrame
        From :func:`alliance_lib.ruptures` (``client_id``, ``rupture_session``, ``score``).
    planted : DataFrame
        Indexed by client, columns ``kind`` (e.g. ``dip``, ``drop``, ``none``) and ``at``.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a"] * 6 + ["b"] * 6, "session": list(range(1, 7)) * 2,
    ...                   "alliance": [4, 4.1, 2, 4, 4.1, 4, 4, 4, 4.1, 3.9, 4, 4.0]})
    >>> ep = pd.DataFrame({"client_id": ["a"], "rupture_session": [3], "score": [2.0]})
    >>> pl = pd.DataFrame({"kind": ["dip", "none"], "at": [3, 4]}, index=["a", "b"])
    >>> len(rupture_examples_plot(d, ep, pl).axes)
    2
    """
    kinds = list(dict.fromkeys(planted["kind"]))
    examples = [planted.index[planted["kind"] == k][0] for k in kinds]
    fig, axes = plt.subplots(
        1,
        len(examples),
        figsize=(4.4 * len(examples), 3.6),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for ax, cid in zip(axes[0], examples, strict=True):
        series = data[data[client] == cid]
        mean, sd = series[score].mean(), series[score].std()
        ax.plot(series[session], series[score], "o-")
        ax.axhline(mean, color="grey", lw=1, label="client mean")
        ax.axhline(mean - 2 * sd, color="tab:red", ls="--", lw=1, label="mean − 2 SD (Stiles)")
        ax.axhline(mean - sd, color="tab:orange", ls=":", lw=1, label="mean − 1 SD (Strauss)")
        found = episodes[episodes[client] == cid]
        ax.scatter(
            found["rupture_session"],
            found["score"],
            s=150,
            facecolors="none",
            edgecolors="tab:red",
            lw=2,
            zorder=3,
        )
        what, when = planted.loc[cid, "kind"], planted.loc[cid, "at"]
        ax.set_title("nothing planted" if what == "none" else f"planted: {what} at session {when}")
        ax.set_xlabel("Session")
    axes[0][0].set_ylabel(score.capitalize())
    axes[0][0].legend(frameon=False, fontsize=8, loc="lower left")
    return fig


def pattern_share_plot(table: pd.DataFrame):
    """Bar chart of a crosstab of shares indexed by (rule, planted) with one column per pattern.

    Examples
    --------
    >>> idx = pd.MultiIndex.from_product([["stiles", "strauss"], ["dip", "none"]], names=["rule", "planted"])
    >>> t = pd.DataFrame({"no rupture": [.1, .9, .05, .6], "repaired": [.9, .1, .95, .4]}, index=idx)
    >>> len(pattern_share_plot(t).axes)
    2
    """
    shares = table.reset_index().melt(
        id_vars=list(table.index.names), var_name="pattern", value_name="share"
    )
    rule, planted = table.index.names
    palette = {"no rupture": "#bbbbbb", "repaired": "#1b6ca8", "unrepaired": "#d1495b"}
    g = sns.catplot(
        data=shares,
        x=planted,
        y="share",
        hue="pattern",
        col=rule,
        kind="bar",
        height=3.6,
        aspect=1.2,
        palette=palette,
    )
    g.set_axis_labels("What we planted", "Share of clients")
    return g.figure


def sudden_gain_examples_plot(
    data: pd.DataFrame,
    gains: pd.DataFrame,
    planted_at: pd.Series,
    *,
    score: str = "outcome",
    client: str = "client_id",
    session: str = "session",
):
    """Clients' outcome series with the planted gain (dashed) and the gains found (arrows).

    Parameters
    ----------
    planted_at : Series
        Session of the planted gain, indexed by the clients to draw.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a"] * 6, "session": range(6),
    ...                   "outcome": [80, 78, 77, 55, 54, 53.0]})
    >>> g = pd.DataFrame({"client_id": ["a"], "pre_session": [2], "post_session": [3],
    ...                   "score_n": [77.0], "score_n_plus_1": [55.0]})
    >>> len(sudden_gain_examples_plot(d, g, pd.Series({"a": 3})).axes)
    1
    """
    fig, axes = plt.subplots(
        1,
        len(planted_at),
        figsize=(4.4 * len(planted_at), 3.6),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for ax, (cid, at) in zip(axes[0], planted_at.items(), strict=True):
        series = data[data[client] == cid]
        ax.plot(series[session], series[score], "o-", color="tab:green")
        ax.axvline(at - 0.5, color="grey", ls="--", label="planted gain")
        found = gains[gains[client] == cid]
        for pre, post, y0, y1 in found[
            ["pre_session", "post_session", "score_n", "score_n_plus_1"]
        ].to_numpy():
            ax.annotate(
                "",
                xy=(post, y1),
                xytext=(pre, y0),
                arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 2},
            )
        ax.set_title(f"{len(found)} sudden gain(s) found")
        ax.set_xlabel("Session")
    axes[0][0].set_ylabel(f"{score} (higher = worse)")
    axes[0][0].legend(frameon=False)
    return fig


def rci_null_plot(rci, *, limit: float = 1.96):
    """Histogram of reliable change indices with the standard normal density and ±limit.

    Examples
    --------
    >>> rci_null_plot(np.random.default_rng(0).normal(size=200)).axes[0].get_xlabel()
    'RCI (no true change)'
    """
    from scipy import stats

    values = np.asarray(rci, dtype=float)
    values = values[np.isfinite(values)]
    share = float(np.mean(np.abs(values) > limit))
    fig, ax = _fig(7.0, 3.8)
    sns.histplot(values, bins=40, stat="density", ax=ax, color="#8fb8de")
    grid = np.linspace(-4, 4, 200)
    ax.plot(grid, stats.norm.pdf(grid), color="black", lw=1, label="standard normal")
    for z in (-limit, limit):
        ax.axvline(z, color="tab:red", ls="--")
    ax.set_xlabel("RCI (no true change)")
    ax.set_title(f"{100 * share:.1f}% of unchanged clients cross ±{limit:g} by chance")
    ax.legend(frameon=False)
    return fig


def change_histogram_plot(
    change, *, true_change: float, threshold: float, xlabel: str | None = None
):
    """Histogram of observed changes with the true change and the reliable-change threshold.

    Examples
    --------
    >>> f = change_histogram_plot(np.random.default_rng(0).normal(-26, 8, 300), true_change=-26.4,
    ...                           threshold=16.6)
    >>> len(f.axes[0].lines)
    2
    """
    fig, ax = _fig(7.0, 3.8)
    sns.histplot(np.asarray(change, dtype=float), bins=40, ax=ax, color="#9bd19b")
    ax.axvline(true_change, color="black", label=f"true change for everyone ({true_change:.1f})")
    ax.axvline(
        -threshold, color="tab:red", ls="--", label=f"reliable-change threshold (−{threshold:.1f})"
    )
    ax.set_xlabel(xlabel or "Observed change, intake to last session")
    ax.legend(frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# Outcome monitoring (notebooks/explore.ipynb): one client against their expected response.

__all__ += ["expected_response_plot", "ALERT_STYLE"]

#: Alert states drawn in Okabe-Ito colours *and* distinct marker shapes, so they are told apart
#: under colour-vision deficiencies and in greyscale print: (label, face colour, marker).
ALERT_STYLE = {
    "white": ("white: below the clinical cutoff", "white", "o"),
    "green": ("green: on track", OKABE_ITO[2], "o"),
    "yellow": ("yellow: worse than the median", OKABE_ITO[1], "D"),
    "red": ("red: beyond the red boundary", OKABE_ITO[3], "^"),
}


def expected_response_plot(
    alerts: pd.DataFrame,
    reference,
    *,
    session: str = "session",
    sessions=None,
    red: float = 0.90,
    yellow: float = 0.50,
    cutoff: float | None = None,
    ylabel: str | None = None,
    title: str | None = None,
):
    """One client's outcome against the expected response of clients with the same intake score.

    Parameters
    ----------
    alerts : DataFrame
        The client's rows of :func:`alliance_lib.monitoring.not_on_track` (one client): columns
        ``session`` (named by ``session``), ``intake``, ``observed`` and ``state``.
    reference : alliance_lib.monitoring.ExpectedResponse
        The fitted reference the alerts came from (:func:`~alliance_lib.monitoring.expected_response`).
    sessions : sequence of int, optional
        Sessions of the bands (default: from the first session after intake to the later of the
        client's last session and the reference's last observed session, at most 20).
    red, yellow : float
        Predictive quantiles (worse direction) of the red boundary and the median line; use the
        thresholds the alerts were computed with.
    cutoff : float, optional
        Clinical cutoff, drawn as a dotted line (``white`` states lie on its healthy side).

    Returns
    -------
    Figure
        The expected curve (``yellow`` quantile, the median), the ``red`` boundary (dashed) and
        the band between the lower mirror quantile ``1 - red`` and ``red`` (shaded), conditioned
        on the client's intake score; the client's line from intake on, each session marked by
        its alert state (colour and shape, see :data:`ALERT_STYLE`).

    Notes
    -----
    A session is red when the observed score lies beyond the ``red`` predictive quantile at that
    session, yellow beyond the ``yellow`` one, so each marker sits in the zone its colour names
    (Lambert 2015; Lutz et al. 2019). The bands are those of a new client of a new therapist.

    References
    ----------
    Lambert, M. J. (2015). Progress feedback and the OQ-system. *Psychotherapy, 52*(4), 381-390.
    Okabe, M., & Ito, K. (2008). *Color universal design (CUD): how to make figures and
    presentations that are friendly to colorblind people*. J*Fly.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=6, n_clients=120, seed=2, output="scores")
    >>> ref = al.expected_response(df, "outcome")
    >>> nt = al.not_on_track(df, "outcome", reference=ref, cutoff=64)
    >>> one = nt[nt["client_id"] == nt["client_id"].iloc[0]]
    >>> fig = expected_response_plot(one, ref, cutoff=64)
    >>> fig.axes[0].get_xlabel()
    'Session'
    """
    if alerts.empty:
        from alliance_lib.errors import DataError

        raise DataError("alerts has no rows: pick a client with an intake and a later score")
    intake = alerts["intake"].to_numpy(dtype=float)
    if np.unique(intake).size != 1:
        from alliance_lib.errors import DataError

        raise DataError(
            f"alerts must hold one client (found {np.unique(intake).size} intake scores)",
            column="intake",
            hint="select one client's rows of not_on_track() first",
        )
    intake = float(intake[0])
    mine = alerts.sort_values(session)
    start = int(reference.intake_session)
    if sessions is None:
        last = max(float(mine[session].max()), float(reference.session_range[1]))
        sessions = np.arange(start + 1, int(min(last, start + 20)) + 1)
    sessions = np.asarray(sessions, dtype=float)
    lo = reference.quantile(intake, sessions, 1 - red)
    mid = reference.quantile(intake, sessions, yellow)
    hi = reference.quantile(intake, sessions, red)

    fig, ax = _fig()
    ax.fill_between(
        sessions,
        lo,
        hi,
        color=PALETTE["band"],
        alpha=0.3,
        lw=0,
        label=f"{100 * (2 * red - 1):.0f}% of comparable clients",
    )
    ax.plot(sessions, mid, color=PALETTE["mean"], lw=2, label="expected (median)")
    ax.plot(
        sessions,
        hi,
        color=OKABE_ITO[3],
        lw=1.5,
        ls="--",
        label=f"red boundary ({100 * red:.0f}th percentile)",
    )
    if cutoff is not None:
        ax.axhline(cutoff, color="0.4", lw=0.9, ls=":", label="clinical cutoff")
    x = np.concatenate([[start], mine[session].to_numpy(dtype=float)])
    y = np.concatenate([[intake], mine["observed"].to_numpy(dtype=float)])
    ax.plot(x, y, color=PALETTE["client"], lw=2.2, zorder=3, label="this client")
    ax.scatter(
        [start], [intake], s=60, color=PALETTE["client"], marker="s", zorder=4, label="intake"
    )
    for state, (label, face, marker) in ALERT_STYLE.items():
        g = mine[mine["state"] == state]
        if len(g):
            ax.scatter(
                g[session],
                g["observed"],
                s=80,
                marker=marker,
                color=face,
                edgecolor="black",
                linewidth=0.9,
                zorder=5,
                label=label,
            )
    ax.set_xlabel("Session")
    ax.set_ylabel(ylabel or reference.outcome)
    ax.set_title(title or f"Expected response for an intake score of {intake:g}")
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    sns.despine(fig)
    return fig
