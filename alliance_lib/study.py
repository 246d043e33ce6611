"""The study definition: a YAML file naming the waves' data files, columns, instruments and choices.

Example ``study.yaml``::

    study: Demo alliance study
    data: {1: wave1.csv, 2: wave2.csv, 3: wave3.csv}    # wave -> file, relative to this YAML
    columns: {client: client_id, therapist: therapist_id, session: session}
    missing_codes: [-99, 999]
    instruments: {alliance: wai-sr, outcome: oq-45.2}
    analysis: {trajectory_shape: linear, early_alliance_session: 3}

A wave can instead be a list of **sources** (``waves: {1: {sources: [...]}}``): files read, mapped,
merged and checked by :mod:`alliance_lib.sources` (DESIGN.md, "Study YAML: sources")::

    waves:
      1:
        cutoff: 2026-03-31
        sources:
          - {file: demographics.csv, level: client, columns: {client: "Client ID"}}
          - file: alliance_client.csv
            items: {wai-sr: "wai_{n}"}
            session_from: {date: completed_on, match: alliance_therapist.csv, within_days: 3}
          - {file: alliance_therapist.csv, rater: therapist}
    instruments: {alliance: wai-sr, outcome: {id: phq-9, total: phq9_total}}

Optional keys: ``slug`` (folder name of the reports; default from ``study``), ``therapist_alliance``
(``true``: every wave must hold therapist-rated alliance rows, ``rater = therapist``; a wave
without any stops before a report starts), ``covariates`` (client- or
therapist-level columns for the trajectory model), ``privacy: {key_file, salt, small_cell,
pseudonym_length}`` (the pseudonym key: see :func:`alliance_lib.privacy.resolve_key`; the
length: :func:`alliance_lib.privacy.pseudonym_length`), ``seed``,
``instrument_folder`` (a folder of user instrument definitions, relative to the YAML).
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alliance_lib.errors import DefinitionError

__all__ = ["Source", "Study", "StudyError", "load_study"]

SHAPES = ("linear", "quadratic", "log", "piecewise")
KNOWN_KEYS = {
    "study",
    "slug",
    "data",
    "waves",
    "columns",
    "missing_codes",
    "instruments",
    "therapist_alliance",
    "covariates",
    "analysis",
    "privacy",
    "seed",
    "instrument_folder",
}
COLUMN_ROLES = {
    "client": "client_id",
    "therapist": None,
    "session": "session",
    "rater": None,
    "date": None,
}
#: Rater roles of the canonical long table (interpreter: interpreter-mediated therapy).
RATER_ROLES = ("client", "therapist", "observer", "interpreter")
ANALYSIS_DEFAULTS = {
    "trajectory_shape": "linear",
    "knot": None,
    "early_alliance_session": 3,
    "compare_shapes": list(SHAPES[:3]),
    "rupture_preset": "stiles",
    "rupture_min_drop": 0.5,
    "sudden_gain_cutoff": None,
    # ended vs ongoing clients (alliance_lib.treatment_status): a client seen within this many
    # days of the wave's data cut-off is still in treatment; end_of_treatment names an optional
    # data column marking the end of treatment (yes/no, 1/0 or the end date)
    "ongoing_within_days": 28,
    "end_of_treatment": None,
    # session at which intercepts, ICCs and curves are stated; None = first alliance session
    "time_zero": None,
}


class StudyError(DefinitionError):
    """A study YAML that cannot be used; names the file, the key and what is expected."""

    def __init__(self, file: str | Path, key: str | None, message: str):
        self.file = str(file)
        self.key = key
        where = f"{self.file}" + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Source:
    """One input file of a wave in the sources form (see DESIGN.md, "Study YAML: sources").

    Attributes
    ----------
    kind : {"file", "redcap", "qualtrics"}
        How the file is read: :func:`~alliance_lib.io.read_table`,
        :func:`~alliance_lib.redcap.read_redcap` or :func:`~alliance_lib.qualtrics.read_qualtrics`.
    path : Path
        The file (or Parquet folder), resolved; ``name`` is the path as written in the YAML.
    level : {"session", "client"}
        ``client``: one row per client, its values carried to every session row of the client.
    columns : dict
        Canonical role (client, therapist, session, rater, date, rater_id, code, score) -> column.
    items : dict
        Instrument id -> item column pattern with ``{n}`` (``"Q2_{n}"``).
    rater, rater_id, combine :
        The rater role of every row; the column naming the rater when several raters of one role
        rate a session; ``mean`` (one combined row) or ``keep`` (one row per rater).
    session_from, session_offset :
        How the session number is found (a column, ``event``, ``instance``, ``{date: col}`` or
        ``{date: col, match: file, within_days: n}``) and a number added to it.
    date_format, layout, pattern, codes :
        Date parsing format; ``long``, ``wide`` (with ``pattern``) or ``coded`` (one row per
        measure, ``codes``: code -> column name); REDCap/Qualtrics options in ``options``.
    """

    kind: str
    path: Path
    name: str
    level: str = "session"
    columns: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    rater: str | None = None
    rater_id: str | None = None
    combine: str = "mean"
    session_from: Any = None
    session_offset: int = 0
    date_format: str | None = None
    layout: str = "long"
    pattern: tuple[str, ...] = ()
    codes: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        """Every file this source reads: the file (each file of a Parquet folder, sorted) and,
        for REDCap, its data dictionary."""
        out = _files_of(self.path)
        if self.options.get("dictionary") is not None:
            out.append(self.options["dictionary"])
        return out


def _files_of(path: Path) -> list[Path]:
    """A file, or every file under a folder (a partitioned Parquet dataset), sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


@dataclass(frozen=True)
class Study:
    """A loaded and checked study definition (see the module docstring for the YAML keys)."""

    path: Path
    name: str
    slug: str
    data: dict[int, Path]
    columns: dict[str, str | None]
    missing_codes: tuple[float | str, ...]
    instruments: dict[str, str]
    therapist_alliance: bool
    covariates: tuple[str, ...]
    analysis: dict[str, Any]
    salt_configured: str | None = field(repr=False)
    key_file: Path | None
    small_cell: int
    seed: int
    instrument_folder: Path | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    #: wave -> its sources (waves given in the sources form)
    sources: dict[int, tuple[Source, ...]] = field(default_factory=dict)
    #: wave -> last date of data kept (sources form, ``cutoff``)
    cutoffs: dict[int, _dt.date] = field(default_factory=dict)
    #: instrument role -> pre-scored total column (``instruments: {outcome: {id:, total:}}``)
    totals: dict[str, str] = field(default_factory=dict)
    #: hex digits of the pseudonyms (``privacy.pseudonym_length``); None: chosen per wave from the
    #: number of IDs (:func:`alliance_lib.privacy.pseudonym_length`)
    pseudonym_length: int | None = None

    @functools.cached_property
    def pseudonym_key(self):
        """The secret key of the pseudonyms and its source (:func:`alliance_lib.privacy.resolve_key`;
        resolved on first use, which may create the study's key file)."""
        from alliance_lib.privacy import resolve_key

        return resolve_key(self)

    @property
    def salt(self) -> str:
        """The pseudonym key itself (never printed or written to an output)."""
        return self.pseudonym_key.key

    @property
    def waves(self) -> list[int]:
        return sorted(set(self.data) | set(self.sources))

    def wave_file(self, wave: int) -> Path:
        """The one data file of a wave given as ``data: {wave: file}``."""
        if wave not in self.data and wave not in self.sources:
            raise StudyError(
                self.path, "data", f"wave {wave} is not defined; defined waves: {self.waves}"
            )
        if wave not in self.data:
            raise StudyError(
                self.path,
                f"waves.{wave}",
                f"wave {wave} is read from {len(self.sources[wave])} sources, not one file; "
                "use Study.wave_files(wave)",
            )
        return self.data[wave]

    def wave_files(self, wave: int) -> list[Path]:
        """Every input file of a wave, in the order of the YAML (for provenance hashing): each
        source's file, a REDCap data dictionary, every file of a Parquet folder.

        Examples
        --------
        >>> from pathlib import Path
        >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
        >>> [p.name for p in study.wave_files(2)]
        ['wave2.csv']
        """
        if wave in self.data:
            return _files_of(self.data[wave])
        if wave not in self.sources:
            raise StudyError(
                self.path, "data", f"wave {wave} is not defined; defined waves: {self.waves}"
            )
        out: list[Path] = []
        for src in self.sources[wave]:
            out += [f for f in src.files if f not in out]
        return out


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-(alliance-)?study$", "", slug) or "study"


def _expect(cond: bool, file: Path, key: str, message: str) -> None:
    if not cond:
        raise StudyError(file, key, message)


# ------------------------------------------------------------------------ sources: key table

SOURCE_ROLES = ("client", "therapist", "session", "rater", "date", "code", "score")


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_texts(v: Any) -> bool:
    return isinstance(v, list) and all(_is_text(x) for x in v)


def _is_columns(v: Any) -> bool:
    return isinstance(v, dict) and all(k in SOURCE_ROLES and _is_text(c) for k, c in v.items())


def _is_items(v: Any) -> bool:
    return isinstance(v, dict) and all(
        _is_text(k) and _is_text(p) and "{n}" in p for k, p in v.items()
    )


def _is_pattern(v: Any) -> bool:
    pats = [v] if isinstance(v, str) else v
    return (
        isinstance(pats, list)
        and len(pats) > 0
        and all(
            isinstance(p, str)
            and p.count("{session}") == 1
            and re.search(r"\{(n|column)\}", p.split("{session}")[0]) is not None
            for p in pats
        )
    )


def _is_session_from(v: Any) -> bool:
    if _is_text(v):
        return True
    if not isinstance(v, dict) or not _is_text(v.get("date")):
        return False
    if set(v) - {"date", "match", "within_days"}:
        return False
    if "match" in v:
        return (
            _is_text(v["match"])
            and _is_int(v.get("within_days", 0))
            and v.get("within_days", 0) >= 0
        )
    return "within_days" not in v


def _is_regex(v: Any) -> bool:
    if not _is_text(v):
        return False
    try:
        return re.compile(v).groups >= 1
    except re.error:
        return False


def _is_codes(v: Any) -> bool:
    return isinstance(v, dict) and len(v) > 0 and all(_is_text(c) for c in v.values())


#: key -> (source kinds it applies to, check, what is expected). One line per key: the whole
#: schema of a source (lme4's control-object style rather than a hand-written checker).
SOURCE_KEYS: dict[str, tuple[tuple[str, ...], Callable[[Any], bool], str]] = {
    "file": (("file",), _is_text, "a file or Parquet folder, relative to the study YAML"),
    "redcap": (("redcap",), _is_text, "a REDCap 'CSV (raw data)' export"),
    "qualtrics": (("qualtrics",), _is_text, "a Qualtrics CSV export (numeric values)"),
    "level": (("file",), lambda v: v in ("session", "client"), "session or client"),
    "columns": (
        ("file", "redcap", "qualtrics"),
        _is_columns,
        f"a mapping role -> column name; roles: {', '.join(SOURCE_ROLES)}",
    ),
    "items": (
        ("file", "redcap", "qualtrics"),
        _is_items,
        "a mapping instrument id -> column pattern with {n}, e.g. {wai-sr: 'Q2_{n}'}",
    ),
    "rater": (
        ("file", "redcap", "qualtrics"),
        lambda v: v in RATER_ROLES,
        f"one of {', '.join(RATER_ROLES)}",
    ),
    "rater_id": (("file",), _is_text, "the column naming each rater (e.g. coder)"),
    "combine": (("file",), lambda v: v in ("mean", "keep"), "mean or keep"),
    "session_from": (
        ("file", "redcap", "qualtrics"),
        _is_session_from,
        "a column, event, instance, {date: column} or "
        "{date: column, match: other source file, within_days: n}",
    ),
    "session_offset": (("file", "redcap", "qualtrics"), _is_int, "a whole number, e.g. -1"),
    "date_format": (("file", "qualtrics"), lambda v: _is_text(v) and "%" in v, "e.g. '%d/%m/%Y'"),
    "layout": (("file",), lambda v: v in ("long", "wide", "coded"), "long, wide or coded"),
    "pattern": (
        ("file",),
        _is_pattern,
        "a column pattern with {session} after {n} or {column}, e.g. 'wai{n}_s{session}' "
        "(or a list of them)",
    ),
    "codes": (("file",), _is_codes, "a mapping code -> column name, e.g. {720433000: phq9_total}"),
    "dictionary": (("redcap",), _is_text, "the REDCap data dictionary (CSV)"),
    "event_session": (
        ("redcap",),
        _is_regex,
        "a regular expression with a group for the session number, e.g. 'session_(\\d+)'",
    ),
    "intake_events": (("redcap",), _is_texts, "a list of event names that are session 0"),
    "responses": (("qualtrics",), lambda v: v in ("finished", "all"), "finished or all"),
}
SOURCE_DEFAULTS = {"level": "session", "combine": "mean", "session_offset": 0, "layout": "long"}
WAVE_KEYS = {"cutoff", "sources"}


def _parse_source(path: Path, base: Path, key: str, item: Any, check_files: bool) -> Source:
    """One entry of ``waves.N.sources`` checked against `SOURCE_KEYS` and the few cross-key rules."""
    _expect(isinstance(item, dict), path, key, "expected a mapping, e.g. {file: alliance.csv}")
    kinds = [k for k in ("file", "redcap", "qualtrics") if k in item]
    _expect(
        len(kinds) == 1,
        path,
        key,
        "give exactly one of file:, redcap: or qualtrics: (the file to read)",
    )
    kind = kinds[0]
    for name, value in item.items():
        _expect(
            name in SOURCE_KEYS,
            path,
            f"{key}.{name}",
            f"unknown source key; known keys: {', '.join(SOURCE_KEYS)}",
        )
        applies, check, expected = SOURCE_KEYS[name]
        _expect(
            kind in applies,
            path,
            f"{key}.{name}",
            f"applies to {' or '.join(a + ':' for a in applies)} sources, not {kind}:",
        )
        _expect(check(value), path, f"{key}.{name}", f"expected {expected}, got {value!r}")
    opts = {**SOURCE_DEFAULTS, **item}
    full = (base / item[kind]).resolve()
    if check_files:
        _expect(full.exists(), path, f"{key}.{kind}", f"file {item[kind]} does not exist")
    options = {}
    if kind == "redcap":
        options = {
            "dictionary": (base / item["dictionary"]).resolve() if "dictionary" in item else None,
            "event_session": item.get("event_session", r"session_(\d+)"),
            "intake_events": tuple(item.get("intake_events", ("intake",))),
        }
        if check_files and options["dictionary"] is not None:
            _expect(
                options["dictionary"].is_file(),
                path,
                f"{key}.dictionary",
                f"file {item['dictionary']} does not exist",
            )
    elif kind == "qualtrics":
        options = {"responses": item.get("responses", "finished")}
    layout = opts["layout"]
    pattern = opts.get("pattern")
    _expect(
        (layout == "wide") == (pattern is not None),
        path,
        f"{key}.pattern" if layout == "wide" else f"{key}.layout",
        "layout: wide needs a pattern (e.g. 'wai{n}_s{session}'), and a pattern needs layout: wide",
    )
    cols = dict(opts.get("columns", {}))
    if layout == "coded":
        _expect(
            "codes" in item and {"code", "score"} <= set(cols),
            path,
            f"{key}.codes",
            "layout: coded needs codes: {code: column} and columns: {code: ..., score: ...}",
        )
    _expect(
        "combine" not in item or "rater_id" in item,
        path,
        f"{key}.combine",
        "combine applies to several raters of one role: name their column with rater_id",
    )
    _expect(
        opts["level"] == "session" or not ({"session", "rater", "date"} & set(cols)),
        path,
        f"{key}.columns",
        "a level: client source has one row per client: no session, rater or date column",
    )
    session_from = opts.get("session_from")
    if kind == "redcap":
        _expect(
            session_from is None
            or session_from in ("event", "instance")
            or isinstance(session_from, dict),
            path,
            f"{key}.session_from",
            "expected event, instance or {date: field} for a REDCap export",
        )
    return Source(
        kind=kind,
        path=full,
        name=str(item[kind]),
        level=opts["level"],
        columns=cols,
        items=dict(opts.get("items", {})),
        rater=opts.get("rater"),
        rater_id=opts.get("rater_id"),
        combine=opts["combine"],
        session_from=session_from,
        session_offset=opts["session_offset"],
        date_format=opts.get("date_format"),
        layout=layout,
        pattern=tuple([pattern] if isinstance(pattern, str) else pattern or ()),
        codes={str(k): v for k, v in (opts.get("codes") or {}).items()},
        options=options,
    )


def _parse_waves(
    path: Path, base: Path, waves: Any, check_files: bool
) -> tuple[dict[int, tuple[Source, ...]], dict[int, _dt.date]]:
    _expect(
        isinstance(waves, dict) and len(waves) > 0,
        path,
        "waves",
        "expected a mapping wave -> {sources: [...]}, e.g. 'waves: {1: {sources: [{file: a.csv}]}}'",
    )
    sources: dict[int, tuple[Source, ...]] = {}
    cutoffs: dict[int, _dt.date] = {}
    for wave, spec in waves.items():
        key = f"waves.{wave}"
        _expect(
            _is_int(wave) and wave >= 1,
            path,
            "waves",
            f"wave {wave!r} should be a whole number >= 1",
        )
        _expect(isinstance(spec, dict), path, key, "expected {sources: [...]} (and cutoff:)")
        unknown = sorted(set(spec) - WAVE_KEYS)
        _expect(
            not unknown,
            path,
            f"{key}.{unknown[0] if unknown else ''}",
            "unknown key; known: cutoff, sources",
        )
        items = spec.get("sources")
        _expect(
            isinstance(items, list) and len(items) > 0,
            path,
            f"{key}.sources",
            "expected a list of sources, e.g. [{file: alliance.csv}]",
        )
        parsed = tuple(
            _parse_source(path, base, f"{key}.sources[{i}]", item, check_files)
            for i, item in enumerate(items)
        )
        names = {s.name for s in parsed} | {s.path.name for s in parsed}
        for i, src in enumerate(parsed):
            match = src.session_from.get("match") if isinstance(src.session_from, dict) else None
            _expect(
                match is None or match in names,
                path,
                f"{key}.sources[{i}].session_from.match",
                f"{match!r} is not a source of wave {wave}; sources: {', '.join(s.name for s in parsed)}",
            )
        _expect(
            any(s.level == "session" for s in parsed),
            path,
            f"{key}.sources",
            "every source is level: client; at least one source must hold session rows",
        )
        sources[wave] = parsed
        if "cutoff" in spec:
            cut = spec["cutoff"]
            if isinstance(cut, str):
                try:
                    cut = _dt.date.fromisoformat(cut)
                except ValueError:
                    cut = None
            _expect(
                isinstance(cut, _dt.date),
                path,
                f"{key}.cutoff",
                f"expected a date YYYY-MM-DD, got {spec['cutoff']!r}",
            )
            cutoffs[wave] = cut
    return sources, cutoffs


def _parse_instruments(path: Path, raw: Any, folder: Path | None) -> tuple[dict, dict]:
    """``instruments:`` roles -> ids, and the pre-scored total columns (``{id:, total:}``)."""
    _expect(
        isinstance(raw, dict) and ("alliance" in raw or "outcome" in raw),
        path,
        "instruments",
        "expected at least 'instruments: {alliance: <instrument id>}'",
    )
    bad = sorted(set(raw) - {"alliance", "outcome"})
    _expect(not bad, path, "instruments", "roles are 'alliance' and 'outcome'")
    ids, totals = {}, {}
    for role, spec in raw.items():
        if isinstance(spec, dict):
            _expect(
                set(spec) <= {"id", "total"}
                and _is_text(spec.get("id"))
                and _is_text(spec.get("total")),
                path,
                f"instruments.{role}",
                "expected an instrument id, or {id: phq-9, total: <total column>} for pre-scored totals",
            )
            ids[role], totals[role] = spec["id"], spec["total"]
        else:
            ids[role] = spec
    _check_instruments(path, ids, folder)
    return ids, totals


def load_study(path: str | Path, *, check_files: bool = True) -> Study:
    """Load and check a study YAML.

    Parameters
    ----------
    path : str or Path
        The study YAML. Data paths in it are relative to its folder.
    check_files : bool
        Check that every wave's data file exists.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        The file is missing or not valid YAML, a required key is absent, a value has the wrong
        type, a data file does not exist, or an unknown key is given (with the known keys listed).

    Examples
    --------
    >>> from pathlib import Path
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> study.slug, study.waves, study.instruments["alliance"]
    ('demo', [1, 2, 3], 'wai-sr')
    """
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, None, "file not found; give the path of a study YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError(
            path, None, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    except UnicodeDecodeError as exc:
        raise StudyError(
            path, None, f"not UTF-8 text ({exc.reason}); save the YAML as UTF-8"
        ) from None
    _expect(isinstance(raw, dict), path, None, "expected a mapping of keys (study, data, ...)")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    _expect(
        not unknown,
        path,
        unknown[0] if unknown else "",
        f"unknown key; known keys are {', '.join(sorted(KNOWN_KEYS))}",
    )
    base = path.parent

    name = raw.get("study")
    _expect(
        isinstance(name, str) and name.strip() != "",
        path,
        "study",
        "expected the study's name as text, e.g. 'study: My alliance study'",
    )
    slug = raw.get("slug") or _slugify(name)
    _expect(
        isinstance(slug, str) and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug) is not None,
        path,
        "slug",
        "expected lower-case letters, digits, '-' or '_'",
    )

    data = raw.get("data")
    _expect(
        (isinstance(data, dict) and len(data) > 0) or (data is None and "waves" in raw),
        path,
        "data",
        "expected a mapping wave -> file, e.g. 'data: {1: wave1.csv}' (or waves: with sources)",
    )
    files: dict[int, Path] = {}
    for wave, file in (data or {}).items():
        _expect(
            isinstance(wave, int) and not isinstance(wave, bool) and wave >= 1,
            path,
            "data",
            f"wave {wave!r} should be a whole number >= 1",
        )
        _expect(
            isinstance(file, str) and file != "",
            path,
            "data",
            f"wave {wave}: expected a file name, got {file!r}",
        )
        full = (base / file).resolve()
        if check_files:
            _expect(
                full.is_file() or (full.is_dir() and any(full.rglob("*.parquet"))),
                path,
                "data",
                f"wave {wave}: data file {file} does not exist (nor a folder of Parquet files)",
            )
        files[wave] = full
    sources, cutoffs = (
        _parse_waves(path, base, raw["waves"], check_files) if "waves" in raw else ({}, {})
    )
    both = sorted(set(files) & set(sources))
    _expect(
        not both, path, "waves", f"wave {both[0] if both else ''} is given under data: and waves:"
    )

    cols_raw = raw.get("columns") or {}
    _expect(isinstance(cols_raw, dict), path, "columns", "expected a mapping role -> column name")
    bad_roles = sorted(set(cols_raw) - set(COLUMN_ROLES))
    _expect(
        not bad_roles,
        path,
        "columns",
        f"unknown role {bad_roles[0] if bad_roles else ''!r}; roles are {', '.join(COLUMN_ROLES)}",
    )
    columns = {role: cols_raw.get(role, default) for role, default in COLUMN_ROLES.items()}
    for role, col in columns.items():
        _expect(
            col is None or (isinstance(col, str) and col != ""),
            path,
            f"columns.{role}",
            f"expected a column name, got {col!r}",
        )

    codes = raw.get("missing_codes", []) or []
    _expect(
        isinstance(codes, list)
        and all(
            (isinstance(c, (int, float)) and not isinstance(c, bool)) or _is_text(c) for c in codes
        ),
        path,
        "missing_codes",
        "expected a list of numbers or text codes, e.g. [-99, 999, NASK]",
    )
    codes = [c.strip() if isinstance(c, str) else c for c in codes]

    folder = raw.get("instrument_folder")
    instrument_folder = (base / folder).resolve() if folder else None
    instruments, totals = _parse_instruments(path, raw.get("instruments"), instrument_folder)

    covariates = raw.get("covariates", []) or []
    _expect(
        isinstance(covariates, list) and all(isinstance(c, str) for c in covariates),
        path,
        "covariates",
        "expected a list of column names",
    )

    analysis = dict(ANALYSIS_DEFAULTS)
    a_raw = raw.get("analysis") or {}
    _expect(isinstance(a_raw, dict), path, "analysis", "expected a mapping")
    unknown_a = sorted(set(a_raw) - set(ANALYSIS_DEFAULTS))
    _expect(
        not unknown_a,
        path,
        f"analysis.{unknown_a[0] if unknown_a else ''}",
        f"unknown analysis option; known: {', '.join(ANALYSIS_DEFAULTS)}",
    )
    analysis.update(a_raw)
    _expect(
        analysis["trajectory_shape"] in SHAPES,
        path,
        "analysis.trajectory_shape",
        f"expected one of {', '.join(SHAPES)}, got {analysis['trajectory_shape']!r}",
    )
    _expect(
        analysis["trajectory_shape"] != "piecewise" or isinstance(analysis["knot"], int),
        path,
        "analysis.knot",
        "a piecewise trajectory needs a whole-number knot session",
    )
    _expect(
        isinstance(analysis["early_alliance_session"], int)
        and analysis["early_alliance_session"] >= 1,
        path,
        "analysis.early_alliance_session",
        "expected a session number >= 1",
    )
    _expect(
        analysis["time_zero"] is None
        or (
            isinstance(analysis["time_zero"], int)
            and not isinstance(analysis["time_zero"], bool)
            and analysis["time_zero"] >= 0
        ),
        path,
        "analysis.time_zero",
        "expected a session number >= 0, or leave it out for the first alliance session",
    )
    _expect(
        isinstance(analysis["compare_shapes"], list)
        and all(s in SHAPES for s in analysis["compare_shapes"]),
        path,
        "analysis.compare_shapes",
        f"expected a list drawn from {', '.join(SHAPES)}",
    )

    _expect(
        analysis["rupture_preset"] in ("stiles", "strauss", "gumz"),
        path,
        "analysis.rupture_preset",
        "expected stiles, strauss or gumz",
    )
    for key in ("rupture_min_drop", "sudden_gain_cutoff"):
        value = analysis[key]
        _expect(
            value is None
            or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0),
            path,
            f"analysis.{key}",
            "expected a non-negative number (or leave it out)",
        )
    privacy = raw.get("privacy") or {}
    _expect(isinstance(privacy, dict), path, "privacy", "expected {key_file: ..., small_cell: ...}")
    bad_privacy = sorted(set(privacy) - {"salt", "key_file", "small_cell", "pseudonym_length"})
    _expect(
        not bad_privacy,
        path,
        f"privacy.{bad_privacy[0] if bad_privacy else ''}",
        "unknown privacy option; known: salt, key_file, small_cell, pseudonym_length",
    )
    # the pseudonym key never derives from the study (see alliance_lib.privacy.resolve_key)
    salt = privacy.get("salt")
    _expect(
        salt is None or (isinstance(salt, str) and len(salt) >= 8),
        path,
        "privacy.salt",
        "expected a secret text of at least 8 characters (better: the ALLIANCE_SALT environment "
        "variable or privacy.key_file)",
    )
    key_file = privacy.get("key_file")
    _expect(
        key_file is None or (isinstance(key_file, str) and key_file != ""),
        path,
        "privacy.key_file",
        "expected the path of a key file (relative to this YAML, or ~/...)",
    )
    key_path = None
    if key_file is not None:
        key_path = Path(key_file).expanduser()
        key_path = key_path if key_path.is_absolute() else (base / key_path).resolve()
    small_cell = privacy.get("small_cell", 5)
    _expect(
        isinstance(small_cell, int) and small_cell >= 1,
        path,
        "privacy.small_cell",
        "expected a whole number >= 1",
    )
    pseudonym_length = privacy.get("pseudonym_length")
    _expect(
        pseudonym_length is None
        or (
            isinstance(pseudonym_length, int)
            and not isinstance(pseudonym_length, bool)
            and 8 <= pseudonym_length <= 64
        ),
        path,
        "privacy.pseudonym_length",
        "expected a whole number of hex digits from 8 to 64 (or leave it out: chosen from the "
        "number of IDs)",
    )
    seed = raw.get("seed", 2026)
    _expect(
        isinstance(seed, int) and not isinstance(seed, bool),
        path,
        "seed",
        "expected a whole number",
    )
    therapist_alliance = raw.get("therapist_alliance", False)
    _expect(
        isinstance(therapist_alliance, bool), path, "therapist_alliance", "expected true or false"
    )
    for wave, srcs in sources.items():
        _expect(
            not therapist_alliance
            or any(s.rater == "therapist" or "rater" in s.columns for s in srcs),
            path,
            "therapist_alliance",
            f"wave {wave} has no source with rater: therapist (nor a rater column); add one or "
            "set therapist_alliance: false",
        )
    return Study(
        path=path.resolve(),
        name=name.strip(),
        slug=slug,
        data=files,
        columns=columns,
        missing_codes=tuple(codes),
        instruments=instruments,
        therapist_alliance=therapist_alliance,
        covariates=tuple(covariates),
        analysis=analysis,
        salt_configured=salt,
        key_file=key_path,
        small_cell=small_cell,
        seed=seed,
        instrument_folder=instrument_folder,
        raw=raw,
        sources=sources,
        cutoffs=cutoffs,
        totals=totals,
        pseudonym_length=pseudonym_length,
    )


def _check_instruments(path: Path, instruments: dict, folder: Path | None) -> None:
    """Every named instrument must exist in the registry (or the study's own folder)."""
    from alliance_lib import registry

    for role, ident in instruments.items():
        _expect(isinstance(ident, str), path, f"instruments.{role}", "expected an instrument id")
        try:
            registry.get_instrument(ident, folder=folder)
        except (LookupError, ValueError) as exc:
            known = ", ".join(registry.list_instruments(folder=folder)["id"])
            raise StudyError(
                path,
                f"instruments.{role}",
                f"unknown instrument {ident!r}; known instruments: {known}",
            ) from exc
