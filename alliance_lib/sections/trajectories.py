"""Report sections on alliance trajectories: the growth model and the comparison of shapes.

Examples
--------
>>> term_label("session"), term_label("I(session^2)"), term_label("Intercept")
('Session', 'Session²', 'Intercept (session 0)')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_ci, format_int, format_number, format_p

__all__ = [
    "trajectory_section",
    "shape_comparison_section",
    "fixed_table",
    "random_table",
    "term_label",
]

REFERENCES = {
    "bates": "Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear "
    "mixed-effects models using lme4. Journal of Statistical Software, 67(1), 1–48.",
    "kuznetsova": "Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest "
    "package: Tests in linear mixed effects models. Journal of Statistical Software, 82(13), 1–26.",
    "singer": "Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis: "
    "Modeling change and event occurrence. Oxford University Press.",
    "little": "Little, R. J. A., & Rubin, D. B. (2019). Statistical analysis with missing data "
    "(3rd ed.). Wiley.",
}

_TERMS = {
    "Intercept": "Intercept (session 0)",
    "(Intercept)": "Intercept",
    "session": "Session",
    "I(session^2)": "Session²",
    "session^2": "Session²",
    "log(session)": "log(Session)",
    "log(session + 1)": "log(Session + 1)",
}


def term_label(term: str, time_zero: float | None = None) -> str:
    """A model term as readers know it; the intercept names its session (``time_zero``, where
    the time terms are 0; default 0).

    >>> term_label("Intercept", 1.0)
    'Intercept (session 1)'
    """
    if term == "Intercept" and time_zero is not None:
        return f"Intercept (session {float(time_zero):g})"
    if term in _TERMS:
        return _TERMS[term]
    return term.replace("session", "Session").replace("_", " ").replace(":", " × ")


def fixed_table(fixed: pd.DataFrame, title: str, *, labels=None, note: str = "", name: str = ""):
    """A fixed-effects table (b, SE, df, t, p, 95% CI) with readable term labels."""
    f = fixed.reset_index()
    label = labels or term_label
    return Table(
        title,
        pd.DataFrame(
            {
                "Term": [label(t) for t in f["term"]],
                "b": f["estimate"],
                "SE": f["se"],
                "df": f["df"],
                "t": f["t"],
                "p": f["p"],
                "95% CI": list(zip(f["ci_low"], f["ci_high"], strict=True)),
            }
        ),
        formats={"b": "num", "SE": "num", "df": "num", "t": "num", "p": "p", "95% CI": "ci"},
        digits={"b": 3, "SE": 3, "df": 1, "95% CI": 3},
        note=note,
        name=name,
    )


def random_table(random: pd.DataFrame, title: str, *, note: str = "", name: str = ""):
    """Variance components laid out like lme4's ``VarCorr``: level, term, variance, SD (or the
    correlation, on covariance rows)."""
    levels = {"client_id": "Client", "therapist_id": "Therapist", "Residual": "Residual"}

    def term(r):
        if pd.isna(r.var1):
            return "—"
        if isinstance(r.var2, str):
            return f"{term_label(r.var1)}, {term_label(r.var2)} (correlation)"
        return term_label(r.var1)

    rows = list(random.itertuples())
    return Table(
        title,
        pd.DataFrame(
            {
                "Level": [levels.get(r.grp, r.grp) for r in rows],
                "Term": [term(r) for r in rows],
                "Variance (covariance)": random["vcov"].to_numpy(),
                "SD (correlation)": random["sdcor"].to_numpy(),
            }
        ),
        formats={"Variance (covariance)": "num", "SD (correlation)": "num"},
        digits={"Variance (covariance)": 4, "SD (correlation)": 3},
        note=note,
        name=name,
    )


def _trend_sentence(wave, fit, label: str) -> str:
    fixed = fit.fixed
    if "session" in fixed.index:
        r = fixed.loc["session"]
        direction = "rose" if r["estimate"] > 0 else "fell"
        return (
            f"The {label} {direction} by {format_number(abs(r['estimate']), 3)} points per "
            f"session, 95% CI {format_ci((r['ci_low'], r['ci_high']), 3)}, p {_p(r['p'])}, from "
            f"{format_number(fixed.loc['Intercept', 'estimate'])} at {c.time_zero_words(wave, fit)} "
            f"({format_int(fit.n_clients)} clients, {format_int(fit.nobs)} ratings)."
        )
    terms = ", ".join(term_label(t) for t in fixed.index if t != "Intercept")
    return f"The {label} was modelled with the terms {terms} (see the fixed-effects table)."


def _p(p: float) -> str:
    text = format_p(p)
    return text if text.startswith(("<", ">")) else f"= {text}"


def trajectory_section(wave, *, n_clients: int = 40, seed: int = 2026) -> Section:
    """The study's growth model of the client-rated alliance, with individual trajectories."""
    fit = c.trajectory_fit(wave)
    study = wave.study
    shape = study.analysis["trajectory_shape"]
    covariates = list(study.covariates)
    label = f"client-rated {c.alliance_label(wave, rater=None)}"
    levels = "sessions in clients in therapists" if wave.has_therapists else "sessions in clients"
    warn = ("Model notes: " + "; ".join(fit.warnings) + ".") if fit.warnings else ""
    fig = plots.trajectory_plot(
        c.sessions(wave),
        score="alliance",
        curve=fit.predict(),
        n_clients=n_clients,
        seed=seed,
        ylabel=c.alliance_label(wave),
    )
    summary = _trend_sentence(wave, fit, label)
    return Section(
        key="trajectory",
        title="Alliance trajectories",
        numbers=fit.to_dict(),
        tables=[
            fixed_table(
                fit.fixed,
                "Growth Model of the Client-Rated Alliance: Fixed Effects",
                labels=lambda t: term_label(t, fit.time_zero),
                note=f"Model: {fit.formula()}, REML, {format_int(fit.nobs)} ratings of {fit.n_clients} "
                f"clients; time is centred at {c.time_zero_words(wave, fit)} (time zero: the "
                "intercept, the ICCs and the curves are stated there). df by the Satterthwaite "
                "approximation. Converged: "
                f"{'yes' if fit.converged else 'no'}; singular: {'yes' if fit.singular else 'no'}."
                + (
                    f" Covariates (each with a time interaction): {', '.join(covariates)}."
                    if covariates
                    else ""
                ),
                name="trajectory-fixed",
            ),
            random_table(
                fit.random,
                "Growth Model of the Client-Rated Alliance: Variance Components",
                note="Client intercept and slope are allowed to correlate.",
                name="trajectory-random",
            ),
        ],
        figures=[
            Figure(
                fig,
                f"Individual alliance trajectories of {min(n_clients, fit.n_clients)} randomly "
                f"drawn clients (seed {seed}) with the fitted mean curve of the {shape} growth "
                "model and its 95% confidence band.",
                name="trajectories",
            )
        ],
        sentences=[summary] + ([warn] if warn else []),
        summary=summary,
        methods=(
            f"Alliance trajectories were modelled with a linear mixed model ({levels}; a {shape} "
            "time trend with a random intercept and slope per client and their correlation"
            + (", and a therapist random intercept" if wave.has_therapists else "")
            + "), fitted by restricted maximum likelihood with Satterthwaite degrees of freedom, "
            "the estimator of lme4 and lmerTest (Bates et al., 2015; Kuznetsova et al., 2017). "
            "Sessions with a missing alliance were left out, which is valid when missingness "
            "depends only on observed data (missing at random; Little & Rubin, 2019)."
        ),
        references=[REFERENCES["bates"], REFERENCES["kuznetsova"], REFERENCES["little"]],
    )


def shape_comparison_section(wave) -> Section:
    """Candidate trajectory shapes fitted by ML and compared (AIC, BIC, likelihood-ratio test),
    drawn over the observed session means with the number of clients at each session."""
    fits = c.shape_fits(wave)
    comparison = _compare(fits)
    s = c.sessions(wave)
    observed = (
        s.dropna(subset=["alliance"])
        .groupby("session")["alliance"]
        .agg(mean="mean", sd="std", n="size")
        .reset_index()
    )
    observed["se"] = observed["sd"] / np.sqrt(observed["n"])
    curves = pd.concat([f.predict().assign(shape=sh) for sh, f in fits.items()], ignore_index=True)
    fig = plots.shape_comparison_plot(
        curves, observed, ylabel=c.alliance_label(wave), title="Alliance trajectory shapes compared"
    )
    comp = comparison.reset_index()
    best = comp.loc[comp["bic"].idxmin(), "model"]
    shown = pd.DataFrame(
        {
            "Shape": comp["model"].str.capitalize(),
            "Parameters": comp["npar"],
            "Log-likelihood": comp["loglik"],
            "AIC": comp["aic"],
            "BIC": comp["bic"],
            "χ²": comp["chisq"],
            "df": comp["df"],
            "p": comp["p"],
            "Tested against": comp["tested_against"].where(comp["tested_against"].notna(), None),
        }
    )
    first, last = observed.iloc[0], observed.iloc[-1]
    return Section(
        key="shape_comparison",
        title="Trajectory shapes compared",
        numbers=to_jsonable(comparison),
        tables=[
            Table(
                "Candidate Shapes of the Alliance Trajectory",
                shown,
                formats={
                    "Parameters": "int",
                    "Log-likelihood": "num",
                    "AIC": "num",
                    "BIC": "num",
                    "χ²": "num",
                    "df": "int",
                    "p": "p",
                    "Tested against": "text",
                },
                digits={"Log-likelihood": 1, "AIC": 1, "BIC": 1},
                note="All shapes fitted by maximum likelihood to the same ratings (REML "
                "likelihoods are not comparable across fixed effects); lower AIC and BIC are "
                "better; the likelihood-ratio test (χ²) compares a model with the simpler model it "
                "nests.",
                name="shape-comparison",
            )
        ],
        figures=[
            Figure(
                fig,
                "Fitted mean alliance curves of each candidate shape over the observed session "
                "means (± 1.96 SE), with the number of clients rated at each session (n = "
                f"{int(first['n'])} at session {int(first['session'])}, {int(last['n'])} at "
                f"session {int(last['session'])}). Observed means at later sessions describe only "
                "the clients still attending; when clients with lower alliances leave earlier "
                "(dropout that is missing at random given their earlier ratings), these means sit "
                "above the model curves, which use every client's ratings (teaching lesson 02).",
                name="shape_comparison",
            )
        ],
        sentences=[f"The {best} shape has the lowest BIC."],
        methods="Candidate trajectory shapes were compared by AIC, BIC and likelihood-ratio "
        "tests of maximum-likelihood fits (Singer & Willett, 2003).",
        references=[REFERENCES["singer"]],
    )


def _compare(fits):
    from alliance_lib.trajectories import compare_trajectories

    return compare_trajectories(fits)
