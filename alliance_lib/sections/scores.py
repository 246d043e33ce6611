"""Report sections on the scores: descriptives by instrument, rater and scale, and reliability.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> reliability_section(w).tables[0].formats["α"]
'prop'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import (
    format_ci,
    format_int,
    format_pct,
    format_prop,
    instrument_label,
    scale_label,
)

__all__ = ["score_descriptives_section", "reliability_section"]

REFERENCES = {
    "feldt": "Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for "
    "coefficient alpha. Applied Psychological Measurement, 11(1), 93–103.",
    "mcdonald": "McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.",
    "zinbarg": "Zinbarg, R. E., Revelle, W., Yovel, I., & Li, W. (2005). Cronbach's α, "
    "Revelle's β, and McDonald's ωH: Their relations with each other and two alternative "
    "conceptualizations of reliability. Psychometrika, 70(1), 123–133.",
    "geldhof": "Geldhof, G. J., Preacher, K. J., & Zyphur, M. J. (2014). Reliability estimation "
    "in a multilevel confirmatory factor analysis framework. Psychological Methods, 19(1), "
    "72–91.",
    "cronbach": "Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests. "
    "Psychometrika, 16(3), 297–334.",
}


def _instruments(wave):
    return [c.alliance_instrument(wave)] + (
        [c.outcome_instrument(wave)] if c.outcome_instrument(wave) else []
    )


def score_descriptives_section(wave) -> Section:
    """n, mean, SD, minimum and maximum of every scale, per instrument and rater, and the
    distribution of the alliance and outcome totals by session."""
    parts = []
    for inst in _instruments(wave):
        cols = [col for col in inst.score_columns if col in wave.scored]
        # only the scale columns are grouped (a group of the whole frame copies every column)
        for rater, g in wave.scored[["rater", *cols]].groupby("rater", sort=True):
            d = g[cols].describe().T[["count", "mean", "std", "min", "max"]]
            if d["count"].sum() == 0:
                continue
            d.insert(0, "rater", rater)
            d.insert(0, "instrument", inst.id)
            parts.append(d.rename_axis("scale").reset_index())
    desc = pd.concat(parts, ignore_index=True)
    prefix = {i.id: i.prefix for i in _instruments(wave)}
    shown = pd.DataFrame(
        {
            "Instrument": desc["instrument"].str.upper(),
            "Rater": desc["rater"].str.capitalize(),
            "Scale": [
                scale_label(s.removeprefix(prefix[i] + "_"))
                for s, i in zip(desc["scale"], desc["instrument"], strict=True)
            ],
            "n": desc["count"],
            "M": desc["mean"],
            "SD": desc["std"],
            "Min": desc["min"],
            "Max": desc["max"],
        }
    )
    figures = [
        Figure(
            plots.distribution_by_session(
                c.sessions(wave), score="alliance", ylabel=c.alliance_label(wave)
            ),
            f"{c.alliance_label(wave)} by session: box plots (median, quartiles, 1.5 × IQR "
            "whiskers) with the number of clients rated at each session below the axis.",
            name="alliance_by_session",
        )
    ]
    if c.has_outcome(wave):
        figures.append(
            Figure(
                plots.distribution_by_session(
                    c.sessions(wave), score="outcome", ylabel=c.outcome_label(wave)
                ),
                f"{c.outcome_label(wave)} by session, with the number of clients measured. "
                "Later sessions hold only the clients still attending, so the boxes mix change "
                "within clients with who stayed.",
                name="outcome_by_session",
            )
        )
    metrics = "; ".join(
        f"{i.id.upper()}: {instrument_label(i).split('(', 1)[1].rstrip(')')}"
        for i in _instruments(wave)
    )
    return Section(
        key="score_descriptives",
        title="Scores",
        numbers=to_jsonable(desc),
        tables=[
            Table(
                "Descriptive Statistics of the Scores, by Instrument, Rater and Scale",
                shown,
                formats={"n": "int", "M": "num", "SD": "num", "Min": "num", "Max": "num"},
                note=f"Pooled over all sessions. Metrics and ranges: {metrics}.",
                name="score-descriptives",
            )
        ],
        figures=figures,
        sentences=[
            "Scores follow the instrument definitions (reverse keys, subscales, proration "
            "limits); the alliance is on the item-mean metric, the outcome on its manual's metric."
        ],
    )


def _first_words(table: pd.DataFrame) -> str:
    """``'WAI-SR client: session 1 (96% of clients)'`` for every instrument and rater."""
    parts = []
    for r in table[table["scale"] == "total"].itertuples():
        if r.first_session is None or pd.isna(r.first_session):
            continue
        where = "intake (session 0)" if int(r.first_session) == 0 else f"session {r.first_session}"
        parts.append(
            f"{r.instrument.upper()} {r.rater}-rated: {where} for "
            f"{format_pct(r.first_session_share)} of clients"
        )
    return "; ".join(parts)


def reliability_section(wave) -> Section:
    """Internal consistency at one administration per client (each client's first): Cronbach's
    alpha (Feldt 95% CI), McDonald's omega (one-factor for a subscale; omega total and omega
    hierarchical of a bifactor/Schmid-Leiman model for a multidimensional total), and the
    multilevel within- and between-client omega over all administrations (Geldhof et al. 2014).
    """
    table, footnotes = c.reliability_table(wave)
    ml = c.multilevel_reliability_table(wave)
    shown = pd.DataFrame(
        {
            "Instrument": table["instrument"].str.upper(),
            "Rater": table["rater"].str.capitalize(),
            "Scale": table["scale"].map(scale_label),
            "Items": table["n_items"],
            "n": table["n"],
            "α": table["alpha"],
            "α 95% CI": list(zip(table["alpha_ci_low"], table["alpha_ci_high"], strict=True)),
            "ω": table["omega"],
            "ωh": table["omega_h"],
            "Uncertain facts": table["uncertain"].replace("", None),
        }
    )
    total = table[(table["scale"] == "total") & (table["rater"] == "client")]
    sentence = "; ".join(
        f"{r.instrument.upper()} total α = {format_prop(r.alpha)} "
        f"{format_ci((r.alpha_ci_low, r.alpha_ci_high), prop=True)}, ω total = "
        f"{format_prop(r.omega)}"
        + (f", ω hierarchical = {format_prop(r.omega_h)}" if pd.notna(r.omega_h) else "")
        + f" (n = {format_int(r.n)} clients)"
        for r in total.itertuples()
    )
    first = _first_words(table)
    ml_client = ml[(ml["scale"] == "total") & (ml["rater"] == "client")]
    ml_sentence = "; ".join(
        f"{r.instrument.upper()} total ω within = {format_prop(r.omega_within)}, ω between = "
        f"{format_prop(r.omega_between)} ({format_int(r.n)} administrations of "
        f"{format_int(r.n_clients)} clients)"
        for r in ml_client.itertuples()
    )
    heywood = ml[ml["heywood"].astype(bool)]
    not_converged = ml[~ml["converged"].astype(bool)]
    ml_shown = pd.DataFrame(
        {
            "Instrument": ml["instrument"].str.upper(),
            "Rater": ml["rater"].str.capitalize(),
            "Scale": ml["scale"].map(scale_label),
            "Administrations": ml["n"],
            "Clients": ml["n_clients"],
            "ω within": ml["omega_within"],
            "ω between": ml["omega_between"],
            "Boundary estimate": np.where(ml["heywood"].astype(bool), "yes", "no"),
        }
    )
    ml_note = (
        "Two-level confirmatory factor model with one factor per level on every administration "
        "(sessions within clients; Geldhof, Preacher & Zyphur, 2014). ω within: reliability of "
        "a client's session-to-session change; ω between: reliability of the client's average "
        "level. For a total with subscales the one factor per level simplifies the structure."
    )
    if len(heywood):
        ml_note += (
            f" Boundary estimate: a residual variance at zero ({len(heywood)} of {len(ml)} rows), "
            "so ω between near 1 overstates how exactly client averages are measured."
        )
    if len(not_converged):
        ml_note += f" {len(not_converged)} model(s) did not converge: read them with caution."
    note = (
        "One administration per client: each client's first administration of the instrument "
        f"({first}); n = clients with complete items. α = Cronbach's alpha with the Feldt 95% "
        "CI; ω = McDonald's omega: one-factor omega for a subscale, omega total for a total with "
        "subscales; ωh = omega hierarchical of that total (Schmid-Leiman solution with one group "
        "factor per subscale, as psych::omega), the share of total-score variance due to the "
        "general factor. "
        + " ".join(f.split(":", 1)[0].upper() + ":" + f.split(":", 1)[1] for f in footnotes)
    )
    sentences = [
        f"At each client's first administration, client-rated forms: {sentence}."
        if sentence
        else "",
    ]
    if ml_sentence:
        sentences.append(
            f"Over all sessions (multilevel): {ml_sentence}; the within-client value is the "
            "one that applies to session-to-session changes such as ruptures."
        )
    return Section(
        key="reliability",
        title="Reliability",
        numbers={
            "administration": "first",
            "table": to_jsonable(table),
            "multilevel": to_jsonable(ml.drop(columns=["model"], errors="ignore")),
            "footnotes": footnotes,
        },
        tables=[
            Table(
                "Internal Consistency of Each Scale at One Administration per Client",
                shown,
                formats={
                    "Items": "int",
                    "n": "int",
                    "α": "prop",
                    "α 95% CI": "ci_prop",
                    "ω": "prop",
                    "ωh": "prop",
                    "Uncertain facts": "text",
                },
                note=note,
                name="reliability",
            ),
            Table(
                "Multilevel Reliability Over Repeated Administrations",
                ml_shown,
                formats={
                    "Administrations": "int",
                    "Clients": "int",
                    "ω within": "prop",
                    "ω between": "prop",
                    "Boundary estimate": "text",
                },
                note=ml_note,
                name="reliability-multilevel",
            ),
        ],
        sentences=sentences,
        methods=(
            "Internal consistency was estimated per scale and rater at one administration per "
            "client (the client's first) as Cronbach's (1951) alpha with the Feldt et al. (1987) "
            "confidence interval and McDonald's (1999) omega: one-factor omega for subscales, "
            "omega total and omega hierarchical from a Schmid-Leiman solution for totals with "
            "subscales (Zinbarg et al., 2005). Over all administrations, within- and "
            "between-client omega came from a two-level factor model (Geldhof et al., 2014)."
        ),
        references=[
            REFERENCES["cronbach"],
            REFERENCES["feldt"],
            REFERENCES["mcdonald"],
            REFERENCES["zinbarg"],
            REFERENCES["geldhof"],
        ],
    )
