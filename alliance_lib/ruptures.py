"""Alliance ruptures and repairs from session-by-session alliance scores.

A rupture is a session whose alliance score falls well below the client's usual level; a repair is
the return to that level within a few sessions (Safran & Muran; Stiles et al. 2004; Eubanks et al.
2018). Every published variant of the rule is a parameter setting of :func:`ruptures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from alliance_lib.change import SessionGrid, _session_grid
from alliance_lib.errors import DataError, DefinitionError
from alliance_lib.frame import model_frame

__all__ = [
    "RUPTURE_PRESETS",
    "ruptures",
    "rupture_patterns",
    "srs_alliance_flags",
    "change_event_timeline",
    "compare_rupture_presets",
    "rupture_false_alarms",
    "rupture_null_session_rate",
    "RuptureComparison",
]

#: Published rules as (k_sd, sd_basis). See :func:`ruptures`, Notes.
RUPTURE_PRESETS = {
    "stiles": {"k_sd": 2.0, "sd_basis": "within"},
    "strauss": {"k_sd": 1.0, "sd_basis": "within"},
    "gumz": {"k_sd": 1.0, "sd_basis": "max"},
}

PATTERNS = ("no rupture", "repaired", "unrepaired", "insufficient data")

#: Clients per simulated data set of :func:`rupture_false_alarms` (a random sample when more).
MAX_SIMULATED_CLIENTS = 5000

_EPISODE_COLUMNS = [
    "rupture_session",
    "end_session",
    "length",
    "reference",
    "sd",
    "threshold_points",
    "score",
    "lowest_score",
    "depth_points",
    "depth_sd",
    "repaired",
    "repair_session",
    "sessions_to_repair",
    "censored",
]


def _settings(preset, k_sd, sd_basis, reference, repair_to, min_drop, repair_within, min_sessions):
    if preset not in RUPTURE_PRESETS:
        raise DefinitionError(f"preset must be one of {list(RUPTURE_PRESETS)} (got {preset!r})")
    k = RUPTURE_PRESETS[preset]["k_sd"] if k_sd is None else float(k_sd)
    basis = RUPTURE_PRESETS[preset]["sd_basis"] if sd_basis is None else sd_basis
    if not k > 0:
        raise DefinitionError(f"k_sd must be positive (got {k_sd!r})")
    if basis not in ("within", "between", "max"):
        raise DefinitionError(f"sd_basis must be 'within', 'between' or 'max' (got {basis!r})")
    if reference not in ("client_mean", "prior_mean"):
        raise DefinitionError(
            f"reference must be 'client_mean' or 'prior_mean' (got {reference!r})"
        )
    if repair_to not in ("reference", "threshold"):
        raise DefinitionError(f"repair_to must be 'reference' or 'threshold' (got {repair_to!r})")
    floor = 0.0 if min_drop is None else float(min_drop)
    if not floor >= 0:
        raise DefinitionError(
            f"min_drop must be a non-negative number of points (got {min_drop!r})"
        )
    if repair_within is not None and not (int(repair_within) == repair_within >= 1):
        raise DefinitionError(
            f"repair_within must be a whole number of sessions >= 1 or None, not {repair_within!r}"
        )
    if not int(min_sessions) >= 2:
        raise DefinitionError(f"min_sessions must be at least 2 (got {min_sessions!r})")
    return k, basis, floor


def _detect(
    data, score, *, client, session, preset, k_sd, sd_basis, reference, min_drop, repair_within,
    repair_to, min_sessions, min_prior, sessions,
):  # fmt: skip
    """Return (grid, n_obs, analysable, episodes, episode client rows in the grid)."""
    k, basis, floor = _settings(
        preset, k_sd, sd_basis, reference, repair_to, min_drop, repair_within, min_sessions
    )
    grid = _session_grid(data, score, client, session, sessions)
    return _detect_grid(
        grid, client=client, k=k, basis=basis, floor=floor, reference=reference,
        repair_within=repair_within, repair_to=repair_to, min_sessions=min_sessions,
        min_prior=min_prior,
    )  # fmt: skip


def _flag_matrix(x, *, k, basis, floor, reference, min_sessions, min_prior):
    """The rule's flagged client x session cells and what the episodes need from it.

    Returns (obs, n_obs, analysable, ref, sd, flagged); ``ref`` may be a broadcast view.
    """
    n_c, n_s = x.shape
    obs = ~np.isnan(x)
    n_obs = obs.sum(axis=1)
    analysable = n_obs >= min_sessions
    x0 = np.where(obs, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x0.sum(axis=1) / n_obs
        within = np.sqrt(np.where(obs, (x - mean[:, None]) ** 2, 0.0).sum(axis=1) / (n_obs - 1))
    within = np.where(analysable, within, np.nan)
    if basis == "within":
        sd = within
    else:
        means = mean[analysable]
        if len(means) < 2:
            raise DataError(
                f"sd_basis={basis!r} needs at least 2 clients with {min_sessions} or more "
                "sessions to estimate the between-client SD; use sd_basis='within'"
            )
        between = float(np.std(means, ddof=1))
        sd = np.full(n_c, between) if basis == "between" else np.fmax(within, between)
        sd = np.where(analysable, sd, np.nan)
    if reference == "client_mean":
        ref = np.broadcast_to(mean[:, None], x.shape)
    else:
        csum = np.cumsum(x0, axis=1)
        ccount = np.cumsum(obs, axis=1)
        prior_sum = np.pad(csum[:, :-1], ((0, 0), (1, 0)))
        prior_n = np.pad(ccount[:, :-1], ((0, 0), (1, 0)))
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.where(prior_n >= min_prior, prior_sum / prior_n, np.nan)
    drop = ref - x
    threshold = k * sd
    with np.errstate(invalid="ignore"):
        flagged = (
            obs & analysable[:, None] & (drop > 0) & (drop >= threshold[:, None]) & (drop >= floor)
        )
    return obs, n_obs, analysable, ref, sd, flagged


def _detect_grid(
    grid, *, client, k, basis, floor, reference, repair_within, repair_to, min_sessions,
    min_prior,
):  # fmt: skip
    """The detector on a client x session grid (shared by :func:`ruptures` and the null model).

    Returns (grid, n_obs, analysable, episodes, codes): ``codes`` is each episode's client row
    in the grid.
    """
    x = grid.values
    n_c, n_s = x.shape
    obs, n_obs, analysable, ref, sd, flagged = _flag_matrix(
        x, k=k, basis=basis, floor=floor, reference=reference, min_sessions=min_sessions,
        min_prior=min_prior,
    )  # fmt: skip
    # Episodes: maximal runs of consecutive grid sessions that are flagged (a missing session
    # ends a run).
    prev = np.pad(flagged[:, :-1], ((0, 0), (1, 0)))
    start = flagged & ~prev
    cols = np.arange(n_s)
    next_unflagged = np.where(flagged, n_s, cols[None, :])
    next_unflagged = np.minimum.accumulate(next_unflagged[:, ::-1], axis=1)[:, ::-1]
    ci, si = np.nonzero(start)
    ei = next_unflagged[ci, si] - 1  # last flagged position of the run
    length = ei - si + 1
    # lowest score per episode: min over [si, ei] via reduceat on the flattened matrix
    flat = np.append(np.where(flagged, x, np.inf).ravel(), np.inf)
    bounds = np.empty(2 * len(ci), dtype=np.intp)
    bounds[0::2] = ci * n_s + si
    bounds[1::2] = ci * n_s + ei + 1
    lowest = np.minimum.reduceat(flat, bounds)[0::2] if len(ci) else np.zeros(0)
    ref_level = ref[ci, si]
    sd_ep = sd[ci]
    # Repair: the first observed session after the run, within `repair_within` grid sessions,
    # that is back at the reference (or above the rupture threshold).
    width = max(n_s, 1) if repair_within is None else int(repair_within)
    padded = np.pad(x, ((0, 0), (0, width + 1)), constant_values=np.nan)
    windows = sliding_window_view(padded, width, axis=1)  # (C, S + 2, width)
    win = windows[ci, ei + 1] if len(ci) else np.zeros((0, width))
    if repair_to == "reference":
        level = ref_level
    else:
        level = ref_level - np.maximum(k * sd_ep, floor)
    with np.errstate(invalid="ignore"):
        back = win >= level[:, None] if repair_to == "reference" else win > level[:, None]
    repaired = back.any(axis=1)
    offset = np.argmax(back, axis=1) + 1
    repair_pos = np.where(repaired, ei + offset, -1)
    last_obs = n_s - 1 - np.argmax(obs[:, ::-1], axis=1) if n_s else np.full(n_c, -1)
    censored = ~repaired & (ei + width > last_obs[ci])
    with np.errstate(invalid="ignore", divide="ignore"):
        depth_sd = (ref_level - lowest) / sd_ep
    repair_session = pd.array(
        np.where(repaired, grid.sessions[np.maximum(repair_pos, 0)], 0), dtype="Int64"
    )
    repair_session[~repaired] = pd.NA
    end_session = grid.sessions[ei] if len(ci) else np.zeros(0, int)
    episodes = pd.DataFrame(
        {
            "rupture_session": grid.sessions[si] if len(ci) else np.zeros(0, int),
            "end_session": end_session,
            "length": length,
            "reference": ref_level,
            "sd": sd_ep,
            "threshold_points": np.maximum(k * sd_ep, floor),
            "score": x[ci, si],
            "lowest_score": lowest,
            "depth_points": ref_level - lowest,
            "depth_sd": depth_sd,
            "repaired": repaired,
            "repair_session": repair_session,
            "sessions_to_repair": repair_session - end_session,
            "censored": censored,
        }
    )
    episodes.insert(0, client, grid.clients.to_numpy()[ci])
    return grid, n_obs, analysable, episodes, ci


def ruptures(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    preset: str = "stiles",
    k_sd: float | None = None,
    sd_basis: str | None = None,
    reference: str = "client_mean",
    min_drop: float | None = None,
    repair_within: int | None = 3,
    repair_to: str = "reference",
    min_sessions: int = 4,
    min_prior: int = 2,
    sessions: Any = None,
) -> pd.DataFrame:
    """Find rupture episodes and their repair in session-by-session alliance scores.

    Parameters
    ----------
    data : DataFrame
        Long data, one row per client x session (one rater: filter first).
    score : str
        Alliance score column (higher = better alliance).
    client, session : str
        Client id and session number columns.
    preset : {"stiles", "strauss", "gumz"}
        Published rule: Stiles et al. (2004) 2 SD below the client's mean, within-client SD;
        Strauss et al. (2006) 1 SD; Gumz et al. (2012) 1 SD of the larger of the within-client
        and between-client SD (the stricter of the two).
    k_sd : float, optional
        Overrides the preset's number of SDs.
    sd_basis : {"within", "between", "max"}, optional
        Overrides the preset's SD: the client's own SD across sessions (n - 1), the SD of the
        client means (n - 1, clients with ``min_sessions`` or more), or the larger of the two.
    reference : {"client_mean", "prior_mean"}
        The level a rupture falls from: the mean of all the client's sessions, or the mean of
        the client's earlier sessions (needs ``min_prior`` of them).
    min_drop : float, optional
        Minimum drop in points (inclusive). Set it on the scale of the score (e.g. 0.5 on the
        1-5 WAI-SR item-mean scale) so that small fluctuations in a very stable series, whose SD
        is tiny, never count as ruptures. Default: no floor beyond a drop greater than 0.
    repair_within : int or None
        Number of grid sessions after the last rupture session in which the score must return
        (default 3); ``None``: any later session.
    repair_to : {"reference", "threshold"}
        Repair means back at or above the reference level, or back above the rupture threshold.
    min_sessions : int
        Clients with fewer observed sessions are not analysed (default 4).
    min_prior : int
        With ``reference="prior_mean"``: earlier sessions needed before a session can be a
        rupture.
    sessions : sequence of int, optional
        The session grid; default every integer from the first to the last session in the data.

    Returns
    -------
    DataFrame
        One row per episode: the client column, ``rupture_session`` (first session below the
        threshold), ``end_session`` and ``length`` (consecutive sessions below it), ``reference``
        (level at the rupture), ``sd``, ``threshold_points`` (max(k SD, min_drop)), ``score``,
        ``lowest_score``, ``depth_points`` (reference - lowest score), ``depth_sd``,
        ``repaired`` (bool), ``repair_session`` and ``sessions_to_repair`` (after
        ``end_session``; missing if not repaired) and ``censored`` (not repaired and the client's
        data end before the repair window closes).

    Notes
    -----
    Session :math:`t` of client :math:`i` is a rupture session when

    .. math:: r_{it} - x_{it} \\ge k \\cdot s_i, \\quad r_{it} - x_{it} \\ge
              \\text{min\\_drop}, \\quad r_{it} - x_{it} > 0,

    with :math:`r` the reference and :math:`s_i` the SD (inclusive comparisons: "falls 2 SD or
    more below"). A constant series has SD 0 and no drop, so it has no rupture (and no error).
    Consecutive rupture sessions form one episode (a multi-session decline, Gumz et al. 2012); a
    missing session ends an episode. The sessions form a regular grid, so ``repair_within``
    counts grid sessions, missing ones included; a repair session may be shared by two
    episodes. The rules in the literature leave details open (the SD basis, the repair window);
    these are parameters here, and the defaults are choices, not published constants.

    References
    ----------
    Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
    hypothesis: Are productive relationships U-shaped or V-shaped? J Couns Psychol, 51, 81-92.
    Strauss, J. L., et al. (2006). Early alliance, alliance ruptures, and symptom change in a
    nonrandomized trial of cognitive therapy for avoidant and obsessive-compulsive personality
    disorders. JCCP, 74, 337-345.
    Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences:
    considerations on the classification and assessment of breaches in the therapeutic
    relationship. BMC Med Res Methodol, 12, 10.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": "a", "session": range(1, 9),
    ...                    "wai": [4.0, 4.1, 4.0, 2.5, 4.1, 4.2, 4.0, 4.1]})
    >>> ep = ruptures(df, "wai", preset="stiles", min_drop=0.5)
    >>> ep[["client_id", "rupture_session", "length", "repaired", "repair_session"]]
      client_id  rupture_session  length  repaired  repair_session
    0         a                4       1      True               5
    >>> print(round(ep["depth_points"].iloc[0], 2), round(ep["depth_sd"].iloc[0], 2))
    1.38 2.46
    """
    _, _, _, episodes, _ = _detect(
        data, score, client=client, session=session, preset=preset, k_sd=k_sd,
        sd_basis=sd_basis, reference=reference, min_drop=min_drop, repair_within=repair_within,
        repair_to=repair_to, min_sessions=min_sessions, min_prior=min_prior, sessions=sessions,
    )  # fmt: skip
    return episodes


def rupture_patterns(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    **kwargs: Any,
) -> pd.DataFrame:
    """Classify each client as no rupture, repaired or unrepaired (Larsson et al. 2018).

    Parameters
    ----------
    data, score, client, session
        As for :func:`ruptures`; further keyword arguments (``preset``, ``min_drop``, ...) are
        passed on.

    Returns
    -------
    DataFrame
        One row per client: ``n_sessions`` (observed), ``n_ruptures``, ``n_repaired``,
        ``n_unrepaired`` and ``pattern`` (categorical): ``"no rupture"``; ``"repaired"`` (every
        episode repaired: Larsson's repair pattern); ``"unrepaired"`` (at least one episode not
        repaired, censored ones included: Larsson's rupture pattern); ``"insufficient data"``
        (fewer than ``min_sessions`` observed sessions).

    References
    ----------
    Larsson, M. H., Falkenström, F., Andersson, G., & Holmqvist, R. (2018). Alliance ruptures
    and repairs in psychotherapy in primary care. Psychotherapy Research, 28(1), 123-136.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": ["a"] * 8 + ["b"] * 8 + ["c"] * 8,
    ...                    "session": list(range(1, 9)) * 3,
    ...                    "wai": [4.0, 4.1, 4.0, 2.5, 4.1, 4.2, 4.0, 4.1]
    ...                           + [4.0] * 8
    ...                           + [4.0, 4.1, 4.0, 4.1, 4.0, 4.1, 4.0, 2.5]})
    >>> rupture_patterns(df, "wai", min_drop=0.5)[["client_id", "n_ruptures", "pattern"]]
      client_id  n_ruptures     pattern
    0         a           1    repaired
    1         b           0  no rupture
    2         c           1  unrepaired
    """
    grid, n_obs, analysable, episodes, codes = _detect(
        data, score, client=client, session=session, **_detect_defaults(kwargs)
    )
    return _patterns(grid, n_obs, analysable, episodes, codes, client)


def _patterns(grid, n_obs, analysable, episodes, codes, client) -> pd.DataFrame:
    """:func:`rupture_patterns` from the detector's output (codes: episode -> grid row)."""
    n_c = len(grid.clients)
    n_rupt = np.bincount(codes, minlength=n_c)
    n_rep = np.bincount(codes, weights=episodes["repaired"].to_numpy(float), minlength=n_c)
    n_rep = n_rep.astype(int)
    # codes into PATTERNS: no rupture 0, repaired 1, unrepaired 2, insufficient data 3
    pattern = np.where(~analysable, 3, np.where(n_rupt == 0, 0, np.where(n_rep == n_rupt, 1, 2)))
    return pd.DataFrame(
        {
            client: grid.clients.to_numpy(),
            "n_sessions": n_obs,
            "n_ruptures": n_rupt,
            "n_repaired": n_rep,
            "n_unrepaired": n_rupt - n_rep,
            "pattern": pd.Categorical.from_codes(pattern, categories=PATTERNS),
        }
    )


def _detect_defaults(kwargs: dict) -> dict:
    allowed = {
        "preset": "stiles",
        "k_sd": None,
        "sd_basis": None,
        "reference": "client_mean",
        "min_drop": None,
        "repair_within": 3,
        "repair_to": "reference",
        "min_sessions": 4,
        "min_prior": 2,
        "sessions": None,
    }
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}; see ruptures()")
    return {**allowed, **kwargs}


def srs_alliance_flags(
    data: pd.DataFrame,
    score: str = "srs_total",
    *,
    threshold: float | None = None,
    inclusive: bool | None = None,
) -> pd.DataFrame:
    """Flag sessions whose Session Rating Scale total signals an alliance concern (below 36).

    A simple screen, separate from :func:`ruptures`: a session is flagged when its SRS total is
    below the threshold, regardless of the client's own level.

    Parameters
    ----------
    data : DataFrame
        Any table with an SRS total column (0-40).
    score : str
        The SRS total column (default ``srs_total``, as :func:`alliance_lib.score` names it).
    threshold : float, optional
        Default: the SRS cutoff from the instrument registry (36).
    inclusive : bool, optional
        Whether a total equal to the threshold is flagged. Default: the registry's rule (``<``:
        not flagged). One secondary source says "36 or below"; pass ``inclusive=True`` for that.

    Returns
    -------
    DataFrame
        A copy of ``data`` with ``srs_flag`` (nullable boolean; missing when the score is).

    References
    ----------
    Duncan, B. L., et al. (2003). The Session Rating Scale: Preliminary psychometric
    properties of a "working" alliance measure. Journal of Brief Therapy, 3(1), 3-12.

    Examples
    --------
    >>> df = pd.DataFrame({"srs_total": [38.0, 36.0, 35.9, None]})
    >>> srs_alliance_flags(df)["srs_flag"].tolist()
    [False, False, True, <NA>]
    """
    values = model_frame(
        data, {"score": score}, numeric=["score"], what="srs_alliance_flags"
    ).values("score")
    if threshold is None or inclusive is None:
        from alliance_lib.registry import get_instrument

        cut = (get_instrument("srs").norms or {}).get("cutoff") or {}
        if threshold is None:
            threshold = float(cut["value"])
        if inclusive is None:
            inclusive = cut.get("clinical_if", "<") == "<="
    with np.errstate(invalid="ignore"):
        flag = values <= threshold if inclusive else values < threshold
    out = data.copy()
    out["srs_flag"] = pd.arrays.BooleanArray(flag, np.isnan(values))
    return out


def change_event_timeline(
    *,
    gains: pd.DataFrame | None = None,
    losses: pd.DataFrame | None = None,
    ruptures: pd.DataFrame | None = None,
    client: str = "client_id",
) -> pd.DataFrame:
    """Stack sudden gains, sudden losses, ruptures and repairs into one long event table.

    The layout suits a per-client timeline figure (``alliance_lib.plots.event_timeline_plot``).

    Parameters
    ----------
    gains, losses : DataFrame, optional
        Output of :func:`alliance_lib.sudden_gains` / :func:`alliance_lib.sudden_losses`; the
        event is placed at the postgain session (the first session after the jump).
    ruptures : DataFrame, optional
        Output of :func:`ruptures`: one ``rupture`` row at the rupture session and, for repaired
        episodes, one ``repair`` row at the repair session.
    client : str
        Client id column of those tables.

    Returns
    -------
    DataFrame
        Columns: the client column, ``session`` and ``kind`` (``sudden gain``, ``sudden loss``,
        ``rupture``, ``repair``), sorted by client, session and kind.

    Examples
    --------
    >>> ep = pd.DataFrame({"client_id": ["a"], "rupture_session": [4], "repaired": [True],
    ...                    "repair_session": pd.array([6], dtype="Int64")})
    >>> change_event_timeline(ruptures=ep)
      client_id  session     kind
    0         a        4  rupture
    1         a        6   repair
    """
    parts = []
    for table, kind in ((gains, "sudden gain"), (losses, "sudden loss")):
        if table is not None and len(table):
            parts.append(
                pd.DataFrame(
                    {client: table[client].to_numpy(), "session": table["post_session"].to_numpy()}
                ).assign(kind=kind)
            )
    if ruptures is not None and len(ruptures):
        parts.append(
            pd.DataFrame(
                {client: ruptures[client].to_numpy(), "session": ruptures["rupture_session"]}
            ).assign(kind="rupture")
        )
        rep = ruptures[ruptures["repaired"].astype(bool)]
        parts.append(
            pd.DataFrame(
                {client: rep[client].to_numpy(), "session": rep["repair_session"].to_numpy()}
            ).assign(kind="repair")
        )
    if not parts:
        return pd.DataFrame({client: [], "session": [], "kind": []})
    out = pd.concat(parts, ignore_index=True)
    out["session"] = out["session"].astype("int64")
    return out.sort_values([client, "session", "kind"], kind="mergesort").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Both published rules side by side, each with its false-alarm rate under no ruptures
# ---------------------------------------------------------------------------------------------


def rupture_null_session_rate(n_sessions: Any, k_sd: float = 2.0) -> np.ndarray:
    """Chance that a given session is flagged when a client's scores are pure noise.

    The exact rate for the within-client rule (``sd_basis="within"``,
    ``reference="client_mean"``, no ``min_drop``) when the client's scores are independent
    normal draws around one level: it depends on the number of sessions only, not on the SD.

    Parameters
    ----------
    n_sessions : int or array of int
        Observed sessions of the client.
    k_sd : float
        Number of SDs below the client's mean (2 for Stiles et al. 2004, 1 for Strauss et al.
        2006).

    Returns
    -------
    ndarray
        The probability per session (0 where the rule cannot fire).

    Notes
    -----
    With :math:`r_t = (x_t - \\bar x)/s` the internally studentized residual of :math:`n`
    independent normal scores, :math:`r_t^2 n / (n-1)^2 \\sim \\mathrm{Beta}(1/2, (n-2)/2)`
    and :math:`r_t` is symmetric, so

    .. math:: P(r_t \\le -k) = \\tfrac12 P\\left(B \\ge k^2 n / (n-1)^2\\right).

    Since :math:`|r_t| \\le (n-1)/\\sqrt n`, the 2-SD rule can never fire with 5 or fewer
    sessions. The expected number of flagged sessions of a client is :math:`n` times this rate.

    References
    ----------
    Cook, R. D., & Weisberg, S. (1982). Residuals and influence in regression. Chapman & Hall
    (distribution of internally studentized residuals).

    Examples
    --------
    >>> rupture_null_session_rate([5, 6, 12, 30], k_sd=2.0).round(4)
    array([0.    , 0.0003, 0.0141, 0.0198])
    """
    n = np.asarray(n_sessions, dtype=float)
    k = float(k_sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = k**2 * n / (n - 1) ** 2
        rate = 0.5 * stats.beta.sf(q, 0.5, np.maximum(n - 2, 1e-12) / 2)
    # two sessions: r = -1/sqrt(2) or +1/sqrt(2), each with probability 1/2
    rate = np.where(n == 2, np.where(k <= 1 / np.sqrt(2), 0.5, 0.0), rate)
    return np.where(n >= 2, np.where(q >= 1, 0.0, rate), np.nan)


def _noise_model(grid: SessionGrid, min_sessions: int) -> dict:
    """Pooled within-client SD and the SD of true client levels, from the observed grid."""
    x = grid.values
    obs = ~np.isnan(x)
    n_obs = obs.sum(axis=1)
    use = n_obs >= max(int(min_sessions), 2)
    if use.sum() < 2:
        raise ValueError(
            f"need at least 2 clients with {min_sessions} or more sessions to estimate the noise"
        )
    xu, ou, nu = x[use], obs[use], n_obs[use]
    mean = np.where(ou, xu, 0.0).sum(axis=1) / nu
    ss = np.where(ou, (xu - mean[:, None]) ** 2, 0.0).sum(axis=1)
    within = float(np.sqrt(ss.sum() / (nu - 1).sum()))
    # var(client means) = tau^2 + within^2 * mean(1 / n)
    tau2 = float(np.var(mean, ddof=1) - within**2 * np.mean(1.0 / nu))
    return {
        "within_sd": within,
        "between_sd": float(np.sqrt(max(tau2, 0.0))),
        "grand_mean": float(mean.mean()),
        "n_clients": int(use.sum()),
    }


def rupture_false_alarms(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    preset: str = "stiles",
    n_simulations: int = 200,
    seed: int | None = None,
    max_clients: int | None = MAX_SIMULATED_CLIENTS,
    **options: Any,
) -> dict:
    """Expected false alarms of a rupture rule at the data's noise level (no true ruptures).

    The clients' observed sessions are kept; their scores are replaced by independent normal
    draws around a client level (client levels with the data's between-client SD, sessions
    with the data's pooled within-client SD), and the rule is applied to each simulated data
    set.

    Parameters
    ----------
    data, score, client, session
        As for :func:`ruptures`.
    preset : {"stiles", "strauss", "gumz"}
        The rule; further keyword arguments (``min_drop``, ``reference``, ``repair_within``,
        ``min_sessions`` ...) are those of :func:`ruptures`.
    n_simulations : int
        Simulated data sets (default 200).
    seed : int, optional
        Seed of the random generator (pass the study's seed for a reproducible report).
    max_clients : int or None
        Clients per simulated data set (default 5,000): with more analysable clients, each
        data set keeps the observed sessions of a fresh random sample of this many of them
        (without replacement), so the cost does not grow with the study; ``None``: every
        client in every data set. See Notes.

    Returns
    -------
    dict
        ``share_clients`` (expected share of analysable clients with at least one rupture
        episode when there are none), ``share_clients_se`` (its Monte Carlo SE),
        ``episodes_per_client``, ``session_rate`` (flagged sessions per observed session of the
        analysable clients), ``within_sd``, ``between_sd``, ``n_clients``, ``n_simulations``,
        ``seed`` and, for the within-client rule without ``min_drop`` and with the client mean
        as reference, ``session_rate_exact`` from :func:`rupture_null_session_rate`.

    Notes
    -----
    The within-client SD is estimated from the data themselves, which contain any real
    ruptures and trends, so it is, if anything, too large; with the within-client rule and no
    ``min_drop`` the rate does not depend on it at all (see :func:`rupture_null_session_rate`).
    With ``min_drop`` or a between-client SD (``gumz``) it does, and steeply: with 12 sessions
    and a within-client SD of .35, the Gumz rule flags 82 %, 74 % and 61 % of clients without
    ruptures when the SD of client levels is .35, .40 and .45. ``share_clients_se`` is the Monte
    Carlo error only, not the uncertainty of the two SDs estimated from the data.

    The estimand is the mean, over the data's analysable clients, of each client's chance of a
    false alarm given the sessions it attended; a random sample of clients per data set
    estimates the same mean without bias (the rates are averages of per-client indicators; the
    ratio ``session_rate`` and the between-client SD the Gumz rule estimates from each
    simulated data set differ by terms of order ``1 / max_clients``). Its Monte Carlo SE is
    about :math:`\\sqrt{p(1-p)/(n_{sim} \\cdot m)}` with :math:`m` the clients per data set
    (under .04 percentage points with 200 data sets of 5,000 clients), and
    ``share_clients_se``, the SD of the per-data-set shares over :math:`\\sqrt{n_{sim}}`,
    includes the sampling of clients. With no more analysable clients than ``max_clients``
    every client is simulated, exactly as before.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"client_id": np.repeat(np.arange(50), 12),
    ...                    "session": np.tile(np.arange(1, 13), 50),
    ...                    "wai": rng.normal(4, 0.3, 600)})
    >>> fa = rupture_false_alarms(df, "wai", preset="stiles", n_simulations=50, seed=3)
    >>> round(fa["session_rate"], 3), round(fa["session_rate_exact"], 3)
    (0.014, 0.014)
    """
    opts = _detect_defaults({"preset": preset, **options})
    grid = _session_grid(data, score, client, session, opts["sessions"])
    return _false_alarms_grid(
        grid, opts, n_simulations=n_simulations, seed=seed, max_clients=max_clients
    )


def _false_alarms_grid(grid: SessionGrid, opts: dict, *, n_simulations, seed, max_clients):
    """:func:`rupture_false_alarms` on a session grid (``opts``: :func:`_detect_defaults`)."""
    k, basis, floor = _settings(
        opts["preset"], opts["k_sd"], opts["sd_basis"], opts["reference"], opts["repair_to"],
        opts["min_drop"], opts["repair_within"], opts["min_sessions"],
    )  # fmt: skip
    if not int(n_simulations) >= 1:
        raise ValueError(f"n_simulations must be a whole number >= 1 (got {n_simulations!r})")
    if max_clients is not None and not int(max_clients) >= 2:
        raise ValueError(f"max_clients must be a whole number >= 2 or None (got {max_clients!r})")
    noise = _noise_model(grid, opts["min_sessions"])
    obs = ~np.isnan(grid.values)
    n_obs = obs.sum(axis=1)
    analysable = n_obs >= int(opts["min_sessions"])
    rng = np.random.default_rng(seed)
    n_c, n_s = obs.shape
    which = np.flatnonzero(analysable)
    sample = max_clients is not None and len(which) > int(max_clients)
    shares = np.empty(int(n_simulations))
    episodes = np.empty(int(n_simulations))
    flagged_sessions = np.empty(int(n_simulations))
    detect = dict(
        k=k, basis=basis, floor=floor, reference=opts["reference"],
        min_sessions=opts["min_sessions"], min_prior=opts["min_prior"],
    )  # fmt: skip
    for r in range(int(n_simulations)):
        if sample:  # a fresh sample of analysable clients (every one of them is analysable)
            rows = rng.choice(which, size=int(max_clients), replace=False)
            o, use = obs[rows], slice(None)
        else:  # every client, as the rule sees the data (the non-analysable ones are not used)
            o, use = obs, analysable
        m = o.shape[0]
        level = noise["grand_mean"] + noise["between_sd"] * rng.standard_normal((m, 1))
        values = level + noise["within_sd"] * rng.standard_normal((m, n_s))
        flagged = _flag_matrix(np.where(o, values, np.nan), **detect)[-1]
        # an episode starts at every flagged session whose grid predecessor is not flagged
        starts = flagged.copy()
        starts[:, 1:] &= ~flagged[:, :-1]
        per_client = starts.sum(axis=1)[use]
        shares[r] = np.mean(per_client > 0)
        episodes[r] = per_client.mean()
        flagged_sessions[r] = flagged.sum() / o.sum(axis=1)[use].sum()
    out = {
        "preset": opts["preset"],
        "k_sd": k,
        "sd_basis": basis,
        "share_clients": float(shares.mean()),
        "share_clients_se": float(shares.std(ddof=1) / np.sqrt(len(shares)))
        if len(shares) > 1
        else float("nan"),
        "episodes_per_client": float(episodes.mean()),
        "session_rate": float(flagged_sessions.mean()),
        **noise,
        "n_simulations": int(n_simulations),
        "seed": seed,
    }
    if basis == "within" and opts["reference"] == "client_mean" and floor == 0:
        n_a = n_obs[analysable]
        exact = rupture_null_session_rate(n_a, k)
        out["session_rate_exact"] = float((exact * n_a).sum() / n_a.sum())
    return out


@dataclass(frozen=True)
class RuptureComparison:
    """Two (or more) rupture rules applied to the same data, with their null false-alarm rates.

    Attributes
    ----------
    summary : DataFrame
        One row per preset: ``preset``, ``k_sd``, ``sd_basis``, ``n_clients`` (analysable),
        ``n_rupture`` and ``share_rupture`` (clients with at least one episode), ``n_repaired``
        and ``n_unrepaired`` (Larsson et al.'s repair and rupture patterns), ``n_episodes``,
        ``false_alarm_share`` (expected share with at least one episode under no ruptures) and
        ``false_alarm_se``, ``false_alarm_episodes`` (per client), ``excess_share``
        (observed - expected share).
    episodes, patterns : dict
        Preset -> the output of :func:`ruptures` / :func:`rupture_patterns`.
    crosstab : DataFrame
        Clients by pattern under the first preset (rows) and the second (columns).
    null : dict
        Preset -> the output of :func:`rupture_false_alarms`.
    """

    summary: pd.DataFrame
    episodes: dict = field(repr=False)
    patterns: dict = field(repr=False)
    crosstab: pd.DataFrame = field(repr=False)
    null: dict = field(repr=False)


def compare_rupture_presets(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    presets: tuple[str, ...] = ("stiles", "gumz"),
    n_simulations: int = 200,
    seed: int | None = None,
    max_clients: int | None = MAX_SIMULATED_CLIENTS,
    **options: Any,
) -> RuptureComparison:
    """Apply the published rupture rules side by side, each with its expected false-alarm rate.

    Gumz et al. (2012) showed that rupture counts depend strongly on the criterion and
    recommend reporting more than one; this runs the rules of Stiles et al. (2004; 2 SD of the
    client's own scores) and Gumz et al. (2012; 1 SD of the larger of the within- and
    between-client SD) by default, with the same further settings, and says how many clients
    each would flag if there were no ruptures at all (:func:`rupture_false_alarms`).

    Parameters
    ----------
    data, score, client, session
        As for :func:`ruptures`.
    presets : tuple of str
        Names from :data:`RUPTURE_PRESETS` (default Stiles and Gumz).
    n_simulations, seed, max_clients
        For the null false-alarm rates (:func:`rupture_false_alarms`).
    **options
        Settings shared by every preset (``min_drop``, ``reference``, ``repair_within``,
        ``repair_to``, ``min_sessions``, ``min_prior``, ``sessions``); ``k_sd`` and
        ``sd_basis`` belong to the presets and cannot be given.

    Returns
    -------
    RuptureComparison

    References
    ----------
    Stiles, W. B., et al. (2004). J Couns Psychol, 51, 81-92.
    Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). BMC Med Res Methodol, 12, 10.
    Larsson, M. H., et al. (2018). Psychotherapy Research, 28(1), 123-136.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> df = pd.DataFrame({"client_id": np.repeat(np.arange(40), 10),
    ...                    "session": np.tile(np.arange(1, 11), 40),
    ...                    "wai": rng.normal(4, 0.3, 400) + np.repeat(rng.normal(0, .4, 40), 10)})
    >>> cmp = compare_rupture_presets(df, "wai", min_drop=0.5, n_simulations=20, seed=2)
    >>> cmp.summary[["preset", "k_sd", "sd_basis", "n_clients"]]
       preset  k_sd sd_basis  n_clients
    0  stiles   2.0   within         40
    1    gumz   1.0      max         40
    """
    bad = sorted({"k_sd", "sd_basis", "preset"} & set(options))
    if bad:
        raise TypeError(f"{bad} are set by each preset; choose presets= instead")
    presets = tuple(presets)
    if not presets:
        raise ValueError("name at least one preset")
    rows, episodes, patterns, null = [], {}, {}, {}
    grid = None  # laid out once for every preset (the same data, the same session grid)
    for name in presets:
        opts = _detect_defaults({"preset": name, **options})
        k, basis, floor = _settings(
            name, opts["k_sd"], opts["sd_basis"], opts["reference"], opts["repair_to"],
            opts["min_drop"], opts["repair_within"], opts["min_sessions"],
        )  # fmt: skip
        if grid is None:
            grid = _session_grid(data, score, client, session, opts["sessions"])
        _, n_obs, analysable, episodes[name], codes = _detect_grid(
            grid, client=client, k=k, basis=basis, floor=floor, reference=opts["reference"],
            repair_within=opts["repair_within"], repair_to=opts["repair_to"],
            min_sessions=opts["min_sessions"], min_prior=opts["min_prior"],
        )  # fmt: skip
        patterns[name] = _patterns(grid, n_obs, analysable, episodes[name], codes, client)
        null[name] = _false_alarms_grid(
            grid, opts, n_simulations=n_simulations, seed=seed, max_clients=max_clients
        )
        pat = patterns[name]["pattern"]
        n_clients = int((pat != "insufficient data").sum())
        n_rep, n_unrep = int((pat == "repaired").sum()), int((pat == "unrepaired").sum())
        share = (n_rep + n_unrep) / n_clients if n_clients else float("nan")
        rows.append(
            {
                "preset": name,
                "k_sd": RUPTURE_PRESETS[name]["k_sd"],
                "sd_basis": RUPTURE_PRESETS[name]["sd_basis"],
                "n_clients": n_clients,
                "n_rupture": n_rep + n_unrep,
                "share_rupture": share,
                "n_repaired": n_rep,
                "n_unrepaired": n_unrep,
                "n_episodes": len(episodes[name]),
                "false_alarm_share": null[name]["share_clients"],
                "false_alarm_se": null[name]["share_clients_se"],
                "false_alarm_episodes": null[name]["episodes_per_client"],
                "excess_share": share - null[name]["share_clients"],
            }
        )
    first = patterns[presets[0]]["pattern"]
    second = patterns[presets[-1]]["pattern"]
    crosstab = pd.crosstab(first.rename(presets[0]), second.rename(presets[-1]), dropna=False)
    return RuptureComparison(
        summary=pd.DataFrame(rows), episodes=episodes, patterns=patterns, crosstab=crosstab,
        null=null,
    )  # fmt: skip
