"""Pseudonymous identifiers and small-cell suppression for reports.

Client and therapist IDs leave the library only as keyed hashes: HMAC-SHA-256 of the raw ID with
the study's salt, so the same client keeps the same pseudonym across waves of one study, and the
pseudonym cannot be reversed without the salt.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd

__all__ = ["pseudonymise", "suppress_small_cells"]


def pseudonymise(ids: pd.Series, *, salt: str, prefix: str = "C", length: int = 8) -> pd.Series:
    """Replace identifiers by stable keyed-hash pseudonyms.

    Parameters
    ----------
    ids : Series
        Raw identifiers (any type; compared as text). Missing values stay missing.
    salt : str
        The study's secret key. The same salt gives the same pseudonyms in every wave.
    prefix : str
        Prefix of the pseudonym, e.g. ``"C"`` for clients and ``"T"`` for therapists.
    length : int
        Hex digits kept (8 digits: collisions are checked and raise).

    Returns
    -------
    Series
        Pseudonyms such as ``"C-3fa94c1e"``, aligned with ``ids``.

    Notes
    -----
    HMAC-SHA-256 (RFC 2104) of the UTF-8 ID keyed by the salt. Only unique IDs are hashed, so the
    cost grows with the number of clients, not rows.

    References
    ----------
    Krawczyk, H., Bellare, M., & Canetti, R. (1997). HMAC: Keyed-hashing for message
    authentication. RFC 2104.

    Examples
    --------
    >>> s = pd.Series(["CL-0001", "CL-0002", "CL-0001"])
    >>> p = pseudonymise(s, salt="k")
    >>> p.iloc[0] == p.iloc[2], p.iloc[0] != p.iloc[1], p.iloc[0][:2]
    (True, True, 'C-')
    """
    values = ids.astype("string")
    uniques = pd.unique(values.dropna())
    key = salt.encode("utf-8")
    mapping = {
        u: f"{prefix}-" + hmac.new(key, str(u).encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        for u in uniques
    }
    if len(set(mapping.values())) != len(mapping):
        raise ValueError("pseudonym collision: increase `length`")
    return values.map(mapping).astype(object).where(values.notna(), None)


def suppress_small_cells(
    table: pd.DataFrame, *, count: str, threshold: int, columns: list[str] | None = None
) -> pd.DataFrame:
    """Blank out rows of a display table whose count is below the small-cell threshold.

    Parameters
    ----------
    table : DataFrame
        One row per group (e.g. per therapist).
    count : str
        Column holding the group's size (e.g. number of clients).
    threshold : int
        Rows with ``count < threshold`` are suppressed.
    columns : list of str, optional
        Columns to blank (default: every column except the count).

    Returns
    -------
    DataFrame
        A copy with the suppressed values set to missing and a boolean ``suppressed`` column.

    Examples
    --------
    >>> t = pd.DataFrame({"therapist": ["T-1", "T-2"], "n_clients": [2, 9], "rate": [0.5, 0.2]})
    >>> suppress_small_cells(t, count="n_clients", threshold=5)["rate"].tolist()
    [nan, 0.2]
    """
    out = table.copy()
    small = out[count].to_numpy() < threshold
    cols = columns if columns is not None else [c for c in out.columns if c != count]
    for col in cols:
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float).where(~small, np.nan)
        else:
            out[col] = out[col].astype(object).where(~small, None)
    out["suppressed"] = small
    return out
