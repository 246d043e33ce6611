"""Report sections on the data: quality (rows analysed and quarantined), item missingness, sample.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> s = data_quality_section(w)
>>> s.numbers["rows_read"] == s.numbers["rows_analysed"] + s.numbers["rows_quarantined"]
True
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_int, format_number, format_pct

__all__ = [
    "data_quality_section",
    "missingness_section",
    "sample_section",
    "data_cutoff",
    "study_numbers",
    "report_meta",
]


def data_cutoff(wave) -> str:
    """The wave's data cut-off: ``waves.<N>.cutoff`` in the study file, else the last date in the
    data, else a sentence saying it is not recorded.

    >>> from alliance_lib.study import load_study
    >>> from alliance_lib.waves import prepare_wave
    >>> from pathlib import Path
    >>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
    >>> data_cutoff(w)
    '2025-08-24 (the last session date in the data)'
    """
    waves = wave.study.raw.get("waves") if isinstance(wave.study.raw, dict) else None
    if isinstance(waves, dict):
        entry = waves.get(wave.wave, waves.get(str(wave.wave)))
        if isinstance(entry, dict) and entry.get("cutoff"):
            return f"{entry['cutoff']} (set in the study file)"
    if "date" in wave.scored and wave.scored["date"].notna().any():
        last = pd.to_datetime(wave.scored["date"], errors="coerce").max()
        if pd.notna(last):
            return f"{last:%Y-%m-%d} (the last session date in the data)"
    return "not recorded (no cut-off in the study file and no session dates in the data)"


def data_quality_section(wave) -> Section:
    """Rows read, analysed and quarantined (with reasons) and item cells holding a missing code."""
    n_read, n_scored, n_q = wave.n_read, len(wave.scored), len(wave.quarantine)
    summary = wave.quarantine_summary
    reasons = (
        summary[summary["action"] == "quarantined"]
        .groupby("problem", sort=True)[["n_rows", "n_cells"]]
        .sum()
        .reset_index()
    )
    readable = (
        reasons["problem"]
        .str.replace("client_id", "client", regex=False)
        .str.replace(" x ", " × ", regex=False)
    )
    n_codes = int(wave.missing_codes["n"].sum())
    codes = ", ".join(map(str, wave.study.missing_codes)) or "none declared"
    numbers = {
        "rows_read": n_read,
        "rows_analysed": n_scored,
        "rows_quarantined": n_q,
        "missing_code_cells": n_codes,
        "quarantine_reasons": to_jsonable(reasons),
    }
    key = wave.study.pseudonym_key
    numbers["privacy"] = {
        "key_source": key.source,
        "key_warnings": list(key.warnings),
        "small_cell": int(wave.study.small_cell),
        "pseudonym_length": int(wave.pseudonym_length),
    }
    n_hex = int(wave.pseudonym_length)
    length_words = (
        "set by privacy.pseudonym_length"
        if wave.study.pseudonym_length
        else "the shortest that keeps collisions unlikely for this many IDs"
    )
    privacy_sentence = (
        f"Client and therapist IDs are shown only as keyed pseudonyms (HMAC-SHA-256, {n_hex} hex "
        f"digits: {length_words}"
        + ("; an 8-digit pseudonym of an earlier wave is the first 8 digits" if n_hex > 8 else "")
        + f"; key: {key.source}); therapist displays suppress therapists with fewer than "
        f"{wave.study.small_cell} clients." + "".join(f" Warning: {note}." for note in key.warnings)
    )
    why = "; ".join(readable) if len(reasons) else ""
    summary_sentence = (
        f"Of {format_int(n_read)} rows read, {format_int(n_scored)} were analysed and "
        f"{format_int(n_q)} quarantined" + (f" ({why})" if why else "") + "; "
        f"{format_int(n_codes)} item responses held a missing code."
    )
    tables = []
    if len(reasons):
        tables.append(
            Table(
                "Rows Quarantined, by Reason",
                pd.DataFrame(
                    {
                        "Reason": readable.str.capitalize(),
                        "Rows": reasons["n_rows"],
                        "Cells": reasons["n_cells"],
                    }
                ),
                formats={"Rows": "int", "Cells": "int"},
                note="Quarantined rows are listed with their reason in quarantine.csv; a row can "
                "have several problems.",
                name="quarantine-reasons",
            )
        )
    return Section(
        key="data_quality",
        title="Data quality",
        numbers=numbers,
        tables=tables,
        sentences=[
            summary_sentence,
            f"Missing codes declared in the study file: {codes}; they were treated as missing "
            "responses. " + ("No row was quarantined." if not n_q else ""),
            privacy_sentence,
        ],
        summary=summary_sentence,
        methods=(
            "Every row of the wave file was validated (duplicate client × session × rater rows, "
            "missing identifiers, invalid session numbers, out-of-range or non-numeric item "
            "values); rows failing a check were quarantined with their reason rather than "
            f"analysed, and the declared missing codes ({codes}) were set to missing."
        ),
    )


def missingness_section(wave) -> Section:
    """Share of item responses missing at each session, per instrument (administered forms)."""
    rows = []
    insts = [c.alliance_instrument(wave)] + (
        [c.outcome_instrument(wave)] if c.outcome_instrument(wave) else []
    )
    for inst in insts:
        cols = list(inst.columns)
        if not set(cols) <= set(wave.scored.columns):
            continue  # a pre-scored total: no item responses to count
        given = wave.scored[cols].notna().any(axis=1)
        share = wave.scored.loc[given, cols].isna().mean(axis=1)
        per = share.groupby(wave.scored.loc[given, "session"]).mean()
        rows.append(
            pd.DataFrame(
                {"session": per.index, "instrument": inst.id, "missing_share": per.to_numpy()}
            )
        )
    table = pd.concat(rows, ignore_index=True)
    names = {i.id: i.id.upper() for i in insts}
    fig = plots.missingness_plot(table.assign(instrument=table["instrument"].map(names)))
    worst = table.loc[table["missing_share"].idxmax()]
    sentence = (
        f"On forms that were filled in, {format_pct(table['missing_share'].mean(), 1)} of item "
        f"responses were missing on average; the most was "
        f"{format_pct(worst['missing_share'], 1)} ({names[worst['instrument']]}, session "
        f"{int(worst['session'])})."
    )
    return Section(
        key="missingness_by_session",
        title="Missing item responses",
        numbers=to_jsonable(table),
        figures=[
            Figure(
                fig,
                "Share of item responses missing on administered forms, by session and "
                "instrument. Forms not filled in at all (a missed session) are not counted here; "
                "scales were prorated within each instrument's limits.",
                name="missingness",
            )
        ],
        sentences=[sentence],
    )


def _n_pct(n: int, of: int) -> str:
    """``'289 (96%)'``."""
    return f"{format_int(n)} ({format_pct(n / of)})" if of else format_int(n)


def sample_section(wave) -> Section:
    """Clients, therapists, sessions attended and caseloads."""
    s = c.sessions(wave)
    per_client = s.groupby("client_id")["session"].max()
    max_session = int(s["session"].max())
    numbers = {
        "n_clients": int(s["client_id"].nunique()),
        "n_therapists": int(s["therapist_id"].nunique()) if wave.has_therapists else None,
        "n_sessions": int(len(s)),
        "sessions_per_client_median": float(per_client.median()),
        "sessions_per_client_mean": float(per_client.mean()),
        "max_session": max_session,
        "share_ended_before_max_session": float((per_client < max_session).mean()),
    }
    status, rule = c.treatment_status(wave)
    if status is not None:
        st = status["status"].astype(str)
        n_ended, n_on, n_unk = (int((st == k).sum()) for k in ("ended", "ongoing", "unknown"))
        early = status["ended_early"]
        n_early = int(early.fillna(False).astype(bool).sum())
        numbers.update(
            n_ended=n_ended,
            n_ongoing=n_on,
            n_status_unknown=n_unk,
            n_ended_early=n_early,
            share_ended_early=n_early / n_ended if n_ended else None,
            last_planned_session=max_session,
            status_rule=rule,
        )
        status_rows = [
            ("Ended treatment by the data cut-off", _n_pct(n_ended, numbers["n_clients"])),
            (
                f"Ended early (before session {max_session}, the highest session number in the "
                "data, taken as the last planned session)",
                _n_pct(n_early, n_ended) + " of those who ended",
            ),
            ("Still in treatment at the data cut-off", _n_pct(n_on, numbers["n_clients"])),
        ] + ([("Status unknown", _n_pct(n_unk, numbers["n_clients"]))] if n_unk else [])
        status_note = (
            f"Ended or still in treatment: {rule}. A client still in treatment has not ended "
            "early, however few sessions so far."
        )
    else:
        numbers.update(status_rule=None, n_ended=None, n_ongoing=None, n_ended_early=None)
        status_rows = [
            (
                f"Last session before session {max_session} (ended early or still in "
                "treatment: not known)",
                format_pct(numbers["share_ended_before_max_session"]),
            )
        ]
        status_note = (
            f"The data have {rule}, so a last session before the highest session number can "
            "mean an early ending, a planned shorter treatment or a client still in treatment."
        )
    rows = [
        ("Clients", format_int(numbers["n_clients"])),
        ("Therapists", format_int(numbers["n_therapists"])),
        ("Sessions recorded (intake included)", format_int(numbers["n_sessions"])),
        (
            "Last session per client, median (mean)",
            f"{format_number(per_client.median(), 1)} ({format_number(per_client.mean(), 1)})",
        ),
        ("Highest session number", format_int(max_session)),
        *status_rows,
    ]
    who = f"{format_int(numbers['n_clients'])} clients"
    if wave.has_therapists:
        caseload = s.groupby("therapist_id")["client_id"].nunique()
        numbers["clients_per_therapist_median"] = float(caseload.median())
        numbers["clients_per_therapist_min"] = int(caseload.min())
        numbers["clients_per_therapist_max"] = int(caseload.max())
        rows.append(
            (
                "Clients per therapist, median (range)",
                f"{format_number(caseload.median(), 1)} ({format_int(caseload.min())}–"
                f"{format_int(caseload.max())})",
            )
        )
        who += f" seen by {format_int(numbers['n_therapists'])} therapists"
    else:
        rows = [r for r in rows if r[0] != "Therapists"]
    if status is not None:
        tail = (
            f"{format_int(numbers['n_ended'])} had ended treatment "
            f"({format_int(numbers['n_ended_early'])} before session {max_session}) and "
            f"{format_int(numbers['n_ongoing'])} "
            f"{'was' if numbers['n_ongoing'] == 1 else 'were'} still in treatment at the data "
            "cut-off."
        )
    else:
        tail = (
            f"{format_pct(numbers['share_ended_before_max_session'])} had their last session "
            f"before session {max_session} (whether they ended or are still coming is not "
            "recorded)."
        )
    summary = (
        f"{who} had {format_int(numbers['n_sessions'])} sessions recorded (median last session "
        f"{format_number(per_client.median(), 1)}); " + tail
    )
    return Section(
        key="sample",
        title="Sample",
        numbers=numbers,
        tables=[
            Table(
                "Sample and Attendance",
                pd.DataFrame(rows, columns=["Characteristic", "Value"]),
                formats={"Value": "text"},
                note="Session 0 is the intake assessment. " + status_note,
                name="sample",
            )
        ],
        sentences=[summary],
        summary=summary,
    )


def study_numbers(wave) -> dict:
    """The ``study`` entry of ``results.json``: name, slug, wave, instruments and data file."""
    out = c.outcome_instrument(wave)
    return {
        "name": wave.study.name,
        "slug": wave.study.slug,
        "wave": wave.wave,
        "alliance_instrument": c.alliance_instrument(wave).id if c.has_alliance(wave) else None,
        "outcome_instrument": out.id if out else None,
        "data_file": wave.source.name,
    }


def report_meta(wave) -> list[str]:
    """The lines under the report's title: measures, data file, cut-off and software.

    >>> from alliance_lib.study import load_study
    >>> from alliance_lib.waves import prepare_wave
    >>> from pathlib import Path
    >>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
    >>> report_meta(w)[0]
    'Alliance: Working Alliance Inventory - Short Revised (client), WAI-SR total (item mean, 1–5). Outcome: Outcome Questionnaire-45.2, OQ-45.2 total (sum score, 0–180).'
    """
    from alliance_lib._version import __version__
    from alliance_lib.tables import instrument_label

    a = c.alliance_instrument(wave) if c.has_alliance(wave) else None
    o = c.outcome_instrument(wave)
    measures = f"Alliance: {a.name}, {instrument_label(a)}." if a else "Alliance: none."
    measures += f" Outcome: {o.name}, {instrument_label(o)}." if o else " Outcome: none."
    return [
        measures,
        f"Data: {wave.source.name} (wave {wave.wave}); data cut-off {data_cutoff(wave)}.",
        f"Made with alliance_lib {__version__}. Every number shown is also in results.json; rows "
        "not analysed are in quarantine.csv with their reason; client and therapist IDs appear "
        "only as keyed pseudonyms.",
    ]
