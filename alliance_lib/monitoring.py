"""Routine outcome monitoring: expected treatment response curves and not-on-track alerts.

:func:`expected_response` fits the study's own mixed model of the outcome by session conditioned
on the intake score (Finch, Lambert & Schaalje 2001) and gives, for any intake and session, the
expected score with predictive bands. :func:`not_on_track` turns it into white / green / yellow /
red states per client and session, using only the sessions up to that one.
:func:`validate_alerts` estimates how well the alerts predict treatment failure out of sample
(by therapist: leave-one-therapist-out up to 50 therapists, grouped 10-fold above; or k-fold by
client) with therapist-cluster bootstrap CIs, next to a
rational rule, an intake-only model and, on simulated data, the ideal predictor.
:func:`alliance_signals` and :func:`evaluate_alliance_signals` do the same for alliance warnings
(SRS below 36 or a drop of 1 point, past-only ruptures, the alliance below its own expected curve).

Scores are on a "higher is worse" scale unless ``direction="higher_is_better"``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from alliance_lib._simulate_response import (
    ResponseMixture,
    client_truth,
    ideal_failure_probability,
)
from alliance_lib.errors import DataError
from alliance_lib.frame import require_columns, to_float
from alliance_lib.trajectories import _trajectory_columns, fit_trajectory

# FAILURES, STATES and auc stay in the module namespace (al.monitoring.auc): generic names
__all__ = [
    "ExpectedResponse",
    "AlertValidation",
    "ResponseMixture",
    "client_truth",
    "expected_response",
    "not_on_track",
    "validate_alerts",
    "alliance_signals",
    "evaluate_alliance_signals",
]

FAILURES = ("reliable_deterioration", "no_reliable_improvement", "not_recovered")
"""Failure definitions, fixed in advance (higher-is-worse wording; flipped for other scales):
reliable deterioration (end - intake >= RCI), no reliable improvement (intake - end < RCI),
not recovered (clients starting in the clinical range: not both reliably improved and out of it)."""
STATES = ("white", "green", "yellow", "red")
WARM_START_MIN_CLIENTS = 8000
"""From this many clients the cross-validation folds' fits start from a fit of overlapping
data (the full fit, or the first fold's) instead of a pilot fit and a global search; below it
(the engine's pilot threshold) every fold is fitted from scratch."""
LOTO_MAX_THERAPISTS = 50
"""Most therapists for which ``validate_alerts(cv="therapist")`` leaves one therapist out at a
time; with more, whole therapists go to ``k`` folds (grouped k-fold), one refit per fold."""
DIRECTIONS = ("higher_is_worse", "higher_is_better")


# --------------------------------------------------------------------------- data intake
def _need(data: pd.DataFrame, cols, what: str = "monitoring") -> None:
    require_columns(data, [c for c in cols if c is not None], what)


def _numeric(s: pd.Series, name: str) -> np.ndarray:
    return to_float(s, name, what="monitoring")


def _client_codes(raw: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code per row and the id text per code, codes in the sorted order of the text.

    The same order as sorting ``raw.astype(str)``, but the (slow) text conversion and the
    sort run on the distinct ids only, and later steps compare integers, not strings.
    """
    codes, uniq = pd.factorize(raw, use_na_sentinel=False)
    text = pd.Series(uniq, dtype=raw.dtype).astype(str)
    to_sorted, levels = pd.factorize(text, sort=True, use_na_sentinel=False)
    return to_sorted[codes], pd.Index(levels)


def _frame(data, outcome, client, session, therapist, intake_session, sign):
    """Long rows (client, therapist, session, y) with the client's intake; y on the worse scale.

    Returns (post-intake rows sorted by client and session, intake per client, counts). The rows
    carry ``code``, the client's position in the sorted client ids (for integer group-bys).
    """
    _need(data, [outcome, client, session, therapist])
    code, levels = _client_codes(data[client])
    d = pd.DataFrame(
        {
            "code": code,
            "session": _numeric(data[session], session),
            "y": sign * _numeric(data[outcome], outcome),
        },
        index=data.index,
    )
    if therapist:
        d["therapist"] = data[therapist].astype("string").array
    n_missing = int(d["y"].isna().sum() + d["session"].isna().sum())
    d = d.dropna(subset=["y", "session"])
    d = d.drop_duplicates(["code", "session"], keep="first")
    at_intake = d[(d["session"] == intake_session).to_numpy()]
    has = np.zeros(len(levels), bool)
    has[at_intake["code"].to_numpy()] = True
    intake_of = np.full(len(levels), np.nan)
    intake_of[at_intake["code"].to_numpy()] = at_intake["y"].to_numpy()
    intake = pd.Series(
        at_intake["y"].to_numpy(),
        index=pd.Index(levels.take(at_intake["code"].to_numpy()), name="client"),
        name="y",
    )
    dc = d["code"].to_numpy()
    post = d[(d["session"].to_numpy() > intake_session) & has[dc]]
    post = post.sort_values(["code", "session"], kind="stable").reset_index(drop=True)
    pc = post["code"].to_numpy()
    post.insert(0, "client", levels.take(pc).array)
    post["intake"] = intake_of[pc]
    counts = {
        "rows_missing_score": n_missing,
        "clients_without_intake": int(np.unique(dc[~has[dc]]).size),
    }
    return post, intake, counts


def _key(post: pd.DataFrame) -> str:
    """The client key of a :func:`_frame` table: the integer ``code`` (fast), else ``client``."""
    return "code" if "code" in post.columns else "client"


def _norms(instrument, cutoff, rci, direction):
    """(cutoff, rci, direction) from the arguments, else from the instrument's registry norms."""
    if instrument is not None:
        from alliance_lib.registry import get_instrument

        inst = get_instrument(instrument)
        norms = inst.norms
        direction = direction or getattr(inst, "direction", None)
        if cutoff is None and norms.get("cutoff"):
            c = norms["cutoff"]
            # white means y < cutoff on the worse scale: shift strict rules by one ulp
            cutoff = float(c["value"])
            if c["clinical_if"] == ">":
                cutoff = math.nextafter(cutoff, math.inf)
            elif c["clinical_if"] == "<":
                cutoff = math.nextafter(cutoff, -math.inf)
        if rci is None and norms.get("reliable_change"):
            rci = float(norms["reliable_change"]["points"])
    direction = direction or "higher_is_worse"
    if direction not in DIRECTIONS:
        raise DataError(
            f"direction must be one of {DIRECTIONS}, not {direction!r}", value=direction
        )
    return cutoff, rci, direction


# --------------------------------------------------------------------------- the reference
class ExpectedResponse:
    """A fitted expected-treatment-response reference (see :func:`expected_response`).

    Attributes
    ----------
    outcome, client, session, therapist : str
        Column names it was fitted with.
    intake_session : int
    shape, method, direction : str
    fit : TrajectoryFit
        The mixed model (time terms, ``intake`` centred at ``intake_mean`` and their interactions).
    intake_mean : float
    intake_range, session_range : tuple
        Observed ranges (predictions outside them are extrapolations).
    typical_end : float
        Median of the clients' last session (default horizon of the failure probability).
    n_clients, nobs : int
    n_dropped : dict
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)
        efit = self.fit._efit
        self._beta = np.asarray(efit.beta, dtype=float)
        self._vbeta = np.asarray(efit.vcov, dtype=float)
        self._G = np.asarray(efit.cov_client, dtype=float)
        self._var_ther = float(efit.var_therapist or 0.0)
        self._sigma2 = float(efit.sigma) ** 2
        names = self.fit.fixed_terms
        self._zidx = [names.index(r) for r in self.fit.random_terms]

    @property
    def _sign(self) -> float:
        return 1.0 if self.direction == "higher_is_worse" else -1.0

    def _design(self, intake_w, session):
        """Fixed and random design rows for intake (worse scale) and session arrays."""
        intake_w, session = np.broadcast_arrays(
            np.asarray(intake_w, dtype=float), np.asarray(session, dtype=float)
        )
        shape = intake_w.shape
        t = (session - self.intake_session).ravel()
        c = (intake_w - self.intake_mean).ravel()
        cols = _trajectory_columns(t, {"intake": c}, self.fit._spec)
        X = np.column_stack([np.ones(t.size)] + [cols[nm] for nm in self.fit.fixed_terms[1:]])
        return X, X[:, self._zidx], shape

    def _moments(self, intake_w, session):
        """Predictive mean and SD for a new client of a new therapist (worse scale)."""
        X, Z, shape = self._design(intake_w, session)
        mean = X @ self._beta
        var = (
            np.einsum("ij,jk,ik->i", Z, self._G, Z)
            + self._var_ther
            + self._sigma2
            + np.einsum("ij,jk,ik->i", X, self._vbeta, X)
        )
        return mean.reshape(shape), np.sqrt(var).reshape(shape)

    def _std_quantile(self, t, q):
        """Quantile q of the standardised predictive residual at session offsets t."""
        q = np.asarray(q, dtype=float)
        if self.method == "normal":
            return np.broadcast_to(stats.norm.ppf(q), np.broadcast(t, q).shape).astype(float)
        t, q = np.broadcast_arrays(np.asarray(t, dtype=float), q)
        out = np.empty(t.shape)
        for key, res in self._calibration.items():
            sel = (np.rint(t) == key) if key is not None else np.ones(t.shape, bool)
            if key is None:
                sel &= ~np.isin(np.rint(t), [k for k in self._calibration if k is not None])
            if sel.any():
                out[sel] = _conformal_quantile(res, q[sel])
        return out

    def _std_cdf(self, t, z):
        if self.method == "normal":
            return stats.norm.cdf(z)
        t, z = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(z, dtype=float))
        out = np.empty(t.shape)
        known = [k for k in self._calibration if k is not None]
        for key, res in self._calibration.items():
            sel = (np.rint(t) == key) if key is not None else ~np.isin(np.rint(t), known)
            if sel.any():
                # mid-rank empirical CDF of the calibration residuals
                lo = np.searchsorted(res, z[sel], side="left")
                hi = np.searchsorted(res, z[sel], side="right")
                out[sel] = (0.5 * (lo + hi) + 0.5) / (res.size + 1)
        return out

    def quantile(self, intake, session, q):
        """Score at predictive quantile ``q`` (in the worse direction: q = .9 is the red band).

        Examples
        --------
        >>> import alliance_lib as al
        >>> df = al.simulate_study(n_therapists=6, n_clients=120, seed=2, output="scores")
        >>> ref = expected_response(df, "outcome")
        >>> bool(ref.quantile(80, 4, 0.9) > ref.quantile(80, 4, 0.5))
        True
        """
        s = self._sign
        mean, sd = self._moments(s * np.asarray(intake, dtype=float), session)
        t = np.asarray(session, dtype=float) - self.intake_session
        return s * (mean + sd * self._std_quantile(t, q))

    def percentile(self, intake, session, observed):
        """Predictive percentile (0-1) of an observed score, in the worse direction."""
        s = self._sign
        mean, sd = self._moments(s * np.asarray(intake, dtype=float), session)
        t = np.asarray(session, dtype=float) - self.intake_session
        return self._std_cdf(t, (s * np.asarray(observed, dtype=float) - mean) / sd)

    def predict(self, intake, sessions=None, quantiles=(0.10, 0.25, 0.50, 0.75, 0.90)):
        """Expected score and predictive bands on a grid of intake scores and sessions.

        Parameters
        ----------
        intake : float or sequence of float
            Intake scores (on the outcome's own scale).
        sessions : sequence of int, optional
            Sessions after intake (default: every session from the first to the last observed).
        quantiles : sequence of float
            Predictive quantiles in the worse direction (``0.9``: 90 % of comparable clients
            score better than this).

        Returns
        -------
        DataFrame
            ``intake``, ``session``, ``expected`` (predictive mean; the median band under the
            normal method), ``sd`` and one column ``p{100 q}`` per quantile (``p10`` ... ``p90``).
        """
        if sessions is None:
            lo, hi = self.session_range
            sessions = np.arange(int(lo), int(hi) + 1)
        ii, ss = np.meshgrid(np.atleast_1d(np.asarray(intake, float)), np.asarray(sessions, float))
        ii, ss = ii.T.ravel(), ss.T.ravel()
        s = self._sign
        mean, sd = self._moments(s * ii, ss)
        out = pd.DataFrame({"intake": ii, "session": ss, "expected": s * mean, "sd": sd})
        for q in quantiles:
            out[f"p{round(100 * q):d}"] = self.quantile(ii, ss, q)
        return out

    def to_dict(self) -> dict:
        """JSON-ready summary: settings, fixed effects, variance components."""
        fx = self.fit.fixed
        return {
            "outcome": self.outcome,
            "shape": self.shape,
            "method": self.method,
            "direction": self.direction,
            "intake_session": self.intake_session,
            "intake_mean": float(self.intake_mean),
            "n_clients": int(self.n_clients),
            "nobs": int(self.nobs),
            "typical_end": float(self.typical_end),
            "fixed": {k: float(v) for k, v in fx["estimate"].items()},
            "sd_client": [float(x) for x in np.sqrt(np.diag(self._G))],
            "sd_therapist": math.sqrt(self._var_ther),
            "sd_residual": math.sqrt(self._sigma2),
            "converged": bool(self.fit.converged),
        }

    def __repr__(self) -> str:
        return (
            f"ExpectedResponse({self.outcome!r}, shape={self.shape!r}, method={self.method!r}, "
            f"{self.n_clients} clients, {self.nobs} sessions)"
        )


def _conformal_quantile(res: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Split-conformal quantiles: the ceil((n + 1) q)-th order statistic (floor below the median)."""
    n = res.size
    k_hi = np.ceil((n + 1) * q) - 1
    k_lo = np.floor((n + 1) * q) - 1
    k = np.where(q >= 0.5, k_hi, k_lo)
    k = np.clip(k, 0, n - 1).astype(int)
    return res[k]


def _fit_reference(post, *, shape, knot, therapist, intake_mean=None, start=None, **meta):
    frame = post.assign(intake=post["intake"] - (intake_mean or 0.0))
    frame = frame.rename(columns={"session": "t"})
    frame["t"] = frame["t"] - meta["intake_session"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_trajectory(
            frame,
            "y",
            time="t",
            client="client",
            therapist="therapist" if therapist else None,
            shape=shape,
            knot=knot,
            covariates=["intake"],
            # the curve is parametrised from intake (t = 0), as in Finch et al. (2001): the
            # intercept is the expected score at intake for the centred intake score (a log
            # curve, log t, is anchored at the first session after intake, where log t = 0)
            time_zero=1 if shape == "log" else 0,
            start=start,
        )
    last = post.groupby(_key(post))["session"].max()
    return ExpectedResponse(
        fit=fit,
        shape=shape,
        knot=knot,
        therapist=therapist,
        intake_mean=intake_mean,
        intake_range=(float(post["intake"].min()), float(post["intake"].max())),
        session_range=(float(post["session"].min()), float(post["session"].max())),
        typical_end=float(last.median()),
        n_clients=int(post[_key(post)].nunique()),
        nobs=len(post),
        **meta,
    )


def expected_response(
    data: pd.DataFrame,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    intake_session: int = 0,
    therapist: str | None = None,
    shape: str = "linear",
    knot: float | None = None,
    method: str = "normal",
    direction: str = "higher_is_worse",
    min_calibration: int = 50,
    seed: int = 0,
    start: np.ndarray | None = None,
) -> ExpectedResponse:
    """Fit expected treatment response curves conditioned on the intake score.

    Parameters
    ----------
    data : DataFrame
        Long table, one row per client x session, with the outcome score (one rater: filter
        first; a repeated client x session keeps its first row).
    outcome : str
        Outcome score column (e.g. ``oq_45_2_total``).
    client, session : str
        Id and session-number columns.
    intake_session : int
        The session holding the intake score (0 = intake, the canonical layout).
    therapist : str, optional
        Therapist column: adds a therapist random intercept, so the bands include the spread
        between therapists (a new client of a new therapist).
    shape : {"linear", "log", "quadratic", "piecewise"}
        Time terms of the curve in ``t = session - intake_session`` (``"log"``: log t, as
        Finch, Lambert & Schaalje 2001); ``knot`` for ``"piecewise"``.
    method : {"normal", "conformal"}
        Bands from the normal predictive distribution of the mixed model, or split-conformal
        (two folds by client: the standardised residuals of one half under the curve fitted on
        the other) per session, for bounded or skewed scales (sessions with fewer than
        ``min_calibration`` residuals share the pooled residuals).
    direction : {"higher_is_worse", "higher_is_better"}
        Which way is worse (bands and alerts are stated in the worse direction).
    seed : int
        Seed of the conformal split.
    start : array, optional
        Variance parameters (``fit.theta``) of a fit of overlapping data to start the curve's
        fit from (:func:`~alliance_lib.trajectories.fit_trajectory`); cross-validation folds
        on large data use it.

    Returns
    -------
    ExpectedResponse
        ``.predict(intake, sessions)`` gives the expected score and bands ``p10`` ... ``p90``;
        ``.quantile(intake, session, q)`` and ``.percentile(intake, session, observed)`` work on
        arrays; ``.to_dict()`` is JSON-ready.

    Notes
    -----
    With ``c_i`` the client's intake score centred at the mean intake and ``f(t)`` the time
    terms, the model for sessions after intake (lme4 ``y ~ f(t) * c + (f(t) | client)
    [+ (1 | therapist)]``) is::

        y_it = b0 + b1 f(t) + b2 c_i + b3 f(t) c_i + u0i + u1i f(t) [+ v_j] + e_it,

    the intake entering as a covariate, not as the first outcome row, so the expected curve
    shows the regression to the mean a new client's intake implies. For a new client the
    predictive distribution at session t is normal with mean ``x_t' b`` and variance
    ``z_t' G z_t + sigma_v^2 + sigma^2 + x_t' V_b x_t`` (random effects, therapist, residual
    and estimation uncertainty); band q is ``mean + z_q sd``. The red boundary of OQ-Analyst /
    the Trier Treatment Navigator is the upper limit of a 90 % band (q = .90).

    References
    ----------
    Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control: the
    statistical generation of expected recovery curves for integration into an early warning
    system. *Clinical Psychology & Psychotherapy, 8*(4), 231-242.
    Lutz, W., Martinovich, Z., & Howard, K. I. (1999). Patient profiling: an application of random
    coefficient regression models. *JCCP, 67*(4), 571-577.
    Lei, J., G'Sell, M., Rinaldo, A., Tibshirani, R. J., & Wasserman, L. (2018). Distribution-free
    predictive inference for regression. *JASA, 113*(523), 1094-1111.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=10, n_clients=200, seed=4, output="scores")
    >>> ref = expected_response(df, "outcome", therapist="therapist_id")
    >>> band = ref.predict([70, 100], sessions=[1, 8])
    >>> band.columns.tolist()
    ['intake', 'session', 'expected', 'sd', 'p10', 'p25', 'p50', 'p75', 'p90']
    >>> bool((band["p90"] > band["expected"]).all())
    True
    """
    if method not in ("normal", "conformal"):
        raise DataError(f"method must be 'normal' or 'conformal', not {method!r}", value=method)
    _, _, direction = _norms(None, None, None, direction)
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    post, intake, counts = _frame(data, outcome, client, session, therapist, intake_session, sign)
    if post["client"].nunique() < 5:
        raise DataError(
            f"only {post['client'].nunique()} clients have an intake score (session "
            f"{intake_session}) and a later session of {outcome!r}",
            column=outcome,
            hint="expected curves need many clients with an intake and later scores",
        )
    meta = dict(
        outcome=outcome,
        client=client,
        session=session,
        intake_session=intake_session,
        direction=direction,
        n_dropped=counts,
    )
    imean = float(post.drop_duplicates(_key(post))["intake"].mean())
    common = dict(shape=shape, knot=knot, therapist=therapist, intake_mean=imean)
    ref = _fit_reference(post, method="normal", _calibration={}, start=start, **common, **meta)
    if method == "conformal":
        rng = np.random.default_rng(seed)
        ids = post["client"].unique()
        half = pd.Series(rng.permutation(ids.size) % 2, index=ids)
        fold = half.reindex(post["client"]).to_numpy()
        z_all, t_all = [], []
        for f in (0, 1):
            train, test = post[fold != f], post[fold == f]
            r = _fit_reference(train, method="normal", _calibration={}, **common, **meta)
            mean, sd = r._moments(test["intake"].to_numpy(), test["session"].to_numpy())
            z_all.append((test["y"].to_numpy() - mean) / sd)
            t_all.append(test["session"].to_numpy() - intake_session)
        z_all, t_all = np.concatenate(z_all), np.rint(np.concatenate(t_all))
        calib: dict[Any, np.ndarray] = {None: np.sort(z_all)}
        keys, n_t = np.unique(t_all, return_counts=True)
        for key, n in zip(keys, n_t, strict=True):
            if n >= min_calibration:
                calib[float(key)] = np.sort(z_all[t_all == key])
        ref.method = "conformal"
        ref._calibration = calib
    return ref


# --------------------------------------------------------------------------- alerts
def _cum_by_client(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` per client (rows sorted by client).

    Each client's sums are its own (a grouped cumulative sum), so they do not depend, even in
    the last bit, on other clients' rows: deleting data elsewhere leaves them unchanged.
    """
    flat = values.reshape(len(values), -1)
    out = pd.DataFrame(flat).groupby(codes, sort=False).cumsum().to_numpy()
    return out.reshape(values.shape)


def _end_score_moments(ref: ExpectedResponse, post: pd.DataFrame, horizon):
    """Posterior predictive mean/SD of the score at ``horizon`` from sessions up to each row.

    Client random effects (the therapist intercept folded into the client intercept: a new
    therapist) are updated from the residuals of the client's sessions so far; vectorised with
    running sums per client.
    """
    codes = pd.factorize(post["client"])[0]
    X, Z, _ = ref._design(post["intake"].to_numpy(), post["session"].to_numpy())
    r = post["y"].to_numpy() - X @ ref._beta
    q = Z.shape[1]
    szz = _cum_by_client(codes, np.einsum("ni,nj->nij", Z, Z))
    szr = _cum_by_client(codes, Z * r[:, None])
    G = ref._G.copy()
    G[0, 0] += ref._var_ther
    Ginv = np.linalg.inv(G + 1e-12 * np.eye(q))
    prec = Ginv[None] + szz / ref._sigma2
    cov = np.linalg.inv(prec)
    mean_b = np.einsum("nij,nj->ni", cov, szr / ref._sigma2)
    h = np.maximum(float(horizon), post["session"].to_numpy())
    Xh, Zh, _ = ref._design(post["intake"].to_numpy(), h)
    mu = Xh @ ref._beta + np.einsum("ni,ni->n", Zh, mean_b)
    var = (
        np.einsum("ni,nij,nj->n", Zh, cov, Zh)
        + ref._sigma2
        + np.einsum("ij,jk,ik->i", Xh, ref._vbeta, Xh)
    )
    return mu, np.sqrt(var)


def _failure_probability(mu, sd, intake_w, failure, rci, cutoff_w):
    """P(failure) for a normal end score on the worse scale (higher = worse)."""
    if rci is None:
        raise DataError("failure probabilities need the reliable change index: pass rci=")
    if failure == "not_recovered" and cutoff_w is None:
        raise DataError("failure='not_recovered' needs the clinical cutoff: pass cutoff=")
    from alliance_lib._simulate_response import _fail_probability

    return _fail_probability(mu, sd, intake_w, failure, rci, cutoff_w)


def _states(pw, y_w, cutoff_w, red, yellow):
    state = np.where(pw > red, "red", np.where(pw > yellow, "yellow", "green")).astype(object)
    if cutoff_w is not None:
        state[y_w < cutoff_w] = "white"
    return state


def not_on_track(
    data: pd.DataFrame,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    reference: ExpectedResponse | None = None,
    therapist: str | None = None,
    intake_session: int = 0,
    instrument: str | None = None,
    cutoff: float | None = None,
    rci: float | None = None,
    direction: str | None = None,
    red: float = 0.90,
    yellow: float = 0.50,
    failure: str | None = None,
    horizon: float | None = None,
    shape: str = "linear",
) -> pd.DataFrame:
    """Not-on-track states per client and session, from the sessions up to that one.

    Parameters
    ----------
    data : DataFrame
        Long table with the outcome score (intake at ``intake_session``).
    outcome, client, session : str
        Column names.
    reference : ExpectedResponse, optional
        Fixed expected curves (e.g. fitted on an earlier cohort); default fitted on ``data``
        with :func:`expected_response` (``therapist``, ``shape``).
    instrument : str, optional
        Instrument id (e.g. ``"oq-45.2"``): its registry cutoff, reliable change index and
        direction are used unless given.
    cutoff : float, optional
        Clinical cutoff: on a higher-is-worse scale, scores below it are ``white`` (functioning
        in the normal range); on a higher-is-better scale, scores above it. With
        ``instrument``, the registry's rule is used exactly (OQ-45.2: clinical from 64).
    rci : float, optional
        Reliable change (points), needed for ``failure``.
    red, yellow : float
        Thresholds on the predictive percentile in the worse direction: ``red`` above the
        ``red`` band (default .90: worse than 90 % of comparable clients at that session),
        ``yellow`` above the ``yellow`` band (the median), else ``green``.
    failure : {"reliable_deterioration", "no_reliable_improvement", "not_recovered"}, optional
        Adds ``p_failure``: the probability of that failure at session ``horizon`` (default the
        reference's typical last session), given the intake and the sessions so far.

    Returns
    -------
    DataFrame
        One row per client x session after intake: ``client``, ``session`` (named as in the
        data), ``intake``, ``expected`` (predictive mean), ``boundary`` (the red band),
        ``observed``, ``percentile`` (0-1, worse direction), ``z``, ``state``
        (white | green | yellow | red) and optionally ``p_failure``.

    Notes
    -----
    With a fixed reference, the state at session t depends only on the client's intake and
    session-t score, and ``p_failure`` on the intake and sessions up to t (a Gaussian
    posterior of the client's random effects from running sums), so deleting later sessions
    never changes an earlier alert. The colours follow OQ-Analyst's signal alarms (white /
    green / yellow / red; Lambert 2015) with the Trier Treatment Navigator's red boundary.

    References
    ----------
    Lambert, M. J. (2015). Progress feedback and the OQ-system. *Psychotherapy, 52*(4), 381-390.
    Lutz, W., Rubel, J. A., Schwartz, B., Schilling, V., & Deisenhofer, A.-K. (2019). Towards
    integrating personalized feedback research into clinical practice: development of the Trier
    Treatment Navigator. *Behaviour Research and Therapy, 120*, 103438.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=10, n_clients=200, seed=4, output="scores")
    >>> nt = not_on_track(df, "outcome", cutoff=64, rci=14, failure="no_reliable_improvement")
    >>> nt.columns.tolist()[:4]
    ['client_id', 'session', 'intake', 'expected']
    >>> set(nt["state"]) <= {"white", "green", "yellow", "red"}
    True
    """
    if not 0 < yellow < red < 1:
        raise DataError(f"need 0 < yellow < red < 1 (got yellow={yellow}, red={red})")
    if failure is not None and failure not in FAILURES:
        raise DataError(f"failure must be one of {FAILURES}, not {failure!r}", value=failure)
    if reference is None:
        _, _, d0 = _norms(instrument, None, None, direction)
        reference = expected_response(
            data,
            outcome,
            client=client,
            session=session,
            intake_session=intake_session,
            therapist=therapist,
            shape=shape,
            direction=d0,
        )
    cutoff, rci, _ = _norms(instrument, cutoff, rci, direction or reference.direction)
    ref = reference
    s = ref._sign
    post, _, _ = _frame(data, outcome, client, session, None, ref.intake_session, s)
    intake_w, sess, y_w = (
        post["intake"].to_numpy(),
        post["session"].to_numpy(),
        post["y"].to_numpy(),
    )
    mean, sd = ref._moments(intake_w, sess)
    t = sess - ref.intake_session
    pw = ref._std_cdf(t, (y_w - mean) / sd)
    boundary = mean + sd * ref._std_quantile(t, red)
    cutoff_w = None if cutoff is None else s * float(cutoff)
    out = pd.DataFrame(
        {
            client: post["client"].array,
            session: sess,
            "intake": s * intake_w,
            "expected": s * mean,
            "boundary": s * boundary,
            "observed": s * y_w,
            "percentile": pw,
            "z": (y_w - mean) / sd,
            "state": _states(pw, y_w, cutoff_w, red, yellow),
        }
    )
    if pd.api.types.is_integer_dtype(data[session]):
        out[session] = out[session].astype(data[session].dtype)
    if failure is not None:
        mu, sdh = _end_score_moments(ref, post, ref.typical_end if horizon is None else horizon)
        out["p_failure"] = _failure_probability(mu, sdh, intake_w, failure, rci, cutoff_w)
    return out


# --------------------------------------------------------------------------- accuracy
_CHUNK_CELLS = 4_000_000
"""Largest (replicates x tie groups) block of float64 weights built at once (32 MB)."""


def _weighted_auc(
    score: np.ndarray,
    label: np.ndarray,
    W: np.ndarray,
    cluster: np.ndarray | None = None,
    *,
    chunk_cells: int = _CHUNK_CELLS,
) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count one half) for each row of weights ``W``.

    Parameters
    ----------
    score, label : ndarray
        Continuous score and binary label per observation (length n).
    W : ndarray
        Weights, one row per replicate: per observation (``r x n``) or, with ``cluster``, per
        cluster (``r x c``: observation i has weight ``W[:, cluster[i]]``, as in a cluster
        bootstrap, so the ``r x n`` matrix is never stored whole).
    cluster : ndarray of int, optional
        Cluster code (0 .. c - 1) per observation.
    chunk_cells : int
        Replicates are processed in blocks of at most this many ``replicate x tie group``
        cells (32 MB of float64 by default), so no ``replicates x n`` matrix is built.

    Returns
    -------
    ndarray
        One AUC per row of ``W`` (NaN when a row weights no positive or no negative).

    Notes
    -----
    The observations are sorted once by score into tie groups; the counts of negatives and
    positives per tie group and cluster form two sparse matrices (at most n entries), so the
    weights per tie group of a block of replicates are one sparse product, and
    ``AUC = sum_g P_g (N_<g + N_g / 2) / (P N)`` with ``N_<g`` the weight of negatives below tie
    group g (Mann & Whitney 1947; Hanley & McNeil 1982). With integer weights (the bootstrap's
    multinomial counts) every sum is an exact integer or half-integer in float64, so the result
    is bitwise the same as summing observation by observation.

    References
    ----------
    Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the area under a receiver
    operating characteristic (ROC) curve. *Radiology, 143*(1), 29-36.

    Examples
    --------
    >>> s, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)
    >>> _weighted_auc(s, y, np.array([[1.0, 1, 1, 1], [2, 0, 1, 1]])).tolist()
    [0.75, 1.0]
    """
    score = np.asarray(score)
    label = np.asarray(label, dtype=bool)
    W = np.asarray(W, dtype=float)
    n = score.size
    out = np.full(W.shape[0], np.nan)
    if n == 0:
        return out
    order = np.argsort(score, kind="stable")
    sc, lab = score[order], label[order]
    new_group = sc[1:] != sc[:-1]
    if sc.dtype.kind == "f":  # NaNs tie with each other (as np.unique groups them)
        new_group &= ~(np.isnan(sc[1:]) & np.isnan(sc[:-1]))
    grp = np.cumsum(np.r_[True, new_group]) - 1  # tie group of each sorted observation
    n_groups = int(grp[-1]) + 1
    cl = order if cluster is None else np.asarray(cluster)[order]
    # tie group x cluster counts of negatives and positives (sparse: at most n entries)
    shape = (n_groups, W.shape[1])
    counts = [
        sparse.csr_matrix((np.ones(int(m.sum())), (grp[m], cl[m])), shape=shape)
        for m in (~lab, lab)
    ]
    step = max(1, int(chunk_cells) // n_groups)
    for lo in range(0, W.shape[0], step):
        wt = np.ascontiguousarray(W[lo : lo + step].T)  # cluster x replicate
        neg_g, pos_g = (c @ wt for c in counts)  # tie group x replicate weights
        below = np.cumsum(neg_g, axis=0) - neg_g  # negatives strictly below each tie group
        num = ((below + 0.5 * neg_g) * pos_g).sum(axis=0)
        denom = pos_g.sum(axis=0) * neg_g.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo : lo + step] = num / denom
    return out


def auc(score, label) -> float:
    """Area under the ROC curve (Mann-Whitney; ties count one half).

    Examples
    --------
    >>> auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    score = np.asarray(score, dtype=float)
    label = np.asarray(label, dtype=bool)
    return float(_weighted_auc(score, label, np.ones((1, score.size)))[0])


def _metrics(score, alert, label, W, cluster=None):
    """Accuracy of a binary alert and AUC of a continuous score, for each weight row.

    ``W`` holds weights per observation (``r x n``) or, with ``cluster`` (a code per
    observation), per cluster (``r x c``); the counts are then summed per cluster first
    (``W @ bincount``), which with integer weights gives exactly the same numbers.
    """
    a, y = alert.astype(float), label.astype(float)
    W = np.asarray(W, dtype=float)
    if cluster is None:
        sums = [a * y, a * (1 - y), (1 - a) * y, (1 - a) * (1 - y)]
    else:
        c = W.shape[1]
        sums = [
            np.bincount(cluster, weights=v, minlength=c)
            for v in (a * y, a * (1 - y), (1 - a) * y, (1 - a) * (1 - y))
        ]
    tp, fp, fn, tn = (W @ v for v in sums)
    n = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "prevalence": (tp + fn) / n,
            "alert_rate": (tp + fp) / n,
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "auc": _weighted_auc(score, label.astype(bool), W, cluster),
        }


METRICS = ("sensitivity", "specificity", "ppv", "npv", "auc")


@dataclass
class AlertValidation:
    """Result of :func:`validate_alerts`.

    Attributes
    ----------
    table : DataFrame
        One row per failure definition x predictor x session: ``failure``, ``predictor``,
        ``session``, ``n`` (clients at risk: seen at that session, ending later), ``n_failures``,
        ``prevalence``, ``alert_rate``, then ``sensitivity``, ``specificity``, ``ppv``, ``npv``,
        ``auc`` each with ``_low`` / ``_high`` (percentile cluster-bootstrap 95 % CI) and, with
        ``in_sample=True``, ``auc_in_sample``.
    burden : DataFrame
        Per predictor (and ``failure`` definition for the probability alerts, p >= .5): share of
        clients ever flagged (any session before their last), alerts per 100 sessions, and the
        share flagged by each of the ``sessions``.
    calibration : DataFrame
        Per failure definition x probability predictor x session: mean predicted, observed
        rate, calibration intercept and slope (logistic recalibration).
    scores : DataFrame
        The out-of-sample predictions per client x session (for further analyses).
    settings : dict
    """

    table: pd.DataFrame
    burden: pd.DataFrame
    calibration: pd.DataFrame
    scores: pd.DataFrame
    settings: dict = field(default_factory=dict)

    def at(self, session, failure="no_reliable_improvement") -> pd.DataFrame:
        """The rows of one session and failure definition, indexed by predictor."""
        t = self.table
        return t[(t["session"] == session) & (t["failure"] == failure)].set_index("predictor")

    def to_dict(self) -> dict:
        from alliance_lib.trajectories import _jsonable

        return _jsonable(
            {
                "settings": self.settings,
                "table": self.table.to_dict(orient="records"),
                "burden": self.burden.to_dict(orient="records"),
                "calibration": self.calibration.to_dict(orient="records"),
            }
        )


def _logistic(x: np.ndarray, y: np.ndarray, iters: int = 50) -> np.ndarray:
    """Intercept and slope of a logistic regression of y on x (Newton-Raphson)."""
    X = np.column_stack([np.ones_like(x), x])
    b = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ b)))
        w = p * (1 - p) + 1e-12
        H = X.T @ (X * w[:, None])
        step = np.linalg.solve(H + 1e-9 * np.eye(2), X.T @ (y - p))
        b += step
        if np.abs(step).max() < 1e-8:
            break
    return b


def _client_outcomes(post, intake_w, rci, cutoff_w):
    """End session, end score and the three failure labels per client (worse scale)."""
    last = post.groupby(_key(post), sort=False).tail(1).set_index("client")
    end, y_end = last["session"], last["y"]
    y0 = intake_w.reindex(end.index)
    labels = pd.DataFrame(index=end.index)
    labels["reliable_deterioration"] = (y_end - y0 >= rci).astype(float)
    labels["no_reliable_improvement"] = (y0 - y_end < rci).astype(float)
    if cutoff_w is not None:
        rec = (y_end < cutoff_w) & (y0 - y_end >= rci)
        labels["not_recovered"] = np.where(y0 >= cutoff_w, (~rec).astype(float), np.nan)
    else:
        labels["not_recovered"] = np.nan
    return end, labels


def validate_alerts(
    data: pd.DataFrame,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    therapist: str | None = None,
    intake_session: int = 0,
    instrument: str | None = None,
    cutoff: float | None = None,
    rci: float | None = None,
    direction: str | None = None,
    cv: str = "therapist",
    k: int = 10,
    sessions=None,
    failures=FAILURES,
    shape: str = "linear",
    red: float = 0.90,
    yellow: float = 0.50,
    alert: str = "red",
    horizon: float | None = None,
    n_boot: int = 200,
    in_sample: bool = True,
    ideal: bool | None = None,
    seed: int = 0,
    loto_max: int = LOTO_MAX_THERAPISTS,
    reference: ExpectedResponse | None = None,
) -> AlertValidation:
    """How well not-on-track alerts predict treatment failure, estimated out of sample.

    Parameters
    ----------
    data : DataFrame
        Long table with the outcome (intake at ``intake_session``), client and therapist ids.
    outcome, client, session, therapist : str
        Column names (``therapist`` is needed for ``cv="therapist"`` and for the cluster
        bootstrap; without it clients are resampled).
    instrument, cutoff, rci, direction
        As in :func:`not_on_track` (``rci`` is required; ``cutoff`` for ``not_recovered``).
    cv : {"therapist", "client", "none"}
        By therapist (no therapist is ever in the training and the test clients of one fold),
        k-fold by client (``k``), or in-sample only. ``"therapist"`` leaves one therapist out
        at a time when there are at most ``loto_max`` therapists, and above that assigns whole
        therapists to ``k`` folds (grouped k-fold: the sorted therapists permuted with
        ``seed``, fold = position mod ``k``), since leave-one-therapist-out needs one refit of
        the mixed model per therapist (2,000 refits for 2,000 therapists). Both keep each
        therapist's clients out of the fit that scores them, so the estimate stays one of a
        new therapist's clients; ``settings["scheme"]`` and ``settings["n_folds"]`` record
        which was used.
    k : int
        Folds of ``cv="client"`` and of the grouped k-fold by therapist.
    sessions : sequence of int, optional
        Alert sessions to evaluate (default every session after intake with at least 20 clients
        at risk).
    failures : sequence of str
        Failure definitions (see :data:`FAILURES`), judged at each client's last session.
    red, yellow, alert : float, float, {"red", "yellow"}
        Band thresholds, and which states count as an alert (``"yellow"``: yellow or red).
    horizon : float, optional
        Session of the failure probability (default the training data's typical last session).
    n_boot : int
        Cluster-bootstrap replicates (therapists resampled with replacement).
    in_sample : bool
        Also compute the in-sample AUC (reference fitted on all data) to show the optimism.
    ideal : bool, optional
        Add the ideal predictors of simulated data (default: when ``data.attrs`` carries the
        per-client truth of ``simulate_study(response=...)``).
    seed : int
        Seeds the folds (client or grouped therapist folds) and the bootstrap.
    loto_max : int
        Largest number of therapists validated leave-one-therapist-out (default
        :data:`LOTO_MAX_THERAPISTS`, 50).
    reference : ExpectedResponse, optional
        :func:`expected_response` already fitted on exactly these rows (same outcome, client,
        session, therapist, shape and intake session): reused for the in-sample scores instead
        of a refit (the same fit; checked by the number of clients, rows and the mean intake).

    Returns
    -------
    AlertValidation

    Notes
    -----
    For each fold, the expected curves are fitted on the training clients and the alerts of the
    held-out clients computed with that fixed reference, so each alert uses only the held-out
    client's sessions up to its own. At session t the clients at risk are those seen at t whose
    last session is later (the end score comes after the alert). Predictors:

    - ``expected curve``: score the predictive percentile, alert the state (red by default);
    - ``failure probability``: P(failure at the horizon | sessions so far), alert p >= .5;
    - ``rational rule``: change since intake in the worse direction, alert a reliable worsening
      (change >= RCI) or, still in the clinical range, less than half the RCI of improvement
      after the first half of the typical course (Lambert et al. 2002 style rule);
    - ``intake only``: logistic regression of failure on the intake score (training folds),
      scored by its slope times the standardised intake, alert p >= the training prevalence;
    - on simulated data, ``ideal (history)``: the Bayes posterior under the true model given
      sessions 0..t, and ``ideal (true parameters)``: knowing the client's true trajectory.

    CIs resample therapists (clusters) with replacement, keeping the out-of-sample predictions
    fixed (percentile intervals). The bootstrap weights are kept per therapist
    (``n_boot x therapists``) and expanded to clients in blocks, so memory stays bounded.

    Grouped k-fold cross-validation with whole clusters held out is the standard alternative to
    leave-one-cluster-out when clusters are many (Roberts et al. 2017); with 10 folds each fit
    uses 90 % of the therapists instead of all but one, a slightly pessimistic estimate.

    References
    ----------
    Lutz, W., Lambert, M. J., Harmon, S. C., Tschitsaz, A., Schürch, E., & Stulz, N. (2006). The
    probability of treatment success, failure and duration: what can be learned from empirical
    data to support decision making in clinical practice? *Clin Psychol Psychother, 13*, 223-232.
    Spielmans, G. I., Masters, K. S., & Lambert, M. J. (2006). A comparison of rational versus
    empirical methods in the prediction of psychotherapy outcome. *Clin Psychol Psychother,
    13*, 202-214.
    Field, C. A., & Welsh, A. H. (2007). Bootstrapping clustered data. *JRSS B, 69*(3), 369-390.
    Roberts, D. R., Bahn, V., Ciuti, S., et al. (2017). Cross-validation strategies for data with
    temporal, spatial, hierarchical, or phylogenetic structure. *Ecography, 40*(8), 913-929.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=8, n_clients=160, seed=3, output="scores",
    ...                        dropout=False, response={})
    >>> v = validate_alerts(df, "outcome", therapist="therapist_id", cutoff=64, rci=14,
    ...                     sessions=[3], n_boot=20, failures=["no_reliable_improvement"])
    >>> bool(v.at(3).loc["expected curve", "auc"] > 0.6)
    True
    """
    if cv not in ("therapist", "client", "none"):
        raise DataError(f"cv must be 'therapist', 'client' or 'none', not {cv!r}", value=cv)
    if cv == "therapist" and therapist is None:
        raise DataError("cv='therapist' needs the therapist column: pass therapist=")
    if alert not in ("red", "yellow"):
        raise DataError(f"alert must be 'red' or 'yellow', not {alert!r}", value=alert)
    for f in failures:
        if f not in FAILURES:
            raise DataError(f"unknown failure definition {f!r} (use {FAILURES})", value=f)
    cutoff, rci, direction = _norms(instrument, cutoff, rci, direction)
    if rci is None:
        raise DataError("validate_alerts needs the reliable change index: pass rci= or instrument=")
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    cutoff_w = None if cutoff is None else sign * float(cutoff)
    post, intake_w, _ = _frame(data, outcome, client, session, therapist, intake_session, sign)
    end, labels = _client_outcomes(post, intake_w, rci, cutoff_w)
    ids = end.index.to_numpy()
    ther_of = (
        post.drop_duplicates(_key(post)).set_index("client")["therapist"].reindex(ids).to_numpy()
        if therapist
        else ids
    )
    rng = np.random.default_rng(seed)
    n_ther = int(pd.unique(ther_of).size) if therapist else 0
    if cv == "therapist" and n_ther <= loto_max:
        scheme = "leave-one-therapist-out"
        groups = pd.Series(ther_of, index=ids)
    elif cv == "therapist":
        # grouped k-fold: whole therapists to folds (sorted therapists, a seeded permutation)
        scheme = "grouped k-fold by therapist"
        levels, t_code = np.unique(np.asarray(ther_of).astype(str), return_inverse=True)
        fold_of_ther = rng.permutation(levels.size) % k
        groups = pd.Series(fold_of_ther[t_code.ravel()], index=ids)
    elif cv == "client":
        scheme = "k-fold by client"
        groups = pd.Series(rng.permutation(ids.size) % k, index=ids)
    else:
        scheme = "in-sample"
        groups = pd.Series(0, index=ids)
    kw = dict(shape=shape, red=red, yellow=yellow, rci=rci, cutoff_w=cutoff_w, horizon=horizon)
    kw.update(intake_session=intake_session, therapist=therapist, direction=direction)
    # fold membership by integer codes: post is sorted by client, ids in the same order
    row_client = pd.factorize(post["code"].to_numpy())[0]
    g_code, g_levels = pd.factorize(groups, use_na_sentinel=False)
    row_group = g_code[row_client]
    held, at = [], []
    # on large data every fold's fit starts from the full fit's optimum (or the first fold's):
    # the training sets overlap, and a start there replaces the pilot fit and its search
    start = None
    warm = len(ids) >= WARM_START_MIN_CLIENTS
    same_model = reference is not None and reference.shape == shape
    if warm and same_model and bool(reference.therapist) == bool(therapist):
        start = reference.fit.theta
    for g in range(len(g_levels)):
        in_test = row_group == g
        train = post[~in_test] if cv != "none" else post
        test = post[in_test]
        fold, fold_ref = _score_fold(train, test, labels, failures, start=start, **kw)
        if warm and start is None:
            start = fold_ref.fit.theta
        del train, test, fold_ref  # (the next fold's are built before these would go)
        held.append(fold)
        at.append(np.flatnonzero(in_test))
    scores = pd.concat(held, ignore_index=True)
    del held
    # back in post's order (client, then session: each row once), without sorting the ids
    order = np.argsort(np.concatenate(at), kind="stable")
    if not np.array_equal(order, np.arange(order.size)):
        scores = scores.take(order).reset_index(drop=True)
    if in_sample and cv != "none":
        if reference is not None:
            _check_same_fit(reference, post, shape=shape, therapist=therapist)
        ins, _ = _score_fold(post, post, labels, failures, ref=reference, **kw)
        # both are post's rows in its order: matched by position, not on an index of every
        # client x session (checked, cheaply)
        if not (
            len(ins) == len(scores)
            and np.array_equal(ins["session"].to_numpy(), scores["session"].to_numpy())
            and ins["client"].equals(scores["client"])
        ):
            raise RuntimeError("validate_alerts: in-sample and held-out rows differ")
        scores["percentile_in_sample"] = ins["percentile"].to_numpy()
        for f in failures:
            scores[f"p_{f}_in_sample"] = ins[f"p_{f}"].to_numpy()
    scores["end"] = end.reindex(scores["client"]).to_numpy()
    scores["cluster"] = pd.Series(ther_of, index=ids).reindex(scores["client"]).to_numpy()
    if ideal is None:
        ideal = bool(data.attrs.get("clients"))
    if ideal:
        _add_ideal(scores, data, client, session, outcome, end, failures, rci, cutoff_w, sign)
    max_s = scores.loc[scores["session"] < scores["end"]].groupby("session").size()
    if sessions is None:
        sessions = [int(s) for s, n in max_s.items() if n >= 20]
    # cluster bootstrap weights (therapists resampled)
    clusters, ccode = np.unique(scores["cluster"].astype(str), return_inverse=True)
    Wc = rng.multinomial(clusters.size, np.full(clusters.size, 1 / clusters.size), size=n_boot)
    # weights per cluster (row 0: the estimate, every client once); expanded to clients in chunks
    Wall = np.vstack([np.ones(clusters.size), Wc]).astype(float)
    rows, calib = [], []
    for t in sessions:
        at = scores[(scores["session"] == t) & (scores["session"] < scores["end"])]
        if at.empty:
            continue
        cw = ccode[at.index.to_numpy()]
        for f in failures:
            lab = labels[f].reindex(at["client"]).to_numpy()
            ok = ~np.isnan(lab)
            if ok.sum() < 2:
                continue
            y = lab[ok].astype(bool)
            for name, sc, al, prob in _predictors(at, f, alert, ideal):
                s_, a_ = sc[ok], al[ok]
                fin = np.isfinite(s_)
                if fin.sum() < 2:
                    continue
                m = _metrics(s_[fin], a_[fin], y[fin], Wall, cw[ok][fin])
                row = {
                    "failure": f,
                    "predictor": name,
                    "session": t,
                    "n": int(fin.sum()),
                    "n_failures": int(y[fin].sum()),
                    "prevalence": m["prevalence"][0],
                    "alert_rate": m["alert_rate"][0],
                }
                for key in METRICS:
                    v = m[key]
                    row[key] = v[0]
                    boot = v[1:][np.isfinite(v[1:])]
                    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size > 2 else (np.nan,) * 2
                    row[f"{key}_low"], row[f"{key}_high"] = lo, hi
                if in_sample and cv != "none" and name in ("expected curve", "failure probability"):
                    col = "percentile_in_sample" if name == "expected curve" else f"p_{f}_in_sample"
                    row["auc_in_sample"] = auc(at[col].to_numpy()[ok][fin], y[fin])
                rows.append(row)
                if prob:
                    p = np.clip(s_[fin], 1e-6, 1 - 1e-6)
                    b = _logistic(np.log(p / (1 - p)), y[fin].astype(float))
                    calib.append(
                        {
                            "failure": f,
                            "predictor": name,
                            "session": t,
                            "n": int(fin.sum()),
                            "mean_predicted": float(p.mean()),
                            "observed": float(y[fin].mean()),
                            "calibration_intercept": float(b[0]),
                            "calibration_slope": float(b[1]),
                        }
                    )
    table = pd.DataFrame(rows)
    burden = _burden(scores, sessions, alert, failures, ideal)
    settings = {
        "cv": cv,
        "scheme": scheme,
        "k": k if scheme in ("k-fold by client", "grouped k-fold by therapist") else None,
        "n_folds": int(len(g_levels)),
        "loto_max_therapists": loto_max,
        "failures": list(failures),
        "rci": rci,
        "cutoff": cutoff,
        "direction": direction,
        "red": red,
        "yellow": yellow,
        "alert": alert,
        "shape": shape,
        "n_boot": n_boot,
        "n_clients": int(ids.size),
        "n_clusters": int(clusters.size),
        "seed": seed,
    }
    return AlertValidation(table, burden, pd.DataFrame(calib), scores, settings)


def _check_same_fit(ref: ExpectedResponse, post, *, shape, therapist) -> None:
    """Raise unless ``ref`` was fitted on the rows ``post`` with the same settings."""
    imean = float(post.drop_duplicates(_key(post))["intake"].mean())
    same = (
        ref.nobs == len(post)
        and ref.n_clients == post[_key(post)].nunique()
        and ref.shape == shape
        and bool(ref.therapist) == bool(therapist)
        and ref.intake_mean == imean
    )
    if not same:
        raise DataError(
            "reference= was not fitted on these rows: validate_alerts reuses it for the "
            "in-sample scores only when it is the same fit",
            hint="pass reference=None to refit, or fit expected_response on the same data",
        )


def _score_fold(
    train,
    test,
    labels,
    failures,
    *,
    shape,
    red,
    yellow,
    rci,
    cutoff_w,
    horizon,
    intake_session,
    therapist,
    direction,
    ref=None,
    start=None,
):
    """Out-of-sample predictions for the held-out clients from a reference fitted on train,
    and that reference.

    Scores arrive on the worse scale already, so the reference is fitted higher-is-worse (or
    ``ref``, the same fit done before, is used; ``start``: theta to start the fit from).
    """
    imean = float(train.drop_duplicates(_key(train))["intake"].mean())
    ref = ref or _fit_reference(
        train,
        shape=shape,
        knot=None,
        therapist=therapist,
        intake_mean=imean,
        method="normal",
        _calibration={},
        outcome="y",
        client="client",
        session="session",
        intake_session=intake_session,
        direction="higher_is_worse",
        n_dropped={},
        start=start,
    )
    iw, s, y = test["intake"].to_numpy(), test["session"].to_numpy(), test["y"].to_numpy()
    mean, sd = ref._moments(iw, s)
    pw = stats.norm.cdf((y - mean) / sd)
    out = pd.DataFrame(
        {
            "client": test["client"].array,
            "session": s,
            "intake": iw,
            "observed": y,
            "percentile": pw,
            "state": _states(pw, y, cutoff_w, red, yellow),
        }
    )
    h = ref.typical_end if horizon is None else horizon
    mu, sdh = _end_score_moments(ref, test, h)
    for f in failures:
        if f == "not_recovered" and cutoff_w is None:
            out[f"p_{f}"] = np.nan
        else:
            out[f"p_{f}"] = _failure_probability(mu, sdh, iw, f, rci, cutoff_w)
    # rational rule (Lambert-style): reliable worsening, or little change late in the course
    change = y - iw
    late = s >= max(2.0, 0.5 * ref.typical_end)
    still = np.ones_like(y, bool) if cutoff_w is None else y >= cutoff_w
    out["change"] = change
    out["rational_alert"] = (change >= rci) | (late & still & (-change < 0.5 * rci))
    # intake-only logistic model, trained on the training clients
    tr = train.drop_duplicates(_key(train)).set_index("client")
    for f in failures:
        lab = labels[f].reindex(tr.index).to_numpy()
        ok = ~np.isnan(lab)
        if ok.sum() > 5 and 0 < lab[ok].mean() < 1:
            x = tr["intake"].to_numpy()[ok]
            mu_x, sd_x = x.mean(), x.std() or 1.0
            b = _logistic((x - mu_x) / sd_x, lab[ok])
            # the score ranks by the fold's slope only: pooling fold intercepts (training
            # prevalences) would anti-correlate with the held-out labels (a CV artefact)
            out[f"intake_{f}"] = b[1] * (iw - mu_x) / sd_x
            out[f"intake_cut_{f}"] = math.log(lab[ok].mean() / (1 - lab[ok].mean())) - b[0]
        else:
            out[f"intake_{f}"] = np.nan
            out[f"intake_cut_{f}"] = np.nan
    return out, ref


def _predictors(at, f, alert, ideal):
    """(name, continuous score, binary alert, is_probability) for one failure definition."""
    states = at["state"].to_numpy()
    flag = (states == "red") | ((states == "yellow") if alert == "yellow" else False)
    out = [
        ("expected curve", at["percentile"].to_numpy(), flag, False),
        ("failure probability", at[f"p_{f}"].to_numpy(), at[f"p_{f}"].to_numpy() >= 0.5, True),
        ("rational rule", at["change"].to_numpy(), at["rational_alert"].to_numpy(), False),
        (
            "intake only",
            at[f"intake_{f}"].to_numpy(),
            at[f"intake_{f}"].to_numpy() >= at[f"intake_cut_{f}"].to_numpy(),
            False,
        ),
    ]
    if ideal:
        for name, col in (("ideal (history)", "history"), ("ideal (true parameters)", "truth")):
            p = at[f"ideal_{col}_{f}"].to_numpy()
            out.append((name, p, p >= 0.5, True))
    return out


def _add_ideal(scores, data, client, session, outcome, end, failures, rci, cutoff_w, sign):
    """Columns ideal_{history,truth}_{failure}: the simulated study's ideal predictors."""
    if sign != 1.0:
        raise DataError("ideal predictors are defined for the simulator's higher-is-worse outcome")
    sim = data.rename(columns={client: "client_id", session: "session"})
    sim.attrs = data.attrs
    sim = sim.assign(client_id=sim["client_id"].astype(str))
    from alliance_lib._simulate_response import _wide_outcome

    wide = _wide_outcome(sim, outcome)  # once, not once per session x failure x predictor
    for given in ("history", "truth"):
        for f in failures:
            col = np.full(len(scores), np.nan)
            for t in np.unique(scores["session"]):
                sel = (scores["session"] == t).to_numpy()
                p = ideal_failure_probability(
                    sim,
                    at_session=int(t),
                    end=end,
                    failure=f,
                    rci=rci,
                    cutoff=np.inf if cutoff_w is None else cutoff_w,
                    outcome=outcome,
                    given=given,
                    wide=wide,
                )
                col[sel] = p.reindex(scores.loc[sel, "client"]).to_numpy()
            scores[f"ideal_{given}_{f}"] = col


def _burden(scores, sessions, alert, failures=(), ideal=False):
    """Share of clients ever flagged, alerts per 100 sessions and flagged by session t.

    The state-based alerts do not depend on the failure definition (``failure`` missing); the
    probability alerts (p >= .5) have one row per definition.
    """
    live = scores[scores["session"] < scores["end"]]
    states = live["state"].to_numpy()
    flags = [
        (
            "expected curve",
            None,
            (states == "red") | ((states == "yellow") if alert == "yellow" else False),
        ),
        ("rational rule", None, live["rational_alert"].to_numpy()),
    ]
    for f in failures:
        flags.append(("failure probability", f, live[f"p_{f}"].to_numpy() >= 0.5))
        if ideal:
            flags.append(("ideal (history)", f, live[f"ideal_history_{f}"].to_numpy() >= 0.5))
    rows = []
    codes = pd.factorize(live["client"])[0]
    n_clients = int(codes.max() + 1) if codes.size else 0
    sess = live["session"].to_numpy()

    def share_flagged(flag, rows_in):
        """Share of the clients with a row in ``rows_in`` flagged at one of those rows."""
        seen = np.bincount(codes[rows_in], minlength=n_clients) > 0
        hit = np.bincount(codes[rows_in & flag], minlength=n_clients) > 0
        return float(hit.sum() / seen.sum()) if seen.any() else np.nan

    every = np.ones(len(live), bool)
    for name, failure, flag in flags:
        flag = np.broadcast_to(np.asarray(flag, dtype=bool), every.shape)
        row = {
            "predictor": name,
            "failure": failure,
            "clients": int(n_clients),
            "ever_flagged": share_flagged(flag, every),
            "alerts_per_100_sessions": float(100 * flag.mean()),
        }
        for t in sessions:
            row[f"flagged_by_{t}"] = share_flagged(flag, sess <= t)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- alliance signals
def alliance_signals(
    data: pd.DataFrame,
    alliance: str,
    *,
    client: str = "client_id",
    session: str = "session",
    cutoff: float | None = 36.0,
    drop: float | None = 1.0,
    k_sd: float = 2.0,
    min_prior: int = 3,
    reference: ExpectedResponse | None = None,
    band: float = 0.10,
) -> pd.DataFrame:
    """Alliance warning signals per client and session, each from past sessions only.

    Parameters
    ----------
    data : DataFrame
        Long table with the (client-rated) alliance score; higher = better alliance.
    alliance, client, session : str
        Column names.
    cutoff : float or None
        ``low``: score below this (SRS: 36, Duncan et al. 2003). ``None`` disables it; set it on
        the scale of the measure for others (e.g. a study's 10th percentile of the WAI-SR).
    drop : float or None
        ``drop``: a fall of at least this many points from the previous session (OpenFIT: 1 SRS
        point). ``None`` disables it.
    k_sd, min_prior : float, int
        ``rupture``: the score is more than ``k_sd`` SDs below the mean of the client's earlier
        sessions, the SD also from the earlier sessions only (an expanding window; needs
        ``min_prior`` earlier sessions). Unlike :func:`alliance_lib.ruptures` with the
        within-client SD of all sessions, no future session enters.
    reference : ExpectedResponse, optional
        Expected alliance curves (fitted with ``direction="higher_is_better"`` and the first
        alliance session as ``intake_session``). ``below_expected``: the score is below the
        ``band`` percentile of the client's own expected curve. Default: no such signal.

    Returns
    -------
    DataFrame
        One row per client x session with an alliance score: ``client``, ``session``,
        ``alliance``, ``low``, ``drop``, ``rupture``, ``below_expected`` (nullable: not
        computable yet) and ``any_signal``.

    Notes
    -----
    Prior mean and SD come from running sums of ``a`` and ``a^2`` per client shifted by one
    session (``sd^2 = (S2 - S1^2 / n) / (n - 1)``), so deleting later sessions leaves every
    earlier signal unchanged.

    References
    ----------
    Duncan, B. L., Miller, S. D., Sparks, J. A., et al. (2003). The Session Rating Scale.
    *Journal of Brief Therapy, 3*(1), 3-12.
    Stiles, W. B., Glick, M. J., Osatuke, K., et al. (2004). Patterns of alliance development
    and the rupture-repair hypothesis. *Journal of Counseling Psychology, 51*(1), 81-92.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a"] * 5, "session": [1, 2, 3, 4, 5],
    ...                   "srs": [38.0, 38.5, 37.5, 38.0, 33.0]})
    >>> alliance_signals(d, "srs")[["low", "drop", "rupture"]].iloc[-1].tolist()
    [True, True, True]
    """
    _need(data, [alliance, client, session])
    d = pd.DataFrame(
        {
            "client": data[client].astype(str).to_numpy(),
            "session": _numeric(data[session], session),
            "a": _numeric(data[alliance], alliance),
        }
    ).dropna()
    d = d.drop_duplicates(["client", "session"]).sort_values(["client", "session"], kind="stable")
    d = d.reset_index(drop=True)
    codes = pd.factorize(d["client"])[0]
    a = d["a"].to_numpy()
    first = np.r_[True, codes[1:] != codes[:-1]]
    n_prior = _cum_by_client(codes, np.ones(len(a))) - 1
    s1 = _cum_by_client(codes, a) - a
    s2 = _cum_by_client(codes, a * a) - a * a
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prior = s1 / n_prior
        sd_prior = np.sqrt(np.clip((s2 - s1 * s1 / n_prior) / (n_prior - 1), 0, None))
    prev = np.where(first, np.nan, np.r_[np.nan, a[:-1]])
    out = pd.DataFrame({client: d["client"], session: d["session"], "alliance": a})
    out["low"] = (a < cutoff) if cutoff is not None else pd.array([pd.NA] * len(a), "boolean")
    if drop is not None:
        dr = pd.array(prev - a >= drop, dtype="boolean")
        dr[first] = pd.NA
        out["drop"] = dr
    else:
        out["drop"] = pd.array([pd.NA] * len(a), "boolean")
    with np.errstate(invalid="ignore"):
        rup = pd.array(a < mean_prior - k_sd * sd_prior, dtype="boolean")
    rup[n_prior < max(min_prior, 2)] = pd.NA
    out["rupture"] = rup
    if reference is not None:
        intake = pd.Series(a[first], index=d["client"][first])
        iv = intake.reindex(d["client"]).to_numpy()
        pw = reference.percentile(iv, d["session"].to_numpy(), a)
        be = pd.array(pw > 1 - band, dtype="boolean")
        be[d["session"].to_numpy() <= reference.intake_session] = pd.NA
        out["below_expected"] = be
    else:
        out["below_expected"] = pd.array([pd.NA] * len(a), "boolean")
    sig = out[["low", "drop", "rupture", "below_expected"]].astype("boolean")
    out["any_signal"] = sig.fillna(False).any(axis=1)
    if pd.api.types.is_integer_dtype(data[session]):
        out[session] = out[session].astype(data[session].dtype)
    out.attrs["settings"] = {"cutoff": cutoff, "drop": drop, "k_sd": k_sd, "min_prior": min_prior}
    return out.reset_index(drop=True)


def evaluate_alliance_signals(
    data: pd.DataFrame,
    alliance: str,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    therapist: str | None = None,
    by_sessions=(3, 5),
    planned_sessions: int | None = None,
    cutoff: float | None = 36.0,
    drop: float | None = 1.0,
    k_sd: float = 2.0,
    min_prior: int = 2,
    rci: float | None = None,
    instrument: str | None = None,
    outcome_cutoff: float | None = None,
    alliance_intake_session: int = 1,
    k: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Alliance signals as predictors of drop-out, and what they add to the outcome alert.

    For each evaluation session t (``by_sessions``), among clients still in treatment at t:
    whether each alliance signal was raised at any session up to t predicts drop-out (the last
    session before ``planned_sessions``, default the study's largest session) and no reliable
    improvement; and the outcome alert (red by t, expected curves fitted out of sample, k-fold by
    client) alone is compared with "outcome red or the signal" (sensitivity, specificity, alert
    burden).

    Returns
    -------
    DataFrame
        One row per session t x signal x target (``dropout`` | ``no_reliable_improvement``):
        ``n``, ``n_events``, ``flag_rate``, ``sensitivity``, ``specificity``, ``ppv``, ``auc``
        (of the binary signal: (sensitivity + specificity) / 2), ``risk_ratio`` and, for the
        combination rows (signal ``outcome red``, ``outcome red or <signal>``), the same
        accuracy figures.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=8, n_clients=160, seed=2, output="scores")
    >>> ev = evaluate_alliance_signals(df, "alliance", "outcome", cutoff=3.0, drop=0.5,
    ...                                rci=14, outcome_cutoff=64)
    >>> sorted(ev["target"].unique())
    ['dropout', 'no_reliable_improvement']
    """
    _need(data, [alliance, outcome, client, session, therapist])
    cutoff_o, rci, direction = _norms(instrument, outcome_cutoff, rci, None)
    if rci is None:
        raise DataError("pass rci= (or instrument=) for the outcome's reliable change")
    ids = data[client].astype(str)
    folds = pd.Series(
        np.random.default_rng(seed).permutation(ids.nunique()) % k, index=ids.unique()
    )
    fold_of = folds.reindex(ids).to_numpy()
    sig_parts, nt_parts = [], []
    # on large data folds after the first start from its optima (see validate_alerts)
    warm = folds.size >= WARM_START_MIN_CLIENTS
    a_start = o_start = None
    for f in range(k):
        train, test = data[fold_of != f], data[fold_of == f]
        aref = expected_response(
            train,
            alliance,
            client=client,
            session=session,
            intake_session=alliance_intake_session,
            direction="higher_is_better",
            start=a_start,
        )
        sig_parts.append(
            alliance_signals(
                test,
                alliance,
                client=client,
                session=session,
                cutoff=cutoff,
                drop=drop,
                k_sd=k_sd,
                min_prior=min_prior,
                reference=aref,
            )
        )
        oref = expected_response(
            train, outcome, client=client, session=session, direction=direction, start=o_start
        )
        if warm:
            a_start, o_start = aref.fit.theta, oref.fit.theta
        nt_parts.append(
            not_on_track(
                test,
                outcome,
                client=client,
                session=session,
                reference=oref,
                cutoff=cutoff_o,
                rci=rci,
            )
        )
    sig = pd.concat(sig_parts, ignore_index=True)
    nt = pd.concat(nt_parts, ignore_index=True)
    sig[client] = sig[client].astype(str)
    nt[client] = nt[client].astype(str)
    sess = pd.DataFrame(
        {
            "client": ids,
            "session": _numeric(data[session], session),
            "y": _numeric(data[outcome], outcome),
        }
    ).dropna()
    last = sess.groupby("client")["session"].max()
    planned = float(planned_sessions if planned_sessions is not None else last.max())
    dropout = (last < planned).astype(float)
    y0 = sess[sess["session"] == 0].drop_duplicates("client").set_index("client")["y"]
    y_end = sess.sort_values("session").groupby("client")["y"].last()
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    nri = (sign * (y0 - y_end.reindex(y0.index)) < rci).astype(float)
    names = ["low", "drop", "rupture", "below_expected", "any_signal"]
    rows = []
    for t in by_sessions:
        present = last[last >= t].index
        s_up = sig[sig[session] <= t]
        ever = s_up[names].fillna(False).astype(bool).groupby(s_up[client].to_numpy()).any()
        ever = ever.reindex(present).fillna(False).astype(bool)
        n_up = nt[nt[session] <= t]
        red = (n_up["state"] == "red").groupby(n_up[client].to_numpy()).any()
        red = red.reindex(present).fillna(False).astype(bool)
        for target, lab in (("dropout", dropout), ("no_reliable_improvement", nri)):
            # the event must come after the alert session: drop-outs leave after t
            y = lab.reindex(present)
            if target == "no_reliable_improvement":
                y = y[last.reindex(present) > t]
            ok = y.dropna().index
            yy = y.loc[ok].to_numpy().astype(bool)
            cand = {nm: ever.loc[ok, nm].to_numpy() for nm in names}
            cand["outcome red"] = red.loc[ok].to_numpy()
            for nm in names:
                cand[f"outcome red or {nm}"] = cand["outcome red"] | cand[nm]
            for nm, flag in cand.items():
                m = _metrics(flag.astype(float), flag, yy, np.ones((1, yy.size)))
                p1 = yy[flag].mean() if flag.any() else np.nan
                p0 = yy[~flag].mean() if (~flag).any() else np.nan
                rows.append(
                    {
                        "session": t,
                        "signal": nm,
                        "target": target,
                        "n": int(yy.size),
                        "n_events": int(yy.sum()),
                        "flag_rate": float(flag.mean()) if flag.size else np.nan,
                        "sensitivity": m["sensitivity"][0],
                        "specificity": m["specificity"][0],
                        "ppv": m["ppv"][0],
                        "auc": m["auc"][0],
                        "risk_ratio": p1 / p0 if p0 else np.nan,
                    }
                )
    return pd.DataFrame(rows)
