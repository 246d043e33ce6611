"""Figures for reports and teaching; each function returns a matplotlib Figure.

All figures take tidy DataFrames, use pseudonymous IDs only, draw client samples with an explicit
``seed``, and never label individual clients.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = [
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
    )
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
    sns.regplot(
        data=data,
        x=x,
        y=y,
        ax=ax,
        scatter_kws={"s": 12, "alpha": 0.5, "color": PALETTE["client"]},
        line_kws={"color": PALETTE["mean"]},
        seed=0,
        n_boot=500,
    )
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
    ax1.scatter(data[client_col], data[therapist_col], s=6, alpha=0.3, color=PALETTE["client"])
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
    ax2.scatter(mean, diff, s=6, alpha=0.3, color=PALETTE["therapist"])
    for v, ls in zip(lines, ("-", "--", "--"), strict=True):
        ax2.axhline(v, color="black", ls=ls, lw=0.8)
    ax2.set_xlabel(f"Mean of the two ratings{what}")
    ax2.set_ylabel("Client − therapist")
    ax2.set_title("Bland-Altman: bias and 95% limits of agreement")
    fig.suptitle(title or "Client and therapist ratings of the alliance")
    sns.despine(fig)
    return fig


def caterpillar_plot(
    effects: pd.DataFrame,
    *,
    estimate: str = "estimate",
    low: str = "ci_low",
    high: str = "ci_high",
    label: str = "therapist_id",
    xlabel: str = "Therapist effect",
    title: str | None = None,
):
    """Therapist (or client) effects sorted by size with their intervals."""
    data = effects.dropna(subset=[estimate]).sort_values(estimate).reset_index(drop=True)
    fig, ax = _fig(6.5, max(3.0, 0.22 * len(data) + 1.2))
    y = np.arange(len(data))
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
    ax.axvline(0, color="grey", ls=":", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(data[label], fontsize=7)
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
    for cat, g in data.groupby(category, sort=True):
        ax.scatter(
            g[pre],
            g[post],
            s=14,
            alpha=0.75,
            color=colours.get(cat, PALETTE["client"]),
            label=f"{cat} ({len(g)})",
        )
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
