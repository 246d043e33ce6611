"""Report section comparing the key estimates of every wave up to the current one.

Each earlier wave is prepared from its own file and fitted exactly as the current one
(:func:`alliance_lib.sections.common.trajectory_fit`).

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 2)
>>> [r["wave"] for r in wave_over_wave_section(w).numbers["summary"]]
[1, 2]
"""

from __future__ import annotations

import pandas as pd

from alliance_lib import plots
from alliance_lib.results import to_jsonable
from alliance_lib.sections import common as c
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.sections.trajectories import term_label
from alliance_lib.tables import format_ci, format_int, format_number

__all__ = ["wave_over_wave_section", "wave_estimates"]


def wave_estimates(wave) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per wave up to ``wave.wave``: rows, clients, ICCs and convergence (``summary``) and the
    growth model's fixed effects (``fixed``), every wave refitted as the current one."""
    from alliance_lib.waves import prepare_wave

    def compute():
        rows, fixed = [], []
        for k in [x for x in wave.study.waves if x <= wave.wave]:
            wk = wave if k == wave.wave else prepare_wave(wave.study, k)
            fk = c.trajectory_fit(wk)
            icc = fk.icc()
            rows.append(
                {
                    "wave": k,
                    "rows_read": wk.n_read,
                    "rows_quarantined": len(wk.quarantine),
                    "n_clients": fk.n_clients,
                    "nobs": fk.nobs,
                    "time_zero": float(fk.time_zero),
                    "icc_client": icc["client"],
                    "icc_therapist": icc.get("therapist"),
                    "converged": fk.converged,
                    "singular": fk.singular,
                }
            )
            fe = fk.fixed.reset_index()
            fixed.append(fe.assign(wave=k)[["wave", "term", "estimate", "se", "ci_low", "ci_high"]])
        return pd.DataFrame(rows), pd.concat(fixed, ignore_index=True)

    return c.cached(wave, ("wave_over_wave",), compute)


def wave_over_wave_section(wave) -> Section:
    """Key estimates of every wave so far (each wave file holds the cumulative data)."""
    summary_t, fixed = wave_estimates(wave)
    waves = summary_t["wave"].tolist()
    by_term = fixed.assign(
        cell=[(lo, hi) for lo, hi in zip(fixed["ci_low"], fixed["ci_high"], strict=True)]
    )
    t0 = c.trajectory_fit(wave).time_zero
    wide = {"Term": [term_label(t, t0) for t in dict.fromkeys(fixed["term"])]}
    for k in waves:
        part = by_term[by_term["wave"] == k].set_index("term")
        wide[f"Wave {k}"] = [
            f"{format_number(part.loc[t, 'estimate'], 3)} {format_ci(part.loc[t, 'cell'], 3)}"
            if t in part.index
            else None
            for t in dict.fromkeys(fixed["term"])
        ]
    sentences, summary = [], ""
    if len(waves) > 1 and "session" in set(fixed["term"]):
        prev, now = waves[-2], waves[-1]
        s0 = fixed[(fixed["wave"] == prev) & (fixed["term"] == "session")].iloc[0]
        s1 = fixed[(fixed["wave"] == now) & (fixed["term"] == "session")].iloc[0]
        n0 = int(summary_t.loc[summary_t["wave"] == prev, "n_clients"].iloc[0])
        n1 = int(summary_t.loc[summary_t["wave"] == now, "n_clients"].iloc[0])
        summary = (
            f"Since wave {prev}, the sample grew from {format_int(n0)} to {format_int(n1)} clients "
            f"and the alliance slope moved from {format_number(s0['estimate'], 3)} to "
            f"{format_number(s1['estimate'], 3)} points per session."
        )
        sentences.append(summary)
    elif len(waves) == 1:
        sentences.append("This is the first wave; there is no earlier wave to compare with.")
    fig = plots.wave_plot(
        fixed.assign(term=fixed["term"].map(lambda t: term_label(t, t0))),
        title="Alliance growth-model estimates wave over wave",
    )
    return Section(
        key="wave_over_wave",
        title="Wave over wave",
        numbers={"summary": to_jsonable(summary_t), "fixed": to_jsonable(fixed)},
        tables=[
            Table(
                "Data and Model by Wave",
                pd.DataFrame(
                    {
                        "Wave": summary_t["wave"],
                        "Rows read": summary_t["rows_read"],
                        "Quarantined": summary_t["rows_quarantined"],
                        "Clients": summary_t["n_clients"],
                        "Ratings analysed": summary_t["nobs"],
                        "ICC client": summary_t["icc_client"],
                        "ICC therapist": summary_t["icc_therapist"],
                        "Converged": summary_t["converged"],
                    }
                ),
                formats={
                    "Wave": "int",
                    "Rows read": "int",
                    "Quarantined": "int",
                    "Clients": "int",
                    "Ratings analysed": "int",
                    "ICC client": "prop",
                    "ICC therapist": "prop",
                },
                digits={"ICC client": 3, "ICC therapist": 3},
                note="Each wave file holds the cumulative data up to its date; every wave is "
                "analysed exactly as the current one. ICCs at "
                f"{c.time_zero_words(wave)} (time zero), the definition of the ICC section "
                "(client and therapist shares of the variance there).",
                name="waves-summary",
            ),
            Table(
                "Growth-Model Estimates by Wave, b [95% CI]",
                pd.DataFrame(wide),
                formats={k: "text" for k in wide},
                note="Fixed effects of the alliance growth model (REML).",
                name="waves-estimates",
            ),
        ],
        figures=[
            Figure(
                fig,
                "Growth-model estimates of the alliance in every wave so far, with 95% "
                "confidence intervals; one panel per model term.",
                name="wave_over_wave",
            )
        ],
        sentences=sentences,
        summary=summary,
    )
