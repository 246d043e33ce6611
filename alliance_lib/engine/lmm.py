"""Profiled (RE)ML for nested linear mixed models with tiny per-client random-effect blocks.

The model is the one lme4 fits with ``y ~ X + (Z | client)`` and optionally ``+ (1 | therapist)``
when clients are nested in therapists::

    y = X beta + Z b_client + 1 b_therapist + e,
    b_client ~ N(0, sigma^2 Lambda Lambda'),  b_therapist ~ N(0, sigma^2 theta_t^2),
    e ~ N(0, sigma^2 I).

Everything here works on NumPy arrays; the pandas layer lives in :mod:`alliance_lib.trajectories`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from alliance_lib.errors import DataError
from alliance_lib.optim import free_components

__all__ = [
    "EngineError",
    "EngineFit",
    "NestedLMM",
    "SINGULAR_TOL",
    "GRADIENT_TOL",
    "fit_nested_lmm",
]

SINGULAR_TOL = 1e-4
"""lme4's ``lme4.singular.tolerance``: a relative Cholesky diagonal below this is a boundary fit."""
GRADIENT_TOL = 2e-3
"""lme4's ``check.conv.grad`` tolerance on the (Hessian-scaled) gradient of the deviance.

Convergence is this test, never the optimiser's flag: the KKT conditions of the bounded
profiled-deviance problem (diagonal relative Cholesky factors and the therapist factor >= 0) with
lme4's statistic ``max(pmin(|chol(H)^{-1} g|, |g|))`` over the components left free by
:func:`alliance_lib.optim.free_components` (a component at 0 whose gradient points out of the
feasible box is held there by its multiplier and is not tested), below this tolerance."""
_LOG2PI = math.log(2.0 * math.pi)


def _single_blas_thread():
    """Limit BLAS to one thread while fitting (optional ``threadpoolctl``).

    Every evaluation makes many tiny BLAS calls; idle OpenBLAS worker threads spinning between
    them compete with the main thread on small machines and can triple the fit time.
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    if _CONTROLLER is None:  # finding the BLAS libraries costs ~10 ms: do it once
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


#: The arrays cannot define a nested mixed model (shape, missing values, nesting, rank): the
#: library's :class:`DataError` (the name is kept).
EngineError = DataError


def _codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """(levels, integer code per row); dense non-negative integer codes are used as they are."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0:
        counts = np.bincount(arr)
        if counts.all():
            return np.arange(counts.size), arr.astype(np.intp, copy=False)
    levels, code = np.unique(arr, return_inverse=True)
    return levels, code.reshape(-1)


def _inv_logdet(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and log-determinants of a stack of small SPD matrices stored client-last.

    ``a`` has shape (q, q, m) (matrix entries first, one matrix per column); closed forms for
    q = 1, 2 keep every operation a contiguous vector operation over the m matrices.
    """
    q = a.shape[0]
    if q == 1:
        return 1.0 / a, np.log(a[0, 0])
    if q == 2:
        a11, a12, a22 = a[0, 0], a[0, 1], a[1, 1]
        det = a11 * a22 - a12 * a12
        inv = np.empty_like(a)
        r = 1.0 / det
        inv[0, 0] = a22 * r
        inv[1, 1] = a11 * r
        inv[0, 1] = inv[1, 0] = -a12 * r
        return inv, np.log(det)
    stack = np.moveaxis(a, -1, 0)
    _, logdet = np.linalg.slogdet(stack)
    return np.ascontiguousarray(np.moveaxis(np.linalg.inv(stack), 0, -1)), logdet


def _bmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-column matrix product of client-last stacks: (a, b, m) x (b, c, m) -> (a, c, m)."""
    out = np.empty((x.shape[0], y.shape[1], x.shape[2]))
    for i in range(x.shape[0]):
        np.multiply(x[i, 0][None, :], y[0], out=out[i])
        for j in range(1, x.shape[1]):
            out[i] += x[i, j] * y[j]
    return out


def _bmv(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-column matrix-vector product: (a, b, m) x (b, m) -> (a, m)."""
    out = x[:, 0] * v[0]
    for j in range(1, x.shape[1]):
        out += x[:, j] * v[j]
    return out


def _lmul(lam_t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Shared small matrix times every stacked matrix: (a, b) x (b, ...) -> (a, ...)."""
    out = np.zeros((lam_t.shape[0],) + x.shape[1:])
    for i in range(lam_t.shape[0]):
        for j in range(lam_t.shape[1]):
            if lam_t[i, j] != 0.0:
                out[i] += lam_t[i, j] * x[j]
    return out


def _rmul(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Every stacked matrix times a shared small matrix: (a, b, m) x (b, c) -> (a, c, m)."""
    out = np.zeros((x.shape[0], lam.shape[1], x.shape[2]))
    for c in range(lam.shape[1]):
        for b in range(lam.shape[0]):
            if lam[b, c] != 0.0:
                out[:, c] += x[:, b] * lam[b, c]
    return out


def _sum_outer(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum over columns m and the middle index: (a, l, m), (b, l, m) -> (a, b)."""
    return np.einsum("alm,blm->ab", x, y)


@dataclass
class EngineFit:
    """Result of :meth:`NestedLMM.fit` on the original (unscaled) parameterisation.

    Attributes
    ----------
    theta : ndarray
        Relative covariance parameters as lme4 orders them: the lower triangle of the client
        factor column by column, then the therapist factor (if any).
    beta, vcov : ndarray
        Fixed effects and their covariance ``sigma^2 (X' V^{-1} X)^{-1}``.
    sigma : float
        Residual standard deviation (REML: ``pwrss / (n - p)``; ML: ``pwrss / n``).
    cov_client : ndarray
        Client random-effect covariance matrix (q, q) in the units of ``Z``.
    var_therapist : float or None
        Therapist intercept variance.
    deviance : float
        The REML criterion or the ML deviance (-2 log-likelihood) at the optimum.
    reml : bool
    converged : bool
        The KKT test at the returned theta: lme4's scaled gradient statistic ``max_grad`` on
        the free components below ``GRADIENT_TOL`` (see :data:`GRADIENT_TOL`). The optimiser's
        ``success`` flag plays no part; its message is kept in ``optimizer_message``.
    singular : bool
        lme4's ``isSingular``: a diagonal element of ``theta`` below ``SINGULAR_TOL``.
    max_grad : float
        lme4's convergence statistic ``max(pmin(|chol(H)^{-1} g|, |g|))``.
    n_evals : int
        Deviance evaluations (each O(number of clients)).
    optimizer_message : str
    warnings : list of str
        Captured messages in lme4's wording (singular fit, failed convergence).
    theta_scaled : ndarray
        ``theta`` on the engine's internal scale (time columns rescaled).
    """

    theta: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    cov_client: np.ndarray
    var_therapist: float | None
    deviance: float
    reml: bool
    converged: bool
    singular: bool
    max_grad: float
    n_evals: int
    optimizer_message: str
    warnings: list[str] = field(default_factory=list)
    theta_scaled: np.ndarray | None = None

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log restricted likelihood for REML fits), as lme4's logLik."""
        return -0.5 * self.deviance


class NestedLMM:
    """A two- or three-level linear mixed model with its per-client sufficient statistics.

    Parameters
    ----------
    y : array (n,)
        Outcome.
    X : array (n, p)
        Fixed-effect design; if its first column is all ones it is treated as the intercept and
        the other columns (and ``y``) are centred internally for numerical accuracy.
    Z : array (n, q)
        Client random-effect design (usually an intercept column and time columns).
    client : array (n,)
        Client labels (any sortable values).
    therapist : array (n,), optional
        Therapist labels; every client must have a single therapist (nesting).
    reml : bool
        REML (default) or ML.

    Notes
    -----
    The profiled deviance of Bates, Maechler, Bolker & Walker (2015) is evaluated with the
    block structure of ``A = Lambda' Z' Z Lambda + I``: one q x q block ``A_i`` per client and,
    with therapists, a scalar block ``C_j = theta_t^2 n_j + 1`` coupled only to its own clients.
    With ``W = [X, y]`` and ``G_i = Lambda' Z_i' W_i``::

        M = W'W - sum_i G_i' A_i^{-1} G_i - sum_j e_j e_j' / S_j,
        S_j = C_j - sum_{i in j} B_i' A_i^{-1} B_i,   B_i = theta_t Lambda' Z_i' 1,
        e_j = theta_t 1'W_j - sum_{i in j} B_i' A_i^{-1} G_i,
        log|A| = sum_i log|A_i| + sum_j log S_j.

    Partitioning ``M = [[R_X'R_X, c], [c', y'y*]]`` gives ``beta = (R_X'R_X)^{-1} c`` and the
    penalised residual sum of squares ``r^2 = y'y* - c' beta``; then::

        ML:   d(theta) = log|A| + n (1 + log(2 pi r^2 / n))
        REML: d(theta) = log|A| + log|R_X'R_X| + (n - p) (1 + log(2 pi r^2 / (n - p)))

    Per-client sums are computed once; each evaluation is vectorised small-block algebra, so one
    evaluation costs O(number of clients) after an O(rows) set-up.

    References
    ----------
    Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
    using lme4. Journal of Statistical Software, 67(1), 1-48. doi:10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> client = np.repeat(np.arange(30), 5)
    >>> t = np.tile(np.arange(5.0), 30)
    >>> y = 2 + 0.5 * t + rng.normal(0, 1, 30)[client] + rng.normal(0, 0.5, 150)
    >>> X = np.column_stack([np.ones(150), t])
    >>> fit = NestedLMM(y, X, X, client).fit()
    >>> bool(fit.converged), round(float(fit.beta[1]), 2)
    (True, 0.51)
    """

    def __init__(self, y, X, Z, client, therapist=None, *, reml: bool = True):
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        Z = np.asarray(Z, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if Z.ndim == 1:
            Z = Z[:, None]
        n = y.shape[0]
        if y.ndim != 1 or X.shape[0] != n or Z.shape[0] != n or len(client) != n:
            raise EngineError(
                f"y, X, Z and client must have the same number of rows; got {y.shape}, "
                f"{X.shape}, {Z.shape}, {len(client)}"
            )
        for name, arr in (("y", y), ("X", X), ("Z", Z)):
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.flatnonzero(bad.reshape(n, -1).any(axis=1))[0])
                raise EngineError(f"{name} has a missing or infinite value at row {row}")
        p, q = X.shape[1], Z.shape[1]
        if n <= p:
            raise EngineError(f"{n} rows cannot estimate {p} fixed effects")
        self.n, self.p, self.q, self.reml = n, p, q, bool(reml)

        # Client (and therapist) blocks by integer codes; sums use bincount, so no sorting.
        client_levels, client_code = _codes(client)
        n_clients = client_levels.size
        self.client_levels = client_levels  # label of each client block
        self.n_clients = n_clients
        self.row_block = client_code
        self.client_nobs = np.bincount(client_code, minlength=n_clients)
        if therapist is not None:
            ther_levels, ther_code = _codes(therapist)
            tc = np.empty(n_clients, dtype=np.intp)
            tc[client_code] = ther_code
            bad = np.flatnonzero(tc[client_code] != ther_code)
            if bad.size:
                lab = client_levels[client_code[bad[0]]]
                raise EngineError(
                    f"client {lab!r} appears with more than one therapist (row {int(bad[0])}); "
                    "clients must be nested in therapists"
                )
            self.block_ther = tc
            self.row_ther = ther_code
            self.therapist_levels = ther_levels
            self.n_therapists = ther_levels.size

        # Internal rescaling (and centring when there is an intercept) for conditioning.
        has_intercept = bool(np.all(X[:, 0] == 1.0))
        xc = np.zeros(p)
        if has_intercept:
            xc[1:] = X[:, 1:].mean(axis=0)
            xs = np.ones(p)
            xs[1:] = X[:, 1:].std(axis=0)
            yc = float(y.mean())
        else:
            xs = np.sqrt((X * X).mean(axis=0))
            yc = 0.0
        if np.any(xs == 0):
            k = int(np.flatnonzero(xs == 0)[0])
            raise EngineError(f"column {k} of X is constant (or zero) and duplicates the intercept")
        zs = np.sqrt((Z * Z).mean(axis=0))
        if np.any(zs == 0):
            raise EngineError(f"column {int(np.flatnonzero(zs == 0)[0])} of Z is all zero")
        self.x_center, self.x_scale, self.y_center, self.z_scale = xc, xs, yc, zs
        self.has_intercept = has_intercept
        # beta_original = T @ beta_scaled (+ y centre on the intercept)
        T = np.diag(1.0 / xs)
        if has_intercept:
            T[0, 1:] = -xc[1:] / xs[1:]
        self._T = T
        self._reml_const = 2.0 * float(np.log(xs).sum())

        Xs = (X - xc) / xs
        Zs = Z / zs
        W = np.empty((n, p + 1))
        W[:, :p] = Xs
        W[:, p] = y - yc
        self.WtW = W.T @ W

        def per_client(v):
            return np.bincount(client_code, weights=v, minlength=n_clients)

        # client-last layout: (q, q, n_clients) and (q, p + 1, n_clients)
        k = p + 1
        self.ZtZ = np.empty((q, q, n_clients))
        for i in range(q):
            for j in range(i, q):
                self.ZtZ[i, j] = per_client(Zs[:, i] * Zs[:, j])
                self.ZtZ[j, i] = self.ZtZ[i, j]
        self.ZtW = np.empty((q, k, n_clients))
        for i in range(q):
            for j in range(k):
                self.ZtW[i, j] = per_client(Zs[:, i] * W[:, j])
        # keep the design for residuals / predictions in original row order
        self._y, self._X, self._Z = y, X, Z

        if therapist is not None:
            nt = self.n_therapists
            self.z1 = np.array([per_client(Zs[:, i]) for i in range(q)])  # Z_i' 1, (q, nc)
            self.tW = np.column_stack(
                [np.bincount(ther_code, weights=W[:, j], minlength=nt) for j in range(k)]
            )  # 1'W_j, (nt, k)
            self.ther_nobs = np.bincount(ther_code, minlength=nt).astype(float)
        else:
            self.n_therapists = 0
            self.therapist_levels = None

        rows, cols = np.triu_indices(q)
        self._lrow, self._lcol = cols, rows  # column-major lower triangle, lme4's theta order
        self.n_theta_client = rows.size
        self.n_theta = self.n_theta_client + (1 if therapist is not None else 0)
        lower = np.where(self._lrow == self._lcol, 0.0, -np.inf)
        if therapist is not None:
            lower = np.append(lower, 0.0)
        self.lower = lower
        self.n_evals = 0

    # ------------------------------------------------------------------ from client sums
    @classmethod
    def from_client_sums(
        cls,
        cross,
        *,
        p: int,
        x_center,
        x_scale,
        y_center: float,
        z_scale,
        client_labels,
        therapist_codes=None,
        therapist_labels=None,
        reml: bool = True,
    ) -> NestedLMM:
        """The model from per-client sums of cross products (no rows needed).

        Parameters
        ----------
        cross : array (k + q, k + q, n_clients)
            For each client, ``sum_t v_t v_t'`` over its rows of ``v = [Xs, y - y_center, Zs]``
            with ``Xs = (X - x_center) / x_scale`` (first column the intercept, all ones),
            ``Zs = Z / z_scale`` and ``k = p + 1``: what a group-by sum of the row products
            gives (Dask, Spark or SQL; see :mod:`alliance_lib.distributed`).
        p : int
            Fixed effects (columns of X, intercept first).
        x_center, x_scale, y_center, z_scale
            The centring and scaling used for ``v`` (any values; the row constructor uses the
            means and standard deviations of the data).
        client_labels : array (n_clients,)
        therapist_codes : int array (n_clients,), optional
            Each client's therapist (``0 .. n_therapists - 1``), for the three-level model.
        therapist_labels : array, optional
        reml : bool

        Returns
        -------
        NestedLMM
            Fits like the row constructor on the same data (the same profiled deviance up to
            rounding); :meth:`fitted` and :meth:`residuals` need rows and are not available.

        Examples
        --------
        >>> rng = np.random.default_rng(1)
        >>> client = np.repeat(np.arange(30), 5)
        >>> t = np.tile(np.arange(5.0), 30)
        >>> y = 2 + 0.5 * t + rng.normal(0, 1, 30)[client] + rng.normal(0, 0.5, 150)
        >>> X = np.column_stack([np.ones(150), t])
        >>> rows = NestedLMM(y, X, X, client)
        >>> v = np.column_stack([(X - rows.x_center) / rows.x_scale, y - rows.y_center,
        ...                      X / rows.z_scale])
        >>> cross = np.stack([np.bincount(client, weights=v[:, a] * v[:, b])
        ...                   for a in range(5) for b in range(5)]).reshape(5, 5, 30)
        >>> sums = NestedLMM.from_client_sums(cross, p=2, x_center=rows.x_center,
        ...     x_scale=rows.x_scale, y_center=rows.y_center, z_scale=rows.z_scale,
        ...     client_labels=np.arange(30))
        >>> bool(abs(sums.fit().beta[1] - rows.fit().beta[1]) < 1e-10)
        True
        """
        cross = np.asarray(cross, dtype=float)
        k = p + 1
        q = cross.shape[0] - k
        if q < 1 or cross.shape[1] != cross.shape[0] or cross.ndim != 3:
            raise EngineError(f"cross must be (p + 1 + q, p + 1 + q, n_clients); got {cross.shape}")
        self = cls.__new__(cls)
        nobs = cross[0, 0]
        n = int(round(float(nobs.sum())))
        if n <= p:
            raise EngineError(f"{n} rows cannot estimate {p} fixed effects")
        self.n, self.p, self.q, self.reml = n, p, q, bool(reml)
        n_clients = cross.shape[2]
        self.client_levels = np.asarray(client_labels)
        self.n_clients = n_clients
        self.row_block = None
        self.client_nobs = np.rint(nobs).astype(np.intp)
        self.x_center = np.asarray(x_center, dtype=float)
        self.x_scale = np.asarray(x_scale, dtype=float)
        self.y_center = float(y_center)
        self.z_scale = np.asarray(z_scale, dtype=float)
        self.has_intercept = True
        T = np.diag(1.0 / self.x_scale)
        T[0, 1:] = -self.x_center[1:] / self.x_scale[1:]
        self._T = T
        self._reml_const = 2.0 * float(np.log(self.x_scale).sum())
        self.WtW = cross[:k, :k].sum(axis=-1)
        self.ZtZ = np.ascontiguousarray(cross[k:, k:])
        self.ZtW = np.ascontiguousarray(cross[k:, :k])
        self._y = self._X = self._Z = None
        self._cross = cross
        if therapist_codes is not None:
            tc = np.asarray(therapist_codes, dtype=np.intp)
            nt = int(tc.max()) + 1 if therapist_labels is None else len(therapist_labels)
            self.block_ther = tc
            self.row_ther = None
            self.therapist_levels = (
                np.arange(nt) if therapist_labels is None else np.asarray(therapist_labels)
            )
            self.n_therapists = nt
            self.z1 = np.ascontiguousarray(cross[k:, 0])  # Z_i' 1 (Xs[:, 0] is all ones)
            self.tW = np.column_stack(
                [np.bincount(tc, weights=cross[0, j], minlength=nt) for j in range(k)]
            )
            self.ther_nobs = np.bincount(tc, weights=nobs, minlength=nt)
        else:
            self.n_therapists = 0
            self.therapist_levels = None
        rows, cols = np.triu_indices(q)
        self._lrow, self._lcol = cols, rows
        self.n_theta_client = rows.size
        self.n_theta = self.n_theta_client + (1 if therapist_codes is not None else 0)
        lower = np.where(self._lrow == self._lcol, 0.0, -np.inf)
        if therapist_codes is not None:
            lower = np.append(lower, 0.0)
        self.lower = lower
        self.n_evals = 0
        return self

    def _client_subset(self, keep: np.ndarray) -> NestedLMM:
        """The sums model of the clients ``keep`` (boolean), re-centred and re-scaled on them as
        the row constructor would (an affine change of ``v``)."""
        p, k, q = self.p, self.p + 1, self.q
        cross = self._cross[:, :, keep]
        tot = cross.sum(axis=-1)
        n = tot[0, 0]
        mean = tot[0] / n  # means of v (Xs[:, 0] = 1)
        xc = self.x_center.copy()
        xs = self.x_scale.copy()
        xc[1:] = mean[1:p] * self.x_scale[1:] + self.x_center[1:]
        xs[1:] = self.x_scale[1:] * np.sqrt(np.diag(tot)[1:p] / n - mean[1:p] ** 2)
        yc = self.y_center + mean[p]
        zs = self.z_scale * np.sqrt(np.diag(tot)[k:] / n)
        A = np.eye(k + q)
        A[np.arange(1, p), np.arange(1, p)] = self.x_scale[1:] / xs[1:]
        A[0, 1:p] = (self.x_center[1:] - xc[1:]) / xs[1:]
        A[0, p] = self.y_center - yc
        A[np.arange(k, k + q), np.arange(k, k + q)] = self.z_scale / zs
        new = np.einsum("ba,bcm,cd->adm", A, cross, A)
        ther = None
        if self.n_therapists:
            used, ther = np.unique(self.block_ther[keep], return_inverse=True)
        return NestedLMM.from_client_sums(
            new,
            p=p,
            x_center=xc,
            x_scale=xs,
            y_center=yc,
            z_scale=zs,
            client_labels=self.client_levels[keep],
            therapist_codes=ther,
            reml=self.reml,
        )

    # ------------------------------------------------------------------ core algebra
    def _tsum(self, v: np.ndarray) -> np.ndarray:
        """Sum per-client values (..., n_clients) within therapists -> (..., n_therapists)."""
        nt, tc = self.n_therapists, self.block_ther
        if v.ndim == 1:
            return np.bincount(tc, weights=v, minlength=nt)
        # one bincount over all rows (row r in bins r * nt ..): each bin adds the same values in
        # the same order as a bincount per row, so the sums are bit-identical, without the loop
        r = v.shape[0]
        codes = self.__dict__.get("_tsum_codes")
        if codes is None or codes.shape[0] < r:
            codes = tc[None, :] + nt * np.arange(r, dtype=np.intp)[:, None]
            self._tsum_codes = codes
        flat = np.bincount(codes[:r].ravel(), weights=v.ravel(), minlength=r * nt)
        return flat.reshape(r, nt)

    def _lambda(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.q, self.q))
        lam[self._lrow, self._lcol] = theta[: self.n_theta_client]
        return lam

    def _blocks(self, theta_s: np.ndarray) -> dict:
        """Evaluate the block algebra at scaled theta; returns intermediate quantities."""
        self.n_evals += 1
        q = self.q
        lam = self._lambda(theta_s)
        A = _rmul(_lmul(lam.T, self.ZtZ), lam)
        for i in range(q):
            A[i, i] += 1.0
        Ainv, logdet_i = _inv_logdet(A)
        G = _lmul(lam.T, self.ZtW)  # (q, k, nc)
        AinvG = _bmul(Ainv, G)
        logdet = float(logdet_i.sum())
        M = self.WtW.copy()
        M -= np.einsum("akm,alm->kl", G, AinvG)
        out = {"lam": lam, "A": A, "Ainv": Ainv, "G": G, "AinvG": AinvG}
        if self.n_therapists:
            tt = float(theta_s[-1])
            B = tt * _lmul(lam.T, self.z1)  # (q, nc)
            AinvB = _bmv(Ainv, B)
            s = (B * AinvB).sum(axis=0)
            S = tt * tt * self.ther_nobs + 1.0 - self._tsum(s)
            BAG = (AinvB[:, None, :] * G).sum(axis=0)  # (k, nc)
            E = tt * self.tW - self._tsum(BAG).T  # (nt, k)
            logdet += float(np.log(S).sum())
            M -= (E / S[:, None]).T @ E
            out.update(tt=tt, B=B, AinvB=AinvB, S=S, E=E)
        out["logdetA"] = logdet
        out["M"] = M
        return out

    def _profile(self, blk: dict) -> tuple[float, float, np.ndarray, np.ndarray] | None:
        """(r^2, log|R_X'R_X|, beta_scaled, inverse of R_X'R_X) or None if not PD."""
        p = self.p
        M = blk["M"]
        Mxx = M[:p, :p]
        try:
            chol = np.linalg.cholesky(Mxx)
        except np.linalg.LinAlgError:
            return None
        Linv = np.linalg.inv(chol)
        Mxx_inv = Linv.T @ Linv
        beta = Mxx_inv @ M[:p, p]
        r2 = float(M[p, p] - M[:p, p] @ beta)
        if not r2 > 0:
            return None
        return r2, 2.0 * float(np.log(np.diag(chol)).sum()), beta, Mxx_inv

    def _trace_grad(self, blk: dict, F: np.ndarray) -> np.ndarray:
        """d/dtheta_s of log|V| + tr(F W'V^{-1} dV V^{-1} W) summed into one vector.

        Notes
        -----
        With ``V = I + Z~ Gamma Z~'`` (Z~ = client and therapist design, Gamma = Lambda Lambda'),
        ``U = A^{-1} Lambda' Z~'W`` (spherical modes of every column of W) and
        ``R = Z~'V^{-1}W = Z~'W - Z~'Z~ Lambda U``::

            d log|V| / d Lambda_ab = 2 (Z~'Z~ Lambda A^{-1})_ab,
            d tr(F W'V^{-1} dV V^{-1} W) / d Lambda_ab = 2 (R F U')_ab,

        summed over the diagonal blocks (clients; therapists), all of which share Lambda.
        """
        lam, Ainv, AinvG = blk["lam"], blk["Ainv"], blk["AinvG"]
        ZL = _rmul(self.ZtZ, lam)  # Z_i'Z_i Lambda, (q, q, nc)
        if self.n_therapists:
            tt, AinvB, S, E = blk["tt"], blk["AinvB"], blk["S"], blk["E"]
            bt = self.block_ther
            Ut = E / S[:, None]  # (nt, k)
            Ut_c = Ut.T[:, bt]  # (k, nc)
            AinvB_s = AinvB / S[bt]
            U = AinvB[:, None, :] * Ut_c[None, :, :]
            np.subtract(AinvG, U, out=U)
            ZLAB = _bmv(ZL, AinvB)  # Z_i'Z_i Lambda A_i^{-1} B_i, (q, nc)
            Kc = np.einsum("abm,bdm->ad", ZL, Ainv) + np.einsum("am,dm->ad", ZLAB, AinvB_s)
            Kc -= tt * np.einsum("am,bm->ab", self.z1, AinvB_s)
            z1L = _lmul(lam.T, self.z1)  # (q, nc): Lambda' z1_i
            R = _bmul(ZL, U)
            R += tt * self.z1[:, None, :] * Ut_c[None, :, :]
            np.subtract(self.ZtW, R, out=R)
            zLU = np.einsum("bm,bkm->km", z1L, U)
            Rt = self.tW - (tt * self.ther_nobs)[:, None] * Ut
            Rt -= self._tsum(zLU).T
            k_t = float((tt * self.ther_nobs / S).sum() - np.dot(z1L.ravel(), AinvB_s.ravel()))
            w_t = float(np.einsum("jk,kl,jl->", Rt, F, Ut))
        else:
            U = AinvG
            Kc = np.einsum("abm,bdm->ad", ZL, Ainv)
            R = self.ZtW - _bmul(ZL, U)
        RF = np.empty_like(R)  # R_i F, (q, k, nc)
        for j in range(F.shape[1]):
            RF[:, j] = F[0, j] * R[:, 0]
            for i in range(1, F.shape[0]):
                RF[:, j] += F[i, j] * R[:, i]
        Q = _sum_outer(RF, U)
        gm = 2.0 * (Kc + Q)
        g = gm[self._lrow, self._lcol]
        if self.n_therapists:
            g = np.append(g, 2.0 * (k_t + w_t))
        return g

    def value_and_grad(self, theta_s) -> tuple[float, np.ndarray]:
        """Profiled deviance and its analytic gradient at internally scaled theta."""
        theta_s = np.asarray(theta_s, dtype=float)
        blk = self._blocks(theta_s)
        prof = self._profile(blk)
        if prof is None:
            return np.inf, np.zeros_like(theta_s)
        r2, logdet_x, beta, Cinv = prof
        n, p = self.n, self.p
        c = np.append(-beta, 1.0)
        m = n - p if self.reml else n
        F = -(m / r2) * np.outer(c, c)
        if self.reml:
            F[:p, :p] -= Cinv
            dev = (
                blk["logdetA"] + logdet_x + self._reml_const + m * (1 + _LOG2PI + math.log(r2 / m))
            )
        else:
            dev = blk["logdetA"] + n * (1 + _LOG2PI + math.log(r2 / n))
        return dev, self._trace_grad(blk, F)

    def grad_varpar(self, varpar_s) -> np.ndarray:
        """Analytic gradient of :meth:`deviance_varpar` over (theta_s, sigma)."""
        varpar_s = np.asarray(varpar_s, dtype=float)
        sigma = float(varpar_s[-1])
        blk = self._blocks(varpar_s[:-1])
        r2, _, beta, Cinv = self._profile(blk)
        n, p = self.n, self.p
        c = np.append(-beta, 1.0)
        F = -np.outer(c, c) / sigma**2
        if self.reml:
            F[:p, :p] -= Cinv
        g = self._trace_grad(blk, F)
        m = n - p if self.reml else n
        return np.append(g, -2.0 * r2 / sigma**3 + 2.0 * m / sigma)

    def deviance_scaled(self, theta_s) -> float:
        """Profiled REML criterion or ML deviance at internally scaled theta."""
        theta_s = np.asarray(theta_s, dtype=float)
        blk = self._blocks(theta_s)
        prof = self._profile(blk)
        if prof is None:
            return np.inf
        r2, logdet_x, _, _ = prof
        n, p = self.n, self.p
        if self.reml:
            m = n - p
            return (
                blk["logdetA"] + logdet_x + self._reml_const + m * (1 + _LOG2PI + math.log(r2 / m))
            )
        return blk["logdetA"] + n * (1 + _LOG2PI + math.log(r2 / n))

    def deviance(self, theta) -> float:
        """Profiled deviance at theta on the original (lme4) scale."""
        return self.deviance_scaled(self.to_scaled(theta))

    def to_scaled(self, theta) -> np.ndarray:
        """Map lme4-scale theta to the internal scale (Lambda_s = D_z Lambda)."""
        theta = np.asarray(theta, dtype=float).copy()
        theta[: self.n_theta_client] *= self.z_scale[self._lrow]
        return theta

    def to_original(self, theta_s) -> np.ndarray:
        """Map internal theta to lme4's scale (Lambda = D_z^{-1} Lambda_s)."""
        theta = np.asarray(theta_s, dtype=float).copy()
        theta[: self.n_theta_client] /= self.z_scale[self._lrow]
        return theta

    # ------------------------------------------------------------------ variance-parameter form
    def deviance_varpar(self, varpar_s) -> float:
        """lmerTest's ``devfun_vp``: deviance at (theta_s, sigma) without profiling sigma."""
        varpar_s = np.asarray(varpar_s, dtype=float)
        theta_s, sigma = varpar_s[:-1], float(varpar_s[-1])
        blk = self._blocks(theta_s)
        prof = self._profile(blk)
        if prof is None:
            return np.inf
        r2, logdet_x, _, _ = prof
        s2 = sigma * sigma
        dev = blk["logdetA"] + r2 / s2 + self.n * math.log(2 * math.pi * s2)
        if self.reml:
            dev += logdet_x + self._reml_const - self.p * math.log(2 * math.pi * s2)
        return dev

    def vcov_beta_varpar(self, varpar_s) -> np.ndarray:
        """Covariance of the fixed effects (original units) at (theta_s, sigma)."""
        varpar_s = np.asarray(varpar_s, dtype=float)
        blk = self._blocks(varpar_s[:-1])
        prof = self._profile(blk)
        if prof is None:
            return np.full((self.p, self.p), np.nan)
        return varpar_s[-1] ** 2 * (self._T @ prof[3] @ self._T.T)

    # ------------------------------------------------------------------ optimisation
    def start_theta(self) -> np.ndarray:
        """lme4's default start (identity relative factor) on the internal scale."""
        th = np.where(self._lrow == self._lcol, 1.0, 0.0)
        if self.n_therapists:
            th = np.append(th, 1.0)
        return th

    def fit(self, theta0=None, *, maxiter: int = 500) -> EngineFit:
        """Minimise the profiled deviance over theta (bounded L-BFGS-B, then Newton polishing).

        Parameters
        ----------
        theta0 : array, optional
            Start on the original (lme4) scale. Default: lme4's identity start plus a global
            search (other starts, boundary faces; see :meth:`_search`), run on the data
            themselves or, with 8,000 clients or more, on a pilot subset of ~4,000 clients whose
            optimum then starts the fit on all data. A given ``theta0`` is used as the only
            start (the boundary probes still apply).
        maxiter : int
            Iteration limit of the quasi-Newton phase.

        Returns
        -------
        EngineFit

        Notes
        -----
        The profile can have several local minima (e.g. an interior one next to a better one
        at a zero variance), and at a zero diagonal component its gradient is often exactly 0,
        where a quasi-Newton method stops. lme4 (BOBYQA from theta = 1) usually, but not
        always, finds the global minimum; the search here keeps the lowest of all candidates.
        """
        with _single_blas_thread():
            return self._fit(theta0, maxiter)

    def _pilot_theta(self, n_pilot: int = 4000) -> np.ndarray | None:
        """Start for large data: theta fitted (with the global search) on an evenly spaced
        subset of ~n_pilot clients; None below 2 n_pilot clients."""
        stride = self.n_clients // n_pilot
        if stride < 2:
            return None
        if self._y is None:  # built from client sums: every stride-th client in label order
            try:
                pilot = self._client_subset(np.arange(self.n_clients) % stride == 0)
                theta = pilot._fit(None, 200, polish=False)
            except (EngineError, np.linalg.LinAlgError):
                return None
            self.n_evals_pilot = pilot.n_evals
            return theta
        keep = self.row_block % stride == 0
        ther = self.row_ther[keep] if self.n_therapists else None
        try:
            pilot = NestedLMM(
                self._y[keep],
                self._X[keep],
                self._Z[keep],
                self.row_block[keep],
                ther,
                reml=self.reml,
            )
            theta = pilot._fit(None, 200, polish=False)
        except (EngineError, np.linalg.LinAlgError):
            return None
        self.n_evals_pilot = pilot.n_evals
        return theta

    def _fit(self, theta0, maxiter, polish: bool = True):
        self.n_evals = 0
        if theta0 is None:
            pilot = self._pilot_theta() if polish else None
            # global search (several starts, boundary faces) on small data and on the pilot;
            # from a pilot start only the local run and the boundary probes
            thorough = pilot is None
            x0 = self.start_theta() if pilot is None else self.to_scaled(pilot)
        else:
            thorough = False
            x0 = self.to_scaled(theta0)
        msgs: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with np.errstate(all="ignore"):
                res = self._search(x0, maxiter, thorough)
                self.n_evals_quasi_newton = self.n_evals
                if not polish:
                    return self.to_original(np.asarray(res.x, dtype=float))
                theta_s, ok, max_grad = self._polish(np.asarray(res.x, dtype=float))
        msgs.extend(str(w.message) for w in caught)
        return self._finish(theta_s, ok, str(res.message), msgs, max_grad)

    # boundary probes along a coordinate at 0 (internal scale: sd ratio times the Z scale)
    _PROBES = (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0)

    def _diag_index(self) -> np.ndarray:
        """Positions in theta of the bounded (diagonal and therapist) components."""
        return np.flatnonzero(np.isfinite(self.lower))

    def _local(self, x0, maxiter: int, fixed=(), explore: bool = False) -> optimize.OptimizeResult:
        """Bounded L-BFGS-B from ``x0``; components in ``fixed`` are held at their bound 0.

        ``explore`` uses looser tolerances: enough to tell which basin a start leads to.
        """
        x0 = np.maximum(np.asarray(x0, dtype=float), self.lower)
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in self.lower]
        for k in fixed:
            bounds[k] = (0.0, 0.0)
            x0[k] = 0.0
        if len(fixed) == self.n_theta:
            return optimize.OptimizeResult(
                x=x0, fun=self.deviance_scaled(x0), success=True, message="boundary point"
            )
        return optimize.minimize(
            self.value_and_grad,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={
                "maxiter": min(maxiter, 60) if explore else maxiter,
                "ftol": 1e-8 if explore else 1e-13,
                "gtol": 1e-4 if explore else 1e-7,
            },
        )

    def _search(self, x0, maxiter: int, thorough: bool) -> optimize.OptimizeResult:
        """Minimise the profiled deviance, guarding against local and degenerate optima.

        The profile can have an interior local optimum next to a better one on the boundary
        (a variance at 0), and at a diagonal theta of 0 the gradient along it is often exactly
        0 (the deviance is even in a lone diagonal component), so a quasi-Newton run that
        touches the bound can stop there although the optimum is interior. Hence:

        1. L-BFGS-B from ``x0`` (lme4's identity start or the pilot's optimum);
        2. if ``thorough``: also from a small start (diagonal 0.1), from a moment-based start
           (:meth:`moment_start`), and on every boundary face (one bounded component held at
           0, the others optimised), plus the point with every component at 0; the best wins
           (ties go to the earlier candidate);
        3. for each bounded component that ends at 0, the deviance is probed at a few positive
           values along it; if one is lower the search continues from there (up to 3 times).
        """
        best = self._local(x0, maxiter)
        primary = best

        def better(res) -> bool:
            return _lower(res.fun, best.fun)

        diag = self._diag_index()
        if thorough:
            starts = [np.where(np.isfinite(self.lower), 0.1, 0.0)]
            mom = self.moment_start()
            if mom is not None:
                starts.append(mom)
            for start in starts:
                res = self._local(start, maxiter, explore=True)
                if better(res):
                    best = res
            faces = [(int(k),) for k in diag] if diag.size > 1 else []
            faces.append(tuple(range(self.n_theta)))  # every component at 0: no random effects
            for face in faces:
                res = self._local(best.x, maxiter, fixed=face, explore=True)
                if better(res):
                    best = res
            if best is not primary:  # converge tightly in the winning basin
                res = self._local(best.x, maxiter)
                if not res.fun > best.fun:
                    best = res
        for _ in range(3):
            x = np.asarray(best.x, dtype=float)
            trial, f_trial = None, best.fun
            for k in diag[x[diag] <= 1e-6]:
                for h in self._PROBES:
                    cand = x.copy()
                    cand[k] = h
                    f = self.deviance_scaled(cand)
                    if _lower(f, f_trial):
                        trial, f_trial = cand, f
            if trial is None:
                break
            res = self._local(trial, maxiter)
            if not better(res):
                break
            best = res
        return best

    def moment_start(self) -> np.ndarray | None:
        """A method-of-moments start on the internal scale (None if it cannot be formed).

        Per-client least squares of the OLS residuals on ``Z`` give ``b_i`` with
        ``Cov(b_i) ~ Gamma + s^2 (Z_i'Z_i)^{-1}``, so ``Gamma / s^2`` is estimated by the sample
        covariance of the ``b_i`` minus ``s^2`` times the mean ``(Z_i'Z_i)^{-1}`` (eigenvalues
        clipped), with ``s^2`` the pooled within-client residual variance; theta is its
        Cholesky factor. The therapist component compares the variance of the therapist mean
        residuals with the residual variance over the mean therapist size.
        """
        p, q = self.p, self.q
        WtW = self.WtW
        try:
            beta = np.linalg.solve(WtW[:p, :p], WtW[:p, p])
        except np.linalg.LinAlgError:
            return None
        c = np.append(-beta, 1.0)
        rss = float(c @ WtW @ c)
        zr = np.einsum("akm,k->am", self.ZtW, c)  # Z_i' r_i, (q, nc)
        ztz = self.ZtZ
        diag_prod = np.prod(np.diagonal(ztz, axis1=0, axis2=1), axis=1)
        det = ztz[0, 0] if q == 1 else np.linalg.det(np.moveaxis(ztz, -1, 0))
        ok = (self.client_nobs > q) & (det > 1e-8 * diag_prod)
        n_ok = int(ok.sum())
        dfw = self.n - p - q * n_ok
        if n_ok < q + 2 or dfw <= 0:
            return None
        inv, _ = _inv_logdet(np.ascontiguousarray(ztz[:, :, ok]))
        b = _bmv(inv, np.ascontiguousarray(zr[:, ok]))
        s2 = (rss - float((zr[:, ok] * b).sum())) / dfw
        if not s2 > 0:
            return None
        G = (np.atleast_2d(np.cov(b)) - s2 * inv.mean(axis=2)) / s2
        w, v = np.linalg.eigh(0.5 * (G + G.T))
        w = np.maximum(w, 1e-4)
        L = np.linalg.cholesky((v * w) @ v.T)
        theta = L[self._lrow, self._lcol]
        if self.n_therapists:
            if self.n_therapists < 3:
                return np.append(theta, 0.1)
            rbar = (self.tW @ c) / self.ther_nobs
            noise = rss / (self.n - p) / float(self.ther_nobs.mean())
            tau = (float(np.var(rbar, ddof=1)) - noise) / s2
            theta = np.append(theta, math.sqrt(max(tau, 1e-4)))
        return theta if np.all(np.isfinite(theta)) else None

    def _hessian_from_grad(self, theta_s: np.ndarray, free: np.ndarray, g0=None) -> np.ndarray:
        """Hessian over ``free`` by differencing the analytic gradient (forward if g0 given)."""
        h = 1e-5 * np.maximum(np.abs(theta_s), 0.1)
        rows = []
        for i in free:
            e = np.zeros_like(theta_s)
            e[i] = h[i]
            gp = self.value_and_grad(theta_s + e)[1]
            if g0 is None:
                gm = self.value_and_grad(theta_s - e)[1]
                rows.append((gp - gm)[free] / (2 * h[i]))
            else:
                rows.append((gp - g0)[free] / h[i])
        H = np.array(rows)
        return 0.5 * (H + H.T)

    def _polish(self, theta_s: np.ndarray) -> tuple[np.ndarray, bool, float]:
        """Newton steps on the free (non-boundary) parameters, then lme4's gradient check.

        One finite-difference Hessian (of the analytic gradient) serves the Newton steps and
        the check. Returns the polished theta, whether the check passed, and lme4's statistic
        ``max(pmin(|H^{-1/2} g|, |g|))`` on the original theta scale.
        """
        f, g = self.value_and_grad(theta_s)
        free = free_components(theta_s, g, self.lower)
        if free.size == 0:
            return theta_s, True, 0.0
        H = self._hessian_from_grad(theta_s, free, g0=g)
        for _ in range(6):
            try:
                step = -np.linalg.solve(H, g[free])
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)):
                break
            cand = theta_s.copy()
            cand[free] += step
            cand = np.maximum(cand, self.lower)
            fc, gc = self.value_and_grad(cand)
            if not fc <= f:
                break
            moved = np.max(np.abs(cand - theta_s))
            theta_s, f, g = cand, fc, gc
            if moved < 1e-10 * max(1.0, float(np.max(np.abs(theta_s)))):
                break
        free = free_components(theta_s, g, self.lower)
        if free.size == 0:
            return theta_s, True, 0.0
        stat = self._grad_stat(theta_s, g, H, free)
        return theta_s, bool(stat <= GRADIENT_TOL), stat

    def _grad_stat(self, theta_s, g, H, free) -> float:
        """lme4's max(pmin(|chol(H)^{-1} g|, |g|)) on lme4's theta scale."""
        scale = np.ones_like(theta_s)
        scale[: self.n_theta_client] = self.z_scale[self._lrow]
        g_o = (g * scale)[free]
        Hf = H if H.shape[0] == free.size else None
        if Hf is None:
            Hf = self._hessian_from_grad(theta_s, free)
        H_o = Hf * np.outer(scale[free], scale[free])
        try:
            chol = np.linalg.cholesky(H_o)
            return float(np.max(np.minimum(np.abs(np.linalg.solve(chol, g_o)), np.abs(g_o))))
        except np.linalg.LinAlgError:
            return float(np.max(np.abs(g_o)))

    def _finish(self, theta_s, _flag, message, msgs, max_grad=None) -> EngineFit:
        # ``_flag`` (an optimiser's verdict) is not used: convergence is the KKT test below
        theta_s = np.asarray(theta_s, dtype=float)
        blk = self._blocks(theta_s)
        prof = self._profile(blk)
        if prof is None:
            raise EngineError("the fixed-effect design is rank deficient at the optimum")
        r2, _, beta_s, Mxx_inv = prof
        n, p = self.n, self.p
        sigma2 = r2 / (n - p) if self.reml else r2 / n
        beta = self._T @ beta_s
        if self.has_intercept:
            beta[0] += self.y_center
        vcov = sigma2 * (self._T @ Mxx_inv @ self._T.T)
        theta = self.to_original(theta_s)
        lam = self._lambda(theta)
        cov_client = sigma2 * lam @ lam.T
        var_ther = sigma2 * theta[-1] ** 2 if self.n_therapists else None
        diag = np.append(
            self._lrow == self._lcol, np.ones(self.n_theta - self.n_theta_client, bool)
        )
        singular = bool(np.any(theta[diag] < SINGULAR_TOL))
        if singular:
            msgs.append("boundary (singular) fit: see help('isSingular')")
        if max_grad is None:
            max_grad = self._check_gradient(theta_s)
        converged = bool(max_grad <= GRADIENT_TOL)  # the KKT test decides, not the flag
        if not max_grad <= GRADIENT_TOL:
            msgs.append(
                f"Model failed to converge with max|grad| = {max_grad:.6g} (tol = {GRADIENT_TOL})"
            )
        return EngineFit(
            theta=theta,
            beta=beta,
            vcov=vcov,
            sigma=math.sqrt(sigma2),
            cov_client=cov_client,
            var_therapist=var_ther,
            deviance=self.deviance_scaled(theta_s),
            reml=self.reml,
            converged=converged,
            singular=singular,
            max_grad=float(max_grad),
            n_evals=self.n_evals,
            optimizer_message=message,
            warnings=msgs,
            theta_scaled=theta_s,
        )

    def _check_gradient(self, theta_s: np.ndarray) -> float:
        """lme4's convergence statistic at theta_s (see :meth:`_grad_stat`)."""
        _, g = self.value_and_grad(theta_s)
        if not np.all(np.isfinite(g)):
            return np.inf
        free = free_components(theta_s, g, self.lower)
        if free.size == 0:
            return 0.0
        return self._grad_stat(theta_s, g, self._hessian_from_grad(theta_s, free), free)

    def evaluate(self, theta, *, converged: bool = True, message: str = "", msgs=None) -> EngineFit:
        """All fit quantities at a given theta (original scale), e.g. from another engine.

        ``converged`` (another optimiser's flag) is recorded in ``optimizer_message`` only;
        the fit's ``converged`` is the KKT test at ``theta`` (see :data:`GRADIENT_TOL`).
        """
        note = f"{message} (optimizer flag: {'converged' if converged else 'not converged'})"
        return self._finish(self.to_scaled(theta), None, note.strip(), list(msgs or []))

    # ------------------------------------------------------------------ after the fit
    def conditional_modes(self, fit: EngineFit) -> dict:
        """Empirical Bayes predictions (conditional modes) and conditional covariances.

        Returns a dict with ``client`` (n_clients, q), ``client_cov`` (n_clients, q, q) and, with
        therapists, ``therapist`` (n_therapists,) and ``therapist_var`` (n_therapists,), in the
        units of ``Z`` and ``y``, in block order (labels in ``client_levels`` and
        ``therapist_levels``).
        """
        theta_s = fit.theta_scaled
        blk = self._blocks(theta_s)
        prof = self._profile(blk)
        beta_s = prof[2]
        coef = np.append(-beta_s, 1.0)
        lam, Ainv, G = blk["lam"], blk["Ainv"], blk["G"]
        r = np.einsum("akm,k->am", G, coef)  # (q, nc) = Lambda' Z_i'(y_i - X_i beta)
        sigma2 = fit.sigma**2
        out = {}
        if self.n_therapists:
            tt, B, AinvB, S = blk["tt"], blk["B"], blk["AinvB"], blk["S"]
            bt = self.block_ther
            rt = tt * (self.tW @ coef)
            ut = (rt - self._tsum((AinvB * r).sum(axis=0))) / S
            u = np.einsum("abm,bm->am", Ainv, r - B * ut[bt])
            Ainv = Ainv + AinvB[:, None, :] * AinvB[None, :, :] / S[bt]
            out["therapist"] = tt * ut
            out["therapist_var"] = sigma2 * tt * tt / S
        else:
            u = np.einsum("abm,bm->am", Ainv, r)
        L = lam / self.z_scale[:, None]  # original-scale Lambda
        out["client"] = (L @ u).T
        cov = np.einsum("ab,bcm,dc->mad", L, Ainv, L)
        out["client_cov"] = sigma2 * cov
        return out

    def fitted(self, fit: EngineFit, modes: dict | None = None) -> np.ndarray:
        """Conditional fitted values X beta + Z b (+ therapist effect), in original row order."""
        if self._X is None:
            raise EngineError("fitted values need rows: this model was built from client sums")
        modes = self.conditional_modes(fit) if modes is None else modes
        fv = self._X @ fit.beta + np.einsum("nq,nq->n", self._Z, modes["client"][self.row_block])
        if self.n_therapists:
            fv = fv + modes["therapist"][self.row_ther]
        return fv

    def residuals(self, fit: EngineFit, modes: dict | None = None) -> np.ndarray:
        """Conditional residuals y - fitted."""
        return self._y - self.fitted(fit, modes)

    def satterthwaite(self, fit: EngineFit) -> np.ndarray:
        """Satterthwaite denominator df for each fixed effect, as lmerTest computes them.

        Notes
        -----
        With varpar = (theta, sigma), ``A = 2 H^{-1}`` where H is the Hessian of the unprofiled
        deviance (lmerTest's ``devfun_vp``) and ``g_k = d Var(beta_k) / d varpar``:
        ``df_k = 2 Var(beta_k)^2 / (g_k' A g_k)``. H is the central-difference Jacobian of the
        analytic gradient and ``g`` a central-difference Jacobian, both with one Richardson step
        (lmerTest uses numDeriv). The internal scaling of theta leaves
        ``g' H^{-1} g`` unchanged at the optimum.
        """
        with _single_blas_thread():
            return self._satterthwaite(fit)

    def _satterthwaite(self, fit: EngineFit) -> np.ndarray:
        vp = np.append(fit.theta_scaled, fit.sigma)
        H = _jacobian(self.grad_varpar, vp, h_rel=1e-3)
        H = 0.5 * (H + H.T)
        J = _jacobian(self.vcov_beta_varpar, vp, h_rel=1e-3)  # (m, p, p)
        try:
            Avp = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            return np.full(self.p, np.nan)
        var = np.diag(fit.vcov)
        g = np.diagonal(J, axis1=1, axis2=2)  # (m, p)
        denom = np.einsum("mk,ml,lk->k", g, Avp, g)
        with np.errstate(all="ignore"):
            df = 2.0 * var**2 / denom
        df[~(df > 0)] = np.nan
        return df


def _lower(f: float, ref: float) -> bool:
    """``f`` is lower than ``ref`` by more than rounding (any finite value beats inf/NaN)."""
    if not np.isfinite(ref):
        return bool(np.isfinite(f))
    return bool(f < ref - 1e-9 * max(1.0, abs(ref)))


def _steps(x: np.ndarray, h_rel: float) -> np.ndarray:
    return h_rel * np.maximum(np.abs(x), 0.1)


def _jacobian(f, x, *, h_rel=1e-3) -> np.ndarray:
    """Central-difference Jacobian with one Richardson step; result has shape (len(x), *f(x).shape)."""

    def once(hscale):
        h = _steps(x, h_rel) * hscale
        out = []
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h[i]
            out.append((f(x + e) - f(x - e)) / (2 * h[i]))
        return np.array(out)

    j1, j2 = once(1.0), once(0.5)
    return (4 * j2 - j1) / 3


def fit_nested_lmm(y, X, Z, client, therapist=None, *, reml=True, theta0=None):
    """Build a :class:`NestedLMM` and fit it; returns ``(model, EngineFit)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> g = np.repeat(np.arange(40), 4)
    >>> y = 1 + rng.normal(0, 1, 40)[g] + rng.normal(0, 1, 160)
    >>> model, fit = fit_nested_lmm(y, np.ones((160, 1)), np.ones((160, 1)), g)
    >>> fit.cov_client.shape
    (1, 1)
    """
    model = NestedLMM(y, X, Z, client, therapist, reml=reml)
    return model, model.fit(theta0)
