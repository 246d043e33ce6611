"""Responder / non-responder outcome trajectories with known per-client truth (private).

:func:`alliance_lib.simulate_study` calls :func:`apply_response` when it is given
``response=``: the outcome of every simulated session is then regenerated from a two-class
growth mixture, keeping the simulator's clients, therapists, sessions, alliance and drop-out as
they are. Because each client's class, intercept and slope are returned, the ideal predictor of
treatment failure is known (:func:`ideal_failure_probability`), so outcome-monitoring alerts can
be scored against the best any method could do.

The model, session s = 0 (intake), 1, 2, ... of client i (class k_i) with therapist j::

    y_is = intake_mean + b0_i + (slope_k + b1_i + v_j) s + e_is,
    k_i ~ Bernoulli(nonresponder_share) (1 = non-responder),
    b0 ~ N(0, sd_intercept^2), b1 ~ N(0, sd_slope^2), v ~ N(0, sd_therapist_slope^2),
    e ~ N(0, sd_residual^2).

The panel passed in must have the columns ``client`` and ``therapist`` (integer codes 0..n-1),
``session`` and ``outcome``; only ``outcome`` is replaced. A separate random stream (seeded
from ``seed``) is used, so the simulator's own draws, and hence its default output, are
untouched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ResponseMixture", "apply_response", "client_truth", "ideal_failure_probability"]

_STREAM = 15  # second word of the seed sequence: this module's own random stream


@dataclass(frozen=True)
class ResponseMixture:
    """Parameters of the responder / non-responder outcome model (OQ-45.2-like total scores).

    Attributes
    ----------
    nonresponder_share : float
        Probability that a client is a non-responder.
    intake_mean, sd_intercept : float
        Mean and between-client SD of the true intake level.
    responder_slope, nonresponder_slope : float
        Mean change per session in each class (negative = improvement on a higher-is-worse scale).
    sd_slope, sd_therapist_slope : float
        Between-client (within class) and between-therapist SD of the slope.
    sd_residual : float
        Session-to-session measurement and state noise.

    Examples
    --------
    >>> ResponseMixture(nonresponder_share=0.0).nonresponder_share
    0.0
    """

    nonresponder_share: float = 0.25
    intake_mean: float = 80.0
    sd_intercept: float = 18.0
    responder_slope: float = -2.2
    nonresponder_slope: float = 0.4
    sd_slope: float = 0.8
    sd_therapist_slope: float = 0.3
    sd_residual: float = 7.0

    def to_dict(self) -> dict:
        return asdict(self)


def _as_mixture(response) -> ResponseMixture:
    if isinstance(response, ResponseMixture):
        return response
    if isinstance(response, dict):
        return ResponseMixture(**response)
    if response is True:
        return ResponseMixture()
    raise TypeError(
        f"response must be a ResponseMixture, a dict of its fields or True, not {response!r}"
    )


def apply_response(panel: pd.DataFrame, response, *, seed) -> tuple[pd.DataFrame, dict]:
    """Replace the panel's outcome by responder / non-responder trajectories.

    Returns the new panel and the extra ``attrs``: ``response`` (the parameters) and ``clients``
    (per-client truth as plain lists: ``client_id``, ``therapist_id``, ``responder``,
    ``intercept``, ``slope``), so that pandas can copy and compare the attributes.
    """
    from alliance_lib.simulate import _client_labels, _therapist_labels

    mix = _as_mixture(response)
    if not 0.0 <= mix.nonresponder_share <= 1.0:
        raise ValueError(f"nonresponder_share must be in [0, 1], not {mix.nonresponder_share!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM]))
    client = panel["client"].to_numpy()
    therapist = panel["therapist"].to_numpy()
    n_clients = int(client.max()) + 1
    n_therapists = int(therapist.max()) + 1
    therapist_of = np.zeros(n_clients, dtype=np.intp)
    therapist_of[client] = therapist
    nonresponder = rng.random(n_clients) < mix.nonresponder_share
    intercept = mix.intake_mean + rng.normal(0.0, mix.sd_intercept, n_clients)
    v = rng.normal(0.0, mix.sd_therapist_slope, n_therapists)
    slope = (
        np.where(nonresponder, mix.nonresponder_slope, mix.responder_slope)
        + rng.normal(0.0, mix.sd_slope, n_clients)
        + v[therapist_of]
    )
    s = panel["session"].to_numpy(dtype=float)
    noise = rng.normal(0.0, mix.sd_residual, len(panel))
    out = panel.copy()
    out["outcome"] = intercept[client] + slope[client] * s + noise
    extra = {
        "response": mix.to_dict(),
        "clients": {
            "client_id": _client_labels(n_clients).tolist(),
            "therapist_id": _therapist_labels(n_therapists)[therapist_of].tolist(),
            "responder": (~nonresponder).tolist(),
            "intercept": intercept.tolist(),
            "slope": slope.tolist(),
        },
    }
    return out, extra


def client_truth(data: pd.DataFrame) -> pd.DataFrame:
    """Per-client true trajectory parameters of a ``simulate_study(response=...)`` table.

    Returns
    -------
    DataFrame
        Indexed by ``client_id``: ``therapist_id``, ``responder``, ``intercept``, ``slope``.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=3, n_clients=12, seed=1, output="scores",
    ...                        response={"nonresponder_share": 0.5})
    >>> client_truth(df).columns.tolist()
    ['therapist_id', 'responder', 'intercept', 'slope']
    """
    clients = data.attrs.get("clients")
    if not clients:
        from alliance_lib.errors import DataError

        raise DataError(
            "these data carry no per-client truth",
            hint="simulate them with simulate_study(..., response=ResponseMixture())",
        )
    return pd.DataFrame(clients).set_index("client_id")


def _fail_probability(mu, sd, intake, failure, rci, cutoff):
    """P(failure) for a normal end score N(mu, sd^2) on a higher-is-worse scale."""
    if failure == "reliable_deterioration":
        return stats.norm.sf((intake + rci - mu) / sd)
    if failure == "no_reliable_improvement":
        return stats.norm.sf((intake - rci - mu) / sd)
    if failure == "not_recovered":
        p = stats.norm.sf((np.minimum(cutoff, intake - rci) - mu) / sd)
        return np.where(intake >= cutoff, p, np.nan)
    raise ValueError(f"unknown failure definition {failure!r}")


def _wide_outcome(data: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Outcome per client (rows) and session (columns), the first row of a repeated session."""
    return data.pivot_table(index="client_id", columns="session", values=outcome, aggfunc="first")


def ideal_failure_probability(
    data: pd.DataFrame,
    *,
    at_session: int,
    end: pd.Series,
    failure: str,
    rci: float,
    cutoff: float,
    outcome: str = "outcome",
    given: str = "history",
    wide: pd.DataFrame | None = None,
) -> pd.Series:
    """The ideal predictor of failure at each client's end session, from the generating model.

    Parameters
    ----------
    data : DataFrame
        ``simulate_study(response=...)`` output (``client_id``, ``session``, the outcome).
    at_session : int
        The alert session t: ``given="history"`` uses the outcomes of sessions 0..t.
    end : Series
        End session of each client (index ``client_id``); failure is judged there.
    failure : {"reliable_deterioration", "no_reliable_improvement", "not_recovered"}
    rci, cutoff : float
        Reliable change (points) and clinical cutoff (clinical if >= cutoff).
    given : {"history", "truth"}
        ``"history"``: the Bayes posterior P(failure | y_0..y_t) under the true mixture model and
        parameters (the best any alert using these sessions can do, per client, ignoring what
        other clients reveal about the therapist). ``"truth"``: knowing the client's true class,
        intercept and slope (only the end-of-treatment noise is unknown): an upper bound.
    wide : DataFrame, optional
        The outcome as one row per client and one column per session (``data.pivot_table(
        index="client_id", columns="session", values=outcome, aggfunc="first")``), when the
        caller evaluates many sessions: pivoted once instead of once per call (same values).

    Returns
    -------
    Series
        Probability per client (index ``client_id``) with sessions 0..t all observed; NaN for
        ``not_recovered`` when the intake is below the cutoff.
    """
    mix = ResponseMixture(**data.attrs["response"])
    truth = client_truth(data)
    t = int(at_session)
    if wide is None:
        wide = _wide_outcome(data, outcome)
    cols = [s for s in range(t + 1)]
    if not set(cols) <= set(wide.columns):
        return pd.Series(dtype=float)
    hist = wide[cols].dropna()
    ids = hist.index.intersection(end.index)
    hist = hist.loc[ids]
    y = hist.to_numpy(dtype=float)
    intake = y[:, 0]
    T = end.loc[ids].to_numpy(dtype=float)
    sig2 = mix.sd_residual**2
    if given == "truth":
        tr = truth.loc[ids]
        mu = tr["intercept"].to_numpy() + tr["slope"].to_numpy() * T
        p = _fail_probability(mu, np.sqrt(sig2), intake, failure, rci, cutoff)
        return pd.Series(p, index=ids)
    if given != "history":
        raise ValueError(f"given must be 'history' or 'truth', not {given!r}")
    s = np.arange(t + 1, dtype=float)
    tau2 = mix.sd_slope**2 + mix.sd_therapist_slope**2
    b2 = mix.sd_intercept**2
    sigma = b2 + tau2 * np.outer(s, s) + sig2 * np.eye(t + 1)
    sinv = np.linalg.inv(sigma)
    c = b2 + tau2 * T[:, None] * s[None, :]  # cov(y_hist, y_T), one row per client
    v_end = b2 + tau2 * T * T + sig2 - np.einsum("ij,jk,ik->i", c, sinv, c)
    shares = (1.0 - mix.nonresponder_share, mix.nonresponder_share)
    slopes = (mix.responder_slope, mix.nonresponder_slope)
    logw, pk = [], []
    for share, slope in zip(shares, slopes, strict=True):
        resid = y - (mix.intake_mean + slope * s)[None, :]
        quad = np.einsum("ij,jk,ik->i", resid, sinv, resid)
        logw.append(np.log(share) - 0.5 * quad if share > 0 else np.full(len(ids), -np.inf))
        mu = mix.intake_mean + slope * T + np.einsum("ij,jk,ik->i", c, sinv, resid)
        pk.append(_fail_probability(mu, np.sqrt(v_end), intake, failure, rci, cutoff))
    logw = np.vstack(logw)
    w = np.exp(logw - logw.max(axis=0))
    w /= w.sum(axis=0)
    return pd.Series((w * np.vstack(pk)).sum(axis=0), index=ids)
