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

import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_ci, format_prop, instrument_label, scale_label

__all__ = ["score_descriptives_section", "reliability_section"]

REFERENCES = {
    "feldt": "Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for "
    "coefficient alpha. Applied Psychological Measurement, 11(1), 93–103.",
    "mcdonald": "McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.",
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
        for rater, g in wave.scored.groupby("rater", sort=True):
            cols = [col for col in inst.score_columns if col in g]
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


def reliability_section(wave) -> Section:
    """Cronbach's alpha (Feldt 95% CI) and McDonald's omega per instrument, rater and scale."""
    table, footnotes = c.reliability_table(wave)
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
            "Uncertain facts": table["uncertain"].replace("", None),
        }
    )
    total = table[(table["scale"] == "total") & (table["rater"] == "client")]
    sentence = "; ".join(
        f"{r.instrument.upper()} total α = {format_prop(r.alpha)} "
        f"{format_ci((r.alpha_ci_low, r.alpha_ci_high), prop=True)}, ω = {format_prop(r.omega)}"
        for r in total.itertuples()
    )
    return Section(
        key="reliability",
        title="Reliability",
        numbers={"table": to_jsonable(table), "footnotes": footnotes},
        tables=[
            Table(
                "Internal Consistency of Each Scale",
                shown,
                formats={
                    "Items": "int",
                    "n": "int",
                    "α": "prop",
                    "α 95% CI": "ci_prop",
                    "ω": "prop",
                    "Uncertain facts": "text",
                },
                note="α = Cronbach's alpha with the Feldt 95% CI; ω = McDonald's omega "
                "(one-factor model); n = administrations (all sessions pooled, so clients "
                "contribute several). "
                + " ".join(
                    f.split(":", 1)[0].upper() + ":" + f.split(":", 1)[1] for f in footnotes
                ),
                name="reliability",
            )
        ],
        sentences=[f"Client-rated forms: {sentence}." if sentence else ""],
        methods=(
            "Internal consistency was estimated per scale and rater on all administrations as "
            "Cronbach's (1951) alpha with the Feldt et al. (1987) confidence interval and "
            "McDonald's (1999) omega from a one-factor model."
        ),
        references=[REFERENCES["cronbach"], REFERENCES["feldt"], REFERENCES["mcdonald"]],
    )
