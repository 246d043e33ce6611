"""The study definition: a YAML file naming the waves' data files, columns, instruments and choices.

Example ``study.yaml``::

    study: Demo alliance study
    data: {1: wave1.csv, 2: wave2.csv, 3: wave3.csv}    # wave -> file, relative to this YAML
    columns: {client: client_id, therapist: therapist_id, session: session}
    missing_codes: [-99, 999]
    instruments: {alliance: wai-sr, outcome: oq-45.2}
    analysis: {trajectory_shape: linear, early_alliance_session: 3}

Optional keys: ``slug`` (folder name of the reports; default from ``study``), ``therapist_alliance``
(therapist-rated alliance rows, ``rater = therapist``, are present), ``covariates`` (client- or
therapist-level columns for the trajectory model), ``privacy: {key_file, salt, small_cell}`` (the pseudonym key: see
:func:`alliance_lib.privacy.resolve_key`), ``seed``,
``instrument_folder`` (a folder of user instrument definitions, relative to the YAML).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alliance_lib.errors import DefinitionError

__all__ = ["Study", "StudyError", "load_study"]

SHAPES = ("linear", "quadratic", "log", "piecewise")
KNOWN_KEYS = {
    "study",
    "slug",
    "data",
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
class Study:
    """A loaded and checked study definition (see the module docstring for the YAML keys)."""

    path: Path
    name: str
    slug: str
    data: dict[int, Path]
    columns: dict[str, str | None]
    missing_codes: tuple[float, ...]
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
        return sorted(self.data)

    def wave_file(self, wave: int) -> Path:
        if wave not in self.data:
            raise StudyError(
                self.path, "data", f"wave {wave} is not defined; defined waves: {self.waves}"
            )
        return self.data[wave]


def _slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-(alliance-)?study$", "", slug) or "study"


def _expect(cond: bool, file: Path, key: str, message: str) -> None:
    if not cond:
        raise StudyError(file, key, message)


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
        isinstance(data, dict) and len(data) > 0,
        path,
        "data",
        "expected a mapping wave -> file, e.g. 'data: {1: wave1.csv}'",
    )
    files: dict[int, Path] = {}
    for wave, file in data.items():
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
            _expect(full.is_file(), path, "data", f"wave {wave}: data file {full} does not exist")
        files[wave] = full

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
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in codes),
        path,
        "missing_codes",
        "expected a list of numbers, e.g. [-99, 999]",
    )

    instruments = raw.get("instruments")
    _expect(
        isinstance(instruments, dict) and isinstance(instruments.get("alliance"), str),
        path,
        "instruments",
        "expected at least 'instruments: {alliance: <instrument id>}'",
    )
    bad = sorted(set(instruments) - {"alliance", "outcome"})
    _expect(not bad, path, "instruments", "roles are 'alliance' and 'outcome'")
    folder = raw.get("instrument_folder")
    instrument_folder = (base / folder).resolve() if folder else None
    _check_instruments(path, instruments, instrument_folder)

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
    bad_privacy = sorted(set(privacy) - {"salt", "key_file", "small_cell"})
    _expect(
        not bad_privacy,
        path,
        f"privacy.{bad_privacy[0] if bad_privacy else ''}",
        "unknown privacy option; known: salt, key_file, small_cell",
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
    return Study(
        path=path.resolve(),
        name=name.strip(),
        slug=slug,
        data=files,
        columns=columns,
        missing_codes=tuple(codes),
        instruments=dict(instruments),
        therapist_alliance=therapist_alliance,
        covariates=tuple(covariates),
        analysis=analysis,
        salt_configured=salt,
        key_file=key_path,
        small_cell=small_cell,
        seed=seed,
        instrument_folder=instrument_folder,
        raw=raw,
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
