"""Report section comparing the ratings of the same sessions by client, therapist and any other
rater perspective in the data (observer, interpreter).

Examples
--------
>>> statistic_label("ICC(A,1)")
'ICC(A,1), absolute agreement'
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_ci, format_int, format_number, format_prop

__all__ = ["rater_agreement_section", "statistic_label"]

REFERENCES = {
    "bland2007": "Bland, J. M., & Altman, D. G. (2007). Agreement between methods of measurement "
    "with multiple observations per individual. Journal of Biopharmaceutical Statistics, 17(4), "
    "571–582.",
    "mcgraw": "McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass "
    "correlation coefficients. Psychological Methods, 1(1), 30–46.",
    "bland": "Bland, J. M., & Altman, D. G. (1986). Statistical methods for assessing agreement "
    "between two methods of clinical measurement. The Lancet, 327(8476), 307–310.",
}

_LABELS = {
    "ICC(A,1)": "ICC(A,1), absolute agreement",
    "ICC(C,1)": "ICC(C,1), consistency",
    "mean_difference": "Mean difference",
    "loa_low": "Lower 95% limit of agreement",
    "loa_high": "Upper 95% limit of agreement",
    "slope_r": "Correlation of the raters' per-client slopes",
}
_BOUNDED = {"ICC(A,1)", "ICC(C,1)", "slope_r"}


def statistic_label(statistic: str) -> str:
    return _LABELS.get(statistic, statistic.replace("_", " ").capitalize())


def _pair_words(pair: tuple[str, str]) -> str:
    return f"{pair[0].capitalize()} vs {pair[1]}"


def _cells(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    bounded = frame["statistic"].isin(list(_BOUNDED))
    est = [
        format_prop(v, 2) if b else format_number(v, 2)
        for v, b in zip(frame["estimate"], bounded, strict=True)
    ]
    ci = [
        format_ci((lo, hi), 2, prop=b)
        for lo, hi, b in zip(frame["ci_low"], frame["ci_high"], bounded, strict=True)
    ]
    return est, ci


def _agreement_table(frame: pd.DataFrame, title: str, note: str, name: str) -> Table:
    est, ci = _cells(frame)
    return Table(
        title,
        pd.DataFrame(
            {
                "Raters": frame["comparison"],
                "Statistic": frame["statistic"].map(statistic_label),
                "Estimate": est,
                "95% CI": ci,
                "n": frame["n"],
            }
        ),
        formats={"Raters": "text", "Estimate": "text", "95% CI": "text", "n": "int"},
        note=note,
        name=name,
    )


def rater_agreement_section(wave) -> Section:
    """Agreement of every pair of rater perspectives present (client, therapist, observer,
    interpreter) on the alliance of the same sessions: clustered ICC(A,1) and ICC(C,1) (REML
    with client and session random effects, cluster-bootstrap CIs), Bland & Altman (2007)
    repeated-measures bias and limits, the correlation of per-client slopes (primary), and the
    same ICCs and limits with the pairs treated as independent (sensitivity)."""
    title = "Agreement between raters"
    found = c.rater_perspectives(wave)
    if len(found) < 2 or not c.rater_agreement_fits(wave):
        return Section.skip("rater_agreement", title, "no therapist-rated alliance in this study")
    fits = c.rater_agreement_fits(wave)
    frames = []
    for pair, fit in fits.items():
        f = fit.to_frame()
        f.insert(0, "comparison", _pair_words(pair))
        f["raters"] = "-".join(pair)
        f["n_boot"] = fit.n_boot
        f["seed"] = fit.seed
        f["n_clients"] = fit.n_clients
        frames.append(f)
    frame = pd.concat(frames, ignore_index=True)
    primary = frame[frame["analysis"].isin(["clustered", "client slopes"])]
    sensitivity = frame[frame["analysis"] == "independent pairs (sensitivity)"]
    first = c.rater_agreement_fit(wave)
    pair = first.raters
    n_boot = int(first.n_boot or c.RATER_BOOT)
    ba = first.bland_altman
    icc = first.icc
    icc_ind = first.icc_independent
    vc = first.variance_components["variance"] if first.variance_components is not None else None
    main_note = (
        f"Clustered analysis: the paired ratings of {format_int(first.n_clients)} clients fitted "
        "by REML with client and session-within-client random effects and the rater as a fixed "
        "effect; ICC(A,1) counts the raters' mean difference as disagreement, ICC(C,1) does not. "
        "Limits of agreement for repeated measurements (Bland & Altman, 2007), in item-mean "
        "points; differences are the first rater minus the second. 95% CIs: percentile "
        f"intervals of a cluster bootstrap over clients ({n_boot} replicates, seed "
        f"{first.seed}; a small number that keeps the report fast, so the last digit of a "
        "limit can move with another seed). n = sessions rated by both (clients for the slope "
        "correlation)."
    )
    if vc is not None:
        main_note += (
            f" Variance components ({pair[0]} vs {pair[1]}): client {format_number(vc['client'], 3)}, "
            f"session {format_number(vc['session'], 3)}, rater {format_number(vc['rater'], 3)}, "
            f"residual {format_number(vc['residual'], 3)}."
        )
    skipped = c.rater_pairs_not_compared(wave)
    if skipped:
        main_note += " Not compared: " + "; ".join(
            f"{_pair_words(p)} ({why})" for p, why in skipped.items()
        )
    tables = [
        _agreement_table(
            primary,
            "Agreement Between Raters of the Alliance: Clustered Analysis",
            main_note,
            "rater-agreement",
        ),
        _agreement_table(
            sensitivity,
            "Sensitivity: Rater Agreement With the Sessions Treated as Independent Pairs",
            "The same ratings analysed as if every session came from a different client "
            "(two-way ANOVA ICCs with the McGraw & Wong, 1996, intervals; Bland & Altman, "
            "1986, limits). Sessions of a client are not independent, so these intervals are "
            "too narrow; shown to compare with earlier reports.",
            "rater-agreement-independent",
        ),
    ]
    who = {"client": "Clients", "therapist": "their therapists", "observer": "observers"}
    sentence = (
        f"{pair[0].capitalize() + 's' if pair[0] != 'client' else 'Clients'} rated the alliance "
        f"{format_number(abs(ba.mean_difference))} points "
        f"{'higher' if ba.mean_difference > 0 else 'lower'} than "
        f"{who.get(pair[1], pair[1] + 's')} on average (95% limits of agreement for repeated "
        f"measurements {format_number(ba.loa_low)} to {format_number(ba.loa_high)}); clustered "
        f"absolute agreement ICC(A,1) = {format_prop(icc.loc['ICC(A,1)', 'icc'])} "
        f"{format_ci((icc.loc['ICC(A,1)', 'ci_low'], icc.loc['ICC(A,1)', 'ci_high']), prop=True)}, "
        f"consistency ICC(C,1) = {format_prop(icc.loc['ICC(C,1)', 'icc'])} "
        f"{format_ci((icc.loc['ICC(C,1)', 'ci_low'], icc.loc['ICC(C,1)', 'ci_high']), prop=True)}."
    )
    sens_sentence = (
        "Treating the sessions as independent pairs (sensitivity) gives ICC(C,1) = "
        f"{format_prop(icc_ind.loc['ICC(C,1)', 'icc'])} "
        f"{format_ci((icc_ind.loc['ICC(C,1)', 'ci_low'], icc_ind.loc['ICC(C,1)', 'ci_high']), prop=True)}"
        ", an interval too narrow for sessions nested in clients."
    )
    sentences = [sentence, sens_sentence]
    if len(fits) > 1:
        sentences.append("Pairs compared: " + ", ".join(_pair_words(p).lower() for p in fits) + ".")
    figures = []
    if pair == ("client", "therapist"):
        figures.append(
            Figure(
                plots.rater_plot(
                    c.sessions(wave),
                    label=c.alliance_label(wave, rater=None),
                    limits=(ba.mean_difference, ba.loa_low, ba.loa_high),
                ),
                "Left: therapist against client ratings of the same sessions with the line of "
                "equality. Right: Bland-Altman plot of the difference (client − therapist) "
                "against the mean of the two ratings, with the mean bias and the 95% limits of "
                "agreement for repeated measurements (Bland & Altman, 2007).",
                name="rater_agreement",
            )
        )
    # the fits hold every rated pair and per-client slopes (2 GB at 1,000,000 clients), and no
    # later section uses them
    c.forget(wave, ("raters",))
    return Section(
        key="rater_agreement",
        title=title,
        numbers=to_jsonable(frame),
        tables=tables,
        figures=figures,
        sentences=sentences,
        methods="Ratings of the same sessions by each pair of rater perspectives were compared "
        "with single-measure intraclass correlations for absolute agreement and consistency "
        "from a mixed model with client and session random effects (REML), Bland-Altman limits "
        f"of agreement for repeated measurements (Bland & Altman, 2007), and {n_boot}-replicate "
        "cluster-bootstrap intervals over clients; the independent-pairs ICCs (McGraw & Wong, "
        "1996) and limits (Bland & Altman, 1986) are reported as a sensitivity analysis.",
        references=[REFERENCES["bland2007"], REFERENCES["mcgraw"], REFERENCES["bland"]],
    )
