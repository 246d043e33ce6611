"""Report sections on how much of the alliance lies with clients and with therapists.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> n = icc_section(w).numbers
>>> n["time_zero"], n["n_boot"], n["client_ci_low"] < n["client"] < n["client_ci_high"]
(1.0, 500, True)
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots, privacy
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_int, format_pct
from alliance_lib.trajectories import ICC_DELTA_MIN_CLIENTS

__all__ = ["icc_section", "therapist_effects_section"]

REFERENCES = {
    "goldstein": "Goldstein, H. (2011). Multilevel statistical models (4th ed.). Wiley.",
    "pinheiro_bates": "Pinheiro, J. C., & Bates, D. M. (2000). Mixed-effects models in S and "
    "S-PLUS. Springer.",
    "baldwin_imel": "Baldwin, S. A., & Imel, Z. E. (2013). Therapist effects: Findings and "
    "methods. In M. J. Lambert (Ed.), Bergin and Garfield's handbook of psychotherapy and "
    "behavior change (6th ed., pp. 258–297). Wiley.",
}


def icc_section(wave) -> Section:
    """Intraclass correlations of the growth model at time zero (the study's ``time_zero``,
    default the first alliance session) with 95% parametric-bootstrap intervals, and the caveat
    when fewer than 15 therapists make the therapist share imprecise."""
    fit = c.trajectory_fit(wave)
    tab = c.icc_table(wave)
    at = c.time_zero_words(wave, fit)
    t0 = float(fit.time_zero)
    client = tab.loc["client"]
    has_t = "therapist" in tab.index
    ther = tab.loc["therapist"] if has_t else None
    imprecise = bool(has_t and ther["imprecise"])

    def pct_ci(r, digits=0):
        return f"{format_pct(r['ci_low'], digits)}–{format_pct(r['ci_high'], digits)}"

    summary = (
        f"At {at}, {format_pct(client['icc'])} of the alliance's variance lay between clients "
        f"(95% CI {pct_ci(client)})"
        + (
            f" and {format_pct(ther['icc'], 1)} between therapists (95% CI {pct_ci(ther, 1)})"
            if has_t
            else ""
        )
        + "."
    )
    sentences = [summary]
    if imprecise:
        sentences.append(
            f"With {int(ther['n_groups'])} therapists (fewer than 15) the therapist share is "
            "imprecise: read it as a description of these therapists, not an estimate for "
            "therapists in general."
        )
    labels = {"client": "Client", "therapist": "Therapist"}
    groups = {"client": "clients", "therapist": "therapists"}
    shown = pd.DataFrame(
        {
            "Level": [labels[x] for x in tab.index],
            "ICC": tab["icc"].to_numpy(),
            "95% CI": list(zip(tab["ci_low"], tab["ci_high"], strict=True)),
            "Note": [
                f"{format_int(n)} {groups[x]}" + ("; fewer than 15: imprecise" if imp else "")
                for x, n, imp in zip(tab.index, tab["n_groups"], tab["imprecise"], strict=True)
            ],
        }
    )
    n_boot = int(tab.attrs.get("n_boot", c.ICC_BOOT))
    numbers = fit.icc()  # the keys results.json always had: client, therapist, total_variance
    numbers = {
        **numbers,
        "time_zero": t0,
        "ci_level": c.CI_LEVEL,
        "n_boot": n_boot,
        "seed": int(wave.study.seed),
        "method": tab.attrs.get("method", "parametric bootstrap, percentile interval"),
        "table": to_jsonable(tab.reset_index()),
        "therapist_imprecise": imprecise,
    }
    for level in tab.index:
        numbers[f"{level}_ci_low"] = float(tab.loc[level, "ci_low"])
        numbers[f"{level}_ci_high"] = float(tab.loc[level, "ci_high"])
    delta = tab.attrs.get("interval") == "delta"
    how = (
        "Wald intervals on the logit scale from the observed information of the REML criterion "
        f"(delta method; with {format_int(fit.n_clients)} clients, at least "
        f"{format_int(ICC_DELTA_MIN_CLIENTS)}, they agree with a parametric bootstrap)"
        if delta
        else f"percentile intervals of a parametric bootstrap ({n_boot} samples simulated from "
        f"the fitted model and refitted; seed {int(wave.study.seed)})"
    )
    note = (
        f"Share of the total variance at {at} (time zero: the random intercept, slope and their "
        f"covariance evaluated there) that lies at each level, from the growth model. 95% CIs: "
        f"{how}."
    )
    if imprecise:
        note += " " + (ther["note"] or "Fewer than 15 therapists: the share is imprecise.")
    return Section(
        key="icc",
        title="Client and therapist shares of the alliance",
        numbers=numbers,
        tables=[
            Table(
                f"Intraclass Correlations of the Alliance at Session {t0:g}",
                shown,
                formats={"ICC": "prop", "95% CI": "ci_prop", "Note": "text"},
                digits={"ICC": 3, "95% CI": 3},
                note=note,
                name="icc",
            )
        ],
        sentences=sentences,
        summary=summary,
        references=[
            REFERENCES["baldwin_imel"],
            REFERENCES["pinheiro_bates" if delta else "goldstein"],
        ],
        methods=f"Intraclass correlations were computed from the growth model's variance "
        f"components at {at} (Baldwin & Imel, 2013), with 95% "
        + (
            "delta-method intervals on the logit scale (Pinheiro & Bates, 2000)"
            if delta
            else f"percentile intervals from a parametric bootstrap of {n_boot} samples "
            "(Goldstein, 2011)"
        )
        + (
            "; with fewer than 15 therapists the therapist share was reported as imprecise"
            if imprecise
            else ""
        )
        + ".",
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
                f"with 95% prediction intervals for {len(kept)} therapists ("
                + (
                    "pseudonymous IDs)"
                    if len(kept) <= plots.MAX_LABELLED
                    else "by rank; their pseudonymous IDs are in results.json)"
                )
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
