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
from alliance_lib.frame import model_frame

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
    """Scores laid out as a client x session matrix (missing = NaN)."""

    clients: pd.Index
    sessions: np.ndarray
    values: np.ndarray  # shape (n_clients, n_sessions), float


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


# ---------------------------------------------------------------------------------------------
# Sudden gains and losses
# ---------------------------------------------------------------------------------------------


def _nullable_bool(values: np.ndarray, missing: np.ndarray) -> pd.arrays.BooleanArray:
    """A pandas nullable boolean array: ``values`` where ``missing`` is False, else NA."""
    return pd.arrays.BooleanArray(np.asarray(values, dtype=bool), np.asarray(missing, dtype=bool))


def _window_stats(padded: np.ndarray, start: np.ndarray, width: int = 3):
    """n, mean and sum of squared deviations of width-3 windows starting at padded columns."""
    win = sliding_window_view(padded, width, axis=1)[:, start, :]  # (C, I, 3)
    ok = ~np.isnan(win)
    n = ok.sum(axis=2)
    total = np.where(ok, win, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        ss = np.where(ok, (win - mean[..., None]) ** 2, 0.0).sum(axis=2)
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
) -> tuple[pd.DataFrame, np.ndarray, bool, _Norms | None]:
    pp = model_frame(data, {"pre": pre, "post": post}, numeric=["pre", "post"], what="change")
    x1, x2 = pp.values("pre"), pp.values("post")
    norms = _instrument_norms(instrument) if instrument is not None else None
    if higher_is_better is None:
        if norms is None or norms.higher_is_better is None:
            raise DefinitionError(
                "say which direction is better: pass higher_is_better=True/False or an instrument"
            )
        higher_is_better = norms.higher_is_better
    d = 1.0 if higher_is_better else -1.0
    change = x2 - x1
    use_points = sd is None and reliability is None and norms is not None
    if use_points:
        if norms.rc_points is None:
            raise DefinitionError(
                f"instrument {instrument!r} has no reliable-change norm; pass sd and reliability"
            )
        conf = confidence if confidence is not None else (norms.rc_confidence or 0.95)
        z = _z(conf)
        threshold = norms.rc_points
        s_diff = threshold / z
        if inclusive is None:
            inclusive = True  # manuals say "changes by 14 points or more"
    else:
        if reliability is None:
            raise DefinitionError("pass reliability (and sd), or an instrument with norms")
        if not 0 <= reliability < 1:
            raise DefinitionError(f"reliability must lie in [0, 1) (got {reliability!r})")
        if sd is None:
            both = ~np.isnan(x1) & ~np.isnan(x2)
            if both.sum() < 2:
                raise DataError("need sd, or at least 2 complete pre/post pairs to estimate it")
            sd = float(np.std(x1[both], ddof=1))
        if not sd > 0:
            raise DefinitionError(f"sd must be positive (got {sd!r})")
        z = _z(confidence if confidence is not None else 0.95)
        s_diff = sd * np.sqrt(2.0) * np.sqrt(1.0 - reliability)
        threshold = z * s_diff
        if inclusive is None:
            inclusive = False
    rci = change / s_diff
    with np.errstate(invalid="ignore"):
        if inclusive:
            improved, worse = d * change >= threshold, d * change <= -threshold
        else:
            improved, worse = d * change > threshold, d * change < -threshold
    category = np.where(improved, "improved", np.where(worse, "deteriorated", "unchanged"))
    category = np.where(np.isnan(change), None, category)
    out = data.copy()
    out["change"] = change
    out["rci"] = rci
    out["rc_threshold"] = threshold
    out["category"] = pd.Categorical(category, categories=RCI_CATEGORIES)
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
) -> pd.DataFrame:
    """Jacobson-Truax reliable change index for pre/post scores in wide layout.

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

    Returns
    -------
    DataFrame
        A copy of ``data`` with ``change`` (post - pre), ``rci``, ``rc_threshold`` (points) and
        ``category`` (categorical: improved / unchanged / deteriorated; missing when pre or post
        is missing).

    Notes
    -----
    .. math:: SE = s_1\\sqrt{1 - r_{xx}}, \\quad S_{diff} = \\sqrt{2 SE^2}, \\quad
              RCI = (x_2 - x_1) / S_{diff}

    Change is reliable when :math:`|RCI| > z_{1-\\alpha/2}`, i.e. when the change exceeds
    :math:`z \\cdot S_{diff}` points, in the improving or worsening direction. With published
    points, :math:`S_{diff}` = points / z. Published points apply to the instrument's total score
    in its default metric (``registry.get_instrument(id).metric``).

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to
    defining meaningful change in psychotherapy research. JCCP, 59(1), 12-19.

    Examples
    --------
    >>> df = pd.DataFrame({"pre": [30.0, 30.0, 30.0], "post": [20.0, 25.0, 40.0]})
    >>> out = reliable_change(df, pre="pre", post="post", sd=7.5, reliability=0.8,
    ...                       higher_is_better=False)
    >>> print(round(out["rc_threshold"].iloc[0], 2))
    9.3
    >>> out["category"].tolist()
    ['improved', 'unchanged', 'deteriorated']
    """
    out, _, _, _ = _rc_core(
        data, pre, post, sd, reliability, instrument, higher_is_better, confidence, inclusive
    )
    return out


def reliable_change_from_long(
    data: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    first: Any = None,
    last: Any = None,
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
) -> pd.DataFrame:
    """Jacobson-Truax clinically significant change: recovered, improved, unchanged, deteriorated.

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

    Returns
    -------
    DataFrame
        The output of :func:`reliable_change`, its ``category`` renamed ``reliable_change``,
        plus ``cutoff`` (points), ``clinical_pre`` and ``functional_post`` (nullable booleans)
        and ``category`` (categorical: recovered / improved / unchanged / deteriorated; missing
        when pre or post is missing).

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
    and reliably worse); here such clients are "deteriorated", as in Jacobson & Truax (1991).

    References
    ----------
    Jacobson, N. S., & Truax, P. (1991). JCCP, 59(1), 12-19.
    Claus, B. B., et al. clinicalsignificance: Clinical significance analyses of intervention
    studies in R. Journal of Statistical Software, 111(1). doi:10.18637/jss.v111.i01

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
        data, pre, post, sd, reliability, instrument, higher_is_better, confidence, inclusive
    )
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
    if isinstance(cutoff, str):
        if cutoff not in ("a", "b", "c"):
            raise DefinitionError(f"cutoff must be 'a', 'b', 'c' or a number (got {cutoff!r})")
        if b_sd not in ("functional", "clinical"):
            raise DefinitionError(f"b_sd must be 'functional' or 'clinical' (got {b_sd!r})")
        m1 = clinical_mean if clinical_mean is not None else float(np.mean(x1[both]))
        s1 = clinical_sd if clinical_sd is not None else float(np.std(x1[both], ddof=1))
        if cutoff in ("b", "c") and (functional_mean is None or functional_sd is None):
            raise DefinitionError(f"cutoff {cutoff!r} needs functional_mean and functional_sd")
        if cutoff == "a":
            value = m1 + d * sd_multiplier * s1
        elif cutoff == "b":
            value = functional_mean - d * sd_multiplier * (
                functional_sd if b_sd == "functional" else s1
            )
        else:
            value = (s1 * functional_mean + functional_sd * m1) / (s1 + functional_sd)
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
        functional_pre = ~compare(x1, value)
        functional_post = ~compare(x2, value)
    recovered = (rc_cat == "improved") & ~functional_pre & functional_post
    category = np.where(recovered, "recovered", rc_cat)
    category = np.where(both, category, None)
    out = out.rename(columns={"category": "reliable_change"})
    out["cutoff"] = value
    out["clinical_pre"] = _nullable_bool(~functional_pre, np.isnan(x1))
    out["functional_post"] = _nullable_bool(functional_post, np.isnan(x2))
    out["category"] = pd.Categorical(category, categories=CS_CATEGORIES)
    return out
