"""Scoring questionnaires by their instrument definitions.

:func:`score` turns the item columns of a long table into scale scores, following the
instrument's definition (``alliance_lib/instruments/*.yaml``): reverse keys, subscales, metric and
missing-item limits. It never drops a row: a row that cannot be scored keeps NaN scores and the
reason is written to ``{prefix}_problem``.

Output columns (added to a copy of the input, which keeps every row and column)
-------------------------------------------------------------------------------
``{prefix}_total``, ``{prefix}_{subscale}``
    Scores (float; NaN when not scored).
``{prefix}_n_missing``
    Number of missing item answers (blank cells and missing codes; invalid cells are not
    counted here, they are reported in the problem column).
``{prefix}_prorated``
    True when at least one score of the row was computed with missing items (prorated or
    imputed).
``{prefix}_problem``
    Text explaining every score of the row that is NaN (invalid cells, too many missing items,
    not administered); missing (NaN) when every score was computed.

Provenance is stored in ``result.attrs["scoring"][prefix]``: the instrument id, the metric, the
missing-item limits used, the local (our own) rules the scores rely on, the columns whose score
relies on a fact marked *uncertain* in the definition (for report footnotes), and the number of
cells replaced per missing code column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from alliance_lib.errors import DataError, DefinitionError, MissingColumnsError
from alliance_lib.frame import number_text as _fmt_values
from alliance_lib.frame import plain, require_columns
from alliance_lib.registry import METRICS, Instrument, get_instrument

__all__ = ["MissingColumnsError", "ScoringError", "reverse_items", "score"]

_MAX_LISTED = 20


class ScoringError(DataError):
    """Invalid item answers (out of range, non-integer on an integer scale, or text).

    Attributes
    ----------
    cells : DataFrame
        Every offending cell: ``row`` (the input row label), ``client``, ``session``,
        ``column``, ``value`` and ``problem``.
    instrument : str
        The instrument id.
    file : str or None
        The input file (``df.attrs["source"]``), when known.
    row, column, value : object
        The first invalid cell (its row label, column and value); ``hint`` says what to do.
    """

    def __init__(self, cells: pd.DataFrame, instrument: str, file: str | None = None):
        self.cells = cells
        self.instrument = instrument
        n = len(cells)
        lines = [
            f"row {r.row}, client {r.client!r}, session {r.session}: {r.problem}"
            for r in cells.head(_MAX_LISTED).itertuples(index=False)
        ]
        more = f"\n  ... and {n - _MAX_LISTED} more" if n > _MAX_LISTED else ""
        where = f"{file}: " if file else ""
        top = cells.iloc[0] if n else None
        super().__init__(
            f"{where}{n} invalid item cell(s) for {instrument} in {cells['row'].nunique()} row(s); "
            "fix them, declare missing codes with missing_codes=, or use "
            "errors='quarantine' (or validate()) to keep those rows with NaN scores:\n  "
            + "\n  ".join(lines)
            + more,
            file=file,
            row=None if top is None else plain(top["row"]),
            column=None if top is None else top["column"],
            value=None if top is None else plain(top["value"]),
            hint="fix the cells, declare missing codes with missing_codes=, or use "
            "errors='quarantine' (or validate())",
        )


def _as_number(code) -> float | None:
    """A missing code as a number (numbers and numeric strings such as "-99"), else None."""
    if isinstance(code, bool):
        return None
    try:
        value = float(code)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else value


def _fmt_scale(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True, eq=False)
class ItemCheck:
    """Result of checking the item cells of one instrument (internal; used by validate).

    Attributes
    ----------
    values : ndarray of float, shape (n_rows, n_items)
        Numeric answers; NaN where missing, where a missing code was given, or where invalid.
    missing : ndarray of bool
        Cells that are genuinely missing (blank or a missing code).
    bad : ndarray of bool
        Invalid cells.
    cells : DataFrame
        One row per invalid cell: ``pos`` (row position), ``column``, ``value``, ``kind``
        (``outside scale``, ``not a whole number``, ``text``) and ``problem`` (a sentence).
    missing_codes : dict of str to int
        Column to the number of cells that held a missing code.
    """

    values: np.ndarray
    missing: np.ndarray
    bad: np.ndarray
    cells: pd.DataFrame
    missing_codes: dict


def check_items(
    df: pd.DataFrame, instrument: Instrument, *, missing_codes: Iterable = ()
) -> ItemCheck:
    """Convert and check the item columns of ``instrument`` (vectorised; loops over columns only).

    A blank cell (NaN, None or a blank string) is missing. A value listed in ``missing_codes``
    (numbers, or strings compared after stripping blanks) is missing and counted. Any other cell
    must be a number within the instrument's scale, and a whole number on an integer scale.
    Each column is screened with a few cheap passes while it is in cache (minimum, maximum,
    whole numbers); cell-level masks and messages are built only for columns that fail.
    """
    require_columns(df, instrument.columns, f"instrument {instrument.id}")
    codes = list(missing_codes) if missing_codes is not None else []
    num_codes = [v for v in map(_as_number, codes) if v is not None]
    str_codes = [str(c).strip() for c in codes]
    n, k = len(df), instrument.n_items
    lo, hi = instrument.scale_min, instrument.scale_max
    inner_codes = [c for c in num_codes if lo <= c <= hi]
    outer_codes = np.array([c for c in num_codes if not lo <= c <= hi])
    scale_txt = f"{_fmt_scale(lo)}-{_fmt_scale(hi)}"
    x = np.empty((n, k), order="F")
    miss = np.empty((n, k), dtype=bool, order="F")
    bad = None
    pieces = []
    code_counts = {}
    scratch = (np.empty(min(n, _CHUNK)), np.empty(min(n, _CHUNK), dtype=bool))
    for j, col in enumerate(instrument.columns):
        raw = df[col]
        xj, mj = x[:, j], miss[:, j]
        text = None
        numeric = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(
            raw.dtype
        )
        if numeric:  # converted chunk by chunk in _screen_column (no full-size temporaries)
            src = (
                raw.to_numpy()  # plain NumPy numbers: cast per chunk (the same C cast)
                if isinstance(raw.dtype, np.dtype) and raw.dtype.kind in "iuf"
                else raw.to_numpy(dtype=float, na_value=np.nan)
            )
            n_coded = 0
        else:
            src = None
            np.copyto(
                xj, pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            )
            stripped = raw.astype("str").str.strip()
            isnull = raw.isna().to_numpy(dtype=bool)
            blank = isnull | (stripped == "").to_numpy(dtype=bool, na_value=False)
            coded = np.isin(xj, inner_codes) if inner_codes else np.zeros(n, dtype=bool)
            if str_codes:
                coded |= stripped.isin(str_codes).to_numpy(dtype=bool, na_value=False) & ~isnull
            text = ~blank & ~coded & np.isnan(xj)
            n_coded = np.count_nonzero(coded)
            if n_coded:
                xj[coded] = np.nan
        check_int = instrument.integer_scale and not pd.api.types.is_integer_dtype(raw.dtype)
        more_coded, out_range, frac = _screen_column(
            xj, mj, src, lo, hi, inner_codes if numeric else [], outer_codes, check_int, scratch
        )
        n_coded += more_coded
        if n_coded:
            code_counts[col] = int(n_coded)
        found = [
            (m, kind)
            for m, kind in (
                (text, "text"),
                (out_range, "outside scale"),
                (frac, "not a whole number"),
            )
            if m is not None and m.any()
        ]
        if not found:
            continue
        if bad is None:
            bad = np.zeros((n, k), dtype=bool, order="F")
        for mask, kind in found:
            bad[:, j] |= mask
            pos = np.flatnonzero(mask)
            if kind == "text":
                vals = raw.iloc[pos].astype(str).to_numpy(dtype=object)
                msg = col + " = '" + vals + "' is text, not a number"
                comma = pd.Series(vals).str.fullmatch(r"\s*-?\d+,\d+\s*").to_numpy(dtype=bool)
                msg = np.where(comma, msg + " (decimal comma?)", msg)
            elif kind == "outside scale":
                msg = col + " = " + _fmt_values(xj[pos]) + f" is outside {scale_txt}"
            else:
                msg = (
                    col
                    + " = "
                    + _fmt_values(xj[pos])
                    + f" is not a whole number (the {scale_txt} scale has whole-number answers)"
                )
            pieces.append(
                pd.DataFrame(
                    {
                        "pos": pos,
                        "column": col,
                        "value": raw.iloc[pos].to_numpy(dtype=object),
                        "kind": kind,
                        "problem": msg,
                    }
                )
            )
        xj[bad[:, j]] = np.nan
        mj &= ~bad[:, j]  # invalid cells are reported, not counted as missing
    if pieces:
        cells = pd.concat(pieces, ignore_index=True).sort_values(["pos"], kind="stable")
        cells = cells.reset_index(drop=True)
    else:
        cells = _empty_cells()
    if bad is None:
        bad = np.zeros((n, k), dtype=bool, order="F")
    return ItemCheck(x, miss, bad, cells, code_counts)


#: Rows per chunk when screening an item column (fits in a core's cache: one pass from memory).
_CHUNK = 1 << 16


def _screen_column(xj, mj, src, lo, hi, inner_codes, outer_codes, check_int, scratch):
    """Screen one item column chunk by chunk: copy `src` into `xj` (when given), turn missing
    codes into NaN, find values outside ``lo..hi`` and fractions, and fill the missing mask `mj`.

    Returns the number of missing-code cells and the boolean masks of out-of-range cells and of
    fractional cells (None when there are none). Every step works on a cache-sized chunk while it
    is in cache; positions are looked up only in chunks whose minimum, maximum or rounding fails.
    """
    n = len(xj)
    n_coded = 0
    out_pos, frac_pos = [], []
    rint, uneven = scratch
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        xc, mc = xj[start:stop], mj[start:stop]
        if src is not None:
            np.copyto(xc, src[start:stop], casting="unsafe")
            coded = None
            for code in inner_codes:  # codes inside the scale need a full comparison
                hit = xc == code
                coded = hit if coded is None else coded | hit
            if coded is not None:
                k = np.count_nonzero(coded)
                if k:
                    xc[coded] = np.nan
                    n_coded += k
        # range screen; codes outside the scale are found among the out-of-range cells only
        below = not np.fmin.reduce(xc) >= lo  # NaN (all missing) counts as "check"
        above = not np.fmax.reduce(xc) <= hi
        opos = None
        if below or above:
            with np.errstate(invalid="ignore"):
                if below and above:
                    opos = np.flatnonzero((xc < lo) | (xc > hi))
                else:
                    opos = np.flatnonzero(xc < lo if below else xc > hi)
            if outer_codes.size and len(opos):
                is_code = np.isin(xc[opos], outer_codes)
                xc[opos[is_code]] = np.nan
                n_coded += int(is_code.sum())
                opos = opos[~is_code]
            if len(opos):
                out_pos.append(start + opos)
            else:
                opos = None
        np.isnan(xc, out=mc)
        n_nan = np.count_nonzero(mc)
        if check_int and n_nan < len(xc):
            r, u = rint[: len(xc)], uneven[: len(xc)]
            np.rint(xc, out=r)
            np.not_equal(r, xc, out=u)  # NaN != NaN: more inequalities than NaNs = fractions
            if np.count_nonzero(u) > n_nan:
                fr = u & ~mc
                if opos is not None:
                    fr[opos] = False
                frac_pos.append(start + np.flatnonzero(fr))
    out_range = frac = None
    if out_pos:
        out_range = np.zeros(n, dtype=bool)
        out_range[np.concatenate(out_pos)] = True
    if frac_pos:
        frac = np.zeros(n, dtype=bool)
        frac[np.concatenate(frac_pos)] = True
    return n_coded, out_range, frac


def _scale_key(instrument: Instrument) -> tuple:
    """What a check of the item cells depends on: the columns and the scale."""
    return (
        instrument.id,
        tuple(instrument.columns),
        float(instrument.scale_min),
        float(instrument.scale_max),
        bool(instrument.integer_scale),
    )


def _checked_block(df: pd.DataFrame, instrument: Instrument, checked, missing_codes):
    """The item block that ``validate`` checked, as a read-only 2-D float array, if `df` still
    holds that very block; else None (the cells must be checked).

    `checked` is the :class:`~alliance_lib.validate.Validated` result (or None). Its checked
    block is used when it was checked for the same scale, `missing_codes` holds no code inside
    the scale (a code there could be any checked answer), and every item column of `df` is the
    block's own memory (same rows, same addresses). The ``Validated`` result keeps a pandas view
    of the block, so pandas copy-on-write copies it before any change in place: a changed
    column holds other memory and is checked again.
    """
    blocks = getattr(checked, "checked_items", None)
    if not blocks or instrument.id not in blocks:
        return None
    if checked._scale_keys.get(instrument.id) != _scale_key(instrument):
        return None
    codes = list(missing_codes) if missing_codes is not None else []
    lo, hi = instrument.scale_min, instrument.scale_max
    if any(lo <= c <= hi for c in map(_as_number, codes) if c is not None):
        return None
    block = blocks[instrument.id]
    return block if _holds_block(df, instrument, block) else None


def _holds_block(df: pd.DataFrame, instrument: Instrument, block: np.ndarray) -> bool:
    """Whether every item column of `df` is the matching column of `block` (same memory)."""
    if block.shape != (len(df), instrument.n_items):
        return False
    for j, col in enumerate(instrument.columns):
        if col not in df.columns:
            return False
        s = df[col]
        if not isinstance(s, pd.Series) or s.dtype != np.float64:  # (duplicate names, dtypes)
            return False
        a = s.to_numpy()  # a view (read-only under copy-on-write), not a copy
        mine = block[:, j]
        if (
            a.__array_interface__["data"][0] != mine.__array_interface__["data"][0]
            or a.strides != mine.strides
        ):
            return False
    return True


def _empty_cells() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pos": np.array([], dtype=np.int64),
            "column": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=object),
            "kind": pd.Series([], dtype=object),
            "problem": pd.Series([], dtype=object),
        }
    )


def reverse_items(values: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Reverse-key the reverse items of an (n_rows, n_items) array: ``min + max - x``.

    Parameters
    ----------
    values : array-like, shape (n_rows, n_items)
        Item answers in item order 1 .. n_items (NaN allowed).
    instrument : Instrument or str

    Returns
    -------
    ndarray
        A new float array; applying the function twice gives the input back.

    Notes
    -----
    :math:`x' = \\min + \\max - x` maps the scale onto itself in reverse order (1-5:
    :math:`6 - x`; 1-7: :math:`8 - x`; 0-4: :math:`4 - x`) and is its own inverse.

    References
    ----------
    Reverse keys per instrument: ``instruments.md`` (project reference note), conventions.

    Examples
    --------
    >>> x = np.array([[1.0, 1, 1, 4, 1, 1, 1, 1, 1, 0, 1, 1]])
    >>> reverse_items(x, "wai-s")[0, [3, 9]]
    array([4., 8.])
    """
    instrument = get_instrument(instrument)
    out = np.array(values, dtype=float, copy=True)
    if instrument.reverse:
        idx = np.asarray(instrument.reverse) - 1
        out[:, idx] = (instrument.scale_min + instrument.scale_max) - out[:, idx]
    return out


def _limits(instrument: Instrument, prorate) -> dict[str, int]:
    scales = instrument.scales
    if prorate is None:
        return dict(instrument.max_missing)
    if isinstance(prorate, bool):
        prorate = 0 if prorate is False else None
        if prorate is None:
            raise DefinitionError(
                "prorate=True is ambiguous; give the number of items allowed missing"
            )
    if isinstance(prorate, Mapping):
        unknown = set(prorate) - set(scales)
        if unknown:
            raise DefinitionError(
                f"prorate names unknown scale(s) {sorted(unknown)}; scales: {list(scales)}"
            )
        lim = dict(instrument.max_missing)
        lim.update({s: int(v) for s, v in prorate.items()})
    else:
        lim = {s: int(prorate) for s in scales}
    for s, v in lim.items():
        if v < 0:
            raise DefinitionError(f"prorate for {s} must be >= 0, got {v}", value=v)
        lim[s] = min(v, len(scales[s]) - 1)
    return lim


def _text_column(n: int, pos: np.ndarray, texts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A pandas ``str`` array of length n: ``texts`` at ``pos``, NaN elsewhere (one arrow take)."""
    index = np.full(n, len(pos), dtype=np.int64)
    index[pos] = np.arange(len(pos))
    base = pa.array([*texts, None], type=pa.large_string())
    taken = base.take(pa.array(index))
    return pd.Series(pd.arrays.ArrowExtensionArray(taken), copy=False).astype("str").array


def _join_by_pos(pieces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Join text pieces per row position with '; ', in the order the pieces are given.

    Returns the sorted distinct positions and the joined text of each. Vectorised: one stable
    sort, then one object-array concatenation per rank within a row (a row rarely has more than
    a few pieces), never a Python call per row.
    """
    pieces = [(p, t) for p, t in pieces if len(p)]
    if not pieces:
        return np.array([], dtype=np.int64), np.array([], dtype=object)
    pos = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in pieces])
    txt = np.concatenate([np.asarray(t, dtype=object) for _, t in pieces])
    if len(pos) > 1 and not np.all(pos[1:] > pos[:-1]):
        order = np.argsort(pos, kind="stable")
        pos, txt = pos[order], txt[order]
    first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
    sizes = np.diff(np.r_[first, len(pos)])
    out = txt[first]
    for k in range(1, int(sizes.max())):
        grp = np.flatnonzero(sizes > k)
        out[grp] = out[grp] + "; " + txt[first[grp] + k]
    return pos[first], out


def score(
    df: pd.DataFrame | Any,
    instrument: str | Instrument,
    *,
    metric: str | None = None,
    missing_codes: Iterable = (),
    errors: str = "raise",
    prorate: int | Mapping[str, int] | None = None,
    client: str = "client_id",
    session: str = "session",
    existing: str = "raise",
    checked: Any = None,
) -> pd.DataFrame:
    """Score one instrument's items into total and subscale scores.

    Parameters
    ----------
    df : DataFrame or Validated
        Long table with the item columns ``{prefix}_1 .. {prefix}_{n_items}``, or the result of
        :func:`~alliance_lib.validate.validate` (its ``.clean`` rows are scored from the item
        blocks it checked, without checking the cells again).
    instrument : str or Instrument
        Instrument id (e.g. ``"wai-sr"``, ``"oq-45.2"``) or definition.
    metric : {'mean', 'sum', 'mean_x10'}, optional
        Override the definition's metric (e.g. ``metric="sum"`` for WAI-SR sums 12-60).
    missing_codes : iterable, optional
        Values that mean "missing" (e.g. ``(-99, 999)``); they become NaN and are counted.
    errors : {'raise', 'quarantine'}
        With ``'raise'``, invalid cells raise :class:`ScoringError`. With ``'quarantine'`` the
        rows are kept with NaN scores and the reason in ``{prefix}_problem``.
    prorate : int or dict, optional
        A *local* override of the missing-item limits: the number of items a scale may miss
        (an int for every scale, or ``{scale: n}``), e.g. ``prorate=1`` for PHQ-9 (the
        developers give no rule). Recorded in ``attrs["scoring"]``. ``None`` uses the definition.
    client, session : str
        Id columns used to name rows in error messages (optional in ``df``).
    existing : {'raise', 'replace', 'keep'}
        What to do when ``df`` already has a column that scoring writes (e.g. REDCap's
        calculated ``phq9_total``): ``'raise'`` (default) names the column; ``'keep'`` keeps
        the old values as ``{column}_input`` next to the new score (compare them); ``'replace'``
        drops the old column. Columns this function wrote before (recorded in
        ``df.attrs["scoring"]``) are replaced without asking.
    checked : Validated, optional
        The ``validate`` result ``df`` came from (``df`` may be ``checked.clean`` or a frame
        built from it, e.g. after scoring another instrument): item columns that are still its
        checked block are not checked again.

    Returns
    -------
    DataFrame
        A copy of ``df`` (same rows, index and columns) plus ``{prefix}_total``,
        ``{prefix}_{subscale}``, ``{prefix}_n_missing``, ``{prefix}_prorated`` and
        ``{prefix}_problem`` (see the module docstring), with provenance in
        ``attrs["scoring"][prefix]``.

    Raises
    ------
    MissingColumnsError
        If item columns are absent (with "did you mean" suggestions).
    ScoringError
        With ``errors="raise"``, listing every invalid cell (the first 20 in the message).
    DataError
        With ``existing="raise"``, if ``df`` already holds a column that scoring would write.

    Notes
    -----
    Reverse-keyed item *i* is scored :math:`x'_i = \\min + \\max - x_i`. For a scale with
    :math:`n` items of which :math:`m` are answered, :math:`\\bar x` is the mean of the answered
    (reversed) items. The scale is scored only if :math:`n - m` is within its limit, as

    * ``mean``: :math:`\\bar x`;
    * ``sum``: :math:`\\sum x'_i` when complete, else the prorated sum :math:`n \\bar x`
      (e.g. CORE-10 with one missing item: 10 x mean of the nine);
    * ``mean_x10``: :math:`10 \\bar x` (CORE clinical score).

    With the ``impute_subscale_mean`` rule (OQ-45.2) each missing item is first replaced by the
    mean of the answered items of its own subscale, rounded to the nearest whole number (halves
    up), and the metric is applied to the completed items. ``total_requires_subscales`` (WAI)
    scores the total only when every subscale is scored; ``subscales_require_total`` (OQ-45.2)
    the other way round. A row with every item missing is "not administered".

    The item cells that ``validate`` checked are handed over explicitly: ``score(validated,
    ...)``, ``validated.score(...)`` or ``score(frame, ..., checked=validated)``. The
    ``Validated`` result carries its checked item blocks (``.checked_items``) and a pandas view of
    them, so pandas copy-on-write keeps them unchanged; ``score`` uses a block directly when the
    frame still holds it (the same memory, rows and columns; ``missing_codes`` without a code
    inside the scale). Any change to the item columns puts other memory in the frame, whose
    cells are then checked as usual; the scores are the same either way.

    Which rules are the manuals' and which are ours (status ``local`` in the definitions):
    manual rules are the OQ-45.2 imputation and its 4-item limit, the CORE-OM limits (CST) and
    the CORE-10 one-item rule. Ours: the item-mean metric of the alliance measures; their
    limits (a 4-item subscale needs 3 items; WAI-SR and WAI-S totals at most 2 of 12 missing;
    WAI at most 1 per subscale and 3 of 36; HAq-II at most 2 of 19); complete items for
    PHQ-9, GAD-7, SRS and ORS (no developer rule; ``prorate=`` relaxes it, locally); and
    rounding OQ-45.2 halves up.

    References
    ----------
    Project reference note ``instruments.md`` (keys and rules, with sources); Lambert et al.,
    OQ-45.2 scoring sheet (subscale-mean imputation); CORE System Trust, "What's in a name (1):
    scoring CORE measures" (clinical score, prorating).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"client_id": ["a", "b"], "session": [1, 1]})
    >>> for i in range(1, 13):
    ...     goal, task = i in (4, 6, 8, 11), i in (1, 2, 10, 12)
    ...     df[f"wai_sr_{i}"] = [4 if goal else 2 if task else 3, None if i == 4 else 3]
    >>> out = score(df, "wai-sr")
    >>> out[["wai_sr_total", "wai_sr_goal", "wai_sr_n_missing", "wai_sr_prorated"]]
       wai_sr_total  wai_sr_goal  wai_sr_n_missing  wai_sr_prorated
    0           3.0          4.0                 0            False
    1           3.0          3.0                 1             True
    >>> score(df, "wai-sr", metric="sum")[["wai_sr_total", "wai_sr_goal"]].to_numpy().tolist()
    [[36.0, 16.0], [36.0, 12.0]]
    """
    if not isinstance(df, pd.DataFrame) and hasattr(df, "checked_items"):  # a Validated result
        checked, df = df, df.clean
    inst = get_instrument(instrument)
    metric = metric or inst.metric
    if metric not in METRICS:
        raise DefinitionError(f"metric must be one of {METRICS}, got {metric!r}", value=metric)
    if errors not in ("raise", "quarantine"):
        raise DefinitionError(
            f"errors must be 'raise' or 'quarantine', got {errors!r}", value=errors
        )
    if existing not in ("raise", "replace", "keep"):
        raise DefinitionError(
            f"existing must be 'raise', 'replace' or 'keep', got {existing!r}", value=existing
        )
    limits = _limits(inst, prorate)
    block = _checked_block(df, inst, checked, missing_codes)
    if block is not None:  # validate() checked these very cells: no second pass, no copy
        check = ItemCheck(block, None, None, _empty_cells(), {})  # masks: found below
    else:
        check = check_items(df, inst, missing_codes=missing_codes)
    clash = _existing_columns(df, inst, existing)
    n = len(df)
    has_bad = len(check.cells) > 0
    bad_row = np.zeros(n, dtype=bool)
    bad_row[check.cells["pos"].to_numpy()] = True
    if errors == "raise" and has_bad:
        cells = _cells_table(df, check.cells, client, session)
        raise ScoringError(cells, inst.id, file=df.attrs.get("source"))

    x = check.values  # a private copy (modified in place below) unless it is read-only
    if x.strides[0] != x.itemsize:  # columns must be contiguous
        x = np.asfortranarray(x)

    def own(x):  # a private copy before any change in place (validate's block is shared)
        if isinstance(x, _Reflected):
            return x.materialise()
        return x if x.flags.writeable else np.array(x, order="F")

    reflect = inst.scale_min + inst.scale_max
    if inst.reverse and not x.flags.writeable:  # validate's shared block: no copy
        x = _Reflected(x, [i - 1 for i in inst.reverse], reflect)
    else:
        for i in inst.reverse:
            np.subtract(reflect, x[:, i - 1], out=x[:, i - 1])
    scales = inst.scales
    names = list(scales)  # "total" first
    sizes = np.array([len(scales[s]) for s in names])
    subs = names[1:]
    # when the subscales partition the items, total = sum of the subscale sums (fewer passes)
    partition = bool(subs) and sorted(i for s in subs for i in scales[s]) == list(inst.items)
    miss_counts = np.zeros((n, len(names)), dtype=np.int16, order="F")
    # validate()'s checked block (no invalid cells, nothing to reverse or impute): sum every row
    # first; NaN propagates, so a row misses an item iff its total is NaN, and only those rows
    # need a missing mask (the same sums in the same order as below)
    lean = (
        check.missing is None
        and not inst.reverse
        and inst.missing_rule != "impute_subscale_mean"
        and sorted(scales["total"]) == list(inst.items)
    )
    if lean:
        sums = np.zeros((n, len(names)), order="F")
        _column_sums(x, scales, names, partition, sums)
        gappy = np.flatnonzero(np.isnan(sums[:, 0]))
        sub = _take_rows(x, gappy)
        sub_miss = np.isnan(sub)
        any_missing = len(gappy) > 0
        if any_missing:
            counts = np.zeros((len(gappy), len(names)), dtype=np.int16, order="F")
            _column_sums(sub_miss, scales, names, partition, counts)
            miss_counts[gappy] = counts
    else:
        # (reflection keeps NaN and finite values as they are: the mask of the unreflected block)
        miss = check.missing if check.missing is not None else np.isnan(_base(x))
        any_missing = bool(miss.any())
        if any_missing:
            _column_sums(np.asfortranarray(miss), scales, names, partition, miss_counts)
    n_missing = miss_counts[:, 0]
    all_ok = not any_missing and not has_bad
    if all_ok:  # nothing missing, nothing invalid: every scale of every row is scored
        not_administered = np.zeros(n, dtype=bool)
        own_ok = ok = np.ones((1, len(names)), dtype=bool)
    else:
        not_administered = (n_missing == inst.n_items) & ~bad_row
        limit = np.array([limits[s] for s in names])
        own_ok = miss_counts <= limit
        ok = own_ok.copy()
        if len(names) > 1 and inst.total_requires_subscales:
            ok[:, 0] &= own_ok[:, 1:].all(axis=1)
        if len(names) > 1 and inst.subscales_require_total:
            ok[:, 1:] &= own_ok[:, [0]]
        ok &= (~bad_row & ~not_administered)[:, None]

    if inst.missing_rule == "impute_subscale_mean" and any_missing:
        # per scale, rows with some (not all) of its items missing, or an invalid cell, can hold
        # a gap to fill; the others have nothing to fill or nothing to fill it from
        gaps = {
            s: np.flatnonzero(((mc > 0) & (mc < sizes[j])) | bad_row)
            for j, (s, mc) in enumerate(zip(names, miss_counts.T, strict=True))
        }
        x = _impute_subscale_means(own(x), inst, gaps)
        answered = np.broadcast_to(sizes, miss_counts.shape)
    else:
        answered = sizes.astype(miss_counts.dtype) - miss_counts  # (small ints: int16)
    if not lean:
        sums = np.zeros((n, len(names)), order="F")
        # rows that hold a NaN (a missing or invalid cell); not-administered rows are not scored
        gappy = None if all_ok else np.flatnonzero(((n_missing > 0) & ~not_administered) | bad_row)
    if lean or (gappy is not None and len(gappy) * 8 < n):  # few: every row, then redo those
        if not lean:  # (lean: summed and gathered above)
            _column_sums(x, scales, names, partition, sums)
            sub, sub_miss = _take_rows(x, gappy), miss[gappy]
        if len(gappy):
            _zero_missing(sub, inst, sub_miss)
            redo = np.zeros((len(gappy), len(names)), order="F")
            _column_sums(sub, scales, names, partition, redo)
            sums[gappy] = redo
    else:
        if not all_ok:  # NaN -> 0 before summing (rows with invalid cells are not scored anyway)
            if isinstance(x, np.ndarray) and x.flags.writeable:
                _zero_missing(x, inst, miss)
            else:  # validate's shared block: zeroed column by column as it is summed
                x = (x if isinstance(x, _Reflected) else _Reflected(x, (), 0.0)).zeroed(inst, miss)
        _column_sums(x, scales, names, partition, sums)
    prorated = np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(len(names)):
            acc, size = sums[:, j], sizes[j]
            if metric == "mean":
                np.divide(acc, answered[:, j], out=acc)
            elif any_missing:  # sum (prorated where items are missing) or mean_x10
                part = answered[:, j] < size
                if metric == "sum":
                    acc[part] = acc[part] / answered[part, j] * size
                else:
                    np.divide(acc, answered[:, j], out=acc)
                    acc *= 10.0
            elif metric == "mean_x10":
                acc *= 10.0 / size
            if not all_ok:
                okj = ok[:, j]
                acc[~okj] = np.nan
                prorated |= okj & (miss_counts[:, j] > 0)

    pieces = []
    if len(check.cells):
        pieces.append(
            (check.cells["pos"].to_numpy(), check.cells["problem"].to_numpy(dtype=object))
        )
    pos = np.flatnonzero(not_administered)
    pieces.append(
        (
            pos,
            np.full(len(pos), f"not administered (all {inst.n_items} items missing)", dtype=object),
        )
    )
    live = ~bad_row & ~not_administered
    for j, s in enumerate([] if all_ok else names):  # too many missing items of its own
        pos = np.flatnonzero(live & ~own_ok[:, j])
        if len(pos):
            txt = (
                f"{inst.prefix}_{s} not scored: "
                + miss_counts[pos, j].astype(str).astype(object)
                + f" of {len(scales[s])} items missing (at most {limits[s]} allowed)"
            )
            pieces.append((pos, txt))
    for j, s in enumerate([] if all_ok else names):  # depends on another scale not scored
        pos = np.flatnonzero(live & own_ok[:, j] & ~ok[:, j])
        if len(pos):
            need = "every subscale scored" if s == "total" else f"{inst.prefix}_total scored"
            txt = f"{inst.prefix}_{s} not scored: needs {need}"
            pieces.append((pos, np.full(len(pos), txt, dtype=object)))
    problem = _text_column(n, *_join_by_pos(pieces))

    # the scores as one float block (a view of `sums`, not a copy), then the other columns
    scores = pd.DataFrame(
        sums, columns=[f"{inst.prefix}_{s}" for s in names], index=df.index, copy=False
    )
    extra = {
        f"{inst.prefix}_n_missing": n_missing.astype(np.int64),
        f"{inst.prefix}_prorated": prorated,
        f"{inst.prefix}_problem": problem,
    }
    added = pd.concat([scores, pd.DataFrame(extra, index=df.index)], axis=1)
    base = df.drop(columns=[c for c in added.columns if c in df.columns])
    if existing == "keep" and clash:  # the old values next to the new scores, to compare
        old = df[clash].rename(columns={c: f"{c}_input" for c in clash})
        base = pd.concat([base.drop(columns=[c for c in old.columns if c in base]), old], axis=1)
    out = pd.concat([base, added], axis=1)
    out.attrs = {k: v for k, v in df.attrs.items()}
    out.attrs["scoring"] = {
        **df.attrs.get("scoring", {}),
        inst.prefix: _provenance(
            inst, metric, limits, prorate, np.broadcast_to(ok, (n, len(names))), prorated, check
        ),
    }
    return out


def _output_columns(inst: Instrument) -> list[str]:
    """The columns :func:`score` writes for an instrument."""
    return [f"{inst.prefix}_{s}" for s in inst.scales] + [
        f"{inst.prefix}_{x}" for x in ("n_missing", "prorated", "problem")
    ]


def _existing_columns(df: pd.DataFrame, inst: Instrument, existing: str) -> list[str]:
    """Columns of `df` that scoring would overwrite and that it did not write itself (raised
    with ``existing="raise"``)."""
    ours = inst.prefix in df.attrs.get("scoring", {})  # an earlier score() of ours: replaced
    have = set(df.columns)
    clash = [] if ours else [c for c in _output_columns(inst) if c in have]
    if clash and existing == "raise":
        raise DataError(
            f"score({inst.id}): the data already have column(s) {', '.join(clash)} (e.g. a "
            "total calculated by REDCap or another program), which scoring would overwrite. "
            f"Pass existing='keep' to keep them as {clash[0]}_input next to the new scores, "
            "existing='replace' to drop them, or rename them first.",
            file=df.attrs.get("source"),
            column=clash[0],
            hint="existing='keep' (old values as {column}_input) or existing='replace'",
        )
    return clash


class _Reflected:
    """A read-only item block seen column by column as the sums read it, ``x[:, j]``: the
    reverse-keyed columns reflected (``reflect - x``) and, after :meth:`zeroed`, the missing
    cells set to 0 (:func:`_zero_missing`'s rule). The same values, from the same arithmetic,
    as changing a private copy of the block in place, without the copy (750 MB for the OQ-45.2
    at 2 million rows)."""

    def __init__(self, x: np.ndarray, reversed_cols, reflect: float, zero=None):
        self.base, self.reflect = x, reflect
        self.reversed = set(reversed_cols)
        self.zero = zero  # None, or (instrument, missing mask)
        self.shape, self.dtype = x.shape, x.dtype

    def zeroed(self, inst: Instrument, miss: np.ndarray) -> _Reflected:
        return _Reflected(self.base, self.reversed, self.reflect, zero=(inst, miss))

    def __getitem__(self, key):
        rows, j = key
        if rows != slice(None) or not isinstance(j, int | np.integer):
            raise TypeError("_Reflected supports x[:, j] only")
        j = int(j)
        col = self.base[:, j]
        if j in self.reversed:
            col = np.subtract(self.reflect, col)
        if self.zero is not None:
            inst, miss = self.zero
            col = col.reshape(-1, 1) if col.flags.writeable else col.reshape(-1, 1).copy()
            _zero_missing(col, inst, miss[:, [j]])
            col = col[:, 0]
        return col

    def materialise(self) -> np.ndarray:
        """A private, reflected (and zeroed) column-major copy."""
        out = np.array(self.base, order="F")
        for j in self.reversed:
            np.subtract(self.reflect, out[:, j], out=out[:, j])
        if self.zero is not None:
            _zero_missing(out, *self.zero)
        return out


def _base(x) -> np.ndarray:
    return x.base if isinstance(x, _Reflected) else x


def _take_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a column-major 2-D array, gathered column by column (a new column-major array)."""
    out = np.empty((len(rows), x.shape[1]), order="F")
    for j in range(x.shape[1]):
        np.take(x[:, j], rows, out=out[:, j])
    return out


def _zero_missing(x: np.ndarray, inst: Instrument, miss: np.ndarray) -> None:
    """NaN -> 0 in place before summing: every NaN (``prorate``: the missing cells; the other
    NaNs are invalid cells, whose rows are not scored)."""
    if min(inst.scale_min, inst.scale_max) >= 0:  # valid answers are >= 0: one fmax pass
        np.fmax(x, 0.0, out=x)  # (also zeroes invalid cells, whose rows are not scored)
    else:
        np.copyto(x, 0.0, where=np.isnan(x) if inst.missing_rule != "prorate" else miss)


def _column_sums(values, scales, names, partition, out) -> None:
    """out[:, j] = sum of the item columns of scale j (column adds: cache-friendly, no BLAS)."""
    for j, s in enumerate(names):
        if j == 0 and partition:
            continue
        acc = out[:, j]
        for i in scales[s]:
            np.add(acc, values[:, i - 1], out=acc, casting="unsafe")
    if partition:
        total = out[:, 0]
        for j in range(1, len(names)):
            np.add(total, out[:, j], out=total)


def _impute_subscale_means(
    x: np.ndarray, inst: Instrument, rows: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Fill each missing item with the rounded (halves up) mean of its own subscale's answers.

    Works on scored (already reversed) values, in place, and returns `x`; every fill is computed
    from the answered items before any imputation. `rows` (scale name -> row positions) limits
    the work on a scale to the rows that can hold a gap of it (default: every row); the other
    rows are left as they are.
    """
    owner: dict[int, str] = {}
    for s, items in inst.subscales.items():
        for i in items:
            owner.setdefault(i, s)
    groups = dict(inst.subscales)
    orphans = [i for i in inst.items if i not in owner]
    if orphans:  # items outside every subscale are imputed from all items
        groups = {**groups, "total": inst.items}
        owner.update({i: "total" for i in orphans})
    everyone = np.arange(x.shape[0])
    fills = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for s, items in groups.items():
            targets = [i for i in items if owner[i] == s]
            where = everyone if rows is None else np.asarray(rows[s])
            if not targets or len(where) == 0:
                continue
            block = np.empty((len(where), len(items)), order="F")
            for j, i in enumerate(items):  # column gathers (x is column-major)
                np.take(x[:, i - 1], where, out=block[:, j])
            nan = np.isnan(block)
            block[nan] = 0.0  # nanmean: sum of the answers / their number (NaN if none)
            mean = block.sum(axis=1) / (len(items) - nan.sum(axis=1))
            fills.append(
                (targets, where, np.floor(mean + 0.5), {i: nan[:, j] for j, i in enumerate(items)})
            )
    for targets, where, fill, gaps in fills:
        for i in targets:
            gap = gaps[i]
            x[where[gap], i - 1] = fill[gap]
    return x


def _cells_table(df: pd.DataFrame, cells: pd.DataFrame, client: str, session: str) -> pd.DataFrame:
    pos = cells["pos"].to_numpy()

    def get(c):
        if c in df.columns:
            return df[c].iloc[pos].to_numpy(dtype=object)
        return np.full(len(pos), None, dtype=object)

    return pd.DataFrame(
        {
            "row": df.index[pos].to_numpy(dtype=object),
            "client": get(client),
            "session": get(session),
            "column": cells["column"].to_numpy(dtype=object),
            "value": cells["value"].to_numpy(dtype=object),
            "problem": cells["problem"].to_numpy(dtype=object),
        }
    )


def _provenance(inst, metric, limits, prorate, ok, prorated, check) -> dict:
    uncertain = {}
    single = {}
    any_prorated = bool(prorated.any())
    for s in inst.scales:
        col = f"{inst.prefix}_{s}"
        facts = inst.facts_for(s, prorated=any_prorated)
        unc = [f for f in facts if inst.facts[f].status == "uncertain"]
        one = [f for f in facts if inst.facts[f].status == "single_source"]
        if unc:
            uncertain[col] = unc
        if one:
            single[col] = one
    local = [
        f
        for f in ("metric", "missing_rule")
        if inst.facts.get(f) and inst.facts[f].status == "local"
    ]
    if metric != inst.metric:
        local.append(f"metric={metric!r} (overrides the definition's {inst.metric!r})")
    if prorate is not None:
        local.append(f"prorate={prorate!r} (local missing-item limits {limits})")
    return {
        "instrument": inst.id,
        "metric": metric,
        "max_missing": dict(limits),
        "local_rules": local,
        "uncertain": uncertain,
        "single_source": single,
        "n_scored": {f"{inst.prefix}_{s}": int(ok[:, j].sum()) for j, s in enumerate(inst.scales)},
        "n_rows_invalid": int(check.cells["pos"].nunique()),
        "missing_codes": dict(check.missing_codes),
    }
