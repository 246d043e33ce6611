"""Reliability estimates: Cronbach's alpha, McDonald's omega, item statistics.

All estimates here are computed from an item covariance (or correlation) matrix, built with
complete cases (``nan_policy="listwise"``, the default) or pairwise-complete observations
(``nan_policy="pairwise"``, the semantics of ``psych::alpha(use="pairwise")`` and of R's
``cov(use="pairwise")``). Rows on which every item is missing ("not administered") are dropped
first under either policy.

Which omega: :func:`omega` is McDonald's omega *total* from a **one-factor** maximum-likelihood
factor model fitted here with NumPy/SciPy (the model of ``psych::fa(x, nfactors=1, fm="ml")``).
It is *not* the Schmid-Leiman omega of ``psych::omega()`` (a bifactor solution with three group
factors by default), whose omega_t and omega_h differ from a one-factor omega.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alliance_lib.errors import DataError
from alliance_lib.frame import model_frame, require_columns
from alliance_lib.optim import kkt_satisfied
from alliance_lib.registry import get_instrument
from alliance_lib.results import to_jsonable

__all__ = [
    "AlphaResult",
    "HierarchicalOmegaResult",
    "MultilevelOmegaResult",
    "OmegaResult",
    "ReliabilityError",
    "cronbach_alpha",
    "item_statistics",
    "multilevel_omega",
    "multilevel_reliability",
    "omega",
    "omega_hierarchical",
    "reliability",
]

_NAN_POLICIES = ("listwise", "pairwise")
# psych::fa (and stats::factanal) bound ML uniquenesses below by 0.005 on the correlation scale;
# we use the same bound so that Heywood cases are handled the same way.
_PSI_LOWER = 0.005


#: Input that cannot give a reliability estimate: the library's :class:`DataError` (name kept).
ReliabilityError = DataError


# --------------------------------------------------------------------------------------------
# result objects


@dataclass(frozen=True)
class AlphaResult:
    """Cronbach's alpha with its Feldt confidence interval.

    Attributes
    ----------
    alpha : float
        Raw (covariance-based) alpha, ``psych::alpha()$total$raw_alpha``.
    ci_low, ci_high : float
        Feldt (1965) confidence limits at level ``ci``.
    std_alpha : float
        Standardised (correlation-based) alpha, ``std.alpha`` in psych.
    average_r : float
        Mean inter-item correlation.
    n : int
        Rows used: complete cases (listwise) or rows with at least one answered item (pairwise).
    n_items : int
    ci : float
    nan_policy : str

    ``float(result)`` gives ``alpha``.
    """

    alpha: float
    ci_low: float
    ci_high: float
    std_alpha: float
    average_r: float
    n: int
    n_items: int
    ci: float
    nan_policy: str

    def __float__(self) -> float:
        return float(self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field (NaN as None)."""
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True)
class OmegaResult:
    """McDonald's omega total from a one-factor ML model.

    Attributes
    ----------
    omega : float
        Omega total of the unweighted sum of the raw items (covariance scale):
        ``(sum lambda)^2 / ((sum lambda)^2 + sum psi)`` with raw loadings ``lambda`` and raw
        uniquenesses ``psi``. This is the reliability of the scale score as it is scored.
    omega_std : float
        The same on the correlation scale (reliability of the sum of standardised items):
        ``(sum l)^2 / ((sum l)^2 + sum(1 - h2))`` with standardised loadings ``l`` and
        communalities ``h2 = l^2``; the formula applied to ``psych::fa(x, 1, fm="ml")`` loadings.
    loadings : pandas.Series
        Standardised loadings (sign fixed so that their sum is positive).
    raw_loadings : pandas.Series
        Loadings on the item scale, ``loadings * sd``.
    uniquenesses : pandas.Series
        Standardised uniquenesses ``1 - h2``.
    n : int
    n_items : int
    converged : bool
        Whether the solution is a stationary point of the bounded ML problem (projected gradient
        below ``KKT_TOL``), not merely the optimiser's success flag.
    optimizer_message : str
        The optimiser's own message, for diagnosis.
    heywood : bool
        Whether a uniqueness sits at the lower bound 0.005 (a Heywood case).
    nan_policy : str

    ``float(result)`` gives ``omega``.
    """

    omega: float
    omega_std: float
    loadings: pd.Series = field(repr=False)
    raw_loadings: pd.Series = field(repr=False)
    uniquenesses: pd.Series = field(repr=False)
    n: int
    n_items: int
    converged: bool
    optimizer_message: str
    heywood: bool
    nan_policy: str

    def __float__(self) -> float:
        return float(self.omega)


# --------------------------------------------------------------------------------------------
# input handling


def _item_matrix(
    items: Any, missing_codes: Iterable[float] = ()
) -> tuple[np.ndarray, list[str], pd.Index]:
    """Return (float matrix, item names, row labels); text cells raise a ReliabilityError."""
    if isinstance(items, pd.DataFrame):
        frame = items
    else:
        arr = np.asarray(items)
        if arr.ndim != 2:
            raise ReliabilityError(
                f"items must be a 2-D table (rows = respondents, columns = items); got {arr.ndim} "
                "dimension(s)."
            )
        frame = pd.DataFrame(arr, columns=[f"item_{j + 1}" for j in range(arr.shape[1])])
    names = [str(c) for c in frame.columns]
    if len(frame.columns):
        mf = model_frame(frame, {"items": list(frame.columns)}, numeric=["items"], what="items")
        x = mf.values("items")
    else:
        x = np.empty((len(frame), 0))
    codes = [float(c) for c in missing_codes]
    if codes:
        x = np.where(np.isin(x, codes), np.nan, x)
    return x, names, frame.index


def _prepare(
    items: Any, nan_policy: str, missing_codes: Iterable[float], min_items: int = 2
) -> tuple[np.ndarray, list[str]]:
    if nan_policy not in _NAN_POLICIES:
        raise ReliabilityError(
            f"nan_policy must be one of {_NAN_POLICIES}; got {nan_policy!r}.", value=nan_policy
        )
    x, names, _ = _item_matrix(items, missing_codes)
    return _prepare_array(x, names, nan_policy, min_items)


def _prepare_array(
    x: np.ndarray, names: list[str], nan_policy: str, min_items: int = 2
) -> tuple[np.ndarray, list[str]]:
    """The row selection and checks of :func:`_prepare` on a float matrix already cleaned."""
    if x.shape[1] < min_items:
        raise ReliabilityError(
            f"need at least {min_items} items; got {x.shape[1]} ({', '.join(names) or 'none'})."
        )
    answered = ~np.isnan(x)
    x = x[answered.any(axis=1)]  # rows with no item answered: not administered
    if nan_policy == "listwise":
        x = x[~np.isnan(x).any(axis=1)]
    if x.shape[0] < 2:
        what = "complete rows" if nan_policy == "listwise" else "rows with an answered item"
        raise ReliabilityError(
            f"need at least 2 {what}; got {x.shape[0]} (items: {', '.join(names)})."
        )
    nan = np.isnan(x)
    high = np.where(nan, -np.inf, x).max(axis=0)
    low = np.where(nan, np.inf, x).min(axis=0)
    constant = ~(high > low)  # also catches items never answered
    if constant.any():
        j = int(np.argmax(constant))
        what = f"every answer is {high[j]:g}" if np.isfinite(high[j]) else "it is never answered"
        raise ReliabilityError(
            f"item {names[j]!r} has no variance in the {x.shape[0]} rows used ({what}); "
            "correlations with it are undefined. Leave the item out (psych::alpha drops such "
            "items with a warning).",
            column=names[j],
            value=float(high[j]) if np.isfinite(high[j]) else None,
        )
    return x, names


def _pairwise_sums(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sums over pairwise-complete rows: counts N, sums S, squares Q, cross-products P.

    ``S[i, j]`` is the sum of item i over rows where items i and j are both present, ``Q[i, j]``
    the sum of its squares there, ``P[i, j]`` the sum of products. Items are centred first (at
    their available-case means) to limit cancellation; covariances are shift invariant.
    """
    m = (~np.isnan(x)).astype(float)
    xc = x - np.nanmean(x, axis=0)
    x0 = np.where(m > 0, xc, 0.0)
    n = m.T @ m
    s = x0.T @ m
    q = (x0**2).T @ m
    p = x0.T @ x0
    return n, s, q, p


def _covariance(x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Item covariance matrix (n - 1 denominators); pairwise-complete when x has NaN."""
    if not np.isnan(x).any():
        return np.cov(x, rowvar=False)
    n, s, _, p = _pairwise_sums(x)
    if (n < 2).any():
        i, j = np.argwhere(n < 2)[0]
        raise ReliabilityError(
            f"items {names[i]!r} and {names[j]!r} are answered together on fewer than 2 rows; "
            "a pairwise covariance cannot be computed.",
            column=names[i],
        )
    return (p - s * s.T / n) / (n - 1)


def _correlation(x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Item correlations; pairwise-complete (R's ``cor(use="pairwise")``) when x has NaN."""
    if not np.isnan(x).any():
        return np.corrcoef(x, rowvar=False)
    n, s, q, p = _pairwise_sums(x)
    if (n < 3).any():
        i, j = np.argwhere(n < 3)[0]
        raise ReliabilityError(
            f"items {names[i]!r} and {names[j]!r} are answered together on fewer than 3 rows; "
            "a pairwise correlation cannot be computed.",
            column=names[i],
        )
    cov = p - s * s.T / n
    ss = q - s**2 / n  # ss[i, j]: sum of squares of item i over rows shared with j
    return cov / np.sqrt(ss * ss.T)


def _cov2cor(c: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.diag(c))
    return c / np.outer(d, d)


def _alpha_from_cov(c: np.ndarray) -> float:
    k = c.shape[0]
    return k / (k - 1) * (1.0 - np.trace(c) / c.sum())


def _alpha_drop(c: np.ndarray) -> np.ndarray:
    """Alpha of the k - 1 items left after dropping each item in turn (vectorised)."""
    k = c.shape[0]
    if k < 3:
        return np.full(k, np.nan)
    d = np.diag(c)
    total = c.sum() - 2.0 * c.sum(axis=0) + d
    trace = np.trace(c) - d
    return (k - 1) / (k - 2) * (1.0 - trace / total)


def _feldt(alpha: float, n: int, k: int, ci: float) -> tuple[float, float]:
    tail = (1.0 - ci) / 2.0
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1.0 - (1.0 - alpha) * stats.f.ppf(1.0 - tail, df1, df2)
    high = 1.0 - (1.0 - alpha) * stats.f.ppf(tail, df1, df2)
    return float(low), float(high)


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ReliabilityError(f"ci must be between 0 and 1 (e.g. 0.95); got {ci!r}.", value=ci)


# --------------------------------------------------------------------------------------------
# public functions


def cronbach_alpha(
    items: Any,
    *,
    ci: float = 0.95,
    nan_policy: str = "listwise",
    missing_codes: Iterable[float] = (),
) -> AlphaResult:
    """Cronbach's alpha with a Feldt confidence interval.

    Parameters
    ----------
    items : DataFrame or 2-D array
        One column per item (already reverse-keyed), one row per administration.
    ci : float, default 0.95
        Confidence level of the Feldt interval.
    nan_policy : {"listwise", "pairwise"}, default "listwise"
        ``"listwise"`` uses complete cases (``psych::alpha(use="complete.obs")``);
        ``"pairwise"`` uses every pairwise-complete covariance (``psych::alpha(use="pairwise")``,
        psych's default).
    missing_codes : iterable of float, optional
        Values (e.g. ``-99``) treated as missing.

    Returns
    -------
    AlphaResult
        ``alpha``, ``ci_low``, ``ci_high``, ``std_alpha``, ``average_r``, ``n``, ``n_items``.

    Raises
    ------
    ReliabilityError
        Text in an item column (names column, row and value), fewer than 2 items or rows, or
        an unknown ``nan_policy``.

    Notes
    -----
    With item covariance matrix :math:`C` of :math:`k` items,

    .. math:: \\alpha = \\frac{k}{k-1}\\Bigl(1 - \\frac{\\operatorname{tr} C}{\\mathbf 1' C
              \\mathbf 1}\\Bigr),

    and ``std_alpha`` is the same formula on the correlation matrix ``cov2cor(C)``. The Feldt
    interval treats :math:`(1-\\alpha)/(1-\\hat\\alpha)` as :math:`F(n-1, (n-1)(k-1))`:
    :math:`[1 - (1-\\hat\\alpha) F_{1-p/2},\\ 1 - (1-\\hat\\alpha) F_{p/2}]`
    (``psych::alpha.ci``).

    ``n`` for the interval is the number of complete cases (listwise), or the number of rows
    with at least one answered item (pairwise, as psych, which uses all rows). Note that
    ``psych::alpha(use="complete.obs")`` also uses *all* rows for its Feldt interval; ours uses
    the complete cases the estimate actually rests on.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    Psychometrika, 16(3), 297-334.
    Feldt, L. S. (1965). The approximate sampling distribution of Kuder-Richardson reliability
    coefficient twenty. Psychometrika, 30(3), 357-370.
    Revelle, W. psych: Procedures for Psychological, Psychometric, and Personality Research,
    ``alpha()`` and ``alpha.ci()``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(size=200)
    >>> items = pd.DataFrame({f"i{j}": f + rng.normal(size=200) for j in range(1, 6)})
    >>> res = cronbach_alpha(items)
    >>> print(f"{res.alpha:.3f} [{res.ci_low:.3f}, {res.ci_high:.3f}] n={res.n}")
    0.796 [0.747, 0.837] n=200
    """
    _check_ci(ci)
    x, names = _prepare(items, nan_policy, missing_codes)
    return _alpha_x(x, names, ci, nan_policy)


def _alpha_x(x: np.ndarray, names: list[str], ci: float, nan_policy: str) -> AlphaResult:
    """:func:`cronbach_alpha` on the rows kept by :func:`_prepare`."""
    c = _covariance(x, names)
    r = _cov2cor(c)
    k = c.shape[0]
    a = _alpha_from_cov(c)
    n = x.shape[0]
    low, high = _feldt(a, n, k, ci)
    return AlphaResult(
        alpha=float(a),
        ci_low=low,
        ci_high=high,
        std_alpha=float(_alpha_from_cov(r)),
        average_r=float((r.sum() - k) / (k * (k - 1))),
        n=int(n),
        n_items=int(k),
        ci=float(ci),
        nan_policy=nan_policy,
    )


def item_statistics(
    items: Any, *, nan_policy: str = "listwise", missing_codes: Iterable[float] = ()
) -> pd.DataFrame:
    """Item-total correlations and alpha-if-item-deleted.

    Parameters
    ----------
    items : DataFrame or 2-D array
        One column per item (already reverse-keyed).
    nan_policy : {"listwise", "pairwise"}, default "listwise"
        As in :func:`cronbach_alpha`.
    missing_codes : iterable of float, optional
        Values treated as missing.

    Returns
    -------
    DataFrame
        Indexed by item, columns:

        * ``n``: rows with the item answered (among the rows used),
        * ``mean``, ``sd``: item mean and SD (n - 1),
        * ``r_total``: correlation of the item with the total (psych ``raw.r``; the total is
          the mean of the answered items of a row),
        * ``r_drop``: corrected item-total correlation, the item against the sum of the other
          items (psych ``r.drop``),
        * ``alpha_if_deleted``: raw alpha of the remaining items (psych ``alpha.drop``),
        * ``std_alpha_if_deleted``: the same for standardised alpha.

    Notes
    -----
    From the item covariance matrix :math:`C` (column sums :math:`c_i`, total :math:`T`):
    ``r_drop`` :math:`= (c_i - C_{ii}) / \\sqrt{C_{ii}(T - 2c_i + C_{ii})}`, and alpha without
    item *i* uses :math:`\\operatorname{tr} C - C_{ii}` and :math:`T - 2c_i + C_{ii}`. Under
    ``"pairwise"`` these use the pairwise covariance matrix exactly as psych does; ``r_total``
    is then the pairwise correlation of each item with the row mean of answered items.

    References
    ----------
    Revelle, W. psych, ``alpha()`` (``item.stats``, ``alpha.drop``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(size=200)
    >>> items = pd.DataFrame({f"i{j}": f + rng.normal(size=200) for j in range(1, 5)})
    >>> item_statistics(items)[["r_drop", "alpha_if_deleted"]].round(3)  # doctest: +NORMALIZE_WHITESPACE
          r_drop  alpha_if_deleted
    item
    i1     0.556             0.712
    i2     0.585             0.696
    i3     0.541             0.720
    i4     0.572             0.704
    """
    x, names = _prepare(items, nan_policy, missing_codes)
    c = _covariance(x, names)
    r = _cov2cor(c)
    d = np.diag(c)
    colsum = c.sum(axis=0)
    rest = c.sum() - 2.0 * colsum + d
    r_drop = (colsum - d) / np.sqrt(d * rest)
    present = ~np.isnan(x)
    total = np.nanmean(x, axis=1)
    if present.all():
        r_total = colsum / np.sqrt(d * c.sum())
    else:
        # pairwise correlation of each item with the row mean (total is present where any item is)
        t = np.where(present, total[:, None], 0.0)
        xz = np.where(present, x, 0.0)
        cnt = present.sum(axis=0)
        mx = xz.sum(axis=0) / cnt
        mt = t.sum(axis=0) / cnt
        dx = np.where(present, x - mx, 0.0)
        dt = np.where(present, total[:, None] - mt, 0.0)
        r_total = (dx * dt).sum(axis=0) / np.sqrt((dx**2).sum(axis=0) * (dt**2).sum(axis=0))
    return pd.DataFrame(
        {
            "n": present.sum(axis=0),
            "mean": np.nanmean(x, axis=0),
            "sd": np.nanstd(x, axis=0, ddof=1),
            "r_total": r_total,
            "r_drop": r_drop,
            "alpha_if_deleted": _alpha_drop(c),
            "std_alpha_if_deleted": _alpha_drop(r),
        },
        index=pd.Index(names, name="item"),
    )


def _one_factor_ml(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, str]:
    """One-factor ML factor analysis of a correlation matrix.

    Minimises the concentrated discrepancy of Joreskog (1967) over the uniquenesses (as
    ``stats::factanal`` and ``psych::fa(fm="ml")``), with bounds [0.005, 1].
    Returns standardised loadings, uniquenesses, whether the KKT conditions hold at the solution
    (:func:`_kkt_satisfied`) and the optimiser's own message.
    """
    p = r.shape[0]
    eig_r = np.linalg.eigvalsh(r)
    if not eig_r[0] > 1e-10 * p:  # also catches NaN
        raise ReliabilityError(
            "the item correlation matrix is not positive definite (smallest eigenvalue "
            f"{eig_r[0]:.3g}); the one-factor model needs a positive definite matrix (more "
            "complete rows than items, no redundant items; pairwise correlations can also cause "
            "this)."
        )

    def decomposed(psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sc = 1.0 / np.sqrt(psi)
        return np.linalg.eigh(r * np.outer(sc, sc))

    def objective(psi: np.ndarray) -> tuple[float, np.ndarray]:
        values, vectors = decomposed(psi)
        rest = values[:-1]  # all but the largest
        f = -(np.sum(np.log(rest) - rest) - 1.0 + p)
        load = np.sqrt(psi) * vectors[:, -1] * np.sqrt(max(values[-1] - 1.0, 0.0))
        grad = (load**2 + psi - np.diag(r)) / psi**2
        return float(f), grad

    start = 1.0 / np.diag(np.linalg.inv(r))  # 1 - squared multiple correlation
    fit = optimize.minimize(
        objective,
        np.clip(start, _PSI_LOWER, 1.0),
        jac=True,
        method="L-BFGS-B",
        bounds=[(_PSI_LOWER, 1.0)] * p,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
    )
    psi = fit.x
    values, vectors = decomposed(psi)
    load = np.sqrt(psi) * vectors[:, -1] * np.sqrt(max(values[-1] - 1.0, 0.0))
    if load.sum() < 0:
        load = -load
    _, grad = objective(psi)
    converged = _kkt_satisfied(psi, grad, _PSI_LOWER, 1.0)
    return load, psi, converged, str(fit.message)


#: Largest projected-gradient component accepted as a stationary point (the discrepancy is O(1))
KKT_TOL = 1e-5


def _kkt_satisfied(x: np.ndarray, grad: np.ndarray, lower: float, upper: float) -> bool:
    """First-order optimality of the bounded ML problem (:func:`alliance_lib.optim.kkt_satisfied`
    at :data:`KKT_TOL`); replaces the optimiser's ``success`` flag.

    Examples
    --------
    >>> bool(_kkt_satisfied(np.array([0.005, 0.5]), np.array([2.0, 1e-8]), 0.005, 1.0))
    True
    >>> bool(_kkt_satisfied(np.array([0.005, 0.5]), np.array([-2.0, 1e-8]), 0.005, 1.0))
    False
    """
    return kkt_satisfied(x, grad, lower, upper, tol=KKT_TOL)


def omega(
    items: Any, *, nan_policy: str = "listwise", missing_codes: Iterable[float] = ()
) -> OmegaResult:
    """McDonald's omega total from a one-factor maximum-likelihood factor model.

    Parameters
    ----------
    items : DataFrame or 2-D array
        One column per item (already reverse-keyed); at least 3 items (a one-factor model of
        two items is not identified).
    nan_policy : {"listwise", "pairwise"}, default "listwise"
        Complete cases, or pairwise-complete correlations (as ``psych::fa``'s default
        ``use="pairwise"``) with each item's SD from its answered rows.
    missing_codes : iterable of float, optional
        Values treated as missing.

    Returns
    -------
    OmegaResult
        ``omega`` (raw-score scale), ``omega_std`` (standardised items), the loadings and
        uniquenesses, ``converged`` and ``heywood`` flags.

    Notes
    -----
    The one-factor model :math:`\\Sigma = \\lambda\\lambda' + \\Psi` is fitted by maximum
    likelihood on the item correlation matrix :math:`R`: for given uniquenesses
    :math:`\\Psi` the loadings are :math:`\\Psi^{1/2} v_1 \\sqrt{\\max(\\theta_1 - 1, 0)}`
    (leading eigenpair of :math:`\\Psi^{-1/2} R \\Psi^{-1/2}`), and the concentrated
    discrepancy :math:`-\\sum_{j>1} (\\log\\theta_j - \\theta_j) - 1 + p` is minimised over
    :math:`\\Psi \\in [0.005, 1]^p` (as ``stats::factanal`` and ``psych::fa(fm="ml")``).
    Then

    .. math:: \\omega_{std} = \\frac{(\\sum l_i)^2}{(\\sum l_i)^2 + \\sum (1 - h^2_i)},\\qquad
              \\omega = \\frac{(\\sum \\lambda_i)^2}{(\\sum \\lambda_i)^2 + \\sum \\psi_i},

    with standardised loadings :math:`l_i`, communalities :math:`h^2_i = l_i^2`, raw loadings
    :math:`\\lambda_i = l_i s_i` and raw uniquenesses :math:`\\psi_i = (1 - h^2_i) s_i^2`
    (ML factor analysis is scale equivariant, so this is the ML fit to the covariance matrix).
    ``omega`` is the reliability of the unweighted raw sum, the companion of raw alpha;
    ``omega_std`` matches ``(sum l)^2 / ((sum l)^2 + sum(1 - h2))`` on ``psych::fa`` output.
    This is **not** ``psych::omega()``, which is a Schmid-Leiman (bifactor) omega.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.
    Joreskog, K. G. (1967). Some contributions to maximum likelihood factor analysis.
    Psychometrika, 32(4), 443-482.
    Revelle, W., & Zinbarg, R. E. (2009). Coefficients alpha, beta, omega, and the glb.
    Psychometrika, 74(1), 145-154.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(size=300)
    >>> items = pd.DataFrame({f"i{j}": l * f + rng.normal(size=300)
    ...                       for j, l in enumerate([0.5, 1.0, 1.5, 2.0], start=1)})
    >>> res = omega(items)
    >>> print(f"omega={res.omega:.3f} omega_std={res.omega_std:.3f}")
    omega=0.821 omega_std=0.786
    >>> res.loadings.round(2).tolist()
    [0.52, 0.59, 0.78, 0.85]
    """
    x, names = _prepare(items, nan_policy, missing_codes, min_items=3)
    return _omega_x(x, names, nan_policy)


def _omega_x(x: np.ndarray, names: list[str], nan_policy: str) -> OmegaResult:
    """:func:`omega` on the rows kept by :func:`_prepare`."""
    r = _correlation(x, names)
    load, psi, converged, message = _one_factor_ml(r)
    h2 = load**2
    u2 = 1.0 - h2
    sd = np.nanstd(x, axis=0, ddof=1)
    raw_load = load * sd
    raw_psi = u2 * sd**2
    omega_std = load.sum() ** 2 / (load.sum() ** 2 + u2.sum())
    omega_raw = raw_load.sum() ** 2 / (raw_load.sum() ** 2 + raw_psi.sum())
    index = pd.Index(names, name="item")
    return OmegaResult(
        omega=float(omega_raw),
        omega_std=float(omega_std),
        loadings=pd.Series(load, index=index, name="loading"),
        raw_loadings=pd.Series(raw_load, index=index, name="raw_loading"),
        uniquenesses=pd.Series(u2, index=index, name="uniqueness"),
        n=int(x.shape[0]),
        n_items=int(x.shape[1]),
        converged=converged,
        optimizer_message=message,
        heywood=bool(np.any(psi <= _PSI_LOWER * (1 + 1e-6))),
        nan_policy=nan_policy,
    )


# --------------------------------------------------------------------------------------------
# hierarchical (Schmid-Leiman) omega for multidimensional totals


@dataclass(frozen=True)
class HierarchicalOmegaResult:
    """Omega hierarchical and omega total from a Schmid-Leiman solution (as ``psych::omega``).

    Attributes
    ----------
    omega_h : float
        Omega hierarchical, ``(sum g)^2 / Vt``: the share of the total's variance due to the
        general factor (``psych::omega()$omega_h``).
    omega_total : float
        ``(Vt - sum u2) / Vt``: the share due to all common factors (``omega.tot``).
    omega_group : DataFrame
        One row per factor (``g``, ``F1*`` ...): ``total``, ``general``, ``group``, as
        ``psych::omega()$omega.group``.
    loadings : DataFrame
        The Schmid-Leiman loadings: ``g``, one column per group factor, ``h2``, ``u2``
        (``psych::omega()$schmid$sl``).
    phi : ndarray
        Correlations of the oblimin-rotated group factors.
    n_factors, n, n_items : int
    converged : bool
        KKT test of the ML factor extraction (see :mod:`alliance_lib.optim`).
    optimizer_message : str
    heywood : bool
    nan_policy : str
    """

    omega_h: float
    omega_total: float
    omega_group: pd.DataFrame = field(repr=False)
    loadings: pd.DataFrame = field(repr=False)
    phi: np.ndarray = field(repr=False)
    n_factors: int
    n: int
    n_items: int
    converged: bool
    optimizer_message: str
    heywood: bool
    nan_policy: str

    def __float__(self) -> float:
        return float(self.omega_h)


def _ml_factors(r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool, str]:
    """k-factor ML factor analysis of a correlation matrix (``stats::factanal``'s criterion).

    Returns unrotated loadings (p, k), uniquenesses, the KKT verdict and the optimiser message.
    """
    p = r.shape[0]
    eig_r = np.linalg.eigvalsh(r)
    if not eig_r[0] > 1e-10 * p:
        raise ReliabilityError(
            "the item correlation matrix is not positive definite (smallest eigenvalue "
            f"{eig_r[0]:.3g}); a factor model needs a positive definite matrix."
        )
    if (p - k) ** 2 < p + k:
        raise ReliabilityError(f"{k} factors are too many for {p} items (model not identified).")

    def loadings(psi):
        sc = 1.0 / np.sqrt(psi)
        values, vectors = np.linalg.eigh(r * np.outer(sc, sc))
        top = values[::-1][:k]
        vec = vectors[:, ::-1][:, :k]
        return values, np.sqrt(psi)[:, None] * vec * np.sqrt(np.maximum(top - 1.0, 0.0))

    def objective(psi):
        values, load = loadings(psi)
        rest = values[::-1][k:]
        f = -(np.sum(np.log(rest) - rest) - k + p)
        grad = ((load**2).sum(axis=1) + psi - np.diag(r)) / psi**2
        return float(f), grad

    start = (1.0 - 0.5 * k / p) / np.diag(np.linalg.inv(r))
    fit = optimize.minimize(
        objective,
        np.clip(start, _PSI_LOWER, 1.0),
        jac=True,
        method="L-BFGS-B",
        bounds=[(_PSI_LOWER, 1.0)] * p,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000},
    )
    psi = np.asarray(fit.x, dtype=float)
    _, load = loadings(psi)
    _, grad = objective(psi)
    return load, psi, _kkt_satisfied(psi, grad, _PSI_LOWER, 1.0), str(fit.message)


def _varimax(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Kaiser-normalised varimax (the algorithm of ``stats::varimax``)."""
    nc = x.shape[1]
    if nc < 2:
        return x
    sc = np.sqrt((x**2).sum(axis=1))
    xn = x / sc[:, None]
    p = xn.shape[0]
    tt = np.eye(nc)
    d = 0.0
    for _ in range(1000):  # iterations of the rotation, not a loop over data rows
        z = xn @ tt
        b = xn.T @ (z**3 - z @ np.diag((z**2).sum(axis=0)) / p)
        u, s, vt = np.linalg.svd(b)
        tt = u @ vt
        d_past, d = d, float(s.sum())
        if d < d_past * (1 + eps):
            break
    return (xn @ tt) * sc[:, None]


def _oblimin(a: np.ndarray, eps: float = 1e-10, maxit: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Direct oblimin (gamma 0, quartimin) by gradient projection (``GPArotation::GPFoblq``).

    Returns the pattern loadings and the factor correlations, from the identity start.
    """
    k = a.shape[1]
    off = (~np.eye(k, dtype=bool)).astype(float)  # cast once, not at every product

    def vgq(lo):
        x = (lo**2) @ off
        return lo * x, float((lo**2 * x).sum() / 4.0)

    tm = np.eye(k)
    lo = a @ np.linalg.inv(tm).T
    gq, f = vgq(lo)
    g = -(lo.T @ gq @ np.linalg.inv(tm)).T
    al = 1.0
    for _ in range(maxit):
        gp = g - tm @ np.diag((tm * g).sum(axis=0))
        s = float(np.sqrt((gp**2).sum()))
        if s < eps:
            break
        al *= 2.0
        for _ in range(11):
            x = tm - al * gp
            tmt = x / np.sqrt((x**2).sum(axis=0))
            inv_t = np.linalg.inv(tmt)  # reused for the gradient below
            lo = a @ inv_t.T
            gqt, ft = vgq(lo)
            if f - ft > 0.5 * s**2 * al:
                break
            al /= 2.0
        tm, f = tmt, ft
        g = -(lo.T @ gqt @ inv_t).T
    return lo, tm.T @ tm


def omega_hierarchical(
    items: Any,
    n_factors: int = 3,
    *,
    nan_policy: str = "pairwise",
    missing_codes: Iterable[float] = (),
) -> HierarchicalOmegaResult:
    """Omega hierarchical and omega total of a multidimensional scale (Schmid-Leiman).

    Parameters
    ----------
    items : DataFrame or 2-D array
        One column per item (already reverse-keyed).
    n_factors : int, default 3
        Number of group factors (the instrument's subscales; WAI-SR: goal, task, bond).
    nan_policy : {"pairwise", "listwise"}, default "pairwise"
        Correlations from pairwise-complete rows (``psych::omega``'s default) or complete rows.
    missing_codes : iterable of float, optional

    Returns
    -------
    HierarchicalOmegaResult

    Notes
    -----
    The steps of ``psych::omega(x, nfactors, fm="ml")`` (``psych::schmid``): an ML factor
    analysis with ``n_factors`` factors of the item correlation matrix :math:`R`, varimax, then
    direct oblimin (GPArotation's gradient projection); a one-factor model of the group
    factors' correlations :math:`\\Phi` gives the second-order loadings :math:`\\gamma` (closed
    form with 3 factors; with 2, :math:`\\gamma_1 = \\gamma_2 = \\sqrt{|\\phi_{12}|}`, psych's
    ``option="equal"``). The Schmid-Leiman general loadings are :math:`g = F\\gamma` and the
    group loadings :math:`F \\operatorname{diag}(\\sqrt{1 - \\gamma^2})`; with
    :math:`V_t = \\mathbf 1'R\\mathbf 1` and uniquenesses :math:`u^2 = 1 - h^2`,

    .. math:: \\omega_h = \\frac{(\\sum g_i)^2}{V_t},\\qquad
              \\omega_t = \\frac{V_t - \\sum u_i^2}{V_t}.

    ``omega_h`` is the reliability of the total as a measure of the general factor; ``omega_t``
    of the total as a measure of all common factors. Items are standardised (as psych).

    References
    ----------
    Schmid, J., & Leiman, J. M. (1957). The development of hierarchical factor solutions.
    Psychometrika, 22(1), 53-61.
    Zinbarg, R. E., Revelle, W., Yovel, I., & Li, W. (2005). Cronbach's alpha, Revelle's beta,
    and McDonald's omega_h. Psychometrika, 70(1), 123-133.
    Revelle, W. psych, ``omega()`` and ``schmid()``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(4)
    >>> g = rng.normal(size=(500, 1)); s = rng.normal(size=(500, 3))
    >>> x = np.hstack([0.6 * g + 0.5 * s[:, [j]] + 0.6 * rng.normal(size=(500, 4))
    ...                for j in range(3)])
    >>> res = omega_hierarchical(x, 3)
    >>> print(f"omega_h={res.omega_h:.3f} omega_t={res.omega_total:.3f}")
    omega_h=0.734 omega_t=0.932
    """
    if int(n_factors) != n_factors or n_factors < 2:
        raise ReliabilityError(f"n_factors must be a whole number >= 2; got {n_factors!r}.")
    x, names = _prepare(items, nan_policy, missing_codes, min_items=3)
    return _omega_h_x(x, names, int(n_factors), nan_policy)


def _omega_h_x(x: np.ndarray, names: list[str], k: int, nan_policy: str):
    """:func:`omega_hierarchical` on the rows kept by :func:`_prepare`."""
    r = _correlation(x, names)
    load, psi, converged, message = _ml_factors(r, k)
    orth = _varimax(load)
    pattern, phi = _oblimin(orth)
    flip = np.where(pattern.sum(axis=0) < 0, -1.0, 1.0)  # as psych: column sums positive
    pattern, phi = pattern * flip, phi * np.outer(flip, flip)
    if k == 2:
        gam = np.sqrt(abs(phi[0, 1])) * np.array([1.0, np.sign(phi[0, 1]) or 1.0])
    elif k == 3:
        p01, p02, p12 = phi[0, 1], phi[0, 2], phi[1, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            gam = np.sqrt(np.array([p01 * p02 / p12, p01 * p12 / p02, p02 * p12 / p01]))
    else:
        gl, _, _, _ = _ml_factors(phi, 1)
        gam = gl[:, 0]
    if not np.all(np.isfinite(gam)) or np.any(gam > 1.0):
        raise ReliabilityError(
            "the group factors' correlations do not fit a general factor (a negative or "
            "out-of-range second-order loading); omega hierarchical is undefined for these items."
        )
    if gam.sum() < 0:
        gam = -gam
    g = pattern @ gam
    if g.sum() < 0:  # psych flips item signs by the general loading; orient g positively
        g, pattern = -g, -pattern
    group = pattern * np.sqrt(np.clip(1.0 - gam**2, 0.0, None))
    h2 = (orth**2).sum(axis=1)
    u2 = 1.0 - h2
    vt = float(r.sum())
    om_h = float(g.sum() ** 2 / vt)
    om_t = float((vt - u2.sum()) / vt)
    gnames = [f"F{j + 1}*" for j in range(k)]
    # psych: each item belongs to the group factor with its largest |loading|
    member = np.argmax(np.abs(group), axis=1)
    rows = {"g": (om_t, om_h, np.nan)}
    grs = 0.0
    for j in range(k):  # one small computation per factor
        idx = np.flatnonzero(member == j)
        if idx.size == 0:
            rows[gnames[j]] = (np.nan, np.nan, np.nan)
            continue
        vgr = float(r[np.ix_(idx, idx)].sum())
        gr = float(group[idx, j].sum())
        grs += gr**2
        gg = float(g[idx].sum())
        rows[gnames[j]] = ((gr**2 + gg**2) / vgr, gg**2 / vgr, gr**2 / vgr)
    rows["g"] = (om_t, om_h, grs / vt)
    omega_group = pd.DataFrame.from_dict(
        rows, orient="index", columns=["total", "general", "group"]
    )
    index = pd.Index(names, name="item")
    sl = pd.DataFrame(group, index=index, columns=gnames)
    sl.insert(0, "g", g)
    sl["h2"] = h2
    sl["u2"] = u2
    return HierarchicalOmegaResult(
        omega_h=om_h,
        omega_total=om_t,
        omega_group=omega_group,
        loadings=sl,
        phi=phi,
        n_factors=k,
        n=int(x.shape[0]),
        n_items=int(x.shape[1]),
        converged=converged,
        optimizer_message=message,
        heywood=bool(np.any(psi <= _PSI_LOWER * (1 + 1e-6))),
        nan_policy=nan_policy,
    )


# --------------------------------------------------------------------------------------------
# multilevel (two-level CFA) omega


@dataclass(frozen=True)
class MultilevelOmegaResult:
    """Within- and between-client omega from a two-level one-factor CFA (Geldhof et al. 2014).

    Attributes
    ----------
    omega_within, omega_between : float
        ``(sum lambda)^2 / ((sum lambda)^2 + sum theta)`` with the loadings and residual
        variances of the within-client and the between-client factor model (factor variances 1).
    loadings_within, loadings_between, residuals_within, residuals_between : Series
        Raw-scale estimates (lavaan ``std.lv = TRUE`` parameterisation).
    intercepts : Series
        Item means (between level).
    loglik : float
        Log-likelihood of the two-level model (as lavaan's ``logLik``).
    n, n_clients, n_items : int
        Administrations (complete rows), clients, items.
    converged : bool
        KKT test at the ML estimate (see :mod:`alliance_lib.optim`).
    optimizer_message : str
    heywood : bool
        Whether a residual variance sits at its lower bound (a between-level residual of 0 is
        common: lavaan would report a negative or zero variance).
    item_icc : Series
        Share of each item's variance between clients.
    """

    omega_within: float
    omega_between: float
    loadings_within: pd.Series = field(repr=False)
    loadings_between: pd.Series = field(repr=False)
    residuals_within: pd.Series = field(repr=False)
    residuals_between: pd.Series = field(repr=False)
    intercepts: pd.Series = field(repr=False)
    item_icc: pd.Series = field(repr=False)
    loglik: float
    n: int
    n_clients: int
    n_items: int
    converged: bool
    optimizer_message: str
    heywood: bool


def multilevel_omega(items: Any, cluster: Any, *, missing_codes: Iterable[float] = ()):
    """Within- and between-client omega from a two-level one-factor CFA fitted by ML.

    Parameters
    ----------
    items : DataFrame or 2-D array
        One column per item (already reverse-keyed), one row per administration.
    cluster : array-like
        Client label of each row (repeated administrations share it).
    missing_codes : iterable of float, optional

    Returns
    -------
    MultilevelOmegaResult

    Notes
    -----
    Each administration :math:`i` of client :math:`j` is
    :math:`y_{ij} = \\mu + \\lambda_B \\eta_j + \\varepsilon_{Bj} + \\lambda_W \\eta_{ij} +
    \\varepsilon_{Wij}`, so :math:`\\Sigma_W = \\lambda_W\\lambda_W' + \\Theta_W` and
    :math:`\\Sigma_B = \\lambda_B\\lambda_B' + \\Theta_B` (factor variances 1). The ML
    log-likelihood of client :math:`j` with :math:`n_j` complete rows, mean
    :math:`\\bar y_j` and within SSCP :math:`W_j` is

    .. math:: -\\tfrac12\\bigl[n_j p\\log 2\\pi + (n_j - 1)\\log|\\Sigma_W| +
              \\operatorname{tr}(\\Sigma_W^{-1}W_j) + \\log|V_j| +
              n_j(\\bar y_j - \\mu)'V_j^{-1}(\\bar y_j - \\mu)\\bigr],\\quad
              V_j = \\Sigma_W + n_j\\Sigma_B,

    maximised with :math:`\\mu` profiled out (GLS) and residual variances bounded below
    (within: 0.5 % of the item variance; between: 0), with the analytic gradient; convergence is
    the KKT test. This is the model of a lavaan two-level CFA (``level: 1`` / ``level: 2``,
    ``std.lv = TRUE``). Then (Geldhof, Preacher & Zyphur 2014)
    :math:`\\omega_W = (\\sum\\lambda_W)^2 / ((\\sum\\lambda_W)^2 + \\sum\\theta_W)` and
    likewise :math:`\\omega_B`: the reliability of a client's score at one session as a
    measure of the client's own fluctuation (within), and of the client-level common part
    (between). Only complete rows are used. One factor per level: meant for unidimensional
    scales.

    References
    ----------
    Geldhof, G. J., Preacher, K. J., & Zyphur, M. J. (2014). Reliability estimation in a
    multilevel confirmatory factor analysis framework. Psychological Methods, 19(1), 72-91.
    Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
    Research, 22(3), 376-398.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> client = np.repeat(np.arange(150), 4)
    >>> b = rng.normal(size=150)[client]; w = rng.normal(size=600)
    >>> x = np.column_stack([0.5 * b + rng.normal(0, 0.3, 150)[client] + 0.5 * w
    ...                      + rng.normal(0, 0.5, 600) for _ in range(4)])
    >>> res = multilevel_omega(x, client)
    >>> print(f"within={res.omega_within:.2f} between={res.omega_between:.2f}")
    within=0.79 between=0.92
    """
    x, names, _ = _item_matrix(items, missing_codes)
    cl = np.asarray(cluster)
    if cl.shape[0] != x.shape[0]:
        raise ReliabilityError(
            f"cluster has {cl.shape[0]} labels for {x.shape[0]} rows of items.", value=cl.shape[0]
        )
    if x.shape[1] < 3:
        raise ReliabilityError(f"need at least 3 items; got {x.shape[1]}.")
    complete = ~np.isnan(x).any(axis=1) & pd.notna(cl)
    codes, _ = pd.factorize(cl)
    x = np.asfortranarray(x)
    return _two_level_fit(_two_level_stats(x, np.arange(x.shape[1]), complete, codes), names)


#: Rows per block when the pooled within-client SSCP is accumulated (bounds the temporary).
_BLOCK_ROWS = 1 << 16


def _two_level_stats(
    x: np.ndarray, cols: np.ndarray, use: np.ndarray, codes: np.ndarray
) -> dict[str, Any]:
    """Sufficient statistics of the two-level model in one pass over the rows used.

    ``x`` is the item matrix (any rows and columns; column-major is fastest), ``cols`` the
    columns of the scale, ``use`` a boolean mask of the complete rows of ``x`` and ``codes``
    the cluster code of every row of ``x`` (integers, any numbering; only rows in ``use``
    count). Returns the cluster sizes, the pooled within-client SSCP, and per distinct cluster
    size the count of clusters, the sum of their mean vectors and the sum of the outer products
    of their means (float64), so that the likelihood costs O(p^3 x distinct sizes), not
    O(rows).
    """
    p = cols.size
    cu = np.asarray(codes, dtype=np.intp)[use]
    n = cu.size
    nj = np.bincount(cu) if n else np.zeros(0, dtype=np.intp)
    present = nj > 0
    if not present.all():  # renumber the clusters with a complete row (order kept)
        cu = (np.cumsum(present) - 1)[cu]
        nj = nj[present]
    nclus = nj.size
    if nclus < p + 2 or n <= nclus:
        raise ReliabilityError(
            f"{nclus} clients with {n} complete administrations: a two-level model of "
            f"{p} items needs more clients than items and repeated administrations."
        )
    sums = np.empty((nclus, p))
    itemvar = np.empty(p)
    for j, c in enumerate(cols):  # one bincount per item column (O(rows)), not per row
        col = x[:, c][use]
        sums[:, j] = np.bincount(cu, weights=col, minlength=nclus)
        itemvar[j] = col.var(ddof=1)
    ybar = sums / nj[:, None]
    wss = np.zeros((p, p))
    where = np.flatnonzero(use)
    for lo in range(0, n, _BLOCK_ROWS):  # blocks of rows bound the temporary deviations
        at = where[lo : lo + _BLOCK_ROWS]
        cb = cu[lo : lo + _BLOCK_ROWS]
        dev = np.empty((at.size, p), order="F")
        for j, c in enumerate(cols):
            dev[:, j] = x[at, c] - ybar[cb, j]
        wss += dev.T @ dev
    sizes, size_of = np.unique(nj, return_inverse=True)
    cnt = np.bincount(size_of, minlength=sizes.size)
    order = np.argsort(size_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    msum = np.empty((sizes.size, p))
    s2sum = np.empty((sizes.size, p, p))
    for s, (a, m) in enumerate(zip(starts, cnt, strict=True)):  # one per distinct size
        yb = ybar[order[a : a + m]]
        msum[s] = yb.sum(axis=0)
        s2sum[s] = yb.T @ yb
    return {
        "n": int(n),
        "nclus": int(nclus),
        "nj_mean": float(nj.mean()),
        "wss": wss,
        "sizes": sizes.astype(float),
        "cnt": cnt.astype(float),
        "msum": msum,
        "s2sum": s2sum,
        "cov_means": np.cov(ybar, rowvar=False),
        "itemvar": itemvar,
    }


def _two_level_fit(st: dict[str, Any], names: Sequence[str]) -> MultilevelOmegaResult:
    """ML fit of the two-level one-factor CFA from :func:`_two_level_stats`."""
    n, nclus, wss = st["n"], st["nclus"], st["wss"]
    sizes, cnt, msum, s2sum = st["sizes"], st["cnt"], st["msum"], st["s2sum"]
    itemvar = st["itemvar"]
    p = wss.shape[0]

    def unpack(par):
        return par[:p], par[p : 2 * p], par[2 * p : 3 * p], par[3 * p :]

    def value_grad(par):
        lw, tw, lb, tb = unpack(par)
        sw = np.outer(lw, lw) + np.diag(tw)
        sb = np.outer(lb, lb) + np.diag(tb)
        try:
            swi = np.linalg.inv(sw)
            _, ldw = np.linalg.slogdet(sw)
            v = sw[None] + sizes[:, None, None] * sb[None]
            vi = np.linalg.inv(v)
            sign, ldv = np.linalg.slogdet(v)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(par)
        if ldw is None or np.any(sign <= 0) or not np.isfinite(ldw):
            return np.inf, np.zeros_like(par)
        wts = (cnt * sizes)[:, None, None] * vi
        a = wts.sum(axis=0)
        bvec = np.einsum("sij,sj->i", (sizes[:, None, None] * vi), msum)
        mu = np.linalg.solve(a, bvec)
        d = s2sum - np.einsum("si,j->sij", msum, mu) - np.einsum("i,sj->sij", mu, msum)
        d += cnt[:, None, None] * np.outer(mu, mu)[None]
        quad = float(np.einsum("s,sij,sji->", sizes, vi, d))
        f = (
            (n - nclus) * ldw
            + float(np.trace(swi @ wss))
            + float((cnt * ldv).sum())
            + quad
            + n * p * math.log(2 * math.pi)
        )
        vdv = vi @ d @ vi  # batched matrix products: O(sizes x p^3)
        term = cnt[:, None, None] * vi - sizes[:, None, None] * vdv
        gw = (n - nclus) * swi - swi @ wss @ swi + term.sum(axis=0)
        gb = (sizes[:, None, None] * term).sum(axis=0)
        grad = np.concatenate([2 * gw @ lw, np.diag(gw), 2 * gb @ lb, np.diag(gb)])
        return f / n, grad / n

    # start: pooled within and between (MUML-style) moments
    spw = wss / (n - nclus)
    cov_means = st["cov_means"]
    sb0 = cov_means - spw / st["nj_mean"]
    w, v = np.linalg.eigh(spw)
    lw0 = v[:, -1] * np.sqrt(w[-1])
    w, v = np.linalg.eigh(sb0)
    lb0 = v[:, -1] * np.sqrt(max(w[-1], 1e-3))
    if lw0.sum() < 0:
        lw0 = -lw0
    if lb0.sum() < 0:
        lb0 = -lb0
    tw0 = np.maximum(np.diag(spw) - lw0**2, 0.2 * np.diag(spw))
    tb0 = np.maximum(np.diag(sb0) - lb0**2, 0.1 * np.abs(np.diag(sb0)) + 1e-3)
    x0 = np.concatenate([lw0, tw0, lb0, tb0])
    lower = np.concatenate(
        [np.full(p, -np.inf), _PSI_LOWER * itemvar, np.full(p, -np.inf), np.zeros(p)]
    )
    fit = optimize.minimize(
        value_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(lo if np.isfinite(lo) else None, None) for lo in lower],
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20000, "maxcor": 30},
    )
    par = np.asarray(fit.x, dtype=float)
    f, grad = value_grad(par)
    converged = kkt_satisfied(par, grad, lower, tol=KKT_TOL)
    lw, tw, lb, tb = unpack(par)
    if lw.sum() < 0:
        lw = -lw
    if lb.sum() < 0:
        lb = -lb
    om_w = float(lw.sum() ** 2 / (lw.sum() ** 2 + tw.sum()))
    om_b = float(lb.sum() ** 2 / (lb.sum() ** 2 + tb.sum()))
    # the GLS mean at the estimate
    sw = np.outer(lw, lw) + np.diag(tw)
    sb = np.outer(lb, lb) + np.diag(tb)
    vi = np.linalg.inv(sw[None] + sizes[:, None, None] * sb[None])
    a = ((cnt * sizes)[:, None, None] * vi).sum(axis=0)
    mu = np.linalg.solve(a, np.einsum("sij,sj->i", sizes[:, None, None] * vi, msum))
    index = pd.Index(names, name="item")
    held = np.isclose(par, lower) & np.isfinite(lower)
    return MultilevelOmegaResult(
        omega_within=om_w,
        omega_between=om_b,
        loadings_within=pd.Series(lw, index=index, name="loading_within"),
        loadings_between=pd.Series(lb, index=index, name="loading_between"),
        residuals_within=pd.Series(tw, index=index, name="residual_within"),
        residuals_between=pd.Series(tb, index=index, name="residual_between"),
        intercepts=pd.Series(mu, index=index, name="intercept"),
        item_icc=pd.Series(np.diag(sb) / (np.diag(sb) + np.diag(sw)), index=index, name="icc"),
        loglik=float(-0.5 * f * n),
        n=int(n),
        n_clients=int(nclus),
        n_items=int(p),
        converged=bool(converged),
        optimizer_message=str(fit.message),
        heywood=bool(held.any()),
    )


# --------------------------------------------------------------------------------------------
# instrument-level table


def _instrument_items(df: pd.DataFrame, inst: Any) -> dict[int, str]:
    require_columns(df, inst.columns, f"reliability({inst.id})")
    return dict(zip(inst.items, inst.columns, strict=True))


def _scale_row(
    x: Any, ci: float, nan_policy: str, n_groups: int = 0, names: list[str] | None = None
) -> dict[str, Any]:
    """alpha and the omega that fits the scale: one-factor (unidimensional) or Schmid-Leiman.

    ``x``: the scale's cleaned items (a frame, or a float matrix with ``names``); the rows are
    selected and checked once for all three estimates."""
    if isinstance(x, pd.DataFrame):
        names = [str(c) for c in x.columns]
        x = x.to_numpy(dtype=float, na_value=np.nan)
    row: dict[str, Any] = {"n_items": x.shape[1]}
    notes = []
    try:
        xp, _ = _prepare_array(x, names, nan_policy, min_items=2)
        failed = None
    except ReliabilityError as exc:
        xp, failed = None, exc
    try:
        if failed is not None:
            raise failed
        a = _alpha_x(xp, names, ci, nan_policy)
        row.update(
            n=a.n,
            alpha=a.alpha,
            alpha_ci_low=a.ci_low,
            alpha_ci_high=a.ci_high,
            std_alpha=a.std_alpha,
            average_r=a.average_r,
        )
    except ReliabilityError as exc:
        notes.append(f"alpha: {exc}")
    if n_groups >= 2:
        row["omega_model"] = f"Schmid-Leiman, {n_groups} group factors (psych::omega, fm='ml')"
        try:
            if failed is not None:
                raise failed
            h = _omega_h_x(xp, names, int(n_groups), nan_policy)
            row.update(omega=h.omega_total, omega_std=h.omega_total, omega_h=h.omega_h)
            if h.heywood:
                notes.append("omega: Heywood case (a uniqueness at its 0.005 bound)")
            if not h.converged:
                notes.append("omega: factor model did not converge")
        except ReliabilityError as exc:
            notes.append(f"omega: {exc}")
    elif x.shape[1] >= 3:
        row["omega_model"] = "one factor (unidimensional scale)"
        try:
            if failed is not None:
                raise failed
            o = _omega_x(xp, names, nan_policy)
            row.update(omega=o.omega, omega_std=o.omega_std)
            if o.heywood:
                notes.append("omega: Heywood case (a uniqueness at its 0.005 bound)")
            if not o.converged:
                notes.append("omega: factor model did not converge")
        except ReliabilityError as exc:
            notes.append(f"omega: {exc}")
    else:
        notes.append("omega: needs at least 3 items")
    row["note"] = "; ".join(notes)
    return row


_ADMIN_HINT = (
    "pass administration='all' to pool every row (only when each row is a different person)"
)


def _clean_items(
    df: pd.DataFrame, inst: Any, missing_codes: Iterable[float], errors: str
) -> tuple[pd.DataFrame, dict[int, str], int]:
    """Item table with missing codes as NaN, invalid rows raised or blanked, reverse keys applied."""
    x, mapping, n_omitted = _clean_matrix(df, inst, missing_codes, errors)
    return pd.DataFrame(x, columns=list(mapping.values()), index=df.index), mapping, n_omitted


def _clean_matrix(
    df: pd.DataFrame,
    inst: Any,
    missing_codes: Iterable[float],
    errors: str,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, str], int]:
    """:func:`_clean_items` as one float64 matrix (column-major, one column per item), filled
    column by column from the frame without copying the frame; ``rows``: positions to take
    (all rows when None)."""
    mapping = _instrument_items(df, inst)
    cols = list(mapping.values())
    n, p = (len(df) if rows is None else len(rows)), len(cols)
    x = np.empty((n, p), order="F")
    text = np.zeros((n, p), dtype=bool, order="F") if p else np.zeros((n, 0), dtype=bool)
    has_text = False
    for j, c in enumerate(cols):  # one pass per item column, never per row
        col = df[c]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            values = col.to_numpy(dtype=float, na_value=np.nan)
            x[:, j] = values if rows is None else values[rows]
        else:
            col = col if rows is None else col.iloc[rows]
            num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            x[:, j] = num
            text[:, j] = col.notna().to_numpy() & np.isnan(num)
            has_text = has_text or bool(text[:, j].any())
    index = df.index if rows is None else df.index[rows]
    at = np.arange(len(df)) if rows is None else np.asarray(rows)
    codes = [float(c) for c in missing_codes]
    lo, hi = float(inst.scale_min), float(inst.scale_max)
    bad = text if has_text else np.zeros((n, p), dtype=bool, order="F")
    for j in range(p):  # column by column: no (rows x items) temporaries but the flags
        xj = x[:, j]
        if codes:
            xj[np.isin(xj, codes)] = np.nan
        badj = (xj < lo) | (xj > hi)  # False for NaN
        if inst.integer_scale:
            badj |= np.abs(xj - np.round(xj)) > 0  # False for NaN
        bad[:, j] |= badj
    bad_rows = bad.any(axis=1)
    if bad_rows.any() and errors == "raise":
        rows, cols_idx = np.nonzero(bad)
        rows, cols_idx = rows[:5], cols_idx[:5]
        total = int(bad.sum())
        labels = index[rows].tolist()
        cells = ", ".join(
            f"row {labels[m]!r} {cols[j]}={df[cols[j]].to_numpy(dtype=object)[at[i]]!r}"
            for m, (i, j) in enumerate(zip(rows.tolist(), cols_idx.tolist(), strict=True))
        )
        more = f" and {total - 5} more" if total > 5 else ""
        raise ReliabilityError(
            f"instrument {inst.id!r}: {total} item value(s) that are text, outside the "
            f"scale {lo:g}-{hi:g}{' or not whole numbers' if inst.integer_scale else ''}: "
            f"{cells}{more}. Declare missing codes with missing_codes=, quarantine the rows with "
            "alliance_lib.validate, or pass errors='omit'.",
            row=labels[0],
            column=cols[int(cols_idx[0])],
            value=df[cols[int(cols_idx[0])]].to_numpy(dtype=object)[int(at[rows[0]])],
        )
    x[bad_rows] = np.nan  # errors="omit": such rows count as not administered
    rev = set(inst.reverse)
    for j, item in enumerate(mapping):  # reverse keys, column by column
        if item in rev:
            x[:, j] = lo + hi - x[:, j]
    return x, mapping, int(bad_rows.sum())


def _group_codes(df: pd.DataFrame, cols: list[str], rows: np.ndarray | None) -> np.ndarray:
    """Integer code of each row's combination of ``cols`` (NaN a value of its own)."""
    if len(cols) == 1:
        col = df[cols[0]]
        values = col.to_numpy() if rows is None else col.to_numpy()[rows]
        return pd.factorize(values, use_na_sentinel=False)[0]
    sub = df[cols] if rows is None else df[cols].iloc[rows]
    return sub.groupby(cols, dropna=False, sort=False).ngroup().to_numpy()


def _select_administration(
    df: pd.DataFrame,
    administered: np.ndarray,
    *,
    client: str,
    session: str,
    administration: Any,
    by_cols: list[str],
    errors: str = "raise",
    rows: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Rows used (one administration per client within ``by`` groups, or all) and the number of
    duplicated rows left out (``errors="omit"``).

    ``rows``: positions of the rows of ``df`` the items came from (all when None); ``codes``:
    the (by groups and) client code of those rows, when already factorised."""
    if isinstance(administration, str) and administration == "all":
        return administered, 0
    is_first = isinstance(administration, str) and administration == "first"
    is_session = (
        not isinstance(administration, (str, bool))
        and isinstance(administration, (int, np.integer, float))
        and float(administration) == int(administration)
    )
    if not (is_first or is_session):
        raise ReliabilityError(
            f"administration must be 'first', a session number or 'all'; got {administration!r}.",
            value=administration,
        )
    for col in (client, session):
        if col not in df.columns:
            raise ReliabilityError(
                f"one administration per client needs the {col!r} column, which is not in the "
                f"data (columns: {', '.join(map(str, df.columns))}); name it with "
                f"client=/session=, or {_ADMIN_HINT}.",
                column=col,
            )
    ses = pd.to_numeric(df[session], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if rows is not None:
        ses = ses[rows]
    if codes is None:
        codes = _group_codes(df, [*by_cols, client], rows)
    if is_first:
        candidate = np.where(administered, ses, np.nan)
        first = pd.Series(candidate).groupby(codes).transform("min").to_numpy()
        keep = administered & (ses == first)
    else:
        keep = administered & (ses == float(administration))
    kept = np.flatnonzero(keep)
    kc = codes[kept]
    count = np.bincount(kc, minlength=int(codes.max()) + 1 if codes.size else 0)
    dup = count[kc] > 1
    if dup.any() and errors == "omit":
        first_of = np.unique(kc, return_index=True)[1]
        extra = np.ones(kept.size, dtype=bool)
        extra[first_of] = False  # keeps the first row of each client, in row order
        keep = keep.copy()
        keep[kept[extra]] = False
        return keep, int(extra.sum())
    if dup.any():
        pos = kept[np.argmax(dup)]
        at = int(pos) if rows is None else int(rows[pos])
        label = df.index[at]
        raise ReliabilityError(
            f"{int(dup.sum())} rows share a {client} and session after choosing one "
            f"administration per client (e.g. row {label!r}, {client}="
            f"{df[client].iloc[at]!r}); several raters per session? Pass by='rater', select "
            "one rater first, remove duplicated rows, or pass errors='omit' (keeps the first).",
            row=label,
            column=client,
        )
    return keep, 0


def reliability(
    df: pd.DataFrame,
    instrument: Any,
    *,
    client: str = "client_id",
    session: str = "session",
    administration: str | int = "first",
    by: str | Sequence[str] | None = None,
    ci: float = 0.95,
    nan_policy: str = "listwise",
    missing_codes: Iterable[float] = (),
    errors: str = "raise",
    folder: Any = None,
) -> pd.DataFrame:
    """Alpha and omega for every scale of an instrument at one administration per client.

    Parameters
    ----------
    df : DataFrame
        Long table with the instrument's item columns (``{prefix}_{n}``).
    instrument : str or Instrument
        Instrument id (e.g. ``"wai-sr"``) or object, resolved with
        :func:`alliance_lib.registry.get_instrument`.
    client, session : str
        Client id and session columns (used to choose one administration per client).
    administration : {"first", "all"} or int, default "first"
        Which rows enter: ``"first"``, each client's earliest session at which the instrument
        was administered (any item answered; for the alliance the first alliance session,
        never an intake without it); a session number, that session for every client; ``"all"``,
        every row pooled (repeated administrations of a client count as separate people: the
        interval is then too narrow; use :func:`multilevel_reliability` for repeated data).
    by : str or list of str, optional
        Column(s) to group by (e.g. ``"rater"``); one row per group and scale; the
        administration is chosen per client within each group.
    ci : float, default 0.95
        Level of the Feldt interval.
    nan_policy : {"listwise", "pairwise"}, default "listwise"
        Missing-item handling within each scale (see :func:`cronbach_alpha`).
    missing_codes : iterable of float, optional
        Codes (e.g. ``-99, 999``) treated as missing items.
    errors : {"raise", "omit"}, default "raise"
        What to do with rows holding an invalid item value (text, outside the scale, or not a
        whole number on an integer scale): raise a :class:`ReliabilityError` naming the cells,
        or leave those rows out (their number is in ``attrs["n_omitted"]``). Also decides what
        happens to a client with two rows at the chosen session: raise, or keep the first
        (``attrs["n_duplicates"]``).
    folder : str or Path, optional
        Folder of user instrument definitions, passed to ``get_instrument``.

    Returns
    -------
    DataFrame
        Columns (after any ``by`` columns): ``scale``, ``n_items``, ``n``, ``alpha``,
        ``alpha_ci_low``, ``alpha_ci_high``, ``std_alpha``, ``average_r``, ``omega``,
        ``omega_std``, ``omega_h``, ``omega_model``, ``note`` (why a value is missing, Heywood
        cases). ``attrs``: instrument id, ``ci``, ``nan_policy``, ``administration``,
        ``n_omitted``.

    Raises
    ------
    ReliabilityError
        Missing item columns, text in an item column, an item value outside the instrument's
        scale (naming row, column and value); no client/session column for one administration
        per client; two rows of a client at the chosen session (several raters: use ``by``).

    Notes
    -----
    Reverse-keyed items are recoded as ``scale_min + scale_max - x`` first; rows where every
    item is missing (not administered) are dropped. Which omega: a subscale, or the total of an
    instrument without subscales, is treated as unidimensional and gets the one-factor omega of
    :func:`omega`; the total of an instrument with k >= 2 subscales (WAI-SR: goal, task, bond)
    is multidimensional and gets ``omega`` = omega total and ``omega_h`` = omega hierarchical of
    a Schmid-Leiman solution with k group factors (:func:`omega_hierarchical`, as
    ``psych::omega(x, k, fm="ml")``, standardised items). ``omega_model`` says which.

    References
    ----------
    See :func:`cronbach_alpha`, :func:`omega` and :func:`omega_hierarchical`.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=4, n_clients=60, max_sessions=4, seed=3)
    >>> table = reliability(df, "wai-sr", by="rater", missing_codes=(-99, 999), errors="omit")
    >>> table[["rater", "scale", "n", "alpha", "omega", "omega_h"]].round(3).head(4)
        rater  scale   n  alpha  omega  omega_h
    0  client  total  41  0.918  0.940    0.745
    1  client   goal  53  0.850  0.856      NaN
    2  client   task  54  0.812  0.815      NaN
    3  client   bond  54  0.795  0.800      NaN
    """
    _check_ci(ci)
    if errors not in ("raise", "omit"):
        raise ReliabilityError(f"errors must be 'raise' or 'omit'; got {errors!r}.", value=errors)
    inst = get_instrument(instrument, folder)
    by_cols = [by] if isinstance(by, str) else list(by or [])
    return _reliability(
        df,
        inst,
        client=client,
        session=session,
        administration=administration,
        by_cols=by_cols,
        ci=ci,
        nan_policy=nan_policy,
        missing_codes=missing_codes,
        errors=errors,
    )


def _reliability(
    df: pd.DataFrame,
    inst: Any,
    *,
    client: str,
    session: str,
    administration: Any,
    by_cols: list[str],
    ci: float,
    nan_policy: str,
    missing_codes: Iterable[float],
    errors: str,
    rows: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`reliability` on the rows at positions ``rows`` of ``df`` (all when None), with
    the client codes of those rows when already factorised (``by_cols`` empty)."""
    x, mapping, n_omitted = _clean_matrix(df, inst, missing_codes, errors, rows)
    administered = ~np.isnan(x).all(axis=1) if x.shape[1] else np.zeros(len(x), dtype=bool)
    require_columns(df, by_cols, f"reliability({inst.id}) by=")
    used, n_duplicates = _select_administration(
        df,
        administered,
        client=client,
        session=session,
        administration=administration,
        by_cols=by_cols,
        errors=errors,
        rows=rows,
        codes=codes if not by_cols else None,
    )
    used_pos = np.flatnonzero(used)
    xu = x[used_pos]  # the chosen administrations only (one row per client)
    del x
    scales = {name: tuple(numbers) for name, numbers in inst.scales.items()}  # total first
    n_sub = len(scales) - 1 if "total" in scales else 0
    col_of = {item: j for j, item in enumerate(mapping)}
    if by_cols:
        at = used_pos if rows is None else np.asarray(rows)[used_pos]
        keys = df[by_cols].iloc[at].reset_index(drop=True)
        groups = [(k, g.index.to_numpy()) for k, g in keys.groupby(by_cols)]
    else:
        groups = [((), np.arange(xu.shape[0]))]
    records = []
    for key, pos in groups:  # loop over groups and scales, never rows
        key = key if isinstance(key, tuple) else (key,)
        sub = xu[pos]
        for name, numbers in scales.items():
            rec = dict(zip(by_cols, key, strict=True)) | {"scale": name}
            n_groups = n_sub if (name == "total" and n_sub >= 2) else 0
            idx = [col_of[i] for i in numbers]
            names = [mapping[i] for i in numbers]
            rec |= _scale_row(sub[:, idx], ci, nan_policy, n_groups, names)
            records.append(rec)
    columns = [
        *by_cols,
        "scale",
        "n_items",
        "n",
        "alpha",
        "alpha_ci_low",
        "alpha_ci_high",
        "std_alpha",
        "average_r",
        "omega",
        "omega_std",
        "omega_h",
        "omega_model",
        "note",
    ]
    table = pd.DataFrame.from_records(records).reindex(columns=columns)
    table["n"] = table["n"].astype("Int64")
    table["omega_h"] = table["omega_h"].astype(float)
    table.attrs.update(
        instrument=inst.id,
        ci=ci,
        nan_policy=nan_policy,
        administration=administration,
        n_omitted=n_omitted,
        n_duplicates=n_duplicates,
    )
    return table


def multilevel_reliability(
    df: pd.DataFrame,
    instrument: Any,
    *,
    client: str = "client_id",
    by: str | Sequence[str] | None = None,
    missing_codes: Iterable[float] = (),
    errors: str = "raise",
    folder: Any = None,
) -> pd.DataFrame:
    """Within- and between-client omega of every scale over repeated administrations.

    Parameters
    ----------
    df : DataFrame
        Long table, one row per administration (client x session), with the item columns.
    instrument : str or Instrument
    client : str
        Client id column: administrations of a client form a cluster.
    by : str or list of str, optional
        Group columns (e.g. ``"rater"``); one two-level model per group and scale.
    missing_codes, errors, folder
        As in :func:`reliability`.

    Returns
    -------
    DataFrame
        One row per (group and) scale: ``scale``, ``n_items``, ``n`` (complete
        administrations), ``n_clients``, ``omega_within``, ``omega_between``, ``loglik``,
        ``converged``, ``heywood``, ``model``, ``note``.

    Notes
    -----
    Each scale gets the two-level one-factor CFA of :func:`multilevel_omega` (Geldhof,
    Preacher & Zyphur 2014; the model of a lavaan two-level CFA). One factor per level suits a
    unidimensional scale; for the total of an instrument with subscales the ``note`` says that
    the one-factor model is a simplification. ``omega_within`` is the reliability of
    session-to-session change within a client; ``omega_between`` that of the client's average
    level.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=4, n_clients=80, max_sessions=6, seed=3)
    >>> t = multilevel_reliability(df[df["rater"] == "client"], "wai-sr",
    ...                            missing_codes=(-99, 999), errors="omit")
    >>> t[["scale", "n_clients", "omega_within", "omega_between"]].round(2).head(2)
       scale  n_clients  omega_within  omega_between
    0  total         80          0.81           1.00
    1   goal         80          0.71           0.99
    """
    if errors not in ("raise", "omit"):
        raise ReliabilityError(f"errors must be 'raise' or 'omit'; got {errors!r}.", value=errors)
    inst = get_instrument(instrument, folder)
    if client not in df.columns:
        raise ReliabilityError(
            f"column {client!r} not in the data (columns: {', '.join(map(str, df.columns))}); "
            "name the client column with client=.",
            column=client,
        )
    by_cols = [by] if isinstance(by, str) else list(by or [])
    missing_by = [c for c in by_cols if c not in df.columns]
    if missing_by:
        raise ReliabilityError(f"by column(s) {missing_by} not in the data.", column=missing_by[0])
    return _multilevel_reliability(df, inst, client, by_cols, missing_codes, errors)


def _multilevel_reliability(
    df: pd.DataFrame,
    inst: Any,
    client: str,
    by_cols: list[str],
    missing_codes: Iterable[float],
    errors: str,
    rows: np.ndarray | None = None,
    codes: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`multilevel_reliability` on the rows at positions ``rows`` (all when None), with
    their client codes when already factorised (-1: no client)."""
    x, mapping, n_omitted = _clean_matrix(df, inst, missing_codes, errors, rows)
    if codes is None:
        ids = df[client].to_numpy() if rows is None else df[client].to_numpy()[rows]
        codes = pd.factorize(ids)[0]  # NaN: -1, never in a cluster
    administered = ~np.isnan(x).all(axis=1) if x.shape[1] else np.zeros(len(x), dtype=bool)
    scales = {name: tuple(numbers) for name, numbers in inst.scales.items()}
    n_sub = len(scales) - 1 if "total" in scales else 0
    col_of = {item: j for j, item in enumerate(mapping)}
    adm = np.flatnonzero(administered)
    if by_cols:
        at = adm if rows is None else np.asarray(rows)[adm]
        keys = df[by_cols].iloc[at].reset_index(drop=True)
        groups = [(k, adm[g.index.to_numpy()]) for k, g in keys.groupby(by_cols)]
    else:
        groups = [((), adm)]
    records = []
    for key, pos in groups:  # loop over groups and scales, never rows
        key = key if isinstance(key, tuple) else (key,)
        in_group = np.zeros(x.shape[0], dtype=bool)
        in_group[pos] = True
        for name, numbers in scales.items():
            rec: dict[str, Any] = dict(zip(by_cols, key, strict=True)) | {"scale": name}
            rec["n_items"] = len(numbers)
            rec["model"] = "two-level CFA, one factor per level (Geldhof et al. 2014)"
            notes = []
            if name == "total" and n_sub >= 2:
                notes.append(f"the total has {n_sub} subscales: one factor per level simplifies it")
            try:
                idx = np.array([col_of[i] for i in numbers], dtype=np.intp)
                if idx.size < 3:
                    raise ReliabilityError(f"need at least 3 items; got {idx.size}.")
                use = in_group & (codes >= 0)
                for j in idx:  # complete rows of the scale, one column at a time
                    use &= ~np.isnan(x[:, j])
                st = _two_level_stats(x, idx, use, codes)
                m = _two_level_fit(st, [mapping[i] for i in numbers])
                rec.update(
                    n=m.n,
                    n_clients=m.n_clients,
                    omega_within=m.omega_within,
                    omega_between=m.omega_between,
                    loglik=m.loglik,
                    converged=m.converged,
                    heywood=m.heywood,
                )
                if not m.converged:
                    notes.append("two-level model did not converge")
                if m.heywood:
                    notes.append("a residual variance at its bound")
            except ReliabilityError as exc:
                notes.append(str(exc))
            rec["note"] = "; ".join(notes)
            records.append(rec)
    columns = [
        *by_cols,
        "scale",
        "n_items",
        "n",
        "n_clients",
        "omega_within",
        "omega_between",
        "loglik",
        "converged",
        "heywood",
        "model",
        "note",
    ]
    table = pd.DataFrame.from_records(records).reindex(columns=columns)
    table.attrs.update(instrument=inst.id, n_omitted=n_omitted)
    return table
