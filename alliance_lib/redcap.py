"""REDCap exports ("CSV (raw data)") as the canonical long table.

:func:`read_redcap` reads a REDCap record export (longitudinal events, repeating instruments or a
classic project) with its optional data dictionary and returns one row per record x session:
``client_id`` (the record id, as text), ``session``, the fields of the export, and the fields of the
record's base row (demographics) carried to every row.

References
----------
REDCap data export formats ("CSV / Microsoft Excel (raw data)" vs "(labels)"), the data dictionary
columns, repeating instruments and events (``redcap_repeat_instrument``,
``redcap_repeat_instance``), and missing data codes: REDCap Help & FAQ, Vanderbilt University.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DataError
from alliance_lib.io import read_table

__all__ = ["REDCAP_MISSING_CODES", "read_redcap", "read_redcap_dictionary"]

#: REDCap's standard missing data codes (Project Setup > Additional customizations).
REDCAP_MISSING_CODES = (
    "NI", "INV", "UNK", "NASK", "ASKU", "NAV", "MSK", "NA", "NAVU", "NP", "QS", "QI", "TRC",
    "UNC", "DER", "PINF", "NINF", "OTH",
)  # fmt: skip
_SPECIAL = {
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
    "redcap_arm",
}
_VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")
_DICT_COLUMNS = {
    "Variable / Field Name": "field",
    "Form Name": "form",
    "Field Type": "type",
    "Choices, Calculations, OR Slider Labels": "choices",
    "Text Validation Type OR Show Slider Number": "validation",
}


def read_redcap_dictionary(path: str | Path) -> pd.DataFrame:
    """A REDCap data dictionary as a table: ``field``, ``form``, ``type``, ``choices`` (a dict
    code -> label for radio, dropdown, checkbox, yesno and truefalse fields), ``validation``.

    Examples
    --------
    >>> from pathlib import Path
    >>> d = read_redcap_dictionary(Path(__file__).parents[1] / "tests" / "data" / "intake"
    ...                            / "redcap" / "redcap_data_dictionary.csv")
    >>> d.set_index("field").loc["gender", "choices"]
    {'1': 'Female', '2': 'Male', '3': 'Non-binary'}
    """
    raw = read_table(path, id_columns=list(_DICT_COLUMNS))
    absent = [c for c in ("Variable / Field Name", "Field Type") if c not in raw.columns]
    if absent:
        raise DataError(
            f"{Path(path).name}: not a REDCap data dictionary (no column {absent[0]!r})",
            file=Path(path).name,
            column=absent[0],
            hint="download it from Project Setup > Data Dictionary > Download the current "
            "Data Dictionary",
        )
    d = raw.rename(columns=_DICT_COLUMNS).reindex(columns=list(_DICT_COLUMNS.values()))
    d = d.astype(object).where(d.notna(), "")
    d["type"] = d["type"].astype(str).str.strip()

    def parse(text: str, kind: str) -> dict | None:
        if kind == "yesno":
            return {"1": "Yes", "0": "No"}
        if kind == "truefalse":
            return {"1": "True", "0": "False"}
        if kind not in ("radio", "dropdown", "checkbox") or not str(text).strip():
            return None
        out = {}
        for part in str(text).split("|"):
            code, _, label = part.partition(",")
            out[code.strip()] = label.strip()
        return out

    d["choices"] = [parse(t, k) for t, k in zip(d["choices"], d["type"], strict=True)]
    return d.reset_index(drop=True)


def _refuse_labels(df: pd.DataFrame, file: str) -> None:
    """A "CSV (labels)" export has label headers ("Record ID", "Event Name", "Complete?")."""
    names = [str(c) for c in df.columns]
    labelled = [c for c in names if not _VARIABLE.match(c)]
    if labelled:
        raise DataError(
            f"{file} looks like a REDCap 'CSV (labels)' export (headers such as "
            f"{labelled[0]!r} are labels, not variable names): its values are labels too; "
            "re-export as CSV (raw data)",
            file=file,
            column=labelled[0],
            hint="re-export as CSV (raw data) (Data Exports > Export Data > "
            "'CSV / Microsoft Excel (raw data)')",
        )


def read_redcap(
    export: str | Path,
    dictionary: str | Path | None = None,
    *,
    session: str | dict = "event",
    event_session: str = r"session_(\d+)",
    intake_events: tuple[str, ...] | list[str] = ("intake",),
    missing_codes=REDCAP_MISSING_CODES,
) -> pd.DataFrame:
    """Read a REDCap "CSV (raw data)" export as the canonical long table.

    Parameters
    ----------
    export : str or Path
        The record export (raw data; a labels export is refused with what to do).
    dictionary : str or Path, optional
        The project's data dictionary. With it, calculated fields are kept as
        ``{field}_redcap`` (so that our own scores never overwrite them silently and both can be
        compared) and coded values are checked against the field's choices.
    session : {"event", "instance"} or {"date": FIELD}
        How a row's session is found. ``"event"``: from the event name (``session_3_arm_1`` ->
        3 by `event_session`; `intake_events` -> 0). ``{"date": FIELD}``: the rows of each record
        in the order of that date field (1, 2, ...), for repeating instruments. ``"instance"``
        is refused: repeat instances are numbered in the order they were entered, not in
        session order.
    event_session : str
        Regular expression whose first group is the session number in an event name.
    intake_events : sequence of str
        Event names (without the ``_arm_N`` suffix) that are session 0.
    missing_codes : sequence of str
        REDCap missing data codes: cells holding one become missing and are counted in
        ``attrs["missing_cells"]``. Default REDCap's standard codes (``NASK``, ``UNK`` ...).

    Returns
    -------
    DataFrame
        Index ``row`` (the export's file row). ``client_id`` (text), ``session`` (float; NaN
        where an event is not a session), ``arm`` (text, longitudinal projects) and every field;
        the record's base-row fields (those never filled on a session row: demographics) on every
        row. ``{form}_complete`` is kept. ``attrs``: ``source``, ``warnings`` (decisions and code
        problems), ``missing_cells`` (list of ``{column, code, n}``), ``base_rows`` (list of
        ``{row, client_id}``: base rows folded into the others), ``dropped`` (list of ``{row,
        client_id, reason}``: rows whose session cannot be found) and ``calculated`` (the renamed
        calc fields). Tables in ``attrs`` are plain lists so that pandas operations that compare
        ``attrs`` (merges) keep working.

    Raises
    ------
    DataError
        A labels export; ``session="instance"``; an event/date field that is not in the export.

    Notes
    -----
    In a longitudinal export each row is a record x event; demographics fields are filled on the
    intake event only and are carried to the record's other rows. In a classic project with a
    repeating instrument, the base row (blank ``redcap_repeat_instrument``) holds the
    non-repeating forms; its fields are carried to the record's instance rows and the base row
    itself is folded in (listed in ``attrs["base_rows"]``). An instance row with no data is left
    out with its reason in ``attrs["dropped"]``.

    Examples
    --------
    >>> from pathlib import Path
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "redcap"
    >>> d = read_redcap(here / "redcap_longitudinal_raw.csv", here / "redcap_data_dictionary.csv")
    >>> d[["client_id", "redcap_event_name", "session", "age"]].head(3)  # doctest: +NORMALIZE_WHITESPACE
        client_id redcap_event_name  session   age
    row
    2           1      intake_arm_1      0.0  58.0
    3           1   session_1_arm_1      1.0  58.0
    4           1   session_2_arm_1      2.0  58.0
    >>> "phq9_total_redcap" in d, sorted({c["code"] for c in d.attrs["missing_cells"]})
    (True, ['NASK', 'UNK'])
    """
    file = Path(export).name
    with open(export, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [])
    _refuse_labels(pd.DataFrame(columns=[h.strip() for h in header]), file)
    id_field = header[0].strip()
    df = read_table(export, id_columns=[id_field, "redcap_data_access_group"])
    notes: list[str] = []
    calculated: list[str] = []
    if dictionary is not None:
        dd = read_redcap_dictionary(dictionary)
        calc = [f for f in dd.loc[dd["type"] == "calc", "field"] if f in df.columns]
        df = df.rename(columns={f: f"{f}_redcap" for f in calc})
        calculated = [f"{f}_redcap" for f in calc]
        if calc:
            notes.append(
                f"{file}: calculated field(s) {calc} kept as {calculated} (REDCap's values, "
                "for comparison with the scores computed here)"
            )
    else:
        dd = None

    # missing data codes -> missing, counted
    codes = [str(c) for c in (missing_codes or ())]
    lines = []
    fields = [c for c in df.columns if c != id_field and c not in _SPECIAL]
    for col in fields:
        s = df[col]
        if s.dtype != object and not pd.api.types.is_string_dtype(s):
            continue
        text = s.astype("str").str.strip()
        hit = text.isin(codes) & s.notna()
        if hit.any():
            for code, n in text[hit].value_counts().sort_index().items():
                lines.append({"column": col, "code": code, "n": int(n)})
            num = pd.to_numeric(s.where(~hit), errors="coerce")
            df[col] = num if num.notna().sum() == s.where(~hit).notna().sum() else s.where(~hit)
    missing_cells = pd.DataFrame(lines, columns=["column", "code", "n"])

    if dd is not None:
        notes += _check_choices(df, dd, file)

    out = df.rename(columns={id_field: "client_id"})
    out["client_id"] = out["client_id"].astype(object)
    not_sessions: dict[int, str] = {}
    base_rows = pd.Series(dtype=object)
    # a classic project's base row (blank repeat instrument) holds the non-repeating forms; in a
    # longitudinal project such rows are the events themselves and stay
    repeating = "redcap_repeat_instrument" in out.columns and "redcap_event_name" not in out.columns
    if repeating:
        base = out["redcap_repeat_instrument"].isna()
        carried = [
            c
            for c in fields
            if c in out.columns
            and out.loc[base, c].notna().any()
            and not out.loc[~base, c].notna().any()
        ]
        if carried:
            per = out.loc[base].groupby("client_id")[carried].first()
            for c in carried:
                out[c] = out["client_id"].map(per[c])
        base_rows = out.loc[base, "client_id"]
        out = out[~base]
        data_cols = [c for c in fields if c in out.columns and c not in carried]
        data_cols = [c for c in data_cols if not c.endswith("_complete")]
        empty = (
            out[data_cols].isna().all(axis=1) if data_cols else pd.Series(False, index=out.index)
        )
        for r in out.index[empty]:
            not_sessions[int(r)] = "empty repeat instance (no data entered)"
        out = out[~empty]
    if session == "instance":
        raise DataError(
            f"{file}: redcap_repeat_instance is the order in which instances were entered, not "
            "the session order (an instance entered late gets the next number)",
            file=file,
            column="redcap_repeat_instance",
            hint="give the session by a date field instead: session_from: {date: <date field>} "
            + _date_fields_hint(out, dd),
        )
    if isinstance(session, dict):
        field = session.get("date")
        if field not in out.columns:
            raise DataError(
                f"{file}: the date field {field!r} is not in the export",
                file=file,
                column=field,
                hint=_date_fields_hint(out, dd),
            )
        when = pd.to_datetime(out[field], format="ISO8601", errors="coerce")
        for r in out.index[when.isna()]:
            not_sessions[int(r)] = (
                f"{field} is blank or not a date: the instance has no place in session order"
            )
        ok = when.notna()
        order = pd.DataFrame({"c": out["client_id"], "d": when})[ok]
        out["session"] = np.nan
        out.loc[ok, "session"] = order.groupby("c")["d"].rank(method="dense").to_numpy()
        out["date"] = when.dt.normalize()
        if repeating:
            moved = int(
                (
                    pd.to_numeric(out["redcap_repeat_instance"], errors="coerce") != out["session"]
                ).sum()
            )
            if moved:
                notes.append(
                    f"{file}: {moved} repeat instance(s) whose instance number is not their place "
                    f"in {field} order (entered out of order); sessions follow {field}"
                )
    elif session == "event":
        if "redcap_event_name" not in out.columns:
            raise DataError(
                f"{file}: no redcap_event_name column: not a longitudinal export",
                file=file,
                column="redcap_event_name",
                hint="for a repeating instrument give session_from: {date: <date field>}",
            )
        event = out["redcap_event_name"].astype(str).str.strip()
        arm = event.str.extract(r"_arm_(\d+)$")[0]
        name = event.str.replace(r"_arm_\d+$", "", regex=True)
        number = pd.to_numeric(name.str.extract(event_session)[0], errors="coerce")
        number = number.where(~name.isin(list(intake_events)), 0.0)
        out["session"] = number.astype(float)
        if arm.notna().any():
            out["arm"] = arm.astype(object)
        for r, e in zip(out.index[number.isna()], event[number.isna()], strict=True):
            not_sessions[int(r)] = (
                f"event {e!r} is not a session (event_session {event_session!r}; intake events "
                f"{list(intake_events)})"
            )
        base_like = [c for c in fields if c in out.columns and not c.endswith("_complete")]
        intake = out["session"].eq(0)
        carried = [
            c
            for c in base_like
            if out.loc[intake, c].notna().any() and not out.loc[~intake, c].notna().any()
        ]
        if carried:
            per = out.loc[intake].groupby("client_id")[carried].first()
            for c in carried:
                out[c] = out["client_id"].map(per[c])
            notes.append(f"{file}: intake-only fields carried to every session row: {carried}")
    else:
        raise ValueError(
            f"session must be 'event', 'instance' or {{'date': FIELD}}, not {session!r}"
        )
    gone = pd.DataFrame(
        {
            "row": list(not_sessions),
            "client_id": df[id_field].reindex(list(not_sessions)).to_numpy(dtype=object),
            "reason": list(not_sessions.values()),
        }
    )
    out = out.drop(index=[r for r in not_sessions if r in out.index])
    first = ["client_id", "session"] + [c for c in ("arm", "date") if c in out.columns]
    out = out[first + [c for c in out.columns if c not in first]]
    out.attrs = {
        "source": str(export),
        "format": "redcap",
        "warnings": notes,
        "missing_cells": missing_cells.to_dict("records"),
        "base_rows": [{"row": int(r), "client_id": c} for r, c in base_rows.items()],
        "dropped": gone.to_dict("records"),
        "calculated": calculated,
    }
    return out


def _date_fields_hint(df: pd.DataFrame, dd: pd.DataFrame | None) -> str:
    if dd is not None:
        dates = list(dd.loc[dd["validation"].astype(str).str.startswith("date"), "field"])
    else:
        dates = [c for c in df.columns if "date" in str(c).lower()]
    return f"(date fields: {', '.join(dates)})" if dates else "(the export has no date field)"


def _check_choices(df: pd.DataFrame, dd: pd.DataFrame, file: str) -> list[str]:
    """Coded values that are not among the field's choices (checkbox columns: 0/1)."""
    notes = []
    for fld, kind, choices in dd[["field", "type", "choices"]].itertuples(index=False):
        if not choices:
            continue
        cols = (
            [c for c in df.columns if str(c).startswith(f"{fld}___")]
            if kind == "checkbox"
            else [fld]
        )
        allowed = {"0", "1"} if kind == "checkbox" else set(choices)
        for col in cols:
            if col not in df.columns:
                continue
            s = df[col].dropna()
            text = pd.Series(
                np.where(
                    pd.to_numeric(s, errors="coerce") % 1 == 0,
                    pd.to_numeric(s, errors="coerce").astype("Int64").astype(str),
                    s.astype(str),
                ),
                index=s.index,
            )
            bad = text[~text.isin(allowed)]
            if len(bad):
                notes.append(
                    f"{file}: {col} = {bad.iloc[0]!r} (row {bad.index[0]}) is not one of its "
                    f"choices {sorted(allowed)} ({len(bad)} cell(s))"
                )
    return notes
