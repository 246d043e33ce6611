"""NHS Talking Therapies (formerly IAPT) outcome definitions on the PHQ-9 and GAD-7.

Every definition is a plain element-wise function of the first and last scores of a course of
treatment, so the service's published rules can be checked by hand and applied to any table;
:func:`talking_therapies_outcomes` applies them to a long session table (first and last scored
session of each client).

Definitions (NHS Digital, NHS Talking Therapies for anxiety and depression: technical output
specification; Gyani et al. 2013):

- **caseness**: PHQ-9 >= 10 or GAD-7 >= 8 (the "anxiety disorder specific measure" used here is
  the GAD-7);
- **reliable improvement**: PHQ-9 falls by >= 6 or GAD-7 by >= 4, and neither shows reliable
  deterioration;
- **reliable deterioration**: PHQ-9 rises by >= 6 or GAD-7 by >= 4, and neither shows reliable
  improvement;
- **recovery** (only for clients at caseness at the start): not at caseness at the end;
- **reliable recovery**: recovery and reliable improvement;
- **finished treatment**: at least two treatment sessions attended.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_lib.errors import DataError

__all__ = [
    "PHQ9_CASENESS",
    "GAD7_CASENESS",
    "PHQ9_RELIABLE",
    "GAD7_RELIABLE",
    "caseness",
    "reliable_improvement",
    "reliable_deterioration",
    "recovery",
    "reliable_recovery",
    "finished_treatment",
    "talking_therapies_outcomes",
]

PHQ9_CASENESS = 10
"""PHQ-9 total at or above which a client is a case (NHS Talking Therapies)."""
GAD7_CASENESS = 8
"""GAD-7 total at or above which a client is a case (NHS Talking Therapies; not Spitzer's 10)."""
PHQ9_RELIABLE = 6
"""Reliable change on the PHQ-9 (points, inclusive)."""
GAD7_RELIABLE = 4
"""Reliable change on the GAD-7 (points, inclusive)."""


def _arr(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(x)), errors="raise"), dtype=float)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{name} must be numeric scores ({exc})", column=name, hint="score the PHQ-9/GAD-7"
        ) from exc
    return a


def _bool(values: np.ndarray, known: np.ndarray, like) -> pd.Series | bool:
    out = pd.array(np.where(known, values, False), dtype="boolean")
    out[~known] = pd.NA
    if np.ndim(like) == 0:
        return out[0]
    index = like.index if isinstance(like, pd.Series) else None
    return pd.Series(out, index=index)


def caseness(phq9, gad7):
    """Caseness: PHQ-9 >= 10 or GAD-7 >= 8.

    Parameters
    ----------
    phq9, gad7 : float or array-like
        PHQ-9 (0-27) and GAD-7 (0-21) totals at one time point.

    Returns
    -------
    bool or Series of nullable booleans
        Missing where either score is missing.

    References
    ----------
    NHS Digital (2023). NHS Talking Therapies for anxiety and depression: technical output
    specification. Gyani, A., Shafran, R., Layard, R., & Clark, D. M. (2013). Enhancing recovery
    rates: lessons from year one of IAPT. *Behaviour Research and Therapy, 51*(9), 597-606.

    Examples
    --------
    >>> caseness([9, 10, 9, 3], [7, 0, 8, None]).tolist()
    [False, True, True, <NA>]
    """
    p, g = _arr(phq9, "phq9"), _arr(gad7, "gad7")
    known = ~(np.isnan(p) | np.isnan(g))
    return _bool((p >= PHQ9_CASENESS) | (g >= GAD7_CASENESS), known, phq9)


def _changes(phq9_pre, phq9_post, gad7_pre, gad7_post):
    p0, p1 = _arr(phq9_pre, "phq9_pre"), _arr(phq9_post, "phq9_post")
    g0, g1 = _arr(gad7_pre, "gad7_pre"), _arr(gad7_post, "gad7_post")
    known = ~(np.isnan(p0) | np.isnan(p1) | np.isnan(g0) | np.isnan(g1))
    dp, dg = p1 - p0, g1 - g0
    better = (dp <= -PHQ9_RELIABLE) | (dg <= -GAD7_RELIABLE)
    worse = (dp >= PHQ9_RELIABLE) | (dg >= GAD7_RELIABLE)
    return better, worse, known, (p0, p1, g0, g1)


def reliable_improvement(phq9_pre, phq9_post, gad7_pre, gad7_post):
    """Reliable improvement: PHQ-9 down >= 6 or GAD-7 down >= 4, no reliable deterioration on either.

    Examples
    --------
    >>> reliable_improvement([15, 15, 15], [9, 10, 5], [6, 6, 6], [6, 6, 10]).tolist()
    [True, False, False]
    """
    better, worse, known, _ = _changes(phq9_pre, phq9_post, gad7_pre, gad7_post)
    return _bool(better & ~worse, known, phq9_pre)


def reliable_deterioration(phq9_pre, phq9_post, gad7_pre, gad7_post):
    """Reliable deterioration: PHQ-9 up >= 6 or GAD-7 up >= 4, no reliable improvement on either.

    Examples
    --------
    >>> reliable_deterioration([5, 5, 5], [11, 10, 11], [6, 6, 10], [6, 9, 6]).tolist()
    [True, False, False]
    """
    better, worse, known, _ = _changes(phq9_pre, phq9_post, gad7_pre, gad7_post)
    return _bool(worse & ~better, known, phq9_pre)


def recovery(phq9_pre, phq9_post, gad7_pre, gad7_post):
    """Recovery: a case at the start and not a case at the end (missing when not a case at start).

    Examples
    --------
    >>> recovery([15, 15, 5], [8, 10, 3], [6, 6, 5], [7, 6, 2]).tolist()
    [True, False, <NA>]
    """
    _, _, known, (p0, p1, g0, g1) = _changes(phq9_pre, phq9_post, gad7_pre, gad7_post)
    case0 = (p0 >= PHQ9_CASENESS) | (g0 >= GAD7_CASENESS)
    case1 = (p1 >= PHQ9_CASENESS) | (g1 >= GAD7_CASENESS)
    return _bool(~case1, known & case0, phq9_pre)


def reliable_recovery(phq9_pre, phq9_post, gad7_pre, gad7_post):
    """Reliable recovery: recovery and reliable improvement (missing when not a case at start).

    Examples
    --------
    >>> reliable_recovery([15, 12], [8, 8], [6, 6], [6, 6]).tolist()
    [True, False]
    """
    better, worse, known, (p0, p1, g0, g1) = _changes(phq9_pre, phq9_post, gad7_pre, gad7_post)
    case0 = (p0 >= PHQ9_CASENESS) | (g0 >= GAD7_CASENESS)
    case1 = (p1 >= PHQ9_CASENESS) | (g1 >= GAD7_CASENESS)
    return _bool(~case1 & better & ~worse, known & case0, phq9_pre)


def finished_treatment(n_sessions):
    """Finished a course of treatment: at least two treatment sessions attended.

    Examples
    --------
    >>> finished_treatment([0, 1, 2, 7]).tolist()
    [False, False, True, True]
    """
    n = _arr(n_sessions, "n_sessions")
    return _bool(n >= 2, ~np.isnan(n), n_sessions)


def talking_therapies_outcomes(
    data: pd.DataFrame,
    *,
    phq9: str = "phq9_total",
    gad7: str = "gad7_total",
    client: str = "client_id",
    session: str = "session",
) -> pd.DataFrame:
    """NHS Talking Therapies outcome classes per client, from first and last paired scores.

    Parameters
    ----------
    data : DataFrame
        Long table, one row per client x session, with PHQ-9 and GAD-7 totals.
    phq9, gad7, client, session : str
        Column names.

    Returns
    -------
    DataFrame
        One row per client (index ``client``): ``first_session``, ``last_session``,
        ``n_sessions`` (sessions with both scores, the first included), the four scores,
        ``case_start``, ``case_end``, ``finished_treatment`` (two or more paired scores after the
        first, i.e. at least two treatment sessions), ``reliable_improvement``,
        ``reliable_deterioration``, ``recovery`` and ``reliable_recovery``.

    Notes
    -----
    Only sessions where both measures were completed count ("paired scores"); the first such
    session is the start and the last the end, as in the service's "last available score"
    convention. The definitions are those of the module docstring.

    References
    ----------
    NHS Digital (2023). NHS Talking Therapies for anxiety and depression: technical output
    specification; Gyani et al. (2013), *Behaviour Research and Therapy, 51*, 597-606.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a", "a", "a", "b", "b"], "session": [0, 1, 2, 0, 3],
    ...                   "phq9_total": [15, 11, 8, 9, 16], "gad7_total": [6, 6, 5, 9, 9]})
    >>> out = talking_therapies_outcomes(d)
    >>> out[["reliable_improvement", "recovery", "reliable_recovery"]].loc["a"].tolist()
    [True, True, True]
    >>> out.loc["b", ["reliable_deterioration", "finished_treatment"]].tolist()
    [True, False]
    """
    for c in (phq9, gad7, client, session):
        if c not in data.columns:
            raise DataError(
                f"column {c!r} is not in the data (columns: {', '.join(map(str, data.columns))})",
                column=c,
                hint="pass the column names of the PHQ-9 and GAD-7 totals",
            )
    d = data[[client, session, phq9, gad7]].copy()
    d[phq9] = _arr(d[phq9].to_numpy(), phq9)
    d[gad7] = _arr(d[gad7].to_numpy(), gad7)
    d = d.dropna(subset=[phq9, gad7]).sort_values([client, session], kind="stable")
    g = d.groupby(client, sort=True)
    first, last = g.first(), g.last()
    out = pd.DataFrame(
        {
            "first_session": first[session],
            "last_session": last[session],
            "n_sessions": g.size(),
            "phq9_start": first[phq9],
            "phq9_end": last[phq9],
            "gad7_start": first[gad7],
            "gad7_end": last[gad7],
        }
    )
    args = (out["phq9_start"], out["phq9_end"], out["gad7_start"], out["gad7_end"])
    out["case_start"] = caseness(out["phq9_start"], out["gad7_start"])
    out["case_end"] = caseness(out["phq9_end"], out["gad7_end"])
    out["finished_treatment"] = finished_treatment(out["n_sessions"] - 1)
    out["reliable_improvement"] = reliable_improvement(*args)
    out["reliable_deterioration"] = reliable_deterioration(*args)
    out["recovery"] = recovery(*args)
    out["reliable_recovery"] = reliable_recovery(*args)
    out.index.name = client
    return out
