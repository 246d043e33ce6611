"""Alliance-outcome models: within/between decomposition, lagged models, therapist effects.

Three questions, one function each:

* :func:`decompose` splits a session-level score into a client's stable level (between-client,
  "trait-like") and the session's deviation from it (within-client, "state-like"), optionally
  after removing each client's own linear time trend (Curran & Bauer 2011).
* :func:`fit_alliance_outcome` describes how a session's alliance goes with the outcome at the
  next session, separately for the within- and the between-client part (Falkenström,
  Granström & Holmqvist 2013). It is a *descriptive* multilevel model: under inertia and
  reverse paths its within coefficient is biased; the within-client effect by current standards
  is :func:`alliance_lib.fit_cross_lagged` (RI-CLPM / ML-SEM by FIML).
* :func:`therapist_effects` asks whether therapists who form better alliances have better
  outcomes, or clients who form better alliances than their therapist's other clients
  (Baldwin, Wampold & Imel 2007).

The mixed models are fitted with :func:`alliance_lib.trajectories.fit_mixed` (lme4-equivalent,
Satterthwaite df as in lmerTest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance_lib.errors import DefinitionError
from alliance_lib.frame import drop_incomplete, model_frame
from alliance_lib.frame import plain as _plain
from alliance_lib.trajectories import MixedFit, ModelError, fit_mixed

__all__ = [
    "AllianceOutcomeFit",
    "EarlyAllianceFit",
    "decompose",
    "early_alliance_outcome",
    "fit_alliance_outcome",
    "therapist_effects",
]


@dataclass(frozen=True, eq=False)
class AllianceOutcomeFit:
    """Result of :func:`fit_alliance_outcome` or :func:`therapist_effects`.

    Attributes
    ----------
    fit : MixedFit
        The fitted mixed model (lme4-like results: ``.random``, ``.loglik``, ``.summary()``...).
    data : DataFrame
        The analysed frame, one row per model observation (its index holds the row labels of
        the input rows the observations came from; for :func:`therapist_effects` one row
        per client).
    model : {"lagged", "therapist"}
        Which function made the fit.
    settings : dict
        The options the model was fitted with (variables, lag, detrend, ...).
    n_dropped : dict
        Candidate observations not analysed, by reason.
    description : str
        What the model is (for :func:`fit_alliance_outcome`: a descriptive multilevel model,
        not an estimate of the within-client causal effect).
    warnings : list of str
        Diagnostics about the model itself, e.g. a lagged outcome beside a client random
        intercept (dynamic-panel bias) or a singular fit.
    """

    fit: MixedFit
    data: pd.DataFrame
    model: str
    settings: dict = field(default_factory=dict)
    n_dropped: dict = field(default_factory=dict)
    description: str = ""
    warnings: list = field(default_factory=list)

    @property
    def fixed(self) -> pd.DataFrame:
        """Fixed effects (``MixedFit.fixed``): estimate, se, df, t, p, ci_low, ci_high."""
        return self.fit.fixed

    @property
    def random(self) -> pd.DataFrame:
        """Variance components in lme4's ``as.data.frame(VarCorr())`` layout."""
        return self.fit.random

    @property
    def nobs(self) -> int:
        """Number of analysed observations."""
        return int(self.fit.nobs)

    @property
    def n_clients(self) -> int:
        """Number of clients contributing analysed observations."""
        return int(self.data[self.settings["client"]].nunique())

    @property
    def n_therapists(self) -> int | None:
        """Number of therapists (None when the model has no therapist level)."""
        th = self.settings.get("therapist")
        return None if th is None else int(self.data[th].nunique())

    def summary(self) -> str:
        """The lme4-style summary of the underlying :class:`MixedFit`."""
        return self.fit.summary()

    def to_dict(self) -> dict:
        """JSON-ready summary: model, settings, counts and the mixed model's ``to_dict()``."""
        return {
            "model": self.model,
            "settings": {
                k: (v if v is None or isinstance(v, bool | int | float) else str(v))
                for k, v in self.settings.items()
            },
            "nobs": self.nobs,
            "n_clients": self.n_clients,
            "n_therapists": self.n_therapists,
            "n_dropped": {k: int(v) for k, v in self.n_dropped.items()},
            "description": self.description,
            "warnings": list(self.warnings),
            "fit": self.fit.to_dict(),
        }

    def __repr__(self) -> str:
        return (
            f"<AllianceOutcomeFit {self.model} {self.fit.formula()!r} nobs={self.nobs} "
            f"n_clients={self.n_clients}>"
        )


# ---------------------------------------------------------------------------------- helpers
def _check_unique_sessions(df: pd.DataFrame, client: str, session: str) -> None:
    dup = df.duplicated([client, session], keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        who, when, row = (
            _plain(df[client].iloc[i]),
            _plain(df[session].iloc[i]),
            _plain(df.index[i]),
        )
        raise ModelError(
            f"client {who!r} has more than one row for {session} {when!r} (row {row!r}); "
            "keep one row per client and session, e.g. one rater's rows "
            "(df[df['rater'] == 'client'])",
            column=session,
            row=row,
            value=when,
        )


# ---------------------------------------------------------------------------------- decompose
def decompose(
    df: pd.DataFrame,
    var: str,
    *,
    client: str = "client_id",
    session: str = "session",
    detrend: bool = False,
) -> pd.DataFrame:
    """Split a repeated score into its between-client and within-client parts.

    Parameters
    ----------
    df : DataFrame
        Long table, one row per client and session.
    var : str
        The score to split (e.g. ``"wai_sr_total"``); missing values are allowed.
    client : str
        Client id column.
    session : str
        Session column (used only with ``detrend=True``; must be numeric where ``var`` is
        observed).
    detrend : bool
        If True the within part is the residual from each client's own least-squares line of
        ``var`` on ``session`` instead of the deviation from the client mean.

    Returns
    -------
    DataFrame
        A copy of ``df`` with two added float columns:

        ``{var}_between``
            The client's mean of ``var`` minus the grand mean of the client means (every
            client weighs the same, however many sessions it has); the same value on all
            rows of a client, also on rows where ``var`` is missing.
        ``{var}_within``
            The session's deviation from its client's mean (or, with ``detrend=True``, from
            its client's fitted line); NaN where ``var`` is missing.

    Raises
    ------
    ModelError
        A column is absent, ``var``/``session`` is not numeric, a client id is missing, or
        (``detrend=True``) a session is missing where ``var`` is observed.

    Notes
    -----
    For client *i* with observed scores :math:`x_{it}` at sessions :math:`s_{it}`::

        mean_i    = mean_t x_it                        (over observed sessions)
        between_i = mean_i - mean_k(mean_k)            (grand mean of client means)
        within_it = x_it - mean_i                      (detrend=False)
        within_it = x_it - mean_i - b_i (s_it - sbar_i),
                    b_i = sum (s - sbar_i)(x - mean_i) / sum (s - sbar_i)^2   (detrend=True)

    Person-mean centring removes all stable between-client differences from the within part,
    but if the score trends over sessions the within part still carries each client's trend,
    which confounds a within-client effect with time (Curran & Bauer 2011; Wang & Maxwell
    2015). Detrending uses each client's own OLS line; the between part stays the client
    mean (add the client's slope as a level-2 predictor yourself if wanted).

    Edge cases: a client with a single observed score has within = 0 without detrending;
    with ``detrend=True`` a client observed at fewer than two distinct sessions has within =
    NaN (no line can be fitted), and a client observed at exactly two sessions has within = 0
    (the line fits exactly), so such clients carry no within-client information.

    The client mean uses every observed session, including later ones: in a lagged model the
    between part therefore "knows" the future (Falkenström et al. 2017); this is the usual
    practice, but say so when interpreting prospective effects.

    References
    ----------
    Curran, P. J., & Bauer, D. J. (2011). The disaggregation of within-person and
    between-person effects in longitudinal models of change. *Annual Review of Psychology,
    62*, 583-619.
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. *JCCP, 85*(6), 537-549.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"client_id": ["a", "a", "a", "b"], "session": [1, 2, 3, 1],
    ...                   "wai": [3.0, 4.0, 8.0, 2.0]})
    >>> out = decompose(d, "wai")
    >>> out["wai_between"].tolist()   # client means 5 and 2, grand mean of means 3.5
    [1.5, 1.5, 1.5, -1.5]
    >>> out["wai_within"].tolist()
    [-2.0, -1.0, 3.0, 0.0]
    >>> [round(v, 6) for v in decompose(d, "wai", detrend=True)["wai_within"]]
    [0.5, -1.0, 0.5, nan]
    """
    mf = model_frame(
        df,
        {"var": var, "client": client, "session": session if detrend else None},
        numeric=["var", "session"],
        ids=["client"],
        required=["client"],
        what="decompose",
    )
    x, codes = mf.values("var"), mf.codes["client"]
    xs = pd.Series(x)
    mean_i = xs.groupby(codes).transform("mean").to_numpy()
    grand = float(xs.groupby(codes).mean().mean())  # grand mean of client means
    between = mean_i - grand
    dx = x - mean_i
    if not detrend:
        within = dx
    else:
        s = mf.values("session")
        observed = ~np.isnan(x)
        if np.isnan(s[observed]).any():
            row = _plain(df.index[int(np.flatnonzero(observed & np.isnan(s))[0])])
            raise ModelError(
                f"column {session!r} is missing in row {row!r} where {var!r} is "
                "observed; detrending needs the session of every observed score",
                column=session,
                row=row,
                value=None,
            )
        s_obs = pd.Series(np.where(observed, s, np.nan))
        ds = (s_obs - s_obs.groupby(codes).transform("mean")).to_numpy()
        prods = pd.DataFrame({"sxx": ds * ds, "sxy": ds * dx})
        sums = prods.groupby(codes).transform("sum")  # NaN rows add nothing
        sxx, sxy = sums["sxx"].to_numpy(), sums["sxy"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
        within = dx - slope * ds
    return df.assign(**{f"{var}_between": between, f"{var}_within": within})


# ---------------------------------------------------------------------------------- lagged model
def _lagged_frame(
    df, alliance, outcome, *, client, session, therapist, lag, detrend, control_prior_outcome
) -> tuple[pd.DataFrame, dict]:
    """The analysed frame of :func:`fit_alliance_outcome` and the counts of dropped rows."""
    ids = [client] + ([therapist] if therapist is not None else [])
    mf = model_frame(
        df,
        {
            "client": client,
            "therapist": therapist,
            "session": session,
            "alliance": alliance,
            "outcome": outcome,
        },
        numeric=["session", "alliance", "outcome"],
        ids=["client", "therapist"],
        required=["client", "session"],
        what="fit_alliance_outcome",
    )
    work = mf.data
    _check_unique_sessions(work, client, session)
    y = mf.values("outcome")
    dec = decompose(work, alliance, client=client, session=session, detrend=detrend)

    within, between = f"{alliance}_within", f"{alliance}_between"
    prior, response = f"{outcome}_prior", f"{outcome}_next"
    dec[prior] = y
    # the outcome recorded at session t + lag, looked up on the exact (client, session) grid
    ahead = pd.DataFrame(
        {client: work[client].to_numpy(), session: work[session].to_numpy() - lag, response: y}
    )
    ahead = ahead[~np.isnan(y)]
    merged = (
        dec.rename_axis("__row__")
        .reset_index()
        .merge(ahead, on=[client, session], how="left", validate="one_to_one")
        .set_index("__row__")
        .rename_axis(df.index.name)
    )
    steps = {"alliance_missing": [within], "no_outcome_at_lag": [response]}
    if control_prior_outcome:
        steps["prior_outcome_missing"] = [prior]
    if therapist is not None:
        steps["therapist_missing"] = [therapist]
    keep, n_dropped = drop_incomplete(merged, steps)
    data = merged.loc[keep, [*ids, session, alliance, within, between, prior, response]]
    if not control_prior_outcome:
        data = data.drop(columns=prior)
    return data, n_dropped


def fit_alliance_outcome(
    df: pd.DataFrame,
    alliance: str,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    therapist: str | None = None,
    lag: int = 1,
    detrend: bool = False,
    control_prior_outcome: bool = True,
    method: str = "reml",
) -> AllianceOutcomeFit:
    """Descriptive multilevel model: how a session's alliance goes with the outcome ``lag``
    sessions later.

    This is *not* an unbiased estimate of the within-client alliance -> outcome effect when both
    series have inertia and symptom change feeds back into the alliance (the realistic case):
    use :func:`alliance_lib.fit_cross_lagged` for that, and keep this model as a descriptive line
    (see Notes for the size of the bias).

    Parameters
    ----------
    df : DataFrame
        Long table, one row per client and session, holding both scores (select one rater's
        rows first if the table has several).
    alliance, outcome : str
        Alliance and outcome score columns.
    client, session : str
        Client id and (integer) session columns.
    therapist : str, optional
        Therapist id column; adds a therapist random intercept (clients nested in therapists).
    lag : int
        The outcome is taken at session ``t + lag`` of the same client, for alliance at ``t``.
    detrend : bool
        Passed to :func:`decompose`: within part as deviation from the client's own trend line.
    control_prior_outcome : bool
        Add the outcome at session ``t`` (term ``{outcome}_prior``) as a predictor.
    method : {"reml", "ml"}

    Returns
    -------
    AllianceOutcomeFit
        ``.fixed`` has the terms ``Intercept``, ``{alliance}_within``, ``{alliance}_between``,
        ``{outcome}_prior`` (if controlled) and ``{session}``; ``.data`` is the analysed
        lagged frame with the response ``{outcome}_next`` (outcome at ``t + lag``);
        ``.n_dropped`` counts alliance rows not analysed; ``.description`` says it is a
        descriptive multilevel model and ``.warnings`` holds the dynamic-panel warning (a
        lagged outcome beside a client random intercept) and a singular-fit warning.

    Raises
    ------
    ModelError
        Missing columns, non-numeric scores or sessions, a missing session or client id,
        several rows for one client and session, or an unusable model.

    Notes
    -----
    For client *i* (therapist *j*) and session *t*, with the alliance split by
    :func:`decompose` over all of the client's observed sessions::

        y_i,t+lag = b0 + b_w within_it + b_b between_i + b_y y_it + b_s t + u_i (+ v_j) + e_it

    (lme4: ``lmer(y_next ~ a_within + a_between + y_prior + session + (1 | client)
    [+ (1 | therapist)])``). ``b_w`` is the within-client (state-like) effect: does a client
    do better after sessions in which their alliance is above their own usual level? ``b_b``
    is the between-client (trait-like) effect. Pairs are formed on the session grid: the
    outcome must be recorded at exactly session ``t + lag`` of the same client; a missing
    session is never bridged, so such pairs are dropped (``n_dropped["no_outcome_at_lag"]``).

    **A descriptive model, biased under dynamics.** With ``control_prior_outcome=True`` the
    model holds a lagged dependent variable *and* a client random intercept: the prior outcome
    carries the client's stable level, which the model assumes uncorrelated with it (the
    dynamic-panel or Nickell 1981 problem), so ``.warnings`` says so. When both series have
    inertia and symptom change feeds back into the alliance, every option set of this model is
    biased (Falkenström et al. 2022: "severely biased ... some significant in the wrong
    direction"). In a Monte Carlo study (300 clients, 8-12 sessions, inertia 0.3 in both series,
    symptoms raising the same-session alliance, correlated client levels, MAR dropout; true
    within effect -6; 100 data sets; ``alliance-outcome-frontier.md``) the within coefficient
    averaged -1.90 with the defaults (bias +68 %, 95 % CI coverage 8 %), +0.46 with
    ``detrend=True`` (wrong sign), -6.99 with ``control_prior_outcome=False`` (-16 %, coverage
    40 %) and -5.30 with both (+12 %, 73 %), against -6.07 (-1.2 %, coverage 96 %) for the
    RI-CLPM by FIML (:func:`alliance_lib.fit_cross_lagged`). The earlier "-6.46 vs -6" came
    from data with no autoregression and no reverse path, where this model happens to work.

    **Two REML minima.** With the prior outcome, the REML criterion of this model often has
    two minima. The *global* one (found by this library, which searches the boundary) is
    singular in most such data sets: client variance 0, prior-outcome coefficient about 0.9
    (it stands in for the client's level), alliance effect near 0. The *interior* one, where
    lme4 stops from its default start (theta = 1), has a client variance > 0, prior-outcome
    coefficient about 0.35 and an alliance effect about -4.4. In that study the global minimum
    was the singular one in 60 of 100 data sets, so this function and lme4 disagreed there.
    Both are biased: the singular mode because the residual then holds ``-(0.9 - rho)`` times
    the outcome state, which the reverse path correlates with the alliance state; the interior
    mode because of the Nickell bias above. A singular fit is reported in ``.warnings``.

    **Reverse causation.** A within-client association does not show that alliance drives
    outcome: symptom improvement also raises the next alliance rating (Falkenström,
    Granström & Holmqvist 2013; Zilcha-Mano et al. 2014). The lag orders the measurements
    in time, and controlling the prior outcome removes the part of the association carried
    by the current symptom level, but unmeasured time-varying causes remain. Fit the reverse
    model (swap ``alliance`` and ``outcome``) before making causal claims.

    The client means use all observed sessions, including later ones (see
    :func:`decompose`).

    References
    ----------
    Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
    symptomatic improvement session by session. *Journal of Counseling Psychology, 60*(3),
    317-328.
    Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic
    models of individual change in psychotherapy process research. *JCCP, 85*(6), 537-549.
    Falkenström, F., Solomonov, N., & Rubel, J. A. (2022). How to model and interpret
    longitudinal associations between alliance and outcome. *JCCP, 90*(5), 446-458.
    Curran, P. J., & Bauer, D. J. (2011). *Annual Review of Psychology, 62*, 583-619.
    Nickell, S. (1981). Biases in dynamic models with fixed effects. *Econometrica, 49*(6),
    1417-1426.
    Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged
    panel models with fixed effects. *Socius, 3*.
    Arellano, M., & Bond, S. (1991). Some tests of specification for panel data. *Review of
    Economic Studies, 58*(2), 277-297.
    Zilcha-Mano, S., Dinger, U., McCarthy, K. S., & Barber, J. P. (2014). Does alliance predict
    symptoms throughout treatment, or is it the other way around? *JCCP, 82*(6), 931-935.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=5, n_clients=60, seed=3, output="scores")
    >>> res = fit_alliance_outcome(df, "alliance", "outcome", detrend=True)
    >>> list(res.fixed.index)
    ['Intercept', 'alliance_within', 'alliance_between', 'outcome_prior', 'session']
    >>> res.n_clients, res.nobs == len(res.data)
    (60, True)
    """
    if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 1:
        raise DefinitionError(f"lag must be a positive integer, not {lag!r}")
    data, n_dropped = _lagged_frame(
        df,
        alliance,
        outcome,
        client=client,
        session=session,
        therapist=therapist,
        lag=int(lag),
        detrend=detrend,
        control_prior_outcome=control_prior_outcome,
    )
    within, between = f"{alliance}_within", f"{alliance}_between"
    prior, response = f"{outcome}_prior", f"{outcome}_next"
    fixed = [within, between] + ([prior] if control_prior_outcome else []) + [session]
    fit = fit_mixed(data, response, fixed, client=client, therapist=therapist, method=method)
    settings = {
        "alliance": alliance,
        "outcome": outcome,
        "client": client,
        "session": session,
        "therapist": therapist,
        "lag": int(lag),
        "detrend": bool(detrend),
        "control_prior_outcome": bool(control_prior_outcome),
        "method": method,
    }
    notes = []
    if control_prior_outcome:
        notes.append(
            f"{prior} (a lagged outcome) sits beside a client random intercept: the "
            "dynamic-panel (Nickell) bias applies, and with inertia and reverse paths the "
            "within effect is biased (often strongly); this is a descriptive model, estimate "
            "the within-client effect with fit_cross_lagged (RI-CLPM)"
        )
    if fit.singular:
        notes.append(
            "singular fit (a variance at 0): with a prior outcome this is usually the global "
            "REML minimum where the prior outcome stands in for the client's level; lme4 from "
            "its default start may stop at another minimum"
        )
    return AllianceOutcomeFit(
        fit=fit,
        data=data,
        model="lagged",
        settings=settings,
        n_dropped=n_dropped,
        description=(
            "descriptive multilevel model (person-mean-centred alliance, client random "
            "intercept); biased for the within-client effect under inertia and reverse paths"
        ),
        warnings=notes,
    )


# ---------------------------------------------------------------------------------- therapists
def therapist_effects(
    df: pd.DataFrame,
    alliance: str,
    outcome_post: str,
    outcome_pre: str,
    *,
    therapist: str = "therapist_id",
    client: str = "client_id",
    leave_one_out: bool = False,
    method: str = "reml",
) -> AllianceOutcomeFit:
    """Therapist and client contributions of the alliance to outcome (Baldwin et al. 2007).

    Parameters
    ----------
    df : DataFrame
        One row per client, or several (e.g. one per session). With several rows the
        client's alliance is the mean of its non-missing values (so pass the rows you want to
        average, e.g. sessions 1-3 for early alliance), while ``outcome_post``,
        ``outcome_pre`` and ``therapist`` must be client-level columns: the same (or missing)
        on every row of a client.
    alliance : str
        Alliance score column.
    outcome_post, outcome_pre : str
        Post-treatment outcome and intake (pre-treatment) outcome columns.
    therapist, client : str
        Therapist and client id columns (every client sees one therapist).
    leave_one_out : bool
        Use each client's therapist mean *without* that client (clients whose therapist has no
        other analysed client are then dropped, ``n_dropped["only_client_of_therapist"]``).
    method : {"reml", "ml"}

    Returns
    -------
    AllianceOutcomeFit
        ``.fixed`` terms: ``Intercept``, ``{outcome_pre}``, ``{alliance}_within_therapist``,
        ``{alliance}_therapist_mean``. ``.data`` has one row per analysed client (client id
        column first) with the client's mean alliance, the number of alliance values averaged
        (``n_alliance``), the two alliance parts and both outcomes.

    Raises
    ------
    ModelError
        Missing columns, non-numeric scores, a client seen by several therapists, or a
        client-level column that varies within a client (names client, column and values).

    Notes
    -----
    With client *i* of therapist *j*, client alliance :math:`a_{ij}` and therapist mean
    :math:`\\bar a_j` (mean over the therapist's analysed clients, each client counting
    once)::

        post_ij = g00 + g10 pre_ij + g20 (a_ij - abar_j) + g01 abar_j + u_j + e_ij

    (lme4: ``lmer(post ~ pre + wai_within_th + wai_th_mean + (1 | therapist))``).
    ``g01`` is the therapist-level effect (do therapists with better average alliances have
    better outcomes?), ``g20`` the client-level effect within therapists. The therapist mean
    is not centred, so the intercept is the expected outcome at pre = 0 and therapist mean
    alliance 0. With ``leave_one_out=True`` the therapist mean of client *i* is
    ``(sum_j a - a_ij) / (n_j - 1)``, which keeps a client's own alliance out of the
    therapist-level predictor (with small caseloads the ordinary mean is partly the
    client's own score).

    The model has a single grouping factor (therapist), so it is fitted with
    :func:`~alliance_lib.trajectories.fit_mixed` using the therapist column as its grouping
    factor (``client=therapist``): ``.fit.n_clients`` then counts therapists, while
    ``.n_clients`` of the result counts clients. Clients with a missing alliance, pre or
    post score or therapist are dropped (counted in ``n_dropped``) before the therapist means
    are computed.

    References
    ----------
    Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
    correlation: Exploring the relative importance of therapist and patient variability in
    the alliance. *Journal of Consulting and Clinical Psychology, 75*(6), 842-852.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=10, n_clients=80, seed=5, output="scores")
    >>> pre = df[df["session"] == 0].set_index("client_id")["outcome"]
    >>> last = df.sort_values("session").groupby("client_id")["outcome"].last()
    >>> early = df[df["session"].between(1, 3)].assign(
    ...     pre=lambda d: d["client_id"].map(pre), post=lambda d: d["client_id"].map(last))
    >>> res = therapist_effects(early, "alliance", "post", "pre")
    >>> list(res.fixed.index)
    ['Intercept', 'pre', 'alliance_within_therapist', 'alliance_therapist_mean']
    >>> res.n_clients, res.n_therapists
    (80, 10)
    """
    frame = model_frame(
        df,
        {
            "client": client,
            "therapist": therapist,
            "alliance": alliance,
            "outcome_pre": outcome_pre,
            "outcome_post": outcome_post,
        },
        numeric=["alliance", "outcome_pre", "outcome_post"],
        ids=["client", "therapist"],
        required=["client"],
        what="therapist_effects",
    ).data
    g = frame.groupby(client, sort=False)
    for col in (therapist, outcome_pre, outcome_post):
        varies = g[col].nunique(dropna=True) > 1
        if varies.any():
            who = _plain(varies.index[np.flatnonzero(varies.to_numpy())[0]])
            values = frame.loc[frame[client] == who, col].dropna().unique().tolist()
            what = "is seen by more than one therapist" if col == therapist else "has several"
            raise ModelError(
                f"client {who!r} {what} values in column {col!r}: {values[:5]}; "
                f"{col!r} must be one value per client",
                column=col,
                value=values[0],
            )
    per = pd.DataFrame(
        {
            therapist: g[therapist].first(),
            alliance: g[alliance].mean(),
            "n_alliance": g[alliance].count(),
            outcome_pre: g[outcome_pre].first(),
            outcome_post: g[outcome_post].first(),
        }
    )
    steps = {
        "alliance_missing": alliance,
        "outcome_pre_missing": outcome_pre,
        "outcome_post_missing": outcome_post,
        "therapist_missing": therapist,
    }
    keep, n_dropped = drop_incomplete(per, steps)
    per = per.loc[keep].copy()

    a = per[alliance].to_numpy()
    by_th = per.groupby(therapist, sort=False)[alliance]
    th_sum = by_th.transform("sum").to_numpy()
    th_n = by_th.transform("count").to_numpy().astype(float)
    within, mean_col = f"{alliance}_within_therapist", f"{alliance}_therapist_mean"
    if leave_one_out:
        with np.errstate(invalid="ignore", divide="ignore"):
            th_mean = np.where(th_n > 1, (th_sum - a) / (th_n - 1), np.nan)
    else:
        th_mean = th_sum / th_n
    per[within] = a - th_mean
    per[mean_col] = th_mean
    alone = np.isnan(th_mean)
    n_dropped["only_client_of_therapist"] = int(alone.sum())
    per = per.loc[~alone]
    data = per.reset_index()
    fit = fit_mixed(
        data, outcome_post, [outcome_pre, within, mean_col], client=therapist, method=method
    )
    settings = {
        "alliance": alliance,
        "outcome_post": outcome_post,
        "outcome_pre": outcome_pre,
        "client": client,
        "therapist": therapist,
        "leave_one_out": bool(leave_one_out),
        "method": method,
    }
    return AllianceOutcomeFit(
        fit=fit, data=data, model="therapist", settings=settings, n_dropped=n_dropped
    )


#: One sentence on reverse causation, for reports (the early-alliance regression is observational).
EARLY_ALLIANCE_CAVEAT = (
    "Early symptom improvement can itself raise the early alliance (reverse causation), so the "
    "estimate is adjusted for the change up to that session; it remains an association, not a "
    "causal effect (teaching lesson 03, alliance and outcome)."
)


@dataclass(frozen=True, eq=False)
class EarlyAllianceFit:
    """Later outcome regressed on the early alliance (ordinary least squares, one row per client).

    Attributes
    ----------
    fixed : DataFrame
        Indexed by ``term`` (``Intercept``, ``alliance_early``, ``outcome_intake``,
        ``outcome_change_early``); columns ``estimate, se, df, t, p, ci_low, ci_high``.
    data : DataFrame
        The analysed clients: ``alliance_early``, ``outcome_intake``, ``outcome_early`` (last
        outcome after intake up to the early session), ``outcome_change_early``,
        ``outcome_later`` and ``later_session`` (the last session with an outcome).
    r2 : float
    n_dropped : dict
        Clients not analysed, by first reason.
    settings : dict
    caveat : str
    """

    fixed: pd.DataFrame
    data: pd.DataFrame
    r2: float
    n_dropped: dict
    settings: dict
    caveat: str = EARLY_ALLIANCE_CAVEAT

    @property
    def nobs(self) -> int:
        return len(self.data)

    def to_dict(self) -> dict:
        """JSON-ready summary (no client rows)."""
        fixed = self.fixed.reset_index()
        return {
            "settings": dict(self.settings),
            "nobs": int(self.nobs),
            "r2": float(self.r2),
            "n_dropped": {k: int(v) for k, v in self.n_dropped.items()},
            "fixed": [
                {k: (v if isinstance(v, str) else float(v)) for k, v in r.items()}
                for r in fixed.to_dict(orient="records")
            ],
            "caveat": self.caveat,
        }


def early_alliance_outcome(
    df: pd.DataFrame,
    alliance: str,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    early_session: int = 3,
    intake_session: int = 0,
    ci: float = 0.95,
) -> EarlyAllianceFit:
    """Does the early alliance predict the later outcome beyond the change already made?

    The last observed outcome after the early session is regressed on the alliance at the early
    session, the intake outcome and the symptom change from intake up to the early session
    (Barber et al. 2000; Zilcha-Mano 2017): early improvement raises both the alliance and the
    later outcome, so without it the alliance estimate carries reverse causation.

    Parameters
    ----------
    df : DataFrame
        One row per client x session (e.g. ``WaveData.sessions()``).
    alliance, outcome : str
        Score columns.
    client, session : str
        Id and session columns.
    early_session : int
        The session whose alliance is the predictor.
    intake_session : int
        The session holding the intake (baseline) outcome.
    ci : float
        Confidence level of the intervals (t distribution, n - 4 df).

    Returns
    -------
    EarlyAllianceFit

    Raises
    ------
    ModelError
        Fewer than six clients have all four values.

    Notes
    -----
    ``outcome_later = b0 + b1 alliance_early + b2 outcome_intake + b3 (outcome_early -
    outcome_intake) + e``, with ``outcome_early`` the last outcome observed after intake up to
    the early session and ``outcome_later`` the last outcome observed after it. Ordinary least
    squares, classical standard errors (R: ``lm``; checked against R in the tests).

    References
    ----------
    Barber, J. P., Connolly, M. B., Crits-Christoph, P., Gladis, L., & Siqueland, L. (2000).
    Alliance predicts patients' outcome beyond in-treatment change in symptoms. Journal of
    Consulting and Clinical Psychology, 68(6), 1027-1032.

    Examples
    --------
    >>> from alliance_lib.simulate import simulate_study
    >>> d = simulate_study(n_clients=120, n_therapists=6, seed=4, output="scores")
    >>> fit = early_alliance_outcome(d, "alliance", "outcome", early_session=3)
    >>> list(fit.fixed.index)
    ['Intercept', 'alliance_early', 'outcome_intake', 'outcome_change_early']
    >>> fit.nobs > 60
    True
    """
    import scipy.stats as st

    for col in (client, session, alliance, outcome):
        if col not in df.columns:
            raise ModelError(f"column {col!r} not in the data", column=col)
    d = df[[client, session, alliance, outcome]].sort_values([client, session], kind="stable")
    clients = pd.Index(pd.unique(d[client]), name=client)
    sess = d[session].to_numpy()
    has_out = d[outcome].notna().to_numpy()
    early_a = (
        d[(sess == early_session) & d[alliance].notna().to_numpy()]
        .drop_duplicates(client)
        .set_index(client)[alliance]
    )
    intake = d[(sess == intake_session) & has_out].drop_duplicates(client).set_index(client)
    upto = d[(sess > intake_session) & (sess <= early_session) & has_out]
    upto = upto.drop_duplicates(client, keep="last").set_index(client)
    later = d[(sess > early_session) & has_out].drop_duplicates(client, keep="last")
    later = later.set_index(client)
    table = pd.DataFrame(index=clients)
    table["alliance_early"] = early_a
    table["outcome_intake"] = intake[outcome]
    table["outcome_early"] = upto[outcome]
    table["outcome_change_early"] = table["outcome_early"] - table["outcome_intake"]
    table["outcome_later"] = later[outcome]
    table["later_session"] = later[session]
    reasons = {
        "no_alliance_at_early_session": "alliance_early",
        "no_intake_outcome": "outcome_intake",
        "no_outcome_by_early_session": "outcome_early",
        "no_later_outcome": "outcome_later",
    }
    n_dropped, keep = {}, np.ones(len(table), dtype=bool)
    for reason, col in reasons.items():
        miss = table[col].isna().to_numpy() & keep
        n_dropped[reason] = int(miss.sum())
        keep &= ~miss
    table = table[keep].copy()
    table["later_session"] = table["later_session"].astype(int)
    terms = ["Intercept", "alliance_early", "outcome_intake", "outcome_change_early"]
    n, k = len(table), len(terms)
    if n < k + 2:
        raise ModelError(
            f"only {n} clients have an alliance at session {early_session}, an intake outcome, an "
            "outcome by then and a later outcome; early_alliance_outcome needs at least 6",
            column=alliance,
        )
    X = np.column_stack([np.ones(n), table[terms[1:]].to_numpy(dtype=float)])
    y = table["outcome_later"].to_numpy(dtype=float)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    df_resid = n - k
    sigma2 = float(resid @ resid) / df_resid
    se = np.sqrt(np.diag(np.linalg.pinv(X.T @ X)) * sigma2)
    t = beta / se
    tcrit = st.t.ppf(0.5 + ci / 2, df_resid)
    fixed = pd.DataFrame(
        {
            "estimate": beta,
            "se": se,
            "df": float(df_resid),
            "t": t,
            "p": 2 * st.t.sf(np.abs(t), df_resid),
            "ci_low": beta - tcrit * se,
            "ci_high": beta + tcrit * se,
        },
        index=pd.Index(terms, name="term"),
    )
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    settings = {
        "alliance": alliance,
        "outcome": outcome,
        "client": client,
        "session": session,
        "early_session": int(early_session),
        "intake_session": int(intake_session),
        "ci": float(ci),
    }
    return EarlyAllianceFit(
        fixed=fixed, data=table.reset_index(), r2=r2, n_dropped=n_dropped, settings=settings
    )
