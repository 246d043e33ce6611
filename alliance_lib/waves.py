"""One wave of a study, ready to analyse: read, validated, scored and pseudonymised.

This is the seam between the study definition and every analysis: the report notebook, the
exploration notebook and the command line all start from :func:`prepare_wave`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib._memory import release_memory
from alliance_lib.errors import DataError
from alliance_lib.io import apply_user_missing, parquet_columns, read_table
from alliance_lib.privacy import collision_free_length, pseudonymise
from alliance_lib.registry import get_instrument
from alliance_lib.sources import WaveIntake, read_wave_sources, source_counts
from alliance_lib.study import RATER_ROLES, Study, StudyError
from alliance_lib.validate import validate

__all__ = [
    "WaveData",
    "load_prepared",
    "prepare_wave",
    "read_wave",
    "save_prepared",
    "session_table",
    "wave_intake",
]

CANONICAL = {
    "client": "client_id",
    "therapist": "therapist_id",
    "session": "session",
    "rater": "rater",
    "date": "date",
}


@dataclass(frozen=True)
class WaveData:
    """A prepared wave.

    Attributes
    ----------
    scored : DataFrame
        Clean rows with pseudonymous ``client_id`` / ``therapist_id`` and the scored columns of
        every study instrument (one row per client × session × rater; with several raters of one
        role and ``combine: keep``, one row per rater, ``rater_id`` naming them). A pre-scored
        instrument's total is ``{prefix}_total``. Item columns whose answers are all exactly
        float32 numbers (whole-number scales) are stored as float32; scores are float64.
    quarantine : DataFrame
        One row per row not analysed: ``source`` (file name), ``row`` (its row there; for a
        row merged from several sources ``origin`` lists them all), pseudonymous client,
        session, rater and ``reason``.
    quarantine_summary : DataFrame
        Rows quarantined per reason.
    n_read : int
        Rows of the wave's canonical table: for one file its rows; for sources the merged rows
        plus the source rows that could not enter it. ``n_read == len(scored) + len(quarantine)``.
    sources : DataFrame
        Per source: ``source``, ``rows_in``, ``analysed``, ``quarantined`` (``rows_in ==
        analysed + quarantined``).
    missing_codes : DataFrame
        Cells set to missing by a missing code: ``column``, ``n``, ``source``, ``code`` and
        ``declared`` (``missing_codes`` of the study, or the SPSS declaration of a ``.sav``).
    codes_used : tuple
        The study's missing codes and the SPSS user-missing codes found in the wave's files.
    inter_rater : DataFrame
        Agreement between raters of one role (``rater_id``, e.g. two observers) on the alliance
        total: ``rater``, ``rater_a``, ``rater_b``, ``n_pairs`` and ``ICC(A,1)``/``ICC(C,1)``
        with CIs (:func:`~alliance_lib.raters.rater_agreement`).
    files : list of Path
        Every input file of the wave.
    pseudonym_length : int
        Hex digits of the wave's pseudonyms (``privacy.pseudonym_length``, else the shortest that
        suits the number of IDs: :func:`alliance_lib.privacy.collision_free_length`).
    """

    study: Study
    wave: int
    source: Path
    n_read: int
    scored: pd.DataFrame
    quarantine: pd.DataFrame
    quarantine_summary: pd.DataFrame
    missing_codes: pd.DataFrame
    alliance: str | None
    outcome: str | None
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)
    codes_used: tuple = ()
    inter_rater: pd.DataFrame = field(default_factory=pd.DataFrame)
    files: tuple = ()
    notes: tuple = ()
    pseudonym_length: int = 8

    @property
    def has_therapists(self) -> bool:
        return "therapist_id" in self.scored and self.scored["therapist_id"].notna().any()

    @property
    def has_therapist_ratings(self) -> bool:
        return "rater" in self.scored and (self.scored["rater"] == "therapist").any()

    @property
    def raters(self) -> list[str]:
        """Rater roles present among the analysed rows (client, therapist, observer, interpreter)."""
        present = set(self.scored["rater"].dropna()) if "rater" in self.scored else {"client"}
        return [r for r in RATER_ROLES if r in present]

    def perspectives(self) -> pd.DataFrame:
        """One row per client × session with the alliance total of every rater role present:
        ``alliance_client``, ``alliance_therapist``, ``alliance_observer``,
        ``alliance_interpreter`` (several raters of one role: their mean), for the rater
        section's comparison of perspectives.

        Examples
        --------
        >>> from alliance_lib.study import load_study
        >>> from pathlib import Path
        >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
        >>> list(prepare_wave(study, 1).perspectives().columns)
        ['client_id', 'session', 'alliance_client', 'alliance_therapist']
        """
        col = f"{self.alliance}_total"
        d = self.scored.dropna(subset=[col])
        rater = d["rater"] if "rater" in d else pd.Series("client", index=d.index)
        wide = (
            d.assign(_rater=rater.to_numpy())
            .groupby(["client_id", "session", "_rater"])[col]
            .mean()
            .unstack("_rater")
        )
        roles = [r for r in RATER_ROLES if r in wide.columns]
        wide = wide[roles].set_axis([f"alliance_{r}" for r in roles], axis=1)
        return wide.reset_index()

    def sessions(self) -> pd.DataFrame:
        """One row per client × session: client alliance, therapist alliance, outcome and the
        study's covariates (:func:`session_table`).

        ``client_id`` and ``therapist_id`` are categorical (the pseudonyms, sorted), so every
        analysis of the table groups, merges and factorises them by their integer codes instead
        of hashing the text again (a quarter of the model sections' time at 100,000 clients);
        compare and filter them as text as usual.
        """
        table = session_table(
            self.scored,
            alliance=self.alliance,
            outcome=self.outcome,
            covariates=self.study.covariates,
        )
        ids = [c for c in ("client_id", "therapist_id") if c in table]
        return table.astype(dict.fromkeys(ids, "category"))


def _rename_to_canonical(df: pd.DataFrame, study: Study, source: Path) -> pd.DataFrame:
    """Study column names -> canonical; every column the study maps must be in the file."""
    mapping = {}
    for role, col in study.columns.items():
        if col is None:
            continue
        if col not in df.columns:
            mapped = role in (study.raw.get("columns") or {})
            if mapped or role in ("client", "session"):
                near = difflib.get_close_matches(col, list(map(str, df.columns)), n=1)
                raise StudyError(
                    study.path,
                    f"columns.{role}",
                    f"column {col!r} not found in {source.name}"
                    + (f" (did you mean {near[0]!r}?)" if near else "")
                    + f"; columns there: {', '.join(map(str, df.columns[:12]))}"
                    + (" ..." if len(df.columns) > 12 else ""),
                )
            continue
        mapping[col] = CANONICAL[role]
    return df.rename(columns=mapping)


def read_wave(study: Study, wave: int) -> pd.DataFrame:
    """Read one wave with the study's column names mapped to the canonical ones.

    A one-file wave is its file; a wave of sources is the merged canonical table
    (:func:`alliance_lib.sources.read_wave_sources`), not yet validated.

    Raises :class:`~alliance_lib.study.StudyError` when a column the study maps (a role, a
    covariate, an item pattern, an instrument's item columns or pre-scored total) is not in a
    file, naming the file, the key and the columns there: the check a report runs before any
    kernel starts.

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> from pathlib import Path
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> list(read_wave(study, 1).columns[:4])
    ['client_id', 'therapist_id', 'session', 'rater']
    """
    if wave in study.sources:
        table = read_wave_sources(study, wave).table
        where = f"the sources of wave {wave}"
        _check_covariates(study, table, where)
    else:
        table, _ = _read_one_file(study, wave)
        where = study.wave_file(wave).name
    _check_measures(study, table, where)
    return table


def _check_measures(study: Study, df: pd.DataFrame, where: str) -> None:
    """Item columns of every item-scored instrument and every pre-scored total must be there."""
    have = list(map(str, df.columns))
    for role, ident in study.instruments.items():
        if role in study.totals:
            wanted, key = [study.totals[role]], f"instruments.{role}.total"
        else:
            inst = get_instrument(ident, folder=study.instrument_folder)
            wanted, key = list(inst.columns), f"instruments.{role}"
        absent = [c for c in wanted if c not in df.columns]
        if absent:
            near = difflib.get_close_matches(absent[0], have, n=1)
            raise StudyError(
                study.path,
                key,
                f"{ident}: column(s) {', '.join(absent[:6])}"
                + (f" (and {len(absent) - 6} more)" if len(absent) > 6 else "")
                + f" not found in {where}"
                + (f" (did you mean {near[0]!r}?)" if near else "")
                + "; map them with items: {"
                + ident
                + ': "<column>_{n}"} in a source, or '
                "rename them",
            )


def _check_covariates(study: Study, df: pd.DataFrame, where: str) -> None:
    absent = [c for c in study.covariates if c not in df.columns]
    if absent:
        raise StudyError(
            study.path,
            "covariates",
            f"column(s) {', '.join(map(repr, absent))} not found in {where}",
        )


def _read_one_file(study: Study, wave: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    source = study.wave_file(wave)
    ids = [c for c in (study.columns.get("client"), study.columns.get("therapist")) if c]
    columns = None
    if source.is_dir() or source.suffix.lower() in (".parquet", ".pq"):
        columns = _needed_one_file(study, parquet_columns(source))  # column-oriented: read less
    raw = read_table(source, id_columns=[*ids, "client_id", "therapist_id"], columns=columns)
    raw, spss = apply_user_missing(raw)
    spss["declared"] = "SPSS user-missing " + spss["declared"].astype(str)
    df = _rename_to_canonical(raw, study, source)
    if "rater" not in df.columns:
        df["rater"] = "client"
    _check_covariates(study, df, source.name)
    return df, spss


def _needed_one_file(study: Study, have: list[str]) -> list[str]:
    """The columns of a one-file wave the analyses use (roles, items, totals, covariates)."""
    want = {c for c in study.columns.values() if c} | set(CANONICAL.values())
    want |= set(study.covariates) | set(study.totals.values())
    for ident in study.instruments.values():
        want |= set(get_instrument(ident, folder=study.instrument_folder).columns)
    return [c for c in have if c in want]


def wave_intake(study: Study, wave: int) -> WaveIntake:
    """The canonical rows of a wave and where each came from, for both forms of a wave."""
    if wave in study.sources:
        return read_wave_sources(study, wave)
    df, spss = _read_one_file(study, wave)
    name = study.wave_file(wave).name
    return WaveIntake(
        table=df,
        origins=pd.DataFrame(
            {"source": name, "row": df.index.to_numpy(), "key": df.index, "client_id": None}
        ),
        rejected=pd.DataFrame(columns=["source", "row", "client_id", "session", "rater", "reason"]),
        flagged=pd.Series(dtype=object),
        rows_in={name: len(df)},
        missing=spss.assign(source=name),
        combine={},
        notes=list(df.attrs.get("warnings", [])),
    )


def _check_totals(df: pd.DataFrame, study: Study, insts: dict, codes) -> tuple[dict, pd.Series]:
    """Pre-scored totals: numbers inside the instrument's range (missing codes -> missing)."""
    values, reasons = {}, pd.Series("", index=df.index, dtype=object)
    num_codes = [float(c) for c in codes if not isinstance(c, str)]
    str_codes = [c for c in codes if isinstance(c, str)]
    for role, col in study.totals.items():
        inst = insts[role]
        if col not in df.columns:
            near = difflib.get_close_matches(col, list(map(str, df.columns)), n=1)
            raise StudyError(
                study.path,
                f"instruments.{role}.total",
                f"column {col!r} not found in the wave's data"
                + (f" (did you mean {near[0]!r}?)" if near else "")
                + f"; columns there: {', '.join(map(str, df.columns[:20]))}",
            )
        raw = df[col]
        text = raw.astype("str").str.strip()
        coded = raw.isin(num_codes) | text.isin(str_codes)
        num = pd.to_numeric(raw.where(~coded), errors="coerce").astype(float)
        lo, hi = _total_range(inst)
        bad_text = raw.notna() & text.ne("") & ~coded & num.isna()
        outside = num.notna() & ((num < lo) | (num > hi))
        msg = pd.Series("", index=df.index, dtype=object)
        if bad_text.any():
            msg[bad_text] = col + " = '" + text[bad_text] + "' is not a number"
        if outside.any():
            shown = num[outside].map("{:g}".format).astype(object)
            msg[outside] = col + " = " + shown + f" is outside {lo:g}-{hi:g}"
        reasons = reasons.where(msg.eq(""), reasons.where(reasons.eq(""), reasons + "; ") + msg)
        values[inst.prefix] = num.where(~outside & ~bad_text)
    return values, reasons


def _total_range(inst) -> tuple[float, float]:
    """Range of an instrument's total on its own metric (sum, mean or mean x 10)."""
    n, lo, hi = inst.n_items, inst.scale_min, inst.scale_max
    return {"sum": (n * lo, n * hi), "mean": (lo, hi), "mean_x10": (10 * lo, 10 * hi)}[inst.metric]


def _validate_groups(
    df: pd.DataFrame, item_insts: list, codes, source: str
) -> tuple[list, pd.Series]:
    """Validate all rows at once when every rater is one validate knows and no role has several
    raters; else per rater role (and rater id), so four roles and rater ids need no change there."""
    extra = pd.Series("", index=df.index, dtype=object)
    found, uniq = pd.factorize(df["rater"])  # text work on the distinct values only
    names = pd.Series(uniq, dtype=object).astype(str).str.strip().str.lower()
    names = names.where(names.ne(""), "client").to_numpy(dtype=object)
    rater = pd.Series(
        np.where(found >= 0, names[np.maximum(found, 0)] if len(names) else "client", "client"),
        index=df.index,
    )
    unknown = ~rater.isin(RATER_ROLES)
    known = getattr(importlib.import_module("alliance_lib.validate"), "RATERS", ())
    if "rater_id" not in df.columns and rater.isin(list(known)).all():
        return [validate(df, item_insts, missing_codes=codes, source=source)], extra
    extra[unknown] = (
        "rater = '"
        + df.loc[unknown, "rater"].astype(str)
        + "' is not one of "
        + ", ".join(RATER_ROLES)
    )
    keys = [rater] + ([df["rater_id"].fillna("")] if "rater_id" in df.columns else [])
    out = []
    for _, group in df[~unknown.to_numpy()].groupby([k[~unknown] for k in keys], sort=False):
        out.append(validate(group, item_insts, rater=None, missing_codes=codes, source=source))
    if not out:
        out.append(
            validate(df.iloc[:0], item_insts, rater=None, missing_codes=codes, source=source)
        )
    return out, extra


#: pandas 3 (or the option on): a frame made from another never writes into it
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(
    getattr(getattr(pd.options, "mode", None), "copy_on_write", False) is True
)


#: File name of a prepared wave handed from ``alliance report`` to its kernel (in the staging
#: folder; removed when the notebook has run).
PREPARED_NAME = ".prepared-wave.pickle"


def save_prepared(wave: WaveData, path: str | Path) -> Path:
    """Write a prepared wave for :func:`load_prepared` (pickle, protocol 5).

    ``alliance report`` prepares the wave before a kernel starts (so a data error stops the run
    at once) and hands it to the notebook this way, so the wave is read and scored once. Only
    pseudonymised rows are in it; the report removes the file after the run.
    """
    import pickle

    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(wave, f, protocol=5)
    return path


def load_prepared(path: str | Path, study: Study, wave: int) -> WaveData:
    """The wave written by :func:`save_prepared`, checked to be ``wave`` of ``study``.

    Parameters
    ----------
    path : str or Path
        The file (relative paths: to the working directory, the study's folder in a report).
    study : Study
        The study as the notebook loaded it (it replaces the pickled one).
    wave : int

    Returns
    -------
    WaveData

    Raises
    ------
    ReportError
        The file holds no prepared wave, or another study's or wave's.
    """
    import pickle

    from alliance_lib.errors import ReportError

    with open(path, "rb") as f:
        loaded = pickle.load(f)  # noqa: S301 - our own file, written by save_prepared
    ok = (
        isinstance(loaded, WaveData)
        and int(loaded.wave) == int(wave)
        and loaded.study.path.name == study.path.name
        and loaded.study.name == study.name
    )
    if not ok:
        raise ReportError(
            f"{Path(path).name}: not the prepared wave {wave} of {study.path.name}",
            file=Path(path).name,
            hint="run the notebook without prepared_wave (it prepares the wave itself)",
        )
    return dataclasses.replace(loaded, study=study)


def prepare_wave(study: Study, wave: int) -> WaveData:
    """Read, merge, validate, score and pseudonymise one wave of a study (either form).

    Parameters
    ----------
    study : Study
        A loaded study (:func:`alliance_lib.study.load_study`).
    wave : int
        The wave to prepare.

    Returns
    -------
    WaveData

    Raises
    ------
    StudyError
        A column the study names is not in a file (named with the file, key and columns there).
    DataError
        No row of the wave can be analysed (the message gives the most frequent reasons), or
        ``therapist_alliance: true`` and no therapist-rated row can be analysed.

    Notes
    -----
    Rows failing validation (duplicates, missing IDs, bad sessions, out-of-range or non-numeric
    item values) or the merge checks of a wave of sources (:func:`alliance_lib.sources.merge_sources`)
    are quarantined with their reason; every row read is either scored or quarantined, and per
    source ``rows_in == analysed + quarantined``. Missing codes named in the study (numbers or
    text) and the user-missing codes declared in a ``.sav`` (each for its own column) become
    missing values and are counted. A pre-scored total (``instruments: {outcome: {id, total}}``)
    must lie inside the instrument's range. Several raters of one role (``rater_id``) are
    validated and scored one by one; with ``combine: mean`` their scores are then averaged into
    one row per client x session, and their agreement is in ``inter_rater`` either way.

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> from pathlib import Path
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> w = prepare_wave(study, 1)
    >>> w.n_read == len(w.scored) + len(w.quarantine)
    True
    >>> w.sources.to_dict("records")
    [{'source': 'wave1.csv', 'rows_in': 2863, 'analysed': 2857, 'quarantined': 6}]
    """
    one_file = wave in study.data
    source = study.wave_file(wave) if one_file else study.path
    intake = wave_intake(study, wave)
    folder = study.instrument_folder
    insts = {role: get_instrument(i, folder=folder) for role, i in study.instruments.items()}
    item_insts = [inst for role, inst in insts.items() if role not in study.totals]
    # items as float32 where exact while validate builds its float64 blocks (-650 MiB at its
    # peak at 100,000 clients; the cells and their messages are the same)
    df = intake.table = _compact_items(intake.table, item_insts)
    release_memory()
    codes = study.missing_codes
    flagged = df.index.isin(intake.flagged.index)
    work = df[~flagged] if flagged.any() else df
    totals, total_reasons = _check_totals(work, study, insts, codes)
    groups, rater_reasons = _validate_groups(work, item_insts, codes, str(source))
    # the item cells live on in the blocks validate checked; the read table keeps the rest
    del work
    df = intake.table = _without_items(df, item_insts)
    release_memory()  # the read item cells: back to the system before scoring
    extra = _join_reasons(total_reasons, rater_reasons)
    extra_bad = extra.ne("")

    # scored from the item blocks validate checked (the cells are not converted and checked again)
    if len(groups) == 1:
        scored = groups[0].score(*item_insts) if item_insts else groups[0].clean
    else:
        parts = [g.score(*item_insts) if item_insts else g.clean for g in groups]
        scored = pd.concat(parts).sort_index(kind="stable")
    if extra_bad.any():
        scored = scored[~extra_bad.reindex(scored.index).to_numpy()]
    if not _COPY_ON_WRITE or any(scored is g.clean for g in groups):
        scored = scored.copy()  # (with copy-on-write a scored frame is already its own)
    for prefix, values in totals.items():
        scored[f"{prefix}_total"] = values.reindex(scored.index).to_numpy()
    analysed_keys = scored.index

    # quarantined canonical rows: validation, totals/raters, merge checks
    q_parts = [g.quarantined["reason"].astype(object) for g in groups if len(g.quarantined)]
    q_reason = pd.concat(q_parts) if q_parts else pd.Series(dtype=object)
    q_reason = _join_reasons(q_reason, extra[extra_bad]) if extra_bad.any() else q_reason
    if flagged.any():
        q_reason = pd.concat([q_reason, intake.flagged.astype(object)])
    q_reason = q_reason.sort_index(kind="stable")
    q_rows = df.loc[q_reason.index]

    n_id = study.pseudonym_length or _wave_pseudonym_length(df, intake.rejected, study.salt)
    inter = (
        _inter_rater(scored, insts, study, n_id) if "rater_id" in scored.columns else _empty_icc()
    )
    scored = _combine(scored, intake.combine, list(insts.values()))
    scored["client_id"] = pseudonymise(
        scored["client_id"], salt=study.salt, prefix="C", length=n_id
    )
    if "therapist_id" in scored:
        scored["therapist_id"] = pseudonymise(
            scored["therapist_id"], salt=study.salt, prefix="T", length=n_id
        )
    if "rater_id" in scored:
        scored["rater_id"] = _pseudonymise_raters(scored["rater_id"], study.salt, n_id)
    scored["session"] = scored["session"].astype(int)
    scored = _compact_items(scored.reset_index(drop=True), list(insts.values()))

    origin = _origins_text(intake, q_reason.index, one_file)
    id_rows = q_rows if one_file else df
    quarantine = pd.DataFrame(
        {
            "source": origin["source"].to_numpy(),
            "row": origin["row"].to_numpy(),
            "client_id": _pseudo(q_rows.get("client_id"), study.salt, "C", n_id),
            "session": q_rows["session"].astype(object).to_numpy() if "session" in q_rows else None,
            "rater": q_rows["rater"].to_numpy() if "rater" in q_rows else None,
            "reason": _pseudonymise_text(q_reason, id_rows, study.salt, n_id).to_numpy(),
        }
    )
    if not one_file:
        quarantine["origin"] = origin["origin"].to_numpy()
    needs_clients = bool((intake.origins["key"] < 0).any())  # client-level rows to count
    analysed_clients = set(df.loc[analysed_keys, "client_id"].dropna()) if needs_clients else set()
    unused = _unused_client_rows(intake, analysed_clients)
    rejected = pd.concat([intake.rejected, unused], ignore_index=True)
    if len(rejected):
        rej = pd.DataFrame(
            {
                "source": rejected["source"].to_numpy(),
                "row": rejected["row"].to_numpy(),
                "client_id": _pseudo(rejected["client_id"], study.salt, "C", n_id),
                "session": rejected["session"].to_numpy(),
                "rater": rejected["rater"].to_numpy(),
                "reason": _pseudonymise_text(
                    rejected["reason"], rejected, study.salt, n_id
                ).to_numpy(),
                "origin": (rejected["source"] + ":" + rejected["row"].astype(str)).to_numpy(),
            }
        )
        quarantine = pd.concat([quarantine, rej], ignore_index=True)
    counts = source_counts(intake, analysed_keys, analysed_clients)
    n_read = len(scored) + len(quarantine)
    if one_file and len(df) != n_read:
        raise RuntimeError(
            f"{source}: rows do not add up: {len(df)} read, {len(scored)} scored, "
            f"{len(quarantine)} quarantined"
        )
    summary = _summary(groups, extra, intake, rejected)
    if len(scored) == 0:
        kinds = quarantine["reason"].str.split("; ").explode().str.replace(r"\d+", "N", regex=True)
        top = kinds.reset_index().drop_duplicates().iloc[:, 1].value_counts().head(3)
        raise DataError(
            f"wave {wave}: no row can be analysed ({n_read} rows, all quarantined). Most frequent "
            "reasons: " + "; ".join(f"{r} ({n} rows)" for r, n in top.items()),
            file=study.path.name,
            hint="fix the data or the study YAML (column mapping, missing codes) and run again",
        )
    alliance = insts["alliance"].prefix if "alliance" in insts else None
    outcome = insts["outcome"].prefix if "outcome" in insts else None
    if study.therapist_alliance and not (scored["rater"] == "therapist").any():
        raise DataError(
            f"wave {wave}: the study declares therapist_alliance: true, but no therapist-rated "
            "row (rater = therapist) can be analysed",
            file=study.path.name,
            column="rater",
            hint="map the rater column (columns: {rater: ...}) or a source with rater: therapist, "
            "or set therapist_alliance: false",
        )
    missing = _missing_table(groups, intake, source.name if one_file else "all sources")
    notes = list(intake.notes) + _compare_calculated(scored)
    spss_codes = sorted(set(intake.missing["code"])) if len(intake.missing) else []
    used = tuple(codes) + tuple(c for c in spss_codes if c not in codes)
    return WaveData(
        study=study,
        wave=wave,
        source=source,
        n_read=n_read,
        scored=scored,
        quarantine=quarantine,
        quarantine_summary=summary,
        missing_codes=missing,
        alliance=alliance,
        outcome=outcome,
        sources=counts,
        codes_used=used,
        inter_rater=inter,
        files=tuple(study.wave_files(wave)),
        notes=tuple(notes),
        pseudonym_length=n_id,
    )


def _without_items(df: pd.DataFrame, item_insts: list) -> pd.DataFrame:
    """The read table without the item columns of ``item_insts``. Its other float columns are
    copied, so that none keeps the float block of the item cells alive (pandas stores columns
    of one dtype in one block; 1.2 GB at 100,000 clients); other dtypes never share it."""
    items = {c for inst in item_insts for c in inst.columns}
    if not items & set(df.columns):
        return df
    kept = {
        c: df[c].copy(deep=True) if df[c].dtype.kind == "f" else df[c]
        for c in df.columns
        if c not in items
    }
    out = pd.DataFrame(kept, index=df.index) if kept else pd.DataFrame(index=df.index)
    out.attrs = dict(df.attrs)
    return out


def _exact_float32(a: np.ndarray, step: int = 1 << 16) -> np.ndarray | None:
    """``a`` (float64) as float32 if every value is exactly a float32, else None.

    Exact iff the round trip gives the same bits (NaN too; a NaN with an unusual payload keeps
    its column float64). Converted and compared in pieces: no temporary of the whole column."""
    small = np.empty(a.shape, dtype=np.float32)
    back = np.empty(min(step, a.size))
    for i in range(0, a.size, step):
        piece, out = a[i : i + step], small[i : i + step]
        np.copyto(out, piece, casting="unsafe")
        b = back[: piece.size]
        np.copyto(b, out)
        if not np.array_equal(b.view(np.int64), piece.view(np.int64)):
            return None
    return small


def _compact_items(table: pd.DataFrame, instruments: list) -> pd.DataFrame:
    """``table`` with each item column of ``instruments`` stored as float32 where every value of
    it is exactly a float32 (the whole-number answers of most questionnaires, missing codes such
    as -99; an ORS mark such as 7.3 is not, and that column stays float64), each in its own
    contiguous array. Other columns are not copied.

    For the read table, while validate builds its float64 item blocks, and for the scored rows
    of the prepared wave. The scores are computed in float64; analyses of items read them as
    float64 again (the reliability coefficients of :func:`~alliance_lib.reliability.reliability`
    and their inputs are unchanged), so only the memory changes: half of the item cells (454 MiB
    at 100,000 clients), and no copy when the wave is pickled for the report's kernel (a column
    of a shared 2-D block is not contiguous, and pickle copies such a block whole).
    """
    items = {c for inst in instruments for c in inst.columns if c in table.columns}
    if not items or not table.columns.is_unique:
        return table
    cols: dict = {}
    changed = False
    for c in table.columns:
        s = table[c]
        if c in items and isinstance(s, pd.Series) and s.dtype == np.float64:
            small = _exact_float32(s.to_numpy())
            if small is not None:
                cols[c] = small
                changed = True
                continue
        cols[c] = s
    if not changed:
        return table
    out = pd.DataFrame(cols, index=table.index, copy=False)
    out.attrs = dict(table.attrs)
    return out


def _compare_calculated(scored: pd.DataFrame) -> list[str]:
    """An export's own scores kept as ``{column}_redcap`` against the scores computed here."""
    notes = []
    for col in [c for c in scored.columns if str(c).endswith("_redcap")]:
        ours = str(col)[: -len("_redcap")]
        if ours not in scored.columns:
            continue
        theirs = pd.to_numeric(scored[col], errors="coerce")
        both = theirs.notna() & scored[ours].notna()
        differ = both & ~np.isclose(theirs.where(both, 0), scored[ours].where(both, 0))
        notes.append(
            f"{ours}: the export's calculated {col} agrees with the score computed here on "
            f"{int((both & ~differ).sum())} of {int(both.sum())} rows"
            + (f"; {int(differ.sum())} differ" if differ.any() else "")
        )
    return notes


def _join_reasons(a: pd.Series, b: pd.Series) -> pd.Series:
    """Join two reason series by index ('; '), empty strings meaning no reason."""
    both = pd.concat([a, b]).astype(object)
    both = both[both.astype(str).ne("")]
    if both.empty:
        return pd.Series("", index=a.index.union(b.index), dtype=object)
    joined = both.groupby(level=0, sort=False).agg("; ".join)
    return joined.reindex(a.index.union(b.index), fill_value="")


def _wave_pseudonym_length(df: pd.DataFrame, rejected: pd.DataFrame, salt: str) -> int:
    """Hex digits of a wave's pseudonyms: one length for every kind of ID read in the wave
    (:func:`alliance_lib.privacy.collision_free_length`)."""
    kinds = []
    for col in ("client_id", "therapist_id", "rater_id"):
        parts = [t[col] for t in (df, rejected) if col in t.columns]
        if parts:
            kinds.append(pd.concat(parts, ignore_index=True))
    return collision_free_length(kinds, salt)


def _pseudo(ids, salt: str, prefix: str, length: int):
    if ids is None:
        return None
    ids = pd.Series(ids)
    return pseudonymise(ids, salt=salt, prefix=prefix, length=length).to_numpy()


def _pseudonymise_raters(ids: pd.Series, salt: str, length: int) -> pd.Series:
    blank = ids.isna() | ids.astype(str).eq("")
    out = pseudonymise(ids.where(~blank, "-"), salt=salt, prefix="R", length=length)
    return out.where(~blank, "")


def _origins_text(intake: WaveIntake, keys, one_file: bool) -> pd.DataFrame:
    """First source and row of each canonical key, and every origin as text."""
    o = intake.origins[intake.origins["key"].isin(keys)] if len(keys) else intake.origins.iloc[:0]
    if one_file:
        frame = pd.DataFrame(
            {"source": o["source"].to_numpy(), "row": o["row"].to_numpy()}, index=o["key"]
        )
        return frame.reindex(keys).assign(origin="")
    text = o["source"] + ":" + o["row"].astype(str)
    grouped = o.assign(text=text).groupby("key", sort=False)
    frame = pd.DataFrame(
        {
            "source": grouped["source"].first(),
            "row": grouped["row"].first(),
            "origin": grouped["text"].agg("; ".join),
        }
    )
    return frame.reindex(keys)


def _unused_client_rows(intake: WaveIntake, analysed_clients: set) -> pd.DataFrame:
    o = intake.origins
    idle = o[(o["key"] < 0) & ~o["client_id"].isin(analysed_clients)]
    return pd.DataFrame(
        {
            "source": idle["source"].to_numpy(),
            "row": idle["row"].to_numpy(),
            "client_id": idle["client_id"].to_numpy(),
            "session": None,
            "rater": None,
            "reason": "no analysable session row for this client",
        }
    )


def _summary(groups, extra: pd.Series, intake: WaveIntake, rejected: pd.DataFrame) -> pd.DataFrame:
    """Rows quarantined per problem (validation, totals, raters, merge and source checks)."""
    parts = [g.summary for g in groups]
    lines = []
    for reasons in (
        extra[extra.ne("")],
        intake.flagged,
        rejected["reason"] if len(rejected) else None,
    ):
        if reasons is None or len(reasons) == 0:
            continue
        kind = _problem_label(pd.Series(reasons.astype(str).str.split("; ").explode()))
        for problem, n in kind.value_counts().items():
            lines.append(
                {
                    "problem": problem,
                    "column": "",
                    "n_rows": int(n),
                    "n_cells": int(n),
                    "action": "quarantined",
                }
            )
    parts.append(pd.DataFrame(lines, columns=["problem", "column", "n_rows", "n_cells", "action"]))
    out = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else parts[0]
    )
    out = out.groupby(["problem", "column", "action"], as_index=False, sort=False)[
        ["n_rows", "n_cells"]
    ].sum()
    out = out[["problem", "column", "n_rows", "n_cells", "action"]].astype(
        {"n_rows": np.int64, "n_cells": np.int64}
    )
    return out.sort_values(
        ["action", "n_rows"], ascending=[True, False], kind="stable"
    ).reset_index(drop=True)


def _problem_label(reasons: pd.Series) -> pd.Series:
    """The kind of problem a reason names: its text before ':' (else without quoted values and
    parentheses), so that reasons differing only in values count together."""
    head = reasons.str.split(":", n=1).str[0]
    plain = reasons.str.replace(r"\s*\([^)]*\)|'[^']*'", "", regex=True)
    return head.where(reasons.str.contains(":", regex=False), plain).str.strip()


def _missing_table(groups, intake: WaveIntake, where: str) -> pd.DataFrame:
    """Cells set to missing per column: the study's codes (validate) and SPSS declarations."""
    counts = pd.concat([g.missing_codes for g in groups]) if groups else pd.Series(dtype=np.int64)
    counts = counts.groupby(level=0).sum() if len(counts) else counts
    study_rows = pd.DataFrame(
        {
            "column": counts.index.astype(str),
            "n": counts.to_numpy(dtype=np.int64),
            "source": where,
            "code": None,
            "declared": "study missing_codes",
        }
    )
    spss = intake.missing
    spss_rows = pd.DataFrame(
        {
            "column": spss["column"].astype(str).to_numpy(),
            "n": spss["n"].to_numpy(dtype=np.int64),
            "source": spss["source"].to_numpy(),
            "code": spss["code"].to_numpy(dtype=object),
            "declared": spss["declared"].astype(str).to_numpy(),
        }
    )
    return pd.concat(
        [p for p in (study_rows, spss_rows) if len(p)] or [study_rows], ignore_index=True
    )


def _empty_icc() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["rater", "rater_a", "rater_b", "n_pairs", "type", "icc", "ci_low", "ci_high"]
    )


def _inter_rater(scored: pd.DataFrame, insts: dict, study: Study, length: int) -> pd.DataFrame:
    """ICC(A,1) and ICC(C,1) between every two raters of one role on the alliance total."""
    from alliance_lib.raters import RaterAgreementError, rater_agreement

    if "alliance" not in insts:
        return _empty_icc()
    col = f"{insts['alliance'].prefix}_total"
    rows = []
    multi = scored[scored["rater_id"].fillna("").ne("")]
    for role, g in multi.groupby("rater", sort=True):
        ids = sorted(g["rater_id"].unique())
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                try:
                    res = rater_agreement(g, col, rater="rater_id", raters=(a, b))
                except RaterAgreementError:
                    continue
                names = _pseudonymise_raters(pd.Series([a, b]), study.salt, length).tolist()
                for kind, r in res.icc.iterrows():
                    rows.append(
                        {
                            "rater": role,
                            "rater_a": names[0],
                            "rater_b": names[1],
                            "n_pairs": res.n_pairs,
                            "type": kind,
                            "icc": r["icc"],
                            "ci_low": r["ci_low"],
                            "ci_high": r["ci_high"],
                        }
                    )
    return pd.DataFrame(rows, columns=_empty_icc().columns) if rows else _empty_icc()


def _combine(scored: pd.DataFrame, combine: dict, instruments: list) -> pd.DataFrame:
    """``combine: mean``: one row per client x session for a rater role, the raters' mean scores.

    The score columns of the instruments (``{prefix}_total`` and subscales) are averaged over
    the role's raters; item columns are left empty on the combined row (a mean of answers is not
    an answer: item analyses use the raters' own rows, e.g. ``inter_rater``); other columns take
    the first rater's value. ``n_raters`` says how many were averaged (1 elsewhere).
    """
    roles = [r for r, how in combine.items() if how == "mean"]
    pick = scored["rater"].isin(roles).to_numpy() if roles and "rater_id" in scored else None
    if pick is None or not pick.any():
        return scored
    sub = scored[pick]
    keys = ["client_id", "session", "rater"]
    items = {c for inst in instruments for c in inst.columns}
    num = [
        c
        for inst in instruments
        for c in inst.score_columns
        if c in sub.columns and pd.api.types.is_numeric_dtype(sub[c])
    ]
    other = [c for c in sub.columns if c not in keys and c not in num and c not in items]
    grouped = sub.groupby(keys, sort=False, dropna=False)
    merged = grouped[num].mean()
    if other:
        merged = merged.join(grouped[other].first())
    n_raters = grouped.size().to_numpy()
    label = (
        pd.Series(sub.index, index=sub.index)
        .groupby([sub[k] for k in keys], sort=False, dropna=False)
        .first()
    )
    merged = merged.reset_index()
    merged["rater_id"] = ""
    merged["n_raters"] = n_raters
    for c in sorted(items & set(scored.columns)):
        merged[c] = np.nan
    merged.index = pd.Index(label.to_numpy(), name=scored.index.name)
    rest = scored[~pick].assign(n_raters=1)
    out = pd.concat([rest, merged[list(scored.columns) + ["n_raters"]]])
    return out.sort_index(kind="stable")


def _pseudonymise_text(text: pd.Series, rows: pd.DataFrame, salt: str, length: int) -> pd.Series:
    """Replace raw client/therapist IDs quoted in reasons by their pseudonyms."""
    out = text.astype(str)
    for col, prefix in (("client_id", "C"), ("therapist_id", "T")):
        if col not in rows or rows[col].isna().all():
            continue
        raw = pd.Series(pd.unique(rows[col].dropna().astype(str)))
        raw = raw[raw.str.len() > 0]
        if raw.empty:
            continue
        shown = pseudonymise(raw, salt=salt, prefix=prefix, length=length)
        mapping = dict(zip(raw, shown, strict=True))
        pattern = "|".join(re.escape(r) for r in sorted(mapping, key=len, reverse=True))
        out = out.str.replace(
            f"(?<![\\w-])(?:{pattern})(?![\\w-])",
            lambda m, table=mapping: table[m.group(0)],
            regex=True,
        )
    return out


def session_table(
    scored: pd.DataFrame,
    *,
    alliance: str,
    outcome: str | None,
    covariates: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """One row per client × session with the client-rated alliance (``alliance``), the
    therapist-rated alliance (``alliance_therapist``) and the outcome (``outcome``) totals.

    Parameters
    ----------
    scored : DataFrame
        Scored long table with ``client_id``, ``session``, ``rater`` and ``{prefix}_total`` columns.
    alliance, outcome : str or None
        Column prefixes of the alliance and outcome instruments (e.g. ``"wai_sr"``, ``"oq"``);
        None when the study has no such instrument (its columns are then missing).
    covariates : sequence of str
        Client- or therapist-level columns carried along (the client's first non-missing value,
        so a value entered on any of the client's rows counts).

    Returns
    -------
    DataFrame
        Columns ``client_id``, ``therapist_id`` (when present), ``session``, ``alliance``,
        ``alliance_therapist`` and ``outcome`` (missing where not measured), then the covariates.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a", "a", "a"], "session": [1, 1, 2],
    ...                   "rater": ["client", "therapist", "client"],
    ...                   "wai_sr_total": [4.0, 3.5, 4.5]})
    >>> session_table(d, alliance="wai_sr", outcome=None)["alliance_therapist"].tolist()
    [3.5, nan]
    """
    keys = ["client_id", "session"]
    has_th = "therapist_id" in scored.columns
    missing = [c for c in covariates if c not in scored.columns]
    if missing:
        raise KeyError(f"covariate column(s) not in the data: {', '.join(missing)}")
    # only the columns used are filtered (a row filter of the whole frame copies every column)
    used = keys + (["therapist_id"] if has_th else []) + (["rater"] if "rater" in scored else [])
    used += [f"{p}_total" for p in (alliance, outcome) if p] + list(covariates)
    scored = scored[list(dict.fromkeys(used))]
    rater = scored["rater"] if "rater" in scored else pd.Series("client", index=scored.index)
    client_rows = scored[rater == "client"]
    cols = keys + (["therapist_id"] if has_th else [])
    out = client_rows[cols].copy()
    out["alliance"] = client_rows[f"{alliance}_total"].to_numpy() if alliance else np.nan
    out["outcome"] = client_rows[f"{outcome}_total"].to_numpy() if outcome else np.nan
    th_rows = scored[rater == "therapist"]
    th = th_rows[keys].assign(
        alliance_therapist=th_rows[f"{alliance}_total"].to_numpy() if alliance else np.nan
    )
    out = out.merge(th, on=keys, how="outer", sort=False)
    if has_th and out["therapist_id"].isna().any():
        therapist_of = scored.drop_duplicates("client_id").set_index("client_id")["therapist_id"]
        out["therapist_id"] = out["client_id"].map(therapist_of)
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    order = cols + ["alliance", "alliance_therapist", "outcome"]
    for cov in covariates:
        per_client = scored.dropna(subset=[cov]).drop_duplicates("client_id")
        out[cov] = out["client_id"].map(per_client.set_index("client_id")[cov])
    return out[order + list(covariates)]
