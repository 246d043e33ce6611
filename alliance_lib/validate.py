"""Row-level validation: clean rows and quarantined rows with reasons.

:func:`validate` splits a long table into rows that can be analysed and rows that cannot, and
says why, in sentences that name the column and the value (``"wai_sr_3 = 7 is outside 1-5"``).
Nothing is lost: every input row ends up in exactly one of ``.clean`` and ``.quarantined``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from alliance_lib.frame import factorize_ids, require_columns, text_ids
from alliance_lib.frame import factorize_text as _factorize_text
from alliance_lib.frame import number_text as _fmt_values
from alliance_lib.registry import Instrument, get_instrument
from alliance_lib.scoring import _holds_block, _join_by_pos, _scale_key, check_items, score

__all__ = ["RATERS", "Validated", "validate"]

#: Allowed values of the rater column (a missing rater means ``client``).
RATERS = ("client", "therapist", "observer")


@dataclass(frozen=True, eq=False)
class Validated:
    """Result of :func:`validate`.

    Attributes
    ----------
    clean : DataFrame
        Rows without problems, same index and columns as the input; item columns are numeric
        (float) with missing codes turned into NaN, and the session column is int64.
    quarantined : DataFrame
        The other rows, with their original values, plus a ``reason`` column (every problem of
        the row, joined by ``"; "``). The index keeps the input row labels (``row``).
    summary : DataFrame
        One line per problem kind and column: ``problem``, ``column``, ``n_rows``, ``n_cells``
        and ``action`` (``quarantined`` or ``set to missing``, the latter for missing codes).
    missing_codes : Series
        Number of cells per item column that held a missing code (turned into NaN).
    n_in, n_clean, n_quarantined : int
        Row counts; ``n_clean + n_quarantined == n_in`` always.
    instruments : tuple of str
        Instrument ids checked.
    source : str or None
        The input file, if known.
    checked_items : mapping of str to ndarray
        Instrument id -> the checked item block of ``clean`` (read-only float array, shape
        ``(n_clean, n_items)``; the item columns of ``clean`` are views of it). Handed to
        :func:`~alliance_lib.scoring.score` explicitly: ``score(validated, instrument)`` or
        ``validated.score(instrument)`` does not check these cells again.
    """

    clean: pd.DataFrame
    quarantined: pd.DataFrame
    summary: pd.DataFrame
    missing_codes: pd.Series
    n_in: int
    n_clean: int
    n_quarantined: int
    instruments: tuple[str, ...] = ()
    source: str | None = None
    checked_items: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    #: instrument id -> the scale the block was checked for (columns, min, max, integer)
    _scale_keys: Mapping[str, tuple] = field(default_factory=dict, repr=False, compare=False)
    #: instrument id -> the definition validated (custom folders need no second look-up)
    _definitions: Mapping[str, Instrument] = field(default_factory=dict, repr=False, compare=False)
    #: item columns of `clean` (a pandas view): while it lives, pandas copy-on-write copies the
    #: checked blocks before any change in place of `clean`, so they stay as checked
    _witness: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.n_clean + self.n_quarantined != self.n_in:  # pragma: no cover - invariant
            raise RuntimeError(
                f"rows lost in validation: {self.n_clean} clean + {self.n_quarantined} "
                f"quarantined != {self.n_in} in"
            )

    def __getstate__(self) -> dict:
        # definitions hold read-only mappings that do not pickle; ids are looked up again
        return {**self.__dict__, "_definitions": {}}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def score(self, *instruments: str | Instrument, **options: Any) -> pd.DataFrame:
        """Score the clean rows: every instrument given (default: every validated one), in turn,
        from the checked item blocks (``options`` go to :func:`~alliance_lib.scoring.score`).

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"client_id": ["a", "b"], "session": [1, 1]})
        >>> for i in range(1, 13):
        ...     df[f"wai_sr_{i}"] = [4.0, -99 if i == 1 else 2.0]
        >>> validate(df, "wai-sr", missing_codes=[-99]).score()["wai_sr_total"].tolist()
        [4.0, 2.0]
        """
        out = self.clean
        for inst in instruments or tuple(self._definitions.values()) or self.instruments:
            if isinstance(inst, str) and inst in self._definitions:
                inst = self._definitions[inst]
            out = score(out, inst, checked=self, **options)
        return out

    def __repr__(self) -> str:
        src = f" from {self.source}" if self.source else ""
        return (
            f"Validated({self.n_in} rows{src}: {self.n_clean} clean, "
            f"{self.n_quarantined} quarantined; instruments {list(self.instruments)})"
        )


class _Problems:
    """Collects (row positions, reason text) pieces and summary lines."""

    def __init__(self, n: int):
        self.n = n
        self.pieces: list[tuple[np.ndarray, np.ndarray]] = []
        self.lines: list[dict] = []
        self.bad = np.zeros(n, dtype=bool)

    def add(self, mask_or_pos, text, problem: str, column: str) -> None:
        pos = np.flatnonzero(mask_or_pos) if np.asarray(mask_or_pos).dtype == bool else mask_or_pos
        if len(pos) == 0:
            return
        if isinstance(text, str):
            text = np.full(len(pos), text, dtype=object)
        self.pieces.append((pos, np.asarray(text, dtype=object)))
        self.bad[pos] = True
        self.lines.append(
            {
                "problem": problem,
                "column": column,
                "n_rows": len(np.unique(pos)),
                "n_cells": len(pos),
                "action": "quarantined",
            }
        )


def _as_text(raw: pd.Series) -> pd.Series:
    return raw.astype("str")


def validate(
    df: pd.DataFrame,
    instruments: str | Instrument | Sequence[str | Instrument],
    *,
    client: str = "client_id",
    session: str = "session",
    rater: str | None = "rater",
    missing_codes: Iterable = (),
    source: str | None = None,
) -> Validated:
    """Split a long table into clean rows and quarantined rows with reasons.

    Parameters
    ----------
    df : DataFrame
        Long table (one row per client x session x rater), e.g. from ``read_table``.
    instruments : str, Instrument or list of these
        Instruments whose item columns must be present and are checked.
    client, session : str
        Id columns; both must be present.
    rater : str or None
        Rater column; optional in ``df`` (absent or blank means ``client``).
    missing_codes : iterable, optional
        Item values that mean "missing" (e.g. ``(-99, 999)``): set to NaN in ``.clean``,
        counted in ``.missing_codes`` and ``.summary``, not a reason to quarantine.
    source : str, optional
        The input file, for the record (default ``df.attrs["source"]``).

    Returns
    -------
    Validated
        ``.clean``, ``.quarantined`` (with ``reason``), ``.summary``, ``.missing_codes`` and
        the row counts. In ``.clean`` the client ids are text: a number typed as ``101`` or
        ``101.0`` is ``"101"``, surrounding blanks are removed and leading zeros of text ids stay
        (``.quarantined`` keeps the values as they were).

    Raises
    ------
    MissingColumnsError
        If the client or session column or any item column is absent; the message suggests
        near misses ("did you mean ...").

    Notes
    -----
    A row is quarantined if its client id is missing or blank; its session is missing, text,
    negative or not a whole number; its rater is not one of ``client``, ``therapist``,
    ``observer``; an item cell is outside the scale, not a whole number on an integer scale, or
    text (e.g. ``"n/a"``, ``"—"``, a decimal comma); or it shares client x session x rater with
    another row (*all* copies are quarantined: we cannot tell which one is right). A row whose
    items of an instrument are all missing is "not administered", which is not an error.
    Invariant: ``n_clean + n_quarantined == n_in``.

    The item columns of ``.clean`` are the checked float blocks, which the result carries
    (``.checked_items``) with a pandas view of them, so that pandas copy-on-write copies a block
    before any change in place; ``score(result, ...)`` (or ``result.score()``) uses the untouched
    blocks without checking the cells again (a changed column is checked again). Nothing is
    remembered outside the result.

    References
    ----------
    Data contract: the project's DESIGN.md (canonical long table); item rules from the
    instrument definitions (``alliance_lib/instruments/*.yaml``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"client_id": ["01", "01", "02", None], "session": [1, 1, 1, 2]})
    >>> for i in range(1, 13):
    ...     df[f"wai_sr_{i}"] = [4, 4, 7 if i == 3 else -99, 3]
    >>> df.index = pd.RangeIndex(2, 6, name="row")
    >>> v = validate(df, "wai-sr", missing_codes=[-99])
    >>> v
    Validated(4 rows: 0 clean, 4 quarantined; instruments ['wai-sr'])
    >>> print("\\n".join(v.quarantined["reason"]))
    duplicate client_id x session x rater ('01', 1, 'client'): 2 rows (rows 2, 3)
    duplicate client_id x session x rater ('01', 1, 'client'): 2 rows (rows 2, 3)
    wai_sr_3 = 7 is outside 1-5
    client_id is missing
    >>> int(v.missing_codes.sum())
    11
    """
    if isinstance(instruments, (str, Instrument)):
        instruments = [instruments]
    insts = [get_instrument(i) for i in instruments]
    source = source if source is not None else df.attrs.get("source")
    require_columns(df, [client, session], "id columns")
    needed = [c for inst in insts for c in inst.columns]
    require_columns(df, needed, "instrument item columns (" + ", ".join(i.id for i in insts) + ")")

    n = len(df)
    probs = _Problems(n)

    # client ids (factorised first: text work happens on the distinct values only)
    cl_codes, cl_uniq, cl_canonical = factorize_ids(df[client])
    cl_missing = cl_codes < 0
    probs.add(cl_missing, f"{client} is missing", "missing client id", client)

    # sessions
    se_raw = df[session]
    whole = isinstance(se_raw.dtype, np.dtype) and se_raw.dtype.kind in "iu"  # plain integers
    if whole:  # never missing, text, infinite or fractional: only the sign needs a look
        se_num = se_raw.to_numpy().astype(float)
        se_text = se_blank = np.zeros(n, dtype=bool)
    elif pd.api.types.is_numeric_dtype(se_raw.dtype) and not pd.api.types.is_bool_dtype(
        se_raw.dtype
    ):
        se_num = se_raw.to_numpy(dtype=float, na_value=np.nan)
        se_text = np.zeros(n, dtype=bool)
        se_blank = np.isnan(se_num)
    else:
        se_num = pd.to_numeric(se_raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        s_txt = _as_text(se_raw).str.strip()
        se_blank = (se_raw.isna() | (s_txt == "")).to_numpy(dtype=bool)
        se_text = ~se_blank & np.isnan(se_num)
        pos = np.flatnonzero(se_text)
        probs.add(
            pos,
            f"{session} = '" + s_txt.iloc[pos].to_numpy(dtype=object) + "' is not a number",
            "session not a number",
            session,
        )
    probs.add(se_blank, f"{session} is missing", "missing session", session)
    if whole:
        finite, neg, frac = np.ones(n, dtype=bool), se_num < 0, np.zeros(n, dtype=bool)
    else:
        finite = np.isfinite(se_num)
        pos = np.flatnonzero(~finite & ~np.isnan(se_num))
        probs.add(
            pos,
            f"{session} = " + _fmt_values(se_num[pos]) + " is not a number",
            "session not a number",
            session,
        )
        with np.errstate(invalid="ignore"):
            neg = finite & (se_num < 0)
            frac = finite & ~neg & (se_num != np.floor(se_num))
    for mask, what, label in (
        (neg, "negative", "negative session"),
        (frac, "not a whole number", "non-integer session"),
    ):
        pos = np.flatnonzero(mask)
        probs.add(pos, f"{session} = " + _fmt_values(se_num[pos]) + f" is {what}", label, session)
    se_ok = finite & ~neg & ~frac

    # raters: blank means client; codes index RATERS
    ra_codes = None
    ra_bad = np.zeros(n, dtype=bool)
    if rater is not None and rater in df.columns:
        ra_codes = _exact_raters(df[rater])
        if ra_codes is None:
            codes, uniq = _factorize_text(df[rater], lower=True)
            known = pd.Index(RATERS).get_indexer(uniq)
            ra_codes = (
                np.where(codes < 0, 0, known[np.maximum(codes, 0)]) if len(uniq) else codes * 0
            )
        ra_bad = ra_codes < 0
        pos = np.flatnonzero(ra_bad)
        probs.add(
            pos,
            f"{rater} = '"
            + _as_text(df[rater].iloc[pos]).to_numpy(dtype=object)
            + "' is not one of "
            + ", ".join(RATERS),
            "unknown rater",
            rater,
        )

    # item cells
    checks = {}
    code_counts: dict[str, int] = {}
    for inst in insts:
        chk = check_items(df, inst, missing_codes=missing_codes)
        checks[inst.prefix] = (inst, chk)
        code_counts.update(chk.missing_codes)
        cells = chk.cells
        if len(cells):
            for (kind, col), grp in cells.groupby(["kind", "column"], sort=False):
                probs.add(
                    grp["pos"].to_numpy(),
                    grp["problem"].to_numpy(dtype=object),
                    {"text": "text in item column", "outside scale": "value outside scale"}.get(
                        kind, "non-integer on integer scale"
                    ),
                    col,
                )

    # duplicates of client x session x rater (among rows whose keys are valid), by one int64 key
    keyed = ~cl_missing & se_ok & ~ra_bad
    if keyed.any():
        every = bool(keyed.all())  # (usual) no gathers needed
        kpos = np.arange(n) if every else np.flatnonzero(keyed)

        def pick(a):
            return a if every else a[kpos]

        s_int = pick(se_num).astype(np.int64)
        s_max = int(s_int.max()) + 1
        n_keys = (int(cl_codes.max()) + 1) * s_max * len(RATERS)
        if n_keys >= 2**62:  # a packed key could overflow: hash the columns instead
            cols = {"c": pick(cl_codes), "s": s_int}
            if ra_codes is not None:
                cols["r"] = pick(ra_codes)
            dup = pd.DataFrame(cols).duplicated(keep=False).to_numpy()
        else:
            key = pick(cl_codes) * s_max
            key += s_int
            if ra_codes is not None:
                key *= len(RATERS)
                key += pick(ra_codes)
            if int(key.max()) < 8 * len(key) + 1024:  # dense keys: counting beats hashing
                dup = np.bincount(key)[key] > 1
            else:
                dup = pd.Series(key).duplicated(keep=False).to_numpy()
        if dup.any():
            dpos = kpos[dup]
            _add_duplicates(
                probs, df, dpos, cl_uniq[cl_codes[dpos]], se_num, ra_codes, client, session, rater
            )

    qpos, reason = _join_by_pos(probs.pieces)  # sorted positions of the quarantined rows
    bad = probs.bad
    good = ~bad

    # client ids in .clean are text (DESIGN: leading zeros kept, 101.0 is "101", " 01" is "01")
    ids = None if cl_canonical else (client, cl_codes, cl_uniq)
    clean, witness, blocks = _clean_frame(df, good, checks, session, se_raw, se_num, ids)

    quarantined = df.iloc[qpos].assign(reason=pd.array(reason, dtype="str"))
    quarantined.attrs = dict(df.attrs)

    lines = list(probs.lines)
    for col, k in code_counts.items():
        lines.append(
            {
                "problem": "missing code",
                "column": col,
                "n_rows": k,
                "n_cells": k,
                "action": "set to missing",
            }
        )
    summary = pd.DataFrame(lines, columns=["problem", "column", "n_rows", "n_cells", "action"])
    summary = summary.astype({"n_rows": np.int64, "n_cells": np.int64})
    summary = summary.sort_values(["action", "n_rows"], ascending=[True, False], kind="stable")
    summary = summary.reset_index(drop=True)
    missing = pd.Series(code_counts, dtype=np.int64, name="n_cells")
    missing.index.name = "column"

    return Validated(
        clean=clean,
        quarantined=quarantined,
        summary=summary,
        missing_codes=missing,
        n_in=n,
        n_clean=len(clean),
        n_quarantined=len(quarantined),
        instruments=tuple(i.id for i in insts),
        source=None if source is None else str(source),
        checked_items=blocks,
        _scale_keys={i.id: _scale_key(i) for i in insts if i.id in blocks},
        _definitions={i.id: i for i in insts},
        _witness=witness,
    )


#: Up to this many runs of clean rows, rows are dropped by copying runs (memmove-fast slices)
#: instead of gathering every kept row.
_FEW_RUNS = 256


def _clean_frame(
    df, good, checks, session, se_raw, se_num, ids=None
) -> tuple[pd.DataFrame, Any, dict]:
    """The clean rows: item columns from the checked float blocks (missing codes -> NaN), the
    session as int64, the client ids as text (``ids``: column, codes and levels, when the column
    is not that text already), every other column as it was; the input's column order and index.

    Also returns the witness of the checked blocks (a view of the item columns of the clean
    frame, or None; while it lives, pandas copies a block before changing it in place) and the
    blocks the clean frame holds (instrument id -> read-only 2-D array), for :func:`score`."""
    some_bad = not good.all()
    keep = np.flatnonzero(good) if some_bad else None
    runs = None
    if some_bad:  # the clean rows as runs [start, stop) between quarantined rows
        cut = np.flatnonzero(~good)
        starts, stops = np.r_[0, cut + 1], np.r_[cut, len(good)]
        runs = [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a]
        if len(runs) > _FEW_RUNS or not runs:
            runs = None
    blocks = []
    own = []
    replaced = set()
    for inst, chk in checks.values():
        cols = [c for c in inst.columns if c not in replaced]
        idx = [inst.columns.index(c) for c in cols]
        values = chk.values if len(idx) == inst.n_items else chk.values[:, idx]
        if some_bad and runs is not None:  # compact our own array in place, run by run
            for j in range(len(idx)):
                col, at = values[:, j], 0
                for a, b in runs:
                    col[at : at + b - a] = col[a:b]
                    at += b - a
            values = values[: len(keep)]
        elif some_bad:  # column by column, so each column stays contiguous (fast to read later)
            kept = np.empty((len(keep), len(idx)), order="F")
            for j in range(len(idx)):
                np.take(values[:, j], keep, out=kept[:, j], mode="clip")  # keep is in range
            values = kept
        blocks.append(pd.DataFrame(values, columns=cols, copy=False))
        if len(idx) == inst.n_items:  # the instrument's own whole block: can be marked
            own.append((inst, values))
        replaced.update(cols)
    if se_raw.dtype != np.int64:
        sessions = se_num[keep] if some_bad else se_num
        blocks.append(pd.DataFrame({session: sessions.astype(np.int64)}))
        replaced.add(session)
    if ids is not None and ids[0] not in replaced:
        col, codes, levels = ids
        text = text_ids(codes[keep] if some_bad else codes, levels)
        blocks.append(pd.DataFrame({col: text}))
        replaced.add(col)
    rest = df[[c for c in df.columns if c not in replaced]]
    if some_bad and runs is not None and len(rest.columns):
        rest = pd.concat([rest.iloc[a:b] for a, b in runs])
        rest.index = df.index[keep]
    elif some_bad:
        rest = rest.iloc[keep]
    for block in blocks:
        block.index = rest.index
    clean = pd.concat([rest, *blocks], axis=1)[list(df.columns)]
    clean.attrs = dict(df.attrs)
    witness = None
    held = {}
    if own:
        witness = clean[[c for inst, _ in own for c in inst.columns]]
        for inst, values in own:
            if _holds_block(clean, inst, values):
                view = values.view()
                view.flags.writeable = False
                held[inst.id] = view
        witness = witness if held else None
    return clean, witness, held


def _exact_raters(raw: pd.Series) -> np.ndarray | None:
    """Rater codes (positions in RATERS; missing -> 0, client) when every value is missing or
    exactly one of RATERS, as usual: one Arrow look-up instead of factorising the text. None
    otherwise (other text, or not Arrow text), for the general path."""
    if not isinstance(raw.array, pd.arrays.ArrowStringArray):
        return None
    values = raw.array.__arrow_array__()
    found = pc.index_in(values, value_set=pa.array(RATERS, type=values.type))
    if found.null_count != values.null_count:  # some value is not exactly a rater
        return None
    return np.asarray(pc.fill_null(found, 0), dtype=np.int64)


def _add_duplicates(probs, df, dpos, clients, se_num, ra_codes, client, session, rater) -> None:
    """Quarantine every copy of a duplicated key, naming the key and the rows that share it."""
    if ra_codes is not None:
        r = np.asarray(RATERS, dtype=object)[ra_codes[dpos]]
    else:
        r = np.full(len(dpos), "client", dtype=object)
    sub = pd.DataFrame(
        {
            "c": clients,
            "s": se_num[dpos].astype(np.int64),
            "r": r,
            "row": df.index[dpos].astype(str).to_numpy(dtype=object),
        }
    )
    grp = sub.groupby(["c", "s", "r"], sort=False)["row"]
    rows = grp.transform(", ".join).to_numpy(dtype=object)
    size = grp.transform("size").to_numpy()
    keyname = f"{client} x {session} x {rater or 'rater'}"
    text = (
        f"duplicate {keyname} ('"
        + sub["c"].to_numpy(dtype=object)
        + "', "
        + sub["s"].astype(str).to_numpy(dtype=object)
        + ", '"
        + sub["r"].to_numpy(dtype=object)
        + "'): "
        + size.astype(str).astype(object)
        + " rows (rows "
        + rows
        + ")"
    )
    probs.add(dpos, text, f"duplicate {keyname}", f"{client}, {session}, {rater or 'rater'}")
