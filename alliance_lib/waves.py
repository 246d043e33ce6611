"""One wave of a study, ready to analyse: read, validated, scored and pseudonymised.

This is the seam between the study definition and every analysis: the report notebook, the
exploration notebook and the command line all start from :func:`prepare_wave`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.io import read_table
from alliance_lib.privacy import pseudonymise
from alliance_lib.registry import get_instrument
from alliance_lib.scoring import score
from alliance_lib.study import Study, StudyError
from alliance_lib.validate import validate

__all__ = ["WaveData", "prepare_wave", "read_wave", "session_table"]

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
        every study instrument (one row per client × session × rater).
    quarantine : DataFrame
        One row per input row not analysed: file ``row``, pseudonymous client, session, rater and
        ``reason``.
    quarantine_summary : DataFrame
        Rows quarantined per reason.
    n_read : int
        Rows read from the file; ``n_read == len(scored) + len(quarantine)``.
    """

    study: Study
    wave: int
    source: Path
    n_read: int
    scored: pd.DataFrame
    quarantine: pd.DataFrame
    quarantine_summary: pd.DataFrame
    missing_codes: pd.DataFrame
    alliance: str
    outcome: str | None

    @property
    def has_therapists(self) -> bool:
        return "therapist_id" in self.scored and self.scored["therapist_id"].notna().any()

    @property
    def has_therapist_ratings(self) -> bool:
        return "rater" in self.scored and (self.scored["rater"] == "therapist").any()

    def sessions(self) -> pd.DataFrame:
        """One row per client × session: client alliance, therapist alliance, outcome and the
        study's covariates."""
        return session_table(
            self.scored,
            alliance=self.alliance,
            outcome=self.outcome,
            covariates=self.study.covariates,
        )


def _rename_to_canonical(df: pd.DataFrame, study: Study, source: Path) -> pd.DataFrame:
    mapping = {}
    for role, col in study.columns.items():
        if col is None:
            continue
        if col not in df.columns:
            if role in ("client", "session"):
                raise StudyError(
                    study.path,
                    f"columns.{role}",
                    f"column {col!r} not found in {source.name}; columns there: "
                    f"{', '.join(map(str, df.columns[:12]))}",
                )
            continue
        mapping[col] = CANONICAL[role]
    return df.rename(columns=mapping)


def read_wave(study: Study, wave: int) -> pd.DataFrame:
    """Read one wave's file with the study's column names mapped to the canonical ones.

    Raises :class:`~alliance_lib.study.StudyError` when the client or session column, or a
    covariate named in the study, is not in the file.

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> from pathlib import Path
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> list(read_wave(study, 1).columns[:4])
    ['client_id', 'therapist_id', 'session', 'rater']
    """
    source = study.wave_file(wave)
    df = _rename_to_canonical(read_table(source), study, source)
    if "rater" not in df.columns:
        df["rater"] = "client"
    absent = [c for c in study.covariates if c not in df.columns]
    if absent:
        raise StudyError(
            study.path,
            "covariates",
            f"column(s) {', '.join(map(repr, absent))} not found in {source.name}",
        )
    return df


def prepare_wave(study: Study, wave: int) -> WaveData:
    """Read, validate, score and pseudonymise one wave of a study.

    Parameters
    ----------
    study : Study
        A loaded study (:func:`alliance_lib.study.load_study`).
    wave : int
        The wave to prepare.

    Returns
    -------
    WaveData

    Notes
    -----
    Rows failing validation (duplicates, missing IDs, bad sessions, out-of-range or non-numeric
    item values) are quarantined with their reason; every row read is either scored or
    quarantined. Missing codes named in the study become missing values and are counted.

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> from pathlib import Path
    >>> study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    >>> w = prepare_wave(study, 1)
    >>> w.n_read == len(w.scored) + len(w.quarantine)
    True
    """
    source = study.wave_file(wave)
    df = read_wave(study, wave)
    n_read = len(df)
    instruments = [
        get_instrument(i, folder=study.instrument_folder) for i in study.instruments.values()
    ]
    checked = validate(df, instruments, missing_codes=study.missing_codes, source=str(source))
    scored = checked.clean
    for inst in instruments:
        scored = score(scored, inst)
    scored = scored.copy()
    scored["client_id"] = pseudonymise(scored["client_id"], salt=study.salt, prefix="C")
    if "therapist_id" in scored:
        scored["therapist_id"] = pseudonymise(scored["therapist_id"], salt=study.salt, prefix="T")
    scored["session"] = scored["session"].astype(int)

    q = checked.quarantined
    q_ids = pseudonymise(q["client_id"], salt=study.salt, prefix="C") if "client_id" in q else None
    quarantine = pd.DataFrame(
        {
            "row": q.index.to_numpy(),
            "client_id": q_ids.to_numpy() if q_ids is not None else None,
            "session": q["session"].astype(object).to_numpy() if "session" in q else None,
            "rater": q["rater"].to_numpy() if "rater" in q else None,
            "reason": _pseudonymise_text(q["reason"], q, study.salt).to_numpy(),
        }
    )
    if n_read != len(scored) + len(quarantine):
        raise RuntimeError(
            f"{source}: rows do not add up: {n_read} read, {len(scored)} scored, "
            f"{len(quarantine)} quarantined"
        )
    alliance = get_instrument(study.instruments["alliance"], folder=study.instrument_folder)
    outcome_id = study.instruments.get("outcome")
    outcome = (
        get_instrument(outcome_id, folder=study.instrument_folder).prefix if outcome_id else None
    )
    return WaveData(
        study=study,
        wave=wave,
        source=source,
        n_read=n_read,
        scored=scored.reset_index(drop=True),
        quarantine=quarantine,
        quarantine_summary=checked.summary,
        missing_codes=checked.missing_codes.rename_axis("column").reset_index(name="n"),
        alliance=alliance.prefix,
        outcome=outcome,
    )


def _pseudonymise_text(text: pd.Series, rows: pd.DataFrame, salt: str) -> pd.Series:
    """Replace raw client/therapist IDs quoted in reasons by their pseudonyms."""
    out = text.astype(str)
    for col, prefix in (("client_id", "C"), ("therapist_id", "T")):
        if col not in rows or rows[col].isna().all():
            continue
        raw = pd.Series(pd.unique(rows[col].dropna().astype(str)))
        raw = raw[raw.str.len() > 0]
        if raw.empty:
            continue
        mapping = dict(zip(raw, pseudonymise(raw, salt=salt, prefix=prefix), strict=True))
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
    alliance, outcome : str
        Column prefixes of the alliance and outcome instruments (e.g. ``"wai_sr"``, ``"oq"``).
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
    rater = scored["rater"] if "rater" in scored else pd.Series("client", index=scored.index)
    client_rows = scored[rater == "client"]
    cols = keys + (["therapist_id"] if has_th else [])
    out = client_rows[cols].copy()
    out["alliance"] = client_rows[f"{alliance}_total"].to_numpy()
    out["outcome"] = client_rows[f"{outcome}_total"].to_numpy() if outcome else np.nan
    th_rows = scored[rater == "therapist"]
    th = th_rows[keys].assign(alliance_therapist=th_rows[f"{alliance}_total"].to_numpy())
    out = out.merge(th, on=keys, how="outer", sort=False)
    if has_th and out["therapist_id"].isna().any():
        therapist_of = scored.drop_duplicates("client_id").set_index("client_id")["therapist_id"]
        out["therapist_id"] = out["client_id"].map(therapist_of)
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    order = cols + ["alliance", "alliance_therapist", "outcome"]
    missing = [c for c in covariates if c not in scored.columns]
    if missing:
        raise KeyError(f"covariate column(s) not in the data: {', '.join(missing)}")
    for cov in covariates:
        per_client = scored.dropna(subset=[cov]).drop_duplicates("client_id")
        out[cov] = out["client_id"].map(per_client.set_index("client_id")[cov])
    return out[order + list(covariates)]
