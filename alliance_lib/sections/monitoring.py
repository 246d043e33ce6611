"""Report section: routine outcome monitoring (expected curves, alert accuracy, clients not on track).

Examples
--------
>>> from alliance_lib.sections.monitoring import monitoring_section
>>> callable(monitoring_section)
True
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from alliance_lib._memory import release_memory
from alliance_lib.errors import DataError
from alliance_lib.monitoring import (
    expected_response,
    not_on_track,
    validate_alerts,
)
from alliance_lib.privacy import suppress_small_cells
from alliance_lib.sections import common
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.trajectories import _jsonable

__all__ = ["monitoring_section"]

KEY, TITLE = "monitoring", "Outcome monitoring: expected response and not-on-track alerts"
FAILURE = "no_reliable_improvement"
_FAILURE_WORDS = {
    "reliable_deterioration": "reliable deterioration",
    "no_reliable_improvement": "no reliable improvement",
    "not_recovered": "not recovered",
}
_PREDICTOR_WORDS = {
    "expected curve": "Expected curve (red)",
    "failure probability": "Failure probability (p ≥ .5)",
    "rational rule": "Rational rule (change vs RCI)",
    "intake only": "Intake-only model",
}
REFERENCES = [
    "Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control: The "
    "statistical generation of expected recovery curves for integration into an early warning "
    "system. Clinical Psychology & Psychotherapy, 8(4), 231-242.",
    "Lambert, M. J. (2015). Progress feedback and the OQ-system: The past and the future. "
    "Psychotherapy, 52(4), 381-390.",
    "Lutz, W., Rubel, J. A., Schwartz, B., Schilling, V., & Deisenhofer, A.-K. (2019). Towards "
    "integrating personalized feedback research into clinical practice: Development of the Trier "
    "Treatment Navigator (TTN). Behaviour Research and Therapy, 120, 103438.",
    "Spielmans, G. I., Masters, K. S., & Lambert, M. J. (2006). A comparison of rational versus "
    "empirical methods in the prediction of psychotherapy outcome. Clinical Psychology & "
    "Psychotherapy, 13(3), 202-214.",
]


def _curves_figure(ref, intakes, sessions, name, cutoff=None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(intakes), figsize=(9, 3.4), sharey=True, squeeze=False)
    for ax, intake in zip(axes[0], intakes, strict=True):
        g = ref.predict([intake], sessions=sessions)
        ax.fill_between(g["session"], g["p10"], g["p90"], color="#7570b3", alpha=0.18, lw=0)
        ax.plot(g["session"], g["expected"], color="#7570b3", lw=2, label="expected")
        ax.plot(g["session"], g["p90"], color="#d95f02", lw=1.2, ls="--", label="red boundary")
        if cutoff is not None:
            ax.axhline(cutoff, color="0.4", lw=0.8, ls=":", label="clinical cutoff")
        ax.set_title(f"Intake {intake:.0f}", fontsize=10)
        ax.set_xlabel("Session")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel(name)
    axes[0, -1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


#: Most ended clients the alert accuracy and the alliance signals are estimated on: above it,
#: the clients of a seeded random sample of whole therapists (or of clients, without therapists)
#: reaching this many. Cross-validated refits on every client of a 1,000,000-client wave took
#: over 10 GB, and on the 96,934 ended clients of a 100,000-client wave 1.3 GB and 25 s; an AUC
#: from 50,000 clients has a standard error of about 0.004 (its bootstrap CI is reported).
VALIDATION_MAX_CLIENTS = 50_000


def _validation_sample(ended, therapist, cap: int, seed: int):
    """``(rows, None)`` with every ended client up to ``cap`` clients; above, ``(rows of the
    sampled clients, description)``: whole therapists in a seeded random order until ``cap``
    clients are reached (clients in a seeded random order without therapists).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"client_id": list("abcdef"), "therapist_id": list("xxyyzz")})
    >>> rows, info = _validation_sample(d, "therapist_id", 3, seed=1)
    >>> info["clients"] >= 3, info["units"], info["of_units"], rows["therapist_id"].nunique()
    (True, 2, 3, 2)
    >>> _validation_sample(d, "therapist_id", 6, seed=1)[1] is None
    True
    """
    n = int(ended["client_id"].nunique())
    if n <= cap:
        return ended, None
    rng = np.random.default_rng(seed)
    unit = "therapist_id" if therapist else "client_id"
    clients = ended.drop_duplicates("client_id")
    per = clients.groupby(unit, sort=True, observed=True).size()
    order = per.iloc[rng.permutation(len(per))]
    take = int(np.searchsorted(order.cumsum().to_numpy(), cap)) + 1
    chosen = order.index[:take]
    rows = ended[ended[unit].isin(chosen)]
    return rows, {
        "unit": "therapists" if therapist else "clients",
        "units": int(len(chosen)),
        "of_units": int(len(per)),
        "clients": int(rows["client_id"].nunique()),
        "of_clients": n,
        "seed": int(seed),
    }


def _ci(row, key):
    return (row[f"{key}_low"], row[f"{key}_high"])


def monitoring_section(
    wave,
    *,
    sessions=(3, 5),
    failure: str = FAILURE,
    shape: str = "linear",
    n_boot: int = 200,
    max_listed: int = 25,
    current_days: int | None = None,
    seed: int = 0,
) -> Section:
    """Expected treatment response curves, out-of-sample alert accuracy and clients not on track.

    Parameters
    ----------
    wave : alliance_lib.waves.WaveData
        The prepared wave (needs an outcome instrument with an intake session 0).
    sessions : sequence of int
        Alert sessions shown in the validation table.
    failure : str
        Failure definition of the table (all three go to ``numbers``).
    shape : str
        Time shape of the expected curves.
    n_boot : int
        Therapist-cluster bootstrap replicates.
    max_listed : int
        Longest list of clients not on track.
    current_days : int, optional
        A client counts as still in treatment when seen within this many days of the wave's last
        date (default the study's ``analysis.ongoing_within_days``, 28); the study's
        ``analysis.end_of_treatment`` column, when present, marks clients who ended.

    Notes
    -----
    Alert accuracy is estimated by therapist (:func:`alliance_lib.monitoring.validate_alerts`,
    ``cv="therapist"``): leave-one-therapist-out with at most
    :data:`~alliance_lib.monitoring.LOTO_MAX_THERAPISTS` (50) therapists, else 10 folds of
    whole therapists assigned with ``seed`` (one refit per fold instead of one per therapist);
    ``numbers["validation_settings"]`` records ``scheme`` and ``n_folds``, and the methods text
    and table notes name the scheme used. Without therapists: 10-fold by client.

    Returns
    -------
    Section
        Numbers (reference, validation at ``sessions``, alert burden, current states), the
        expected-curves figure, the validation and burden tables and the pseudonymous list of
        clients whose latest state is red.

    Examples
    --------
    >>> import alliance_lib as al
    >>> from pathlib import Path
    >>> demo = Path(al.__file__).parents[1] / "data" / "demo" / "study.yaml"
    >>> wave = al.prepare_wave(al.load_study(demo), 3)  # doctest: +SKIP
    >>> monitoring_section(wave, n_boot=20).numbers["validation"]["3"]  # doctest: +SKIP
    """
    if wave.outcome is None:
        return Section.skip(KEY, TITLE, "the study names no outcome instrument")
    instrument = wave.study.instruments.get("outcome")
    instrument = instrument if isinstance(instrument, str) else None
    # the columns used here only, from the report's shared session table (every copy below,
    # the ended clients and each fold's training clients, is then smaller: 1,000,000 clients
    # are about 20 million rows)
    data = common.sessions(wave)
    used = [c for c in ("client_id", "therapist_id", "session", "outcome", "alliance") if c in data]
    data = data.loc[data["outcome"].notna(), used]
    # the ids as Arrow text once: the many group-bys and factorisations below are then ~10x
    # faster than on Python strings (same values, same sort order)
    data = data.astype({c: "str" for c in ("client_id", "therapist_id") if c in data})
    code = pd.factorize(data["client_id"])[0]
    sess = data["session"].to_numpy()
    has_intake = np.bincount(code[sess == 0], minlength=code.max() + 1 if code.size else 0) > 0
    n_later = int(np.unique(code[(sess > 0) & has_intake[code]]).size) if code.size else 0
    if n_later < 30:
        return Section.skip(
            KEY,
            TITLE,
            f"only {n_later} clients have an intake outcome (session 0) and a later one; "
            "expected curves need at least 30",
        )
    from alliance_lib.registry import get_instrument

    inst = get_instrument(instrument) if instrument else None
    name = inst.name if inst is not None else "Outcome"
    direction = getattr(inst, "direction", None) or "higher_is_worse"
    therapist = "therapist_id" if wave.has_therapists else None
    ref = expected_response(data, "outcome", therapist=therapist, shape=shape, direction=direction)
    norms_kw = {"instrument": instrument} if instrument else {}
    rci = None if inst is None or not inst.norms.get("reliable_change") else True
    if rci is None:
        return Section.skip(
            KEY, TITLE, f"{name} has no reliable change index in its definition (norms)"
        )
    # Clients still in treatment have no end score yet: accuracy uses those who have ended
    # (the study's rule: alliance_lib.change.treatment_status, analysis.ongoing_within_days and
    # analysis.end_of_treatment).
    ongoing = _ongoing(wave, current_days)
    ended = data[~data["client_id"].isin(ongoing)]
    checked, sample = _validation_sample(ended, therapist, VALIDATION_MAX_CLIENTS, seed)
    val = validate_alerts(
        checked,
        "outcome",
        therapist=therapist,
        cv="therapist" if therapist else "client",
        sessions=list(sessions),
        shape=shape,
        n_boot=n_boot,
        seed=seed,
        # with no client still in treatment the in-sample fit is the reference above: reuse it
        reference=ref if len(ongoing) == 0 and sample is None else None,
        **norms_kw,
    )
    # the section reports the tables; the per-session predictions (a row per client x session,
    # 300 MiB at 100,000 clients) are not kept while the alliance signals are validated
    val = dataclasses.replace(val, scores=val.scores.iloc[:0])
    release_memory()
    alliance_table, alliance_numbers = _alliance_part(
        wave, checked, therapist, sessions, norms_kw, seed
    )
    nt = not_on_track(data, "outcome", reference=ref, **norms_kw)

    # --- numbers ---------------------------------------------------------------------------
    numbers = {
        "reference": ref.to_dict(),
        "clients_ended": int(ended["client_id"].nunique()),
        "clients_ongoing": int(len(ongoing)),
        "validation_sample": sample,
        "alliance_signals": alliance_numbers,
        "validation_settings": val.settings,
        "validation": {},
        "burden": val.burden.to_dict(orient="records"),
    }
    for t in sessions:
        numbers["validation"][str(t)] = {
            f: val.at(t, f).reset_index().to_dict(orient="records")
            for f in val.settings["failures"]
        }

    # --- figure ----------------------------------------------------------------------------
    intakes = np.quantile(data.loc[data["session"] == 0, "outcome"], [0.25, 0.5, 0.75])
    smax = int(min(ref.session_range[1], 20))
    cut = inst.norms.get("cutoff") if inst is not None else None
    fig = _curves_figure(
        ref, intakes, np.arange(1, smax + 1), name, None if cut is None else cut["value"]
    )
    figure = Figure(
        fig,
        caption=(
            f"Expected {name} scores by session for clients starting at the 25th, 50th and 75th "
            "percentile of this wave's intake scores (lines), with the 10th-90th percentile "
            "band of comparable clients (shaded). A score above the dashed line (worse than 90 % "
            "of comparable clients at that session) is a red alert; below the dotted clinical "
            "cutoff the state is white."
        ),
        name="monitoring-expected-curves",
    )

    # --- validation tables ------------------------------------------------------------------
    # two tables so that each fits the page (and a printed page): who is flagged and how well
    # (sensitivity, specificity), then what a flag means for the client (PPV, NPV) and the AUC
    rows = []
    for t in sessions:
        tab = val.at(t, failure)
        for key, label in _PREDICTOR_WORDS.items():
            if key not in tab.index:
                continue
            r = tab.loc[key]
            rows.append(
                {
                    "Session": t,
                    "Predictor": label,
                    "Clients": r["n"],
                    "Failures": r["n_failures"],
                    "Alerted": r["alert_rate"],
                    "Sensitivity": r["sensitivity"],
                    "Sensitivity 95% CI": _ci(r, "sensitivity"),
                    "Specificity": r["specificity"],
                    "Specificity 95% CI": _ci(r, "specificity"),
                    "PPV": r["ppv"],
                    "NPV": r["npv"],
                    "AUC": r["auc"],
                    "AUC 95% CI": _ci(r, "auc"),
                }
            )
    vt = pd.DataFrame(rows)
    formats = {c: "prop" for c in ("Alerted", "Sensitivity", "Specificity", "PPV", "NPV", "AUC")}
    formats.update({"Session": "int", "Clients": "int", "Failures": "int", "Predictor": "text"})
    formats.update({c: "ci_prop" for c in vt if c.endswith("95% CI")})
    cv_words = _cv_words(val.settings)
    failure_words = _FAILURE_WORDS[failure]
    common_note = (
        f"Estimated out of sample ({cv_words}): the expected curves were fitted without the "
        "held-out clients. Failure: "
        f"{failure_words} between intake and the last session (RCI = {val.settings['rci']:g}). "
        f"CIs: 95 % percentile intervals from {n_boot} bootstrap samples of therapists."
        + (
            f" Clients of a seeded random sample of {sample['units']:,} of "
            f"{sample['of_units']:,} {sample['unit']} ({sample['clients']:,} of "
            f"{sample['of_clients']:,} ended clients; above {VALIDATION_MAX_CLIENTS:,})."
            if sample
            else ""
        )
    )
    accuracy_cols = ["Session", "Predictor", "Clients", "Failures", "Alerted", "Sensitivity"]
    accuracy_cols += ["Sensitivity 95% CI", "Specificity", "Specificity 95% CI"]
    validation_table = Table(
        f"Accuracy of Not-on-Track Alerts for Predicting {failure_words.title()}",
        vt[accuracy_cols],
        formats={k: v for k, v in formats.items() if k in accuracy_cols},
        note="Clients: seen at that session with a later session; Failures: of those, with "
        f"{failure_words}; Alerted: share flagged at that session. " + common_note,
        name="monitoring-validation",
    )
    predictive_cols = ["Session", "Predictor", "PPV", "NPV", "AUC", "AUC 95% CI"]
    predictive_table = Table(
        f"Predictive Values of Not-on-Track Alerts for {failure_words.title()}",
        vt[predictive_cols],
        formats={k: v for k, v in formats.items() if k in predictive_cols},
        note="PPV, NPV: positive and negative predictive values (the share of flagged clients "
        f"with {failure_words}, and of unflagged clients without); AUC: area under the ROC "
        "curve of the continuous score. Clients as in the accuracy table. " + common_note,
        name="monitoring-predictive-values",
    )
    b = val.burden
    b = b[b["failure"].isna() | (b["failure"] == failure)].reset_index(drop=True)
    burden = pd.DataFrame(
        {
            "Alert": [_PREDICTOR_WORDS.get(p, p) for p in b["predictor"]],
            "Clients": b["clients"],
            "Ever flagged": b["ever_flagged"],
            "Alerts per 100 sessions": b["alerts_per_100_sessions"],
            **{f"Flagged by session {t}": b[f"flagged_by_{t}"] for t in sessions},
        }
    )
    burden_table = Table(
        "Alert Burden",
        burden,
        formats={"Clients": "int", "Ever flagged": "pct", "Alerts per 100 sessions": "num"}
        | {f"Flagged by session {t}": "pct" for t in sessions}
        | {"Alert": "text"},
        digits={"Alerts per 100 sessions": 1},
        note="Share of clients flagged at least once before their last session (out of sample).",
        name="monitoring-burden",
    )

    # --- clients currently not on track ----------------------------------------------------
    latest = nt.sort_values(["client_id", "session"]).groupby("client_id").tail(1)
    latest = latest[latest["client_id"].isin(ongoing)]
    state_counts = (
        latest["state"].value_counts().reindex(["white", "green", "yellow", "red"], fill_value=0)
    )
    numbers["current"] = {
        "clients": int(len(latest)),
        "states": {k: int(v) for k, v in state_counts.items()},
        "ongoing_rule": _ongoing_rule(wave, current_days),
    }
    red_now = latest[latest["state"] == "red"].sort_values("percentile", ascending=False)
    listed = red_now.head(max_listed)
    ther = data.drop_duplicates("client_id").set_index("client_id")
    small = wave.study.small_cell
    per_ther = ther["therapist_id"].value_counts() if therapist else pd.Series(dtype=int)
    list_df = pd.DataFrame(
        {
            "Client": listed["client_id"].to_numpy(),
            "Therapist": (
                ther["therapist_id"].reindex(listed["client_id"]).to_numpy()
                if therapist
                else np.full(len(listed), "")
            ),
            "Therapist clients": (
                per_ther.reindex(ther["therapist_id"].reindex(listed["client_id"])).to_numpy()
                if therapist
                else np.zeros(len(listed), int)
            ),
            "Session": listed["session"].to_numpy(),
            "Intake": listed["intake"].to_numpy(),
            "Score": listed["observed"].to_numpy(),
            "Expected": listed["expected"].to_numpy(),
            "Red boundary": listed["boundary"].to_numpy(),
            "Percentile": listed["percentile"].to_numpy(),
        }
    )
    # a therapist with fewer than small_cell clients could be re-identified: hide the pseudonym
    list_df = suppress_small_cells(
        list_df, count="Therapist clients", threshold=small, columns=["Therapist"]
    )
    n_hidden = int(list_df["suppressed"].sum()) if therapist else 0
    list_df = list_df.drop(columns=["Therapist clients", "suppressed"])
    if not therapist:
        list_df = list_df.drop(columns=["Therapist"])
    list_table = Table(
        "Clients Currently Not on Track (Red)",
        list_df,
        formats={
            "Client": "text",
            "Therapist": "text",
            "Session": "int",
            "Intake": "num",
            "Score": "num",
            "Expected": "num",
            "Red boundary": "num",
            "Percentile": "pct",
        },
        digits={"Intake": 0, "Score": 0, "Expected": 1, "Red boundary": 1},
        note=(
            "Pseudonymous IDs. Latest session of clients still in treatment "
            f"({_ongoing_rule(wave, current_days)}) whose score is above the red boundary (and "
            f"in the clinical range); {len(red_now)} clients, {len(listed)} listed. Therapists with fewer than "
            f"{small} clients are not named ({n_hidden} rows)."
        ),
        name="monitoring-not-on-track",
    )

    # --- words -----------------------------------------------------------------------------
    sentences = []
    for t in sessions:
        tab = val.at(t, failure)
        if "expected curve" not in tab.index:
            continue
        e = tab.loc["expected curve"]
        p = tab.loc["failure probability"]
        sentences.append(
            f"At session {t}, a red alert flagged {e['alert_rate']:.0%} of the "
            f"{int(e['n']):,} clients still in treatment; it caught {e['sensitivity']:.0%} of "
            f"those who ended without reliable improvement (specificity {e['specificity']:.0%}, "
            f"PPV {e['ppv']:.0%}); the failure probability had AUC {p['auc']:.2f} "
            f"[{p['auc_low']:.2f}, {p['auc_high']:.2f}] out of sample."
        )
    if red_now.empty:
        sentences.append("No client currently in treatment is above the red boundary.")
    if alliance_numbers:
        ev = pd.DataFrame(alliance_numbers["rows"])
        row = ev[(ev["session"] == sessions[0]) & (ev["target"] == "dropout")]
        row = row.set_index("signal")
        if "any_signal" in row.index and pd.notna(row.loc["any_signal", "risk_ratio"]):
            r = row.loc["any_signal"]
            sentences.append(
                f"By session {sessions[0]}, {r['flag_rate']:.0%} of clients had an alliance "
                f"signal; they dropped out {r['risk_ratio']:.1f} times as often as the others "
                f"(sensitivity {r['sensitivity']:.0%}, specificity {r['specificity']:.0%})."
            )
    ever = b.loc[b["predictor"] == "expected curve", "ever_flagged"].iloc[0]
    sentences.append(
        f"{ever:.0%} of clients were flagged red at least once before their last session."
    )
    t0 = sessions[0]
    e0 = val.at(t0, failure).loc["expected curve"]
    summary = (
        f"Not-on-track alerts from the study's own expected curves had AUC {e0['auc']:.2f} at "
        f"session {t0} (out of sample); {int(state_counts['red']):,} current clients are red."
    )
    methods = (
        f"Expected treatment response curves: a linear mixed model of the {name} total at "
        f"sessions after intake on session ({shape}), the intake score and their interaction, "
        "with correlated client random intercepts and slopes"
        + (" and a therapist random intercept" if therapist else "")
        + " (REML), conditioning on the intake as a covariate (Finch et al., 2001). Bands are "
        "percentiles of the predictive distribution of a new client (random effects, residual "
        "and estimation variance). States: white below the clinical cutoff, red above the 90th "
        "percentile, yellow above the median, else green (Lambert, 2015; Lutz et al., 2019). "
        "The failure probability is the posterior predictive probability of the failure at the "
        "typical last session given the sessions so far. Accuracy was estimated "
        f"{cv_words}, at each session among clients with a later session, against a rational "
        "rule (change since intake against the reliable change index and the cutoff) and an "
        "intake-only logistic model (Spielmans et al., 2006). Clients still in treatment "
        f"({_ongoing_rule(wave, current_days)}) were left out of the accuracy estimates. "
        "Alliance signals (a low score, a drop, a rupture judged against the client's earlier "
        "sessions only, the alliance below its own expected curve) were evaluated for "
        "predicting drop-out and combined with the outcome alert."
        + (
            f" With more than {VALIDATION_MAX_CLIENTS:,} ended clients, accuracy and the "
            f"alliance signals were estimated on the {sample['clients']:,} ended clients of a "
            "seeded random sample of "
            + ("whole therapists" if sample["unit"] == "therapists" else "clients")
            + f" ({sample['units']:,} of {sample['of_units']:,}; {sample['of_clients']:,} "
            "ended clients in all); the "
            "expected curves and the current states use every client."
            if sample
            else ""
        )
    )
    return Section(
        key=KEY,
        title=TITLE,
        numbers=_jsonable(numbers),
        tables=[validation_table, predictive_table, burden_table, list_table]
        + ([alliance_table] if alliance_table is not None else []),
        figures=[figure],
        sentences=sentences,
        summary=summary,
        methods=methods,
        references=REFERENCES,
    )


def _cv_words(settings) -> str:
    """The cross-validation scheme in words (leave-one-therapist-out up to the threshold)."""
    scheme, k = settings.get("scheme"), settings.get("k")
    if scheme == "grouped k-fold by therapist":
        return (
            f"{k}-fold by therapist, whole therapists held out; used instead of "
            f"leave-one-therapist-out above {settings['loto_max_therapists']} therapists"
        )
    if scheme == "leave-one-therapist-out":
        return "leave-one-therapist-out"
    return f"{k}-fold by client" if k else "in sample"


def _alliance_part(wave, ended, therapist, sessions, norms_kw, seed):
    """Alliance signals (low, drop, past-only rupture, below its expected curve) vs drop-out."""
    from alliance_lib.monitoring import evaluate_alliance_signals

    alliance = ended[["client_id", "session", "alliance"]].dropna()
    if alliance["client_id"].nunique() < 30:
        return None, None
    aid = wave.study.instruments.get("alliance")
    srs = isinstance(aid, str) and aid.lower() == "srs"
    first = alliance.sort_values("session").groupby("client_id")["alliance"].first()
    # SRS: the published rules (< 36; a 1-point drop); other measures have none, so "low" is
    # the study's own 10th percentile of the first rating and the drop rule is not used
    cutoff = 36.0 if srs else float(first.quantile(0.10))
    drop = 1.0 if srs else None
    try:
        ev = evaluate_alliance_signals(
            ended,
            "alliance",
            "outcome",
            therapist=therapist,
            by_sessions=tuple(sessions),
            cutoff=cutoff,
            drop=drop,
            alliance_intake_session=int(alliance["session"].min()),
            seed=seed,
            outcome_cutoff=None,
            **norms_kw,
        )
    except DataError:
        return None, None
    labels = {
        "low": "Low alliance" + (" (SRS < 36)" if srs else f" (< {cutoff:.2f}, 10th percentile)"),
        "drop": "Drop of 1 point or more",
        "rupture": "Rupture (past sessions only)",
        "below_expected": "Below its expected curve",
        "any_signal": "Any alliance signal",
        "outcome red": "Outcome red",
        "outcome red or any_signal": "Outcome red or any alliance signal",
    }
    keep = ev[ev["signal"].isin(labels) & (srs | (ev["signal"] != "drop"))]
    keep = keep[
        ~((keep["target"] == "no_reliable_improvement") & ~keep["signal"].str.startswith("outcome"))
    ]
    table = pd.DataFrame(
        {
            "By session": keep["session"].to_numpy(),
            "Predicting": keep["target"]
            .map({"dropout": "drop-out", "no_reliable_improvement": "no reliable improvement"})
            .to_numpy(),
            "Signal": keep["signal"].map(labels).to_numpy(),
            "Clients": keep["n"].to_numpy(),
            "Events": keep["n_events"].to_numpy(),
            "Flagged": keep["flag_rate"].to_numpy(),
            "Sensitivity": keep["sensitivity"].to_numpy(),
            "Specificity": keep["specificity"].to_numpy(),
            "PPV": keep["ppv"].to_numpy(),
            "Risk ratio": keep["risk_ratio"].to_numpy(),
        }
    )
    t = Table(
        "Alliance Signals as Early Warnings",
        table,
        formats={
            "By session": "int",
            "Clients": "int",
            "Events": "int",
            "Flagged": "pct",
            "Sensitivity": "prop",
            "Specificity": "prop",
            "PPV": "prop",
            "Risk ratio": "num",
            "Predicting": "text",
            "Signal": "text",
        },
        note=(
            "A signal counts when raised at any session up to the one shown, among clients still "
            "in treatment then; drop-out: ending before the study's last session. Ruptures use "
            "the mean and SD of the client's earlier sessions only (2 SD below). The expected "
            "alliance curve and the outcome alert were fitted without the client (5-fold by "
            'client). Rows "Outcome red or ..." show what the alliance adds to the outcome alert '
            "for predicting no reliable improvement."
        ),
        name="monitoring-alliance-signals",
    )
    numbers = {
        "cutoff": cutoff,
        "drop": drop,
        "rows": ev.to_dict(orient="records"),
    }
    return t, numbers


def _ongoing_settings(wave, current_days):
    analysis = getattr(wave.study, "analysis", {}) or {}
    days = current_days if current_days is not None else analysis.get("ongoing_within_days", 28)
    end = analysis.get("end_of_treatment")
    has_date = "date" in wave.scored.columns
    end = end if end in wave.scored.columns else None
    return days, end, has_date


def _ongoing_rule(wave, current_days) -> str:
    days, end, has_date = _ongoing_settings(wave, current_days)
    rules = []
    if end:
        rules.append(f"not marked ended in {end!r}")
    if has_date and days is not None:
        rules.append(f"seen within {days:g} days of the wave's last date")
    return " and ".join(rules) or "no dates or end marks: every client counts as ended"


def _ongoing(wave, current_days) -> pd.Index:
    """Clients still in treatment at the wave's cut-off (alliance_lib.change.treatment_status)."""
    from alliance_lib.change import treatment_status

    days, end, has_date = _ongoing_settings(wave, current_days)
    if not has_date and end is None:
        return pd.Index([], dtype=object)
    status = treatment_status(
        wave.scored,
        date="date" if has_date else None,
        end=end,
        ongoing_within_days=days if has_date else None,
    )
    return pd.Index(status.loc[status["status"] == "ongoing", "client_id"])
