"""Report sections on how much of the alliance lies with clients and with therapists.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> sorted(icc_section(w).numbers)
['client', 'therapist', 'total_variance']
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots, privacy
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_pct

__all__ = ["icc_section", "therapist_effects_section"]

REFERENCES = {
    "baldwin_imel": "Baldwin, S. A., & Imel, Z. E. (2013). Therapist effects: Findings and "
    "methods. In M. J. Lambert (Ed.), Bergin and Garfield's handbook of psychotherapy and "
    "behavior change (6th ed., pp. 258–297). Wiley.",
}


def icc_section(wave) -> Section:
    """Intraclass correlations of the growth model at the first session."""
    fit = c.trajectory_fit(wave)
    at = {fit.random_terms[1]: 1.0} if len(fit.random_terms) > 1 else None
    icc = fit.icc(at=at)
    rows = [("Client", icc["client"])]
    if icc.get("therapist") is not None:
        rows.append(("Therapist", icc["therapist"]))
    summary = (
        f"At session 1, {format_pct(icc['client'])} of the alliance's variance lay between "
        "clients"
        + (
            f" and {format_pct(icc['therapist'], 1)} between therapists"
            if icc.get("therapist") is not None
            else ""
        )
        + "."
    )
    return Section(
        key="icc",
        title="Client and therapist shares of the alliance",
        numbers=icc,
        tables=[
            Table(
                "Intraclass Correlations of the Alliance at Session 1",
                pd.DataFrame(rows, columns=["Level", "ICC"]),
                formats={"ICC": "prop"},
                digits={"ICC": 3},
                note="Share of the total variance at session 1 (random intercept, slope and their "
                "covariance evaluated there) that lies at each level, from the growth model.",
                name="icc",
            )
        ],
        sentences=[summary],
        summary=summary,
        references=[REFERENCES["baldwin_imel"]],
        methods="Intraclass correlations were computed from the growth model's variance "
        "components at session 1 (Baldwin & Imel, 2013).",
    )


def therapist_effects_section(wave) -> Section:
    """Therapist empirical Bayes effects on the alliance with 95% intervals (small caseloads
    suppressed)."""
    title = "Therapist effects on the alliance"
    if not wave.has_therapists:
        return Section.skip("therapist_effects", title, "no therapist column in this study")
    threshold = wave.study.small_cell
    effects = c.therapist_intervals(wave)
    shown = privacy.suppress_small_cells(effects, count="n_clients", threshold=threshold)
    kept = shown[~shown["suppressed"]]
    n_sup = int(shown["suppressed"].sum())
    clear = kept[(kept["ci_low"] > 0) | (kept["ci_high"] < 0)]
    fig = plots.caterpillar_plot(kept, xlabel=f"Therapist deviation in {c.alliance_label(wave)}")
    return Section(
        key="therapist_effects",
        title=title,
        numbers={
            "small_cell_threshold": threshold,
            "n_suppressed": n_sup,
            "table": to_jsonable(kept),
        },
        figures=[
            Figure(
                fig,
                f"Therapist effects on the client-rated alliance: empirical Bayes predictions "
                f"with 95% prediction intervals for {len(kept)} therapists (pseudonymous IDs)"
                + (f"; {n_sup} with fewer than {threshold} clients not shown" if n_sup else "")
                + ". An interval that excludes 0 marks a therapist whose clients rate the "
                "alliance differently from the average therapist's.",
                name="therapist_caterpillar",
            )
        ],
        sentences=[
            f"{len(clear)} of {len(kept)} therapists have a 95% interval that excludes the "
            "average therapist."
        ],
    )
