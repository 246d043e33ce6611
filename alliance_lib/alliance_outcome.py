"""Alliance-outcome models: within/between decomposition, lagged models, therapist effects.

Three questions, one function each:

* :func:`decompose` splits a session-level score into a client's stable level (between-client,
  "trait-like") and the session's deviation from it (within-client, "state-like"), optionally
  after removing each client's own linear time trend (Curran & Bauer 2011).
* :func:`fit_alliance_outcome` asks whether a session's alliance predicts the outcome at the
  next session, separately for the within- and the between-client part (Falkenström,
  Granström & Holmqvist 2013).
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

__all__ = ["AllianceOutcomeFit", "decompose", "fit_alliance_outcome", "therapist_effects"]


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
    """

    fit: MixedFit
    data: pd.DataFrame
    model: str
    settings: dict = field(default_factory=dict)
    n_dropped: dict = field(default_factory=dict)

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
    """Does a session's alliance predict the outcome ``lag`` sessions later?

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
        ``.n_dropped`` counts alliance rows not analysed.

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

    **Dynamic-panel (Nickell) bias.** With ``control_prior_outcome=True`` the model holds a
    lagged dependent variable *and* a client random intercept. The prior outcome contains the
    client's own stable level, so it is correlated with the random intercept, which the model
    assumes it is not; in short series this biases the autoregressive coefficient (Nickell
    1981 for the fixed-effects analogue) and, to the extent the alliance part is correlated
    with the prior outcome, the alliance coefficients too. Falkenström et al. (2017)
    recommend dynamic-panel estimators (ML-SEM / RI-CLPM, Allison, Williams & Moral-Benito
    2017; GMM, Arellano & Bond 1991) when the autoregressive effect itself matters. Compare
    ``control_prior_outcome=False``. In data from :func:`~alliance_lib.simulate.simulate_study`
    (no true autoregression) the prior-outcome coefficient comes out near 0.5 and, because a
    detrended (or person-centred) alliance value is slightly correlated with the previous
    session's alliance residual, which the prior outcome carries, this bias spills over into
    the within effect: about 7 % too large in magnitude with ``detrend=True``, while
    ``control_prior_outcome=False`` recovers it without bias (see the recovery test). The
    prior outcome also absorbs the clients' stable outcome level, so the client variance is
    often estimated at zero (a singular fit).

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
    return AllianceOutcomeFit(
        fit=fit, data=data, model="lagged", settings=settings, n_dropped=n_dropped
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
