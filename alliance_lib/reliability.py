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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from alliance_lib.errors import DataError
from alliance_lib.frame import model_frame, require_columns
from alliance_lib.registry import get_instrument
from alliance_lib.results import to_jsonable

__all__ = [
    "AlphaResult",
    "OmegaResult",
    "ReliabilityError",
    "cronbach_alpha",
    "item_statistics",
    "omega",
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
    """First-order optimality of a box-constrained minimum (the KKT conditions).

    The projected gradient is the gradient with the components that point out of the box at an
    active bound set to zero; a minimum has every remaining component below :data:`KKT_TOL`.
    This replaces the optimiser's ``success`` flag, which only reports why it stopped.

    Examples
    --------
    >>> bool(_kkt_satisfied(np.array([0.005, 0.5]), np.array([2.0, 1e-8]), 0.005, 1.0))
    True
    >>> bool(_kkt_satisfied(np.array([0.005, 0.5]), np.array([-2.0, 1e-8]), 0.005, 1.0))
    False
    """
    span = upper - lower
    at_lower = x <= lower + 1e-9 * span
    at_upper = x >= upper - 1e-9 * span
    projected = np.where(at_lower, np.minimum(grad, 0.0), grad)
    projected = np.where(at_upper, np.maximum(projected, 0.0), projected)
    return bool(np.all(np.isfinite(grad)) and np.max(np.abs(projected)) < KKT_TOL)


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
# instrument-level table


def _instrument_items(df: pd.DataFrame, inst: Any) -> dict[int, str]:
    require_columns(df, inst.columns, f"reliability({inst.id})")
    return dict(zip(inst.items, inst.columns, strict=True))


def _scale_row(x: pd.DataFrame, ci: float, nan_policy: str) -> dict[str, Any]:
    row: dict[str, Any] = {"n_items": x.shape[1]}
    notes = []
    try:
        a = cronbach_alpha(x, ci=ci, nan_policy=nan_policy)
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
    if x.shape[1] >= 3:
        try:
            o = omega(x, nan_policy=nan_policy)
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


def reliability(
    df: pd.DataFrame,
    instrument: Any,
    *,
    by: str | Sequence[str] | None = None,
    ci: float = 0.95,
    nan_policy: str = "listwise",
    missing_codes: Iterable[float] = (),
    errors: str = "raise",
    folder: Any = None,
) -> pd.DataFrame:
    """Alpha and omega for every scale of an instrument: one row per scale (``total`` first).

    Parameters
    ----------
    df : DataFrame
        Long table with the instrument's item columns (``{prefix}_{n}``).
    instrument : str or Instrument
        Instrument id (e.g. ``"wai-sr"``) or object, resolved with
        :func:`alliance_lib.registry.get_instrument`.
    by : str or list of str, optional
        Column(s) to group by (e.g. ``"rater"`` or ``"session"``); one row per group and scale.
        Without it all rows are pooled, so repeated administrations of the same client count as
        separate rows: select one session (or one rater) first when that matters.
    ci : float, default 0.95
        Level of the Feldt interval.
    nan_policy : {"listwise", "pairwise"}, default "listwise"
        Missing-item handling within each scale (see :func:`cronbach_alpha`).
    missing_codes : iterable of float, optional
        Codes (e.g. ``-99, 999``) treated as missing items.
    errors : {"raise", "omit"}, default "raise"
        What to do with rows holding an invalid item value (text, outside the scale, or not a
        whole number on an integer scale): raise a :class:`ReliabilityError` naming the cells,
        or leave those rows out (their number is in ``attrs["n_omitted"]``).
    folder : str or Path, optional
        Folder of user instrument definitions, passed to ``get_instrument``.

    Returns
    -------
    DataFrame
        Columns (after any ``by`` columns): ``scale``, ``n_items``, ``n``, ``alpha``,
        ``alpha_ci_low``, ``alpha_ci_high``, ``std_alpha``, ``average_r``, ``omega``,
        ``omega_std``, ``note`` (why a value is missing, Heywood cases). ``attrs`` records the
        instrument id, ``ci`` and ``nan_policy``.

    Raises
    ------
    ReliabilityError
        Missing item columns, text in an item column, or an item value outside the
        instrument's scale (naming row, column and value).

    Notes
    -----
    Reverse-keyed items are recoded as ``scale_min + scale_max - x`` before anything is
    computed; rows where every item of the instrument is missing (not administered, e.g. an
    outcome measure on a therapist-rated row) are dropped. Each scale then uses its own
    complete cases (listwise) or pairwise covariances. ``omega`` is the one-factor omega total
    of :func:`omega` for each scale separately (not a Schmid-Leiman omega).

    References
    ----------
    See :func:`cronbach_alpha` and :func:`omega`.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=4, n_clients=60, max_sessions=4, seed=3)
    >>> first = df[df["session"] == 1]
    >>> table = reliability(first, "wai-sr", by="rater", missing_codes=(-99, 999), errors="omit")
    >>> table[["rater", "scale", "n", "alpha", "omega"]].round(3).head(4)
        rater  scale   n  alpha  omega
    0  client  total  42  0.914  0.917
    1  client   goal  54  0.852  0.857
    2  client   task  55  0.809  0.812
    3  client   bond  55  0.800  0.804
    >>> table.attrs["n_omitted"]
    2
    """
    _check_ci(ci)
    if errors not in ("raise", "omit"):
        raise ReliabilityError(f"errors must be 'raise' or 'omit'; got {errors!r}.", value=errors)
    inst = get_instrument(instrument, folder)
    mapping = _instrument_items(df, inst)
    cols = list(mapping.values())
    raw = df[cols]
    num = raw.apply(pd.to_numeric, errors="coerce")  # one call per column, not per row
    x = num.to_numpy(dtype=float, na_value=np.nan).copy()  # writable under copy-on-write
    index = df.index
    codes = [float(c) for c in missing_codes]
    text = raw.notna().to_numpy() & np.isnan(x)
    if codes:
        x = np.where(np.isin(x, codes), np.nan, x)
    lo, hi = float(inst.scale_min), float(inst.scale_max)
    present = ~np.isnan(x)
    bad = text | (present & ((x < lo) | (x > hi)))
    if inst.integer_scale:
        bad |= present & (x != np.round(x))
    bad_rows = bad.any(axis=1)
    if bad_rows.any() and errors == "raise":
        rows, cols_idx = np.nonzero(bad)
        values = raw.to_numpy(dtype=object)
        labels = index[rows].tolist()
        cells = ", ".join(
            f"row {labels[m]!r} {cols[j]}={values[i, j]!r}"
            for m, (i, j) in enumerate(zip(rows[:5].tolist(), cols_idx[:5].tolist(), strict=True))
        )
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise ReliabilityError(
            f"instrument {inst.id!r}: {len(rows)} item value(s) that are text, outside the "
            f"scale {lo:g}-{hi:g}{' or not whole numbers' if inst.integer_scale else ''}: "
            f"{cells}{more}. Declare missing codes with missing_codes=, quarantine the rows with "
            "alliance_lib.validate, or pass errors='omit'.",
            row=labels[0],
            column=cols[int(cols_idx[0])],
            value=values[rows[0], cols_idx[0]],
        )
    x[bad_rows] = np.nan  # errors="omit": such rows count as not administered
    rev = [mapping[i] for i in inst.reverse]
    rev_mask = np.isin(np.asarray(cols, dtype=object), rev)
    x[:, rev_mask] = lo + hi - x[:, rev_mask]
    items = pd.DataFrame(x, columns=cols, index=index)
    administered = items.notna().any(axis=1).to_numpy()
    by_cols = [by] if isinstance(by, str) else list(by or [])
    require_columns(df, by_cols, f"reliability({inst.id}) by=")
    items = items[administered]
    keys = df.loc[administered, by_cols] if by_cols else None
    scales = {name: tuple(numbers) for name, numbers in inst.scales.items()}  # total first

    groups = [((), items)] if keys is None else items.groupby([keys[c] for c in by_cols])
    records = []
    for key, sub in groups:  # loop over groups and scales, never rows
        key = key if isinstance(key, tuple) else (key,)
        for name, numbers in scales.items():
            rec = dict(zip(by_cols, key, strict=True)) | {"scale": name}
            rec |= _scale_row(sub[[mapping[i] for i in numbers]], ci, nan_policy)
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
        "note",
    ]
    table = pd.DataFrame.from_records(records).reindex(columns=columns)
    table["n"] = table["n"].astype("Int64")
    table.attrs.update(
        instrument=inst.id, ci=ci, nan_policy=nan_policy, n_omitted=int(bad_rows.sum())
    )
    return table
