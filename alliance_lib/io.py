"""Reading raw data files (csv, tsv, xlsx, sav, parquet) into the canonical long table.

`read_table` is the one entry point for raw study files. It never guesses silently: everything it
decided on the user's behalf (encoding, delimiter, decimal mark, skipped title rows, dropped blank
lines) is written to ``df.attrs``, and everything it cannot decide is a `ReadError` that names the
file, the row, the column and the value, and says what to do.

The index of every table read here is named ``row`` and holds the 1-based row of the file (CSV/TSV:
physical line, header included, so the first data row under a one-line header is 2; XLSX: the Excel
row number; SAV and Parquet: the case number), so later messages can point into the file after any
filtering.
"""

from __future__ import annotations

import difflib
import io as _stdio
import queue
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DataError

__all__ = [
    "Codebook",
    "ReadError",
    "ReshapeError",
    "apply_user_missing",
    "parquet_columns",
    "read_sav",
    "read_table",
    "to_long",
    "to_wide",
]

#: Delimiters tried, in order of preference on a tie, when ``delimiter=None``.
DELIMITERS = (",", ";", "\t", "|")
#: Cell texts read as missing by default: empty cells and what statistical software writes for
#: missing (R's ``NA``, pandas' ``NaN``). Texts humans type ("n/a", "-", "—", "?") are kept as text
#: so that validation reports them instead of hiding them.
DEFAULT_NA = ("", "NA", "NaN")

_EXTENSIONS = {
    ".csv": "delimited",
    ".tsv": "delimited",
    ".tab": "delimited",
    ".txt": "delimited",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".sav": "sav",
    ".zsav": "sav",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_UNSUPPORTED_HINTS = {
    ".xls": "legacy .xls workbooks are not supported: open the file in Excel or LibreOffice and "
    "save it as .xlsx (or export CSV)",
    ".ods": "save the spreadsheet as .xlsx or export CSV",
    ".dta": "export the Stata file as CSV, or read it with pandas.read_stata and pass the frame on",
    ".rds": "in R, write it with write.csv(x, 'file.csv', row.names = FALSE) or arrow::write_parquet",
    ".json": "convert it to CSV or Parquet",
}
_SIGNATURES = {
    b"PK\x03\x04": "a zip archive (an .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "a legacy Office file (an .xls workbook?)",
    b"$FL2": "an SPSS .sav file",
    b"$FL3": "an SPSS .zsav file",
    b"PAR1": "a Parquet file",
    b"%PDF": "a PDF document",
}
_QUOTED = re.compile(r'"[^"]*"')
_DECIMAL_COMMA = r"^[+-]?\d*,\d+$"
_DECIMAL_POINT = r"^[+-]?\d*\.\d+$"
_MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf]|â€")


class ReadError(DataError):
    """A file that cannot be read as a table, with the place and the fix.

    Parameters
    ----------
    message : str
        What is wrong.
    file : str or Path
        The file.
    row, column, value : optional
        Where it is wrong (1-based file row; column name; offending value).
    hint : str, optional
        What to do about it.
    problems : sequence of dict, optional
        All offending places when there are several (each with ``row`` and ``detail``).

    Examples
    --------
    >>> err = ReadError("duplicate column name", file="w1.csv", row=1, column="wai_sr_3",
    ...                 hint="rename one of them")
    >>> print(err)
    w1.csv, row 1, column 'wai_sr_3': duplicate column name. What to do: rename one of them.
    >>> isinstance(err, ValueError), err.row
    (True, 1)
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
        hint: str | None = None,
        problems: Sequence[dict] = (),
    ) -> None:
        self.message = message
        self.file = str(file)
        self.row = row
        self.column = column
        self.value = value
        self.hint = hint
        self.problems = list(problems)
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        if value is not None:
            where.append(f"value {value!r}")
        text = f"{', '.join(where)}: {message}"
        if hint:
            text += f". What to do: {hint}"
        super().__init__(text if text.endswith((".", "?", "!")) else text + ".")


class _MissingFileError(ReadError, FileNotFoundError):
    """`ReadError` for a path that does not exist (also a `FileNotFoundError`)."""


class ReshapeError(DataError):
    """A table that cannot be reshaped between wide and long form (names column and rows)."""


@dataclass(frozen=True)
class Codebook:
    """What an SPSS file says about its variables, kept beside the numeric codes.

    Attributes
    ----------
    file : str
        The source file.
    encoding : str
        The character encoding recorded in the file.
    file_label : str or None
        The file label.
    n_rows : int
        Number of cases.
    labels : dict
        Column -> variable label (may hold item wording: display only, never commit it).
    value_labels : dict
        Column -> {code: label}.
    missing : dict
        Column -> tuple of user-missing ranges ``(lo, hi)``; a discrete code has ``lo == hi``.
    formats : dict
        Column -> SPSS format (``F8.2``, ``A10``, ``N3`` ...).
    measure : dict
        Column -> ``nominal``, ``ordinal``, ``scale`` or ``unknown``.

    Examples
    --------
    >>> cb = Codebook(file="w1.sav", encoding="UTF-8", file_label=None, n_rows=2,
    ...               missing={"wai_sr_1": ((99.0, 99.0), (97.0, 98.0))})
    >>> cb.missing_codes()
    (97.0, 98.0, 99.0)
    """

    file: str
    encoding: str
    file_label: str | None
    n_rows: int
    labels: dict = field(default_factory=dict)
    value_labels: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    formats: dict = field(default_factory=dict)
    measure: dict = field(default_factory=dict)

    def missing_codes(self, column: str | None = None, *, max_range: int = 100) -> tuple:
        """User-missing codes as a flat sorted tuple, ready for ``missing_codes=``.

        Parameters
        ----------
        column : str, optional
            One column; default all columns with user-missing definitions.
        max_range : int
            Integer ranges spanning at most this many codes are expanded (``97-99`` -> 97, 98,
            99); wider or fractional ranges are left out (they stay listed in `missing`).

        Returns
        -------
        tuple of float
        """
        cols = [column] if column is not None else list(self.missing)
        codes: set[float] = set()
        for col in cols:
            for lo, hi in self.missing.get(col, ()):
                if lo == hi:
                    codes.add(float(lo))
                elif float(lo).is_integer() and float(hi).is_integer() and hi - lo <= max_range:
                    codes.update(float(c) for c in range(int(lo), int(hi) + 1))
        return tuple(sorted(codes))


# --------------------------------------------------------------------------------------- helpers


def _is_id_column(name: str, id_columns: Iterable[str]) -> bool:
    low = str(name).lower()
    return name in id_columns or low == "id" or low.endswith("_id")


def _blank_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """True where a cell is missing or only whitespace (column-wise, vectorised)."""

    def blank(col: pd.Series) -> pd.Series:
        if pd.api.types.is_string_dtype(col) and not col.isna().any():
            return col.str.strip().eq("")
        return col.isna() | col.astype(str).str.strip().eq("")

    return frame.apply(blank)


def _nice_value(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _excel_column(position: int) -> str:
    """0-based column position -> Excel letters (0 -> A, 26 -> AA)."""
    letters = ""
    position += 1
    while position:
        position, rem = divmod(position - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _string_cells(s: pd.Series) -> pd.Series:
    """True where a cell holds a Python/pandas string (vectorised for the common pure cases)."""
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind == "string":
        return s.notna()
    if kind in ("integer", "floating", "mixed-integer-float", "empty", "boolean", "decimal"):
        return pd.Series(False, index=s.index)
    return s.map(lambda v: isinstance(v, str)).astype(bool)


def _strip_text(s: pd.Series) -> pd.Series:
    """Strip whitespace from the string cells of a column, leaving other cells as they are."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.str.strip()
    is_str = _string_cells(s)
    if not is_str.any():
        return s
    if is_str.all():
        return s.str.strip()
    return s.where(~is_str, s[is_str].astype(str).str.strip())


def _ids_as_text(s: pd.Series) -> pd.Series:
    """IDs as strings: integral numbers lose their ``.0``, text is kept as written (stripped)."""
    if isinstance(s.dtype, pd.StringDtype):
        t = s.str.strip()
        return t.where(t.ne(""))
    obj = s.astype(object)
    is_str = _string_cells(obj)
    num = pd.to_numeric(obj.where(~is_str), errors="coerce")
    out = obj.astype(str).str.strip()
    integral = num.notna() & np.isfinite(num) & (num % 1 == 0)
    if integral.any():
        out = out.where(~integral, num.where(integral).astype("Int64").astype(str))
    out = out.where(obj.notna() & out.ne(""))
    return out.astype("str")


def _to_float(s: pd.Series) -> pd.Series:
    """Cells as float64: Python's float() for every cell when all convert, else pandas'
    `to_numeric` with text as NaN."""
    try:
        return s.astype("float64")  # fast C cast; fails on the first text cell
    except (ValueError, TypeError):
        return pd.to_numeric(s, errors="coerce").astype("float64")


def _to_typed(s: pd.Series) -> tuple[pd.Series, int]:
    """Numbers where every cell is a number; numbers + text (object) when mixed; else text.

    Returns the converted column and the number of text cells in a mostly numeric column.
    """
    if s.dtype != object and not pd.api.types.is_string_dtype(s):
        return s, 0
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind in ("datetime", "date", "datetime64"):
        return pd.to_datetime(s), 0
    if kind in ("boolean", "timedelta", "time", "period", "interval", "decimal", "bytes"):
        return s, 0
    if kind == "empty":
        return pd.Series(np.nan, index=s.index, name=s.name, dtype=float), 0
    num = None
    if isinstance(s.dtype, pd.StringDtype) and len(s) > 1000:
        # long text columns (dates, raters) hold few distinct values: convert those only
        codes, uniq = pd.factorize(s)
        if 0 < len(uniq) and 2 * len(uniq) < len(s):
            u = _to_float(pd.Series(uniq, dtype=s.dtype)).to_numpy()
            num = pd.Series(
                np.where(codes >= 0, u[np.maximum(codes, 0)], np.nan), index=s.index, name=s.name
            )
    if num is None:
        num = _to_float(s)
    text = s.notna() & num.isna()
    n_text = int(text.sum())
    if n_text == 0:
        if num.notna().all() and (num % 1 == 0).all():
            num = num.astype("int64")
        return num, 0
    if n_text == int(s.notna().sum()):
        return s.astype("str"), 0
    mixed = num.astype(object).where(~text, s.astype(object))
    return mixed, n_text


# ---------------------------------------------------------------------------------- delimited


def _decode(data: bytes, encoding: str | None, file: str, notes: list[str]) -> tuple[str, str]:
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            bad = data[err.start : err.start + 1]
            guess = (
                "it looks like Latin-1/Windows-1252: pass encoding='cp1252' or leave encoding "
                "unset to detect it"
                if bad and bad[0] >= 0x80
                else "leave encoding unset to detect it"
            )
            raise ReadError(
                f"is not valid {encoding} (byte {bad!r} at position {err.start})",
                file=file,
                row=line,
                hint=guess,
            ) from err
        except LookupError as err:
            raise ReadError(
                f"unknown encoding {encoding!r}", file=file, hint="use e.g. 'utf-8' or 'cp1252'"
            ) from err
        return text.lstrip("\ufeff"), encoding
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as err:
            raise ReadError(
                f"starts with a UTF-16 byte-order mark but is not valid UTF-16 ({err.reason})",
                file=file,
                hint="re-save the file as UTF-8 CSV",
            ) from err
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ReadError(
            "contains NUL bytes: it is a binary file or UTF-16 text without a byte-order mark",
            file=file,
            row=line,
            hint="if it is text, pass encoding='utf-16-le' (or re-save it as UTF-8 CSV)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        for fallback in ("cp1252", "latin-1"):
            try:
                text = data.decode(fallback)
            except UnicodeDecodeError:
                continue
            notes.append(
                f"not valid UTF-8 (first non-UTF-8 byte {data[err.start : err.start + 1]!r} on row "
                f"{line}); decoded as {fallback}"
            )
            return text, fallback
        raise AssertionError("latin-1 decodes every byte") from err  # pragma: no cover
    bad = None if data.isascii() else _MOJIBAKE.search(text)  # mojibake is never ASCII
    if bad:
        notes.append(
            f"row {_line_of(text, bad.start())}: text looks double-encoded "
            f"({text[max(bad.start() - 3, 0) : bad.end() + 3]!r}); the file was probably "
            "converted to UTF-8 twice"
        )
    return text, "utf-8-sig" if bom else "utf-8"


def _sniff(lines: pd.Series) -> str | None:
    """Pick the delimiter whose field count is the most consistent over the sample lines."""
    sample = lines[lines.str.strip().ne("")].head(50)
    best, best_key = None, (False, 0.0, 0)
    for delim in DELIMITERS:
        counts = sample.str.count(re.escape(delim)) + 1
        if counts.empty:
            continue
        mode = int(counts.mode().max())
        key = (mode > 1, float((counts == mode).mean()), mode)
        if key > best_key:
            best, best_key = delim, key
    return best if best_key[0] else None


def _load_text(
    path: Path, file: str, *, encoding: str | None, notes: list[str], attrs: dict
) -> tuple[str, bytes | None]:
    """The decoded text of a delimited file (newlines normalised), after the content checks,
    and the file's bytes when they are exactly that text in UTF-8 (else None)."""
    data = path.read_bytes()
    head = data[:4096].lstrip(b"\xef\xbb\xbf").strip()  # (cheap: no copy of a long file)
    if not head and not data.lstrip(b"\xef\xbb\xbf").strip():
        raise ReadError(
            "the file is empty",
            file=file,
            hint="check the export; the file has no header and no rows",
        )
    for magic, what in _SIGNATURES.items():
        if data.startswith(magic):
            raise ReadError(
                f"has a {path.suffix} extension but is {what}",
                file=file,
                hint="give the file its real extension (e.g. .xlsx) and read it again",
            )
    text, used = _decode(data, encoding, file, notes)
    attrs["encoding"] = used
    if "\r" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n"), None
    if encoding is None and used in ("utf-8", "utf-8-sig"):  # the bytes are the text's UTF-8
        return text, data[3:] if used == "utf-8-sig" else data
    return text, None


def _tokenise(
    text: str, file: str, *, delimiter: str | None, notes: list[str], attrs: dict
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Tokenise decoded text: grid of strings, each record's file line and field count."""
    trailing = text.endswith("\n")

    # Quoted fields are replaced by a placeholder so delimiters and line breaks inside quotes do
    # not count; line breaks inside quotes are then restored as NUL marks to keep file lines.
    sanitized = _QUOTED.sub("Q", text)
    embedded = sanitized.count("\n") != text.count("\n")
    if embedded:
        sanitized = _QUOTED.sub(lambda m: "Q" + "\x00" * m.group().count("\n"), text)
    records = pd.Series(sanitized.split("\n"), dtype="str")
    if trailing:
        records = records.iloc[:-1]
    extra = records.str.count("\x00").to_numpy() if embedded else np.zeros(len(records), int)
    lines = 1 + np.arange(len(records)) + np.concatenate([[0], np.cumsum(extra)[:-1]])
    stray = records.str.contains('"', regex=False)
    if stray.any():
        i = int(np.flatnonzero(stray.to_numpy())[0])
        raise ReadError(
            "unbalanced quote character",
            file=file,
            row=int(lines[i]),
            value=text.split("\n")[lines[i] - 1][:60],
            hint='close the quoted value, or double a quote inside a quoted value ("")',
        )

    if delimiter is None:
        delimiter = _sniff(records)
        if delimiter is None:
            notes.append("no delimiter among , ; tab | found: read as a single column")
            delimiter = ","
    attrs["delimiter"] = delimiter
    counts = records.str.count(re.escape(delimiter)).to_numpy() + 1
    try:
        grid = pd.read_csv(
            _stdio.StringIO(text),
            sep=delimiter,
            header=None,
            names=range(int(counts.max())),
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            quotechar='"',
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise ReadError(
            f"could not be parsed as {delimiter!r}-delimited text ({err})",
            file=file,
            hint="check the delimiter and quoting, or pass delimiter=",
        ) from err
    if len(grid) != len(records):  # pragma: no cover - defensive: tokenisers disagree
        raise ReadError(
            f"found {len(grid)} records but {len(records)} lines",
            file=file,
            hint="check for unusual quoting; re-export the file as plain CSV",
        )
    return grid, lines, counts


# ------------------------------------------------------------------------- delimited, fast path

#: Files with fewer records than this are always read by the general path (fast enough there).
_FAST_MIN_RECORDS = 5000
#: Integers above this lose digits as float64; the general path types through float64.
_EXACT_INT = 2**53


def _scan_records(buf: bytes) -> dict | None:
    """Record boundaries and file lines of UTF-8 text, from its bytes (NumPy).

    Equivalent to the general path's masking of ``"[^"]*"`` (quotes pair up in order, so a
    position is inside quotes when an odd number of quotes precede it), without building a Python
    string per line. Returns None when a quote is unbalanced (the general path reports it).
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    quotes = np.flatnonzero(arr == 34) if b'"' in buf else np.zeros(0, dtype=np.intp)
    if len(quotes) % 2:
        return None
    if len(quotes):
        bounds = nl[np.searchsorted(quotes, nl) % 2 == 0]
    else:
        bounds = nl
    starts = np.concatenate([[0], bounds + 1])
    ends = np.concatenate([bounds, [len(arr)]])
    if buf.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    lines = 1 + np.searchsorted(nl, starts)
    return {"arr": arr, "quotes": quotes, "starts": starts, "ends": ends, "lines": lines}


def _field_counts(scan: dict, delimiter: str, lo: int, hi: int) -> np.ndarray:
    """Fields per record for records ``lo .. hi-1``: delimiters outside quotes + 1."""
    starts, ends = scan["starts"][lo:hi], scan["ends"][lo:hi]
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    first = int(starts[0])
    pos = first + np.flatnonzero(scan["arr"][first : int(ends[-1])] == ord(delimiter))
    quotes = scan["quotes"]
    if len(quotes):
        pos = pos[np.searchsorted(quotes, pos) % 2 == 0]
    return np.searchsorted(pos, ends) - np.searchsorted(pos, starts) + 1


def _maybe_blank(scan: dict, delimiter: str, lo: int) -> np.ndarray:
    """For records ``lo ..``: False where a record surely holds a non-blank cell (a printable
    ASCII character other than the delimiter or a quote), True for the others (to be checked
    cell by cell). Most records are settled by their first byte."""
    solid = np.zeros(256, dtype=bool)
    solid[33:127] = True
    solid[[ord(delimiter), 34]] = False
    arr = scan["arr"]
    starts, ends = scan["starts"][lo:], scan["ends"][lo:]
    empty = starts >= ends
    maybe = empty | ~solid[arr[np.minimum(starts, len(arr) - 1)]]
    cand = np.flatnonzero(maybe & ~empty)
    if len(cand) > 2000:  # any() over [start, end) of each candidate, in one reduceat
        bounds = np.column_stack([starts[cand], ends[cand]]).ravel()
        has = np.logical_or.reduceat(np.append(solid[arr], False), bounds)[::2]
        maybe[cand] = ~has
    else:
        for i in cand:
            maybe[i] = not solid[arr[starts[i] : ends[i]]].any()
    return maybe


def _str_grid(buf: bytes, delimiter: str, width: int, usecols=None) -> pd.DataFrame:
    """Records as a grid of raw strings, exactly as the general path tokenises them."""
    return pd.read_csv(
        _stdio.BytesIO(buf),
        sep=delimiter,
        header=None,
        names=range(width),
        usecols=usecols,
        dtype=str,
        na_filter=False,
        skip_blank_lines=False,
        engine="c",
        quotechar='"',
        encoding="utf-8",
    )


#: Records per chunk of the fast reader: its memory is the table plus one chunk, where one
#: ``pandas.read_csv`` over the file needs about twice the table (2.3 GB for a 1.05 GB table of
#: 2.1 million rows and 62 columns).
_READ_CHUNK_ROWS = 131_072


def _parsed_ahead(source, options: dict) -> Iterator[pd.DataFrame]:
    """The chunks of ``pandas.read_csv(source, chunksize=_READ_CHUNK_ROWS, **options)``, each
    parsed in a thread while the one before is copied (the C parser tokenises without holding
    the GIL): one chunk more in memory, and the copy off the parser's time. A parser error is
    raised here, in the caller's thread."""
    done = object()
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def parse() -> None:
        try:
            with pd.read_csv(source, chunksize=_READ_CHUNK_ROWS, **options) as reader:
                for chunk in reader:
                    if stop.is_set():
                        return
                    ready.put(chunk)
        except Exception as err:  # handed to the caller's thread
            ready.put(err)
            return
        ready.put(done)

    worker = threading.Thread(target=parse, name="alliance-read", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a parser blocked on a full queue finish
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _read_body(source, n_rows: int, **options) -> tuple[pd.DataFrame | None, set]:
    """``pandas.read_csv(source, **options)`` read in chunks of :data:`_READ_CHUNK_ROWS` records,
    with numeric columns written into arrays of the whole column as they come.

    Returns (table, mixed). ``table`` holds, for every column typed alike in every chunk, what
    one ``read_csv`` call gives: numbers as int64 when every chunk held integers, else float64
    (as pandas joins its own chunks), other cells as the chunks' cells joined. ``mixed`` names
    the columns typed differently in different chunks (numbers in one, text in another): one call
    would give them mixed object cells, which the caller reads again as raw text either way;
    their cells in ``table`` are NaN. ``table`` is None when the body has more than ``n_rows``
    records (the caller's count disagrees with the parser's: the general path decides).
    """
    names = list(options["names"])
    numbers: dict[str, np.ndarray] = {}  # float64 cells of numeric columns, the whole length
    ints = dict.fromkeys(names, True)  # every chunk so far held integers
    others: dict[str, list] = {c: [] for c in names}  # the chunks of the other columns
    mixed: set = set()
    at = 0
    for chunk in _parsed_ahead(source, options):
        m = len(chunk)
        if at + m > n_rows:
            return None, mixed
        for col in names:
            if col in mixed:
                continue
            s = chunk[col]
            kind = s.dtype.kind
            numeric = kind == "f" or (kind == "i" and (m == 0 or s.abs().max() <= _EXACT_INT))
            if numeric and not others[col]:
                if col not in numbers:
                    if at:  # earlier chunks were not numbers
                        mixed.add(col)
                        continue
                    numbers[col] = np.empty(n_rows)
                numbers[col][at : at + m] = s.to_numpy(dtype=float)
                ints[col] &= kind == "i"
            elif col in numbers or (others[col] and others[col][0].dtype != s.dtype):
                mixed.add(col)
                numbers.pop(col, None)
                others[col] = []
            else:
                others[col].append(s)
        at += m
    if not at:  # (no record: the general path reads the file)
        return None, mixed
    cols: dict[str, object] = {}
    for col in names:
        if col in mixed:
            cols[col] = np.full(at, np.nan)
        elif col in numbers:
            cells = numbers.pop(col)[:at]
            cols[col] = cells.astype(np.int64) if ints[col] else cells
        else:
            parts = others.pop(col)
            cols[col] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return pd.DataFrame(cols, copy=False), mixed


def _read_delimited_fast(
    text: str,
    utf8: bytes | None,
    file: str,
    *,
    source: Path | None = None,
    delimiter: str | None,
    decimal: str | None,
    header: str | int,
    id_columns: Sequence[str],
    na_values: Sequence[str],
    allow_empty: bool,
) -> tuple[pd.DataFrame, list[str], dict] | None:
    """`read_table` for large, regular delimited files, or None to use the general path.

    The result (table, notes, attrs) is the general path's, cell for cell: the same record
    boundaries and field counts (computed on the bytes), the header found on a sample of the
    first records with the same rules, blank rows found on the bytes and confirmed cell by cell,
    and cells typed by pandas' C parser where its types provably agree with the general path
    (float and exactly representable int columns; text columns keep the raw cells and go through
    the same per-column steps). Anything unusual (unbalanced quotes, ragged or unnamed columns,
    duplicate names, decimal-comma detection, a header outside the sample) returns None.
    """
    if "" not in na_values or decimal == "," or (decimal is None and delimiter == ";"):
        return None
    if delimiter is not None and (len(delimiter) != 1 or not delimiter.isascii()):
        return None
    if delimiter in ('"', "\n"):
        return None
    buf = utf8 if utf8 is not None else text.encode("utf-8")
    scan = _scan_records(buf)
    if scan is None:
        return None
    starts, ends, lines = scan["starts"], scan["ends"], scan["lines"]
    n = len(starts)
    if n < _FAST_MIN_RECORDS:
        return None

    # a sample of the first records: enough non-blank ones for the sniffer (50) and header (30)
    m = min(n, 256)
    while True:
        head_text = buf[: ends[m - 1]].decode("utf-8")
        sanitized = pd.Series(_QUOTED.sub("Q", head_text).split("\n"), dtype="str")
        enough = int(sanitized.str.strip().ne("").sum()) >= 50
        if enough or m == n:
            break
        m = min(n, 4 * m)
    if delimiter is None:
        delimiter = _sniff(sanitized)
        if delimiter is None or delimiter == ";" and decimal is None:
            return None
    head_counts = _field_counts(scan, delimiter, 0, m)
    width_all = int(head_counts.max())
    head_grid = _str_grid(buf[: ends[m - 1]], delimiter, width_all)
    if len(head_grid) != m:
        return None
    head_blank = _blank_cells(head_grid)
    if int((~head_blank.all(axis=1)).sum()) < 30 and m < n:
        return None
    try:
        header_pos = _find_header(head_grid, head_blank, lines[:m], header, file, delimiter)
    except ReadError:
        return None
    width = int(head_counts[header_pos])
    if width != width_all or header_pos + 1 >= m or head_counts[header_pos + 1] != width:
        return None  # (a longer first data row would become pandas' index)
    names = head_grid.iloc[header_pos]
    labels = []
    for pos in range(width):
        name = names.iloc[pos]
        label = "" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
        label = label.strip().lstrip("\ufeff").strip()
        if label == "":
            return None
        labels.append(label)
    if len(set(labels)) != len(labels):
        return None

    # blank records of the body: candidates from the bytes, confirmed on their cells
    body = np.arange(header_pos + 1, n)
    maybe = _maybe_blank(scan, delimiter, header_pos + 1)
    blank_body = np.zeros(len(body), dtype=bool)
    if maybe.any():
        cand = body[maybe]
        chunk = b"\n".join(buf[starts[i] : ends[i]] for i in cand) + b"\n"
        grid = _str_grid(chunk, delimiter, width_all)
        if len(grid) != len(cand):
            return None
        blank_body[maybe] = _blank_cells(grid).all(axis=1).to_numpy()
    body_start = int(starts[header_pos + 1])
    arr = scan["arr"]
    if len(scan["quotes"]) or blank_body.any():
        regular = False
    else:  # every record has <= width fields (else the C parser raises): count them in total
        regular = np.count_nonzero(arr[body_start:] == ord(delimiter)) == len(body) * (width - 1)
    if not regular:
        counts = _field_counts(scan, delimiter, header_pos + 1, n)
        if np.any((counts != width) & ~blank_body) or counts.max() > width:
            return None  # ragged rows: the general path reports them
    keep = ~blank_body
    if not keep.any() and not allow_empty:
        return None

    notes: list[str] = []
    attrs: dict = {"delimiter": delimiter}
    skipped = [p for p in range(header_pos) if not head_blank.iloc[p].all()]
    if skipped:
        shown = [
            f"row {int(lines[p])}: "
            + " ".join(str(v).strip() for v in head_grid.iloc[p][~head_blank.iloc[p]])[:60]
            for p in skipped
        ]
        notes.append(f"skipped {len(skipped)} row(s) above the header ({'; '.join(shown)})")
    attrs["header_row"] = int(lines[header_pos])
    rows = lines[body]
    if blank_body.any():
        dropped = [int(r) for r in rows[blank_body]]
        attrs["blank_rows_dropped"] = dropped
        notes.append(
            f"dropped {len(dropped)} blank row(s): "
            + ", ".join(map(str, dropped[:10]))
            + (" ..." if len(dropped) > 10 else "")
        )
    if not keep.any():
        notes.append("header only: the table has no data rows")

    ids = [c for c in labels if _is_id_column(c, id_columns)]
    body_buf = buf[body_start:]
    # the C parser reads a file faster than a buffer: the file itself when its bytes are `buf`
    # (maybe after a byte-order mark) and the body starts right after a one-line header
    direct = source is not None and utf8 is not None and header_pos == 0 and lines[1] == 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            typed, mixed_chunks = _read_body(
                source if direct else _stdio.BytesIO(body_buf),
                len(body),
                skiprows=1 if direct else None,
                sep=delimiter,
                header=None,
                names=labels,
                na_values=list(na_values),
                keep_default_na=False,
                skip_blank_lines=False,
                engine="c",
                quotechar='"',
                encoding="utf-8",
            )
    except (pd.errors.ParserError, ValueError):
        return None
    if typed is None or len(typed) != len(body) or not isinstance(typed.index, pd.RangeIndex):
        return None
    index = pd.Index(rows[keep], name="row")
    if not keep.all():
        typed = typed.iloc[np.flatnonzero(keep)]
    typed.index = index
    if decimal is not None:
        attrs["decimal"] = decimal

    na = set(na_values)
    out = {}  # the columns that differ from pandas' typing
    mixed: dict[str, int] = {}
    text_cols, raw_text = [], []
    for col in labels:
        s = typed[col]
        kind = s.dtype.kind
        if col in mixed_chunks:  # typed differently in different chunks: the raw cells
            raw_text.append(col)
        elif col in ids:  # raw text cells (else read again as text): keep leading zeros
            if not isinstance(s.dtype, pd.StringDtype):
                raw_text.append(col)
                continue
            s = _strip_text(s)
            out[col] = _ids_as_text(s.where(~s.isin(na)))
        elif kind == "f":
            if s.notna().all() and (s % 1 == 0).all():
                out[col] = s.astype("int64")
        elif kind == "i" and (len(s) == 0 or int(s.abs().max()) <= _EXACT_INT):
            pass
        elif pd.api.types.is_string_dtype(s.dtype) and pd.api.types.infer_dtype(s) in (
            "string",
            "empty",
        ):
            text_cols.append(col)  # raw cells: typed below, as in the general path
            if not isinstance(s.dtype, pd.StringDtype):  # (chunks typed apart: object)
                typed[col] = s.astype("str")
        else:
            raw_text.append(col)  # bool, uint64, huge integers ...: read the raw cells again
    if raw_text:
        where = [labels.index(c) for c in raw_text]
        again = _str_grid(body_buf, delimiter, width, usecols=where)
        if len(again) != len(body):
            return None
        again = again.iloc[np.flatnonzero(keep)] if not keep.all() else again
        for col, pos in zip(raw_text, where, strict=True):
            typed[col] = pd.Series(again[pos].to_numpy(), index=index, dtype="str")
        text_cols += raw_text
    for col in [c for c in raw_text if c in ids]:
        s = _strip_text(typed[col])
        out[col] = _ids_as_text(s.where(~s.isin(na)))
    for col in [c for c in text_cols if c not in ids]:
        s = _strip_text(typed[col])
        s = s.where(~s.isin(na)) if na else s
        out[col], n_text = _to_typed(s)
        if n_text:
            mixed[col] = n_text
    if mixed:
        attrs["text_cells"] = {c: mixed[c] for c in labels if c in mixed}
    for col, values in out.items():  # in place: the other columns are not copied again
        typed[col] = values
    return typed, notes, attrs


def _check_ragged(
    counts: np.ndarray,
    lines: np.ndarray,
    header_pos: int,
    blank: np.ndarray,
    file: str,
    attrs: dict,
    text: str,
) -> None:
    width = int(counts[header_pos])
    body = np.arange(len(counts)) > header_pos
    bad = np.flatnonzero(body & ~blank & (counts != width))
    if bad.size == 0:
        return
    delim = attrs.get("delimiter", ",")
    problems = [
        {"row": int(lines[i]), "detail": f"{int(counts[i])} fields, header has {width}"}
        for i in bad[:10]
    ]
    first = bad[0]
    shown = "; ".join(f"row {p['row']}: {p['detail']}" for p in problems)
    more = f" (and {bad.size - 10} more)" if bad.size > 10 else ""
    if counts[first] > width:
        where = "a decimal comma in a comma-separated file?" if delim == "," else repr(delim)
        hint = (
            f"a value probably contains the delimiter ({where}): quote it or remove the extra field"
        )
    else:
        hint = "a value is missing or a line break splits the row: add the missing field(s)"
    raise ReadError(
        f"ragged rows: {bad.size} row(s) do not have {width} fields ({shown}{more})",
        file=file,
        row=int(lines[first]),
        value=text.split("\n", int(lines[first]))[int(lines[first]) - 1][:100],
        hint=hint,
        problems=problems,
    )


# -------------------------------------------------------------------------------------- excel


def _read_excel(
    path: Path, file: str, *, sheet: str | int | None, notes: list[str], attrs: dict
) -> tuple[pd.DataFrame, np.ndarray]:
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zip, XML and key errors for damaged files
        raise ReadError(
            f"cannot be opened as an Excel workbook ({type(err).__name__}: {err})",
            file=file,
            hint="open it in Excel and save it again as .xlsx, or export the sheet as CSV",
        ) from err
    try:
        names = book.sheetnames
        if sheet is None:
            ws = book.worksheets[0]
            if len(names) > 1:
                notes.append(
                    f"workbook has {len(names)} sheets {names}: read the first, {ws.title!r}"
                )
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise ReadError(
                    f"there is no sheet number {sheet} (0-based); sheets are {names}",
                    file=file,
                    hint="pass sheet= as one of these names",
                )
            ws = book.worksheets[sheet]
        else:
            if sheet not in names:
                close = difflib.get_close_matches(str(sheet), names, n=1)
                raise ReadError(
                    f"there is no sheet {sheet!r}; sheets are {names}",
                    file=file,
                    hint=f"did you mean sheet={close[0]!r}?"
                    if close
                    else "pass one of these names",
                )
            ws = book[sheet]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = list(ws.iter_rows(values_only=True))
        except Exception as err:  # damaged sheet XML inside a valid zip
            raise ReadError(
                f"sheet {ws.title!r} cannot be read ({type(err).__name__}: {err})",
                file=file,
                hint="open it in Excel and save it again as .xlsx, or export the sheet as CSV",
            ) from err
        attrs["sheet"] = ws.title
    finally:
        book.close()
    if not rows:
        raise ReadError(
            f"sheet {attrs.get('sheet')!r} is empty", file=file, hint="pick another sheet="
        )
    grid = pd.DataFrame.from_records(rows).astype(object)
    grid.columns = range(grid.shape[1])
    return grid, np.arange(1, len(grid) + 1)


# --------------------------------------------------------------------------------------- header


def _find_header(
    grid: pd.DataFrame,
    blank: pd.DataFrame,
    lines: np.ndarray,
    header: str | int,
    file: str,
    delimiter: str | None,
) -> int:
    """Position of the header record in `grid`: auto-detected or the file row given."""
    nonblank_rows = np.flatnonzero(~blank.all(axis=1).to_numpy())
    if nonblank_rows.size == 0:
        raise ReadError("the file is empty (only blank rows)", file=file, hint="check the export")
    if header != "auto":
        hit = np.flatnonzero(lines == int(header))
        if hit.size == 0 or blank.iloc[hit[0]].all():
            raise ReadError(
                f"header={header} is not a non-blank row of the file",
                file=file,
                row=int(header),
                hint="give the 1-based row number of the column names, or header='auto'",
            )
        return int(hit[0])
    head = nonblank_rows[:30]
    filled = (~blank.iloc[head]).sum(axis=1).to_numpy()
    width = int(filled.max())
    for k, pos in enumerate(head):
        cells = grid.iloc[pos][~blank.iloc[pos]]
        numeric = pd.to_numeric(cells.astype(str), errors="coerce").notna().any()
        if filled[k] >= max(min(2, width), -(-width // 2)) and not numeric:
            return int(pos)
        if filled[k] >= 2 and numeric:
            break
    pos = int(nonblank_rows[0])
    first = [str(v).strip() for v in grid.iloc[pos][~blank.iloc[pos]]]
    message = "no header row found (the first rows hold numbers, not column names)"
    hint = "add a header row with the column names, or pass header= with its row number"
    used = delimiter
    for delim in DELIMITERS:
        if len(first) == 1 and used is not None and delim != used and delim in first[0]:
            message = (
                f"the header is separated by {delim!r} but the data rows by {used!r}, so no "
                "header row was found"
            )
            hint = "re-export the file with one delimiter throughout"
            break
    raise ReadError(
        message,
        file=file,
        row=int(lines[pos]),
        value=first[0] if len(first) == 1 else ", ".join(first[:6]),
        hint=hint,
    )


# --------------------------------------------------------------------------------------- main


def _suggest(name: str, columns: Sequence[str]) -> str | None:
    canon = {re.sub(r"[^a-z0-9]", "", str(c).lower()): c for c in columns}
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key in canon:
        return canon[key]
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    return close[0] if close else None


def _check_required(df: pd.DataFrame, required: Sequence[str], file: str, attrs: dict) -> None:
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return
    col = missing[0]
    near = _suggest(col, list(df.columns))
    cols = list(map(str, df.columns))
    hint = f"did you mean {near!r}? Rename it" if near else f"the columns are {cols[:20]}"
    if len(cols) == 1 and any(d in cols[0] for d in (":", ",", ";", "\t", "|", " ")):
        hint = (
            f"the file was read as one column named {cols[0][:60]!r}: the delimiter is probably "
            f"not {attrs.get('delimiter', ',')!r}; pass delimiter="
        )
    raise ReadError(
        f"required column {col!r} is missing"
        + (f" (also missing: {missing[1:]})" if len(missing) > 1 else ""),
        file=file,
        row=attrs.get("header_row"),
        column=col,
        hint=hint,
    )


def _tidy(
    grid: pd.DataFrame,
    lines: np.ndarray,
    header_pos: int,
    blank: pd.DataFrame,
    *,
    file: str,
    id_columns: Sequence[str],
    na_values: Sequence[str],
    decimal: str | None,
    allow_empty: bool,
    notes: list[str],
    attrs: dict,
    excel: bool,
) -> pd.DataFrame:
    """Header names, blank rows and columns, duplicates, cell types: grid -> table."""
    skipped = [p for p in range(header_pos) if not blank.iloc[p].all()]
    if skipped:
        shown = [
            f"row {int(lines[p])}: "
            + " ".join(str(v).strip() for v in grid.iloc[p][~blank.iloc[p]])[:60]
            for p in skipped
        ]
        notes.append(f"skipped {len(skipped)} row(s) above the header ({'; '.join(shown)})")
    attrs["header_row"] = int(lines[header_pos])
    names = grid.iloc[header_pos]
    body = grid.iloc[header_pos + 1 :]
    body_blank = blank.iloc[header_pos + 1 :]
    rows = lines[header_pos + 1 :]
    keep = ~body_blank.all(axis=1).to_numpy()
    if (~keep).any():
        dropped = [int(r) for r in rows[~keep]]
        attrs["blank_rows_dropped"] = dropped
        notes.append(
            f"dropped {len(dropped)} blank row(s): "
            + ", ".join(map(str, dropped[:10]))
            + (" ..." if len(dropped) > 10 else "")
        )
    body, body_blank, rows = body[keep], body_blank[keep], rows[keep]

    labels = []
    drop = []
    for pos, name in enumerate(names):
        label = "" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
        label = label.strip().lstrip("\ufeff").strip()
        where = f"column {_excel_column(pos)}" if excel else f"field {pos + 1}"
        if label == "":
            has = np.flatnonzero(~body_blank.iloc[:, pos].to_numpy())
            if has.size == 0:
                drop.append(pos)
                labels.append(f"__blank_{pos}")
                continue
            raise ReadError(
                f"{where} has no name in the header but holds data",
                file=file,
                row=int(rows[has[0]]),
                value=_nice_value(body.iloc[has[0], pos]),
                hint=f"give {where} a name in row {attrs['header_row']} or delete it",
            )
        labels.append(label)
    if drop:
        notes.append(f"dropped {len(drop)} unnamed empty column(s)")
    seen: dict[str, int] = {}
    for pos, label in enumerate(labels):
        if pos in drop:
            continue
        if label in seen:
            first = seen[label]
            a, b = (_excel_column(first), _excel_column(pos)) if excel else (first + 1, pos + 1)
            kind = "columns" if excel else "fields"
            raise ReadError(
                f"duplicate column name ({kind} {a} and {b} are both named {label!r})",
                file=file,
                row=attrs["header_row"],
                column=label,
                hint="rename or delete one of them; a table needs unique column names",
            )
        seen[label] = pos
    body = body.drop(columns=[grid.columns[p] for p in drop])
    body.columns = [lab for p, lab in enumerate(labels) if p not in drop]
    body.index = pd.Index(rows, name="row")
    if body.empty:
        if not allow_empty:
            raise ReadError(
                "the file has a header but no data rows",
                file=file,
                row=attrs["header_row"],
                hint="check the export; pass allow_empty=True to get an empty table instead",
            )
        notes.append("header only: the table has no data rows")

    out = {}
    decimal_cols: list[str] = []
    mixed: dict[str, int] = {}
    na = set(na_values)
    text_cols = {}
    for col in body.columns:
        s = _strip_text(body[col] if not excel else body[col].astype(object))
        s = s.where(~s.isin(na)) if na else s
        text_cols[col] = s
    if decimal is None and attrs.get("delimiter") == ";":
        decimal = "."
        for col, s in text_cols.items():
            if _is_id_column(col, id_columns):
                continue
            t = s.dropna().astype(str)
            t = t[t.str.contains(",", regex=False) | t.str.contains(".", regex=False)]
            if t.str.match(_DECIMAL_POINT).any():
                decimal = "."
                break
            if t.str.match(_DECIMAL_COMMA).any():
                decimal = ","
    if decimal is not None:
        attrs["decimal"] = decimal
    for col, s in text_cols.items():
        if _is_id_column(col, id_columns):
            out[col] = _ids_as_text(s)
            continue
        if decimal == ",":
            is_comma = s.astype(str).str.match(_DECIMAL_COMMA) & s.notna()
            if is_comma.any():
                s = s.where(~is_comma, s.astype(str).str.replace(",", ".", regex=False))
                decimal_cols.append(col)
        out[col], n_text = _to_typed(s)
        if n_text:
            mixed[col] = n_text
    if decimal_cols:
        notes.append(f"decimal commas read as decimal points in {decimal_cols}")
    if mixed:
        attrs["text_cells"] = mixed
    return pd.DataFrame(out, index=body.index)


def _tidy_typed(df: pd.DataFrame, file: str, id_columns: Sequence[str], start: int) -> pd.DataFrame:
    """Header whitespace, ID columns and empty strings for already-typed sources (sav, parquet)."""
    names = [str(c).strip() for c in df.columns]
    dup = pd.Index(names)[pd.Index(names).duplicated()]
    if len(dup):
        raise ReadError(
            "duplicate column name",
            file=file,
            column=dup[0],
            hint="rename one of them; a table needs unique column names",
        )
    df = df.set_axis(names, axis=1)
    out = {}
    for col in df.columns:
        s = df[col]
        if _is_id_column(col, id_columns):
            out[col] = _ids_as_text(s)
        elif pd.api.types.is_string_dtype(s) or s.dtype == object:
            stripped = _strip_text(s)
            out[col] = stripped.where(stripped.ne(""))
        elif s.dtype.kind == "f" and s.notna().all() and (s % 1 == 0).all():
            out[col] = s.astype("int64")  # SPSS stores every number as a double
        else:
            out[col] = s
    if df.index.name == "row" and pd.api.types.is_integer_dtype(df.index):
        index = df.index
    else:
        index = pd.Index(np.arange(start, start + len(df)), name="row")
    return pd.DataFrame(out).set_axis(index, axis=0)


def read_sav(
    path: str | Path, *, encoding: str | None = None, id_columns: Sequence[str] = ()
) -> tuple[pd.DataFrame, Codebook]:
    """Read an SPSS ``.sav``/``.zsav`` file as numeric codes plus a `Codebook`.

    Value labels are never applied (scores come from codes), and user-missing codes are kept as
    the raw codes, not turned into NaN, so that ``validate(..., missing_codes=...)`` counts them.

    Parameters
    ----------
    path : str or Path
        The SPSS file.
    encoding : str, optional
        Override the encoding recorded in the file (old files sometimes record a wrong one).
    id_columns : sequence of str
        Extra ID columns (beyond ``*_id`` names) to read as strings.

    Returns
    -------
    (DataFrame, Codebook)
        The data, index ``row`` = case number (1-based), and its codebook. ``df.attrs`` holds
        ``source``, ``format``, ``encoding``, ``user_missing`` (column -> list of ``[lo, hi]``),
        ``user_missing_cells`` (column -> number of cells holding a user-missing code) and
        ``missing_codes`` (flat sorted list for ``missing_codes=``).

    Notes
    -----
    Read with ``pyreadstat.read_sav(path, user_missing=True)``; without ``user_missing=True``
    pyreadstat turns user-missing codes into NaN silently and reports no ranges. An SPSS ``N``
    (restricted numeric) ID is zero-padded to its width, as SPSS displays it.

    References
    ----------
    pyreadstat documentation, "Reading files" (``user_missing``, ``metadataonly``).

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd, pyreadstat
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w1.sav"
    >>> pyreadstat.write_sav(pd.DataFrame({"client_id": [7.0, 12.0], "wai_sr_1": [4.0, 99.0]}),
    ...                      p, missing_ranges={"wai_sr_1": [99]},
    ...                      variable_format={"client_id": "N3"})
    >>> df, cb = read_sav(p)
    >>> df["client_id"].tolist(), df["wai_sr_1"].tolist()
    (['007', '012'], [4, 99])
    >>> df.attrs["missing_codes"], df.attrs["user_missing_cells"]
    ([99.0], {'wai_sr_1': 1})
    """
    import pyreadstat

    path = Path(path)
    file = str(path)
    _check_path(path, file)
    try:
        raw, meta = pyreadstat.read_sav(
            path, user_missing=True, apply_value_formats=False, encoding=encoding
        )
    except Exception as err:  # pyreadstat raises its own ReadstatError/PyreadstatError
        raise ReadError(
            f"cannot be read as an SPSS file ({type(err).__name__}: {err})",
            file=file,
            hint="re-save it from SPSS as .sav, or pass encoding= if it is an encoding problem",
        ) from err
    formats = dict(meta.original_variable_types or {})
    missing = {
        col: tuple((float(r["lo"]), float(r["hi"])) for r in ranges)
        for col, ranges in (meta.missing_ranges or {}).items()
    }
    book = Codebook(
        file=file,
        encoding=str(meta.file_encoding),
        file_label=meta.file_label,
        n_rows=len(raw),
        labels=dict(meta.column_names_to_labels or {}),
        value_labels={k: dict(v) for k, v in (meta.variable_value_labels or {}).items()},
        missing=missing,
        formats=formats,
        measure=dict(meta.variable_measure or {}),
    )
    df = _tidy_typed(raw, file, id_columns, start=1)
    for col in df.columns:
        fmt = formats.get(col, "")
        m = re.fullmatch(r"N(\d+)", fmt)
        if m and _is_id_column(col, id_columns):
            df[col] = df[col].str.zfill(int(m.group(1))).where(df[col].notna())
    cells = {}
    for col, ranges in missing.items():
        if col in df.columns and pd.api.types.is_numeric_dtype(df[col]):
            hit = np.zeros(len(df), bool)
            for lo, hi in ranges:
                hit |= ((df[col] >= lo) & (df[col] <= hi)).to_numpy()
            if hit.any():
                cells[col] = int(hit.sum())
    df.attrs.update(
        source=file,
        format="sav",
        encoding=book.encoding,
        user_missing={c: [list(r) for r in rs] for c, rs in missing.items()},
        user_missing_cells=cells,
        missing_codes=list(book.missing_codes()),
        warnings=[],
    )
    return df, book


def _is_parquet_folder(path: Path) -> bool:
    """A folder holding Parquet files (a dataset, e.g. hive-partitioned ``site=a/part-0.parquet``)."""
    return path.is_dir() and any(path.rglob("*.parquet"))


def parquet_columns(path: str | Path) -> list[str]:
    """Column names of a Parquet file or partitioned Parquet folder, read from the schema only.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "big"
    >>> pd.DataFrame({"client_id": ["1", "2"], "site": ["a", "b"], "x": [1, 2]}).to_parquet(
    ...     folder, partition_cols=["site"])
    >>> parquet_columns(folder)
    ['client_id', 'x', 'site']
    """
    import pyarrow.dataset as ds

    return list(ds.dataset(str(path), format="parquet", partitioning="hive").schema.names)


def _read_parquet(path: Path, file: str, columns: Sequence[str] | None) -> pd.DataFrame:
    """A Parquet file or folder (pyarrow dataset, hive partitions) reading only `columns`."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(str(path), format="parquet", partitioning="hive")
        names = list(dataset.schema.names)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for damaged files
        raise ReadError(
            f"cannot be read as a Parquet file ({type(err).__name__}: {err})",
            file=file,
            hint="write it again with DataFrame.to_parquet or arrow::write_parquet",
        ) from err
    if columns is not None:
        absent = [c for c in columns if c not in names]
        if absent:
            near = _suggest(absent[0], names)
            raise ReadError(
                f"required column {absent[0]!r} is missing",
                file=file,
                column=absent[0],
                hint=f"did you mean {near!r}?" if near else f"the columns are {names[:20]}",
            )
    keep = [c for c in names if columns is None or c in set(columns) or c == "row"]
    try:
        # one chunk per column: a dataset of many files gives chunked Arrow columns, and
        # factorising a chunked string column (ids) is far slower than a combined one
        raw = dataset.to_table(columns=keep).combine_chunks().to_pandas()
    except Exception as err:
        raise ReadError(
            f"cannot be read as a Parquet file ({type(err).__name__}: {err})",
            file=file,
            hint="write it again with DataFrame.to_parquet or arrow::write_parquet",
        ) from err
    for col in raw.columns:  # partition keys arrive as categoricals
        if isinstance(raw[col].dtype, pd.CategoricalDtype):
            raw[col] = raw[col].astype(object)
    if "row" in raw.columns and pd.api.types.is_integer_dtype(raw["row"]):
        raw = raw.set_index("row")
    return raw


def apply_user_missing(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set the SPSS user-missing cells of a table read from a ``.sav`` to missing, per column.

    Each column's own declarations (``df.attrs["user_missing"]``, from `read_sav`) are applied to
    that column only: a file declaring 98-99 missing for its alliance items and -9 for an outcome
    total keeps an outcome total of 98.

    Parameters
    ----------
    df : DataFrame
        A table from `read_table` / `read_sav` (other tables are returned unchanged).

    Returns
    -------
    (DataFrame, DataFrame)
        The table with those cells NaN, and one row per column x declared code that occurred:
        ``column``, ``code``, ``n`` (cells), ``declared`` (the SPSS declaration as text).

    Notes
    -----
    SPSS keeps user-missing codes as values and excludes them from every analysis; `read_sav`
    keeps them as codes (so they are seen and counted) and this function applies SPSS's rule.

    Examples
    --------
    >>> import tempfile, pathlib, pyreadstat
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.sav"
    >>> pyreadstat.write_sav(pd.DataFrame({"wai1": [4.0, 99.0], "oqtot": [99.0, -9.0]}), p,
    ...                      missing_ranges={"wai1": [{"lo": 98.0, "hi": 99.0}], "oqtot": [-9.0]})
    >>> out, used = apply_user_missing(read_table(p))
    >>> out["oqtot"].tolist(), used.to_dict("records")[0]
    ([99.0, nan], {'column': 'wai1', 'code': 99.0, 'n': 1, 'declared': '98 to 99'})
    """
    declared = df.attrs.get("user_missing") or {}
    lines = []
    out = df
    for col, ranges in declared.items():
        if col not in df.columns or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        values = df[col].to_numpy(dtype=float, na_value=np.nan)
        hit = np.zeros(len(df), dtype=bool)
        for lo, hi in ranges:
            mask = (values >= lo) & (values <= hi)
            if mask.any():
                codes, counts = np.unique(values[mask], return_counts=True)
                text = (
                    f"{_nice_value(lo)}" if lo == hi else f"{_nice_value(lo)} to {_nice_value(hi)}"
                )
                lines += [
                    {"column": col, "code": float(c), "n": int(k), "declared": text}
                    for c, k in zip(codes, counts, strict=True)
                ]
            hit |= mask
        if hit.any():
            if out is df:
                out = df.copy()
            out[col] = pd.Series(np.where(hit, np.nan, values), index=df.index)
    used = pd.DataFrame(lines, columns=["column", "code", "n", "declared"])
    return out, used.astype({"n": np.int64})


def _check_path(path: Path, file: str) -> None:
    if not path.exists():
        near = (
            difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir()], n=1)
            if path.parent.is_dir()
            else []
        )
        raise _MissingFileError(
            "file not found",
            file=file,
            hint=f"did you mean {near[0]!r}?"
            if near
            else "check the path and the working directory",
        )
    if path.is_dir():
        raise ReadError("is a folder, not a file", file=file, hint="give the path of a data file")


def read_table(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
    header: str | int = "auto",
    id_columns: Sequence[str] = ("client_id", "therapist_id"),
    required: Sequence[str] = (),
    na_values: Sequence[str] = DEFAULT_NA,
    allow_empty: bool = False,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV, XLSX, SPSS ``.sav`` or Parquet file into a table with file row numbers.

    Parameters
    ----------
    path : str or Path
        The file; the format comes from the extension (``.csv .tsv .tab .txt .xlsx .xlsm .sav
        .zsav .parquet .pq``). A folder of Parquet files (a partitioned dataset, e.g. written
        with ``partition_cols=``) is read as one table, partition keys as columns.
    sheet : str or int, optional
        XLSX sheet name or 0-based position (default: the first sheet; the others are noted).
    encoding : str, optional
        Text encoding. Default: UTF-8 (with or without BOM; UTF-16 with BOM), falling back to
        Windows-1252/Latin-1 when the bytes are not UTF-8 (noted). Given explicitly, bytes that do
        not decode raise a `ReadError` naming the row.
    delimiter : str, optional
        Field delimiter; default sniffed among ``,`` ``;`` tab ``|`` (the most consistent field
        count over the first 50 lines).
    decimal : {None, ".", ","}
        Decimal mark. Default: ``","`` when the delimiter is ``;`` and number-like cells use
        decimal commas and none uses a decimal point; else ``"."``.
    header : "auto" or int
        ``"auto"``: the first row with at least two and at least half of the table's cells filled
        and no numbers; rows above it (titles, notes) are skipped and listed in
        ``attrs["warnings"]``. An int is the 1-based file row of the column names.
    id_columns : sequence of str
        Columns read as text so leading zeros survive; any column named ``id`` or ``*_id`` also.
    required : sequence of str
        Columns that must exist, else a `ReadError` with a did-you-mean suggestion.
    na_values : sequence of str
        Cell texts (after stripping whitespace) read as missing; default ``("", "NA", "NaN")``.
        Other text in a numeric column ("n/a", "—") is kept so that validation reports it.
        Applies to CSV/TSV/XLSX; SPSS and Parquet carry typed missing values of their own.
    allow_empty : bool
        A file with a header but no data rows raises `ReadError` unless this is True, in which
        case an empty table with those columns is returned and ``attrs["warnings"]`` says so.
    columns : sequence of str, optional
        Only these columns (in the file's order). Parquet reads only them from disk (a
        column-oriented format: unread columns cost nothing); other formats drop the rest after
        reading. A column that does not exist is a `ReadError` with a did-you-mean.

    Returns
    -------
    DataFrame
        Index ``row``: 1-based file row (see module notes). Header names and text cells are
        stripped; blank rows and unnamed empty columns dropped. Columns whose cells are all
        numbers are numeric (int64 when whole and complete); a column mixing numbers and text is
        ``object`` holding both (counted in ``attrs["text_cells"]``); ID columns are strings.
        ``df.attrs``: ``source`` (path string), ``format``, ``warnings`` (list of str: every
        decision taken for you) and, as applicable, ``encoding``, ``delimiter``, ``decimal``,
        ``header_row``, ``sheet``, ``blank_rows_dropped``, ``text_cells`` and for SPSS
        ``user_missing``, ``user_missing_cells``, ``missing_codes`` (see `read_sav`).

    Raises
    ------
    ReadError
        File not found, a folder, empty, header only (unless `allow_empty`), unsupported
        extension or content not matching it, bytes not in the given encoding, unbalanced quote,
        ragged rows (every offending row listed with its field count), no header row, unnamed
        column holding data, duplicate column names, unreadable workbook or sheet, missing
        `required` column. Each names the file and, where it applies, the row, column and value.

    Notes
    -----
    Header-only files are an error by default because a wave file with no rows is far more often
    a failed export than a real result. SPSS files are read through `read_sav` (codes, never value
    labels; user-missing codes kept and reported). Parquet files written from a frame whose index
    is named ``row`` keep that index.

    Delimited text is decoded once, quoted fields are masked (``"[^"]*"``) so that delimiters and
    line breaks inside quotes do not count, and the field count of every record is
    ``count(delimiter) + 1``; a record's file line is ``1 + i + (line breaks inside quotes in
    records before it)``. The cells are then tokenised by pandas' C parser as text and typed
    column by column, so reading is vectorised.

    Large regular files (at least 5,000 records) take a fast path with the same result: record
    boundaries, file lines and field counts are computed with NumPy on the bytes; the header,
    delimiter and title rows are found on a sample of the first records with the rules above;
    blank rows are found on the bytes and confirmed cell by cell; and the cells are typed by the
    C parser directly where its types provably agree (float columns, integer columns up to
    :math:`2^{53}`); text columns get the same per-column steps as above. Anything unusual
    (unbalanced quotes, ragged rows, unnamed or duplicate columns, decimal-comma detection)
    goes to the general path. A 416,000-row x 62-column wave file reads in about twice the
    time of a plain ``pandas.read_csv`` on a 2-core machine (``benchmarks/bench_reading.py``).

    References
    ----------
    Shafranovich, Y. (2005). *Common Format and MIME Type for Comma-Separated Values (CSV) Files*
    (RFC 4180). IETF. Quoting rules followed here.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "wave1.csv"
    >>> _ = p.write_text("client_id;session;wai_sr_1\\n007;1;4,5\\n\\n012;2;n/a\\n")
    >>> df = read_table(p)
    >>> df  # doctest: +NORMALIZE_WHITESPACE
        client_id  session wai_sr_1
    row
    2         007        1      4.5
    4         012        2      n/a
    >>> df.attrs["delimiter"], df.attrs["decimal"], df.attrs["text_cells"]
    (';', ',', {'wai_sr_1': 1})
    >>> df.attrs["warnings"]
    ['dropped 1 blank row(s): 3', "decimal commas read as decimal points in ['wai_sr_1']"]
    """
    path = Path(path)
    file = str(path)
    id_columns, required, na_values = (
        (v,) if isinstance(v, str) else tuple(v) for v in (id_columns, required, na_values)
    )
    if decimal not in (None, ".", ","):
        raise ValueError(f"decimal must be None, '.' or ',', not {decimal!r}")
    if header != "auto" and not (isinstance(header, int) and header >= 1):
        raise ValueError(f"header must be 'auto' or a 1-based row number, not {header!r}")
    if _is_parquet_folder(path):
        df = _tidy_typed(_read_parquet(path, file, columns), file, id_columns, start=1)
        df.attrs.update(source=file, format="parquet dataset", warnings=[])
        _check_required(df, required, file, df.attrs)
        return df
    _check_path(path, file)
    ext = path.suffix.lower()
    kind = _EXTENSIONS.get(ext)
    if kind is None:
        supported = " ".join(sorted(_EXTENSIONS))
        raise ReadError(
            f"unsupported file type {ext or '(no extension)'!r}",
            file=file,
            hint=_UNSUPPORTED_HINTS.get(ext, f"save the data as one of: {supported}"),
        )
    if kind == "sav":
        df, _ = read_sav(path, encoding=encoding, id_columns=id_columns)
        _check_required(df, required, file, df.attrs)
        return _select(df, columns, file)
    if path.stat().st_size == 0:
        raise ReadError("the file is empty (0 bytes)", file=file, hint="check the export")
    notes: list[str] = []
    attrs: dict = {"source": file}
    if kind == "parquet":
        df = _tidy_typed(_read_parquet(path, file, columns), file, id_columns, start=1)
        attrs["format"] = "parquet"
    else:
        if kind == "excel":
            grid, lines = _read_excel(path, file, sheet=sheet, notes=notes, attrs=attrs)
            counts = None
            attrs["format"] = "xlsx"
        else:
            text, utf8 = _load_text(path, file, encoding=encoding, notes=notes, attrs=attrs)
            fast = _read_delimited_fast(
                text,
                utf8,
                file,
                source=path,
                delimiter=delimiter,
                decimal=decimal,
                header=header,
                id_columns=id_columns,
                na_values=na_values,
                allow_empty=allow_empty,
            )
            if fast is not None:
                df, fast_notes, fast_attrs = fast
                notes.extend(fast_notes)
                attrs.update(fast_attrs)
                attrs["format"] = "tsv" if attrs["delimiter"] == "\t" else "csv"
                attrs["warnings"] = notes
                df.attrs.update(attrs)
                _check_required(df, required, file, attrs)
                return _select(df, columns, file)
            grid, lines, counts = _tokenise(
                text, file, delimiter=delimiter, notes=notes, attrs=attrs
            )
            attrs["format"] = "tsv" if attrs["delimiter"] == "\t" else "csv"
        blank = _blank_cells(grid)
        header_pos = _find_header(grid, blank, lines, header, file, attrs.get("delimiter"))
        if counts is not None:
            row_blank = blank.all(axis=1).to_numpy()
            _check_ragged(counts, lines, header_pos, row_blank, file, attrs, text)
        df = _tidy(
            grid,
            lines,
            header_pos,
            blank,
            file=file,
            id_columns=id_columns,
            na_values=na_values,
            decimal=decimal,
            allow_empty=allow_empty,
            notes=notes,
            attrs=attrs,
            excel=kind == "excel",
        )
    attrs["warnings"] = notes
    df.attrs.update(attrs)
    _check_required(df, required, file, attrs)
    return _select(df, columns, file)


def _select(df: pd.DataFrame, columns: Sequence[str] | None, file: str) -> pd.DataFrame:
    if columns is None:
        return df
    _check_required(df, list(columns), file, df.attrs)
    keep = set(columns)
    out = df[[c for c in df.columns if c in keep]]
    out.attrs = dict(df.attrs)
    return out


# ------------------------------------------------------------------------------- wide <-> long

_WIDE_PATTERN = r"^(?P<stub>.+)_s(?P<session>\d+)$"


def to_long(
    data: pd.DataFrame,
    *,
    session: str = "session",
    stubs: Sequence[str] | None = None,
    pattern: str = _WIDE_PATTERN,
    dropna: bool = True,
) -> pd.DataFrame:
    """Wide per-session columns (``wai_sr_total_s1, wai_sr_total_s2``) -> one row per session.

    Parameters
    ----------
    data : DataFrame
        One row per client (or client x rater ...), per-session columns named by `pattern`.
    session : str
        Name of the session column to create.
    stubs : sequence of str, optional
        Only these measures (the part before the session suffix); default all matching columns.
    pattern : str
        Regular expression with named groups ``stub`` and ``session`` (an integer); default
        ``{stub}_s{session}``.
    dropna : bool
        Drop sessions where every measure is missing (not administered).

    Returns
    -------
    DataFrame
        The other columns repeated per session, then `session` (int) and one column per stub;
        rows in input order then session order; the index (the file ``row``) is carried along,
        so every long row still names the file row it came from.

    Notes
    -----
    The reverse of `to_wide`. Sessions are looped over (a handful), never rows.

    Examples
    --------
    >>> wide = pd.DataFrame({"client_id": ["01", "02"], "wai_s1": [3.5, 4.0],
    ...                      "wai_s2": [3.75, None], "oq_s2": [70, 81]})
    >>> to_long(wide)
      client_id  session   wai    oq
    0        01        1  3.50   NaN
    0        01        2  3.75  70.0
    1        02        1  4.00   NaN
    1        02        2   NaN  81.0
    """
    if session in data.columns:
        raise ReshapeError(
            f"the table already has a column {session!r}; pass session= another name"
        )
    regex = re.compile(pattern)
    found: dict[str, dict[int, str]] = {}
    for col in data.columns:
        m = regex.match(str(col))
        if m and (stubs is None or m.group("stub") in stubs):
            found.setdefault(m.group("stub"), {})[int(m.group("session"))] = col
    if not found:
        raise ReshapeError(
            f"no column matches the per-session pattern {pattern!r} "
            f"(columns: {list(map(str, data.columns))[:12]})"
        )
    measured = [c for cols in found.values() for c in cols.values()]
    keep = [c for c in data.columns if c not in measured]
    sessions = sorted({s for cols in found.values() for s in cols})
    pieces = []
    for s in sessions:
        piece = data[keep].copy()
        piece[session] = s
        for stub, cols in found.items():
            piece[stub] = data[cols[s]] if s in cols else np.nan
        piece["__order"] = np.arange(len(data))
        pieces.append(piece)
    out = pd.concat(pieces)
    out = out.sort_values(["__order", session], kind="stable").drop(columns="__order")
    if dropna:
        out = out[out[list(found)].notna().any(axis=1)]
    out.attrs = dict(data.attrs)
    return out


def to_wide(
    data: pd.DataFrame,
    *,
    client: str = "client_id",
    session: str = "session",
    keys: Sequence[str] = (),
    values: Sequence[str] | None = None,
    suffix: str = "_s{session}",
) -> pd.DataFrame:
    """One row per client (x `keys`) with per-session columns ``{column}_s{session}``.

    Parameters
    ----------
    data : DataFrame
        Long table, one row per client x session (x `keys`).
    client, session : str
        Column names.
    keys : sequence of str
        Further row-identifying columns (e.g. ``therapist_id``, ``rater``).
    values : sequence of str, optional
        Columns to spread; default every column other than client, session and keys.
    suffix : str
        Suffix format, with ``{session}``.

    Returns
    -------
    DataFrame
        Sorted by client and keys; columns value by value, sessions ascending. Index: the first
        file ``row`` of each client when the input index is named ``row``.

    Raises
    ------
    ReshapeError
        A missing or non-integer session, or a client x session (x keys) given twice (rows named).

    Notes
    -----
    A thin, checked wrapper over `DataFrame.pivot`: it refuses duplicated keys instead of
    aggregating them, and names the rows.

    Examples
    --------
    >>> long = pd.DataFrame({"client_id": ["01", "01", "02"], "session": [1, 2, 1],
    ...                      "wai": [3.5, 3.75, 4.0]})
    >>> to_wide(long)
      client_id  wai_s1  wai_s2
    0        01     3.5    3.75
    1        02     4.0     NaN
    """
    ids = [client, *keys]
    for col in [*ids, session]:
        if col not in data.columns:
            raise ReshapeError(f"column {col!r} is missing (columns: {list(data.columns)[:12]})")
    ses = pd.to_numeric(data[session], errors="coerce")
    bad = ses.isna() | (ses % 1 != 0)
    if bad.any():
        raise ReshapeError(
            f"column {session!r} must hold whole numbers; rows {list(data.index[bad][:10])} hold "
            f"{list(data.loc[bad, session][:10])}"
        )
    dup = data.assign(**{session: ses}).duplicated(subset=[*ids, session], keep=False)
    if dup.any():
        raise ReshapeError(
            f"{int(dup.sum())} rows share a {' x '.join([*ids, session])}: rows "
            f"{list(data.index[dup][:10])}; remove the duplicates (see validate) first"
        )
    if values is None:
        values = [c for c in data.columns if c not in (*ids, session)]
    frame = data.assign(**{session: ses.astype("int64")})
    wide = frame.pivot(index=ids, columns=session, values=list(values))
    wide.columns = [f"{v}{suffix.format(session=s)}" for v, s in wide.columns]
    wide = wide.reset_index()
    if data.index.name == "row":
        first = (
            pd.Series(data.index, index=data.index)
            .groupby([data[c].to_numpy() for c in ids], sort=True)
            .min()
        )
        wide.index = pd.Index(first.to_numpy(), name="row")
    wide.attrs = dict(data.attrs)
    return wide
