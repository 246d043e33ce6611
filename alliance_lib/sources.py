"""The intake of a wave given as sources: read each file, map it, merge them, check the merge.

A study YAML may give a wave as a list of **sources** (DESIGN.md, "Study YAML: sources") instead of
one long file. :func:`read_source` turns one source into rows of the canonical long table (one
row per client x session x rater: ``client_id``, ``session``, ``rater``, optional
``therapist_id``, ``rater_id``, ``date``, item columns ``{prefix}_{n}``, other columns as they
are); :func:`merge_sources` joins the sources and checks the join. Every decision is data:

* IDs are text in every source (``000001`` stays ``000001``; a typed ``101`` is ``"101"``).
* A session number comes from a column, a date order, or a date matched to another source
  within N days; ``session_offset`` shifts it (appointment 1 = assessment = session 0).
* One date per client x session across sources: a session happens on one day whoever rates it.
  Rows that disagree are quarantined with both dates, and when the disagreement disappears with
  the sessions of one source shifted by one, the reason says so (the outcome file numbered by
  appointment, silent result 2 of issue 11).
* Values of the same client x session x rater given by two sources must agree; client-level
  values are constant per client.
* Every source row is accounted for: it ends in a canonical row or in ``rejected`` with its reason.

:func:`pivot_coded_scores` turns coded scored assessments (NHS Talking Therapies style, one row per
measure with a SNOMED CT code) into one row per contact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance_lib.errors import DataError
from alliance_lib.io import apply_user_missing, parquet_columns, read_table, to_long
from alliance_lib.privacy import pseudonymise
from alliance_lib.study import RATER_ROLES, Source, Study, StudyError

__all__ = [
    "SNOMED_SCORES",
    "SourceRows",
    "WaveIntake",
    "merge_sources",
    "pivot_coded_scores",
    "read_source",
    "read_wave_sources",
]

#: SNOMED CT concept ids of scored assessments used in NHS Talking Therapies data -> total column.
SNOMED_SCORES = {"720433000": "phq9_total", "445455005": "gad7_total"}
KEYS = ["client_id", "session", "rater", "rater_id"]
_CANONICAL = {
    "client": "client_id",
    "therapist": "therapist_id",
    "session": "session",
    "rater": "rater",
    "date": "date",
}


@dataclass
class SourceRows:
    """One source read and mapped (internal hand-over from :func:`read_source` to the merge).

    Attributes
    ----------
    source : Source
        The definition.
    rows : DataFrame
        Canonical rows; ``_row`` holds the row of the file each came from.
    rejected : DataFrame
        Rows that cannot enter the canonical table: ``_row``, ``client_id``, ``session``,
        ``rater``, ``reason``.
    rows_in : int
        Rows this source contributes (file rows; for a wide file client x session rows, for a
        coded file one row per contact).
    missing : DataFrame
        SPSS user-missing cells set to missing: ``column``, ``code``, ``n``, ``declared``.
    notes : list of str
        Decisions taken (e.g. responses dropped by a reader), for the data-quality section.
    client_rows : DataFrame
        Rows folded into the others (a REDCap base row): ``client_id``, ``_row``; analysed when
        their client has an analysed row.
    """

    source: Source
    rows: pd.DataFrame
    rejected: pd.DataFrame
    rows_in: int
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    client_rows: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["client_id", "_row"])
    )


@dataclass
class WaveIntake:
    """The canonical rows of a wave and where each came from (see :func:`merge_sources`).

    Attributes
    ----------
    table : DataFrame
        Canonical rows, index ``key`` (0..n-1).
    origins : DataFrame
        One row per source row in `table`: ``source`` (name), ``row`` (file row), ``key``.
        Client-level rows have ``key`` -1 and ``client_id`` set.
    rejected : DataFrame
        Source rows not in `table`: ``source``, ``row``, ``client_id``, ``session``, ``rater``,
        ``reason``.
    flagged : Series
        Canonical rows quarantined by the merge checks (key -> reason).
    rows_in : dict
        Source name -> rows contributed.
    missing : DataFrame
        SPSS user-missing cells set to missing, per source and column.
    combine : dict
        Rater role -> ``mean`` or ``keep`` for roles with several raters (``rater_id``).
    notes : list of str
    """

    table: pd.DataFrame
    origins: pd.DataFrame
    rejected: pd.DataFrame
    flagged: pd.Series
    rows_in: dict
    missing: pd.DataFrame
    combine: dict
    notes: list


def _reject(rows: pd.DataFrame, mask, reason) -> pd.DataFrame:
    """The rejected-rows frame for `rows[mask]` with `reason` (text, or one text per row)."""
    mask = np.asarray(mask, dtype=bool)
    sub = rows[mask]
    return pd.DataFrame(
        {
            "_row": sub["_row"].to_numpy(),
            "client_id": sub["client_id"].to_numpy() if "client_id" in sub else None,
            "session": sub["session"].astype(object).to_numpy() if "session" in sub else None,
            "rater": sub["rater"].to_numpy() if "rater" in sub else None,
            "reason": reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[mask],
        }
    )


def _no_rejects() -> pd.DataFrame:
    return pd.DataFrame(columns=["_row", "client_id", "session", "rater", "reason"])


def _pattern_regex(pattern: str) -> str:
    """``"Q2_{n}"`` -> ``^Q2_(\\d+)$`` (item number in group 1)."""
    parts = re.split(r"(\{n\})", pattern)
    body = "".join(r"(\d+)" if p == "{n}" else re.escape(p) for p in parts)
    return f"^{body}$"


def _wide_regex(pattern: str) -> str:
    """``"wai{n}_s{session}"`` -> a regex with groups ``stub`` (``wai3``) and ``session``."""
    before, after = pattern.split("{session}")
    ends = [m.end() for m in re.finditer(r"\{(n|column)\}", before)]
    stub, sep = before[: ends[-1]], before[ends[-1] :]
    pieces = re.split(r"(\{n\}|\{column\})", stub)
    stub_re = "".join(
        r"\d+" if p == "{n}" else ".+?" if p == "{column}" else re.escape(p) for p in pieces
    )
    return f"^(?P<stub>{stub_re}){re.escape(sep)}(?P<session>\\d+){re.escape(after)}$"


def _columns_error(study: Study, src: Source, key: str, missing: list[str], have) -> StudyError:
    import difflib

    have = [str(c) for c in have]
    near = {m: difflib.get_close_matches(m, have, n=1, cutoff=0.6) for m in missing}
    hint = "; ".join(f"did you mean {v[0]!r} for {k!r}?" for k, v in near.items() if v)
    return StudyError(
        study.path,
        key,
        f"column(s) {', '.join(map(repr, missing))} not found in {src.name}"
        + (f" ({hint})" if hint else "")
        + f"; columns there: {', '.join(have[:25])}"
        + (" ..." if len(have) > 25 else ""),
    )


def _needed_columns(src: Source, study: Study, have: list[str]) -> list[str]:
    """Columns of `have` a source needs (for Parquet: only these are read from disk)."""
    from alliance_lib.registry import get_instrument

    want = set(src.columns.values()) | set(study.totals.values()) | set(study.covariates)
    want |= set(src.codes.values()) | set(_CANONICAL.values()) | {"rater_id"}
    for ident in study.instruments.values():  # item columns already named the canonical way
        want |= set(get_instrument(ident, folder=study.instrument_folder).columns)
    if src.rater_id:
        want.add(src.rater_id)
    sf = src.session_from
    if isinstance(sf, str):
        want.add(sf)
    elif isinstance(sf, dict):
        want.add(sf["date"])
    regexes = [_pattern_regex(p) for p in src.items.values()]
    regexes += [_wide_regex(p) for p in src.pattern]
    for col in have:
        if col in want or any(re.match(r, col) for r in regexes):
            want.add(col)
    return [c for c in have if c in want]


def _read_file(src: Source, study: Study) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Read a ``file:`` source with its ID columns as text; SPSS user-missing cells -> missing."""
    ids = [src.columns.get("client"), src.columns.get("therapist"), src.rater_id]
    ids = [c for c in ids if c] + ["client_id", "therapist_id"]
    path = src.path
    columns = None
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        have = parquet_columns(path)
        columns = _needed_columns(src, study, have)
        _check_mapped(src, study, have)
    df = read_table(path, id_columns=ids, columns=columns)
    df, used = apply_user_missing(df)
    used["declared"] = "SPSS user-missing " + used["declared"].astype(str)
    notes = list(df.attrs.get("warnings", []))
    if columns is not None:
        notes.append(f"{src.name}: read {len(columns)} of {len(have)} columns (Parquet)")
    return df, used, notes


def _check_mapped(src: Source, study: Study, have, *, roles=None) -> None:
    """Every column the source names must be in the file (a did-you-mean and the columns there)."""
    have = list(map(str, have))
    columns = src.columns if roles is None else {k: v for k, v in src.columns.items() if k in roles}
    named = {f"columns.{role}": col for role, col in columns.items()}
    if src.rater_id:
        named["rater_id"] = src.rater_id
    sf = src.session_from
    if isinstance(sf, str) and src.kind == "file":
        named["session_from"] = sf
    elif isinstance(sf, dict) and src.kind != "redcap":
        named["session_from.date"] = sf["date"]
    for key, col in named.items():
        if col not in have:
            raise _columns_error(study, src, f"{src.name}: {key}", [col], have)


def _rename_items(df: pd.DataFrame, src: Source, study: Study) -> pd.DataFrame:
    """``items: {wai-sr: "Q2_{n}"}`` -> ``wai_sr_1 ...``; every item column must exist."""
    from alliance_lib.registry import get_instrument

    mapping = {}
    for ident, pattern in src.items.items():
        try:
            inst = get_instrument(ident, folder=study.instrument_folder)
        except (LookupError, ValueError) as exc:
            raise StudyError(
                study.path, f"{src.name}: items", f"unknown instrument {ident!r}"
            ) from exc
        cols = {
            pattern.replace("{n}", str(i)): c for i, c in zip(inst.items, inst.columns, strict=True)
        }
        absent = [c for c in cols if c not in df.columns]
        if absent:
            raise _columns_error(study, src, f"{src.name}: items.{ident}", absent, df.columns)
        mapping.update({k: v for k, v in cols.items() if k != v})
    clash = [v for k, v in mapping.items() if v in df.columns and v not in mapping]
    if clash:
        raise StudyError(
            study.path,
            f"{src.name}: items",
            f"the file already has column(s) {clash[:5]}, which the item mapping would create",
        )
    return df.rename(columns=mapping)


def _parse_dates(raw: pd.Series, fmt: str | None) -> tuple[pd.Series, np.ndarray]:
    """Dates (day precision) and a mask of cells that are given but are not dates in `fmt`."""
    given = raw.notna() & raw.astype(str).str.strip().ne("")
    if pd.api.types.is_datetime64_any_dtype(raw):
        out = raw
    elif fmt:
        out = pd.to_datetime(raw.where(given), format=fmt, errors="coerce")
    else:
        out = pd.to_datetime(raw.where(given), format="ISO8601", errors="coerce")
    out = out.dt.normalize() if hasattr(out, "dt") else out
    return out, (given & out.isna()).to_numpy(dtype=bool)


def read_source(
    src: Source, study: Study, *, matched: dict[str, pd.DataFrame] | None = None
) -> SourceRows:
    """Read one source and map it to canonical rows.

    Parameters
    ----------
    src : Source
        A source of ``study`` (``study.sources[wave][i]``).
    study : Study
        The study (instruments, totals and covariates say which columns matter).
    matched : dict, optional
        Source name -> its canonical rows, for ``session_from: {match: ...}``.

    Returns
    -------
    SourceRows

    Raises
    ------
    StudyError
        A column the YAML names is not in the file (the message names the file, the key and the
        columns there), or the source gives no way to find the session.

    Examples
    --------
    >>> from pathlib import Path
    >>> from alliance_lib.study import load_study
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "multi_file"
    >>> study = load_study(here / "study.yaml")
    >>> outcome = read_source(study.sources[1][5], study)  # numbered by appointment, offset -1
    >>> outcome.rows_in, int(outcome.rows["session"].min()), int(outcome.rows["session"].max())
    (190, 0, 9)
    """
    notes: list[str] = []
    used = pd.DataFrame(columns=["column", "code", "n", "declared"])
    if src.kind == "redcap":
        from alliance_lib.redcap import REDCAP_MISSING_CODES, read_redcap

        df = read_redcap(
            src.path,
            src.options.get("dictionary"),
            session=src.session_from or "event",
            event_session=src.options.get("event_session", r"session_(\d+)"),
            intake_events=src.options.get("intake_events", ("intake",)),
            missing_codes=list(REDCAP_MISSING_CODES)
            + [c for c in study.missing_codes if isinstance(c, str)],
        )
        notes += df.attrs.get("warnings", [])
        used = pd.DataFrame(df.attrs["missing_cells"], columns=["column", "code", "n"])
        used["declared"] = "REDCap missing data code"
        redcap_extra = df.attrs
        _check_mapped(src, study, df.columns, roles={"therapist", "date", "rater"})
        df = df.rename(
            columns={v: _CANONICAL[k] for k, v in src.columns.items() if k in _CANONICAL}
        )
    elif src.kind == "qualtrics":
        from alliance_lib.qualtrics import read_qualtrics

        cl, se = src.columns.get("client"), src.columns.get("session")
        if isinstance(src.session_from, str):
            se = src.session_from
        df = read_qualtrics(
            src.path, responses=src.options.get("responses", "finished"), client=cl, session=se
        )
        notes += [n for n in df.attrs.get("warnings", []) if "typed differently" not in n]
        for group in df.attrs.get("near_duplicate_ids", []):  # IDs in notes: pseudonyms only
            shown = pseudonymise(
                pd.Series(group, dtype=object),
                salt=study.salt,
                prefix="C",
                length=study.pseudonym_length,
            )
            notes.append(
                f"{src.name}: client IDs that are probably one client typed differently: "
                f"{', '.join(shown)} (kept apart; correct them in the export if they are one)"
            )
        codebook_attrs = df.attrs
        rest = {k: v for k, v in src.columns.items() if k not in ("client", "session")}
        _check_mapped(src, study, df.columns, roles=set(rest))
        df = df.rename(columns={v: _CANONICAL[k] for k, v in rest.items() if k in _CANONICAL})
    else:
        df, used, notes = _read_file(src, study)
        _check_mapped(src, study, df.columns)
        if src.layout == "wide":
            df = _wide_to_long(df, src, study)
        elif src.layout == "coded":
            df = pivot_coded_scores(
                df,
                client=src.columns["client"],
                code=src.columns["code"],
                score=src.columns["score"],
                codes=src.codes,
                keys=[c for c in (src.columns.get("date"),) if c]
                + (
                    [src.session_from["date"]]
                    if isinstance(src.session_from, dict)
                    and src.session_from["date"] != src.columns.get("date")
                    else []
                ),
            )
            notes += df.attrs.get("warnings", [])
        mapping = {v: _CANONICAL[k] for k, v in src.columns.items() if k in _CANONICAL}
        if isinstance(src.session_from, str):
            mapping[src.session_from] = "session"
        if src.rater_id:
            mapping[src.rater_id] = "rater_id"
        df = df.rename(columns=mapping)
    df = _rename_items(df, src, study)
    df = df.copy()
    reader_attrs, df.attrs = dict(df.attrs), {"source": str(src.path)}  # keep merges light
    if src.kind == "qualtrics":
        recode = _qualtrics_recodes(df, src, study, reader_attrs.get("codebook", {}))
    df["_row"] = df.index.to_numpy()
    df = df.reset_index(drop=True)
    for col in ("client_id", "therapist_id", "rater_id"):
        if col in df:
            df[col] = _as_text(df[col])
    rows_in = len(df)
    rejected = [_no_rejects()]
    client_rows = pd.DataFrame(columns=["client_id", "_row"])
    if src.kind == "qualtrics":
        gone = pd.DataFrame(codebook_attrs["dropped"], columns=["row", "client_id", "reason"])
        if len(gone):
            rejected.append(gone.rename(columns={"row": "_row"}).assign(session=None, rater=None))
        rows_in += len(gone)
        bad_recode = recode.ne("").to_numpy()
        if bad_recode.any():
            rejected.append(_reject(df, bad_recode, recode.to_numpy(dtype=object)))
            df = df[~bad_recode].reset_index(drop=True)
    if src.kind == "redcap":
        gone = pd.DataFrame(redcap_extra["dropped"], columns=["row", "client_id", "reason"])
        if len(gone):
            rejected.append(gone.rename(columns={"row": "_row"}).assign(session=None, rater=None))
        base = pd.DataFrame(redcap_extra["base_rows"], columns=["row", "client_id"])
        client_rows = pd.DataFrame({"client_id": base["client_id"], "_row": base["row"]})
        rows_in += len(gone) + len(base)
    if src.level == "client":
        if "client_id" not in df:
            raise _columns_error(
                study, src, f"{src.name}: columns.client", ["client_id"], df.columns
            )
        no_id = df["client_id"].isna().to_numpy()
        rej = _reject(df, no_id, "client_id is missing") if no_id.any() else rejected[0]
        return SourceRows(src, df[~no_id], rej, rows_in, used, notes, client_rows)

    # rater and rater id
    if src.rater:
        df["rater"] = src.rater
    elif "rater" in df:
        df["rater"] = df["rater"].astype("str").str.strip().str.lower().where(df["rater"].notna())
        df["rater"] = df["rater"].fillna("client")
    else:
        df["rater"] = "client"
    bad = ~df["rater"].isin(RATER_ROLES).to_numpy()
    if bad.any():
        rejected.append(
            _reject(
                df,
                bad,
                "rater = '" + df["rater"].astype(str) + "' is not one of " + ", ".join(RATER_ROLES),
            )
        )
    if "rater_id" not in df:
        df["rater_id"] = ""
    else:
        df["rater_id"] = df["rater_id"].fillna("")

    # dates
    if "date" in df:
        df["date"], bad_date = _parse_dates(df["date"], src.date_format)
        if bad_date.any():
            fmt = src.date_format or "YYYY-MM-DD"
            rejected.append(
                _reject(
                    df, bad_date & ~bad, f"date is not a date in the form {fmt} (set date_format)"
                )
            )
            bad |= bad_date

    # sessions
    sf = src.session_from
    if isinstance(sf, dict):
        col = sf["date"]
        if col not in df.columns:  # also mapped as a role: renamed already
            col = next(_CANONICAL[k] for k, v in src.columns.items() if v == col)
        when, bad_when = _parse_dates(df[col], src.date_format)
        if "match" in sf:
            df, miss = _match_dates(df, when, sf, matched or {}, study, src)
            rejected.append(
                _reject(
                    df,
                    miss & ~bad,
                    f"{sf['date']} matched no session of {sf['match']} within {sf.get('within_days', 0)} days (latest session on or before it)",
                )
            )
            bad |= miss
        else:
            order = pd.DataFrame({"c": df["client_id"], "d": when, "r": df["rater"]})
            df["session"] = order.groupby(["c", "r"])["d"].rank(method="dense").to_numpy()
            if "date" not in df:
                df["date"] = when
        if bad_when.any():
            rejected.append(
                _reject(df, bad_when & ~bad, f"{sf['date']} is not a date (set date_format)")
            )
            bad |= bad_when
    elif src.layout != "wide" and "session" not in df:
        raise StudyError(
            study.path,
            f"{src.name}: columns.session",
            "no session number: map the session column (columns: {session: ...}) or give "
            "session_from (a column, {date: column} or {date: column, match: file, within_days: n})",
        )
    if "session" in df:
        raw = df["session"]
        num = pd.to_numeric(raw, errors="coerce")
        text = (raw.notna() & raw.astype(str).str.strip().ne("") & num.isna()).to_numpy() & ~bad
        if text.any():
            rejected.append(
                _reject(df, text, "session = '" + raw.astype(str) + "' is not a number")
            )
            bad |= text
        df["session"] = num.astype(float) + src.session_offset

    # cutoff
    cutoff = _cutoff(study, src)
    if cutoff is not None and "date" in df:
        late = (df["date"] > pd.Timestamp(cutoff)).to_numpy(dtype=bool) & ~bad
        if late.any():
            rejected.append(_reject(df, late, f"dated after the wave's cutoff ({cutoff})"))
            bad |= late

    # the same client x session x rater twice in one source: all copies out (which one is right?)
    keyed = df["client_id"].notna() & df["session"].notna() & ~bad
    dup = df[KEYS].where(keyed, None).duplicated(keep=False).to_numpy() & keyed.to_numpy()
    if dup.any():
        first = (
            df[dup].groupby(KEYS, dropna=False)["_row"].transform(lambda r: ", ".join(map(str, r)))
        )
        reason = np.full(len(df), "", dtype=object)
        reason[dup] = (
            f"the same client x session x rater twice in {src.name} (rows "
            + first.to_numpy(dtype=object)
            + ")"
        )
        rejected.append(_reject(df, dup, reason))
        bad |= dup
    out = df[~bad].reset_index(drop=True)
    rej = (
        pd.concat([r for r in rejected if len(r)], ignore_index=True)
        if any(len(r) for r in rejected)
        else _no_rejects()
    )
    return SourceRows(src, out, rej, rows_in, used, notes, client_rows)


def _qualtrics_recodes(df: pd.DataFrame, src: Source, study: Study, codebook: dict) -> pd.Series:
    """Out-of-scale answers in a Qualtrics source, named as recode values (see
    :func:`alliance_lib.qualtrics.recode_problems`)."""
    from alliance_lib.qualtrics import recode_problems
    from alliance_lib.registry import get_instrument

    reasons = pd.Series("", index=df.index, dtype=object)
    for ident, pattern in src.items.items():
        inst = get_instrument(ident, folder=study.instrument_folder)
        cols = {
            c: pattern.replace("{n}", str(i)) for i, c in zip(inst.items, inst.columns, strict=True)
        }
        more = recode_problems(df, cols, inst.scale_min, inst.scale_max, codebook)
        reasons = reasons.where(more.eq(""), reasons.where(reasons.eq(""), reasons + "; ") + more)
    return reasons


def _cutoff(study: Study, src: Source):
    """The cutoff date of the wave `src` belongs to."""
    for wave, srcs in study.sources.items():
        if any(s is src for s in srcs):
            return study.cutoffs.get(wave)
    return None


def _as_text(s: pd.Series) -> pd.Series:
    """IDs as stripped text; whole numbers without ``.0`` (a typed 101 is "101")."""
    from alliance_lib.io import _ids_as_text

    out = _ids_as_text(s)
    return out.where(out.notna(), None)


def _match_dates(df, when, sf, matched, study, src):
    """Session of the matched source's latest session on or before `when`, within N days."""
    other = matched.get(sf["match"])
    if other is None:
        raise StudyError(
            study.path,
            f"{src.name}: session_from.match",
            f"{sf['match']} must be read first and hold session rows with dates",
        )
    if "date" not in other:
        raise StudyError(
            study.path,
            f"{src.name}: session_from.match",
            f"{sf['match']} has no date column to match on (map columns: {{date: ...}} there)",
        )
    key = (
        other[["client_id", "session", "date"]]
        .dropna()
        .drop_duplicates(["client_id", "date"])
        .rename(columns={"date": "_when", "session": "_session"})
        .sort_values("_when")
    )
    left = pd.DataFrame({"client_id": df["client_id"], "_when": when, "_pos": np.arange(len(df))})
    ok = left["_when"].notna() & left["client_id"].notna()
    hit = pd.merge_asof(
        left[ok].sort_values("_when"),
        key.assign(_session_date=key["_when"]),
        on="_when",
        by="client_id",
        direction="backward",
        tolerance=pd.Timedelta(days=int(sf.get("within_days", 0))),
    ).set_index("_pos")
    session = pd.Series(np.nan, index=np.arange(len(df)), dtype=object)
    date = pd.Series(pd.NaT, index=np.arange(len(df)), dtype="datetime64[ns]")
    session.loc[hit.index] = hit["_session"].to_numpy()
    date.loc[hit.index] = hit["_session_date"].to_numpy()
    df = df.copy()
    df["session"] = pd.to_numeric(session, errors="coerce").astype("Int64")
    df["date"] = date.to_numpy()
    miss = (df["session"].isna() & ok).to_numpy(dtype=bool)
    return df, miss


def _wide_to_long(df: pd.DataFrame, src: Source, study: Study) -> pd.DataFrame:
    """One row per client -> one row per client x session, by the source's patterns."""
    pieces = []
    measured: set[str] = set()
    for pattern in src.pattern:
        regex = _wide_regex(pattern)
        cols = [c for c in df.columns if re.match(regex, str(c))]
        if not cols:
            raise StudyError(
                study.path,
                f"{src.name}: pattern",
                f"no column of {src.name} matches {pattern!r}; columns there: "
                f"{', '.join(map(str, df.columns[:20]))}",
            )
        measured |= set(cols)
        pieces.append((regex, cols))
    keep = [c for c in df.columns if c not in measured]
    longs = []
    for regex, cols in pieces:
        part = to_long(df[keep + cols], pattern=regex, session="session", dropna=False)
        longs.append(part.set_index("session", append=True))
    out = pd.concat([longs[0]] + [p.drop(columns=keep) for p in longs[1:]], axis=1)
    out = out.reset_index("session")
    stubs = [c for c in out.columns if c not in keep and c != "session"]
    out = out[out[stubs].notna().any(axis=1)]  # a session with nothing measured was not held
    out = out[keep + ["session"] + stubs]
    out.index.name = "row"
    return out


def pivot_coded_scores(
    data: pd.DataFrame,
    *,
    client: str,
    code: str,
    score: str,
    codes: dict | None = None,
    keys: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """Coded scored assessments (one row per measure) -> one row per client x contact.

    NHS Talking Therapies (IAPT) data sets record each completed measure as a row with a coded
    assessment type (SNOMED CT: 720433000 PHQ-9 score, 445455005 GAD-7 score) and the person's
    score. This gives one row per client x `keys` (e.g. the contact date) with one column per code.

    Parameters
    ----------
    data : DataFrame
        One row per measure.
    client, code, score : str
        Columns of the client (pathway) id, the assessment code and the score.
    codes : dict, optional
        Code -> output column; default :data:`SNOMED_SCORES` (``phq9_total``, ``gad7_total``).
        Rows with other codes are left out and counted in ``attrs["warnings"]``.
    keys : sequence of str
        Further columns that identify a contact (date, contact id).

    Returns
    -------
    DataFrame
        `client`, `keys`, then one column per code; index ``row``: the first file row of the
        contact. A contact with two different scores for one code keeps the column empty and
        says so in ``attrs["conflicts"]`` (a dict code column -> number of contacts).

    References
    ----------
    NHS England, NHS Talking Therapies for anxiety and depression data set, technical output
    specification (coded scored assessments: ``CodedAssToolType``, ``PersScore``); SNOMED CT
    concepts 720433000 (PHQ-9 score) and 445455005 (GAD-7 score).

    Examples
    --------
    >>> d = pd.DataFrame({"PathwayID": ["P1", "P1", "P1", "P1"],
    ...                   "date": ["2025-06-02", "2025-06-02", "2025-06-09", "2025-06-09"],
    ...                   "CodedAssToolType": ["720433000", "445455005", "720433000", "445455005"],
    ...                   "PersScore": [15, 11, 13, 10]})
    >>> pivot_coded_scores(d, client="PathwayID", code="CodedAssToolType", score="PersScore",
    ...                    keys=["date"])  # doctest: +NORMALIZE_WHITESPACE
        PathwayID        date  phq9_total  gad7_total
    row
    0          P1  2025-06-02          15          11
    2          P1  2025-06-09          13          10
    """
    codes = {str(k): v for k, v in (codes or SNOMED_SCORES).items()}
    keys = [client, *keys]
    frame = data.assign(_code=_as_text(data[code]).astype(object), _pos=data.index.to_numpy())
    known = frame["_code"].isin(list(codes))
    notes = []
    if (~known).any():
        other = sorted(frame.loc[~known, "_code"].dropna().astype(str).unique())[:5]
        notes.append(f"{int((~known).sum())} rows with other assessment codes left out ({other})")
    frame = frame[known].assign(_value=pd.to_numeric(frame.loc[known, score], errors="coerce"))
    frame["_col"] = frame["_code"].map(codes)
    grouped = frame.groupby([*keys, "_col"], sort=False, dropna=False)["_value"]
    n_distinct = grouped.nunique()
    wide = grouped.first().where(n_distinct <= 1).unstack("_col")
    conflicts = {c: int((n_distinct.xs(c, level="_col") > 1).sum()) for c in wide.columns}
    first = frame.groupby(keys, sort=False, dropna=False)["_pos"].min()
    wide = wide.reindex(first.index)
    wide.columns.name = None
    out = wide.reset_index()
    out.index = pd.Index(first.to_numpy(), name="row")
    cols = [c for c in dict.fromkeys(codes.values()) if c in out.columns]
    out = out[keys + cols].sort_index()
    notes.append(
        f"{int(known.sum())} coded score rows (one per measure) pivoted to {len(out)} contacts"
    )
    out.attrs = {"warnings": notes, "conflicts": {k: v for k, v in conflicts.items() if v}}
    return out


# ----------------------------------------------------------------------------------- the merge


def read_wave_sources(study: Study, wave: int) -> WaveIntake:
    """Read every source of a wave (matched sources first) and merge them (:func:`merge_sources`).

    Examples
    --------
    >>> from pathlib import Path
    >>> from alliance_lib.study import load_study
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "multi_file"
    >>> intake = read_wave_sources(load_study(here / "study.yaml"), 1)
    >>> len(intake.table), intake.rows_in["alliance_client.csv"], intake.combine
    (492, 156, {'observer': 'mean', 'interpreter': 'keep'})
    """
    srcs = study.sources[wave]
    done: dict[int, SourceRows] = {}
    by_name: dict[str, pd.DataFrame] = {}
    pending = list(range(len(srcs)))
    while pending:
        progressed = False
        for i in list(pending):
            sf = srcs[i].session_from
            need = sf.get("match") if isinstance(sf, dict) else None
            if need is not None and need not in by_name:
                continue
            part = read_source(srcs[i], study, matched=by_name)
            done[i] = part
            by_name[srcs[i].name] = part.rows
            by_name.setdefault(srcs[i].path.name, part.rows)
            pending.remove(i)
            progressed = True
        if not progressed:
            names = ", ".join(srcs[i].name for i in pending)
            raise StudyError(
                study.path,
                f"waves.{wave}.sources",
                f"session_from.match forms a circle among {names}",
            )
    return merge_sources([done[i] for i in range(len(srcs))])


def merge_sources(parts: list[SourceRows]) -> WaveIntake:
    """Join the sources of a wave into canonical rows, with the merge checks.

    Parameters
    ----------
    parts : list of SourceRows
        From :func:`read_source`, one per source.

    Returns
    -------
    WaveIntake

    Notes
    -----
    Session-level rows are keyed by client x session x rater x rater_id. Rows of different
    sources with one key become one row; a column given by two sources must agree there. A
    client x session has one date across all sources and raters; the rows that disagree are
    flagged. Client-level sources give one value per client and column (rows that disagree are
    rejected with the client's session rows flagged); their values are carried to every session
    row of the client, and a value also given on a session row must agree. A client-level row
    whose client has no session row is rejected. A client with two therapists is flagged.

    Examples
    --------
    >>> from pathlib import Path
    >>> from alliance_lib.study import load_study
    >>> here = Path(__file__).parents[1] / "tests" / "data" / "intake" / "multi_file"
    >>> study = load_study(here / "study.yaml")
    >>> demo, therapist = (read_source(s, study) for s in study.sources[1][:2])
    >>> intake = merge_sources([demo, therapist])
    >>> len(intake.table), "age" in intake.table, len(intake.flagged)
    (166, True, 0)
    """
    notes = [n for p in parts for n in p.notes]
    rejected = []
    for p in parts:
        if len(p.rejected):
            rejected.append(p.rejected.rename(columns={"_row": "row"}).assign(source=p.source.name))
    missing = [p.missing.assign(source=p.source.name) for p in parts if len(p.missing)]
    rows_in = {}
    for p in parts:
        rows_in[p.source.name] = rows_in.get(p.source.name, 0) + p.rows_in
    combine = {}
    for p in parts:
        if p.source.rater_id and p.source.rater:
            combine[p.source.rater] = p.source.combine

    sess = [p.rows.assign(_source=p.source.name) for p in parts if p.source.level == "session"]
    stack = pd.concat(sess, ignore_index=True) if sess else pd.DataFrame(columns=KEYS)
    stack["session"] = pd.to_numeric(stack["session"], errors="coerce")
    flagged: dict[int, list[str]] = {}

    # one row per key; a column given by two sources must agree
    stack["_key"] = stack.groupby(KEYS, sort=False, dropna=False).ngroup()
    table = stack.drop(columns=["_row", "_source"]).groupby("_key", sort=True).first()
    table = table.reset_index(drop=True)
    multi = stack.groupby("_key")["_source"].nunique()
    multi_keys = multi.index[multi > 1]
    if len(multi_keys):
        sub = stack[stack["_key"].isin(multi_keys)]
        per_src = sub.groupby("_source").apply(
            lambda g: set(g.columns[g.notna().any()]), include_groups=False
        )
        shared = {c for a in per_src for b in per_src if a is not b for c in a & b}
        shared -= set(KEYS) | {"_row", "_source", "_key", "date"}
        for col in sorted(shared):
            n = sub.groupby("_key")[col].nunique()
            for key in n.index[n > 1]:
                vals = sub.loc[sub["_key"] == key, ["_source", col]].dropna()
                text = ", ".join(f"{v} in {s}" for s, v in vals.itertuples(index=False))
                flagged.setdefault(int(key), []).append(f"{col} differs between sources: {text}")

    notes += _numbering_hints(stack)

    # one date per client x session across sources
    if "date" in stack:
        dated = stack.dropna(subset=["date"])
        n_dates = dated.groupby(["client_id", "session"])["date"].nunique()
        bad = n_dates[n_dates > 1]
        if len(bad):
            hints = _offset_hints(dated)
            idx = pd.MultiIndex.from_frame(dated[["client_id", "session"]])
            hit = dated[idx.isin(bad.index)]
            texts = (
                hit.groupby(["client_id", "session"])
                .apply(
                    lambda g: ", ".join(
                        f"{s} {d:%Y-%m-%d}"
                        for s, d in g.drop_duplicates(["_source", "date"])[
                            ["_source", "date"]
                        ].itertuples(index=False)
                    ),
                    include_groups=False,
                )
                .rename("text")
            )
            hinted = (
                hit.assign(h=hit["_source"].map(lambda s: hints.get(s, "")))
                .groupby(["client_id", "session"])["h"]
                .agg(lambda h: "".join(sorted(set(h))))
                .rename("hint")
            )
            hit = hit.join(texts, on=["client_id", "session"]).join(
                hinted, on=["client_id", "session"]
            )
            for key, text, hint in (
                hit[["_key", "text", "hint"]].drop_duplicates("_key").itertuples(index=False)
            ):
                reason = f"session has two dates across sources: {text}{hint}"
                flagged.setdefault(int(key), []).append(reason)

    # client-level sources
    clients = [p for p in parts if p.source.level == "client"]
    origins = [
        stack[["_source", "_row", "_key"]]
        .rename(columns={"_source": "source", "_row": "row", "_key": "key"})
        .assign(client_id=None)
    ]
    if clients:
        cl = pd.concat([p.rows.assign(_source=p.source.name) for p in clients], ignore_index=True)
        cl = cl[cl["client_id"].notna()]
        value_cols = [c for c in cl.columns if c not in ("client_id", "_row", "_source")]
        n = cl.groupby("client_id")[value_cols].nunique() if value_cols else pd.DataFrame()
        conflict_clients = n.index[(n > 1).any(axis=1)] if len(n) else []
        bad_cl = cl["client_id"].isin(conflict_clients)
        if bad_cl.any():
            sub = cl[bad_cl]
            cols_bad = n.loc[conflict_clients] > 1
            reason = sub["client_id"].map(
                lambda c: (
                    "client-level values differ between rows for this client: "
                    + ", ".join(cols_bad.columns[cols_bad.loc[c]])
                )
            )
            rejected.append(
                pd.DataFrame(
                    {
                        "source": sub["_source"],
                        "row": sub["_row"],
                        "client_id": sub["client_id"],
                        "session": None,
                        "rater": None,
                        "reason": reason,
                    }
                )
            )
            for key in table.index[table["client_id"].isin(conflict_clients)]:
                flagged.setdefault(int(key), []).append(
                    "client-level values differ between rows for this client"
                )
        per_client = cl[~bad_cl].groupby("client_id")[value_cols].first()
        overlap = [c for c in per_client.columns if c in table.columns]
        for col in overlap:
            carried = table["client_id"].map(per_client[col])
            differ = (
                table[col].notna()
                & carried.notna()
                & (table[col].astype(str) != carried.astype(str))
            )
            for key in table.index[differ]:
                flagged.setdefault(int(key), []).append(
                    f"{col} = {table.at[key, col]} on this row but {carried[key]} in the client-level source"
                )
            table[col] = table[col].where(table[col].notna(), carried)
        extra = [c for c in per_client.columns if c not in table.columns]
        if extra:
            table = table.join(per_client[extra], on="client_id")
        origins.append(
            cl[~bad_cl][["_source", "_row", "client_id"]]
            .rename(columns={"_source": "source", "_row": "row"})
            .assign(key=-1)
        )

    for p in parts:
        if len(p.client_rows):
            origins.append(
                p.client_rows.rename(columns={"_row": "row"}).assign(source=p.source.name, key=-1)
            )

    # a client nested in one therapist
    if "therapist_id" in table:
        n_th = table.groupby("client_id")["therapist_id"].nunique()
        two = n_th.index[n_th > 1]
        if len(two):
            names = (
                table[table["client_id"].isin(two)]
                .groupby("client_id")["therapist_id"]
                .agg(lambda t: ", ".join(sorted(t.dropna().astype(str).unique())))
            )
            hit = table["client_id"].isin(two)
            texts = (
                "the client has more than one therapist ("
                + table.loc[hit, "client_id"].map(names)
                + ")"
            )
            for key, text in texts.items():
                flagged.setdefault(int(key), []).append(text)

    rej = (
        pd.concat(rejected, ignore_index=True)
        if rejected
        else pd.DataFrame(columns=["source", "row", "client_id", "session", "rater", "reason"])
    )
    table.index.name = "key"
    if (table["rater_id"] == "").all():
        table = table.drop(columns="rater_id")
    return WaveIntake(
        table=table,
        origins=pd.concat(origins, ignore_index=True),
        rejected=rej[["source", "row", "client_id", "session", "rater", "reason"]],
        flagged=pd.Series({k: "; ".join(v) for k, v in flagged.items()}, dtype=object),
        rows_in=rows_in,
        missing=pd.concat(missing, ignore_index=True)
        if missing
        else pd.DataFrame(columns=["column", "code", "n", "declared", "source"]),
        combine=combine,
        notes=notes,
    )


def _numbering_hints(stack: pd.DataFrame) -> list[str]:
    """Sources with the same first session as another but one more at the end, for most shared
    clients: the signature of a file numbered by appointment (1 = assessment) stacked on one
    numbered by therapy session. A note only (a follow-up appointment looks the same); dates,
    when both sources have them, decide (:func:`merge_sources`)."""
    out = []
    ok = stack.dropna(subset=["client_id", "session"])
    if ok.empty:
        return out
    span = ok.groupby(["_source", "client_id"])["session"].agg(["min", "max"])
    names = list(pd.unique(ok["_source"]))
    for a in names:
        for b in names:
            if a == b:
                continue
            both = span.loc[a].merge(
                span.loc[b], left_index=True, right_index=True, suffixes=("_a", "_b")
            )
            if len(both) < 5:
                continue
            sign = (both["min_a"] == both["min_b"]) & (both["max_a"] - both["max_b"]).eq(1)
            if float(sign.mean()) >= 0.8:
                out.append(
                    f"{a} has one session more at the end than {b} for {int(sign.sum())} of "
                    f"{len(both)} shared clients, from the same first session: if {a} is "
                    "numbered by appointment with an assessment first, set session_offset: -1"
                )
    return out


def _offset_hints(dated: pd.DataFrame) -> dict[str, str]:
    """Sources whose dates agree with the others' once their sessions are shifted by one."""
    hints = {}
    sources = dated["_source"].unique()
    if len(sources) < 2:
        return hints
    for src in sources:
        mine = dated[dated["_source"] == src][["client_id", "session", "date"]].drop_duplicates()
        others = dated[dated["_source"] != src][["client_id", "session", "date"]].drop_duplicates()
        if mine.empty or others.empty:
            continue
        rates = {}
        for shift in (-1, 0, 1):
            m = mine.assign(session=mine["session"] + shift).merge(
                others, on=["client_id", "session"], suffixes=("", "_o")
            )
            rates[shift] = float((m["date"] == m["date_o"]).mean()) if len(m) else 0.0
        best = max(rates, key=rates.get)
        if best != 0 and rates[best] > 0.5 and rates[best] > 2 * rates[0]:
            hints[src] = (
                f" ({src}'s dates match the other sources' when its sessions are shifted by "
                f"{best:+d}: is it numbered from another start? set session_offset: {best})"
            )
    return hints


def source_counts(intake: WaveIntake, analysed_keys, analysed_clients) -> pd.DataFrame:
    """Rows in / analysed / quarantined per source (``rows_in == analysed + quarantined``)."""
    o = intake.origins
    ok = np.where(
        o["key"] >= 0, o["key"].isin(analysed_keys), o["client_id"].isin(analysed_clients)
    )
    counts = (
        pd.DataFrame({"source": o["source"], "ok": ok})
        .groupby("source", sort=False)["ok"]
        .agg(["size", "sum"])
    )
    rej = intake.rejected.groupby("source").size()
    rows = []
    for name, n_in in intake.rows_in.items():
        analysed = int(counts["sum"].get(name, 0))
        used = int(counts["size"].get(name, 0))
        quarantined = used - analysed + int(rej.get(name, 0))
        rows.append(
            {"source": name, "rows_in": int(n_in), "analysed": analysed, "quarantined": quarantined}
        )
    out = pd.DataFrame(rows, columns=["source", "rows_in", "analysed", "quarantined"])
    broken = out[out["rows_in"] != out["analysed"] + out["quarantined"]]
    if len(broken):  # pragma: no cover - invariant
        raise DataError(
            f"rows do not add up for source {broken['source'].iloc[0]}: {broken.to_dict('records')}"
        )
    return out
