"""Report section: the within-client alliance -> outcome effect by random-intercept cross-lagged
panel models (primary), with sensitivity analyses and the multilevel model as a descriptive line.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> sec = cross_lagged_section(prepare_wave(load_study("data/demo/study.yaml"), 3),
...                            sensitivity=False)  # doctest: +SKIP
>>> sec.numbers["primary"]["model"]  # doctest: +SKIP
'riclpm'
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alliance_lib.alliance_outcome import fit_alliance_outcome
from alliance_lib.cross_lagged import CrossLaggedFit, cross_lagged_panel, fit_cross_lagged
from alliance_lib.errors import AllianceError
from alliance_lib.sections.base import Section, Table

__all__ = ["cross_lagged_section"]

KEY = "cross_lagged"
TITLE = "Alliance and outcome within clients: cross-lagged panel models"

REFERENCES = [
    "Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged "
    "panel models with fixed effects. Socius, 3, 1-17.",
    "Curran, P. J., Howard, A. L., Bainter, S. A., Lane, S. T., & McGinley, J. S. (2014). The "
    "separation of between-person and within-person components of individual change over time: "
    "A latent curve model with structured residuals. Journal of Consulting and Clinical "
    "Psychology, 82(5), 879-894.",
    "Falkenström, F. (2024). Time-lagged panel models in psychotherapy process and mechanisms "
    "of change research: Methodological challenges and advances. Clinical Psychology Review, "
    "110, 102435.",
    "Falkenström, F., Solomonov, N., & Rubel, J. A. (2022). How to model and interpret "
    "longitudinal associations between alliance and outcome. Journal of Consulting and "
    "Clinical Psychology, 90(5), 446-458.",
    "Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the "
    "cross-lagged panel model. Psychological Methods, 20(1), 102-116.",
    "Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept "
    "cross-lagged panel model. Structural Equation Modeling, 28(4), 638-648.",
    "Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of "
    "Statistical Software, 48(2), 1-36.",
]


def _num(x: float, digits: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    s = f"{x:.{digits}f}"
    return s.replace("-", "\u2212")


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "p n/a"
    if p < 0.001:
        return "p < .001"
    return "p = " + f"{p:.3f}".lstrip("0")


def _ci(lo: float, hi: float, digits: int = 2) -> str:
    return f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def _fit_text(cfi: float, rmsea: float) -> str:
    """``'.926 / .058'``: CFI and RMSEA in one cell (APA: no leading zero), so the table fits."""
    return " / ".join(
        "—" if v is None or not math.isfinite(v) else f"{v:.3f}".replace("0.", ".", 1)
        for v in (cfi, rmsea)
    )


def _digits(x: float) -> int:
    """Decimals that show two significant digits of a small coefficient."""
    if not np.isfinite(x) or x == 0:
        return 2
    return max(2, 1 - int(math.floor(math.log10(abs(x)))))


def _row(label: str, fit: CrossLaggedFit) -> dict:
    b = fit.effects.loc["alliance -> outcome"]
    r = fit.effects.loc["outcome -> alliance"]
    return {
        "Model": label,
        "Alliance → outcome": b["estimate"],
        "95 % CI": (b["ci_low"], b["ci_high"]),
        "p": b["p"],
        "Outcome → alliance": r["estimate"],
        "95 % CI ": (r["ci_low"], r["ci_high"]),
        "Long run": fit.long_run["estimate"],
        "CFI / RMSEA": _fit_text(fit.fit_indices["cfi"], fit.fit_indices["rmsea"]),
    }


def _session_scores(wave) -> pd.DataFrame:
    """The client-rated session scores: ``client_id``, ``session``, ``alliance``, ``outcome``.

    The rows of ``wave.sessions()`` that have a client-rated alliance or an outcome, in its
    order (by client and session) and with its values, in the only columns the models use: built
    from the client rows' id, session and total columns, without copying every item column of
    the scored table (about 1.5 GB at 2 million rows) or merging in the therapist ratings.
    """
    scored = wave.scored
    names = {"client_id": "client_id", "session": "session"}
    for role, prefix in (("alliance", wave.alliance), ("outcome", wave.outcome)):
        if prefix:
            names[f"{prefix}_total"] = role
    rows = scored["rater"] == "client" if "rater" in scored.columns else slice(None)
    out = scored.loc[rows, list(names)].rename(columns=names)  # copies these columns only
    out = out.reindex(columns=["client_id", "session", "alliance", "outcome"])
    out = out[out["alliance"].notna() | out["outcome"].notna()]
    return out.sort_values(["client_id", "session"], kind="stable").reset_index(drop=True)


def cross_lagged_section(
    wave, *, min_clients: int = 20, sensitivity: bool = True, descriptive: bool = True
) -> Section:
    """The within-client alliance -> outcome effect: RI-CLPM, sensitivity analyses, descriptive MLM.

    Parameters
    ----------
    wave : alliance_lib.waves.WaveData
        The prepared wave; the client-rated alliance and the outcome of ``wave.sessions()``.
    min_clients : int
        Sessions are waves while at least this many clients have both scores (consecutive from
        the first such session).
    sensitivity : bool
        Also fit the ML-SEM, the LCM-SR and the RI-CLPM with lag-2 paths.
    descriptive : bool
        Add the multilevel model (:func:`~alliance_lib.fit_alliance_outcome`) as a descriptive line.

    Returns
    -------
    Section
        ``numbers["primary"]`` is the RI-CLPM's ``to_dict()``; ``numbers["sensitivity"]`` the
        others by name; one table with every estimate side by side, one with the RI-CLPM's
        parameters; sentences, a summary, methods and references.

    Notes
    -----
    The RI-CLPM (Hamaker et al. 2015) separates each client's stable level (random intercept)
    from session-to-session fluctuation and estimates the lagged effects within clients, both
    directions at once, by FIML (Falkenström et al. 2022 recommend it over multilevel models
    with a lagged outcome, which are biased under inertia and reverse effects). The long-run
    effect is ``b / (1 - rho_y)`` (Falkenström 2024).

    References
    ----------
    Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). *Psychological Methods, 20*,
    102-116.
    """
    if wave.outcome is None:
        return Section.skip(KEY, TITLE, "the study has no outcome instrument")
    data = _session_scores(wave)
    try:
        # the wide panel, its missing-data patterns and the unrestricted model: built once,
        # shared by the primary fit and the sensitivity analyses
        panel = cross_lagged_panel(data, "alliance", "outcome", min_clients=min_clients)
        primary = fit_cross_lagged(panel, "alliance", "outcome")
    except AllianceError as exc:
        return Section.skip(KEY, TITLE, f"a cross-lagged panel model cannot be fitted: {exc}")
    except np.linalg.LinAlgError:  # e.g. a singular covariance of too few clients per session
        return Section.skip(
            KEY,
            TITLE,
            "a cross-lagged panel model cannot be fitted: the sessions' covariance matrix is "
            "singular (too few clients with ratings at each session)",
        )
    waves = primary.waves
    fits = {"riclpm": primary}
    labels = {
        "riclpm": "RI-CLPM (primary)",
        "mlsem": "ML-SEM, alliance predetermined",
        "lcmsr": "RI-CLPM + client slopes (LCM-SR)",
        "riclpm_lag2": "RI-CLPM with lag-2 paths",
    }
    failed = {}
    if sensitivity:
        for name, kw in (
            ("mlsem", {"model": "mlsem"}),
            ("lcmsr", {"model": "lcmsr"}),
            ("riclpm_lag2", {"lag": 2}),
        ):
            try:
                fits[name] = fit_cross_lagged(
                    panel, "alliance", "outcome", test_constraints=False, **kw
                )
            except (AllianceError, np.linalg.LinAlgError) as exc:
                failed[name] = str(exc) or "singular covariance matrix"
    rows = [_row(labels[k], f) for k, f in fits.items()]
    mlm = None
    if descriptive:
        try:
            mlm = fit_alliance_outcome(data, "alliance", "outcome")
        except AllianceError as exc:
            failed["multilevel"] = str(exc)
    if mlm is not None:
        fx = mlm.fixed.loc["alliance_within"]
        rows.append(
            {
                "Model": "Multilevel model (descriptive; biased under dynamics)",
                "Alliance → outcome": fx["estimate"],
                "95 % CI": (fx["ci_low"], fx["ci_high"]),
                "p": fx["p"],
                "Outcome → alliance": np.nan,
                "95 % CI ": (np.nan, np.nan),
                "Long run": np.nan,
                "CFI / RMSEA": "—",
            }
        )
    rev = primary.effects.loc["outcome -> alliance"]
    dr = _digits(rev["estimate"])
    table = Table(
        "Within-client alliance and outcome: primary estimate and sensitivity analyses",
        pd.DataFrame(rows),
        formats={
            "Alliance → outcome": "num",
            "95 % CI": "ci",
            "p": "p",
            "Outcome → alliance": "num",
            "95 % CI ": "ci",
            "Long run": "num",
            "CFI / RMSEA": "text",
        },
        digits={"Outcome → alliance": dr, "95 % CI ": dr},
        note=(
            f"Sessions {waves[0]}-{waves[-1]} as waves; {primary.n_clients} clients; full-"
            "information maximum likelihood (FIML) under missing at random. Alliance → "
            "outcome: outcome points at the next session per alliance point above the client's own "
            "level at the previous session. Outcome → alliance: alliance points at the next "
            "session per outcome point. Lagged effects held equal over sessions. Long run: the "
            "long-run effect of the alliance on the outcome, b / (1 − autoregression). "
            "The multilevel model (person-mean-centred alliance, prior outcome, client random "
            "intercept) is shown for comparison only: with inertia and reverse effects it is "
            "biased (Falkenström et al., 2022)."
        ),
        name="cross_lagged_models",
    )
    ri = primary.random_intercepts
    par_rows = []
    names = {
        "alliance -> outcome": "Alliance (t−1) → outcome (t)",
        "outcome -> alliance": "Outcome (t−1) → alliance (t)",
        "alliance -> alliance": "Alliance autoregression",
        "outcome -> outcome": "Outcome autoregression",
    }
    for k, label in names.items():
        e = primary.effects.loc[k]
        par_rows.append(
            {
                "Parameter": label,
                "Estimate": e["estimate"],
                "SE": e["se"],
                "95 % CI": (e["ci_low"], e["ci_high"]),
                "p": e["p"],
            }
        )
    for k, label in (
        ("alliance variance", "Random-intercept variance, alliance"),
        ("outcome variance", "Random-intercept variance, outcome"),
        ("correlation", "Random-intercept correlation"),
    ):
        e = ri.loc[k]
        par_rows.append(
            {
                "Parameter": label,
                "Estimate": e["estimate"],
                "SE": e["se"],
                "95 % CI": (e["ci_low"], e["ci_high"]),
                "p": np.nan,
            }
        )
    lr = primary.long_run
    par_rows.append(
        {
            "Parameter": "Long-run effect of alliance on outcome",
            "Estimate": lr["estimate"],
            "SE": lr["se"],
            "95 % CI": (lr["ci_low"], lr["ci_high"]),
            "p": lr["p"],
        }
    )
    par_table = Table(
        "RI-CLPM: within-client paths and random intercepts",
        pd.DataFrame(par_rows),
        formats={"Estimate": "num", "SE": "num", "95 % CI": "ci", "p": "p"},
        digits={"Estimate": 4, "SE": 4, "95 % CI": 4},
        note=(
            "Random-intercept cross-lagged panel model (Hamaker et al., 2015), lavaan-equivalent "
            "syntax in results.json. SEs from the observed information. Within-wave residual "
            "covariances and wave means free."
        ),
        name="riclpm_parameters",
    )
    b = primary.effects.loc["alliance -> outcome"]
    fi = primary.fit_indices
    ct = primary.constraint_test
    direction = "lower" if b["estimate"] < 0 else "higher"
    sentences = [
        f"In the random-intercept cross-lagged panel model ({primary.n_clients} clients, "
        f"sessions {waves[0]}-{waves[-1]} as waves), a session in which a client's alliance was "
        f"one point above their own usual level was followed by an outcome "
        f"{_num(abs(b['estimate']))} points {direction} at the next session (b = "
        f"{_num(b['estimate'])}, 95 % CI {_ci(b['ci_low'], b['ci_high'])}, {_p(b['p'])}).",
        f"The reverse path, outcome to the next alliance, was b = {_num(rev['estimate'], dr)} "
        f"(95 % CI {_ci(rev['ci_low'], rev['ci_high'], dr)}, {_p(rev['p'])}); the long-run "
        f"effect of a sustained one-point alliance change was {_num(lr['estimate'])} points "
        f"(95 % CI {_ci(lr['ci_low'], lr['ci_high'])}).",
        (
            f"Model fit: χ²({int(fi['df'])}) = {_num(fi['chisq'])}, CFI = "
            f"{_num(fi['cfi'], 3).lstrip('0')}, RMSEA = {_num(fi['rmsea'], 3).lstrip('0')} "
            f"(90 % CI [{_num(fi['rmsea_ci_low'], 3).lstrip('0')}, {_num(fi['rmsea_ci_high'], 3).lstrip('0')}]), SRMR = "
            f"{_num(fi['srmr'], 3).lstrip('0')}."
            if np.isfinite(fi["chisq"])
            else "Model fit: no chi-square-based indices, because the unrestricted model is "
            "singular with this few clients for the number of sessions."
        ),
    ]
    if ct is not None:
        verdict = (
            "the equal-lags model fits worse than free lags, so the lagged effects may vary "
            "over sessions"
            if ct["p"] < 0.05
            else "holding the lagged effects equal over sessions did not worsen the fit"
        )
        sentences.append(
            f"Likelihood-ratio test of equal lags against free lags: χ²({int(ct['df'])}) = "
            f"{_num(ct['chisq'])}, {_p(ct['p'])}; {verdict}."
        )
    sens = [k for k in fits if k != "riclpm"]
    if sens:
        ests = [fits[k].effects.loc["alliance -> outcome", "estimate"] for k in sens]
        sentences.append(
            "Sensitivity analyses (ML-SEM with a predetermined alliance, client-specific slopes, "
            f"lag-2 paths) gave estimates from {_num(min(ests))} to {_num(max(ests))}."
        )
    if mlm is not None:
        fx = mlm.fixed.loc["alliance_within"]
        sentences.append(
            f"The descriptive multilevel model gave b = {_num(fx['estimate'])} (95 % CI "
            f"{_ci(fx['ci_low'], fx['ci_high'])}); it is not used for inference because a "
            "lagged outcome beside a client random intercept is biased when both series have "
            "inertia and effects run both ways."
        )
    for name, f in fits.items():
        if not f.converged or f.singular:
            sentences.append(
                f"Diagnostics, {labels[name]}: "
                + ("did not converge; " if not f.converged else "")
                + ("a boundary (singular) fit; " if f.singular else "")
                + "; ".join(f.warnings[:2])
                + "."
            )
    sentences.append(
        "These are within-client associations; a causal reading assumes no unmeasured "
        "time-varying confounders (sequential exchangeability), and measurement error in the "
        "alliance scores attenuates the estimates."
    )
    sig = b["ci_high"] < 0 or b["ci_low"] > 0
    summary = (
        f"Within clients, a better-than-usual alliance was followed by "
        f"{'a lower' if b['estimate'] < 0 else 'a higher'} outcome at the next session "
        f"(RI-CLPM b = {_num(b['estimate'])}, 95 % CI {_ci(b['ci_low'], b['ci_high'])}"
        f"{'' if sig else '; not distinguishable from 0'})."
    )
    methods = (
        "The within-client association of alliance and outcome was estimated with a "
        "random-intercept cross-lagged panel model (RI-CLPM; Hamaker et al., 2015; lavaan code of "
        "Mulder & Hamaker, 2021), with sessions as waves (the outcome measured before, the "
        "alliance after each session), client random intercepts for both series, wave-specific "
        "means and within-wave residual covariances, autoregressive and cross-lagged effects "
        "held equal over sessions (tested against free effects by a likelihood-ratio test), "
        "fitted by full-information maximum likelihood (missing sessions and dropout assumed "
        "missing at random) with standard errors from the observed information; the in-house "
        "estimator reproduces lavaan (Rosseel, 2012). The long-run effect is b / (1 − ρ) "
        "(Falkenström, 2024). Sensitivity analyses: the ML-SEM dynamic panel model with fixed "
        "effects and a predetermined alliance (Allison et al., 2017), client-specific linear "
        "slopes (latent curve model with structured residuals; Curran et al., 2014), and lag-2 "
        "paths. A multilevel model with a person-mean-centred alliance, the prior outcome and a "
        "client random intercept is reported as a descriptive line only; it is biased under "
        "inertia and reverse effects (Falkenström et al., 2022)."
    )
    numbers = {
        "primary": primary.to_dict(),
        "primary_lavaan_syntax": primary.lavaan_syntax,
        "sensitivity": {k: f.to_dict() for k, f in fits.items() if k != "riclpm"},
        "failed": failed,
        "multilevel_descriptive": None
        if mlm is None
        else {
            "estimate": float(mlm.fixed.loc["alliance_within", "estimate"]),
            "ci_low": float(mlm.fixed.loc["alliance_within", "ci_low"]),
            "ci_high": float(mlm.fixed.loc["alliance_within", "ci_high"]),
            "p": float(mlm.fixed.loc["alliance_within", "p"]),
            "warnings": list(mlm.warnings),
        },
    }
    return Section(
        key=KEY,
        title=TITLE,
        numbers=numbers,
        tables=[table, par_table],
        sentences=sentences,
        summary=summary,
        methods=methods,
        references=REFERENCES,
    )
