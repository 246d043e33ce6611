"""Reliable and clinically significant change; sudden gains and losses.

Every function takes a DataFrame first and names its columns by keyword. Session-by-session
functions take *long* data (one row per client x session) and lay it out on a regular grid of
sessions: a session absent for a client is a missing value, exactly like an empty cell in the wide
layout that the R package suddengains uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from alliance_lib.errors import DataError, DefinitionError
from alliance_lib.frame import model_frame, require_columns, to_float

__all__ = [
    "ChangeInputError",
    "reliable_change",
    "reliable_change_from_long",
    "clinical_significance",
    "sudden_gain_intervals",
    "sudden_gains",
    "sudden_losses",
    "sudden_gains_by_client",
    "count_intervals",
    "select_sudden_gain_cases",
    "treatment_status",
    "keep_ended_clients",
    "RCI_METHODS",
    "TREATMENT_STATUSES",
]

RCI_CATEGORIES = ("improved", "unchanged", "deteriorated")
CS_CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")


#: Bad input to a change-event function: the library's :class:`DataError` (the name is kept).
ChangeInputError = DataError


# ---------------------------------------------------------------------------------------------
# Long data -> client x session matrix
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionGrid:
    """Scores laid out as a client x session matrix (missing = NaN).

    ``first`` and ``last`` (optional) are each client's lowest and highest session in the
    data, rows without a score included, so that :meth:`subset` gives the grid of a subset of
    the clients exactly as :func:`_session_grid` would lay out their rows; ``default_grid``
    says the sessions were the default range rather than given.
    """

    clients: pd.Index
    sessions: np.ndarray
    values: np.ndarray  # shape (n_clients, n_sessions), float
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    default_grid: bool = False

    def subset(self, rows: np.ndarray) -> SessionGrid:
        """The grid of the clients where ``rows`` (bool, one per client) is True: the rows of
        the data of those clients laid out on their own default session range (the full
        grid's sessions when they were given)."""
        rows = np.asarray(rows, dtype=bool)
        values, sessions = self.values[rows], self.sessions
        first = None if self.first is None else self.first[rows]
        last = None if self.last is None else self.last[rows]
        if self.default_grid:
            if first is None or last is None:
                raise ValueError("a default-range grid without first/last cannot be subset")
            if len(first):
                lo = np.searchsorted(sessions, first.min())
                hi = np.searchsorted(sessions, last.max()) + 1
            else:
                lo = hi = 0
            values, sessions = values[:, lo:hi], sessions[lo:hi]
        return SessionGrid(
            clients=self.clients[rows],
            sessions=sessions,
            values=values,
            first=first,
            last=last,
            default_grid=self.default_grid,
        )


def _session_grid(
    data: pd.DataFrame,
    score: str,
    client: str,
    session: str,
    sessions: Any = None,
) -> SessionGrid:
    """Pivot long data to a client x session matrix on a regular session grid.

    The grid is ``sessions`` when given, else every integer from the smallest to the largest
    session in the data. Rows whose session is not on the grid are ignored.
    """
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
    sess, values = mf.values("session"), mf.values("score")
    codes, clients = mf.codes["client"], mf.levels["client"]
    # Rows without a score (e.g. another rater's row, or an instrument not administered) carry
    # no information, so only scored rows must be unique per client and session.
    scored = ~np.isnan(values)
    dup = np.zeros(len(sess), dtype=bool)
    if len(sess):
        s_int = sess.astype(np.int64)
        s_min = int(s_int.min())
        span = int(s_int.max()) - s_min + 1
        key = codes[scored].astype(np.int64) * span + (s_int[scored] - s_min)
        dup[scored] = pd.Series(key).duplicated(keep=False).to_numpy()
    if dup.any():
        ids = mf.data[client]
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
    pos = np.searchsorted(grid, sess)
    pos_clipped = np.minimum(pos, max(len(grid) - 1, 0))
    if len(grid):
        on_grid = (pos < len(grid)) & (grid[pos_clipped] == sess) & scored
    else:
        on_grid = np.zeros(len(sess), dtype=bool)
    matrix = np.full((len(clients), len(grid)), np.nan)
    matrix[codes[on_grid], pos[on_grid]] = values[on_grid]
    by_client = pd.Series(sess).groupby(codes)  # every client has a row (levels of kept rows)
    return SessionGrid(
        clients=pd.Index(clients, name=client),
        sessions=grid,
        values=matrix,
        first=by_client.min().to_numpy().astype(np.int64) if len(sess) else np.zeros(0, int),
        last=by_client.max().to_numpy().astype(np.int64) if len(sess) else np.zeros(0, int),
        default_grid=sessions is None,
    )


# ---------------------------------------------------------------------------------------------
# Sudden gains and losses
# ---------------------------------------------------------------------------------------------


def _nullable_bool(values: np.ndarray, missing: np.ndarray) -> pd.arrays.BooleanArray:
    """A pandas nullable boolean array: ``values`` where ``missing`` is False, else NA."""
    return pd.arrays.BooleanArray(np.asarray(values, dtype=bool), np.asarray(missing, dtype=bool))


def _window_stats(padded: np.ndarray, start: np.ndarray, width: int = 3):
    """n, mean and sum of squared deviations of width-3 windows starting at padded columns.

    Column by column (the same additions, in the same order, as a sum over a (C, I, 3) window
    array, without building it).
    """
    cols = [padded[:, start + j] for j in range(width)]
    oks = [~np.isnan(c) for c in cols]
    n = oks[0].astype(np.int64)
    total = np.where(oks[0], cols[0], 0.0)
    for c, ok in zip(cols[1:], oks[1:], strict=True):
        n += ok
        total += np.where(ok, c, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        ss = np.where(oks[0], (cols[0] - mean) ** 2, 0.0)
        for c, ok in zip(cols[1:], oks[1:], strict=True):
            ss += np.where(ok, (c - mean) ** 2, 0.0)
    return n, mean, ss


def _check_sg_args(cutoff, pct, crit3, alpha, critical_value):
    if cutoff is None and pct is None and not crit3:
        raise DefinitionError("all three criteria are switched off; keep at least one")
    if cutoff is not None and not (np.isfinite(cutoff) and cutoff > 0):
        raise DefinitionError(
            f"cutoff must be a positive number of points (got {cutoff!r}); it is a magnitude "
            "for gains and losses alike, the direction follows higher_is_better"
        )
    if pct is not None and not (np.isfinite(pct) and pct >= 0):
        raise DefinitionError(f"pct must be a non-negative proportion such as 0.25 (got {pct!r})")
    if not 0 < alpha < 1:
        raise DefinitionError(f"alpha must lie between 0 and 1 (got {alpha!r})")
    if not critical_value > 0:
        raise DefinitionError(f"critical_value must be positive (got {critical_value!r})")


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
    """Criteria for every client x tested interval, as float arrays (1, 0 or NaN).

    ``up`` is True when the event is an increase in the raw score (a gain on a higher-is-better
    scale or a loss on a lower-is-better scale).
    """
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
        # df takes a handful of whole values (2 to 4): the quantile of each, looked up
        dfs = np.maximum(df, 1)
        table = stats.t.ppf(1 - alpha / 2, np.arange(1, int(dfs.max(initial=1)) + 1))
        t_crit = np.where(enough, table[dfs - 1], np.nan)
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


def _is_up(kind: str, higher_is_better: bool) -> bool:
    if kind not in ("gain", "loss"):
        raise DefinitionError(f"kind must be 'gain' or 'loss' (got {kind!r})")
    return (kind == "gain") == bool(higher_is_better)


def sudden_gain_intervals(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    cutoff: float | None,
    pct: float | None = 0.25,
    crit3: bool = True,
    adjust_crit3: bool = True,
    alpha: float = 0.05,
    critical_value: float = 2.776,
    higher_is_better: bool = False,
    kind: str = "gain",
    sessions: Any = None,
) -> pd.DataFrame:
    """Evaluate the sudden-gain (or -loss) criteria for every client and tested interval.

    This is the interval-level table behind :func:`sudden_gains` (suddengains'
    ``identify_sg(..., crit123_details = TRUE)``), useful to see why an interval did or did not
    count. Arguments are those of :func:`sudden_gains`, plus ``kind`` (``"gain"`` or ``"loss"``).

    Returns
    -------
    DataFrame
        One row per client x tested interval: ``client``, ``pre_session``, ``post_session``,
        ``crit1``, ``crit2``, ``crit3`` (nullable booleans; absent when switched off), ``event``
        (nullable boolean: True = gain/loss, False = not, NA = not analysable), ``n_pre``,
        ``n_post``, ``mean_pre``, ``mean_post``, ``s_pooled`` and ``t_crit``.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": "a", "session": range(1, 8),
    ...                    "bdi": [30, 31, 29, 18, 17, 16, 15]})
    >>> t = sudden_gain_intervals(df, "bdi", cutoff=7)
    >>> t[["pre_session", "post_session", "crit1", "crit3", "event"]]
       pre_session  post_session  crit1  crit3  event
    0            2             3  False  False  False
    1            3             4   True   True   True
    2            4             5  False  False  False
    3            5             6  False  False  False
    """
    _check_sg_args(cutoff, pct, crit3, alpha, critical_value)
    grid = _session_grid(data, score, client, session, sessions)
    res = _interval_criteria(
        grid,
        up=_is_up(kind, higher_is_better),
        cutoff=cutoff,
        pct=pct,
        crit3=crit3,
        adjust_crit3=adjust_crit3,
        alpha=alpha,
        critical_value=critical_value,
    )
    n_c, n_i = res["event"].shape
    out = {
        client: np.repeat(grid.clients.to_numpy(), n_i),
        "pre_session": np.tile(grid.sessions[res["p"]], n_c),
        "post_session": np.tile(grid.sessions[res["p"] + 1], n_c),
    }
    for name in ("crit1", "crit2", "crit3", "event"):
        if res[name] is not None:
            out[name] = _nullable_bool(res[name].ravel() == 1, np.isnan(res[name].ravel()))
    for name in ("n_pre", "n_post", "mean_pre", "mean_post", "s_pooled", "t_crit"):
        out[name] = res[name].ravel()
    return pd.DataFrame(out)


def _event_table(
    grid: SessionGrid,
    res: dict,
    *,
    kind: str,
    up: bool,
    client: str,
    tx_start: Any,
    tx_end: Any,
) -> pd.DataFrame:
    x = grid.values
    k = x.shape[1]
    ci, ii = np.nonzero(res["event"] == 1)
    p = res["p"][ii]
    g = 1.0 if up else -1.0
    xp = np.pad(x, ((0, 0), (2, 3)), constant_values=np.nan)  # so p-2 .. p+3 always exist
    around = {
        name: xp[ci, p + 2 + off]
        for name, off in (
            ("score_n_minus_2", -2),
            ("score_n_minus_1", -1),
            ("score_n", 0),
            ("score_n_plus_1", 1),
            ("score_n_plus_2", 2),
            ("score_n_plus_3", 3),
        )
    }
    magnitude = g * (around["score_n_plus_1"] - around["score_n"])

    def grid_pos(s, default):
        if s is None:
            return default
        hit = np.nonzero(grid.sessions == s)[0]
        if not len(hit):
            raise DefinitionError(f"session {s!r} is not on the session grid {list(grid.sessions)}")
        return int(hit[0])

    i_start, i_end = grid_pos(tx_start, 0), grid_pos(tx_end, k - 1)
    if len(ci):
        start, end = x[ci, i_start], x[ci, i_end]
    else:  # no events (possibly an empty grid)
        start = end = np.zeros(0)
    # improvement over treatment, in the scale's better direction (suddengains: start - end for
    # a lower-is-better measure, for gains and losses alike)
    better = 1.0 if (up == (kind == "gain")) else -1.0  # +1 when higher is better
    tx_change = better * (end - start)
    with np.errstate(invalid="ignore", divide="ignore"):
        proportion = np.where(tx_change == 0, np.nan, magnitude / tx_change)
    reversal_value = around["score_n_plus_1"] - g * magnitude / 2
    # Reversal: any later session (from N+2 on) back past the reversal value.
    later = np.arange(k)[None, :] >= (p + 2)[:, None]
    with np.errstate(invalid="ignore"):
        back = (-g) * (x[ci] - reversal_value[:, None]) > 0
    reversal = (later & back).any(axis=1)
    n_events = np.bincount(ci, minlength=x.shape[0])[ci]
    table = pd.DataFrame(
        {
            client: grid.clients.to_numpy()[ci],
            "kind": kind,
            "pre_session": grid.sessions[p],
            "post_session": grid.sessions[p + 1],
            "n_events": n_events,
            **around,
            "magnitude": magnitude,
            "tx_start_score": start,
            "tx_end_score": end,
            "tx_change": tx_change,
            "change_proportion": proportion,
            "reversal_value": reversal_value,
            "reversal": reversal,
            "mean_pre": res["mean_pre"][ci, ii],
            "mean_post": res["mean_post"][ci, ii],
            "t_crit": res["t_crit"][ci, ii],
        }
    )
    return table.reset_index(drop=True)


def _sudden(
    data, score, *, kind, client, session, cutoff, pct, crit3, adjust_crit3, alpha,
    critical_value, higher_is_better, sessions, tx_start, tx_end,
) -> pd.DataFrame:  # fmt: skip
    _check_sg_args(cutoff, pct, crit3, alpha, critical_value)
    grid = _session_grid(data, score, client, session, sessions)
    return _sudden_on_grid(
        grid, kind=kind, client=client, cutoff=cutoff, pct=pct, crit3=crit3,
        adjust_crit3=adjust_crit3, alpha=alpha, critical_value=critical_value,
        higher_is_better=higher_is_better, tx_start=tx_start, tx_end=tx_end,
    )  # fmt: skip


def _sudden_on_grid(
    grid, *, kind, client, cutoff, pct=0.25, crit3=True, adjust_crit3=True, alpha=0.05,
    critical_value=2.776, higher_is_better=False, tx_start=None, tx_end=None,
) -> pd.DataFrame:  # fmt: skip
    """:func:`sudden_gains` / :func:`sudden_losses` on a session grid laid out once."""
    _check_sg_args(cutoff, pct, crit3, alpha, critical_value)
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


_SG_NOTES = """
    Long data are laid out on a regular grid of sessions (``sessions``, default every integer from
    the first to the last session in the data); an absent session is a missing value. With grid
    positions :math:`x_1 \\dots x_K`, the interval from :math:`N` to :math:`N+1` is tested for
    :math:`N = 2 \\dots K-2`, as in suddengains (``identify_sg_1to2 = FALSE``): the first and the
    last interval are never tested (put a baseline session on the grid to test session 1 -> 2).
    For a gain on a lower-is-better scale, with :math:`d = x_N - x_{N+1}`:

    1. :math:`d \\ge` ``cutoff`` (inclusive);
    2. :math:`d \\ge` ``pct`` :math:`\\cdot x_N` (inclusive);
    3. :math:`\\bar x_{pre} - \\bar x_{post} > t \\cdot s_p` (strict), with the pre window
       :math:`x_{N-2..N}` and the post window :math:`x_{N+1..N+3}` (missing values dropped, at
       least 2 values each side), :math:`s_p = \\sqrt{((n_1-1)s_1^2 + (n_2-1)s_2^2)/(n_1+n_2-2)}`
       and :math:`t = t_{1-\\alpha/2}(n_1+n_2-2)` (``adjust_crit3=True``, Lutz et al. 2013:
       2.776, 3.182 or 4.303 for 6, 5 or 4 values) or ``critical_value`` (2.776) otherwise.

    As in suddengains the criteria are *multiplied*: if any selected criterion cannot be evaluated
    (a missing value in the pair, or fewer than 2 values in a window) the interval is not
    analysable, even when another criterion already fails. ``cutoff=None`` or ``pct=None`` or
    ``crit3=False`` switches a criterion off. For a loss, or on a higher-is-better scale, ``d`` and
    the mean difference are taken in the event's direction; ``cutoff`` stays a positive magnitude.

    Descriptives follow suddengains' ``create_bysg``: ``magnitude`` = :math:`|x_N - x_{N+1}|`;
    ``tx_change`` = improvement from ``tx_start`` to ``tx_end`` (default: first and last grid
    session; NaN if either is missing); ``change_proportion`` = magnitude / tx_change;
    ``reversal_value`` = :math:`x_{N+1}` moved back by half the magnitude; ``reversal`` = any
    score after the postgain session is strictly beyond the reversal value (missing scores are
    ignored). ``n_events`` is the number of events of that client.

    Deliberate differences from suddengains 0.7.2 (none changes a result on its ``sgdata``):

    * ``identify_sl`` applies criterion 2 as :math:`x_N - x_{N+1} \\le pct \\cdot x_N` with the
      positive default .25, which every increase meets, so the 25 % criterion does nothing for
      losses. Here a loss must be at least ``pct`` of the pregain score in the loss direction.
    * ``create_bysg`` looks for a reversal only from session N+3 (an off-by-one in its session
      numbering); here every session after the postgain session counts (N+2 on), as Tang &
      DeRubeis (1999) define it.
    * a zero change over treatment gives ``change_proportion`` NaN (suddengains keeps +Inf).
"""


def sudden_gains(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    cutoff: float | None,
    pct: float | None = 0.25,
    crit3: bool = True,
    adjust_crit3: bool = True,
    alpha: float = 0.05,
    critical_value: float = 2.776,
    higher_is_better: bool = False,
    sessions: Any = None,
    tx_start: Any = None,
    tx_end: Any = None,
) -> pd.DataFrame:
    """Sudden gains (Tang & DeRubeis, 1999) as implemented by the R package suddengains.

    Parameters
    ----------
    data : DataFrame
        Long data, one row per client x session.
    score : str
        Column with the session score (e.g. a symptom total).
    client, session : str
        Client id and session number columns.
    cutoff : float or None
        Criterion 1: minimum raw change in points (positive). ``None`` switches it off. A
        reliable-change value is a common choice (``reliable_change`` gives one).
    pct : float or None
        Criterion 2: minimum change as a proportion of the pregain score (default .25).
    crit3 : bool
        Apply criterion 3 (pre/post window mean difference).
    adjust_crit3 : bool
        Critical t from the t distribution with the available degrees of freedom (default);
        otherwise ``critical_value`` for every interval.
    alpha : float
        Two-sided alpha for the adjusted critical value.
    critical_value : float
        Fixed critical value when ``adjust_crit3=False`` (2.776 = t(.975, 4)).
    higher_is_better : bool
        False (default) for symptom measures, where a gain is a decrease.
    sessions : sequence of int, optional
        The session grid; default every integer from the first to the last session in the data.
    tx_start, tx_end : int, optional
        Sessions whose scores define the change over treatment; default the first and last grid
        session.

    Returns
    -------
    DataFrame
        One row per gain: the client column, ``kind``, ``pre_session`` (N), ``post_session``
        (N+1), ``n_events``, ``score_n_minus_2`` ... ``score_n_plus_3``, ``magnitude``,
        ``tx_start_score``, ``tx_end_score``, ``tx_change``, ``change_proportion``,
        ``reversal_value``, ``reversal`` (bool), ``mean_pre``, ``mean_post``, ``t_crit``.

    Notes
    -----
    {notes}
    References
    ----------
    Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical sessions in
    cognitive-behavioral therapy for depression. JCCP, 67(6), 894-904.
    Lutz, W., Ehrlich, T., Rubel, J., et al. (2013). The ups and downs of psychotherapy: sudden
    gains and sudden losses identified with session reports. Psychotherapy Research, 23(1),
    14-24.
    Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R package to
    identify sudden gains in longitudinal data. PLoS ONE, 15(3), e0230276.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": "a", "session": range(1, 8),
    ...                    "bdi": [30, 31, 29, 18, 17, 16, 15]})
    >>> g = sudden_gains(df, "bdi", cutoff=7)
    >>> g[["client_id", "pre_session", "post_session", "magnitude", "reversal"]]
      client_id  pre_session  post_session  magnitude  reversal
    0         a            3             4       11.0     False
    """
    return _sudden(
        data, score, kind="gain", client=client, session=session, cutoff=cutoff, pct=pct,
        crit3=crit3, adjust_crit3=adjust_crit3, alpha=alpha, critical_value=critical_value,
        higher_is_better=higher_is_better, sessions=sessions, tx_start=tx_start, tx_end=tx_end,
    )  # fmt: skip


if sudden_gains.__doc__:  # absent under python -OO
    sudden_gains.__doc__ = sudden_gains.__doc__.replace("{notes}", _SG_NOTES.strip() + "\n")


def sudden_losses(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    cutoff: float | None,
    pct: float | None = 0.25,
    crit3: bool = True,
    adjust_crit3: bool = True,
    alpha: float = 0.05,
    critical_value: float = 2.776,
    higher_is_better: bool = False,
    sessions: Any = None,
    tx_start: Any = None,
    tx_end: Any = None,
) -> pd.DataFrame:
    """Sudden losses: sudden gains in the worsening direction (suddengains ``identify_sl``).

    Arguments and output are those of :func:`sudden_gains`; ``cutoff`` is a positive magnitude
    (suddengains asks for a negative one). A loss on a lower-is-better scale is an increase of at
    least ``cutoff`` points and at least ``pct`` of the pregain score, with the post window mean
    strictly above the pre window mean by more than :math:`t \\cdot s_p`. ``magnitude`` is the
    (positive) size of the loss; ``tx_change`` is still the improvement over treatment (so
    ``change_proportion`` = loss / improvement, as in suddengains); a ``reversal`` is a later
    score back below the reversal value (half of the loss regained).

    Notes
    -----
    See :func:`sudden_gains`. Unlike suddengains' ``identify_sl``, criterion 2 is applied in
    the direction of the loss (see the deliberate differences listed there).

    References
    ----------
    Lutz, W., Ehrlich, T., Rubel, J., et al. (2013). The ups and downs of psychotherapy: sudden
    gains and sudden losses identified with session reports. Psychotherapy Research, 23(1),
    14-24.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": "a", "session": range(1, 8),
    ...                    "bdi": [15, 16, 14, 25, 26, 27, 18]})
    >>> sudden_losses(df, "bdi", cutoff=7)[["pre_session", "magnitude", "reversal"]]
       pre_session  magnitude  reversal
    0            3       11.0      True
    """
    return _sudden(
        data, score, kind="loss", client=client, session=session, cutoff=cutoff, pct=pct,
        crit3=crit3, adjust_crit3=adjust_crit3, alpha=alpha, critical_value=critical_value,
        higher_is_better=higher_is_better, sessions=sessions, tx_start=tx_start, tx_end=tx_end,
    )  # fmt: skip


def sudden_gains_by_client(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    select: str = "first",
    kind: str = "gain",
    **kwargs: Any,
) -> pd.DataFrame:
    """One row per client: the selected sudden gain (or loss), or none.

    Parameters
    ----------
    data, score, client, session
        As for :func:`sudden_gains`; further keyword arguments (``cutoff``, ``pct``, ...) are
        passed on.
    select : {"first", "last", "largest", "smallest"}
        Which event to keep when a client has several: earliest or latest pregain session, or
        largest or smallest magnitude (ties: the earliest), as suddengains'
        ``create_byperson(multiple_sg_select=)``.
    kind : {"gain", "loss"}
        Sudden gains or sudden losses.

    Returns
    -------
    DataFrame
        Every client in ``data`` (sorted by id), with ``has_event`` (bool) and ``n_events`` (0
        for clients without one) and the columns of :func:`sudden_gains` for the selected event
        (missing for clients without one).

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": ["a"] * 8 + ["b"] * 8, "session": list(range(1, 9)) * 2,
    ...                    "bdi": [30, 31, 29, 18, 17, 16, 8, 7] + [20] * 8})
    >>> out = sudden_gains_by_client(df, "bdi", cutoff=7, select="largest")
    >>> out[["client_id", "has_event", "n_events", "pre_session", "magnitude"]]
      client_id  has_event  n_events  pre_session  magnitude
    0         a       True         2            3       11.0
    1         b      False         0         <NA>        NaN
    """
    if select not in ("first", "last", "largest", "smallest"):
        raise DefinitionError(f"select must be first, last, largest or smallest (got {select!r})")
    func = sudden_gains if kind == "gain" else sudden_losses
    if kind not in ("gain", "loss"):
        raise DefinitionError(f"kind must be 'gain' or 'loss' (got {kind!r})")
    events = func(data, score, client=client, session=session, **kwargs)
    if select == "first":
        order, asc = ["pre_session"], [True]
    elif select == "last":
        order, asc = ["pre_session"], [False]
    elif select == "largest":
        order, asc = ["magnitude", "pre_session"], [False, True]
    else:
        order, asc = ["magnitude", "pre_session"], [True, True]
    chosen = events.sort_values(
        [client, *order], ascending=[True, *asc], kind="mergesort"
    ).drop_duplicates(client, keep="first")
    ids = model_frame(data, {"client": client}, ids=["client"], sort_levels=True, what="change")
    clients = pd.DataFrame({client: pd.array(ids.levels["client"], dtype="str")})  # (sorted)
    out = clients.merge(chosen, on=client, how="left")
    out.insert(1, "has_event", out["pre_session"].notna())
    out["n_events"] = out["n_events"].fillna(0).astype(int)
    for col in ("pre_session", "post_session"):
        out[col] = out[col].astype("Int64")
    out["kind"] = kind
    return out.reset_index(drop=True)


def count_intervals(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    crit3: bool = True,
    sessions: Any = None,
) -> pd.DataFrame:
    """Count the between-session intervals that could be tested for sudden gains.

    Parameters
    ----------
    data, score, client, session, sessions
        As for :func:`sudden_gains`.
    crit3 : bool
        Whether criterion 3 is applied (it needs 2 values on each side of the interval).

    Returns
    -------
    DataFrame
        One row per client: ``n_intervals`` (K - 1 intervals on a grid of K sessions),
        ``n_tested`` (K - 3: the first and last are never tested), ``n_analysable`` (criteria 1
        and 2, and 3 when applied, could all be evaluated) and ``n_not_analysable``. Sum the
        columns for study totals.

    Notes
    -----
    Analysability does not depend on ``cutoff`` or ``pct``, only on which values are missing, so
    the counts equal suddengains' ``count_intervals`` available / not-available totals. (Its
    ``total_between_sess_intervals_sg`` is (K - 1 - 2) per client, or (K - 1 - 1) with
    ``identify_sg_1to2``, a bookkeeping figure that need not equal the tested intervals.)

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": "a", "session": [1, 2, 3, 5, 6, 7],
    ...                    "bdi": [30, 31, 29, 18, 17, 16]})
    >>> count_intervals(df, "bdi")
      client_id  n_intervals  n_tested  n_analysable  n_not_analysable
    0         a            6         4             2                 2
    """
    grid = _session_grid(data, score, client, session, sessions)
    return _count_intervals_on_grid(grid, client=client, crit3=crit3)


def _count_intervals_on_grid(grid: SessionGrid, *, client: str, crit3: bool = True):
    """:func:`count_intervals` on a session grid: an interval is analysable when both its
    sessions are observed and (with criterion 3) each three-session window around it holds at
    least 2 values, the cells where :func:`_interval_criteria` is not NaN."""
    observed = ~np.isnan(grid.values)
    k = observed.shape[1]
    n_tested = max(k - 3, 0)
    p = np.arange(1, 1 + n_tested)
    ok = observed[:, p] & observed[:, p + 1]
    if crit3:
        # observed counts of the windows p-2..p and p+1..p+3 from a running count
        padded = np.pad(observed, ((0, 0), (2, 2))).astype(np.int16)
        run = np.pad(np.cumsum(padded, axis=1), ((0, 0), (1, 0)))  # run[:, j] = sum of [0, j)
        n_pre = run[:, p + 3] - run[:, p]  # padded columns p .. p+2 = original p-2 .. p
        n_post = run[:, p + 6] - run[:, p + 3]  # padded p+3 .. p+5 = original p+1 .. p+3
        ok &= (n_pre >= 2) & (n_post >= 2)
    analysable = ok.sum(axis=1)
    return pd.DataFrame(
        {
            client: grid.clients.to_numpy(),
            "n_intervals": max(k - 1, 0),
            "n_tested": n_tested,
            "n_analysable": analysable,
            "n_not_analysable": n_tested - analysable,
        }
    )


#: suddengains' ``select_cases(method = "pattern")`` availability patterns (1 = observed): each
#: leaves the three criteria computable for at least one interval.
SELECT_PATTERNS = ((1, 1, 1, 1), (1, 1, 1, 0, 1), (1, 0, 1, 1, 1), (1, 0, 1, 1, 0, 1))


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
    """Which clients provide enough data to look for sudden gains (suddengains' ``select_cases``).

    Parameters
    ----------
    data, score, client, session, sessions
        As for :func:`sudden_gains` (long data; the session grid defaults to every integer from
        the first to the last session in the data, an absent session is a missing value).
    method : {"pattern", "min_sess"}
        ``"pattern"``: the client's availability over the grid contains one of the four patterns
        below; ``"min_sess"``: at least ``min_sessions`` observed sessions on the grid.
    min_sessions : int, optional
        Needed for ``method="min_sess"`` (suddengains' ``min_sess_num``).

    Returns
    -------
    DataFrame
        One row per client (sorted by id): the client column, ``n_sessions`` (observed sessions
        on the grid) and ``selected`` (bool; suddengains' ``sg_select``).

    Notes
    -----
    With x = observed and . = missing, and N the pregain session, the patterns are
    ``x N x x`` (4 consecutive), ``x N x . x``, ``x . N x x`` and ``x . N x . x``: the
    smallest layouts with 2 values on each side of an interval whose two sessions are observed,
    so that criterion 3 can be computed (Tang & DeRubeis 1999; Wiedemann et al. 2020). They are
    matched anywhere on the grid, as suddengains matches them in the row's string of
    ``TRUE``/``FALSE``. A client with no observed session is not selected by either method.

    References
    ----------
    Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R package to
    identify sudden gains in longitudinal data. PLoS ONE, 15(3), e0230276.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": ["a"] * 4 + ["b"] * 4,
    ...                    "session": [1, 2, 3, 4, 1, 3, 5, 6], "bdi": 10})
    >>> select_sudden_gain_cases(df, "bdi")
      client_id  n_sessions  selected
    0         a           4      True
    1         b           4     False
    >>> select_sudden_gain_cases(df, "bdi", method="min_sess", min_sessions=4)["selected"].tolist()
    [True, True]
    """
    if method not in ("pattern", "min_sess"):
        raise DefinitionError(f"method must be 'pattern' or 'min_sess' (got {method!r})")
    if method == "min_sess" and (
        min_sessions is None or int(min_sessions) != min_sessions or min_sessions < 1
    ):
        raise DefinitionError(
            f"method='min_sess' needs min_sessions, a whole number >= 1 (got {min_sessions!r})"
        )
    grid = _session_grid(data, score, client, session, sessions)
    return _select_cases_on_grid(grid, client=client, method=method, min_sessions=min_sessions)


def _select_cases_on_grid(grid: SessionGrid, *, client: str, method: str, min_sessions=None):
    """:func:`select_sudden_gain_cases` on a session grid (arguments checked by the caller)."""
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


# ---------------------------------------------------------------------------------------------
# Ended vs ongoing clients
# ---------------------------------------------------------------------------------------------

TREATMENT_STATUSES = ("ended", "ongoing", "unknown")
_TRUE_WORDS = {"1", "true", "yes", "y", "ended", "end", "x"}
_FALSE_WORDS = {"0", "false", "no", "n", ""}


def _end_marks(values: pd.Series, column: str) -> np.ndarray:
    """True where an end-of-treatment cell marks the end: yes/true/1/ended/x or a date."""
    out = np.zeros(len(values), dtype=bool)
    present = values.notna().to_numpy()
    if not present.any():
        return out
    v = values[present]
    if pd.api.types.is_bool_dtype(v) or pd.api.types.is_numeric_dtype(v):
        out[present] = v.astype(float).to_numpy() != 0
        return out
    text = v.astype(str).str.strip().str.lower()
    is_true, is_false = text.isin(_TRUE_WORDS), text.isin(_FALSE_WORDS)
    other = ~(is_true | is_false)
    as_date = pd.to_datetime(v[other.to_numpy()], errors="coerce", format="mixed")
    if as_date.isna().any():
        row = as_date.index[np.argmax(as_date.isna().to_numpy())]
        raise ChangeInputError(
            "not an end-of-treatment mark: use yes/no, 1/0, true/false or the end date",
            column=column,
            row=row,
            value=values.loc[row],
        )
    out[present] = is_true.to_numpy() | other.to_numpy()
    return out


def _sorted_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pandas.factorize(ids, sort=True)`` (no missing id), with text ids sorted as distinct
    values: pandas sorts text uniques with Python comparisons and matches every row to them
    again (9 s for 20 million rows); here the rows are hashed once and the distinct ids sorted
    in NumPy (the same code-point order)."""
    codes, uniq = pd.factorize(ids)
    values = np.asarray(uniq, dtype=object)
    if len(values) < 2 or pd.api.types.infer_dtype(values, skipna=False) != "string":
        return pd.factorize(ids, sort=True)
    lengths = np.fromiter(map(len, values), np.int64, len(values))
    if lengths.max() > 64:  # (a fixed-width copy of long ids would be large)
        return pd.factorize(ids, sort=True)
    text = values.astype(str)  # fixed-width code points; NumPy drops trailing NULs:
    if (np.char.str_len(text) != lengths).any():
        return pd.factorize(ids, sort=True)  # such ids are sorted by pandas
    order = np.argsort(text, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[codes], uniq.take(order)


def _distinct_per_code(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Distinct non-missing ``values`` per code ``0 .. n - 1`` (``groupby(codes).nunique()``),
    from integer keys: value codes from one hash pass, then the distinct (code, value) pairs."""
    ok = ~np.isnan(values)
    v_codes, v_uniq = pd.factorize(values[ok])
    width = max(len(v_uniq), 1)
    key = codes[ok].astype(np.int64) * width + v_codes
    if n * width <= 4 * len(key) + 1024:  # dense (sessions 0-40 of many clients): a bitmap
        seen = np.zeros(n * width, dtype=bool)
        seen[key] = True
        return seen.reshape(n, width).sum(axis=1)
    return np.bincount(pd.unique(key) // width, minlength=n)


def _dates_by_value(raw: pd.Series) -> pd.Series:
    """``pandas.to_datetime(raw, errors="coerce", format="mixed")``, each distinct value parsed
    once (a few thousand dates for 20 million sessions)."""
    codes, uniq = pd.factorize(raw)
    if len(uniq) * 2 > len(raw):  # mostly distinct: one pass over the column
        return pd.to_datetime(raw, errors="coerce", format="mixed")
    parsed = pd.to_datetime(pd.Series(uniq), errors="coerce", format="mixed").array
    values = parsed.take(codes, allow_fill=True)  # -1 (a missing value): NaT
    return pd.Series(values, index=raw.index, name=raw.name)


def treatment_status(
    data: pd.DataFrame,
    *,
    client: str = "client_id",
    session: str = "session",
    date: str | None = None,
    end: str | None = None,
    cutoff_date: Any = None,
    ongoing_within_days: float | None = 28,
    last_planned_session: int | None = None,
) -> pd.DataFrame:
    """Whether each client has ended treatment or is still in treatment at the data cut-off.

    An interim wave holds clients who are still coming: their last session so far is not an
    end-of-treatment score, and their session count is not an early ending. This classifies
    each client from an explicit end-of-treatment column, from the session dates, or both.

    Parameters
    ----------
    data : DataFrame
        Long data, one row per client x session (several rows per session, e.g. raters, are
        fine).
    client, session : str
        Client id and session number columns.
    date : str, optional
        Session date column (anything ``pandas.to_datetime`` reads).
    end : str, optional
        End-of-treatment column: a client has ended when any of its rows is marked (yes / true
        / 1 / ended / x, or an end date); empty, no, false and 0 are not marks.
    cutoff_date : date-like, optional
        The wave's data cut-off; default the latest date in ``date``.
    ongoing_within_days : float or None
        Study setting: a client seen within this many days of the cut-off is still in
        treatment (default 28 days, i.e. four missed weekly sessions); a client last seen
        longer ago has ended. ``None`` switches the date rule off.
    last_planned_session : int, optional
        The last planned session of the protocol; adds ``ended_early`` (ended before it).

    Returns
    -------
    DataFrame
        One row per client (sorted by id): the client column, ``n_sessions``,
        ``first_session``, ``last_session``, ``last_date`` and ``days_since_last`` (with
        ``date``), ``marked_ended`` (with ``end``), ``status`` (categorical: ended / ongoing /
        unknown), ``reason`` and, with ``last_planned_session``, ``ended_early`` (nullable
        boolean: ended before the last planned session; missing for clients not ended).

    Notes
    -----
    A client is *ended* when marked in ``end``, or, with ``date`` and ``ongoing_within_days``,
    when its last session date lies more than ``ongoing_within_days`` days before the cut-off.
    Otherwise it is *ongoing*; it is *unknown* when the date rule applies but the client has no
    date and no mark. "Dropout" is avoided on purpose: a client of an interim wave with few
    sessions may simply be early in treatment; ``ended_early`` is what an early ending measures.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": ["a", "a", "b", "b", "c"],
    ...                    "session": [1, 2, 1, 2, 1],
    ...                    "date": ["2025-01-06", "2025-01-13", "2025-03-03", "2025-03-10",
    ...                             "2025-03-01"]})
    >>> st = treatment_status(df, date="date", ongoing_within_days=28, last_planned_session=12)
    >>> st[["client_id", "last_session", "days_since_last", "status", "ended_early"]]
      client_id  last_session  days_since_last   status  ended_early
    0         a             2             56.0    ended         True
    1         b             2              0.0  ongoing         <NA>
    2         c             1              9.0  ongoing         <NA>
    """
    require_columns(
        data, [client, session], "treatment_status", roles={client: "client", session: "session"}
    )
    if date is None and end is None:
        raise DefinitionError(
            "say how to tell ended from ongoing clients: pass date= (with ongoing_within_days) "
            "and/or end= (an end-of-treatment column)"
        )
    if date is None and ongoing_within_days is not None and end is None:
        raise DefinitionError("ongoing_within_days needs date=")
    if ongoing_within_days is not None and not ongoing_within_days >= 0:
        raise DefinitionError(
            f"ongoing_within_days must be >= 0 days (got {ongoing_within_days!r})"
        )
    if date is not None:
        require_columns(data, [date], "treatment_status", roles={date: "date"})
    if end is not None:
        require_columns(data, [end], "treatment_status", roles={end: "end"})
    ids = data[client]
    if ids.isna().any():
        row = data.index[np.argmax(ids.isna().to_numpy())]
        raise ChangeInputError("client id is missing", column=client, row=row)
    sess = to_float(data[session], session, what="treatment_status")
    codes, clients = _sorted_codes(ids)
    n_c = len(clients)
    frame = pd.DataFrame({"c": codes, "s": sess})
    by = frame.groupby("c")["s"]
    out = pd.DataFrame(
        {
            client: clients,
            "n_sessions": _distinct_per_code(codes, sess, n_c),
            "first_session": by.min().reindex(range(n_c)).to_numpy(),
            "last_session": by.max().reindex(range(n_c)).to_numpy(),
        }
    )
    ended = np.zeros(n_c, dtype=bool)
    ongoing = np.zeros(n_c, dtype=bool)
    reason = np.full(n_c, "", dtype=object)
    if end is not None:
        marks = _end_marks(data[end], end)
        marked = np.bincount(codes, weights=marks.astype(float), minlength=n_c) > 0
        out["marked_ended"] = marked
        ended |= marked
        reason[marked] = "marked as ended"
    if date is not None:
        raw = data[date]
        when = _dates_by_value(raw)
        bad = when.isna() & raw.notna()
        if bad.any():  # blank text is no date, anything else that does not parse is an error
            bad[bad] = raw[bad].astype(str).str.strip() != ""
        if bad.any():
            row = raw.index[np.argmax(bad.to_numpy())]
            raise ChangeInputError(
                "not a date; write dates as YYYY-MM-DD", column=date, row=row, value=raw.loc[row]
            )
        last = pd.Series(when.to_numpy(), index=codes).groupby(level=0).max().reindex(range(n_c))
        cut = pd.Timestamp(cutoff_date) if cutoff_date is not None else when.max()
        days = (cut - last).dt.total_seconds().to_numpy() / 86400.0
        out["last_date"] = last.to_numpy()
        out["days_since_last"] = days
        if ongoing_within_days is not None:
            has_date = ~np.isnan(days)
            stale = has_date & (days > ongoing_within_days) & ~ended
            fresh = has_date & (days <= ongoing_within_days) & ~ended
            ended |= stale
            ongoing |= fresh
            reason[stale] = f"no session within {ongoing_within_days:g} days of the cut-off"
            reason[fresh] = f"seen within {ongoing_within_days:g} days of the cut-off"
            unknown = ~ended & ~ongoing
            reason[unknown] = "no session date"
        else:
            ongoing |= ~ended
            reason[~ended] = "not marked as ended"
    else:
        ongoing |= ~ended
        reason[~ended] = "not marked as ended"
    status = np.where(ended, "ended", np.where(ongoing, "ongoing", "unknown"))
    out["status"] = pd.Categorical(status, categories=TREATMENT_STATUSES)
    out["reason"] = reason
    if last_planned_session is not None:
        early = out["last_session"].to_numpy() < float(last_planned_session)
        out["ended_early"] = pd.arrays.BooleanArray(early & ended, ~ended)
    for col in ("first_session", "last_session"):
        if np.all(np.mod(out[col].dropna(), 1) == 0):
            out[col] = out[col].astype("Int64")
    return out


def keep_ended_clients(
    data: pd.DataFrame, status: pd.DataFrame, *, client: str = "client_id"
) -> pd.DataFrame:
    """The rows of ``data`` whose client has ended treatment (a pre-filter for change analyses).

    Parameters
    ----------
    data : DataFrame
        Any table with a client column (long or wide).
    status : DataFrame
        Output of :func:`treatment_status`.
    client : str
        Client id column of both tables.

    Returns
    -------
    DataFrame
        The rows of ended clients; ``.attrs["treatment_status"]`` counts the clients of
        ``data`` by status (clients absent from ``status`` count as unknown).

    Examples
    --------
    >>> st = pd.DataFrame({"client_id": ["a", "b"], "status": ["ended", "ongoing"]})
    >>> keep_ended_clients(pd.DataFrame({"client_id": ["a", "a", "b"], "y": [1, 2, 3]}), st)
      client_id  y
    0         a  1
    1         a  2
    """
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


# ---------------------------------------------------------------------------------------------
# Reliable and clinically significant change
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Norms:
    higher_is_better: bool | None
    rc_points: float | None
    rc_confidence: float | None
    cutoff: float | None
    clinical_if: str | None


_CLINICAL_IF = (">=", ">", "<=", "<")


def _instrument_norms(instrument: Any) -> _Norms:
    """Direction, reliable-change points (with confidence) and cutoff of a registry instrument.

    Reads ``Instrument.direction`` and ``Instrument.norms`` (``reliable_change``: points,
    confidence; ``cutoff``: value, clinical_if), see :mod:`alliance_lib.registry`.
    """
    from alliance_lib.registry import get_instrument

    inst = get_instrument(instrument)
    norms = inst.norms or {}
    rc = norms.get("reliable_change") or {}
    cut = norms.get("cutoff") or {}
    return _Norms(
        higher_is_better=inst.direction == "higher_is_better",
        rc_points=None if rc.get("points") is None else float(rc["points"]),
        rc_confidence=None if rc.get("confidence") is None else float(rc["confidence"]),
        cutoff=None if cut.get("value") is None else float(cut["value"]),
        clinical_if=cut.get("clinical_if"),
    )


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise DefinitionError(f"confidence must lie between 0 and 1 (got {confidence!r})")
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


#: Reliable-change methods, named as clinicalsignificance's ``rci_method``.
RCI_METHODS = ("JT", "GLN", "HLL", "EN", "NK", "HA")


def _check_method(method: str, reliability: Any, reliability_post: Any) -> str:
    if not isinstance(method, str) or method.upper() not in RCI_METHODS:
        raise DefinitionError(f"method must be one of {', '.join(RCI_METHODS)} (got {method!r})")
    method = method.upper()
    if method != "JT" and reliability is None:
        raise DefinitionError(
            f"method {method!r} needs reliability= (an instrument's published reliable-change "
            "points define the Jacobson-Truax method only)"
        )
    if reliability_post is not None:
        if method != "NK":
            raise DefinitionError("reliability_post= is used by method='NK' (Nunnally-Kotsch) only")
        if not 0 <= reliability_post < 1:
            raise DefinitionError(f"reliability_post must lie in [0, 1) (got {reliability_post!r})")
    return method


def _rci_parts(method, x1, x2, both, s1, r, r_post):
    """Numerator, denominator and sample statistics of one RCI method (vectorised)."""
    m1 = float(np.mean(x1[both]))
    m2 = float(np.mean(x2[both]))
    s2 = float(np.std(x2[both], ddof=1)) if both.sum() >= 2 else np.nan
    sem = float(s1 * np.sqrt(1.0 - r))
    info = {"m_pre": m1, "sd_pre": float(s1), "m_post": m2, "sd_post": s2, "se_measurement": sem}
    if method == "JT":
        return x2 - x1, np.sqrt(2.0) * sem, info
    if method in ("GLN", "HLL"):
        se_pred = s1 * np.sqrt(1.0 - r**2)
        centre = m1 if method == "GLN" else m2
        info["se_prediction"] = float(se_pred)
        return (x2 - centre) - r * (x1 - m1), se_pred, info
    if method in ("EN", "NK"):
        expected = r * (x1 - m1) + m1  # estimated true pre score (Speer 1992)
        if method == "EN":
            return x2 - expected, sem, info
        rp = r if r_post is None else r_post
        info["reliability_post"] = rp
        den = np.sqrt(r**2 * s1**2 * (1.0 - r) + s1**2 * (1.0 - rp))
        return x2 - expected, den, info
    # HA: reliability of the difference scores (Hageman & Arrindell 1999)
    if both.sum() < 3:
        raise DefinitionError("method 'HA' needs at least 3 complete pre/post pairs")
    r12 = float(np.corrcoef(x1[both], x2[both])[0, 1])
    r_pre = (s1**2 - sem**2) / s1**2
    r_post_ha = (s2**2 - sem**2) / s2**2
    r_dd = (s1**2 * r_pre + s2**2 * r_post_ha - 2 * s1 * s2 * r12) / (
        s1**2 + s2**2 - 2 * s1 * s2 * r12
    )
    if not r_dd > 0:
        raise DefinitionError(
            f"method 'HA': the reliability of the change scores is {r_dd:.3f} (not positive); "
            "the Hageman-Arrindell index is undefined for these data"
        )
    info.update(r_pre_post=r12, r_dd=float(r_dd), reliability_post=float(r_post_ha))
    num = (x2 - x1) * r_dd + (m2 - m1) * (1.0 - r_dd)
    return num, np.sqrt(r_dd) * np.sqrt(2.0) * sem, info


def _rc_core(
    data: pd.DataFrame,
    pre: str,
    post: str,
    sd: float | None,
    reliability: float | None,
    instrument: Any,
    higher_is_better: bool | None,
    confidence: float | None,
    inclusive: bool | None,
    method: str = "JT",
    reliability_post: float | None = None,
) -> tuple[pd.DataFrame, np.ndarray, bool, _Norms | None]:
    pp = model_frame(data, {"pre": pre, "post": post}, numeric=["pre", "post"], what="change")
    x1, x2 = pp.values("pre"), pp.values("post")
    method = _check_method(method, reliability, reliability_post)
    norms = _instrument_norms(instrument) if instrument is not None else None
    if higher_is_better is None:
        if norms is None or norms.higher_is_better is None:
            raise DefinitionError(
                "say which direction is better: pass higher_is_better=True/False or an instrument"
            )
        higher_is_better = norms.higher_is_better
    d = 1.0 if higher_is_better else -1.0
    change = x2 - x1
    both = ~np.isnan(x1) & ~np.isnan(x2)
    use_points = sd is None and reliability is None and norms is not None
    info: dict[str, Any] = {"method": method, "n_pairs": int(both.sum())}
    if use_points:
        if norms.rc_points is None:
            raise DefinitionError(
                f"instrument {instrument!r} has no reliable-change norm; pass sd and reliability"
            )
        conf = confidence if confidence is not None else (norms.rc_confidence or 0.95)
        z = _z(conf)
        threshold = norms.rc_points
        numerator, denominator = change, threshold / z
        if inclusive is None:
            inclusive = True  # manuals say "changes by 14 points or more"
        info["published_points"] = threshold
    else:
        if reliability is None:
            raise DefinitionError("pass reliability (and sd), or an instrument with norms")
        if not 0 <= reliability < 1:
            raise DefinitionError(f"reliability must lie in [0, 1) (got {reliability!r})")
        if sd is None:
            if both.sum() < 2:
                raise DataError("need sd, or at least 2 complete pre/post pairs to estimate it")
            sd = float(np.std(x1[both], ddof=1))
        if not sd > 0:
            raise DefinitionError(f"sd must be positive (got {sd!r})")
        conf = confidence if confidence is not None else 0.95
        # Hageman & Arrindell test one-sided (clinicalsignificance: qnorm(1 - alpha))
        z = _z(conf) if method != "HA" else _z(1.0 - 2.0 * (1.0 - conf))
        numerator, denominator, stats_info = _rci_parts(
            method, x1, x2, both, float(sd), float(reliability), reliability_post
        )
        info.update(stats_info, reliability=float(reliability))
        threshold = z * denominator
        if inclusive is None:
            inclusive = False
    info.update(critical_value=z, inclusive=bool(inclusive))
    rci = numerator / denominator
    with np.errstate(invalid="ignore"):
        if inclusive:
            improved, worse = d * numerator >= threshold, d * numerator <= -threshold
        else:
            improved, worse = d * numerator > threshold, d * numerator < -threshold
    category = np.where(improved, "improved", np.where(worse, "deteriorated", "unchanged"))
    category = np.where(np.isnan(rci), None, category)
    out = data.copy()
    out["change"] = change
    out["rci"] = rci
    out["rc_threshold"] = threshold
    out["category"] = pd.Categorical(category, categories=RCI_CATEGORIES)
    out.attrs["reliable_change"] = info
    return out, category, bool(higher_is_better), norms


def reliable_change(
    data: pd.DataFrame,
    *,
    pre: str,
    post: str,
    sd: float | None = None,
    reliability: float | None = None,
    instrument: Any = None,
    higher_is_better: bool | None = None,
    confidence: float | None = None,
    inclusive: bool | None = None,
    method: str = "JT",
    reliability_post: float | None = None,
) -> pd.DataFrame:
    """Reliable change index for pre/post scores in wide layout (Jacobson-Truax and five others).

    Parameters
    ----------
    data : DataFrame
        One row per client with a pre and a post score.
    pre, post : str
        Score columns.
    sd : float, optional
        SD of the pre scores in a clinical or normative sample. Default: the SD (n - 1) of the
        pre scores of the complete pairs in ``data`` (as the R package clinicalsignificance).
    reliability : float, optional
        Reliability of the measure (test-retest in Jacobson & Truax; alpha is often used).
    instrument : str or Instrument, optional
        A registry instrument. When ``sd`` and ``reliability`` are not given, its published
        reliable-change points (e.g. OQ-45.2: 14) and their confidence level are used; its
        direction is used when ``higher_is_better`` is None.
    higher_is_better : bool, optional
        Direction of improvement (False for symptom measures).
    confidence : float, optional
        Two-sided confidence level of the threshold; default .95 (z = 1.959964), or the
        instrument's stated level for its published points.
    inclusive : bool, optional
        Whether a change exactly at the threshold counts. Default: strict for a computed RCI
        (as clinicalsignificance; JTRCI is inclusive), inclusive for published points ("14
        points or more").
    method : {"JT", "GLN", "HLL", "EN", "NK", "HA"}
        The reliable-change index, named as clinicalsignificance's ``rci_method``:
        Jacobson-Truax (default), Gulliksen-Lord-Novick, Hsu-Linn-Lord, Edwards-Nunnally,
        Nunnally-Kotsch, Hageman-Arrindell. All but JT need ``reliability`` and use the means
        (and, for HLL and HA, the post SD and the pre-post correlation) of the complete pairs in
        ``data``; published reliable-change points are a JT criterion only.
    reliability_post : float, optional
        Reliability at the post measurement, for ``method="NK"`` only (default: ``reliability``,
        as clinicalsignificance).

    Returns
    -------
    DataFrame
        A copy of ``data`` with ``change`` (post - pre), ``rci``, ``rc_threshold`` and
        ``category`` (categorical: improved / unchanged / deteriorated; missing when pre or post
        is missing). ``rc_threshold`` is the critical value times the method's denominator, in
        points of the method's numerator (for JT: the raw change). ``.attrs["reliable_change"]``
        holds the method, critical value and the sample statistics used (means, SDs, SE of
        measurement, ``r_dd`` for HA).

    Notes
    -----
    With pre and post scores :math:`x_1, x_2`, the means :math:`M_1, M_2` and SDs
    :math:`s_1, s_2` (n - 1) of the complete pairs (:math:`s_1` = ``sd`` when given), reliability
    :math:`r`, :math:`SE = s_1\\sqrt{1 - r}` and :math:`SE_{pred} = s_1\\sqrt{1 - r^2}`:

    * JT (Jacobson & Truax 1991): :math:`RCI = (x_2 - x_1) / \\sqrt{2 SE^2}`
    * GLN (Gulliksen, Lord & Novick; Hsu 1989, 1995):
      :math:`[(x_2 - M_1) - r (x_1 - M_1)] / SE_{pred}`
    * HLL (Hsu, Linn & Lord; Hsu 1989): :math:`[(x_2 - M_2) - r (x_1 - M_1)] / SE_{pred}`
    * EN (Edwards-Nunnally in Speer's 1992 form): :math:`[x_2 - (r (x_1 - M_1) + M_1)] / SE`
    * NK (Nunnally & Kotsch 1983), with post reliability :math:`r_2`:
      :math:`[x_2 - (r (x_1 - M_1) + M_1)] / \\sqrt{r^2 s_1^2 (1 - r) + s_1^2 (1 - r_2)}`
    * HA (Hageman & Arrindell 1999): with :math:`r_{xx,t} = (s_t^2 - SE^2)/s_t^2` and the
      pre-post correlation :math:`r_{12}`, the reliability of the differences
      :math:`r_{dd} = (s_1^2 r_{xx,1} + s_2^2 r_{xx,2} - 2 s_1 s_2 r_{12}) /
      (s_1^2 + s_2^2 - 2 s_1 s_2 r_{12})` and
      :math:`RCI = [(x_2 - x_1) r_{dd} + (M_2 - M_1)(1 - r_{dd})] / (\\sqrt{r_{dd}}\\sqrt{2 SE^2})`

    Change is reliable when :math:`d \\cdot RCI > z` (improved) or :math:`< -z` (deteriorated),
    :math:`d = +1` when higher is better, with the two-sided :math:`z_{1-\\alpha/2}` (1.96 at
    ``confidence`` .95) and, for HA, the one-sided :math:`z_{1-\\alpha}` (1.645), as
    Hageman & Arrindell and clinicalsignificance 3.0.0. With published points,
    :math:`S_{diff}` = points / z. Published points apply to the instrument's total score in its
    default metric (``registry.get_instrument(id).metric``). On clinicalsignificance's
    ``claus_2020`` (HAM-D, sessions 1 and 4, r = .80) every method reproduces the package's
    category counts (``tests/test_change.py``).

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
    defining meaningful change in psychotherapy research. JCCP, 59(1), 12-19.
    Hsu, L. M. (1989). Reliable changes in psychotherapy: Taking into account regression toward
    the mean. Behavioral Assessment, 11(4), 459-467.
    Hsu, L. M. (1995). Regression toward the mean associated with measurement error and the
    identification of improvement and deterioration in psychotherapy. JCCP, 63(1), 141-144.
    Speer, D. C. (1992). Clinically significant change: Jacobson and Truax (1991) revisited.
    JCCP, 60(3), 402-408.
    Nunnally, J. C., & Kotsch, W. E. (1983). Studies of individual subjects: Logic and methods
    of analysis. British Journal of Clinical Psychology, 22(2), 83-93.
    Hageman, W. J., & Arrindell, W. A. (1999). Establishing clinically significant change:
    increment of precision and the distinction between individual and group level analysis.
    Behaviour Research and Therapy, 37(12), 1169-1193.
    Claus, B. B., et al. clinicalsignificance (R package 3.0.0). J Stat Softw 111(1).

    Examples
    --------
    >>> df = pd.DataFrame({"pre": [30.0, 30.0, 30.0], "post": [20.0, 25.0, 40.0]})
    >>> out = reliable_change(df, pre="pre", post="post", sd=7.5, reliability=0.8,
    ...                       higher_is_better=False)
    >>> print(round(out["rc_threshold"].iloc[0], 2))
    9.3
    >>> out["category"].tolist()
    ['improved', 'unchanged', 'deteriorated']
    >>> df = pd.DataFrame({"pre": [30.0, 25.0, 35.0, 28.0], "post": [18.0, 24.0, 30.0, 29.0]})
    >>> reliable_change(df, pre="pre", post="post", reliability=0.8, higher_is_better=False,
    ...                 method="EN")["category"].tolist()
    ['improved', 'unchanged', 'improved', 'unchanged']
    """
    out, _, _, _ = _rc_core(
        data, pre, post, sd, reliability, instrument, higher_is_better, confidence, inclusive,
        method, reliability_post,
    )  # fmt: skip
    return out


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
    """Reliable change from long data: each client's first and last observed score.

    Parameters
    ----------
    data : DataFrame
        Long data, one row per client x session.
    score, client, session : str
        Column names.
    first, last : int, optional
        Use these sessions as pre and post instead of each client's first and last session with
        a non-missing score.
    status : DataFrame, optional
        Output of :func:`treatment_status`: only clients who have *ended* treatment are
        analysed, so that a client still in treatment does not count its latest session as an
        end-of-treatment score. ``.attrs["treatment_status"]`` of the result counts the clients
        by status. Default: every client.
    **kwargs
        Passed to :func:`reliable_change` (``sd``, ``reliability``, ``instrument``, ...).

    Returns
    -------
    DataFrame
        One row per client: the client column, ``pre_session``, ``pre``, ``post_session``,
        ``post`` and the columns added by :func:`reliable_change`. A client with a single
        observed session has a missing post score and category.

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": ["a", "a", "a", "b"], "session": [1, 2, 5, 1],
    ...                    "oq": [90.0, 80.0, 70.0, 60.0]})
    >>> out = reliable_change_from_long(df, "oq", sd=7.5, reliability=0.8,
    ...                                 higher_is_better=False)
    >>> out[["client_id", "pre_session", "post_session", "change", "category"]]
      client_id  pre_session  post_session  change  category
    0         a            1             5   -20.0  improved
    1         b            1          <NA>     NaN       NaN
    """
    counts = None
    if status is not None:
        data = keep_ended_clients(data, status, client=client)
        counts = data.attrs["treatment_status"]
    grid = _session_grid(data, score, client, session)
    out = _reliable_change_on_grid(grid, client=client, first=first, last=last, **kwargs)
    if counts is not None:
        out.attrs["treatment_status"] = counts
    return out


def _reliable_change_on_grid(grid, *, client, first=None, last=None, **kwargs):
    """:func:`reliable_change_from_long` on a session grid (``status`` applied by the caller,
    e.g. with :meth:`SessionGrid.subset`)."""
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
    return reliable_change(wide, pre="pre", post="post", **kwargs)


def clinical_significance(
    data: pd.DataFrame,
    *,
    pre: str,
    post: str,
    cutoff: str | float | None = None,
    functional_mean: float | None = None,
    functional_sd: float | None = None,
    clinical_mean: float | None = None,
    clinical_sd: float | None = None,
    sd: float | None = None,
    reliability: float | None = None,
    instrument: Any = None,
    higher_is_better: bool | None = None,
    confidence: float | None = None,
    inclusive: bool | None = None,
    sd_multiplier: float = 2.0,
    b_sd: str = "functional",
    clinical_if: str | None = None,
    method: str = "JT",
    reliability_post: float | None = None,
    harmed: bool = False,
) -> pd.DataFrame:
    """Clinically significant change: recovered, improved, unchanged, deteriorated (and harmed).

    Parameters
    ----------
    data, pre, post, sd, reliability, instrument, higher_is_better, confidence, inclusive
        As for :func:`reliable_change`.
    cutoff : {"a", "b", "c"} or float, optional
        The Jacobson-Truax criterion, or a number (e.g. a manual's cutoff). Default: ``"c"`` when
        functional norms are given, else the instrument's cutoff, else ``"a"``.
    functional_mean, functional_sd : float, optional
        Mean and SD of a functional (non-help-seeking) norm sample; needed for ``"b"`` and ``"c"``.
    clinical_mean, clinical_sd : float, optional
        Mean and SD of the clinical population; default the pre scores of the complete pairs.
    sd_multiplier : float
        Width of criteria a and b in SDs: 2 (Jacobson & Truax; clinicalsignificance) or 1.96
        (JTRCI).
    b_sd : {"functional", "clinical"}
        SD used for criterion b: the functional SD (Jacobson & Truax 1991) or the clinical SD
        (what clinicalsignificance does).
    clinical_if : {">=", ">", "<=", "<"}, optional
        Which side of the cutoff, ties included or not, is the clinical range (e.g. ``">="`` for
        the OQ-45.2's "64 or more", ``"<"`` for the SRS's "below 36"). Default: the instrument's
        rule when its cutoff is used, else the cutoff itself counts as clinical (``">="`` when
        lower is better, ``"<="`` when higher is better).
    method : {"JT", "GLN", "HLL", "EN", "NK", "HA"}
        The reliable-change index (see :func:`reliable_change`). ``"HA"`` also switches to
        Hageman & Arrindell's true-score cutoffs and their individual test of having crossed
        the cutoff (Notes).
    reliability_post : float, optional
        Post reliability for ``method="NK"``.
    harmed : bool
        Report clinicalsignificance's fifth category ``"harmed"`` (functional before, not
        functional after and reliably worse) instead of counting those clients as
        ``"deteriorated"`` (Jacobson & Truax's four categories, the default).

    Returns
    -------
    DataFrame
        The output of :func:`reliable_change`, its ``category`` renamed ``reliable_change``,
        plus ``cutoff`` (points), ``clinical_pre`` and ``functional_post`` (nullable booleans)
        and ``category`` (categorical: recovered / improved / unchanged / deteriorated, and
        harmed when asked; missing when pre or post is missing). With ``method="HA"`` also
        ``cs_indiv`` (the individual z for the post true score against the cutoff), and
        ``.attrs["group_level"]``: the expected shares of the group that changed and that ended
        functional (Hageman & Arrindell's group-level analysis).

    Notes
    -----
    With :math:`d = +1` when higher is better and :math:`-1` otherwise, clinical population
    :math:`(M_1, s_1)` and functional population :math:`(M_0, s_0)`:

    .. math:: a = M_1 + d k s_1, \\quad b = M_0 - d k s_0, \\quad
              c = \\frac{s_1 M_0 + s_0 M_1}{s_1 + s_0}

    (k = ``sd_multiplier``). A score is *functional* when :math:`d \\cdot x > d \\cdot`
    cutoff (strict, as clinicalsignificance) and *clinical* otherwise, so by default a score
    exactly at the cutoff is clinical; ``clinical_if`` (or the instrument's norm) sets the rule
    for instruments whose manual says otherwise. Instrument cutoffs and reliable-change points
    apply to the instrument's total score in its default metric.
    Recovered = clinical before, functional after and reliably improved; improved = reliably
    improved but not recovered; deteriorated = reliably worse; unchanged otherwise. The
    clinicalsignificance package also has a "harmed" category (functional before, clinical after
    and reliably worse); here such clients are "deteriorated", as in Jacobson & Truax (1991),
    unless ``harmed=True``.

    Hageman & Arrindell (1999; ``method="HA"``) use true-score cutoffs and test whether the
    post true score lies beyond the cutoff. With :math:`SE = s_1\\sqrt{1-r}` and
    :math:`r_t = (s_t^2 - SE^2)/s_t^2` for the clinical (1), functional (0) and post samples:

    .. math:: a = M_1 + d k s_1 \\sqrt{r_1}, \\quad b = M_0 - d k s_0 \\sqrt{r_0}, \\quad
              c = \\frac{s_1\\sqrt{r_1} M_0 + s_0\\sqrt{r_0} M_1}{s_1\\sqrt{r_1} +
              s_0\\sqrt{r_0}}

    (``b_sd="clinical"`` uses :math:`s_1\\sqrt{r_1}` in b, as clinicalsignificance), and
    :math:`CS_{indiv} = (M_{post} + (x_2 - M_{post}) r_{post} - cutoff) / (\\sqrt{r_{post}} SE)`;
    a client is functional after when clinical before and :math:`d \\cdot CS_{indiv} > z_{1-\\alpha}`
    (1.645), and recovered when also reliably improved by the HA index. Group level (for
    :math:`d = -1`; complements for :math:`d = +1`): changed =
    :math:`\\Phi(-\\bar\\Delta / (s_\\Delta \\sqrt{r_{dd}}))`, functional =
    :math:`\\Phi((cutoff - M_{post}) / (s_{post}\\sqrt{r_{post}}))`. On ``claus_2020`` (HAM-D,
    cutoff c with functional M = SD = 8, r = .80) all six methods reproduce
    clinicalsignificance 3.0.0's five category counts, and HA its group-level 90.31 % and
    75.55 %.

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). JCCP, 59(1), 12-19.
    Claus, B. B., et al. clinicalsignificance: Clinical significance analyses of intervention
    studies in R. Journal of Statistical Software, 111(1). doi:10.18637/jss.v111.i01
    Hageman, W. J., & Arrindell, W. A. (1999). Behaviour Research and Therapy, 37(12),
    1169-1193.

    Examples
    --------
    >>> df = pd.DataFrame({"pre": [60.0, 60.0, 60.0, 45.0], "post": [40.0, 50.0, 60.0, 60.0]})
    >>> out = clinical_significance(df, pre="pre", post="post", cutoff="c",
    ...     functional_mean=40, functional_sd=7.5, clinical_mean=60, clinical_sd=7.5,
    ...     sd=7.5, reliability=0.8, higher_is_better=False)
    >>> out["cutoff"].iloc[0], out["category"].tolist()
    (np.float64(50.0), ['recovered', 'improved', 'unchanged', 'deteriorated'])
    """
    out, rc_cat, hib, norms = _rc_core(
        data, pre, post, sd, reliability, instrument, higher_is_better, confidence, inclusive,
        method, reliability_post,
    )  # fmt: skip
    info = out.attrs["reliable_change"]
    is_ha = info["method"] == "HA"
    d = 1.0 if hib else -1.0
    pp = model_frame(data, {"pre": pre, "post": post}, numeric=["pre", "post"], what="change")
    x1, x2 = pp.values("pre"), pp.values("post")
    both = ~np.isnan(x1) & ~np.isnan(x2)
    from_instrument = False
    if cutoff is None:
        if functional_mean is not None and functional_sd is not None:
            cutoff = "c"
        elif norms is not None and norms.cutoff is not None:
            cutoff, from_instrument = norms.cutoff, True
        else:
            cutoff = "a"
    m1 = clinical_mean if clinical_mean is not None else float(np.mean(x1[both]))
    s1 = clinical_sd if clinical_sd is not None else float(np.std(x1[both], ddof=1))
    sem = info.get("se_measurement")
    if is_ha:
        sem = float(s1 * np.sqrt(1.0 - info["reliability"]))  # from the clinical SD
    if isinstance(cutoff, str):
        if cutoff not in ("a", "b", "c"):
            raise DefinitionError(f"cutoff must be 'a', 'b', 'c' or a number (got {cutoff!r})")
        if b_sd not in ("functional", "clinical"):
            raise DefinitionError(f"b_sd must be 'functional' or 'clinical' (got {b_sd!r})")
        if cutoff in ("b", "c") and (functional_mean is None or functional_sd is None):
            raise DefinitionError(f"cutoff {cutoff!r} needs functional_mean and functional_sd")
        # true-score SDs for HA (Hageman & Arrindell 1999), observed SDs otherwise
        t1 = s1 * np.sqrt((s1**2 - sem**2) / s1**2) if is_ha else s1
        t0 = None
        if functional_sd is not None:
            t0 = (
                functional_sd * np.sqrt((functional_sd**2 - sem**2) / functional_sd**2)
                if is_ha
                else functional_sd
            )
        if cutoff == "a":
            value = m1 + d * sd_multiplier * t1
        elif cutoff == "b":
            value = functional_mean - d * sd_multiplier * (t0 if b_sd == "functional" else t1)
        else:
            value = (t1 * functional_mean + t0 * m1) / (t1 + t0)
        value = float(value)
    else:
        value = float(cutoff)
    if clinical_if is None:
        if from_instrument and norms.clinical_if is not None:
            clinical_if = norms.clinical_if
        else:
            clinical_if = "<=" if hib else ">="
    if clinical_if not in _CLINICAL_IF:
        raise DefinitionError(f"clinical_if must be one of {_CLINICAL_IF} (got {clinical_if!r})")
    compare = {
        ">=": np.greater_equal,
        ">": np.greater,
        "<=": np.less_equal,
        "<": np.less,
    }[clinical_if]
    with np.errstate(invalid="ignore"):
        clinical_pre = compare(x1, value)
        if is_ha:
            m_post, s_post = info["m_post"], info["sd_post"]
            r_post = (s_post**2 - sem**2) / s_post**2
            if not r_post > 0:
                raise DefinitionError(
                    f"method 'HA': the post SD ({s_post:.3g}) is not larger than the standard "
                    f"error of measurement ({sem:.3g}), so the post reliability is not positive"
                )
            cs_indiv = (m_post + (x2 - m_post) * r_post - value) / (np.sqrt(r_post) * sem)
            functional_post = clinical_pre & (d * cs_indiv > info["critical_value"])
        else:
            functional_post = ~compare(x2, value)
    recovered = (rc_cat == "improved") & clinical_pre & functional_post
    category = np.where(recovered, "recovered", rc_cat)
    categories = CS_CATEGORIES
    if harmed:
        is_harmed = (rc_cat == "deteriorated") & ~clinical_pre & ~functional_post
        category = np.where(is_harmed, "harmed", category)
        categories = (*CS_CATEGORIES, "harmed")
    category = np.where(both, category, None)
    out = out.rename(columns={"category": "reliable_change"})
    out["cutoff"] = value
    out["clinical_pre"] = _nullable_bool(clinical_pre, np.isnan(x1))
    out["functional_post"] = _nullable_bool(functional_post, np.isnan(x2) | (np.isnan(x1) & is_ha))
    if is_ha:
        out["cs_indiv"] = cs_indiv
        change = (x2 - x1)[both]
        z_changed = -float(np.mean(change)) / (
            float(np.std(change, ddof=1)) * np.sqrt(info["r_dd"])
        )
        z_functional = (value - m_post) / (s_post * np.sqrt(r_post))
        changed, functional = stats.norm.cdf(z_changed), stats.norm.cdf(z_functional)
        if hib:
            changed, functional = 1.0 - changed, 1.0 - functional
        out.attrs["group_level"] = {"changed": float(changed), "functional": float(functional)}
    out["category"] = pd.Categorical(category, categories=categories)
    return out
