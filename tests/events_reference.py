"""The change-event analyses as they were before the issue-16 scale work (main cacbbd7): the
reference the vectorised, grid-sharing code is tested against (tests/test_change.py,
tests/test_ruptures.py) and timed against (benchmarks/bench_events.py).

Verbatim copies of the functions that changed (docstrings dropped); unchanged helpers are
imported from the library. ``old_*`` at the end are the report's cached analyses
(alliance_lib/sections/common.py) as they were composed then.
"""

# ruff: noqa: E501
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from alliance_lib.change import (
    SELECT_PATTERNS,
    ChangeInputError,
    SessionGrid,
    _check_sg_args,
    _event_table,
    _is_up,
    reliable_change,
)
from alliance_lib.errors import DataError, DefinitionError
from alliance_lib.frame import model_frame, require_columns
from alliance_lib.ruptures import (
    PATTERNS,
    RUPTURE_PRESETS,
    RuptureComparison,
    _detect_defaults,
    _noise_model,
    _settings,
    rupture_null_session_rate,
)

TREATMENT_STATUSES = ("ended", "ongoing", "unknown")


def _session_grid(
    data: pd.DataFrame,
    score: str,
    client: str,
    session: str,
    sessions: Any = None,
) -> SessionGrid:
    mf = model_frame(
        data,
        {"score": score, "client": client, "session": session},
        numeric=["score"],
        integer=["session"],
        ids=["client"],
        required=["session", "client"],
        sort_levels=True,
        what="change events",
    )
    sess, values, ids = mf.values("session"), mf.values("score"), mf.data[client]
    # Rows without a score (e.g. another rater's row, or an instrument not administered) carry
    # no information, so only scored rows must be unique per client and session.
    scored = ~np.isnan(values)
    dup = np.zeros(len(sess), dtype=bool)
    keys = pd.DataFrame({"c": ids.to_numpy()[scored], "s": sess[scored]})
    dup[scored] = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = list(data.index[dup][:4])
        raise ChangeInputError(
            f"client {ids.to_numpy()[dup][0]!r} has more than one row for session "
            f"{sess[dup][0]:g} (rows {rows}); keep one row per client and session (e.g. filter "
            "by rater first)",
            column=session,
            row=rows[0],
        )
    if sessions is None:
        if len(sess) == 0:
            grid = np.array([], dtype=int)
        else:
            grid = np.arange(int(sess.min()), int(sess.max()) + 1)
    else:
        grid = np.unique(np.asarray(list(sessions), dtype=int))
    codes, clients = mf.codes["client"], mf.levels["client"]
    pos = np.searchsorted(grid, sess)
    pos_clipped = np.minimum(pos, max(len(grid) - 1, 0))
    if len(grid):
        on_grid = (pos < len(grid)) & (grid[pos_clipped] == sess) & scored
    else:
        on_grid = np.zeros(len(sess), dtype=bool)
    matrix = np.full((len(clients), len(grid)), np.nan)
    matrix[codes[on_grid], pos[on_grid]] = values[on_grid]
    return SessionGrid(clients=pd.Index(clients, name=client), sessions=grid, values=matrix)


def _window_stats(padded: np.ndarray, start: np.ndarray, width: int = 3):
    win = sliding_window_view(padded, width, axis=1)[:, start, :]  # (C, I, 3)
    ok = ~np.isnan(win)
    n = ok.sum(axis=2)
    total = np.where(ok, win, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        ss = np.where(ok, (win - mean[..., None]) ** 2, 0.0).sum(axis=2)
    return n, mean, ss


def _interval_criteria(
    grid: SessionGrid,
    *,
    up: bool,
    cutoff: float | None,
    pct: float | None,
    crit3: bool,
    adjust_crit3: bool,
    alpha: float,
    critical_value: float,
) -> dict[str, np.ndarray]:
    x = grid.values
    k = x.shape[1]
    n_int = max(k - 3, 0)
    # Pregain positions 1 .. K-3 (0-based); suddengains never tests the first (0 -> 1) and the
    # last (K-2 -> K-1) interval.
    p = np.arange(1, 1 + n_int)
    pre, post = x[:, p], x[:, p + 1]
    g = 1.0 if up else -1.0
    diff = g * (post - pre)  # size of the change in the event's direction
    nan_pair = np.isnan(pre) | np.isnan(post)
    with np.errstate(invalid="ignore"):
        c1 = np.where(nan_pair, np.nan, diff >= cutoff) if cutoff is not None else None
        c2 = np.where(nan_pair, np.nan, diff >= pct * pre) if pct is not None else None
    padded = np.pad(x, ((0, 0), (2, 2)), constant_values=np.nan)
    # padded column q holds original column q - 2, so the window of original p-2..p starts at p
    n_pre, m_pre, ss_pre = _window_stats(padded, p)
    n_post, m_post, ss_post = _window_stats(padded, p + 3)
    df = n_pre + n_post - 2
    enough = (n_pre >= 2) & (n_post >= 2)
    if adjust_crit3:
        t_crit = np.where(enough, stats.t.ppf(1 - alpha / 2, np.maximum(df, 1)), np.nan)
    else:
        t_crit = np.where(enough, critical_value, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_pooled = np.sqrt((ss_pre + ss_post) / df)
        c3_raw = g * (m_post - m_pre) > t_crit * s_pooled
    c3 = np.where(enough, c3_raw, np.nan) if crit3 else None
    combined = np.ones_like(diff)
    for c in (c1, c2, c3):
        if c is not None:
            combined = combined * c  # NaN propagates: any missing criterion -> not analysable
    return {
        "p": p,
        "crit1": c1,
        "crit2": c2,
        "crit3": c3,
        "event": combined,
        "n_pre": n_pre,
        "n_post": n_post,
        "mean_pre": np.where(n_pre > 0, m_pre, np.nan),
        "mean_post": np.where(n_post > 0, m_post, np.nan),
        "s_pooled": np.where(enough, s_pooled, np.nan),
        "t_crit": t_crit,
    }


def _sudden(
    data, score, *, kind, client, session, cutoff, pct, crit3, adjust_crit3, alpha,
    critical_value, higher_is_better, sessions, tx_start, tx_end,
) -> pd.DataFrame:  # fmt: skip
    _check_sg_args(cutoff, pct, crit3, alpha, critical_value)
    grid = _session_grid(data, score, client, session, sessions)
    up = _is_up(kind, higher_is_better)
    res = _interval_criteria(
        grid,
        up=up,
        cutoff=cutoff,
        pct=pct,
        crit3=crit3,
        adjust_crit3=adjust_crit3,
        alpha=alpha,
        critical_value=critical_value,
    )
    return _event_table(
        grid, res, kind=kind, up=up, client=client, tx_start=tx_start, tx_end=tx_end
    )


def count_intervals(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    crit3: bool = True,
    sessions: Any = None,
) -> pd.DataFrame:
    grid = _session_grid(data, score, client, session, sessions)
    res = _interval_criteria(
        grid, up=False, cutoff=1.0, pct=0.25, crit3=crit3, adjust_crit3=True, alpha=0.05,
        critical_value=2.776,
    )  # fmt: skip
    k = grid.values.shape[1]
    analysable = (~np.isnan(res["event"])).sum(axis=1)
    n_tested = res["event"].shape[1]
    return pd.DataFrame(
        {
            client: grid.clients.to_numpy(),
            "n_intervals": max(k - 1, 0),
            "n_tested": n_tested,
            "n_analysable": analysable,
            "n_not_analysable": n_tested - analysable,
        }
    )


def select_sudden_gain_cases(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    method: str = "pattern",
    min_sessions: int | None = None,
    sessions: Any = None,
) -> pd.DataFrame:
    if method not in ("pattern", "min_sess"):
        raise DefinitionError(f"method must be 'pattern' or 'min_sess' (got {method!r})")
    if method == "min_sess" and (
        min_sessions is None or int(min_sessions) != min_sessions or min_sessions < 1
    ):
        raise DefinitionError(
            f"method='min_sess' needs min_sessions, a whole number >= 1 (got {min_sessions!r})"
        )
    grid = _session_grid(data, score, client, session, sessions)
    observed = ~np.isnan(grid.values)
    n_obs = observed.sum(axis=1)
    if method == "min_sess":
        selected = n_obs >= int(min_sessions)
    else:
        selected = np.zeros(observed.shape[0], dtype=bool)
        for pattern in SELECT_PATTERNS:
            width = len(pattern)
            if observed.shape[1] < width:
                continue
            windows = sliding_window_view(observed, width, axis=1)  # (C, K - width + 1, width)
            selected |= (windows == np.array(pattern, dtype=bool)).all(axis=2).any(axis=1)
    return pd.DataFrame(
        {client: grid.clients.to_numpy(), "n_sessions": n_obs, "selected": selected}
    )


def keep_ended_clients(
    data: pd.DataFrame, status: pd.DataFrame, *, client: str = "client_id"
) -> pd.DataFrame:
    require_columns(data, [client], "keep_ended_clients", roles={client: "client"})
    require_columns(
        status,
        [client, "status"],
        "keep_ended_clients",
        roles={client: "client", "status": "status"},
    )
    of_client = status.set_index(client)["status"].astype(str)
    st = data[client].map(of_client).fillna("unknown")
    per_client = st.groupby(data[client].to_numpy()).first()
    kept = data[(st == "ended").to_numpy()].copy()
    kept.attrs["treatment_status"] = {s: int((per_client == s).sum()) for s in TREATMENT_STATUSES}
    return kept


def reliable_change_from_long(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    first: Any = None,
    last: Any = None,
    status: pd.DataFrame | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    counts = None
    if status is not None:
        data = keep_ended_clients(data, status, client=client)
        counts = data.attrs["treatment_status"]
    grid = _session_grid(data, score, client, session)
    x = grid.values
    observed = ~np.isnan(x)
    k = x.shape[1]

    def pick(which, fixed):
        if fixed is not None:
            hit = np.nonzero(grid.sessions == fixed)[0]
            if not len(hit):
                raise DataError(f"session {fixed!r} is not in the data")
            idx = np.full(x.shape[0], hit[0])
            return idx, observed[:, hit[0]]
        if which == "first":
            idx = np.argmax(observed, axis=1)
        else:
            idx = k - 1 - np.argmax(observed[:, ::-1], axis=1)
        return idx, observed.any(axis=1)

    i1, ok1 = pick("first", first)
    i2, ok2 = pick("last", last)
    rows = np.arange(x.shape[0])
    if last is None:
        ok2 = ok2 & (i2 != i1)  # a single observation has no post score
    wide = pd.DataFrame(
        {
            client: grid.clients.to_numpy(),
            "pre_session": pd.arrays.IntegerArray(grid.sessions[i1].astype("int64"), ~ok1),
            "pre": np.where(ok1, x[rows, i1], np.nan),
            "post_session": pd.arrays.IntegerArray(grid.sessions[i2].astype("int64"), ~ok2),
            "post": np.where(ok2, x[rows, i2], np.nan),
        }
    )
    out = reliable_change(wide, pre="pre", post="post", **kwargs)
    if counts is not None:
        out.attrs["treatment_status"] = counts
    return out


def _detect(
    data, score, *, client, session, preset, k_sd, sd_basis, reference, min_drop, repair_within,
    repair_to, min_sessions, min_prior, sessions,
):  # fmt: skip
    k, basis, floor = _settings(
        preset, k_sd, sd_basis, reference, repair_to, min_drop, repair_within, min_sessions
    )
    grid = _session_grid(data, score, client, session, sessions)
    return _detect_grid(
        grid, client=client, k=k, basis=basis, floor=floor, reference=reference,
        repair_within=repair_within, repair_to=repair_to, min_sessions=min_sessions,
        min_prior=min_prior,
    )  # fmt: skip


def _detect_grid(
    grid, *, client, k, basis, floor, reference, repair_within, repair_to, min_sessions,
    min_prior,
):  # fmt: skip
    x = grid.values
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
    return grid, n_obs, analysable, episodes


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
    _, _, _, episodes = _detect(
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
    grid, n_obs, analysable, episodes = _detect(
        data, score, client=client, session=session, **_detect_defaults(kwargs)
    )
    codes = pd.Index(grid.clients).get_indexer(episodes[client])
    n_c = len(grid.clients)
    n_rupt = np.bincount(codes, minlength=n_c)
    n_rep = np.bincount(codes, weights=episodes["repaired"].to_numpy(float), minlength=n_c)
    n_rep = n_rep.astype(int)
    pattern = np.where(
        ~analysable,
        "insufficient data",
        np.where(n_rupt == 0, "no rupture", np.where(n_rep == n_rupt, "repaired", "unrepaired")),
    )
    return pd.DataFrame(
        {
            client: grid.clients.to_numpy(),
            "n_sessions": n_obs,
            "n_ruptures": n_rupt,
            "n_repaired": n_rep,
            "n_unrepaired": n_rupt - n_rep,
            "pattern": pd.Categorical(pattern, categories=PATTERNS),
        }
    )


def rupture_false_alarms(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    preset: str = "stiles",
    n_simulations: int = 200,
    seed: int | None = None,
    **options: Any,
) -> dict:
    opts = _detect_defaults({"preset": preset, **options})
    k, basis, floor = _settings(
        opts["preset"], opts["k_sd"], opts["sd_basis"], opts["reference"], opts["repair_to"],
        opts["min_drop"], opts["repair_within"], opts["min_sessions"],
    )  # fmt: skip
    if not int(n_simulations) >= 1:
        raise ValueError(f"n_simulations must be a whole number >= 1 (got {n_simulations!r})")
    grid = _session_grid(data, score, client, session, opts["sessions"])
    noise = _noise_model(grid, opts["min_sessions"])
    obs = ~np.isnan(grid.values)
    n_obs = obs.sum(axis=1)
    analysable = n_obs >= int(opts["min_sessions"])
    rng = np.random.default_rng(seed)
    n_c, n_s = obs.shape
    shares = np.empty(int(n_simulations))
    episodes = np.empty(int(n_simulations))
    flagged_sessions = np.empty(int(n_simulations))
    detect = dict(
        client=client, k=k, basis=basis, floor=floor, reference=opts["reference"],
        repair_within=opts["repair_within"], repair_to=opts["repair_to"],
        min_sessions=opts["min_sessions"], min_prior=opts["min_prior"],
    )  # fmt: skip
    codes = np.arange(n_c)
    for r in range(int(n_simulations)):
        level = noise["grand_mean"] + noise["between_sd"] * rng.standard_normal((n_c, 1))
        values = level + noise["within_sd"] * rng.standard_normal((n_c, n_s))
        sim = SessionGrid(
            clients=pd.Index(codes, name=client),
            sessions=grid.sessions,
            values=np.where(obs, values, np.nan),
        )
        _, _, _, ep = _detect_grid(sim, **detect)
        per_client = np.bincount(ep[client].to_numpy(int), minlength=n_c)[analysable]
        shares[r] = np.mean(per_client > 0)
        episodes[r] = per_client.mean()
        flagged_sessions[r] = ep["length"].sum() / n_obs[analysable].sum()
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


def compare_rupture_presets(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    presets: tuple[str, ...] = ("stiles", "gumz"),
    n_simulations: int = 200,
    seed: int | None = None,
    **options: Any,
) -> RuptureComparison:
    bad = sorted({"k_sd", "sd_basis", "preset"} & set(options))
    if bad:
        raise TypeError(f"{bad} are set by each preset; choose presets= instead")
    presets = tuple(presets)
    if not presets:
        raise ValueError("name at least one preset")
    rows, episodes, patterns, null = [], {}, {}, {}
    for name in presets:
        kw = {"preset": name, **options}
        episodes[name] = ruptures(data, score, client=client, session=session, **kw)
        patterns[name] = rupture_patterns(data, score, client=client, session=session, **kw)
        null[name] = rupture_false_alarms(
            data, score, client=client, session=session, n_simulations=n_simulations,
            seed=seed, **kw,
        )  # fmt: skip
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


# ---------------------------------------------------------------------------------------------
# The report's cached analyses as composed before (alliance_lib/sections/common.py, cacbbd7)
# ---------------------------------------------------------------------------------------------

COLUMNS = {"client": "client_id", "session": "session"}


def old_sudden(data, score, *, kind, cutoff, higher_is_better, **columns):
    """sudden_gains / sudden_losses with their defaults."""
    return _sudden(
        data, score, kind=kind, client=columns.get("client", "client_id"),
        session=columns.get("session", "session"), cutoff=cutoff, pct=0.25, crit3=True,
        adjust_crit3=True, alpha=0.05, critical_value=2.776, higher_is_better=higher_is_better,
        sessions=None, tx_start=None, tx_end=None,
    )  # fmt: skip


def old_gains_and_losses(s: pd.DataFrame, cutoff: float, better: bool):
    """(selected cases, gains, losses, interval counts) as common.gains_and_losses did."""
    chosen = select_sudden_gain_cases(s, "outcome", **COLUMNS, method="pattern")
    sub = s[s["client_id"].isin(chosen.loc[chosen["selected"], "client_id"])]
    gains = old_sudden(sub, "outcome", kind="gain", cutoff=cutoff, higher_is_better=better)
    losses = old_sudden(sub, "outcome", kind="loss", cutoff=cutoff, higher_is_better=better)
    return chosen, gains, losses, count_intervals(s, "outcome", **COLUMNS)


def old_clinical_change(s: pd.DataFrame, status, instrument):
    """The reliable change of common.clinical_change (before the clinical categories)."""
    rc = reliable_change_from_long(s, "outcome", **COLUMNS, instrument=instrument, status=status)
    counts = rc.attrs.get("treatment_status")
    rc = rc[rc["post_session"] > rc["pre_session"]]
    rc.attrs["treatment_status"] = counts
    return rc


def old_rupture_comparison(s: pd.DataFrame, *, presets, min_drop, n_simulations, seed):
    """common.rupture_comparison: every preset on its own grids, every client simulated."""
    return compare_rupture_presets(
        s, "alliance", **COLUMNS, presets=presets, min_drop=min_drop,
        n_simulations=n_simulations, seed=seed,
    )  # fmt: skip
