"""Report section comparing client and therapist ratings of the same sessions.

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
from alliance_lib.tables import format_ci, format_number, format_prop

__all__ = ["rater_agreement_section", "statistic_label"]

REFERENCES = {
    "mcgraw": "McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass "
    "correlation coefficients. Psychological Methods, 1(1), 30–46.",
    "bland": "Bland, J. M., & Altman, D. G. (1986). Statistical methods for assessing agreement "
    "between two methods of clinical measurement. The Lancet, 327(8476), 307–310.",
}

_LABELS = {
    "ICC(A,1)": "ICC(A,1), absolute agreement",
    "ICC(C,1)": "ICC(C,1), consistency",
    "mean_difference": "Mean difference (client − therapist)",
    "loa_low": "Lower 95% limit of agreement",
    "loa_high": "Upper 95% limit of agreement",
    "slope_r": "Correlation of client and therapist slopes",
}
_BOUNDED = {"ICC(A,1)", "ICC(C,1)", "slope_r"}


def statistic_label(statistic: str) -> str:
    return _LABELS.get(statistic, statistic.replace("_", " ").capitalize())


def rater_agreement_section(wave) -> Section:
    """Agreement of client and therapist alliance ratings: ICC(A,1), ICC(C,1), Bland-Altman
    bias and limits, and the correlation of the two raters' per-client slopes."""
    title = "Client and therapist ratings"
    if not wave.has_therapist_ratings:
        return Section.skip("rater_agreement", title, "no therapist-rated alliance in this study")
    frame = c.rater_agreement_fit(wave).to_frame()
    est = dict(zip(frame["statistic"], frame["estimate"], strict=True))
    bounded = frame["statistic"].isin(list(_BOUNDED))
    shown_est = [
        format_prop(v, 2) if b else format_number(v, 2)
        for v, b in zip(frame["estimate"], bounded, strict=True)
    ]
    shown_ci = [
        format_ci((lo, hi), 2, prop=b)
        for lo, hi, b in zip(frame["ci_low"], frame["ci_high"], bounded, strict=True)
    ]
    table = Table(
        "Agreement of Client and Therapist Ratings of the Alliance",
        pd.DataFrame(
            {
                "Statistic": frame["statistic"].map(statistic_label),
                "Estimate": shown_est,
                "95% CI": shown_ci,
                "n": frame["n"],
            }
        ),
        formats={"Estimate": "text", "95% CI": "text", "n": "int"},
        note="n = sessions rated by both (clients for the slope correlation). ICCs after McGraw "
        "and Wong (1996); limits of agreement after Bland and Altman (1986), in item-mean points.",
        name="rater-agreement",
    )
    sentence = (
        f"Clients rated the alliance {format_number(est.get('mean_difference'))} points higher "
        f"than their therapists on average; absolute agreement ICC(A,1) = "
        f"{format_prop(est.get('ICC(A,1)'))}, consistency ICC(C,1) = "
        f"{format_prop(est.get('ICC(C,1)'))}."
    )
    return Section(
        key="rater_agreement",
        title=title,
        numbers=to_jsonable(frame),
        tables=[table],
        figures=[
            Figure(
                plots.rater_plot(c.sessions(wave), label=c.alliance_label(wave, rater=None)),
                "Left: therapist against client ratings of the same sessions with the line of "
                "equality. Right: Bland-Altman plot of the difference (client − therapist) "
                "against the mean of the two ratings, with the mean bias and the 95% limits of "
                "agreement.",
                name="rater_agreement",
            )
        ],
        sentences=[sentence],
        methods="Client and therapist ratings of the same sessions were compared with "
        "single-measure intraclass correlations for absolute agreement and consistency (McGraw "
        "& Wong, 1996) and Bland-Altman limits of agreement (Bland & Altman, 1986).",
        references=[REFERENCES["mcgraw"], REFERENCES["bland"]],
    )
