"""Full-information maximum likelihood (FIML) for linear structural equation models in RAM form.

Arrays only, no pandas; the panel-model layer lives in :mod:`alliance_lib.cross_lagged`.

A model over ``k`` variables (observed and latent) is given by the reticular action model
(McArdle & McDonald 1984)::

    v = A v + m + u,   cov(u) = S   =>   mu = F B m,   Sigma = F B S B' F',   B = (I - A)^-1

where ``F`` selects the observed variables. Each entry of ``A``, ``S`` and ``m`` is either fixed
or a free parameter; one parameter may fill several entries (an equality constraint, as a lavaan
label does). Rows of the data may miss any variables: the log-likelihood is summed over the
missing-data patterns (Arbuckle 1996), each pattern contributing through its sufficient statistics
(count, mean, cross-products), so one evaluation costs time in the number of patterns, not rows:
the rows are grouped once (:func:`missing_patterns`, one integer sort), and the patterns with
the same number of observed variables are handled as one stack of matrices.

The gradient is analytic; the observed information is the central-difference Jacobian of that
gradient (the Hessian lavaan uses for ``information = "observed"`` with ``missing = "ml"``).
The unrestricted (h1) model is fitted by EM, the independence (baseline) model in closed form,
for the chi-square test and the fit indices.

References
----------
Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data. In
G. A. Marcoulides & R. E. Schumacker (Eds.), *Advanced structural equation modeling*
(pp. 243-277). Erlbaum.
McArdle, J. J., & McDonald, R. P. (1984). Some algebraic properties of the reticular action
model for moment structures. *British Journal of Mathematical and Statistical Psychology, 37*,
234-251.
Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. *Journal of
Statistical Software, 48*(2), 1-36.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = rng.normal(size=(200, 1))
>>> X = np.hstack([x, 0.5 * x + rng.normal(size=(200, 1))])
>>> # y = b x + e: variables (x, y); A[1, 0] = b; S diagonal; free means
>>> spec = RamSpec(n_vars=2, observed=np.array([0, 1]),
...                a_entries=[(1, 0, 0)], s_entries=[(0, 0, 1), (1, 1, 2)],
...                m_entries=[(0, 3), (1, 4)], n_par=5)
>>> fit = fit_ram(spec, X, start=np.array([0.0, 1.0, 1.0, 0.0, 0.0]))
>>> round(float(fit.theta[0]), 3) == round(float(np.polyfit(X[:, 0], X[:, 1], 1)[0]), 3)
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from alliance_lib.errors import DataError

__all__ = [
    "RamSpec",
    "Patterns",
    "RamFit",
    "missing_patterns",
    "implied_moments",
    "loglik",
    "loglik_gradient",
    "loglik_gradients",
    "observed_information",
    "fit_ram",
    "saturated_fit",
    "independence_fit",
]

_LOG2PI = math.log(2.0 * math.pi)


@dataclass
class RamSpec:
    """A RAM model: which entries of ``A`` (directed), ``S`` (symmetric) and ``m`` are free.

    Attributes
    ----------
    n_vars : int
        Variables in the model (observed and latent).
    observed : ndarray of int
        Model variable of each data column, in data-column order.
    a_entries : list of (row, col, par)
        ``A[row, col]`` (effect of ``col`` on ``row``) is parameter ``par``.
    s_entries : list of (row, col, par)
        ``S[row, col] = S[col, row]`` is parameter ``par``.
    m_entries : list of (var, par)
        ``m[var]`` is parameter ``par``.
    n_par : int
        Free parameters.
    a_fixed, s_fixed, m_fixed : list
        Fixed non-zero entries, ``(row, col, value)`` / ``(var, value)``.
    names : list of str
        Parameter names (optional, for messages).
    """

    n_vars: int
    observed: np.ndarray
    a_entries: list
    s_entries: list
    m_entries: list
    n_par: int
    a_fixed: list = field(default_factory=list)
    s_fixed: list = field(default_factory=list)
    m_fixed: list = field(default_factory=list)
    names: list = field(default_factory=list)

    def __post_init__(self):
        k = self.n_vars
        self.observed = np.asarray(self.observed, dtype=int)

        def arr(entries, width):
            a = np.asarray(entries, dtype=float).reshape(-1, width)
            return a

        a = arr(self.a_entries, 3).astype(int)
        s = arr(self.s_entries, 3).astype(int)
        m = arr(self.m_entries, 2).astype(int)
        self._a = (a[:, 0], a[:, 1], a[:, 2])
        self._s = (s[:, 0], s[:, 1], s[:, 2])
        self._m = (m[:, 0], m[:, 1])
        self._s_off = s[:, 0] != s[:, 1]
        self.A0 = np.zeros((k, k))
        self.S0 = np.zeros((k, k))
        self.m0 = np.zeros(k)
        for r, c, v in self.a_fixed:
            self.A0[r, c] = v
        for r, c, v in self.s_fixed:
            self.S0[r, c] = self.S0[c, r] = v
        for r, v in self.m_fixed:
            self.m0[r] = v
        used = np.concatenate([a[:, 2], s[:, 2], m[:, 1]])
        if used.size and (used.min() < 0 or used.max() >= self.n_par):
            raise ValueError("parameter index out of range")
        if np.setdiff1d(np.arange(self.n_par), used).size:
            raise ValueError("every parameter must fill at least one matrix entry")

    def matrices(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``A``, ``S`` and ``m`` at ``theta``."""
        A = self.A0.copy()
        S = self.S0.copy()
        m = self.m0.copy()
        ar, ac, ap = self._a
        A[ar, ac] = theta[ap]
        sr, sc, sp = self._s
        S[sr, sc] = theta[sp]
        S[sc, sr] = theta[sp]
        mr, mp = self._m
        m[mr] = theta[mp]
        return A, S, m


@dataclass
class Patterns:
    """Rows grouped by their missing-data pattern, with per-pattern sufficient statistics.

    Attributes
    ----------
    observed : list of ndarray
        Data columns observed in each pattern.
    n : ndarray
        Rows per pattern.
    mean : list of ndarray
        Mean of the observed columns in the pattern.
    cov : list of ndarray
        ML (divide-by-n) covariance of the observed columns in the pattern.
    n_rows, n_cols : int
    groups : list of tuple
        Patterns with the same number of observed columns, stacked for batched algebra:
        ``(obs (G, k), n (G,), mean (G, k), cov (G, k, k), mis (G, p - k))``.
    """

    observed: list
    n: np.ndarray
    mean: list
    cov: list
    n_rows: int
    n_cols: int
    groups: list = field(default_factory=list)
    flat: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.groups:
            if not self.flat:
                p = self.n_cols
                self.flat = [o[:, :, None] * p + o[:, None, :] for o, *_ in self.groups]
            return
        sizes = np.array([len(o) for o in self.observed])
        allcols = np.arange(self.n_cols)
        for k in np.unique(sizes):
            sel = np.flatnonzero(sizes == k)
            obs = np.array([self.observed[g] for g in sel], dtype=int).reshape(len(sel), k)
            mis = np.array(
                [np.setdiff1d(allcols, self.observed[g]) for g in sel], dtype=int
            ).reshape(len(sel), self.n_cols - k)
            self.groups.append(
                (
                    obs,
                    self.n[sel].astype(float),
                    np.array([self.mean[g] for g in sel]).reshape(len(sel), k),
                    np.array([self.cov[g] for g in sel]).reshape(len(sel), k, k),
                    mis,
                )
            )
            self.flat.append(obs[:, :, None] * self.n_cols + obs[:, None, :])


def missing_patterns(X: np.ndarray) -> Patterns:
    """Group the rows of ``X`` (NaN = missing) by missing-data pattern.

    Rows with no observed value carry no information and are left out. Patterns are ordered as
    ``np.unique(mask, axis=0)`` orders the rows of the observed-value mask (lexicographically,
    first column first), and the rows of a pattern keep their order, so the sufficient statistics
    do not depend on how the grouping is computed. Up to 62 columns the mask rows are coded as
    integers (one sort of ``n`` integers); the statistics are then one pass over the sorted rows
    per pattern.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, np.nan], [2.0, 5.0]])
    >>> p = missing_patterns(X)
    >>> p.n.tolist(), [o.tolist() for o in p.observed]
    ([1, 2], [[0], [0, 1]])
    """
    X = np.asarray(X, dtype=float)
    mask = ~np.isnan(X)
    keep = mask.any(axis=1)
    if not keep.all():
        X, mask = X[keep], mask[keep]
    p = X.shape[1]
    if p <= 62:
        # bit p-1-j for column j: integer order = lexicographic order of the mask rows
        weights = np.left_shift(np.int64(1), np.arange(p - 1, -1, -1, dtype=np.int64))
        key = mask.astype(np.int64) @ weights
        ucodes, inverse = np.unique(key, return_inverse=True)
        codes = ((ucodes[:, None] & weights[None, :]) != 0).reshape(len(ucodes), p)
    else:
        codes, inverse = np.unique(mask, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(codes) + 1))
    Xo = X[order]
    observed, ns, means, covs = [], [], [], []
    for g in range(len(codes)):  # one pass per pattern (not per row)
        rows = Xo[bounds[g] : bounds[g + 1]][:, codes[g]]
        mu = rows.mean(axis=0)
        d = rows - mu
        observed.append(np.flatnonzero(codes[g]))
        ns.append(len(rows))
        means.append(mu)
        covs.append(d.T @ d / len(rows))
    return Patterns(observed, np.asarray(ns), means, covs, int(X.shape[0]), int(X.shape[1]))


def implied_moments(spec: RamSpec, theta: np.ndarray):
    """Model-implied mean and covariance of the observed variables (data-column order).

    Returns
    -------
    mu, Sigma, E, S, m, B : ndarray
        ``E = F B`` maps model variables to observed ones.
    """
    A, S, m = spec.matrices(theta)
    B = np.linalg.inv(np.eye(spec.n_vars) - A)
    E = B[spec.observed]
    return E @ m, E @ S @ E.T, E, S, m, B


def _group_terms(obs, n, xbar, cov, flat, mu, sig_flat, p, gradient):
    """One group's log-likelihood and (optionally) d/dSigma (flat), d/dmu; None if not PD."""
    k = obs.shape[1]
    s_oo = sig_flat[flat]
    try:
        chol = np.linalg.cholesky(s_oo)
    except np.linalg.LinAlgError:
        return None
    diag = np.diagonal(chol, axis1=1, axis2=2)
    if not np.all(diag > 0):
        return None
    inv = np.linalg.inv(s_oo)
    d = xbar - mu[obs]
    W = cov + d[:, :, None] * d[:, None, :]
    logdet = 2.0 * np.log(diag).sum(axis=1)
    ll = float(-0.5 * np.sum(n * (k * _LOG2PI + logdet + np.sum(inv * W, axis=(1, 2)))))
    if not gradient:
        return ll, None, None
    iw = inv @ W @ inv
    gc = (-0.5 * n)[:, None, None] * (inv - iw)
    Gp = np.bincount(flat.ravel(), weights=gc.ravel(), minlength=p * p)
    gm = n[:, None] * np.einsum("gij,gj->gi", inv, d)
    gp = np.bincount(obs.ravel(), weights=gm.ravel(), minlength=p)
    return ll, Gp, gp


def _pattern_terms(pat: Patterns, mu: np.ndarray, sigma: np.ndarray, gradient: bool):
    """Log-likelihood and (optionally) d/dSigma, d/dmu, summed over patterns."""
    total = 0.0
    p = pat.n_cols
    G = np.zeros(p * p) if gradient else None
    g = np.zeros(p) if gradient else None
    sig_flat = np.ascontiguousarray(sigma).reshape(-1)
    # batched over the patterns with the same number of observed columns
    for (obs, n, xbar, cov, _), flat in zip(pat.groups, pat.flat, strict=True):
        r = _group_terms(obs, n, xbar, cov, flat, mu, sig_flat, p, gradient)
        if r is None:
            return -np.inf, None, None
        total += r[0]
        if gradient:
            G += r[1]
            g += r[2]
    if gradient:
        G = G.reshape(p, p)
    return total, G, g


def loglik(spec: RamSpec, theta: np.ndarray, patterns: Patterns) -> float:
    """FIML log-likelihood at ``theta`` (``-inf`` where the implied covariance is not PD)."""
    mu, sigma, *_ = implied_moments(spec, theta)
    return _pattern_terms(patterns, mu, sigma, gradient=False)[0]


# working set of one batched step (about the size of a core's L2 cache: larger stacks of small
# matrices run slower, not faster)
BATCH_BYTES = 256 * 2**10


def _pattern_terms_batch(pat: Patterns, mus: np.ndarray, sigmas: np.ndarray):
    """:func:`_pattern_terms` with gradient at ``K`` moment sets at once (``mus (K, p)``,
    ``sigmas (K, p, p)``), equal to ``K`` separate calls bit for bit.

    The pattern matrices of a group are stacked over the sets (``(K G, k, k)``: the per-set
    calls' shapes with a longer first axis, so LAPACK and the reductions see the same matrices
    and rows); a group of one pattern is looped over the sets, since numpy reduces a length-1
    stack along another path. Returns ``ll (K,)``, ``G (K, p, p)``, ``g (K, p)``; a set whose
    covariance is not positive definite for some pattern gets ``-inf`` (``G``, ``g`` then
    meaningless).
    """
    K, p = mus.shape
    total = np.zeros(K)
    bad = np.zeros(K, dtype=bool)
    G = np.zeros((K, p * p))
    g = np.zeros((K, p))
    sig_flat = np.ascontiguousarray(sigmas).reshape(K, p * p)
    for (obs, n, xbar, cov, _), flat in zip(pat.groups, pat.flat, strict=True):
        ng, k = obs.shape
        step = K if ng == 1 else int(max(1, min(K, BATCH_BYTES // (8 * ng * k * k))))
        for c0 in range(0, K, step):
            c1 = min(K, c0 + step)
            if ng == 1:
                for j in range(c0, c1):
                    if bad[j]:
                        continue
                    r = _group_terms(obs, n, xbar, cov, flat, mus[j], sig_flat[j], p, True)
                    if r is None:
                        bad[j] = True
                        continue
                    total[j] += r[0]
                    G[j] += r[1]
                    g[j] += r[2]
                continue
            kk = c1 - c0
            s_oo = sig_flat[c0:c1][:, flat].reshape(kk * ng, k, k)
            try:
                chol = np.linalg.cholesky(s_oo)
            except np.linalg.LinAlgError:
                chol = np.full_like(s_oo, np.nan)
                for j in range(kk):  # rare: find the sets that fail
                    try:
                        chol[j * ng : (j + 1) * ng] = np.linalg.cholesky(
                            s_oo[j * ng : (j + 1) * ng]
                        )
                    except np.linalg.LinAlgError:
                        pass
            diag = np.diagonal(chol, axis1=1, axis2=2)
            bad[c0:c1] |= ~np.all((diag > 0).reshape(kk, ng * k), axis=1)
            okr = np.repeat(~bad[c0:c1], ng)
            if not okr.any():
                continue
            inv = np.full_like(s_oo, np.nan)
            inv[okr] = np.linalg.inv(s_oo[okr])
            d = (xbar[None] - mus[c0:c1][:, obs]).reshape(kk * ng, k)
            covk = np.broadcast_to(cov[None], (kk, ng, k, k)).reshape(kk * ng, k, k)
            W = covk + d[:, :, None] * d[:, None, :]
            with np.errstate(invalid="ignore", divide="ignore"):
                logdet = 2.0 * np.log(diag).sum(axis=1)
            nk = np.tile(n, kk)
            terms = (nk * (k * _LOG2PI + logdet + np.sum(inv * W, axis=(1, 2)))).reshape(kk, ng)
            for j in range(kk):
                total[c0 + j] += float(-0.5 * np.sum(terms[j]))
            iw = inv @ W @ inv
            gc = ((-0.5 * nk)[:, None, None] * (inv - iw)).reshape(kk, ng * k * k)
            gm = (nk[:, None] * np.einsum("gij,gj->gi", inv, d)).reshape(kk, ng * k)
            fr, orv = flat.ravel(), obs.ravel()
            for j in range(kk):
                G[c0 + j] += np.bincount(fr, weights=gc[j], minlength=p * p)
                g[c0 + j] += np.bincount(orv, weights=gm[j], minlength=p)
    total[bad] = -np.inf
    return total, G.reshape(K, p, p), g


def _chain_rule(spec: RamSpec, E, S, m, B, G, g) -> np.ndarray:
    """Gradient with respect to ``theta`` from ``G = dl/dSigma`` and ``g = dl/dmu``."""
    grad = np.zeros(spec.n_par)
    EGE = E.T @ G @ E
    Eg = E.T @ g
    dA = 2.0 * EGE @ S @ B.T + np.outer(Eg, B @ m)
    ar, ac, ap = spec._a
    sr, sc, sp = spec._s
    mr, mp = spec._m
    ds = EGE[sr, sc] + np.where(spec._s_off, EGE[sc, sr], 0.0)
    grad += np.bincount(ap, weights=dA[ar, ac], minlength=spec.n_par)
    grad += np.bincount(sp, weights=ds, minlength=spec.n_par)
    grad += np.bincount(mp, weights=Eg[mr], minlength=spec.n_par)
    return grad


def loglik_gradient(spec: RamSpec, theta: np.ndarray, patterns: Patterns):
    """FIML log-likelihood and its analytic gradient with respect to ``theta``.

    Notes
    -----
    With ``E = F B``, ``G = dl/dSigma`` and ``g = dl/dmu`` (summed over patterns)::

        dl/dS = E' G E,   dl/dm = E' g,   dl/dA = 2 E' G E S B' + E' g (B m)'

    and the gradient of a parameter sums the entries it fills (both triangles for an
    off-diagonal ``S`` entry).
    """
    mu, sigma, E, S, m, B = implied_moments(spec, theta)
    ll, G, g = _pattern_terms(patterns, mu, sigma, gradient=True)
    if not np.isfinite(ll):
        return ll, np.zeros(spec.n_par)
    return ll, _chain_rule(spec, E, S, m, B, G, g)


def loglik_gradients(spec: RamSpec, thetas: np.ndarray, patterns: Patterns) -> np.ndarray:
    """:func:`loglik_gradient` at each row of ``thetas`` (``(K, n_par)``), batched over the rows.

    Equal, bit for bit, to ``K`` separate calls (the same operations on stacked pattern
    matrices), at a fraction of the interpreter overhead; rows whose implied covariance is not
    positive definite get a zero gradient, as there. Used for the finite-difference
    information, whose ``n_par`` shifted gradients are independent.

    Parameters
    ----------
    spec : RamSpec
    thetas : ndarray, shape (K, n_par)
    patterns : Patterns

    Returns
    -------
    ndarray, shape (K, n_par)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2))
    >>> X[::7, 1] = np.nan
    >>> spec = RamSpec(n_vars=2, observed=np.array([0, 1]), a_entries=[(1, 0, 0)],
    ...                s_entries=[(0, 0, 1), (1, 1, 2)], m_entries=[(0, 3), (1, 4)], n_par=5)
    >>> pat = missing_patterns(X)
    >>> thetas = np.array([[0.1, 1.0, 1.0, 0.0, 0.0], [0.2, 0.9, 1.1, 0.1, 0.0]])
    >>> batch = loglik_gradients(spec, thetas, pat)
    >>> all(np.array_equal(batch[j], loglik_gradient(spec, thetas[j], pat)[1]) for j in range(2))
    True
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    K = thetas.shape[0]
    chunk = 64  # sets per call: the implied moments of a block, (chunk, p, p) each
    out = np.zeros((K, spec.n_par))
    for c0 in range(0, K, chunk):
        block = thetas[c0 : c0 + chunk]
        moments = [implied_moments(spec, t) for t in block]
        mus = np.stack([mo[0] for mo in moments])
        sigmas = np.stack([mo[1] for mo in moments])
        ll, G, g = _pattern_terms_batch(patterns, mus, sigmas)
        for j, (_, _, E, S, m, B) in enumerate(moments):
            if np.isfinite(ll[j]):
                out[c0 + j] = _chain_rule(spec, E, S, m, B, G[j], g[j])
    return out


def observed_information(
    spec: RamSpec, theta: np.ndarray, patterns: Patterns, *, central: bool = False
) -> np.ndarray:
    """Negative Hessian of the log-likelihood: finite differences of the analytic gradient.

    Forward differences (step ``1e-6 max(0.01, |theta|)``, symmetrised) by default: their
    relative error, ~1e-6, is far below what standard errors are reported to, at half the cost
    of ``central=True``. The gradients at the shifted points are evaluated in batches
    (:func:`loglik_gradients`).
    """
    k = spec.n_par
    theta = np.asarray(theta, dtype=float)
    g0 = None if central else loglik_gradient(spec, theta, patterns)[1]
    h = np.array([(1e-5 if central else 1e-6) * max(1e-2, abs(theta[j])) for j in range(k)])
    tp = np.repeat(theta[None], k, axis=0)
    tp[np.arange(k), np.arange(k)] += h
    if central:
        tm = np.repeat(theta[None], k, axis=0)
        tm[np.arange(k), np.arange(k)] -= h
        H = ((loglik_gradients(spec, tp, patterns) - loglik_gradients(spec, tm, patterns)).T) / (
            2.0 * h
        )
    else:
        H = (loglik_gradients(spec, tp, patterns) - g0).T / h
    H = 0.5 * (H + H.T)
    return -H


@dataclass
class RamFit:
    """An FIML fit of a :class:`RamSpec`.

    Attributes
    ----------
    theta : ndarray
        Estimates.
    loglik : float
    gradient : ndarray
        Gradient of the log-likelihood at ``theta`` (about 0 at convergence).
    information : ndarray
        Observed information (negative Hessian).
    vcov : ndarray
        Inverse of the information (NaN when it is singular).
    se : ndarray
    converged : bool
    iterations : int
    n_rows : int
        Rows with at least one observed value.
    n_patterns : int
    warnings : list of str
        Boundary and identification diagnostics (negative variances, non-positive-definite latent
        covariance, singular information, non-convergence).
    hess_inv : ndarray or None
        BFGS's final inverse-Hessian approximation of the mean log-likelihood per row.
    """

    theta: np.ndarray
    loglik: float
    gradient: np.ndarray
    information: np.ndarray
    vcov: np.ndarray
    se: np.ndarray
    converged: bool
    iterations: int
    n_rows: int
    n_patterns: int
    warnings: list = field(default_factory=list)
    hess_inv: np.ndarray | None = None


def _diagnostics(spec: RamSpec, theta: np.ndarray, info: np.ndarray) -> list[str]:
    out = []
    _, S, _ = spec.matrices(theta)
    sr, sc, sp = spec._s
    names = spec.names or [f"par{j}" for j in range(spec.n_par)]
    for r, c, p in zip(sr, sc, sp, strict=False):
        if r == c and theta[p] <= 0:
            out.append(
                f"variance {names[p]} is estimated at {theta[p]:.4g} <= 0 (a boundary or Heywood "
                "case): the model may be over-specified for these data (fewer waves or a simpler "
                "model, e.g. constraints='stationary')"
            )
    latent = np.setdiff1d(np.arange(spec.n_vars), spec.observed)
    if latent.size:
        ev = np.linalg.eigvalsh(S[np.ix_(latent, latent)])
        keep = np.abs(np.diag(S[np.ix_(latent, latent)])) > 0
        if keep.any():
            ev = np.linalg.eigvalsh(S[np.ix_(latent[keep], latent[keep])])
            if ev.min() < -1e-8 * max(1.0, ev.max()):
                out.append(
                    "the covariance matrix of the latent variables is not positive definite "
                    f"(smallest eigenvalue {ev.min():.3g}): check the random-intercept and "
                    "within-client (co)variances"
                )
    ev = np.linalg.eigvalsh(info)
    if ev.min() <= 1e-10 * max(1.0, ev.max()):
        out.append(
            "the information matrix is singular or not positive definite: the model may not be "
            "identified; standard errors are not reliable"
        )
    return out


def fit_ram(
    spec: RamSpec,
    X: np.ndarray | Patterns,
    start: np.ndarray,
    *,
    tol: float = 1e-9,
    max_iter: int = 2000,
    information: bool = True,
    hess_inv0: np.ndarray | None = None,
) -> RamFit:
    """Maximise the FIML log-likelihood of ``spec`` from ``start``.

    BFGS on the analytic gradient, then Newton steps on the observed information (with step
    halving) until the Newton decrement is below ``tol``; standard errors from the inverse of
    the observed information. With ``information=False`` (only the log-likelihood is needed,
    e.g. for a likelihood-ratio test) BFGS alone, and no information or SEs (NaN).
    ``hess_inv0`` starts BFGS's inverse-Hessian approximation (of the mean log-likelihood per
    row), e.g. ``hess_inv`` of a pilot fit on a subset of the rows.

    Raises
    ------
    DataError
        When the start gives a non-positive-definite implied covariance.
    """
    pat = X if isinstance(X, Patterns) else missing_patterns(X)
    n = max(pat.n_rows, 1)
    theta = np.asarray(start, dtype=float).copy()
    if not np.isfinite(loglik(spec, theta, pat)):
        raise DataError(
            "the starting values give a non-positive-definite model covariance matrix",
            hint="check for variables with (almost) no variance or no observed values",
        )

    def fun(t):
        ll, gr = loglik_gradient(spec, t, pat)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(t)
        return -ll / n, -gr / n

    if hess_inv0 is not None:
        hess_inv0 = 0.5 * (hess_inv0 + hess_inv0.T)
        if not np.all(np.isfinite(hess_inv0)) or np.linalg.eigvalsh(hess_inv0).min() <= 0:
            hess_inv0 = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = optimize.minimize(
            fun,
            theta,
            jac=True,
            method="BFGS",
            options={"maxiter": max_iter, "gtol": 1e-7, "hess_inv0": hess_inv0},
        )
    theta = res.x
    iterations = int(res.nit)
    ll, gr = loglik_gradient(spec, theta, pat)
    if not information:
        k = spec.n_par
        return RamFit(
            theta=theta,
            loglik=float(ll),
            gradient=gr,
            information=np.full((k, k), np.nan),
            vcov=np.full((k, k), np.nan),
            se=np.full(k, np.nan),
            converged=bool(np.max(np.abs(gr)) / n < 1e-5),
            iterations=iterations,
            n_rows=pat.n_rows,
            n_patterns=len(pat.n),
            hess_inv=getattr(res, "hess_inv", None),
        )
    info = observed_information(spec, theta, pat)
    converged = False
    for _ in range(30):
        try:
            step = np.linalg.solve(info, gr)
        except np.linalg.LinAlgError:
            break
        decrement = float(gr @ step) / n
        if not np.isfinite(decrement) or decrement < 0:
            break
        if decrement < tol:
            converged = True
            break
        lam = 1.0
        while lam > 1e-4:
            cand = theta + lam * step
            ll_c = loglik(spec, cand, pat)
            if np.isfinite(ll_c) and ll_c >= ll - 1e-10 * abs(ll):
                break
            lam /= 2.0
        else:
            break
        theta = cand
        iterations += 1
        ll, gr = loglik_gradient(spec, theta, pat)
        if decrement > 1e-6 or lam < 1.0:
            # close to the optimum the information barely changes over one Newton step (the
            # next decrement is ~ its square): keep it, saving 2 x n_par gradient evaluations
            info = observed_information(spec, theta, pat)
    if not converged:
        # BFGS alone may have converged when the information is not positive definite
        converged = bool(np.max(np.abs(gr)) / n < 1e-5)
    try:
        vcov = np.linalg.inv(info)
        se = np.sqrt(np.where(np.diag(vcov) > 0, np.diag(vcov), np.nan))
    except np.linalg.LinAlgError:
        vcov = np.full_like(info, np.nan)
        se = np.full(spec.n_par, np.nan)
    diag = _diagnostics(spec, theta, info)
    if not converged:
        diag.append(
            f"the optimiser did not converge (largest gradient {np.max(np.abs(gr)):.3g}): "
            "estimates are not reliable; try constraints='stationary' or fewer waves"
        )
    return RamFit(
        theta=theta,
        loglik=float(ll),
        gradient=gr,
        information=info,
        vcov=vcov,
        se=se,
        converged=converged,
        iterations=iterations,
        n_rows=pat.n_rows,
        n_patterns=len(pat.n),
        warnings=diag,
    )


def saturated_fit(
    pat: Patterns, *, tol: float = 1e-11, max_iter: int = 20000
) -> tuple[np.ndarray, np.ndarray, float]:
    """The unrestricted (h1) model: ML mean and covariance under missing data, by EM.

    Returns
    -------
    mu, Sigma, loglik
        ``loglik`` is the FIML log-likelihood at the EM solution.

    References
    ----------
    Little, R. J. A., & Rubin, D. B. (2002). *Statistical analysis with missing data* (2nd ed.),
    section 11.2. Wiley.
    """
    p = pat.n_cols
    N = pat.n.sum()
    # start: pairwise-free marginal moments
    sums = np.zeros(p)
    cnt = np.zeros(p)
    sq = np.zeros(p)
    for obs, n, xbar, cov in zip(pat.observed, pat.n, pat.mean, pat.cov, strict=False):
        sums[obs] += n * xbar
        cnt[obs] += n
        sq[obs] += n * (np.diag(cov) + xbar**2)
    if np.any(cnt == 0):
        raise DataError("a variable has no observed value", hint="drop waves nobody attended")
    mu = sums / cnt
    sigma = np.diag(np.maximum(sq / cnt - mu**2, 1e-8))
    ll_old = -np.inf
    ll = _pattern_terms(pat, mu, sigma, False)[0]
    for _ in range(max_iter):
        T1 = np.zeros(p)
        T2 = np.zeros(p * p)
        for obs, n, xbar, cov, mis in pat.groups:
            k, m = obs.shape[1], mis.shape[1]
            perm = np.concatenate([obs, mis], axis=1)  # (G, p): observed first
            ex = np.empty((len(n), p))
            C = np.zeros((len(n), p, p))
            ex[:, :k] = xbar
            C[:, :k, :k] = cov
            if m:
                s_oo = sigma[obs[:, :, None], obs[:, None, :]]
                s_om = sigma[obs[:, :, None], mis[:, None, :]]
                s_mm = sigma[mis[:, :, None], mis[:, None, :]]
                beta = np.swapaxes(np.linalg.solve(s_oo, s_om), 1, 2)  # (G, m, k)
                ex[:, k:] = mu[mis] + np.einsum("gmk,gk->gm", beta, xbar - mu[obs])
                bc = beta @ cov
                C[:, k:, :k] = bc
                C[:, :k, k:] = np.swapaxes(bc, 1, 2)
                C[:, k:, k:] = bc @ np.swapaxes(beta, 1, 2) + s_mm - beta @ s_om
            M = C + ex[:, :, None] * ex[:, None, :]
            T1 += np.bincount(perm.ravel(), weights=(n[:, None] * ex).ravel(), minlength=p)
            flat = perm[:, :, None] * p + perm[:, None, :]
            T2 += np.bincount(flat.ravel(), weights=(n[:, None, None] * M).ravel(), minlength=p * p)
        mu = T1 / N
        sigma = T2.reshape(p, p) / N - np.outer(mu, mu)
        sigma = 0.5 * (sigma + sigma.T)
        ll_old, ll = ll, _pattern_terms(pat, mu, sigma, False)[0]
        if abs(ll - ll_old) < tol * max(1.0, abs(ll)):
            break
    return mu, sigma, float(ll)


def independence_fit(pat: Patterns) -> tuple[np.ndarray, np.ndarray, float]:
    """The baseline (independence) model: free means and variances, zero covariances.

    Under FIML it factorises over variables, so its estimates are the mean and the ML variance of
    each variable's observed values.
    """
    p = pat.n_cols
    sums = np.zeros(p)
    cnt = np.zeros(p)
    sq = np.zeros(p)
    for obs, n, xbar, cov in zip(pat.observed, pat.n, pat.mean, pat.cov, strict=False):
        sums[obs] += n * xbar
        cnt[obs] += n
        sq[obs] += n * (np.diag(cov) + xbar**2)
    mu = sums / cnt
    var = sq / cnt - mu**2
    ll = float(-0.5 * np.sum(cnt * (_LOG2PI + np.log(var) + 1.0)))
    return mu, var, ll
