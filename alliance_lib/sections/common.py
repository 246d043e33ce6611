"""The analyses the report sections share, each called in exactly one place and cached per wave.

Several sections read the same fit (the growth model feeds the trajectory, ICC, therapist and
wave-over-wave sections; the change events feed the event-rate table). Each analysis is one
function here, so switching a method (another estimator, another preset) is a one-line change,
and a result is computed once per prepared wave: the cache lives on the
:class:`~alliance_lib.waves.WaveData` object itself and goes away with it.

Examples
--------
>>> from alliance_lib.study import load_study
>>> from alliance_lib.waves import prepare_wave
>>> from pathlib import Path
>>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
>>> sessions(w) is sessions(w)
True
>>> COLUMNS
{'client': 'client_id', 'session': 'session'}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import alliance_lib.alliance_outcome as ao
import alliance_lib.change as change
import alliance_lib.raters as raters
import alliance_lib.trajectories as traj
from alliance_lib.errors import DataError, DefinitionError
from alliance_lib.registry import Instrument, get_instrument
from alliance_lib.reliability import _multilevel_reliability, _reliability
from alliance_lib.ruptures import compare_rupture_presets
from alliance_lib.tables import instrument_label

__all__ = [
    "COLUMNS",
    "cached",
    "forget",
    "sessions",
    "alliance_instrument",
    "outcome_instrument",
    "has_outcome",
    "has_alliance",
    "therapist_column",
    "alliance_label",
    "outcome_label",
    "trajectory_fit",
    "shape_fits",
    "time_zero_words",
    "icc_table",
    "therapist_intervals",
    "alliance_outcome_fit",
    "therapist_alliance_outcome_fit",
    "early_alliance_fit",
    "early_alliance_by_session",
    "client_pre_post",
    "rupture_comparison",
    "rupture_episodes",
    "rupture_pattern_table",
    "sudden_gain_cutoff",
    "gains_and_losses",
    "sudden_gain_cases",
    "study_cutoff",
    "treatment_status",
    "clinical_change",
    "outcome_reliability",
    "reliable_change_methods",
    "reliability_table",
    "multilevel_reliability_table",
    "rater_agreement_fit",
    "rater_agreement_fits",
    "rater_perspectives",
]

#: The canonical id and session columns every analysis of a prepared wave uses.
COLUMNS = {"client": "client_id", "session": "session"}
CI_LEVEL = 0.95
#: Parametric-bootstrap replicates of the ICC intervals.
ICC_BOOT = 500


def cached(wave, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per wave and key (the cache is stored on the wave object)."""
    store = wave.__dict__.setdefault("_section_cache", {})
    if key not in store:
        store[key] = compute()
    return store[key]


def forget(wave, key: tuple) -> None:
    """Drop one cached result (a section done with a large one that no later section uses);
    asked for again, it is computed again.

    Examples
    --------
    >>> class Wave: ...
    >>> w = Wave()
    >>> cached(w, ("n",), lambda: 1), forget(w, ("n",)), cached(w, ("n",), lambda: 2)
    (1, None, 2)
    """
    wave.__dict__.get("_section_cache", {}).pop(key, None)


def sessions(wave) -> pd.DataFrame:
    """One row per client x session (``WaveData.sessions()``), computed once."""
    return cached(wave, ("sessions",), wave.sessions)


def alliance_instrument(wave) -> Instrument:
    study = wave.study
    if not study.instruments.get("alliance"):
        raise DataError(
            "the study names no alliance instrument (an outcome-only study)",
            file=study.path.name,
            hint="add 'instruments: {alliance: <id>}' to the study YAML for the alliance sections",
        )
    return get_instrument(study.instruments["alliance"], folder=study.instrument_folder)


def has_alliance(wave) -> bool:
    """The study names an alliance instrument (an outcome-only study does not)."""
    return bool(wave.study.instruments.get("alliance"))


def outcome_instrument(wave) -> Instrument | None:
    study = wave.study
    if not study.instruments.get("outcome"):
        return None
    return get_instrument(study.instruments["outcome"], folder=study.instrument_folder)


def has_outcome(wave) -> bool:
    return outcome_instrument(wave) is not None and bool(sessions(wave)["outcome"].notna().any())


def therapist_column(wave) -> str | None:
    return "therapist_id" if wave.has_therapists else None


def alliance_label(wave, rater: str | None = "client") -> str:
    """``'WAI-SR total, client-rated (item mean, 1–5)'``."""
    return instrument_label(alliance_instrument(wave), rater=rater)


def outcome_label(wave) -> str:
    inst = outcome_instrument(wave)
    return instrument_label(inst) if inst is not None else "outcome"


# ---------------------------------------------------------------- models
def trajectory_fit(wave, method: str = "reml"):
    """The study's growth model of the client-rated alliance (shape, knot and covariates from the
    study file; sessions in clients in therapists)."""
    study = wave.study

    def fit():
        return traj.fit_trajectory(
            sessions(wave),
            "alliance",
            time="session",
            client="client_id",
            therapist=therapist_column(wave),
            shape=study.analysis["trajectory_shape"],
            knot=study.analysis["knot"],
            covariates=list(study.covariates),
            method=method,
            time_zero=study.analysis["time_zero"],
        )

    return cached(wave, ("trajectory", method), fit)


def time_zero_words(wave, fit=None) -> str:
    """Where intercepts and ICCs are stated, in words: ``'session 1, the first alliance
    session'`` (the default time zero) or ``'session 2, the study's time zero'``."""
    fit = fit if fit is not None else trajectory_fit(wave)
    t0 = float(fit.time_zero)
    where = f"session {t0:g}"
    if wave.study.analysis["time_zero"] is None:
        return f"{where}, the first alliance session"
    return f"{where}, the study's time zero (analysis.time_zero)"


def icc_table(wave) -> pd.DataFrame:
    """The growth model's ICCs at time zero with 95% parametric-bootstrap intervals (500
    replicates, the study's seed): :meth:`TrajectoryFit.icc_table`."""
    return cached(
        wave,
        ("icc_table",),
        lambda: trajectory_fit(wave).icc_table(
            ci=CI_LEVEL, n_boot=ICC_BOOT, seed=wave.study.seed, interval="auto"
        ),
    )


def shape_fits(wave) -> dict:
    """Every candidate shape of ``analysis.compare_shapes``, by ML (comparable likelihoods).

    Not cached: the shape-comparison section is their only user; kept, the fits' design
    matrices held 2.8 GB for the rest of a 1,000,000-client report.
    """
    study = wave.study
    return {
        shape: traj.fit_trajectory(
            sessions(wave),
            "alliance",
            client="client_id",
            therapist=therapist_column(wave),
            shape=shape,
            knot=study.analysis["knot"],
            method="ml",
            time_zero=study.analysis["time_zero"],
        )
        for shape in study.analysis["compare_shapes"]
    }


def therapist_intervals(wave) -> pd.DataFrame:
    """Therapist empirical Bayes effects with 95% prediction intervals and caseloads."""

    def compute():
        eff = trajectory_fit(wave).client_effects("therapist", ci=CI_LEVEL).reset_index()
        caseload = sessions(wave).groupby("therapist_id")["client_id"].nunique()
        return pd.DataFrame(
            {
                "therapist_id": eff["therapist_id"],
                "n_clients": eff["therapist_id"].map(caseload).to_numpy(),
                "estimate": eff["Intercept"],
                "ci_low": eff["Intercept_ci_low"],
                "ci_high": eff["Intercept_ci_high"],
            }
        )

    return cached(wave, ("therapist_intervals",), compute)


def alliance_outcome_fit(wave):
    """Next-session outcome on the within- and between-client alliance (detrended, lag 1)."""
    return cached(
        wave,
        ("alliance_outcome",),
        lambda: ao.fit_alliance_outcome(
            sessions(wave),
            "alliance",
            "outcome",
            **COLUMNS,
            therapist=therapist_column(wave),
            lag=1,
            detrend=True,
        ),
    )


def client_pre_post(wave) -> pd.DataFrame:
    """Per client: first and last observed outcome (and their sessions), mean alliance and
    therapist; one row per client with an outcome, in id order.

    Examples
    --------
    >>> from alliance_lib.study import load_study
    >>> from alliance_lib.waves import prepare_wave
    >>> from pathlib import Path
    >>> w = prepare_wave(load_study(Path(__file__).parents[2] / "data" / "demo" / "study.yaml"), 1)
    >>> list(client_pre_post(w).columns)[:5]
    ['client_id', 'pre_session', 'outcome_pre', 'last_session', 'outcome_post']
    """

    def compute():
        s = sessions(wave)
        obs = s.dropna(subset=["outcome"]).sort_values(["client_id", "session"], kind="stable")
        ends = obs.groupby("client_id")
        out = pd.DataFrame(
            {
                "pre_session": ends["session"].first(),
                "outcome_pre": ends["outcome"].first(),
                "last_session": ends["session"].last(),
                "outcome_post": ends["outcome"].last(),
            }
        )
        out["alliance"] = s.groupby("client_id")["alliance"].mean()
        if wave.has_therapists:
            out["therapist_id"] = s.groupby("client_id")["therapist_id"].first()
        return out.rename_axis("client_id").reset_index()

    return cached(wave, ("pre_post",), compute)


def therapist_alliance_outcome_fit(wave):
    """Baldwin, Wampold & Imel (2007): last outcome on the therapist mean alliance and the
    client's deviation from it, controlling intake, therapist random intercept."""

    def fit():
        per_client = client_pre_post(wave)
        per_client = per_client[per_client["last_session"] > 0]
        return ao.therapist_effects(
            per_client,
            "alliance",
            "outcome_post",
            "outcome_pre",
            therapist="therapist_id",
            client="client_id",
        )

    return cached(wave, ("therapist_alliance_outcome",), fit)


def early_alliance_fit(wave, early_session: int):
    """Later outcome on the early alliance, controlling intake and change up to that session."""
    return cached(
        wave,
        ("early_alliance", early_session),
        lambda: ao.early_alliance_outcome(
            sessions(wave), "alliance", "outcome", **COLUMNS, early_session=early_session
        ),
    )


def early_alliance_by_session(wave, early_session: int) -> tuple[dict, pd.DataFrame]:
    """The simple regression of the intake-to-last change on the alliance at ``early_session``
    (clients whose last outcome came after it): the numbers and the per-client table."""
    import scipy.stats as st

    def compute():
        s = sessions(wave)
        pp = client_pre_post(wave).set_index("client_id")
        change_ = (pp["outcome_post"] - pp["outcome_pre"]).rename("outcome_change")
        tab = (
            s[s["session"] == early_session]
            .set_index("client_id")["alliance"]
            .rename("early_alliance")
            .to_frame()
            .join(change_, how="inner")
        )
        tab = tab[pp.loc[tab.index, "last_session"] > early_session].dropna()
        reg = st.linregress(tab["early_alliance"], tab["outcome_change"])
        tcrit = st.t.ppf(0.5 + CI_LEVEL / 2, len(tab) - 2)
        row = {
            "session": early_session,
            "n_clients": len(tab),
            "r": reg.rvalue,
            "slope": reg.slope,
            "slope_se": reg.stderr,
            "slope_ci_low": reg.slope - tcrit * reg.stderr,
            "slope_ci_high": reg.slope + tcrit * reg.stderr,
            "p": reg.pvalue,
        }
        return row, tab.reset_index()

    return cached(wave, ("early_simple", early_session), compute)


# ---------------------------------------------------------------- measurement
def _rated_groups(wave):
    """(instrument, rater, positions) for every instrument and rater with answered items.

    ``positions``: the rows of ``wave.scored`` of that rater (sorted); the analyses read their
    item columns at these rows, so no frame is copied per group."""
    scored = wave.scored
    insts = [alliance_instrument(wave)] + (
        [outcome_instrument(wave)] if outcome_instrument(wave) else []
    )
    if "rater" not in scored:
        return
    rater_codes, raters_found = pd.factorize(scored["rater"], sort=True)  # NaN rater: -1
    order = np.argsort(rater_codes, kind="stable")
    bounds = np.searchsorted(rater_codes[order], np.arange(len(raters_found) + 1))
    for inst in insts:
        if not set(inst.columns) <= set(scored.columns):
            continue  # a pre-scored total (instruments: {outcome: {id, total}}): no items
        for k, rater in enumerate(raters_found):
            pos = order[bounds[k] : bounds[k + 1]]
            answered = False
            for c in inst.columns:  # one column at a time: no copy of the item block
                if scored[c].iloc[pos].notna().any():
                    answered = True
                    break
            if answered:
                yield inst, rater, pos


def _client_codes(wave) -> tuple[np.ndarray, np.ndarray]:
    """Client codes of ``wave.scored`` in sorted client order, computed once per wave: with a
    code for a missing client (one administration per client) and with -1 for it (clusters)."""

    def compute():
        codes, uniques = pd.factorize(wave.scored["client_id"], sort=True, use_na_sentinel=False)
        missing = np.flatnonzero(pd.isna(uniques))
        clusters = np.where(np.isin(codes, missing), -1, codes) if missing.size else codes
        return codes, clusters

    return cached(wave, ("client_codes",), compute)


def reliability_table(wave) -> tuple[pd.DataFrame, list[str]]:
    """Alpha and omega per instrument, rater and scale at one administration per client (each
    client's first administration of the instrument), with footnotes.

    Besides the columns of :func:`alliance_lib.reliability` (``omega_h`` and ``omega_model``:
    omega hierarchical and total for a multidimensional total, one-factor omega otherwise),
    ``first_session`` is the session most clients' first administration fell on and
    ``first_session_share`` the share of clients it holds.
    """

    def compute():
        tables, footnotes = [], []
        seen = []
        scored = wave.scored
        codes, clusters = _client_codes(wave)
        ses = scored["session"].to_numpy()
        for inst, rater, pos in _rated_groups(wave):
            r = _reliability(
                scored,
                inst,
                **COLUMNS,
                administration="first",
                by_cols=[],
                ci=0.95,
                nan_policy="listwise",
                missing_codes=(),
                errors="raise",
                rows=pos,
                codes=codes[pos],
            )
            answered = np.zeros(pos.size, dtype=bool)
            for col in inst.columns:  # one column at a time
                answered |= scored[col].iloc[pos].notna().to_numpy()
            a = pos[answered]
            a = a[clusters[a] >= 0]  # as a group-by on client_id: no missing client
            first = pd.Series(ses[a]).groupby(codes[a]).min()  # sorted client order
            counts = first.value_counts()
            r.insert(0, "rater", rater)
            r.insert(0, "instrument", inst.id)
            r["administration"] = r.attrs.get("administration", "first")
            r["first_session"] = int(counts.index[0]) if len(counts) else None
            r["first_session_share"] = float(counts.iloc[0] / counts.sum()) if len(counts) else None
            r["uncertain"] = [", ".join(inst.uncertain_facts(sc)) for sc in r["scale"]]
            tables.append(r)
            if inst.id in seen:
                continue
            seen.append(inst.id)
            flags = [
                f
                for f in ("cutoff", "reliable_change")
                if f in inst.facts and inst.facts[f].status == "uncertain"
            ]
            if flags:
                footnotes.append(f"{inst.id}: norm facts marked uncertain: {', '.join(flags)}.")
            if inst.local_rules:
                footnotes.append(
                    f"{inst.id}: our own convention (no manual rule): "
                    f"{', '.join(inst.local_rules)}."
                )
        return pd.concat(tables, ignore_index=True), footnotes

    return cached(wave, ("reliability",), compute)


def multilevel_reliability_table(wave) -> pd.DataFrame:
    """Within- and between-client omega over every administration (Geldhof, Preacher & Zyphur
    2014), per instrument, rater and scale (:func:`alliance_lib.multilevel_reliability`)."""

    def compute():
        parts = []
        _, clusters = _client_codes(wave)
        for inst, rater, pos in _rated_groups(wave):
            # clients numbered by first appearance in the rater's rows, as multilevel_reliability
            # numbers them on that rater's frame (the same sums in the same order)
            own = clusters[pos]
            codes = np.where(own >= 0, pd.factorize(own)[0], -1)
            m = _multilevel_reliability(
                wave.scored, inst, "client_id", [], (), "raise", rows=pos, codes=codes
            )
            m.insert(0, "rater", rater)
            m.insert(0, "instrument", inst.id)
            parts.append(m)
        return pd.concat(parts, ignore_index=True)

    return cached(wave, ("multilevel_reliability",), compute)


#: Rater perspectives compared in the report, in this order (others present follow).
RATER_ORDER = ("client", "therapist", "observer", "interpreter")
#: Cluster-bootstrap replicates of the rater-agreement intervals (about 5 ms each for 3,000
#: pairs; 500 keeps the report fast and the percentile limits stable to about .01).
RATER_BOOT = 500


def rater_perspectives(wave) -> list[str]:
    """Rater perspectives with an alliance total in this wave (client first)."""
    col = f"{alliance_instrument(wave).prefix}_total"
    if "rater" not in wave.scored or col not in wave.scored:
        return []
    rated = wave.scored["rater"][wave.scored[col].notna()].dropna()
    present = {str(r) for r in rated.unique()}  # distinct values first: no Python loop over rows
    order = [r for r in RATER_ORDER if r in present]
    return order + sorted(present - set(order))


def rater_agreement_fits(wave) -> dict:
    """Every pair of rater perspectives present: ``{(a, b): RaterAgreement}`` (differences
    ``a - b``), clustered (clients and sessions as random effects, cluster-bootstrap CIs with
    :data:`RATER_BOOT` replicates and the study's seed, Bland & Altman 2007 limits)."""

    def compute():
        col = f"{alliance_instrument(wave).prefix}_total"
        found = rater_perspectives(wave)
        out, skipped = {}, {}
        for i, a in enumerate(found):
            for b in found[i + 1 :]:
                try:
                    out[(a, b)] = raters.rater_agreement(
                        wave.scored,
                        col,
                        **COLUMNS,
                        rater="rater",
                        raters=(a, b),
                        n_boot=RATER_BOOT,
                        seed=wave.study.seed,
                    )
                except raters.RaterAgreementError as exc:  # e.g. too few shared sessions
                    skipped[(a, b)] = str(exc)
        return out, skipped

    return cached(wave, ("raters",), compute)[0]


def rater_pairs_not_compared(wave) -> dict:
    """Pairs of perspectives present that could not be compared, with the reason."""
    rater_agreement_fits(wave)
    return cached(wave, ("raters",), lambda: ({}, {}))[1]


def rater_agreement_fit(wave):
    """Client against therapist ratings of the same sessions (the first pair of
    :func:`rater_agreement_fits`)."""
    fits = rater_agreement_fits(wave)
    if ("client", "therapist") in fits:
        return fits[("client", "therapist")]
    return next(iter(fits.values()))


# ---------------------------------------------------------------- change events
#: The rupture rules always reported side by side (Gumz et al. 2012 recommend more than one).
RUPTURE_PRESETS = ("stiles", "gumz")
#: Simulated rupture-free data sets for each rule's expected false-alarm rate.
RUPTURE_SIMULATIONS = 200


def rupture_comparison(wave):
    """The Stiles and Gumz rupture rules (and the study's preset, if another) on the
    client-rated alliance with the study's minimum drop, each with its false-alarm rate in
    simulated rupture-free data at this wave's noise level
    (:func:`alliance_lib.compare_rupture_presets`)."""
    a = wave.study.analysis
    presets = RUPTURE_PRESETS + tuple(p for p in (a["rupture_preset"],) if p not in RUPTURE_PRESETS)
    return cached(
        wave,
        ("rupture_comparison",),
        lambda: compare_rupture_presets(
            sessions(wave),
            "alliance",
            **COLUMNS,
            presets=presets,
            min_drop=a["rupture_min_drop"],
            n_simulations=RUPTURE_SIMULATIONS,
            seed=wave.study.seed,
        ),
    )


def rupture_episodes(wave) -> pd.DataFrame:
    """Rupture episodes in the client-rated alliance under the study's preset (and minimum
    drop), from :func:`rupture_comparison`."""
    return rupture_comparison(wave).episodes[wave.study.analysis["rupture_preset"]]


def rupture_pattern_table(wave) -> pd.DataFrame:
    """Each client as no rupture, repaired or unrepaired (Larsson et al. 2018), study preset."""
    return rupture_comparison(wave).patterns[wave.study.analysis["rupture_preset"]]


def sudden_gain_cutoff(wave) -> float | None:
    """The study's cutoff, else the outcome's reliable-change points, else ``None``."""
    cutoff = wave.study.analysis["sudden_gain_cutoff"]
    if cutoff is None and outcome_instrument(wave) is not None:
        rc = (outcome_instrument(wave).norms or {}).get("reliable_change") or {}
        cutoff = rc.get("points")
    return cutoff


def gains_and_losses(wave) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """Sudden gains and losses among the clients :func:`sudden_gain_cases` selects, and the
    per-client interval counts of every client (None without a cutoff)."""
    cutoff = sudden_gain_cutoff(wave)
    if cutoff is None or not has_outcome(wave):
        return None

    def compute():
        # the selected clients' own grid, as change.sudden_gains lays out their rows
        chosen = sudden_gain_cases(wave)
        grid = _outcome_grid(wave).subset(chosen["selected"].to_numpy())
        better = outcome_instrument(wave).direction == "higher_is_better"
        found = {
            kind: change._sudden_on_grid(
                grid,
                kind=kind,
                client=COLUMNS["client"],
                cutoff=cutoff,
                higher_is_better=better,
            )  # fmt: skip
            for kind in ("gain", "loss")
        }
        counts = change._count_intervals_on_grid(_outcome_grid(wave), client=COLUMNS["client"])
        return found["gain"], found["loss"], counts

    return cached(wave, ("gains",), compute)


def _outcome_grid(wave):
    """The outcome on the client x session grid (laid out once for the sudden-gain analyses:
    :func:`alliance_lib.select_sudden_gain_cases`, ``sudden_gains``, ``count_intervals``)."""
    return cached(
        wave,
        ("outcome_grid",),
        lambda: change._session_grid(sessions(wave), "outcome", **COLUMNS),
    )


def sudden_gain_cases(wave) -> pd.DataFrame:
    """Which clients have the outcome data to look for sudden gains: one of the four
    suddengains patterns (two observed sessions on each side of an interval;
    :func:`alliance_lib.select_sudden_gain_cases`, ``method="pattern"``)."""
    return cached(
        wave,
        ("sudden_gain_cases",),
        lambda: change._select_cases_on_grid(
            _outcome_grid(wave), client=COLUMNS["client"], method="pattern"
        ),
    )


def study_cutoff(wave):
    """The wave's data cut-off set in the study file (``waves.<N>.cutoff``), else ``None``."""
    waves = wave.study.raw.get("waves") if isinstance(wave.study.raw, dict) else None
    if isinstance(waves, dict):
        entry = waves.get(wave.wave, waves.get(str(wave.wave)))
        if isinstance(entry, dict) and entry.get("cutoff"):
            return entry["cutoff"]
    return None


def treatment_status(wave) -> tuple[pd.DataFrame | None, str]:
    """Each client as ended / ongoing / unknown at the data cut-off
    (:func:`alliance_lib.treatment_status`) from the session dates (``analysis.
    ongoing_within_days``) and/or the study's end-of-treatment column, with ``ended_early``
    against the highest session number in the data (taken as the last planned session); and
    the rule in words. ``(None, reason)`` when the data have neither a date nor an end column.
    """

    def compute():
        a = wave.study.analysis
        data = wave.scored
        date = "date" if "date" in data and data["date"].notna().any() else None
        end = a["end_of_treatment"] if a["end_of_treatment"] in data else None
        if date is None and end is None:
            why = "no session dates" + (
                f" and no end-of-treatment column {a['end_of_treatment']!r}"
                if a["end_of_treatment"]
                else " and no end-of-treatment column (analysis.end_of_treatment)"
            )
            return None, why
        last_planned = int(sessions(wave)["session"].max())
        status = change.treatment_status(
            data,
            **COLUMNS,
            date=date,
            end=end,
            cutoff_date=study_cutoff(wave),
            ongoing_within_days=a["ongoing_within_days"] if date else None,
            last_planned_session=last_planned,
        )
        parts = []
        if end:
            parts.append(f"marked in the end-of-treatment column {end!r}")
        if date and a["ongoing_within_days"] is not None:
            parts.append(
                f"last seen more than {a['ongoing_within_days']:g} days before the data cut-off "
                "(the study setting analysis.ongoing_within_days)"
            )
        rule = "a client has ended treatment when " + " or ".join(parts or ["marked"])
        status.attrs["rule"] = rule
        status.attrs["last_planned_session"] = last_planned
        return status, rule

    return cached(wave, ("treatment_status",), compute)


def clinical_change(wave) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reliable change (Jacobson & Truax, the instrument's published points) from intake to the
    last session attended, and its clinical-significance categories, for clients who have
    *ended* treatment (:func:`treatment_status`; every client, with a caveat, when the data
    cannot tell ended from ongoing); clients seen after intake only. ``rc.attrs
    ["treatment_status"]`` counts the clients by status."""

    def compute():
        inst = outcome_instrument(wave)
        status, _ = treatment_status(wave)
        # change.reliable_change_from_long(sessions(wave), ..., status=status) on the outcome
        # grid laid out once: the ended clients' rows (change.keep_ended_clients) are its rows
        grid, counts = _outcome_grid(wave), None
        if status is not None:
            of_client = status.set_index(COLUMNS["client"])["status"].astype(str)
            st = of_client.reindex(grid.clients).fillna("unknown").to_numpy()
            counts = {s: int((st == s).sum()) for s in change.TREATMENT_STATUSES}
            grid = grid.subset(st == "ended")
        rc = change._reliable_change_on_grid(grid, client=COLUMNS["client"], instrument=inst)
        rc = rc[rc["post_session"] > rc["pre_session"]]
        rc.attrs["treatment_status"] = counts
        cs = change.clinical_significance(rc, pre="pre", post="post", instrument=inst)
        return rc, cs

    return cached(wave, ("clinical",), compute)


def outcome_reliability(wave) -> tuple[float, str]:
    """The outcome total's reliability in this wave's data (Cronbach's alpha at each client's
    first administration, client-rated) and where it comes from, for the reliable-change
    methods that need one."""
    inst = outcome_instrument(wave)
    try:
        table, _ = reliability_table(wave)
    except ValueError:  # no instrument with item data (nothing to concatenate)
        table = pd.DataFrame(columns=["instrument", "scale", "rater"])
    rows = table[
        (table["instrument"] == inst.id)
        & (table["scale"] == "total")
        & (table["rater"] == "client")
    ]
    if rows.empty:
        return np.nan, f"no item-level {inst.id.upper()} data (a pre-scored total)"
    row = rows.iloc[0]
    first = row["first_session"]
    where = "intake" if first == 0 else f"session {first}"
    return float(row["alpha"]), (
        f"Cronbach's alpha of the {inst.id.upper()} total at each client's first administration "
        f"({where}; n = {int(row['n'])})"
    )


#: The counts of :func:`reliable_change_methods` (missing where a method cannot be computed).
NUMBER_KEYS = (
    "n_clients",
    "improved",
    "unchanged",
    "deteriorated",
    "share_improved",
    "share_deteriorated",
)


def reliable_change_methods(wave) -> pd.DataFrame:
    """Clients improved / unchanged / deteriorated under every reliable-change index of
    :data:`alliance_lib.change.RCI_METHODS` (ended clients, intake to last session), each
    with the outcome's reliability from the data (:func:`outcome_reliability`)."""

    def compute():
        rc, _ = clinical_change(wave)
        inst = outcome_instrument(wave)
        r, _ = outcome_reliability(wave)
        better = inst.direction == "higher_is_better"
        rows = []
        for m in change.RCI_METHODS:
            row = {"method": m, "reliability": r, "note": ""}
            try:
                if not 0 <= r < 1:
                    raise DataError(f"the reliability from these data ({r:.3f}) is not in [0, 1)")
                out = change.reliable_change(
                    rc, pre="pre", post="post", reliability=r, higher_is_better=better, method=m
                )
            except (DataError, DefinitionError) as exc:  # e.g. HA's change-score reliability < 0
                row.update(dict.fromkeys(NUMBER_KEYS), note=str(exc).split("\n")[0])
                rows.append(row)
                continue
            cat = out["category"].astype(str).value_counts()
            n = int(out["category"].notna().sum())
            row.update(
                n_clients=n,
                improved=int(cat.get("improved", 0)),
                unchanged=int(cat.get("unchanged", 0)),
                deteriorated=int(cat.get("deteriorated", 0)),
                share_improved=cat.get("improved", 0) / n if n else None,
                share_deteriorated=cat.get("deteriorated", 0) / n if n else None,
            )
            rows.append(row)
        return pd.DataFrame(rows)

    return cached(wave, ("rci_methods",), compute)


def whole(value: Any) -> int | None:
    """An int from a count that may arrive as a float or missing."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)
