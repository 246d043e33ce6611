"""Qualtrics response exports (CSV) as the canonical long table.

A Qualtrics CSV export has three header rows: the column names (``Q2_3``), the question text and
an ``{"ImportId": ...}`` JSON line. :func:`read_qualtrics` keeps the names, turns the question texts
into a codebook, drops survey previews and tests (and unfinished responses unless asked), keeps the
last finished response of each respondent and session, and says what it dropped and why.

References
----------
Qualtrics Support: "Data export options" (CSV, numeric values vs choice text, the three header
rows), "Response Type" / ``Status`` values (0 IP address, 1 survey preview, 2 survey test,
4 imported, 8 spam, 9 preview spam, 12 imported spam, 16 offline, 17 offline preview) and
"Recode Values" (a deleted and re-added choice gets a new recode value).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DataError
from alliance_lib.io import read_table

__all__ = ["read_qualtrics", "recode_problems"]

#: Status (Response Type) values that are real responses: IP address, imported, offline.
REAL_RESPONSES = {"0", "4", "16", "IP Address", "Imported", "Offline"}
_STATUS_NAMES = {
    "1": "survey preview",
    "2": "survey test",
    "8": "spam",
    "9": "survey preview (spam)",
    "12": "imported spam",
    "17": "offline survey preview",
}


def read_qualtrics(
    path: str | Path,
    *,
    responses: str = "finished",
    client: str | None = None,
    session: str | None = None,
) -> pd.DataFrame:
    """Read a Qualtrics CSV export (numeric values) as the canonical long table.

    Parameters
    ----------
    path : str or Path
        The export ("CSV", "Download all fields", "Use numeric values").
    responses : {"finished", "all"}
        ``finished``: unfinished responses (``Finished`` = 0) are dropped and counted; ``all``
        keeps them (their answered items are scored by the usual proration rules).
    client : str, optional
        The column identifying the respondent (e.g. ``Q1`` where clients type their number, or
        ``ExternalReference``). Default ``ExternalReference`` when it is filled, else none.
    session : str, optional
        The column holding the session (e.g. embedded data ``sess``).

    Returns
    -------
    DataFrame
        Index ``row`` (file row: the first response is row 4). ``client_id`` and ``session``
        (when given) first, then every column of the export. ``attrs``: ``codebook`` (column ->
        question text), ``dropped`` (a list of ``{row, client_id, reason}``, one per response left
        out: previews and tests, unfinished, superseded by a later response of the same client
        and session), ``warnings`` and ``source``.

    Raises
    ------
    DataError
        The file is not a Qualtrics export (no ``{"ImportId"`` header row), was exported with
        choice text instead of numeric values, or `client` / `session` is not a column.

    Notes
    -----
    IDs typed by respondents are kept as typed apart from surrounding blanks (``cl-0101 `` is
    ``cl-0101``); IDs that become equal when case, punctuation and leading zeros are ignored are
    listed in ``attrs["warnings"]``, since they are probably one client.

    Examples
    --------
    >>> from pathlib import Path
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "qualtrics"
    >>> d = read_qualtrics(here / "qualtrics_wai_sr.csv", client="Q1", session="sess")
    >>> len(d), [r["reason"] for r in d.attrs["dropped"]]
    (40, ['survey preview (Status 1)', 'unfinished response (Finished = 0, Progress 42%)'])
    >>> d.attrs["codebook"]["Q2_3"]
    'How do you feel about your therapist? - WAI-SR item 3'
    """
    if responses not in ("finished", "all"):
        raise ValueError(f"responses must be 'finished' or 'all', not {responses!r}")
    path = Path(path)
    file = path.name
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        names = next(reader, [])
        texts = next(reader, [])
        imports = next(reader, [])
    if not imports or not any(c.startswith('{"ImportId"') for c in imports):
        raise DataError(
            f"{file} is not a Qualtrics export with its three header rows (no "
            '{"ImportId": ...} row 3)',
            file=file,
            row=3,
            hint="export from Qualtrics Data & Analysis > Export Data > CSV, with 'Download all "
            "fields' and 'Use numeric values'",
        )
    codebook = dict(zip([n.strip() for n in names], texts, strict=False))
    ids = [c for c in (client, "ExternalReference", "ResponseId") if c]
    df = read_table(path, header=1, id_columns=ids)
    df = df.drop(index=[i for i in (2, 3) if i in df.index])
    for col in (client, session):
        if col is not None and col not in df.columns:
            raise DataError(
                f"{file}: column {col!r} not found; columns: {', '.join(map(str, df.columns))}",
                file=file,
                column=col,
            )
    if client is None and "ExternalReference" in df and df["ExternalReference"].notna().any():
        client = "ExternalReference"
    status = df["Status"].astype("str").str.strip() if "Status" in df else None
    if status is not None and status.isin(["IP Address", "Survey Preview"]).any():
        raise DataError(
            f"{file} was exported with choice text (Status = 'IP Address'): item answers are "
            "labels, not codes; export again with 'Use numeric values'",
            file=file,
            column="Status",
            hint="export again with 'Use numeric values'",
        )
    out = df.copy()
    out.insert(0, "client_id", out[client].astype(object) if client else None)
    if session:
        out.insert(1, "session", pd.to_numeric(out[session], errors="coerce"))
    dropped = []

    def drop(mask, reason):
        nonlocal out
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            sub = out[mask]
            texts = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[mask]
            dropped.append(
                pd.DataFrame(
                    {"row": sub.index, "client_id": sub["client_id"].to_numpy(), "reason": texts}
                )
            )
            out = out[~mask]

    if status is not None:
        st = out["Status"].astype("str").str.strip().str.replace(r"\.0$", "", regex=True)
        fake = ~st.isin(REAL_RESPONSES) & out["Status"].notna()
        drop(fake, st.map(lambda v: f"{_STATUS_NAMES.get(v, 'not a response')} (Status {v})"))
    if responses == "finished" and "Finished" in out:
        fin = out["Finished"].astype("str").str.strip().str.lower()
        unfinished = fin.isin(["0", "false", "0.0"])
        prog = (
            out["Progress"].astype(str).str.replace(r"\.0$", "", regex=True)
            if "Progress" in out
            else pd.Series("?", index=out.index)
        )
        drop(unfinished, "unfinished response (Finished = 0, Progress " + prog + "%)")
    if client and session:
        when_col = next((c for c in ("RecordedDate", "EndDate") if c in out), None)
        order = pd.to_datetime(out[when_col], errors="coerce") if when_col else None
        keys = out[["client_id", "session"]].astype(object)
        frame = keys.assign(_t=order if order is not None else np.arange(len(out)))
        frame["_pos"] = np.arange(len(out))
        fin = out["Finished"].astype("str").str.strip().str.lower() if "Finished" in out else "1"
        frame["_done"] = ~pd.Series(fin, index=out.index).isin(["0", "false", "0.0"])
        last = (  # the last finished response (an unfinished one only when none finished)
            frame.sort_values(["_done", "_t"], kind="stable")
            .groupby(["client_id", "session"])
            .tail(1)
        )
        keep = np.zeros(len(out), dtype=bool)
        keep[last["_pos"].to_numpy()] = True
        keep |= keys.isna().any(axis=1).to_numpy()  # no key: validation reports it
        drop(~keep, "superseded by a later (finished) response of the same client and session")
    warnings = [f"{file}: {len(d)} response(s) left out: {d['reason'].iloc[0]}" for d in dropped]
    near = _near_duplicate_ids(out["client_id"]) if client else []
    warnings += [
        f"{file}: client IDs that are probably one client typed differently: "
        + ", ".join(repr(v) for v in g)
        + " (they are kept apart; correct them in the export if they are one client)"
        for g in near
    ]
    out.attrs = {
        "source": str(path),
        "format": "qualtrics",
        "codebook": codebook,
        "dropped": pd.concat(dropped, ignore_index=True).to_dict("records") if dropped else [],
        "warnings": warnings,
        "near_duplicate_ids": near,
    }
    return out


def _near_duplicate_ids(ids: pd.Series) -> list[list[str]]:
    """Groups of IDs equal once case, punctuation, letters before digits and leading zeros are
    ignored (``CL-0101``, ``cl-0101``, ``101``)."""
    uniq = pd.Series(ids.dropna().astype(str).unique())
    if uniq.empty:
        return []
    key = uniq.str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    key = key.str.replace(r"^[A-Z]+(?=\d)", "", regex=True).str.lstrip("0")
    groups = uniq.groupby(key.to_numpy()).agg(list)
    return [list(g) for g in groups[groups.map(len) > 1]][:20]


def recode_problems(
    data: pd.DataFrame, columns: dict[str, str], low: float, high: float, codebook: dict
) -> pd.Series:
    """Reasons for answers outside ``low..high`` that name the Qualtrics recode value.

    Parameters
    ----------
    data : DataFrame
        Responses with item columns renamed (``wai_sr_3``).
    columns : dict
        Item column -> the Qualtrics column it came from (``Q2_3``).
    low, high : float
        The scale.
    codebook : dict
        Qualtrics column -> question text (``attrs["codebook"]`` of :func:`read_qualtrics`).

    Returns
    -------
    Series
        One reason per row ('' where none), naming the recode value, the Qualtrics column and
        its question text.

    Examples
    --------
    >>> d = pd.DataFrame({"wai_sr_3": [4, 6]})
    >>> recode_problems(d, {"wai_sr_3": "Q2_3"}, 1, 5, {"Q2_3": "WAI-SR item 3"}).iloc[1][:72]
    "wai_sr_3 = 6 is outside 1-5: Qualtrics recode value 6 of Q2_3 ('WAI-SR i"
    """
    out = pd.Series("", index=data.index, dtype=object)
    for col, original in columns.items():
        if col not in data:
            continue
        num = pd.to_numeric(data[col], errors="coerce")
        bad = num.notna() & ((num < low) | (num > high))
        if not bad.any():
            continue
        text = re.sub(r"\s+", " ", codebook.get(original, "")).strip()
        label = f" ({text!r})" if text else ""
        msg = (
            col + " = " + num[bad].map("{:g}".format) + f" is outside {low:g}-{high:g}: Qualtrics "
            "recode value " + num[bad].map("{:g}".format) + f" of {original}{label}; check the "
            "question's Recode Values (a deleted and re-added choice gets a new value)"
        )
        out[bad] = out[bad].where(out[bad].eq(""), out[bad] + "; ") + msg
    return out
