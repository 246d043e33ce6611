"""The instrument registry: loads instrument definitions (YAML files) and looks them up.

Every questionnaire the library can score is described by one YAML file in
``alliance_lib/instruments/`` (keys as data, never as code). A definition names the item
count, the response scale, the reverse-keyed items, the subscales, the scoring metric, the
missing-item limits, the norms (cutoff, reliable change, severity bands) and, for every one of
these facts, its source and status:

``verified``
    confirmed in at least two independent sources (tag V2 in the project's reference note);
``single_source``
    found in one source only (S1);
``uncertain``
    inferred, recalled or contradicted between sources (UNCERTAIN): results that rely on it
    say so, so that reports can footnote it;
``local``
    a rule that is ours, not the manual's (e.g. a missing-item limit where no manual gives one).

Users add their own instruments by writing the same kind of file into a folder and passing
``folder=`` to :func:`list_instruments`, :func:`get_instrument` or :func:`load_instruments`.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import yaml

from alliance_lib.errors import DefinitionError
from alliance_lib.results import to_jsonable

__all__ = [
    "FACT_STATUSES",
    "Fact",
    "Instrument",
    "InstrumentError",
    "UnknownInstrumentError",
    "get_instrument",
    "list_instruments",
    "load_instrument",
    "load_instruments",
]

#: Allowed values of ``facts.<name>.status`` in a definition file.
FACT_STATUSES = ("verified", "single_source", "uncertain", "local")
METRICS = ("mean", "sum", "mean_x10")
DIRECTIONS = ("higher_is_better", "higher_is_worse")
MISSING_RULES = ("prorate", "impute_subscale_mean")
CLINICAL_IF = (">=", ">", "<=", "<")
BUILTIN_FOLDER = Path(__file__).parent / "instruments"

_TOP_KEYS = {
    "id": True,
    "name": True,
    "prefix": False,
    "citation": True,
    "license": False,
    "n_items": True,
    "scale": True,
    "reverse": True,
    "subscales": False,
    "metric": True,
    "missing": True,
    "direction": True,
    "norms": False,
    "facts": True,
    "notes": False,
}
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class InstrumentError(DefinitionError):
    """A malformed instrument definition.

    Attributes
    ----------
    file : str or None
        The definition file.
    field : str or None
        The offending field, as a dotted path (e.g. ``subscales.goal``).
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        where = []
        if file is not None:
            where.append(f"file {file}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class UnknownInstrumentError(DefinitionError, LookupError):
    """An instrument id that is not in the registry (the message suggests near misses)."""


@dataclass(frozen=True)
class Fact:
    """Provenance of one fact of an instrument definition.

    Attributes
    ----------
    status : str
        One of :data:`FACT_STATUSES`.
    source : str
        Where the fact comes from (reference note section and the sources it cites), or, for a
        ``local`` rule, why we chose it.
    """

    status: str
    source: str


@dataclass(frozen=True, eq=False)
class Instrument:
    """One questionnaire definition (immutable).

    Attributes
    ----------
    id, name, prefix, citation : str
        Identifier (e.g. ``"wai-sr"``), full name, column prefix (item columns are
        ``{prefix}_{n}``) and reference.
    n_items : int
        Number of items, numbered 1 to ``n_items``.
    scale_min, scale_max : float
        Response scale.
    integer_scale : bool
        Whether answers must be whole numbers (False for visual-analogue marks).
    reverse : tuple of int
        Reverse-keyed items, scored ``scale_min + scale_max - x``.
    subscales : mapping of str to tuple of int
        Subscale name to item numbers (``total`` is implicit: all items).
    metric : {'mean', 'sum', 'mean_x10'}
        Default scoring metric.
    direction : {'higher_is_better', 'higher_is_worse'}
        Meaning of a higher score.
    missing_rule : {'prorate', 'impute_subscale_mean'}
        How a scale with missing items (within its limit) is scored.
    max_missing : mapping of str to int
        Scale name (``total`` or a subscale) to the largest number of missing items allowed.
    total_requires_subscales, subscales_require_total : bool
        Whether the total is scored only when every subscale is, and the other way round.
    norms : mapping
        ``cutoff`` (value, clinical_if, scale), ``reliable_change`` (points, confidence, scale)
        and ``bands`` (list of label / lower bound, on ``bands_scale``); absent entries are None.
    facts : mapping of str to Fact
        Provenance of each fact (scale, reverse, subscales, metric, missing_rule, cutoff, ...).
    file : str or None
        The definition file.

    Examples
    --------
    >>> wai = get_instrument("wai-sr")
    >>> wai.prefix, wai.n_items, wai.scale_min, wai.scale_max, wai.reverse
    ('wai_sr', 12, 1, 5, ())
    >>> wai.subscales["goal"]
    (4, 6, 8, 11)
    >>> wai.item_columns("bond")
    ('wai_sr_3', 'wai_sr_5', 'wai_sr_7', 'wai_sr_9')
    """

    id: str
    name: str
    prefix: str
    citation: str
    n_items: int
    scale_min: float
    scale_max: float
    integer_scale: bool
    reverse: tuple[int, ...]
    subscales: MappingProxyType
    metric: str
    direction: str
    missing_rule: str
    max_missing: MappingProxyType
    total_requires_subscales: bool = False
    subscales_require_total: bool = False
    norms: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    facts: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    license: str | None = None
    notes: str | None = None
    file: str | None = None

    def __hash__(self) -> int:
        return hash((self.id, self.prefix, self.n_items, self.reverse))

    def __reduce__(self):
        # read-only mappings do not pickle: rebuild from plain dicts (so plain pickle, e.g. of a
        # Dask task, never falls back to pickling by value)
        state = {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}
        return (_rebuild_instrument, (state,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instrument):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"Instrument(id={self.id!r}, prefix={self.prefix!r}, n_items={self.n_items}, "
            f"scale={self.scale_min}-{self.scale_max}, metric={self.metric!r})"
        )

    @property
    def items(self) -> tuple[int, ...]:
        """Item numbers 1 .. n_items."""
        return tuple(range(1, self.n_items + 1))

    @property
    def columns(self) -> tuple[str, ...]:
        """Item column names ``{prefix}_1 .. {prefix}_{n_items}``."""
        return tuple(f"{self.prefix}_{i}" for i in self.items)

    @property
    def scales(self) -> dict[str, tuple[int, ...]]:
        """Every scored scale: ``total`` (all items) first, then the subscales."""
        return {"total": self.items, **dict(self.subscales)}

    @property
    def score_columns(self) -> tuple[str, ...]:
        """Scored column names: ``{prefix}_total`` then ``{prefix}_{subscale}``."""
        return tuple(f"{self.prefix}_{name}" for name in self.scales)

    def item_columns(self, scale: str = "total") -> tuple[str, ...]:
        """Item column names of one scale (``total`` = all items)."""
        scales = self.scales
        if scale not in scales:
            raise KeyError(f"{self.id} has no scale {scale!r}; scales are {list(scales)}")
        return tuple(f"{self.prefix}_{i}" for i in scales[scale])

    def score_range(self, scale: str = "total", metric: str | None = None) -> tuple[float, float]:
        """Smallest and largest possible score of a scale under a metric.

        Examples
        --------
        >>> get_instrument("oq-45.2").score_range("total")
        (0, 180)
        >>> get_instrument("wai-sr").score_range("goal", metric="sum")
        (4, 20)
        """
        metric = metric or self.metric
        n = len(self.scales[scale])
        if metric == "mean":
            return (self.scale_min, self.scale_max)
        if metric == "sum":
            return (n * self.scale_min, n * self.scale_max)
        return (10 * self.scale_min, 10 * self.scale_max)

    @property
    def uncertain(self) -> tuple[str, ...]:
        """Names of facts whose status is ``uncertain``."""
        return tuple(k for k, f in self.facts.items() if f.status == "uncertain")

    @property
    def local_rules(self) -> tuple[str, ...]:
        """Names of facts that are our own rules (status ``local``)."""
        return tuple(k for k, f in self.facts.items() if f.status == "local")

    def facts_for(self, scale: str = "total", *, prorated: bool = True) -> tuple[str, ...]:
        """Facts a score of ``scale`` relies on (for provenance and footnotes).

        A total relies on the response scale, the reverse key and the metric; a subscale also on
        the subscale key; a score computed with missing items also on the missing-item rule.
        """
        used = ["scale", "reverse", "metric"]
        if scale != "total":
            used.append("subscales")
        if prorated:
            used.append("missing_rule")
        return tuple(u for u in used if u in self.facts)

    def uncertain_facts(self, scale: str = "total", *, prorated: bool = True) -> tuple[str, ...]:
        """The facts behind a score of ``scale`` that are marked uncertain.

        Examples
        --------
        >>> get_instrument("wai-s").uncertain_facts("goal")
        ('subscales',)
        >>> get_instrument("wai-s").uncertain_facts("total")
        ()
        """
        return tuple(
            f
            for f in self.facts_for(scale, prorated=prorated)
            if self.facts[f].status == "uncertain"
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict of the definition."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "citation": self.citation,
            "n_items": self.n_items,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "integer_scale": self.integer_scale,
            "reverse": list(self.reverse),
            "subscales": {k: list(v) for k, v in self.subscales.items()},
            "metric": self.metric,
            "direction": self.direction,
            "missing_rule": self.missing_rule,
            "max_missing": dict(self.max_missing),
            "total_requires_subscales": self.total_requires_subscales,
            "subscales_require_total": self.subscales_require_total,
            "norms": to_jsonable(self.norms),
            "facts": {k: {"status": f.status, "source": f.source} for k, f in self.facts.items()},
            "license": self.license,
            "notes": self.notes,
        }


def _thaw(obj: Any) -> Any:
    """Read-only mappings (at any depth) as plain dicts, for pickling."""
    if isinstance(obj, MappingProxyType | dict):
        return {k: _thaw(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and type(obj) is tuple:
        return [_thaw(v) for v in obj]  # (frozen back into a tuple by _freeze)
    return obj


def _rebuild_instrument(state: dict) -> Instrument:
    return Instrument(**{k: _freeze(v) for k, v in state.items()})


def _freeze(obj: Any) -> Any:
    if isinstance(obj, dict):
        return MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return tuple(_freeze(v) for v in obj)
    return obj


# ---------------------------------------------------------------------------------------------
# Parsing and checking one definition
# ---------------------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _item_list(value: Any, n_items: int, fail, name: str) -> tuple[int, ...]:
    if value is None:
        value = []
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        fail(name, f"must be a list of item numbers, got {value!r}")
    bad = [v for v in value if not 1 <= v <= n_items]
    if bad:
        fail(name, f"item numbers {bad} are outside 1-{n_items}")
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        fail(name, f"item numbers {dup} are listed twice")
    return tuple(value)


def _parse(raw: Any, file: str) -> Instrument:
    def fail(fld: str | None, msg: str):
        raise InstrumentError(msg, file=file, field=fld)

    if not isinstance(raw, dict):
        fail(None, f"the file must hold a mapping of fields, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        hints = {k: difflib.get_close_matches(k, list(_TOP_KEYS), n=1) for k in unknown}
        hint = "; ".join(f"did you mean '{h[0]}'?" for h in hints.values() if h)
        fail(unknown[0], f"unknown field(s) {unknown}. {hint}".strip())
    for key, required in _TOP_KEYS.items():
        if required and key not in raw:
            fail(key, "is required but missing")

    ident = raw["id"]
    if not isinstance(ident, str) or not ident.strip():
        fail("id", f"must be a non-empty string, got {ident!r}")
    for key in ("name", "citation"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            fail(key, f"must be a non-empty string, got {raw[key]!r}")
    prefix = raw.get("prefix") or ident.lower().replace("-", "_").replace(".", "_")
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        fail("prefix", f"must be lower-case letters, digits and '_', got {prefix!r}")

    n_items = raw["n_items"]
    if not _is_int(n_items) or n_items < 1:
        fail("n_items", f"must be a positive integer, got {n_items!r}")

    scale = raw["scale"]
    if not isinstance(scale, dict):
        fail("scale", "must be a mapping with min, max, integer")
    for key in ("min", "max", "integer"):
        if key not in scale:
            fail(f"scale.{key}", "is required but missing")
    if not _is_number(scale["min"]) or not _is_number(scale["max"]):
        fail("scale", f"min and max must be numbers, got {scale['min']!r}, {scale['max']!r}")
    if not scale["min"] < scale["max"]:
        fail("scale", f"min ({scale['min']}) must be below max ({scale['max']})")
    if not isinstance(scale["integer"], bool):
        fail("scale.integer", f"must be true or false, got {scale['integer']!r}")

    reverse = _item_list(raw["reverse"], n_items, fail, "reverse")

    subs_raw = raw.get("subscales") or {}
    if not isinstance(subs_raw, dict):
        fail("subscales", "must be a mapping of subscale name to item numbers")
    subscales = {}
    for name, items in subs_raw.items():
        if not isinstance(name, str) or not _PREFIX_RE.match(name) or name == "total":
            fail(f"subscales.{name}", "names must be lower-case identifiers other than 'total'")
        if not items:
            fail(f"subscales.{name}", "must list at least one item")
        subscales[name] = _item_list(items, n_items, fail, f"subscales.{name}")
    # score columns must not collide with item columns or bookkeeping columns
    reserved = {"total", "n_missing", "prorated", "problem"}
    for name in subscales:
        if name in reserved or name.isdigit():
            fail(f"subscales.{name}", f"'{name}' is reserved")

    metric = raw["metric"]
    if metric not in METRICS:
        fail("metric", f"must be one of {METRICS}, got {metric!r}")
    direction = raw["direction"]
    if direction not in DIRECTIONS:
        fail("direction", f"must be one of {DIRECTIONS}, got {direction!r}")

    missing = raw["missing"]
    if not isinstance(missing, dict):
        fail("missing", "must be a mapping with rule and max_missing")
    extra = sorted(
        set(missing)
        - {"rule", "max_missing", "total_requires_subscales", "subscales_require_total"}
    )
    if extra:
        fail(f"missing.{extra[0]}", "unknown field")
    rule = missing.get("rule")
    if rule not in MISSING_RULES:
        fail("missing.rule", f"must be one of {MISSING_RULES}, got {rule!r}")
    max_missing_raw = missing.get("max_missing")
    if not isinstance(max_missing_raw, dict) or "total" not in max_missing_raw:
        fail("missing.max_missing", "must be a mapping of scale name to a count, incl. 'total'")
    scales = {"total": tuple(range(1, n_items + 1)), **subscales}
    max_missing = {}
    for name, k in max_missing_raw.items():
        if name not in scales:
            fail(f"missing.max_missing.{name}", f"is not a scale; scales are {list(scales)}")
        if not _is_int(k) or not 0 <= k < len(scales[name]):
            fail(
                f"missing.max_missing.{name}",
                f"must be an integer from 0 to {len(scales[name]) - 1}, got {k!r}",
            )
        max_missing[name] = k
    for name in scales:  # a subscale without its own limit gets none missing
        max_missing.setdefault(name, 0)
    flags = {}
    for key in ("total_requires_subscales", "subscales_require_total"):
        flags[key] = missing.get(key, False)
        if not isinstance(flags[key], bool):
            fail(f"missing.{key}", f"must be true or false, got {flags[key]!r}")

    norms = _parse_norms(raw.get("norms") or {}, scales, fail)

    facts_raw = raw["facts"]
    if not isinstance(facts_raw, dict):
        fail("facts", "must be a mapping of fact name to {status, source}")
    required_facts = ["scale", "reverse", "metric", "missing_rule"]
    if subscales:
        required_facts.append("subscales")
    required_facts += [k for k in ("cutoff", "reliable_change", "bands") if norms.get(k)]
    for name in required_facts:
        if name not in facts_raw:
            fail(f"facts.{name}", "is required (every fact needs its source and status)")
    facts = {}
    for name, fact in facts_raw.items():
        if not isinstance(fact, dict) or set(fact) != {"status", "source"}:
            fail(f"facts.{name}", "must be a mapping with exactly 'status' and 'source'")
        if fact["status"] not in FACT_STATUSES:
            fail(
                f"facts.{name}.status",
                f"must be one of {FACT_STATUSES}, got {fact['status']!r}",
            )
        if not isinstance(fact["source"], str) or not fact["source"].strip():
            fail(f"facts.{name}.source", "must be a non-empty string")
        facts[name] = Fact(fact["status"], fact["source"].strip())

    for key in ("license", "notes"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            fail(key, "must be a string")

    return Instrument(
        id=ident.strip(),
        name=raw["name"].strip(),
        prefix=prefix,
        citation=" ".join(raw["citation"].split()),
        n_items=n_items,
        scale_min=scale["min"],
        scale_max=scale["max"],
        integer_scale=scale["integer"],
        reverse=reverse,
        subscales=MappingProxyType(subscales),
        metric=metric,
        direction=direction,
        missing_rule=rule,
        max_missing=MappingProxyType(max_missing),
        norms=_freeze(norms),
        facts=MappingProxyType(facts),
        license=raw.get("license"),
        notes=raw.get("notes"),
        file=file,
        **flags,
    )


def _parse_norms(norms: Any, scales: dict, fail) -> dict:
    if not isinstance(norms, dict):
        fail("norms", "must be a mapping")
    extra = sorted(set(norms) - {"cutoff", "reliable_change", "bands", "bands_scale"})
    if extra:
        fail(f"norms.{extra[0]}", "unknown field (cutoff, reliable_change, bands, bands_scale)")
    out = {"cutoff": None, "reliable_change": None, "bands": None, "bands_scale": "total"}
    cutoff = norms.get("cutoff")
    if cutoff is not None:
        if not isinstance(cutoff, dict) or not _is_number(cutoff.get("value")):
            fail("norms.cutoff.value", "must be a number")
        if cutoff.get("clinical_if") not in CLINICAL_IF:
            fail("norms.cutoff.clinical_if", f"must be one of {CLINICAL_IF}")
        scale = cutoff.get("scale", "total")
        if scale not in scales:
            fail("norms.cutoff.scale", f"{scale!r} is not a scale")
        extra = sorted(set(cutoff) - {"value", "clinical_if", "scale", "note"})
        if extra:
            fail(f"norms.cutoff.{extra[0]}", "unknown field")
        out["cutoff"] = {**cutoff, "scale": scale}
    rc = norms.get("reliable_change")
    if rc is not None:
        if not isinstance(rc, dict) or not _is_number(rc.get("points")) or rc["points"] <= 0:
            fail("norms.reliable_change.points", "must be a positive number")
        conf = rc.get("confidence")
        if not _is_number(conf) or not 0 < conf < 1:
            fail("norms.reliable_change.confidence", "must be a number between 0 and 1")
        scale = rc.get("scale", "total")
        if scale not in scales:
            fail("norms.reliable_change.scale", f"{scale!r} is not a scale")
        extra = sorted(set(rc) - {"points", "confidence", "scale", "note"})
        if extra:
            fail(f"norms.reliable_change.{extra[0]}", "unknown field")
        out["reliable_change"] = {**rc, "scale": scale}
    bands = norms.get("bands")
    if bands is not None:
        if not isinstance(bands, list) or not bands:
            fail("norms.bands", "must be a non-empty list of {label, lower}")
        lowers = []
        for i, band in enumerate(bands):
            if (
                not isinstance(band, dict)
                or set(band) != {"label", "lower"}
                or not isinstance(band["label"], str)
                or not _is_number(band["lower"])
            ):
                fail(f"norms.bands[{i}]", "must be a mapping with a text 'label' and a 'lower'")
            lowers.append(band["lower"])
        if any(b <= a for a, b in zip(lowers, lowers[1:], strict=False)):
            fail("norms.bands", f"lower bounds must increase, got {lowers}")
        out["bands"] = bands
        scale = norms.get("bands_scale", "total")
        if scale not in scales:
            fail("norms.bands_scale", f"{scale!r} is not a scale")
        out["bands_scale"] = scale
    return out


# ---------------------------------------------------------------------------------------------
# Loading and lookup
# ---------------------------------------------------------------------------------------------


def load_instrument(path: str | Path) -> Instrument:
    """Load and check one instrument definition file.

    Parameters
    ----------
    path : str or Path
        A YAML definition file.

    Returns
    -------
    Instrument

    Raises
    ------
    InstrumentError
        If the file cannot be read or parsed, or a field is missing or malformed; the message
        names the file and the field.

    Notes
    -----
    Checked: required fields present and no unknown fields (with a "did you mean"); item
    numbers within 1..n_items and not repeated; ``scale.min < scale.max``; metric, direction,
    missing rule and fact statuses from their allowed sets; missing-item limits below the size
    of their scale; band lower bounds increasing; a ``facts`` entry (status and source) for the
    scale, reverse key, subscales, metric, missing rule and every norm present.

    References
    ----------
    Field meanings and statuses follow the project's reference note ``instruments.md``.

    Examples
    --------
    >>> from alliance_lib.registry import BUILTIN_FOLDER
    >>> load_instrument(BUILTIN_FOLDER / "phq-9.yaml").n_items
    9
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstrumentError(f"cannot be read ({exc.strerror})", file=str(path)) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InstrumentError(f"is not valid YAML: {exc}", file=str(path)) from exc
    return _parse(raw, str(path))


def load_instruments(folder: str | Path) -> dict[str, Instrument]:
    """Load every ``*.yaml`` / ``*.yml`` definition in a folder.

    Parameters
    ----------
    folder : str or Path
        Folder holding one definition per file.

    Returns
    -------
    dict of str to Instrument
        Keyed by instrument id, in file-name order.

    Raises
    ------
    InstrumentError
        For a malformed file, a folder that does not exist, or two files sharing an id or a
        prefix.

    Examples
    --------
    >>> from alliance_lib.registry import BUILTIN_FOLDER
    >>> "oq-45.2" in load_instruments(BUILTIN_FOLDER)
    True
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InstrumentError("is not a folder", file=str(folder))
    out: dict[str, Instrument] = {}
    prefixes: dict[str, str] = {}
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    for path in files:
        inst = load_instrument(path)
        key = inst.id.lower()
        if key in out:
            raise InstrumentError(
                f"id {inst.id!r} is already defined in {out[key].file}", file=str(path), field="id"
            )
        if inst.prefix in prefixes:
            raise InstrumentError(
                f"prefix {inst.prefix!r} is already used by {prefixes[inst.prefix]}",
                file=str(path),
                field="prefix",
            )
        prefixes[inst.prefix] = inst.id
        out[key] = inst
    return {inst.id: inst for inst in out.values()}


@functools.lru_cache(maxsize=1)
def _builtin() -> dict[str, Instrument]:
    return load_instruments(BUILTIN_FOLDER)


def _available(folder: str | Path | None) -> dict[str, Instrument]:
    found = dict(_builtin())
    if folder is not None:
        # user definitions override built-in ones with the same id
        user = load_instruments(folder)
        lower = {k.lower(): k for k in found}
        for ident in user:
            found.pop(lower.get(ident.lower(), ident), None)
        prefixes = {v.prefix: v.id for v in found.values()}
        for ident, inst in user.items():
            if inst.prefix in prefixes:
                raise InstrumentError(
                    f"prefix {inst.prefix!r} is already used by the built-in instrument "
                    f"{prefixes[inst.prefix]!r}; choose another prefix",
                    file=inst.file,
                    field="prefix",
                )
            found[ident] = inst
    return found


def get_instrument(instrument: str | Instrument, folder: str | Path | None = None) -> Instrument:
    """Look up an instrument by id (case-insensitive), or pass an Instrument through.

    Parameters
    ----------
    instrument : str or Instrument
        An id such as ``"wai-sr"`` or ``"oq-45.2"``.
    folder : str or Path, optional
        A folder of user definitions, searched before the built-in ones.

    Returns
    -------
    Instrument

    Raises
    ------
    UnknownInstrumentError
        For an unknown id, with "did you mean" suggestions (a column prefix such as ``wai_sr``
        is mapped to its id).

    Notes
    -----
    Built-in definitions are read once per process and cached; a user folder is read on
    every call, so edits to its files take effect immediately.

    Examples
    --------
    >>> get_instrument("OQ-45.2").prefix
    'oq'
    >>> get_instrument("wai_sr")
    Traceback (most recent call last):
    ...
    alliance_lib.registry.UnknownInstrumentError: no instrument 'wai_sr'; did you mean 'wai-sr'?
    """
    if isinstance(instrument, Instrument):
        return instrument
    if not isinstance(instrument, str):
        raise TypeError(f"instrument must be an id or an Instrument, got {type(instrument)}")
    found = _available(folder)
    by_lower = {k.lower(): v for k, v in found.items()}
    key = instrument.strip().lower()
    if key in by_lower:
        return by_lower[key]
    by_prefix = {v.prefix: v.id for v in found.values()}
    if key in by_prefix:  # a column prefix given where an id is expected
        close = [by_prefix[key]]
    else:
        close = difflib.get_close_matches(key, list(by_lower), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownInstrumentError(
        f"no instrument {instrument!r}{hint}" + ("" if close else f" Known: {sorted(found)}")
    )


def list_instruments(folder: str | Path | None = None) -> pd.DataFrame:
    """A table of the available instruments.

    Parameters
    ----------
    folder : str or Path, optional
        A folder of user definitions to include (they override built-ins with the same id).

    Returns
    -------
    DataFrame
        One row per instrument: id, name, prefix, n_items, scale_min, scale_max, reverse,
        subscales, metric, direction, cutoff, reliable_change, uncertain (facts marked
        uncertain), file.

    Examples
    --------
    >>> tab = list_instruments()
    >>> tab.set_index("id").loc["oq-45.2", ["prefix", "metric", "cutoff"]].tolist()
    ['oq', 'sum', '>= 64']
    """
    rows = []
    for inst in _available(folder).values():
        cutoff = inst.norms.get("cutoff")
        rc = inst.norms.get("reliable_change")
        rows.append(
            {
                "id": inst.id,
                "name": inst.name,
                "prefix": inst.prefix,
                "n_items": inst.n_items,
                "scale_min": inst.scale_min,
                "scale_max": inst.scale_max,
                "reverse": ", ".join(map(str, inst.reverse)),
                "subscales": ", ".join(inst.subscales),
                "metric": inst.metric,
                "direction": inst.direction,
                "cutoff": None if cutoff is None else f"{cutoff['clinical_if']} {cutoff['value']}",
                "reliable_change": None if rc is None else rc["points"],
                "uncertain": ", ".join(inst.uncertain),
                "file": inst.file,
            }
        )
    return pd.DataFrame(rows).sort_values("id", ignore_index=True)
