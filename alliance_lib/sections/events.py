"""Report sections on change events: ruptures and repairs, sudden gains and losses, reliable and
clinically significant change, the event timeline and event rates by therapist.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> ruptures_section(w).numbers["preset"]
'stiles'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance_lib import plots, privacy
from alliance_lib.results import to_jsonable
from alliance_lib.ruptures import MAX_SIMULATED_CLIENTS, change_event_timeline
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import format_int, format_number, format_pct, format_prop

__all__ = [
    "ruptures_section",
    "sudden_gains_section",
    "event_timeline_section",
    "clinical_significance_section",
    "event_rates_section",
]

REFERENCES = {
    "stiles": "Stiles, W. B., Glick, M. J., Osatuke, K., Hardy, G. E., Shapiro, D. A., Agnew-"
    "Davies, R., Rees, A., & Barkham, M. (2004). Patterns of alliance development and the "
    "rupture-repair hypothesis. Journal of Counseling Psychology, 51(1), 81–92.",
    "gumz": "Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences: "
    "Considerations on the assessment and classification of ruptures in the therapeutic "
    "alliance. BMC Medical Research Methodology, 12, 10.",
    "larsson": "Larsson, M. H., Falkenström, F., Andersson, G., & Holmqvist, R. (2018). Alliance "
    "ruptures and repairs in psychotherapy in primary care. Psychotherapy Research, 28(1), "
    "123–136.",
    "tang": "Tang, T. Z., & DeRubeis, R. J. (1999). Sudden gains and critical sessions in "
    "cognitive-behavioral therapy for depression. Journal of Consulting and Clinical Psychology, "
    "67(6), 894–904.",
    "hsu": "Hsu, L. M. (1995). Regression toward the mean associated with measurement error and "
    "the identification of improvement and deterioration in psychotherapy. Journal of Consulting "
    "and Clinical Psychology, 63(1), 141–144.",
    "hageman": "Hageman, W. J. J. M., & Arrindell, W. A. (1999). Establishing clinically "
    "significant change: Increment of precision and the distinction between individual and "
    "group level of analysis. Behaviour Research and Therapy, 37(12), 1169–1193.",
    "wiedemann": "Wiedemann, M., Thew, G. R., Stott, R., & Ehlers, A. (2020). suddengains: An R "
    "package to identify sudden gains in longitudinal data. PLoS ONE, 15(3), e0230276.",
    "jacobson": "Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical "
    "approach to defining meaningful change in psychotherapy research. Journal of Consulting and "
    "Clinical Psychology, 59(1), 12–19.",
}

PRESET_NAMES = {"stiles": "Stiles", "strauss": "Strauss", "gumz": "Gumz"}
PRESETS = {
    "stiles": "Stiles et al. (2004): 2 SD below the client's own level",
    "strauss": "Strauss et al. (2006): 1 SD below the client's own level",
    "gumz": "Gumz et al. (2012): the larger of the within- and between-client SD",
}
NO_OUTCOME = "no outcome measure in this study"
CATEGORIES = ["recovered", "improved", "unchanged", "deteriorated"]


def ruptures_section(wave) -> Section:
    """Rupture episodes in the client-rated alliance under the Stiles (2004) and Gumz (2012)
    rules side by side, each with its expected false-alarm rate at this wave's noise level, and
    each client's pattern (the study's preset first)."""
    a = wave.study.analysis
    cmp = c.rupture_comparison(wave)
    episodes = c.rupture_episodes(wave)
    patterns = c.rupture_pattern_table(wave)
    counts = patterns["pattern"].value_counts().rename_axis("pattern").reset_index(name="clients")
    counts["share"] = counts["clients"] / counts["clients"].sum()
    n = len(episodes)
    summ = cmp.summary.set_index("preset")
    null = {k: dict(v) for k, v in cmp.null.items()}
    numbers = {
        "preset": a["rupture_preset"],
        "min_drop": a["rupture_min_drop"],
        "n_episodes": n,
        "share_repaired": float(episodes["repaired"].mean()) if n else None,
        "median_depth_sd": float(episodes["depth_sd"].median()) if n else None,
        "patterns": to_jsonable(counts),
        "presets_compared": list(summ.index),
        "comparison": to_jsonable(cmp.summary),
        "crosstab": {
            "rows": cmp.crosstab.index.name,
            "columns": cmp.crosstab.columns.name,
            "table": {
                str(k): {str(kk): int(vv) for kk, vv in v.items()}
                for k, v in cmp.crosstab.T.to_dict().items()
            },
        },
        "false_alarm_model": to_jsonable(null),
        "n_simulations": c.RUPTURE_SIMULATIONS,
    }
    n_clients = int(episodes["client_id"].nunique()) if n else 0
    own = summ.loc[a["rupture_preset"]]
    summary = (
        f"{format_int(n)} alliance rupture{'s' * (n != 1)} occurred in {format_int(n_clients)} "
        f"client{'s' * (n_clients != 1)}; {format_pct(numbers['share_repaired'])} were repaired "
        "within three sessions."
        if n
        else "No alliance rupture met the criterion."
    )
    rule_words = []
    for name, r in summ.iterrows():
        short = PRESET_NAMES.get(name, name)
        rule_words.append(
            f"the {short} rule flagged {format_pct(r['share_rupture'])} of clients against "
            f"{format_pct(r['false_alarm_share'])} expected by chance in rupture-free data"
        )
    compare_sentence = (
        "Side by side, " + "; ".join(rule_words) + ". A rate near its chance level says the "
        "rule mostly flags session-to-session noise at this wave's reliability."
    )
    side = pd.DataFrame(
        {
            "Rule": [PRESETS.get(p, p) for p in summ.index],
            "Clients": summ["n_clients"].to_numpy(),
            "With a rupture": summ["n_rupture"].to_numpy(),
            "% with a rupture": summ["share_rupture"].to_numpy(),
            "Episodes": summ["n_episodes"].to_numpy(),
            "Repaired": summ["n_repaired"].to_numpy(),
            "Expected by chance": [
                f"{format_pct(v, 1)} (SE {format_pct(se, 1)})"
                for v, se in zip(summ["false_alarm_share"], summ["false_alarm_se"], strict=True)
            ],
            "Excess over chance": summ["excess_share"].to_numpy(),
        }
    )
    wide = {"Pattern": []}
    order = ["no rupture", "repaired", "unrepaired", "insufficient data"]
    wide["Pattern"] = [p.capitalize() for p in order]
    for name in summ.index:
        pat = cmp.patterns[name]["pattern"].value_counts().reindex(order, fill_value=0)
        label = PRESET_NAMES.get(name, name)
        wide[f"{label}: clients"] = pat.to_numpy()
        wide[f"{label}: %"] = (pat / pat.sum()).to_numpy()
    noise = next(iter(cmp.null.values()))
    preset = PRESETS.get(a["rupture_preset"], a["rupture_preset"])
    side_note = (
        f"Both rules with a minimum drop of {format_number(a['rupture_min_drop'])} item-mean "
        "points; clients = with enough ratings to set their own level. Expected by chance: "
        f"share of clients flagged in {c.RUPTURE_SIMULATIONS} simulated data sets without "
        f"ruptures{_sampled_words(summ)}, with this wave's client means and session-to-session noise (within-client SD "
        f"{format_number(noise.get('within_sd'), 2)}, between-client SD "
        f"{format_number(noise.get('between_sd'), 2)}; seed {wave.study.seed}). Excess over "
        "chance: % with a rupture minus the expected false alarms, in percentage points."
    )
    return Section(
        key="ruptures",
        title="Ruptures and repairs",
        numbers=numbers,
        tables=[
            Table(
                "Rupture Rules Side by Side, With Their Expected False-Alarm Rates",
                side,
                formats={
                    "Rule": "text",
                    "Clients": "int",
                    "With a rupture": "int",
                    "% with a rupture": "pct",
                    "Episodes": "int",
                    "Repaired": "int",
                    "Expected by chance": "text",
                    "Excess over chance": "pct",
                },
                note=side_note,
                name="rupture-rules",
            ),
            Table(
                "Clients by Rupture Pattern Under Each Rule",
                pd.DataFrame(wide),
                formats={
                    k: ("int" if k.endswith("clients") else "pct") for k in wide if k != "Pattern"
                }
                | {"Pattern": "text"},
                note="Repaired = back to the client's level within three sessions. Insufficient "
                "data = too few ratings to set the client's own level. Every client flagged by "
                "the Stiles rule is also flagged by the Gumz rule"
                if _nested(cmp)
                else "Repaired = back to the client's level within three sessions. Insufficient "
                "data = too few ratings to set the client's own level.",
                name="rupture-patterns",
            ),
        ],
        sentences=[
            summary,
            f"The study's rule is {preset}; at this wave's noise level it would flag "
            f"{format_pct(own['false_alarm_share'])} of clients in data without any rupture.",
            compare_sentence,
        ],
        summary=summary,
        methods=f"Alliance ruptures were sessions falling below the client's own level, under "
        "two published rules side by side (Stiles et al., 2004: 2 SD of the client's own "
        "scores; Gumz et al., 2012: 1 SD of the larger of the within- and between-client SD), "
        f"each with a minimum drop of {format_number(a['rupture_min_drop'])} points and "
        f"its expected false-alarm rate in {c.RUPTURE_SIMULATIONS} simulated rupture-free data "
        "sets at the data's noise level; an episode was repaired when the alliance returned "
        "within three sessions (Larsson et al., 2018). The study's rule "
        f"({a['rupture_preset']}) feeds the event timeline and event rates.",
        references=[REFERENCES["stiles"], REFERENCES["gumz"], REFERENCES["larsson"]],
    )


def _sampled_words(summ: pd.DataFrame) -> str:
    """Words on the false-alarm simulation's sample of clients, when it used one."""
    cap = MAX_SIMULATED_CLIENTS
    if cap is None or summ["n_clients"].max() <= cap:
        return ""
    return f" (each of {format_int(cap)} randomly drawn clients with enough ratings)"


def _nested(cmp) -> bool:
    """Whether every client the first rule flags is flagged by the last (crosstab zeros)."""
    ct = cmp.crosstab
    flagged = [x for x in ("repaired", "unrepaired") if x in ct.index]
    if "no rupture" not in ct.columns or not flagged:
        return False
    return bool((ct.loc[flagged, "no rupture"] == 0).all())


def _interval_totals(intervals: pd.DataFrame) -> dict:
    """Study totals of :func:`alliance_lib.change.count_intervals` (clients and intervals)."""
    cols = ["n_intervals", "n_tested", "n_analysable", "n_not_analysable"]
    return {"n_clients": int(len(intervals)), **{k: int(intervals[k].sum()) for k in cols}}


def sudden_gains_section(wave) -> Section:
    """Sudden gains and losses in the outcome (Tang & DeRubeis 1999 criteria)."""
    title = "Sudden gains and losses"
    if not c.has_outcome(wave):
        return Section.skip("sudden_gains", title, NO_OUTCOME)
    found = c.gains_and_losses(wave)
    if found is None:
        return Section.skip(
            "sudden_gains",
            title,
            f"{c.outcome_instrument(wave).id} has no reliable-change norm; set "
            "analysis.sudden_gain_cutoff in the study file",
        )
    gains, losses, intervals = found
    cutoff = c.sudden_gain_cutoff(wave)
    n_clients = c.sessions(wave)["client_id"].nunique()
    cases = c.sudden_gain_cases(wave)
    n_selected = int(cases["selected"].sum())
    numbers = {
        "cutoff": cutoff,
        "case_selection": "pattern",
        "n_clients": int(n_clients),
        "n_selected": n_selected,
        "share_selected_with_gain": gains["client_id"].nunique() / n_selected
        if n_selected
        else None,
        "n_gains": len(gains),
        "n_losses": len(losses),
        "clients_with_gain": int(gains["client_id"].nunique()),
        "share_clients_with_gain": gains["client_id"].nunique() / n_clients,
        "share_gains_reversed": float(gains["reversal"].mean()) if len(gains) else None,
        "median_magnitude": float(gains["magnitude"].median()) if len(gains) else None,
    }
    out = c.outcome_instrument(wave).id.upper()
    rows = [
        (
            "Clients selected (data to test an interval)",
            f"{format_int(n_selected)} of {format_int(n_clients)}",
        ),
        ("Cutoff (points)", format_number(cutoff, 1)),
        ("Sudden gains", format_int(numbers["n_gains"])),
        ("Sudden losses", format_int(numbers["n_losses"])),
        (
            "Clients with a sudden gain",
            f"{format_int(numbers['clients_with_gain'])} "
            f"({format_pct(numbers['share_clients_with_gain'])})",
        ),
        ("Gains later reversed", format_pct(numbers["share_gains_reversed"])),
        ("Median gain (points)", format_number(numbers["median_magnitude"], 1)),
    ]
    reversed_ = (
        f"; {format_pct(numbers['share_gains_reversed'])} of gains were later reversed"
        if len(gains)
        else ""
    )
    summary = (
        f"{format_int(numbers['n_gains'])} sudden gain{'s' * (len(gains) != 1)} in {out} "
        f"({format_pct(numbers['share_clients_with_gain'])} of clients) and "
        f"{format_int(numbers['n_losses'])} sudden loss{'es' if numbers['n_losses'] != 1 else ''}"
        f"{reversed_}."
    )
    return Section(
        key="sudden_gains",
        title=title,
        # the study totals of the interval counts (as suddengains' count_intervals reports
        # them); the per-client counts are al.count_intervals, not a results.json list that
        # grew by 110 bytes a client (11 MB at 100,000 clients)
        numbers={**to_jsonable(numbers), "intervals": _interval_totals(intervals)},
        tables=[
            Table(
                f"Sudden Gains and Losses in {out}",
                pd.DataFrame(rows, columns=["Statistic", "Value"]),
                formats={"Value": "text"},
                note=f'Clients selected as suddengains\' select_cases(method = "pattern"): '
                "an interval with two observed sessions on each side (x N x x, x N x . x, "
                "x . N x x or x . N x . x); gains were looked for in those clients only. A gain "
                f"is a session-to-session improvement of at least {cutoff:g} points, at least "
                "25% of the pre-gain score, and larger than the variability of the three "
                "sessions around it (Tang & DeRubeis, 1999; as in the R package suddengains). "
                "Percentages of clients are of all clients.",
                name="sudden-gains",
            )
        ],
        sentences=[
            summary,
            f"{format_int(n_selected)} of {format_int(n_clients)} clients had the outcome "
            "ratings needed to test at least one session-to-session interval (suddengains' "
            "pattern selection) and were searched.",
        ],
        summary=summary,
        methods=f"Sudden gains and losses were identified with the Tang and DeRubeis (1999) "
        f"criteria (cutoff {cutoff:g} points, 25% of the pre-gain score, and the three-session "
        "variability test) in the clients whose data contain a testable interval, selected as "
        "suddengains' select_cases(method = 'pattern') (Wiedemann et al., 2020).",
        references=[REFERENCES["tang"], REFERENCES["wiedemann"]],
    )


def event_timeline_section(wave, *, n_clients: int = 40, seed: int = 2026) -> Section:
    """Ruptures, repairs and sudden gains and losses on one timeline per client (a sample)."""
    found = c.gains_and_losses(wave)
    gains, losses = (found[0], found[1]) if found else (None, None)
    timeline = change_event_timeline(
        gains=gains, losses=losses, ruptures=c.rupture_episodes(wave), client="client_id"
    )
    counts = timeline["kind"].value_counts().sort_index() if len(timeline) else {}
    title = "Change events over time"
    if not len(timeline):
        return Section(
            key="event_counts", title=title, numbers={}, sentences=["No change event was found."]
        )
    rng = np.random.default_rng(seed)
    with_events = np.sort(timeline["client_id"].unique())
    shown = rng.choice(with_events, size=min(n_clients, len(with_events)), replace=False)
    last = c.sessions(wave).groupby("client_id")["session"].max()
    fig = plots.event_timeline_plot(
        timeline[timeline["client_id"].isin(shown)],
        n_sessions=last,
        title=f"Change events ({len(shown)} of {len(with_events)} clients with an event)",
    )
    return Section(
        key="event_counts",
        title=title,
        numbers=to_jsonable(counts),
        figures=[
            Figure(
                fig,
                f"Change events of {len(shown)} randomly drawn clients (seed {seed}) of the "
                f"{len(with_events)} with at least one: each grey line runs to the client's last "
                "session; markers show ruptures, repairs, sudden gains and sudden losses.",
                name="event_timeline",
            )
        ],
        sentences=["Events: " + "; ".join(f"{k} {format_int(v)}" for k, v in counts.items()) + "."],
    )


RCI_NAMES = {
    "JT": "Jacobson-Truax (JT)",
    "GLN": "Gulliksen-Lord-Novick (GLN)",
    "HLL": "Hsu-Linn-Lord (HLL)",
    "EN": "Edwards-Nunnally (EN)",
    "NK": "Nunnally-Kotsch (NK)",
    "HA": "Hageman-Arrindell (HA)",
}


def _status_words(wave, counts) -> tuple[str, str]:
    """(caveat or basis sentence, short clause) on which clients enter the change analysis."""
    status, rule = c.treatment_status(wave)
    if status is None:
        caveat = (
            f"This wave has {rule}, so clients who ended treatment cannot be told from clients "
            "still in treatment: every client's last session so far is used, and for clients "
            "still coming it is not an end-of-treatment score (set analysis.end_of_treatment or "
            "add session dates)."
        )
        return caveat, "all clients (ended and ongoing cannot be told apart)"
    n_on = int((counts or {}).get("ongoing", 0))
    n_unk = int((counts or {}).get("unknown", 0))
    basis = (
        f"Only clients who have ended treatment are counted: {rule}. {format_int(n_on)} "
        f"client{'s' * (n_on != 1)} still in treatment"
        + (f" and {format_int(n_unk)} of unknown status" if n_unk else "")
        + " are left out, because their latest session is not an end-of-treatment score."
    )
    return basis, "clients who ended treatment"


def clinical_significance_section(wave) -> Section:
    """Reliable and clinically significant change from intake to the last session attended,
    for clients who have ended treatment, and the six reliable-change indices side by side."""
    title = "Reliable and clinically significant change"
    if not c.has_outcome(wave):
        return Section.skip("clinical_significance", title, NO_OUTCOME)
    inst = c.outcome_instrument(wave)
    rc, cs = c.clinical_change(wave)
    counts = rc.attrs.get("treatment_status")
    basis, who = _status_words(wave, counts)
    cats = (
        cs["category"]
        .value_counts()
        .reindex(CATEGORIES, fill_value=0)
        .rename_axis("category")
        .reset_index(name="clients")
    )
    cats["share"] = cats["clients"] / cats["clients"].sum()
    cutoff = (inst.norms or {}).get("cutoff") or {}
    rc_points = rc["rc_threshold"].iloc[0] if len(rc) else None
    uncertain = [
        f
        for f in ("cutoff", "reliable_change")
        if f in inst.facts and inst.facts[f].status == "uncertain"
    ]
    share = dict(zip(cats["category"], cats["share"], strict=True))
    summary = (
        f"Of the {format_int(len(cs))} {who}, from intake to the last session "
        f"{format_pct(share['recovered'])} recovered, {format_pct(share['improved'])} improved "
        f"reliably without recovering and {format_pct(share['deteriorated'])} deteriorated "
        "reliably."
    )
    fig = plots.jacobson_truax_plot(
        cs,
        pre="pre",
        post="post",
        cutoff=cutoff.get("value"),
        rc_points=rc_points,
        label=c.outcome_label(wave),
    )
    note = (
        f"{basis} Reliable change: at least {format_number(rc_points, 1)} points (the "
        f"instrument's published reliable-change index); clinical cutoff {cutoff.get('value')}. "
        "Recovered = reliably improved and crossed into the functional range; improved = "
        "reliably improved only; deteriorated = reliably worse."
    )
    if uncertain:
        note += (
            f" Norm facts marked uncertain in the instrument definition: {', '.join(uncertain)}."
        )
    methods_t = c.reliable_change_methods(wave)
    r, r_source = c.outcome_reliability(wave)
    m_shown = pd.DataFrame(
        {
            "Method": methods_t["method"].map(RCI_NAMES),
            "Clients": methods_t["n_clients"],
            "Improved": methods_t["improved"],
            "Unchanged": methods_t["unchanged"],
            "Deteriorated": methods_t["deteriorated"],
            "% improved": methods_t["share_improved"],
            "% deteriorated": methods_t["share_deteriorated"],
        }
    )
    usable = methods_t.dropna(subset=["share_improved"])
    failed = methods_t[methods_t["share_improved"].isna()]
    if usable.empty:
        methods_sentence = (
            "The six reliable-change indices could not be compared: "
            f"{failed['note'].iloc[0] if len(failed) else r_source}."
        )
    else:
        spread = (usable["share_improved"].min(), usable["share_improved"].max())
        jt = methods_t.set_index("method").loc["JT"]
        methods_sentence = (
            f"With the reliability estimated from these data (r = {format_prop(r, 3)}), the "
            f"{len(usable)} reliable-change indices that apply call {format_pct(spread[0])} to "
            f"{format_pct(spread[1])} of the clients reliably improved"
            + (
                f" (Jacobson-Truax: {format_pct(jt['share_improved'])})."
                if pd.notna(jt["share_improved"])
                else "."
            )
        )
        if len(failed):
            methods_sentence += (
                " Not computable here: "
                + "; ".join(
                    f"{RCI_NAMES.get(m, m)} ({n})"
                    for m, n in zip(failed["method"], failed["note"], strict=True)
                )
                + "."
            )
    status_counts = {k: int(v) for k, v in (counts or {}).items()}
    return Section(
        key="clinical_significance",
        title=title,
        numbers={
            "reliable_change_points": rc_points,
            "cutoff": cutoff.get("value"),
            "n_clients": len(cs),
            "categories": to_jsonable(cats),
            "uncertain_norms": uncertain,
            "clients_analysed": "ended" if c.treatment_status(wave)[0] is not None else "all",
            "treatment_status": status_counts,
            "status_rule": c.treatment_status(wave)[1],
            "rci_methods": to_jsonable(methods_t),
            "rci_reliability": r,
            "rci_reliability_source": r_source,
        },
        tables=[
            Table(
                "Clients by Change Category, Intake to Last Session",
                pd.DataFrame(
                    {
                        "Category": cats["category"].str.capitalize(),
                        "Clients": cats["clients"],
                        "%": cats["share"],
                    }
                ),
                formats={"Clients": "int", "%": "pct"},
                note=note,
                name="clinical-significance",
            ),
            Table(
                "Reliable Change Under Six Reliable-Change Indices",
                m_shown[methods_t["share_improved"].notna().to_numpy()],
                formats={
                    "Method": "text",
                    "Clients": "int",
                    "Improved": "int",
                    "Unchanged": "int",
                    "Deteriorated": "int",
                    "% improved": "pct",
                    "% deteriorated": "pct",
                },
                note=f"The same clients as the change categories ({who}), intake to the last "
                f"session. Every index uses r = {format_prop(r, 3)}, {r_source}, and the SD of "
                "the intake scores of these clients (as the R package clinicalsignificance); "
                "JT here is computed from them, not from the published points above. GLN, HLL, "
                "EN and NK correct for regression to the mean; HLL also centres the post score "
                "on the group's post mean, so it classifies change relative to the average "
                "client's change; HA uses the reliability of the differences and a one-sided "
                "criterion (Hageman & Arrindell, 1999).",
                name="reliable-change-methods",
            ),
        ],
        figures=[
            Figure(
                fig,
                f"{c.outcome_label(wave)} at intake against the last session, one point per "
                f"client ({who}) coloured by change category: the solid line is no change, the "
                "dashed lines the reliable-change band, the orange lines the clinical cutoff.",
                name="jacobson_truax",
            )
        ],
        sentences=[summary, basis, methods_sentence],
        summary=summary,
        methods="Reliable and clinically significant change from intake to the last session "
        f"attended, for {who}, followed Jacobson and Truax (1991) with the instrument's "
        "published reliable-change points and cutoff; five further reliable-change indices "
        "(Gulliksen-Lord-Novick, Hsu-Linn-Lord, Edwards-Nunnally, Nunnally-Kotsch, "
        "Hageman-Arrindell; Hsu, 1995; Hageman & Arrindell, 1999) are shown for comparison, "
        "with the reliability estimated from the data.",
        references=[REFERENCES["jacobson"], REFERENCES["hsu"], REFERENCES["hageman"]],
    )


def event_rates_section(wave) -> Section:
    """Per therapist: the share of clients with a rupture, a sudden gain and reliable
    improvement (small caseloads suppressed)."""
    title = "Event rates by therapist"
    if not wave.has_therapists:
        return Section.skip("event_rates_by_therapist", title, "no therapist column in this study")
    s = c.sessions(wave)
    per_client = pd.DataFrame({"therapist_id": s.groupby("client_id")["therapist_id"].first()})
    per_client["rupture"] = per_client.index.isin(c.rupture_episodes(wave)["client_id"])
    found = c.gains_and_losses(wave)
    if found is not None:
        per_client["sudden_gain"] = per_client.index.isin(found[0]["client_id"])
    if c.has_outcome(wave):
        cs = c.clinical_change(wave)[1]
        improved = cs.set_index("client_id")["category"].isin(["recovered", "improved"])
        per_client["reliably_improved"] = improved.reindex(per_client.index)
    cols = [k for k in ("rupture", "sudden_gain", "reliably_improved") if k in per_client]
    rates = per_client.groupby("therapist_id")[cols].mean().add_suffix("_rate")
    rates.insert(0, "n_clients", per_client.groupby("therapist_id").size())
    threshold = wave.study.small_cell
    rates = privacy.suppress_small_cells(
        rates.reset_index(), count="n_clients", threshold=threshold
    )
    n_sup = int(rates["suppressed"].sum())
    kept = rates[~rates["suppressed"]].drop(columns="suppressed")
    names = {
        "rupture_rate": "Rupture",
        "sudden_gain_rate": "Sudden gain",
        "reliably_improved_rate": "Reliably improved",
    }
    shown = kept.rename(columns={"therapist_id": "Therapist", "n_clients": "Clients", **names})
    return Section(
        key="event_rates_by_therapist",
        title=title,
        numbers={
            "small_cell_threshold": threshold,
            "n_suppressed": n_sup,
            "table": to_jsonable(kept),
        },
        tables=[
            Table(
                "Share of Each Therapist's Clients With a Change Event",
                shown,
                formats={
                    "Therapist": "text",
                    "Clients": "int",
                    **{v: "pct" for v in names.values()},
                },
                note=f"Pseudonymous therapist IDs; therapists with fewer than {threshold} clients "
                f"are not shown ({n_sup} suppressed). Reliably improved includes recovered and is "
                "the share of the therapist's clients who ended treatment (clients still in "
                "treatment have no end-of-treatment score).",
                name="event-rates",
            )
        ],
        sentences=[
            f"{len(kept)} therapists shown; {n_sup} suppressed for having fewer than "
            f"{threshold} clients."
        ],
    )
