"""The intake stage every analysis calls first: columns checked, numbers made, ids kept as text.

Modelled on lme4's ``lFormula`` / ``mkFormula`` (one model-frame step shared by every model
family): an analysis names the column *roles* it needs and :func:`model_frame` returns a small
frozen :class:`ModelFrame`, or raises one clear error. It

1. checks that every mapped column exists; all absent columns are named in one
   :class:`~alliance_lib.errors.MissingColumnsError` with a "did you mean" (difflib);
2. converts the numeric roles to float under **one rule** (below), naming every bad cell by its
   row label, column and value;
3. keeps id roles as text (a typed client number ``101`` or ``101.0`` is ``"101"``, ``" 01"`` is
   ``"01"``, leading zeros of text ids survive) and factorises them into integer codes with their
   levels;
4. drops rows with missing values, counted by reason, and keeps the input row labels (the ``row``
   index of ``read_table`` is the source file's line), so messages can name them.

The one numeric rule
--------------------
A numeric cell is accepted when it is a number (any integer, float, nullable or Arrow numeric
dtype; ``True``/``False`` count as 1/0) or **text holding a number**: ``"4"``, ``" 4.0 "``,
``"-1e3"`` (surrounding blanks are ignored). A missing cell (NaN, None, NA) or blank text is
missing. Anything else (``"n/a"``, ``"4,5"``, ``"four"``, ``"inf"`` or an infinite number) is an
error naming the row, the column and the value. Every analysis follows this rule; declare missing
codes or quarantine rows with :func:`alliance_lib.validate` before analysing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alliance_lib.errors import DataError, DefinitionError, MissingColumnsError

__all__ = [
    "ModelFrame",
    "drop_incomplete",
    "factorize_ids",
    "factorize_text",
    "model_frame",
    "suggest_columns",
    "text_ids",
    "to_float",
]

#: Bad cells listed in one message.
_LISTED = 5


# ------------------------------------------------------------------------------ small helpers
def plain(value: Any) -> Any:
    """A NumPy scalar as the plain Python value (for readable messages and error fields)."""
    return value.item() if isinstance(value, np.generic) else value


def number_text(values: np.ndarray) -> np.ndarray:
    """Vectorised short text of numbers: 7.0 -> '7', 2.5 -> '2.5' (object array).

    Examples
    --------
    >>> number_text(np.array([7.0, 2.5, 101.0])).tolist()
    ['7', '2.5', '101']
    """
    values = np.asarray(values, dtype=float)
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 1e15)
    out = values.astype(str).astype(object)
    out[whole] = values[whole].astype(np.int64).astype(str)
    return out


def suggest_columns(missing: Iterable[str], available: Iterable[Any]) -> dict[str, str]:
    """Absent column -> the closest existing column name (case-insensitive difflib), if close.

    Examples
    --------
    >>> suggest_columns(["wai_sr_totl", "zzz"], ["client_id", "wai_sr_total"])
    {'wai_sr_totl': 'wai_sr_total'}
    """
    available = [str(c) for c in available]
    lower = {c.lower(): c for c in available}
    out = {}
    shuffled = {}
    for c in lower:  # swapped letters ("wia" for "wai") are a common slip difflib scores low
        shuffled.setdefault("".join(sorted(c)), c)
    for col in missing:
        key = str(col).lower()
        hit = difflib.get_close_matches(key, list(lower), n=1, cutoff=0.75)
        if hit:
            out[col] = lower[hit[0]]
        elif "".join(sorted(key)) in shuffled:
            out[col] = lower[shuffled["".join(sorted(key))]]
    return out


def require_columns(
    data: pd.DataFrame, columns: Iterable[str], what: str, *, roles: Mapping | None = None
) -> None:
    """Raise :class:`MissingColumnsError` (all absent columns, with suggestions) if any is absent.

    Examples
    --------
    >>> df = pd.DataFrame({"wai_sr_total": [3.0]})
    >>> try:
    ...     require_columns(df, ["wai_sr_totl"], "fit_trajectory")
    ... except MissingColumnsError as err:
    ...     print(err)
    fit_trajectory: column(s) not found: wai_sr_totl. Did you mean 'wai_sr_total' for 'wai_sr_totl'?
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"{what}: data must be a pandas DataFrame, not {type(data).__name__}",
            hint="read the file with alliance_lib.read_table",
        )
    columns = list(dict.fromkeys(columns))
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise MissingColumnsError(
            missing,
            suggest_columns(missing, [c for c in data.columns if c not in columns]),
            what,
            roles=roles,
            file=data.attrs.get("source"),
        )


# ------------------------------------------------------------------------------ numbers
def _bad_cells_error(
    raw: pd.Series, bad: np.ndarray, column: str, what: str, why: str = "not a number"
) -> DataError:
    pos = np.flatnonzero(bad)
    labels = raw.index[pos[:_LISTED]]
    values = raw.iloc[pos[:_LISTED]].to_numpy(dtype=object)
    cells = "; ".join(
        f"row {plain(r)!r}: value {plain(v)!r}" for r, v in zip(labels, values, strict=True)
    )
    more = f" and {len(pos) - _LISTED} more" if len(pos) > _LISTED else ""
    err = DataError(
        f"{what}: column {column!r}, {cells}{more}: {why} ({len(pos)} such cell(s) in this "
        "column). Numbers may be stored as text ('4', ' 4.0 '); declare missing codes or "
        "quarantine the rows with alliance_lib.validate first.",
        file=raw.attrs.get("source"),
        row=plain(labels[0]),
        column=column,
        value=plain(values[0]),
        hint="declare missing codes or quarantine the rows with alliance_lib.validate",
    )
    err.cells = pd.DataFrame(
        {
            "row": raw.index[pos].to_numpy(dtype=object),
            "column": column,
            "value": raw.iloc[pos].to_numpy(dtype=object),
        }
    )
    return err


def to_float(raw: pd.Series, column: str | None = None, *, what: str = "data") -> np.ndarray:
    """A column as a float array under the library's one numeric rule (see the module notes).

    Parameters
    ----------
    raw : Series
        The column (its index holds the row labels used in messages).
    column : str, optional
        Its name in messages (default ``raw.name``).
    what : str
        Who asks (the analysis), for messages.

    Returns
    -------
    ndarray of float
        NaN where missing (NaN, None, NA or blank text). A new array (never a view of ``raw``).

    Raises
    ------
    DataError
        Text that is not a number, or an infinite value; names the rows, column and values
        (``.cells`` lists every bad cell).

    Examples
    --------
    >>> to_float(pd.Series(["4", " 4.0 ", "", None, 2])).tolist()
    [4.0, 4.0, nan, nan, 2.0]
    >>> try:
    ...     to_float(pd.Series(["4", "n/a"], name="wai"), what="demo")
    ... except DataError as err:
    ...     print(err.row, err.column, err.value)
    1 wai n/a
    """
    column = raw.name if column is None else column
    dt = raw.dtype
    if isinstance(dt, np.dtype) and dt.kind in "iufb":
        x = raw.to_numpy(dtype=float, copy=True)
    elif pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt):
        x = raw.to_numpy(dtype=float, na_value=np.nan)
        if np.shares_memory(x, raw.array):  # pragma: no cover - defensive
            x = x.copy()
    else:  # text (or mixed objects): convert the distinct values only
        codes, uniq = pd.factorize(raw, use_na_sentinel=True)
        uvals = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
        isnum = _numbers_among(uvals)
        text = uvals.where(~isnum, None) if isnum.any() else uvals
        conv = np.array(  # (to_numeric ignores surrounding blanks)
            pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        )
        if isnum.any():
            conv[isnum] = uvals[isnum].to_numpy(dtype=float)
        ubad = np.isnan(conv)
        if ubad.any():  # blank text is missing, not bad (stripped only where not a number)
            pos = np.flatnonzero(ubad)
            blank = (uvals.iloc[pos].astype(str).str.strip() == "").to_numpy(dtype=bool)
            ubad[pos[blank]] = False
            ubad[pos[isnum[pos]]] = False  # (a NaN number is missing)
        if ubad.any():
            bad = np.zeros(len(raw), dtype=bool)
            hit = codes >= 0
            bad[hit] = ubad[codes[hit]]
            raise _bad_cells_error(raw, bad, column, what)
        x = np.where(codes >= 0, conv[np.maximum(codes, 0)] if len(conv) else np.nan, np.nan)
    inf = np.isinf(x)
    if inf.any():
        raise _bad_cells_error(raw, inf, column, what, why="infinite, not a number")
    return x


# ------------------------------------------------------------------------------ ids
def _numbers_among(values: pd.Series) -> np.ndarray:
    """Which distinct values (object Series) are numbers rather than text (no bools).

    Text-only columns, the usual case, are recognised in one C-level pass; only a column that
    mixes numbers and text looks at its distinct values one by one."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        return np.zeros(len(values), dtype=bool)
    return values.map(
        lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
    ).to_numpy(dtype=bool)


def _unique_text(uniq: Any) -> np.ndarray:
    """Text of distinct id values: numbers without a '.0' (101.0 -> '101'), text stripped."""
    arr = np.asarray(uniq)
    if arr.dtype.kind in "iuf":
        return number_text(arr)
    vals = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
    isnum = _numbers_among(vals)
    out = vals.astype(str).str.strip().to_numpy(dtype=object)
    if isnum.any():
        out[isnum] = number_text(vals[isnum].to_numpy(dtype=float))
    return out


def factorize_text(raw: pd.Series, *, lower: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ids as stripped text (-1 for missing or blank) and the distinct texts.

    The text work (strip, lower) runs on the distinct values only, so it is cheap on long tables;
    ``" 01"`` and ``"01"`` get the same code, and a number is its text without a trailing ``.0``
    (``101`` and ``101.0`` are ``"101"``). Levels are in order of first appearance.

    Examples
    --------
    >>> codes, levels = factorize_text(pd.Series([" 01", "01", None, "002", ""]))
    >>> codes.tolist(), levels.tolist()
    ([0, 0, -1, 1, -1], ['01', '002'])
    >>> factorize_text(pd.Series([101.0, float("nan"), 7.0]))[1].tolist()
    ['101', '7']
    """
    return factorize_ids(raw, lower=lower)[:2]


def factorize_ids(raw: pd.Series, *, lower: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`factorize_text`, and whether ``raw`` already is that text (Arrow text that needs no
    stripping, none blank): then the column itself can stand for the ids, without a copy.

    Examples
    --------
    >>> factorize_ids(pd.Series(["a", "b", "a"], dtype="str"))[2]
    True
    >>> factorize_ids(pd.Series([1, 2, 1]))[1:]
    (array(['1', '2'], dtype=object), False)
    """
    codes = uniq = None
    if isinstance(raw.array, pd.arrays.ArrowStringArray):  # Arrow text: encode it in Arrow
        values = raw.array.__arrow_array__()
        n = len(values)
        runs = None
        if n > 1:  # a table sorted by client holds runs of equal ids: encode one id per run
            change = pc.not_equal(values.slice(1), values.slice(0, n - 1))
            starts = np.flatnonzero(np.r_[True, np.asarray(pc.fill_null(change, True))])
            if len(starts) * 4 <= n:
                runs = starts
                values = values.take(pa.array(starts))
        enc = pc.dictionary_encode(values, null_encoding="mask")
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.unify_dictionaries().combine_chunks() if enc.num_chunks else None
        if enc is not None:  # (distinct values in order of appearance, as pd.factorize)
            codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
            if runs is not None:
                codes = np.repeat(codes, np.diff(np.r_[runs, n]))
            # usually no value changes when stripped (and lowered) and none is blank: then the
            # distinct values stay distinct (the Arrow kernels of pandas' str.strip / str.lower)
            text = pc.utf8_trim_whitespace(enc.dictionary)
            if lower:
                text = pc.utf8_lower(text)
            if (
                pc.all(pc.equal(text, enc.dictionary)).as_py() is not False
                and not pc.any(pc.equal(text, "")).as_py()
            ):
                return codes.astype(np.int64), text.to_numpy(zero_copy_only=False), not lower
            uniq = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    if codes is None:
        codes, uniq = pd.factorize(raw)
    text = pd.Series(_unique_text(uniq), dtype=object)
    if lower:
        text = text.str.lower()
    blank = (text == "").to_numpy(dtype=bool)
    ucodes, utext = pd.factorize(text)
    codes = np.asarray(codes, dtype=np.int64)
    if len(utext) == len(uniq) and not blank.any():  # already distinct once stripped: as is
        return codes, np.asarray(utext, dtype=object), False
    ucodes = np.where(blank, -1, ucodes).astype(np.int64)
    out = np.where(codes >= 0, ucodes[np.maximum(codes, 0)] if len(ucodes) else -1, -1)
    keep = np.unique(out[out >= 0])  # levels of blank values only: none
    if len(keep) < len(utext):  # (blank texts were a level of their own: renumber)
        remap = np.full(len(utext), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        out = np.where(out >= 0, remap[np.maximum(out, 0)], -1)
        utext = np.asarray(utext, dtype=object)[keep]
    return out, np.asarray(utext, dtype=object), False


def text_ids(codes: np.ndarray, levels: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A pandas ``str`` array of ``levels[codes]`` (missing where codes < 0): one Arrow take.

    Examples
    --------
    >>> text_ids(np.array([1, -1, 0]), np.array(["a", "b"], dtype=object)).tolist()
    ['b', nan, 'a']
    """
    base = pa.array(list(levels) if len(levels) else [], type=pa.large_string())
    taken = base.take(pa.array(np.maximum(codes, 0), mask=codes < 0)) if len(base) else None
    if taken is None:
        taken = pa.nulls(len(codes), type=pa.large_string())
    return pd.Series(pd.arrays.ArrowExtensionArray(taken), copy=False).astype("str").array


# ------------------------------------------------------------------------------ dropping rows
def drop_incomplete(
    missing: Mapping[str, np.ndarray] | pd.DataFrame, steps: Mapping[str, Iterable[str]]
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows to keep and the rows dropped per reason, each row counted under its first reason.

    Parameters
    ----------
    missing : DataFrame or dict of str to bool array
        A frame (a cell is missing when NaN/None/NA) or, per name, a boolean "missing" array.
    steps : dict of reason -> names
        In order: a row missing any of the names is dropped for that reason (unless an earlier
        reason dropped it).

    Returns
    -------
    keep : ndarray of bool
    n_dropped : dict of reason -> int

    Examples
    --------
    >>> d = pd.DataFrame({"y": [1.0, None, None, 2.0], "x": [None, 1.0, None, 3.0]})
    >>> keep, n = drop_incomplete(d, {"outcome missing": ["y"], "predictor missing": ["x"]})
    >>> keep.tolist(), n
    ([False, False, False, True], {'outcome missing': 2, 'predictor missing': 1})
    """
    n = len(missing) if isinstance(missing, pd.DataFrame) else len(next(iter(missing.values())))
    keep = np.ones(n, dtype=bool)
    n_dropped: dict[str, int] = {}
    for reason, names in steps.items():
        names = _as_list(names)
        if isinstance(missing, pd.DataFrame):
            miss = missing[names].isna().any(axis=1).to_numpy() if names else np.zeros(n, bool)
        else:
            miss = np.zeros(n, dtype=bool)
            for name in names:
                if name in missing:
                    miss |= missing[name]
        n_dropped[reason] = int(np.count_nonzero(miss & keep))
        keep &= ~miss
    return keep, n_dropped


# ------------------------------------------------------------------------------ the frame
@dataclass(frozen=True, eq=False)
class ModelFrame:
    """The checked input of one analysis (the result of :func:`model_frame`).

    Attributes
    ----------
    data : DataFrame
        The kept rows (input row labels as index) with the role columns converted: numeric
        roles float64, id roles text (``str``; missing ids are NaN); with ``keep="all"`` the
        other columns follow unchanged.
    roles : dict
        Role -> column name (or tuple of names for a role given as a list), for present roles.
    codes : dict
        Id role -> int64 codes into ``levels[role]`` (-1 for a missing id), one per kept row.
    levels : dict
        Id role -> the distinct ids (object array of text), in order of first appearance (or
        sorted with ``sort_levels=True``).
    n_in : int
        Rows in the input.
    n_dropped : dict
        Reason -> rows dropped for it (a row is counted under the first reason that applies).
    what : str
        The analysis that asked (used in messages).
    """

    data: pd.DataFrame
    roles: dict
    codes: dict
    levels: dict
    n_in: int
    n_dropped: dict
    what: str = "analysis"
    _arrays: dict = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> pd.Index:
        """Row labels of the kept rows (for messages)."""
        return self.data.index

    @property
    def n(self) -> int:
        """Rows kept."""
        return len(self.data)

    def __contains__(self, role: str) -> bool:
        return role in self.roles

    def column(self, role: str) -> str:
        """The column a role maps to."""
        return self.roles[role]

    def values(self, role: str) -> np.ndarray:
        """The role's values: float array for a numeric role (2-D for a list of columns), the
        text ids (object array, None for missing) for an id role, else the column as is."""
        if role in self._arrays:
            return self._arrays[role]
        if role in self.codes:
            lv = np.append(self.levels[role], None)
            return lv[self.codes[role]]
        cols = self.roles[role]
        return self.data[list(cols) if isinstance(cols, tuple) else cols].to_numpy()

    def label(self, pos: int) -> Any:
        """The input row label of kept row ``pos``."""
        return plain(self.data.index[pos])

    def __repr__(self) -> str:
        return (
            f"ModelFrame({self.what}: {self.n} of {self.n_in} rows; roles {self.roles}; "
            f"dropped {self.n_dropped})"
        )


def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def model_frame(
    data: pd.DataFrame,
    roles: Mapping[str, str | Sequence[str] | None],
    *,
    numeric: Iterable[str] = (),
    integer: Iterable[str] = (),
    ids: Iterable[str] = (),
    optional: Iterable[str] = (),
    required: Iterable[str] = (),
    dropna: bool | Iterable[str] | Mapping[str, Iterable[str]] = False,
    sort_levels: bool = False,
    keep: str = "roles",
    what: str = "analysis",
) -> ModelFrame:
    """Check and convert the columns an analysis needs (the library's one intake stage).

    Parameters
    ----------
    data : DataFrame
        Long table; its index holds the row labels used in messages.
    roles : dict
        Role -> column name (``{"score": "wai_sr_total", "client": "client_id"}``), or a list of
        column names (e.g. ``{"covariates": ["age", "female"]}``); ``None`` leaves a role out
        (e.g. ``therapist=None``).
    numeric : iterable of str
        Roles converted to float under the one numeric rule (module notes).
    integer : iterable of str
        Numeric roles whose values must also be whole numbers (e.g. a session grid).
    ids : iterable of str
        Roles kept as text and factorised (``codes``, ``levels``).
    optional : iterable of str
        Roles whose column may be absent (the role is then left out).
    required : iterable of str
        Roles that may not have a missing value: a missing one raises, naming the row.
    dropna : bool, list of roles, or dict of reason -> roles
        Drop rows with a missing value in these roles: ``True`` means every numeric and id role,
        counted under the reason ``"missing <role>"``; a dict names the reasons (a row is
        counted under the first reason that applies).
    sort_levels : bool
        Levels of id roles sorted instead of in order of first appearance: by value when every
        id is a number written as text (``"2"`` before ``"10"``), else as text.
    keep : {"roles", "all"}
        Columns of ``.data``: the role columns only, or every column.
    what : str
        The analysis (e.g. ``"fit_trajectory"``), named in messages.

    Returns
    -------
    ModelFrame

    Raises
    ------
    MissingColumnsError
        A mapped column is absent (all absent columns in one message, with "did you mean").
    DataError
        A numeric cell is not a number, an integer role holds a fraction, or a required role is
        missing; the message names the row label, the column and the value.

    Notes
    -----
    The steps run in a fixed order, as lme4's ``lFormula``: columns, conversion, required
    values, dropping of incomplete rows (counted by reason), then factorising of the ids on the
    kept rows. Vectorised: conversion works on whole columns (text on its distinct values).

    References
    ----------
    Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
    using lme4. *Journal of Statistical Software, 67*(1), 1-48 (section 2, the modular stages).

    Examples
    --------
    >>> df = pd.DataFrame({"client_id": [101, 101, 102.0], "session": ["1", " 2 ", "1"],
    ...                    "wai": [4.0, None, 3.5]}, index=pd.Index([2, 3, 4], name="row"))
    >>> mf = model_frame(df, {"score": "wai", "client": "client_id", "session": "session"},
    ...                  numeric=["score", "session"], ids=["client"], dropna=True, what="demo")
    >>> mf.levels["client"].tolist(), mf.codes["client"].tolist(), mf.n_dropped
    (['101', '102'], [0, 1], {'missing score': 1, 'missing session': 0, 'missing client': 0})
    >>> mf.values("session").tolist(), mf.rows.tolist()
    ([1.0, 1.0], [2, 4])
    """
    numeric, integer, ids = _as_list(numeric), _as_list(integer), _as_list(ids)
    optional, required = set(_as_list(optional)), _as_list(required)
    numeric += [r for r in integer if r not in numeric]
    unknown = [r for r in [*numeric, *ids, *required] if r not in roles]
    if unknown:  # a programming error inside the library
        raise DefinitionError(f"{what}: model_frame roles {unknown} are not mapped")
    if keep not in ("roles", "all"):
        raise DefinitionError(f"keep must be 'roles' or 'all', not {keep!r}", value=keep)
    present: dict[str, Any] = {}
    needed: list[str] = []
    if not isinstance(data, pd.DataFrame):
        require_columns(data, [], what)  # raises the "not a DataFrame" error
    for role, col in roles.items():
        if col is None:
            continue
        cols = (col,) if isinstance(col, str) else tuple(col)
        if not cols or (role in optional and not all(c in data.columns for c in cols)):
            continue
        present[role] = col if isinstance(col, str) else cols
        needed += list(cols)
    require_columns(
        data, needed, what, roles={c: r for r, v in present.items() for c in _as_list(v)}
    )
    twice = sorted({str(c) for c in needed if (data.columns == c).sum() > 1})
    if twice:
        raise DataError(
            f"{what}: column(s) {', '.join(twice)} appear more than once in the data; "
            "rename or drop the copies",
            file=data.attrs.get("source"),
            column=twice[0],
            hint="rename or drop the duplicated columns",
        )
    n_in = len(data)

    # conversion (whole columns; rows are never looped over)
    converted: dict[str, np.ndarray] = {}
    for role in numeric:
        if role not in present:
            continue
        cols = _as_list(present[role])
        arrs = [to_float(data[c], c, what=what) for c in cols]
        if role in integer:
            for c, a in zip(cols, arrs, strict=True):
                frac = ~np.isnan(a) & (a != np.round(a))
                if frac.any():
                    raise _bad_cells_error(data[c], frac, c, what, why="not a whole number")
        converted[role] = arrs[0] if isinstance(present[role], str) else np.column_stack(arrs)
    id_codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    as_is: set[str] = set()  # id roles whose column already is the canonical text
    for role in ids:
        if role in present:
            c, lv, same = factorize_ids(data[present[role]])
            id_codes[role] = (c, lv)
            if same:
                as_is.add(role)

    def missing_of(role: str) -> np.ndarray:
        if role in converted:
            a = converted[role]
            return np.isnan(a) if a.ndim == 1 else np.isnan(a).any(axis=1)
        if role in id_codes:
            return id_codes[role][0] < 0
        cols = _as_list(present[role])
        return data[cols].isna().any(axis=1).to_numpy()

    for role in required:
        if role not in present:
            continue
        miss = missing_of(role)
        if miss.any():
            c = _as_list(present[role])[0]
            i = int(np.flatnonzero(miss)[0])
            kind = "id" if role in id_codes else "value"
            raise DataError(
                f"{what}: column {c!r}, row {plain(data.index[i])!r}: missing {kind} "
                f"({int(miss.sum())} such row(s)); every row needs one",
                file=data.attrs.get("source"),
                row=plain(data.index[i]),
                column=c,
                value=None,
                hint=f"fill in or drop the rows without a {role}",
            )

    # dropping incomplete rows, counted by the first reason
    if dropna is True:
        steps = {f"missing {r}": [r] for r in [*numeric, *ids]}
    elif dropna is False or dropna is None:
        steps = {}
    elif isinstance(dropna, Mapping):
        steps = {reason: _as_list(rs) for reason, rs in dropna.items()}
    else:
        steps = {f"missing {r}": [r] for r in _as_list(dropna)}
    used = {r for rs in steps.values() for r in rs if r in present}
    keep_rows, n_dropped = (
        drop_incomplete({r: missing_of(r) for r in used}, steps)
        if used
        else (np.ones(n_in, dtype=bool), {reason: 0 for reason in steps})
    )
    every = bool(keep_rows.all())
    kpos = None if every else np.flatnonzero(keep_rows)

    def pick(a):
        return a if every else a[kpos]

    # the frame: converted role columns (kept rows), ids as text
    arrays: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {}
    codes: dict[str, np.ndarray] = {}
    levels: dict[str, np.ndarray] = {}
    for role, a in converted.items():
        arrays[role] = pick(a)
        cols = _as_list(present[role])
        for j, c in enumerate(cols):
            out[c] = arrays[role] if a.ndim == 1 else arrays[role][:, j]
    for role, (c, lv) in id_codes.items():
        c = pick(c)
        used = np.unique(c[c >= 0]) if not every else None
        if used is not None and len(used) < len(lv):  # levels of the kept rows only
            remap = np.full(len(lv), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            c = np.where(c >= 0, remap[np.maximum(c, 0)], -1)
            lv = lv[used]
        if sort_levels and len(lv):  # numbers by value (2 before 10), else as text
            num = pd.to_numeric(pd.Series(lv, dtype=object), errors="coerce").to_numpy(float)
            order = np.argsort(lv.astype(str), kind="stable")
            if not np.isnan(num).any():
                order = order[np.argsort(num[order], kind="stable")]
            rank = np.empty(len(lv), dtype=np.int64)
            rank[order] = np.arange(len(lv))
            c = np.where(c >= 0, rank[np.maximum(c, 0)], -1)
            lv = lv[order]
        codes[role], levels[role] = c, lv
        col = present[role]
        if role in as_is and data[col].dtype == "str":  # the column itself (an Arrow take)
            out[col] = data[col] if every else data[col].iloc[kpos]  # (copy-on-write tracked)
        else:
            out[col] = text_ids(c, lv)
    index = data.index if every else data.index[kpos]
    if keep == "all":
        rest = [c for c in data.columns if c not in out]
        frame = data[rest] if every else data[rest].iloc[kpos]
        frame = frame.assign(**{str(k): v for k, v in out.items()}) if out else frame.copy()
        frame = frame[list(data.columns)]
    else:  # the role columns only
        cols = list(dict.fromkeys(needed))
        other = [c for c in cols if c not in out]
        base = data[other] if every else data[other].iloc[kpos]
        # copy=False: the converted arrays are our own; other columns stay pandas-tracked Series
        frame = pd.DataFrame({**{c: base[c] for c in other}, **out}, index=index, copy=False)
        frame = frame[cols] if cols else frame
    frame.attrs = dict(data.attrs)
    return ModelFrame(
        data=frame,
        roles=present,
        codes=codes,
        levels=levels,
        n_in=n_in,
        n_dropped=n_dropped,
        what=what,
        _arrays=arrays,
    )
