"""Simulated alliance studies with known true values.

The generating model is a three-level growth model (sessions in clients in therapists) for the
client-rated alliance, a therapist rating that partly shares the client's view, and a symptom
outcome whose next-session value depends on the alliance's within-client (state-like) and
between-client (trait-like) parts. Every true value is returned in ``df.attrs["truth"]`` so
teaching notebooks and recovery tests can check estimates against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.errors import DefinitionError

__all__ = ["SimulationTruth", "simulate_study", "write_demo_study", "DEMO_SEED"]

DEMO_SEED = 20260115
WAI_SR_ITEMS = 12
WAI_SR_SUBSCALES = {"task": (1, 2, 10, 12), "bond": (3, 5, 7, 9), "goal": (4, 6, 8, 11)}
OQ_ITEMS = 45
OQ_REVERSED = (1, 12, 13, 20, 21, 24, 31, 37, 43)


@dataclass(frozen=True)
class SimulationTruth:
    """True parameter values of :func:`simulate_study` (alliance on the WAI-SR item-mean metric,
    outcome on the OQ-45.2 total metric 0-180; time is the session number, 0 = intake).

    Alliance (client rating), session s >= 1 of client i with therapist j::

        alliance = alliance_intercept + u0_i + t_j + (alliance_slope + u1_i) * s + e
        u ~ N(0, [[sd_client_intercept^2, rho sd sd], [., sd_client_slope^2]]),
        t_j ~ N(0, sd_therapist^2), e ~ N(0, sd_residual^2)

    Outcome at session s >= 0::

        outcome = outcome_intercept + w0_i + (outcome_slope + w1_i) * s
                  + within_effect * e_{s-1}                     (alliance state, previous session)
                  + between_effect * (u0_i + t_j)               (alliance trait)
                  + reverse_effect feeds improvement back into the next alliance rating.

    Within-client dynamics (all 0 by default, which gives the original model exactly). With
    ``y_s`` the outcome's and ``a_s`` the alliance's within-client deviation at session ``s``
    (the outcome is measured before the session, the alliance after it)::

        y_s = outcome_inertia * y_{s-1} + within_effect * a_{s-1} + eps_s
        a_s = alliance_inertia * a_{s-1} + reverse_change_effect * (y_{s-1} - y_s) + e_s

    so an improvement since the previous session (``y_{s-1} - y_s`` > 0) raises the alliance
    rated after it (the reverse path). :meth:`implied` gives the lag-1 coefficients an RI-CLPM
    estimates under these dynamics. ``dropout_outcome`` adds the observed outcome (per
    ``sd_outcome_intercept`` above the group's mean course) to the dropout logit, a missing-at-
    random mechanism. Items (measurement model): WAI-SR item = latent alliance + subscale facet
    (SD ``wai_facet_sd``) + item error (SD ``wai_item_sd``), rounded to 1-5; OQ-45.2 item = latent
    item mean + difficulty + error (SD ``oq_item_sd``), rounded to 0-4.
    """

    alliance_intercept: float = 3.55
    alliance_slope: float = 0.03
    sd_client_intercept: float = 0.45
    sd_client_slope: float = 0.03
    corr_intercept_slope: float = -0.30
    sd_therapist: float = 0.18
    sd_residual: float = 0.30
    therapist_rating_weight: float = 0.70
    therapist_rating_offset: float = 0.75
    sd_therapist_rater: float = 0.20
    sd_therapist_rating_residual: float = 0.30
    outcome_intercept: float = 80.0
    outcome_slope: float = -2.2
    sd_outcome_intercept: float = 18.0
    sd_outcome_slope: float = 1.2
    sd_outcome_residual: float = 6.0
    within_effect: float = -6.0
    between_effect: float = -10.0
    reverse_effect: float = 0.0
    dropout_base: float = -2.6
    dropout_alliance: float = -1.5
    alliance_inertia: float = 0.0
    outcome_inertia: float = 0.0
    reverse_change_effect: float = 0.0
    dropout_outcome: float = 0.0
    wai_facet_sd: float = 0.20
    wai_item_sd: float = 0.45
    oq_item_sd: float = 0.65

    def to_dict(self) -> dict:
        return asdict(self)

    def implied(self) -> dict:
        """True values implied by the dynamics: the RI-CLPM's lag-1 coefficients and the error
        variance of the scale scores.

        Substituting the outcome equation into the alliance equation gives the bivariate lag-1
        system an RI-CLPM estimates (outcome at ``s`` on alliance at ``s - 1``; alliance at ``s``
        on outcome at ``s - 1``), with ``e_s - reverse_change_effect * eps_s`` as the alliance
        residual (it correlates with the outcome residual within the session). Exact when the
        client slopes are 0 and ``reverse_effect`` is 0.

        Examples
        --------
        >>> t = SimulationTruth(alliance_inertia=0.3, outcome_inertia=0.3,
        ...                     reverse_change_effect=0.01)
        >>> t.implied()["alliance -> outcome"], round(t.implied()["alliance -> alliance"], 3)
        (-6.0, 0.36)
        """
        g = self.reverse_change_effect
        return {
            "alliance -> outcome": self.within_effect,
            "outcome -> alliance": g * (1.0 - self.outcome_inertia),
            "alliance -> alliance": self.alliance_inertia - g * self.within_effect,
            "outcome -> outcome": self.outcome_inertia,
            "long_run": self.within_effect / (1.0 - self.outcome_inertia),
            # item mean of 12 WAI-SR items over 3 facets; sum of 45 OQ items (before rounding)
            "alliance_score_error_variance": self.wai_facet_sd**2 / 3 + self.wai_item_sd**2 / 12,
            "outcome_score_error_variance": OQ_ITEMS * self.oq_item_sd**2,
        }


def _client_labels(n: int) -> np.ndarray:
    width = max(4, len(str(n)))
    return np.array([f"CL-{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _therapist_labels(n: int) -> np.ndarray:
    width = max(2, len(str(n)))
    return np.array([f"TH-{j:0{width}d}" for j in range(1, n + 1)], dtype=object)


def _latent_panel(
    rng: np.random.Generator,
    truth: SimulationTruth,
    n_therapists: int,
    n_clients: int,
    max_sessions: int,
    dropout: bool,
) -> pd.DataFrame:
    """Generate the latent scores session by session (vectorised over clients)."""
    therapist_of = rng.integers(0, n_therapists, size=n_clients)
    # every therapist sees at least one client
    therapist_of[:n_therapists] = np.arange(n_therapists)
    rng.shuffle(therapist_of)
    t_eff = rng.normal(0.0, truth.sd_therapist, n_therapists)
    t_rater = rng.normal(0.0, truth.sd_therapist_rater, n_therapists)

    cov = np.array(
        [
            [
                truth.sd_client_intercept**2,
                truth.corr_intercept_slope * truth.sd_client_intercept * truth.sd_client_slope,
            ],
            [
                truth.corr_intercept_slope * truth.sd_client_intercept * truth.sd_client_slope,
                truth.sd_client_slope**2,
            ],
        ]
    )
    u = rng.multivariate_normal(np.zeros(2), cov, size=n_clients)
    w0 = rng.normal(0.0, truth.sd_outcome_intercept, n_clients)
    w1 = rng.normal(0.0, truth.sd_outcome_slope, n_clients)
    trait = u[:, 0] + t_eff[therapist_of]

    n_sess = max_sessions + 1  # session 0 = intake
    alliance = np.full((n_clients, n_sess), np.nan)
    alliance_th = np.full((n_clients, n_sess), np.nan)
    outcome = np.full((n_clients, n_sess), np.nan)
    state = np.zeros(n_clients)  # alliance residual of the previous session
    active = np.ones(n_clients, dtype=bool)
    prev_improvement = np.zeros(n_clients)
    # within-client dynamics (0 by default: then every value is bit-identical to the static model)
    dynamic = bool(truth.alliance_inertia or truth.outcome_inertia or truth.reverse_change_effect)
    y_dev = np.zeros(n_clients)  # outcome's within-client deviation at the previous session
    for s in range(n_sess):
        mean_out = (
            truth.outcome_intercept
            + w0
            + (truth.outcome_slope + w1) * s
            + truth.between_effect * trait
            + (truth.within_effect * state if s >= 2 else 0.0)
        )
        eps = rng.normal(0.0, truth.sd_outcome_residual, n_clients)
        out_s = mean_out + eps
        if dynamic:
            y_dev_prev = y_dev
            y_dev = truth.outcome_inertia * y_dev_prev + eps
            if s >= 2:
                y_dev = y_dev + truth.within_effect * state
            out_s = out_s + truth.outcome_inertia * y_dev_prev
        outcome[active, s] = out_s[active]
        if s >= 1:
            resid = rng.normal(0.0, truth.sd_residual, n_clients)
            resid = resid + truth.reverse_effect * prev_improvement / 10.0
            if dynamic:
                resid = (
                    resid
                    + truth.alliance_inertia * state
                    + truth.reverse_change_effect * (y_dev_prev - y_dev)
                )
            systematic = truth.alliance_intercept + trait + (truth.alliance_slope + u[:, 1]) * s
            a_s = systematic + resid
            alliance[active, s] = a_s[active]
            th_s = (
                truth.therapist_rating_offset
                + truth.therapist_rating_weight * systematic
                + t_rater[therapist_of]
                + rng.normal(0.0, truth.sd_therapist_rating_residual, n_clients)
            )
            alliance_th[active, s] = th_s[active]
            state = resid
            prev_improvement = outcome[:, s - 1] - out_s
        if dropout and s >= 2:
            logit = truth.dropout_base + truth.dropout_alliance * (
                trait / truth.sd_client_intercept
            )
            if truth.dropout_outcome:
                course = truth.outcome_intercept + truth.outcome_slope * s
                above = np.nan_to_num((outcome[:, s] - course) / truth.sd_outcome_intercept)
                logit = logit + truth.dropout_outcome * above
            leave = rng.random(n_clients) < 1.0 / (1.0 + np.exp(-logit))
            active &= ~leave

    sessions = np.tile(np.arange(n_sess), n_clients)
    client = np.repeat(np.arange(n_clients), n_sess)
    frame = pd.DataFrame(
        {
            "client": client,
            "therapist": therapist_of[client],
            "session": sessions,
            "alliance": alliance.ravel(),
            "alliance_therapist": alliance_th.ravel(),
            "outcome": outcome.ravel(),
        }
    )
    return frame[frame["outcome"].notna()].reset_index(drop=True)


def _wai_sr_items(
    rng: np.random.Generator, latent: np.ndarray, facet_sd: float = 0.20, item_sd: float = 0.45
) -> np.ndarray:
    """Twelve 1-5 WAI-SR items around a latent item-mean score (subscales share a facet)."""
    n = latent.shape[0]
    facet = {name: rng.normal(0.0, facet_sd, n) for name in WAI_SR_SUBSCALES}
    items = np.empty((n, WAI_SR_ITEMS))
    for name, numbers in WAI_SR_SUBSCALES.items():
        for k in numbers:
            items[:, k - 1] = latent + facet[name] + rng.normal(0.0, item_sd, n)
    return np.clip(np.rint(items), 1, 5)


def _oq_items(rng: np.random.Generator, total: np.ndarray, item_sd: float = 0.65) -> np.ndarray:
    """Forty-five 0-4 OQ-45.2 items whose keyed sum tracks a latent total; reverse keys applied."""
    n = total.shape[0]
    item_mean = np.clip(total, 0, 180) / OQ_ITEMS
    difficulty = np.linspace(-0.6, 0.6, OQ_ITEMS)
    keyed = item_mean[:, None] + difficulty[None, :] + rng.normal(0.0, item_sd, (n, OQ_ITEMS))
    keyed = np.clip(np.rint(keyed), 0, 4)
    raw = keyed.copy()
    rev = np.array(OQ_REVERSED) - 1
    raw[:, rev] = 4 - keyed[:, rev]
    return raw


def simulate_study(
    *,
    n_therapists: int = 20,
    n_clients: int = 300,
    max_sessions: int = 16,
    seed: int = DEMO_SEED,
    output: str = "items",
    truth: SimulationTruth | None = None,
    therapist_ratings: bool = True,
    dropout: bool = True,
    missing_item_rate: float = 0.015,
    missing_code_rate: float = 0.004,
    n_typos: int = 6,
    n_duplicates: int = 1,
    start_date: str = "2025-01-06",
    enrolment_days: int = 400,
    response=None,
) -> pd.DataFrame:
    """Simulate a session-by-session alliance study with known true values.

    Parameters
    ----------
    n_therapists, n_clients : int
        Therapists, and clients allocated to them at random (every therapist has at least one).
    max_sessions : int
        Treatment sessions after intake (session 0 holds the intake outcome only).
    seed : int
        Seed of the NumPy generator; the same seed gives the same data.
    output : {"items", "scores"}
        ``"items"`` gives practice-like item data (WAI-SR 1-5 items rated by client and therapist,
        OQ-45.2 0-4 items with its reverse keys) including item-level missingness, SPSS missing
        codes (-99, 999), out-of-range typos and duplicated rows. ``"scores"`` gives the latent
        continuous scores (``alliance``, ``alliance_therapist``, ``outcome``) with no data errors,
        so the true values hold exactly.
    truth : SimulationTruth, optional
        The generating parameters (defaults: :class:`SimulationTruth`).
    therapist_ratings : bool
        Add therapist-rated WAI-SR rows (``rater = "therapist"``) for every session.
    dropout : bool
        Clients leave treatment with a per-session hazard that is higher for a weaker alliance
        (missing at random given the alliance).
    missing_item_rate, missing_code_rate : float
        Share of item cells left blank, and share coded -99 (SPSS-style user-missing code).
    n_typos, n_duplicates : int
        Out-of-range item values (e.g. 44 on a 1-5 item, 999) and duplicated rows.
    start_date, enrolment_days : str, int
        Clients start on a random day within ``enrolment_days`` of ``start_date`` and attend weekly.
    response : ResponseMixture or dict, optional
        Off by default. Regenerates the outcome from a responder / non-responder growth mixture
        (``alliance_lib._simulate_response``) and adds each client's true class, intercept and
        slope to ``df.attrs["clients"]``, so the ideal predictor of failure is known.

    Returns
    -------
    DataFrame
        The canonical long table: ``client_id``, ``therapist_id``, ``session``, ``rater``, ``date``,
        then items ``wai_sr_1 … wai_sr_12`` and ``oq_1 … oq_45`` (``output="items"``) or latent
        scores (``output="scores"``). ``df.attrs["truth"]`` holds the true parameters,
        ``df.attrs["truth_implied"]`` the values they imply (:meth:`SimulationTruth.implied`:
        the RI-CLPM's lag-1 coefficients, the long-run effect, scale-score error variances) and
        ``df.attrs["seed"]`` the seed.

    Notes
    -----
    The model is written out in :class:`SimulationTruth`. The outcome depends on the previous
    session's alliance residual (its within-client, state-like part; Falkenström et al. 2017) and
    on the client's alliance level (between-client, trait-like part; Zilcha-Mano 2017). Items are
    rounded and clipped to the scale, so item-level scores carry ceiling and rounding effects much
    as real WAI-SR data do.

    References
    ----------
    Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short version
    of the Working Alliance Inventory. *Psychotherapy Research, 16*(1), 12-25.
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic models of
    individual change in psychotherapy process research. *JCCP, 85*(6), 537-549.

    Examples
    --------
    >>> df = simulate_study(n_therapists=4, n_clients=20, seed=1, output="scores")
    >>> sorted(df.columns)[:3]
    ['alliance', 'alliance_therapist', 'client_id']
    >>> df.attrs["truth"]["alliance_slope"]
    0.03
    """
    if output not in ("items", "scores"):
        raise DefinitionError(f"output must be 'items' or 'scores', not {output!r}")
    if n_therapists < 1 or n_clients < n_therapists:
        raise DefinitionError(
            "need at least one therapist and at least as many clients as therapists"
        )
    truth = truth or SimulationTruth()
    rng = np.random.default_rng(seed)
    panel = _latent_panel(rng, truth, n_therapists, n_clients, max_sessions, dropout)
    response_attrs = {}
    if response is not None:  # outcome monitoring: known per-client truth (own random stream)
        from alliance_lib._simulate_response import apply_response

        panel, response_attrs = apply_response(panel, response, seed=seed)

    clients = _client_labels(n_clients)
    therapists = _therapist_labels(n_therapists)
    start = pd.Timestamp(start_date) + pd.to_timedelta(
        rng.integers(0, enrolment_days, n_clients), unit="D"
    )
    dates = (
        start.values[panel["client"].to_numpy()]
        + pd.to_timedelta(7 * panel["session"].to_numpy(), unit="D").values
    )
    base = pd.DataFrame(
        {
            "client_id": clients[panel["client"].to_numpy()],
            "therapist_id": therapists[panel["therapist"].to_numpy()],
            "session": panel["session"].to_numpy(),
            "rater": "client",
            "date": pd.DatetimeIndex(dates).strftime("%Y-%m-%d"),
        }
    )
    attrs = {
        "truth": truth.to_dict(),
        "truth_implied": truth.implied(),
        "seed": seed,
        **response_attrs,
    }

    if output == "scores":
        out = base.assign(
            alliance=panel["alliance"].to_numpy(),
            alliance_therapist=panel["alliance_therapist"].to_numpy(),
            outcome=panel["outcome"].to_numpy(),
        )
        out.attrs.update(attrs)
        return out

    wai_cols = [f"wai_sr_{k}" for k in range(1, WAI_SR_ITEMS + 1)]
    oq_cols = [f"oq_{k}" for k in range(1, OQ_ITEMS + 1)]
    n = len(panel)
    has_alliance = panel["alliance"].notna().to_numpy()
    wai = np.full((n, WAI_SR_ITEMS), np.nan)
    wai[has_alliance] = _wai_sr_items(
        rng, panel["alliance"].to_numpy()[has_alliance], truth.wai_facet_sd, truth.wai_item_sd
    )
    oq = _oq_items(rng, panel["outcome"].to_numpy(), truth.oq_item_sd)
    client_rows = pd.concat(
        [base, pd.DataFrame(wai, columns=wai_cols), pd.DataFrame(oq, columns=oq_cols)], axis=1
    )
    frames = [client_rows]
    if therapist_ratings:
        th_latent = panel["alliance_therapist"].to_numpy()[has_alliance]
        th_items = _wai_sr_items(rng, th_latent, truth.wai_facet_sd, truth.wai_item_sd)
        th_rows = base[has_alliance].reset_index(drop=True).assign(rater="therapist")
        th_rows = pd.concat([th_rows, pd.DataFrame(th_items, columns=wai_cols)], axis=1)
        th_rows[oq_cols] = np.nan
        frames.append(th_rows)
    data = pd.concat(frames, ignore_index=True)
    data = data.sort_values(["date", "client_id", "session", "rater"], kind="stable")
    data = data.reset_index(drop=True)

    item_cols = wai_cols + oq_cols
    values = data[item_cols].to_numpy(dtype=float)
    present = ~np.isnan(values)
    u = rng.random(values.shape)
    values[present & (u < missing_item_rate)] = np.nan
    values[present & (u >= missing_item_rate) & (u < missing_item_rate + missing_code_rate)] = -99
    if n_typos:
        # out-of-range typos in the earliest part of the data so every wave carries some
        early = np.flatnonzero(present.any(axis=1))[: max(n_typos * 40, 1)]
        rows = rng.choice(early, size=n_typos, replace=False)
        for k, r in enumerate(rows):
            candidates = np.flatnonzero(~np.isnan(values[r]) & (values[r] != -99))
            c = candidates[rng.integers(0, len(candidates))]
            is_wai = c < WAI_SR_ITEMS
            typo = (44.0, 6.0, 999.0)[k % 3] if is_wai else (5.0, 33.0, 999.0)[k % 3]
            values[r, c] = typo
    data[item_cols] = pd.DataFrame(values, columns=item_cols).astype("Int64")
    if n_duplicates:
        dup_rows = rng.choice(np.arange(min(len(data), 200)), size=n_duplicates, replace=False)
        data = pd.concat([data, data.iloc[dup_rows]], ignore_index=True)
        data = data.sort_values(["date", "client_id", "session", "rater"], kind="stable")
        data = data.reset_index(drop=True)
    data.attrs.update(attrs)
    return data


def write_demo_study(
    folder: str | Path,
    *,
    seed: int = DEMO_SEED,
    wave_fractions: tuple[float, ...] = (0.45, 0.72, 1.0),
) -> list[Path]:
    """Write the bundled demo study: one cumulative CSV per wave, ``study.yaml`` and a README.

    Wave *k* holds every row dated up to the *k*-th cut date (a fraction of the study's span), so
    ``wave1.csv`` ⊂ ``wave2.csv`` ⊂ ``wave3.csv`` in clients and sessions. The files are
    byte-identical for the same seed and library version.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_demo_study(tempfile.mkdtemp())
    >>> [p.name for p in paths]
    ['wave1.csv', 'wave2.csv', 'wave3.csv', 'study.yaml']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = simulate_study(seed=seed)
    dates = pd.to_datetime(data["date"])
    first, last = dates.min(), dates.max()
    written = []
    for k, frac in enumerate(wave_fractions, start=1):
        cut = first + (last - first) * frac
        wave = data[dates <= cut]
        path = folder / f"wave{k}.csv"
        wave.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    study = folder / "study.yaml"
    waves = ", ".join(f"{k}: wave{k}.csv" for k in range(1, len(wave_fractions) + 1))
    study.write_text(_DEMO_STUDY_YAML.format(waves=waves), encoding="utf-8")
    written.append(study)
    return written


_DEMO_STUDY_YAML = """\
# Demo alliance study: synthetic data made by alliance_lib.simulate.write_demo_study
# (regenerate with `make demo-data`). No real clients.
study: Demo alliance study
slug: demo
data: {{{waves}}}
columns: {{client: client_id, therapist: therapist_id, session: session, rater: rater, date: date}}
missing_codes: [-99, 999]
instruments: {{alliance: wai-sr, outcome: oq-45.2}}
therapist_alliance: true
analysis: {{trajectory_shape: linear, early_alliance_session: 3}}
privacy: {{salt: demo-salt-not-secret, small_cell: 5}}
seed: 2026
"""
