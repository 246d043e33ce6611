"""Report sections on the alliance and the outcome: early alliance, within/between clients,
therapist-level alliance and outcome.

Examples
--------
>>> AO_TERMS["alliance_within"]
'Alliance, within client (deviation from own trend)'
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots
from alliance_lib.errors import DataError
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.sections.trajectories import REFERENCES as TRAJ_REFS
from alliance_lib.sections.trajectories import fixed_table
from alliance_lib.tables import format_ci, format_int, format_number, format_p, format_prop

__all__ = [
    "early_alliance_section",
    "early_alliance_outcome_section",
    "alliance_outcome_section",
    "therapist_alliance_outcome_section",
    "AO_TERMS",
]

REFERENCES = {
    "falkenstrom": "Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. "
    "(2017). Dynamic models of individual change in psychotherapy process research. Journal of "
    "Consulting and Clinical Psychology, 85(6), 537–549.",
    "baldwin": "Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the "
    "alliance-outcome correlation: Exploring the relative importance of therapist and patient "
    "variability in the alliance. Journal of Consulting and Clinical Psychology, 75(6), 842–852.",
    "barber": "Barber, J. P., Connolly, M. B., Crits-Christoph, P., Gladis, L., & Siqueland, L. "
    "(2000). Alliance predicts patients' outcome beyond in-treatment change in symptoms. Journal "
    "of Consulting and Clinical Psychology, 68(6), 1027–1032.",
}

AO_TERMS = {
    "Intercept": "Intercept",
    "alliance_within": "Alliance, within client (deviation from own trend)",
    "alliance_between": "Alliance, between clients (client mean)",
    "outcome_prior": "Outcome at the same session",
    "session": "Session",
    "outcome_pre": "Outcome at intake",
    "alliance_within_therapist": "Alliance, client's deviation from therapist mean",
    "alliance_therapist_mean": "Alliance, therapist mean",
    "alliance_early": "Alliance at the early session",
    "outcome_intake": "Outcome at intake",
    "outcome_change_early": "Outcome change from intake to the early session",
}

NO_OUTCOME = "no outcome measure in this study"
#: The teaching lesson on alliance and outcome (reverse causation, within/between clients).
LESSON_03 = "teaching lesson 03 (notebooks/teaching/03-alliance-and-outcome.ipynb)"


def _label(term: str) -> str:
    return AO_TERMS.get(term, term)


def _differs(b: float) -> str:
    """``4.02 points lower`` / ``1.50 points higher``."""
    return f"{format_number(abs(b))} points {'lower' if b < 0 else 'higher'}"


def _p(p: float) -> str:
    text = format_p(p)
    return text if text.startswith(("<", ">")) else f"= {text}"


def early_alliance_section(wave) -> Section:
    """The alliance at the early session (and two sessions later) against the change in the
    outcome from intake to the last session attended (simple regression per session)."""
    title = "Early alliance and change, unadjusted (for comparison)"
    if not c.has_outcome(wave):
        return Section.skip("early_alliance", title, NO_OUTCOME)
    early = int(wave.study.analysis["early_alliance_session"])
    rows, tabs = [], {}
    for es in (early, early + 2):
        row, tab = c.early_alliance_by_session(wave, es)
        rows.append(row)
        tabs[es] = tab
    res = pd.DataFrame(rows)
    out = c.outcome_instrument(wave).id.upper()
    fig = plots.early_alliance_plot(
        tabs[early],
        x="early_alliance",
        y="outcome_change",
        xlabel=f"{c.alliance_label(wave)} at session {early}",
        ylabel=f"Change in {c.outcome_label(wave)}, last session − intake",
        title=f"Session-{early} alliance and change in {out} (n = {int(rows[0]['n_clients'])})",
    )
    first = res.iloc[0]
    sentence = (
        f"Unadjusted, clients with a better alliance at session {early} changed more by their "
        f"last session: r = {format_prop(first['r'])}, b = {format_number(first['slope'])} "
        f"{out} points per alliance point, 95% CI "
        f"{format_ci((first['slope_ci_low'], first['slope_ci_high']))}, p {_p(first['p'])} "
        f"({int(first['n_clients'])} clients). This simple regression does not control the "
        "intake score or the improvement before the alliance was rated, so early improvement "
        "can produce it on its own (teaching lesson 03); the adjusted estimate in the previous "
        "section is the one to read."
    )
    return Section(
        key="early_alliance",
        title=title,
        numbers=to_jsonable(res),
        tables=[
            Table(
                "Early Alliance and Change From Intake to the Last Session",
                pd.DataFrame(
                    {
                        "Session": res["session"],
                        "Clients": res["n_clients"],
                        "r": res["r"],
                        "b": res["slope"],
                        "SE": res["slope_se"],
                        "95% CI": list(zip(res["slope_ci_low"], res["slope_ci_high"], strict=True)),
                        "p": res["p"],
                    }
                ),
                formats={
                    "Session": "int",
                    "Clients": "int",
                    "r": "prop",
                    "b": "num",
                    "SE": "num",
                    "95% CI": "ci",
                    "p": "p",
                },
                note=f"Simple regression of the change in {out} (last session − intake; negative "
                "= fewer symptoms on a distress measure) on the alliance at the session; clients "
                "whose last outcome came after that session. Unadjusted, shown for comparison with "
                "earlier reports: the estimate adjusted for intake and early change is the "
                "primary one (previous section).",
                name="early-alliance",
            )
        ],
        figures=[
            Figure(
                fig,
                f"Alliance at session {early} against the change in {out} from intake to the "
                f"last session attended ({int(first['n_clients'])} clients), with the "
                "least-squares line and its 95% confidence band.",
                name="early_alliance",
            )
        ],
        sentences=[sentence],
    )


def early_alliance_outcome_section(wave) -> Section:
    """The later outcome on the early alliance, controlling the intake outcome and the symptom
    change up to the early session (:func:`alliance_lib.early_alliance_outcome`)."""
    title = "Early alliance and later outcome (adjusted for intake and early change)"
    if not c.has_outcome(wave):
        return Section.skip("early_alliance_outcome", title, NO_OUTCOME)
    early = int(wave.study.analysis["early_alliance_session"])
    try:
        fit = c.early_alliance_fit(wave, early)
    except DataError as exc:  # too few clients with the sessions this design needs
        return Section.skip("early_alliance_outcome", title, str(exc))
    r = fit.fixed.loc["alliance_early"]
    out = c.outcome_instrument(wave).id.upper()
    sentence = (
        f"Adjusted for the intake score and the change up to session {early}, one alliance point "
        f"more at session {early} went with a last {out} score {_differs(r['estimate'])}, 95% CI {format_ci((r['ci_low'], r['ci_high']))}, p {_p(r['p'])} "
        f"({format_int(fit.nobs)} clients, R² = {format_prop(fit.r2)})."
    )
    return Section(
        key="early_alliance_outcome",
        title=title,
        numbers=fit.to_dict(),
        tables=[
            fixed_table(
                fit.fixed,
                f"Last {out} Score Regressed on the Session-{early} Alliance",
                labels=lambda t: (
                    f"Alliance at session {early}" if t == "alliance_early" else _label(t)
                ),
                note=f"Ordinary least squares, one row per client with an alliance at session "
                f"{early}, an intake outcome, an outcome by session {early} and a later outcome "
                f"(n = {format_int(fit.nobs)}). {fit.caveat} See "
                f"{LESSON_03} for a simulation in which the unadjusted design finds an "
                "association without any alliance effect.",
                name="early-alliance-adjusted",
            )
        ],
        sentences=[sentence, fit.caveat],
        methods=(
            f"The last observed outcome was regressed on the session-{early} alliance, the intake "
            f"outcome and the outcome change up to session {early} by ordinary least squares, so "
            "that the alliance estimate is not carried by early improvement (Barber et al., 2000)."
        ),
        references=[REFERENCES["barber"]],
    )


def alliance_outcome_section(wave) -> Section:
    """Next-session outcome on the within- and between-client parts of the alliance."""
    title = "Alliance and next-session outcome: within and between clients"
    if not c.has_outcome(wave):
        return Section.skip("alliance_outcome", title, NO_OUTCOME)
    fit = c.alliance_outcome_fit(wave)
    out = c.outcome_instrument(wave).id.upper()
    w = fit.fixed.loc["alliance_within"]
    b = fit.fixed.loc["alliance_between"]
    summary = (
        f"In the descriptive multilevel model (biased when both series carry over from session "
        f"to session; the cross-lagged panel model below is the primary estimate), a session whose "
        f"alliance was one point above the client's own trend was followed by a {out} score "
        f"{_differs(w['estimate'])} at the next session, 95% CI {format_ci((w['ci_low'], w['ci_high']))}, p {_p(w['p'])}."
    )
    return Section(
        key="alliance_outcome",
        title=title,
        numbers=fit.to_dict(),
        tables=[
            fixed_table(
                fit.fixed,
                f"Next-Session {out} Score on the Within- and Between-Client Alliance",
                labels=_label,
                note=f"Linear mixed model, REML, Satterthwaite df; {format_int(fit.nobs)} session pairs of "
                f"{format_int(fit.n_clients)} clients; random intercepts for clients"
                + (" and therapists" if wave.has_therapists else "")
                + ". The within part is the client's deviation from their own linear alliance "
                "trend. A lagged outcome with a client random intercept carries some "
                "dynamic-panel bias: associations, not causal effects.",
                name="alliance-outcome",
            )
        ],
        sentences=[
            summary,
            f"Between clients, a client mean alliance one point higher went with a {out} score "
            f"{_differs(b['estimate'])}, 95% CI "
            f"{format_ci((b['ci_low'], b['ci_high']))}.",
        ],
        summary=summary,
        methods=(
            "The outcome at the next session was regressed on the within-client (detrended "
            "deviation from the client's own linear alliance trend) and between-client parts of "
            "the alliance, the outcome at the session and the session number in a linear mixed "
            "model with client"
            + (" and therapist" if wave.has_therapists else "")
            + " random intercepts (REML; Falkenström et al., 2017); session pairs with a missing "
            "alliance or next-session outcome were left out."
        ),
        references=[REFERENCES["falkenstrom"], TRAJ_REFS["kuznetsova"]],
    )


def therapist_alliance_outcome_section(wave) -> Section:
    """Baldwin, Wampold and Imel (2007): therapist-level against client-level alliance."""
    title = "Therapist-level alliance and outcome"
    if not (c.has_outcome(wave) and wave.has_therapists):
        return Section.skip(
            "therapist_alliance_outcome", title, "needs an outcome measure and therapists"
        )
    fit = c.therapist_alliance_outcome_fit(wave)
    out = c.outcome_instrument(wave).id.upper()
    th = fit.fixed.loc["alliance_therapist_mean"]
    cl = fit.fixed.loc["alliance_within_therapist"]
    return Section(
        key="therapist_alliance_outcome",
        title=title,
        numbers=fit.to_dict(),
        tables=[
            fixed_table(
                fit.fixed,
                f"Last {out} Score on the Therapist Mean and the Client Deviation of the Alliance",
                labels=_label,
                note=f"Linear mixed model with a therapist random intercept, REML; {format_int(fit.nobs)} "
                f"clients of {fit.n_therapists} therapists; controls for the intake outcome.",
                name="therapist-alliance-outcome",
            )
        ],
        sentences=[
            f"Therapist level: b = {format_number(th['estimate'])}, 95% CI "
            f"{format_ci((th['ci_low'], th['ci_high']))}; client level (deviation from the "
            f"therapist's mean): b = {format_number(cl['estimate'])}, 95% CI "
            f"{format_ci((cl['ci_low'], cl['ci_high']))}. A therapist-level effect larger than "
            "the client-level one would say that therapists who form better alliances have "
            "better outcomes."
        ],
        methods="Each client's mean alliance was split into the therapist's mean and the "
        "client's deviation from it, and the last outcome was regressed on both, controlling the "
        "intake outcome, with a therapist random intercept (Baldwin et al., 2007).",
        references=[REFERENCES["baldwin"]],
    )
