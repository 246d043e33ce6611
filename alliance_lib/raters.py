"""Agreement between client and therapist ratings of the same sessions.

:func:`rater_agreement` pairs the two raters' scores of each client x session. Sessions of one
client are not independent, so by default (``clustered=True``) the intraclass correlations come
from a mixed model with clients and sessions within clients as random effects, the limits of
agreement follow Bland & Altman (2007) for repeated measurements, and every interval is a
cluster bootstrap over clients. The numbers that treat every pair as independent (``psych::ICC``
and the 1986 limits) are kept as a labelled sensitivity analysis. It also reports the
correlation between the two raters' client-level OLS slopes over sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats

from alliance_lib.engine import SINGULAR_TOL, EngineError, NestedLMM
from alliance_lib.errors import DataError
from alliance_lib.frame import model_frame
from alliance_lib.results import to_jsonable

__all__ = ["BlandAltman", "RaterAgreement", "RaterAgreementError", "rater_agreement"]


#: Data that cannot give a rater-agreement analysis: the library's :class:`DataError` (name kept).
RaterAgreementError = DataError


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman bias and limits of agreement (differences ``raters[0] - raters[1]``).

    Attributes
    ----------
    method : str
        ``"repeated measures (Bland & Altman 2007)"`` or ``"independent pairs (Bland & Altman
        1986)"``.
    mean_difference : float
        The bias: mean of all paired differences.
    mean_difference_ci : tuple of float
    sd_difference : float
        SD of a single difference used for the limits (2007: ``sqrt(sd_between^2 +
        sd_within^2)``).
    sd_between, sd_within : float
        Between-client and within-client SD of the differences (NaN for independent pairs).
    loa_low, loa_high : float
        ``mean_difference -/+ z * sd_difference``.
    loa_low_ci, loa_high_ci : tuple of float
    interval : str
        How the intervals were made.
    n_pairs, n_clients : int
    """

    method: str
    mean_difference: float
    mean_difference_ci: tuple[float, float]
    sd_difference: float
    sd_between: float
    sd_within: float
    loa_low: float
    loa_high: float
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    interval: str
    n_pairs: int
    n_clients: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary of every field."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RaterAgreement:
    """Result of :func:`rater_agreement`.

    Attributes
    ----------
    raters : tuple of str
        The two raters compared; differences are ``raters[0] - raters[1]``.
    ci : float
        Confidence level of every interval (and coverage of the limits of agreement).
    n_pairs : int
        Client x session pairs rated by both.
    n_clients : int
        Clients with at least one pair.
    icc : DataFrame
        Index ``ICC(A,1)``, ``ICC(C,1)``; columns ``icc, F, df1, df2, p, ci_low, ci_high``.
        With ``clustered=True`` (the default) from the mixed model with cluster-bootstrap
        intervals (``F``, ``df1``, ``df2``, ``p`` are NaN); otherwise ``icc_independent``.
    mean_difference, sd_difference, mean_difference_ci, loa_low, loa_high, loa_low_ci,
    loa_high_ci : float or tuple
        The main Bland-Altman numbers (those of ``bland_altman``).
    clustered : bool
        Whether the main results respect the clustering of sessions in clients.
    icc_independent : DataFrame
        Sensitivity: ``psych::ICC`` on the pairs treated as independent (two-way ANOVA, McGraw
        & Wong intervals).
    variance_components : DataFrame or None
        The mixed model's variances: index ``client``, ``session``, ``rater``, ``residual``;
        column ``variance`` (``rater`` = the raters' mean difference as a variance).
    bland_altman : BlandAltman
        Main limits: repeated measures (2007) when clustered, else independent pairs.
    bland_altman_independent : BlandAltman
        Sensitivity: the 1986 limits on independent pairs (SE of a limit sqrt(3 s^2 / n)).
    n_boot, seed : int or None
        Cluster-bootstrap replicates and seed (clustered only).
    fit_path : str or None
        How the clustered model and its replicates were fitted (clustered only): ``"pair
        sums"`` (closed-form profiled REML from per-client sums; a note is added if a
        degenerate replicate was refitted with the engine) or ``"engine refit"``.
    slope_r : float
        Pearson correlation of the two raters' client-level OLS slopes (NaN with fewer than 3
        clients).
    slope_r_ci : tuple of float
        Fisher-z interval (as R's ``cor.test``; NaN with fewer than 4 clients).
    slope_p : float
        Two-sided p-value of ``slope_r`` (t test on n - 2 df).
    n_slope_clients : int
        Clients with paired ratings at two or more distinct sessions.
    slopes : DataFrame
        One row per such client: ``n_sessions`` and one ``slope_{rater}`` column per rater.
    pairs : DataFrame
        The paired ratings (client, session, one column per rater, ``difference``, ``mean``),
        ready for a Bland-Altman plot.
    """

    raters: tuple[str, str]
    ci: float
    n_pairs: int
    n_clients: int
    icc: pd.DataFrame = field(repr=False)
    mean_difference: float
    sd_difference: float
    mean_difference_ci: tuple[float, float]
    loa_low: float
    loa_high: float
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]
    slope_r: float
    slope_r_ci: tuple[float, float]
    slope_p: float
    n_slope_clients: int
    slopes: pd.DataFrame = field(repr=False)
    pairs: pd.DataFrame = field(repr=False)
    clustered: bool = False
    icc_independent: pd.DataFrame | None = field(default=None, repr=False)
    variance_components: pd.DataFrame | None = field(default=None, repr=False)
    bland_altman: BlandAltman | None = field(default=None, repr=False)
    bland_altman_independent: BlandAltman | None = field(default=None, repr=False)
    n_boot: int | None = None
    seed: int | None = None
    fit_path: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per statistic with ``estimate``, ``ci_low``, ``ci_high``, ``n``.

        The column ``analysis`` labels each row: ``"clustered"`` (main results, clients and
        sessions modelled), ``"independent pairs (sensitivity)"`` (the pairs treated as
        independent), or ``"client slopes"``. Without clustering the main rows are the
        independent-pairs numbers and no sensitivity rows are added.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({
        ...     "client_id": ["a"] * 6 + ["b"] * 6,
        ...     "session": [1, 1, 2, 2, 3, 3] * 2,
        ...     "rater": ["client", "therapist"] * 6,
        ...     "wai": [4.0, 3.5, 4.2, 3.9, 4.5, 4.1, 3.0, 3.2, 3.1, 3.0, 3.6, 3.3]})
        >>> rater_agreement(df, "wai", clustered=False).to_frame()["statistic"].tolist()
        ['ICC(A,1)', 'ICC(C,1)', 'mean_difference', 'loa_low', 'loa_high', 'slope_r']
        """
        main = "clustered" if self.clustered else "independent pairs"
        rows = [
            (name, main, r["icc"], r["ci_low"], r["ci_high"], self.n_pairs)
            for name, r in self.icc.iterrows()
        ]

        def ba_rows(ba: BlandAltman, label: str):
            return [
                ("mean_difference", label, ba.mean_difference, *ba.mean_difference_ci, ba.n_pairs),
                ("loa_low", label, ba.loa_low, *ba.loa_low_ci, ba.n_pairs),
                ("loa_high", label, ba.loa_high, *ba.loa_high_ci, ba.n_pairs),
            ]

        main_ba = self.bland_altman or BlandAltman(
            "independent pairs (Bland & Altman 1986)",
            self.mean_difference,
            self.mean_difference_ci,
            self.sd_difference,
            np.nan,
            np.nan,
            self.loa_low,
            self.loa_high,
            self.loa_low_ci,
            self.loa_high_ci,
            "",
            self.n_pairs,
            self.n_clients,
        )
        rows += ba_rows(main_ba, main)
        rows.append(
            ("slope_r", "client slopes", self.slope_r, *self.slope_r_ci, self.n_slope_clients)
        )
        if self.clustered:
            sens = "independent pairs (sensitivity)"
            rows += [
                (name, sens, r["icc"], r["ci_low"], r["ci_high"], self.n_pairs)
                for name, r in self.icc_independent.iterrows()
            ]
            rows += ba_rows(self.bland_altman_independent, sens)
        return pd.DataFrame(
            rows, columns=["statistic", "analysis", "estimate", "ci_low", "ci_high", "n"]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the scalar results (tables as lists of records)."""
        tables = ("icc", "slopes", "pairs", "icc_independent", "variance_components")
        nested = ("bland_altman", "bland_altman_independent")
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in self.__dataclass_fields__
            if k not in tables and k not in nested
        }
        out["raters"] = list(self.raters)
        out["icc"] = self.icc.reset_index(names="type").to_dict(orient="records")
        if self.icc_independent is not None:
            out["icc_independent"] = self.icc_independent.reset_index(names="type").to_dict(
                orient="records"
            )
        if self.variance_components is not None:
            out["variance_components"] = self.variance_components["variance"].to_dict()
        for k in nested:
            ba = getattr(self, k)
            out[k] = None if ba is None else ba.to_dict()
        return to_jsonable(out)


def _icc(y: np.ndarray, ci: float) -> pd.DataFrame:
    """ICC(A,1) and ICC(C,1) from a complete n x k matrix (two-way ANOVA mean squares)."""
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((y - grand) ** 2) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    icc_a = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icc_c = (msr - mse) / (msr + (k - 1) * mse)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    f_val = msr / mse
    p = stats.f.sf(f_val, df1, df2)
    q = 1.0 - (1.0 - ci) / 2.0
    # consistency: exact F-based interval (Shrout & Fleiss 1979, case 3)
    f_low = f_val / stats.f.ppf(q, df1, df2)
    f_high = f_val * stats.f.ppf(q, df2, df1)
    c_low = (f_low - 1.0) / (f_low + k - 1.0)
    c_high = (f_high - 1.0) / (f_high + k - 1.0)
    # absolute agreement: Satterthwaite-type df (McGraw & Wong 1996, case 2A), as psych::ICC
    f_j = msc / mse
    vn = (k - 1) * (n - 1) * (k * icc_a * f_j + n * (1 + (k - 1) * icc_a) - k * icc_a) ** 2
    vd = (n - 1) * k**2 * icc_a**2 * f_j**2 + (n * (1 + (k - 1) * icc_a) - k * icc_a) ** 2
    v = vn / vd
    f_u = stats.f.ppf(q, n - 1, v)
    f_l = stats.f.ppf(q, v, n - 1)
    denom = k * msc + (k * n - k - n) * mse
    a_low = n * (msr - f_u * mse) / (f_u * denom + n * msr)
    a_high = n * (f_l * msr - mse) / (denom + n * f_l * msr)
    return pd.DataFrame(
        {
            "icc": [icc_a, icc_c],
            "F": [f_val, f_val],
            "df1": [df1, df1],
            "df2": [df2, df2],
            "p": [p, p],
            "ci_low": [a_low, c_low],
            "ci_high": [a_high, c_high],
        },
        index=pd.Index(["ICC(A,1)", "ICC(C,1)"], name="type"),
    ).astype(float)


MIN_CLUSTERS = 5
"""Fewest clients for the clustered analysis (a cluster bootstrap over fewer is meaningless)."""


def _pair_model(y2: np.ndarray, codes: np.ndarray, theta0=None):
    """REML fit of ``score ~ rater + (1 | client) + (1 | client:session)`` on paired ratings.

    The engine's two nested levels are used as session-pair (inner) in client (outer).
    """
    n = y2.shape[0]
    y = np.concatenate([y2[:, 0], y2[:, 1]])
    X = np.column_stack([np.ones(2 * n), np.repeat([0.0, 1.0], n)])
    pair = np.tile(np.arange(n), 2)
    cl = np.tile(codes, 2)
    return NestedLMM(y, X, np.ones((2 * n, 1)), pair, cl, reml=True).fit(theta0)


def _model_iccs(fit) -> tuple[float, float, tuple[float, float, float, float]]:
    """ICC(A,1), ICC(C,1) and (client, session, rater, residual) variances of a pair model."""
    v_session = float(fit.cov_client[0, 0])
    v_client = float(fit.var_therapist)
    v_res = float(fit.sigma**2)
    b, vb = float(fit.beta[1]), float(fit.vcov[1, 1])
    v_rater = max((b * b - vb) / 2.0, 0.0)
    target = v_client + v_session
    return (
        target / (target + v_rater + v_res),
        target / (target + v_res),
        (v_client, v_session, v_rater, v_res),
    )


def _ba_repeated(d: np.ndarray, codes: np.ndarray) -> tuple[float, float, float]:
    """Bland & Altman (2007) with the true value varying: (mean, SD between, SD within).

    One-way ANOVA of the differences ``d`` on client ``codes`` (dense integer codes).
    """
    counts = np.bincount(codes)
    client_mean = np.bincount(codes, weights=d) / np.maximum(counts, 1)
    m = counts[counts > 0]
    n, big_n = m.size, d.size
    dbar = float(d.mean())
    ss_b = float((m * (client_mean[counts > 0] - dbar) ** 2).sum())
    ss_w = float(((d - client_mean[codes]) ** 2).sum())
    if big_n == n or n < 2:  # one pair per client: no within-client part
        return dbar, float(d.std(ddof=1)) if big_n > 1 else np.nan, 0.0
    ms_b = ss_b / (n - 1)
    ms_w = ss_w / (big_n - n)
    divisor = (big_n**2 - float((m**2).sum())) / ((n - 1) * big_n)
    var_b = max((ms_b - ms_w) / divisor, 0.0)  # BA 2007: a negative estimate is set to 0
    return dbar, float(np.sqrt(var_b)), float(np.sqrt(ms_w))


def _cluster_bootstrap_refit(
    y2: np.ndarray, codes: np.ndarray, z: float, n_boot: int, seed: int, theta0
) -> np.ndarray:
    """Replicates (icc_a, icc_c, mean_d, loa_low, loa_high) resampling clients with replacement."""
    rng = np.random.default_rng(seed)
    n_clients = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    ys = y2[order]
    m = np.bincount(codes, minlength=n_clients)
    start = np.cumsum(m) - m
    out = np.full((int(n_boot), 5), np.nan)
    for b in range(int(n_boot)):  # one model refit per replicate (each vectorised)
        pick = rng.integers(0, n_clients, n_clients)
        lens = m[pick]
        ends = np.cumsum(lens)
        rows = np.repeat(start[pick] - (ends - lens), lens) + np.arange(int(ends[-1]))
        yb = ys[rows]
        cb = np.repeat(np.arange(n_clients), lens)
        d = yb[:, 0] - yb[:, 1]
        mean_d, sd_b, sd_w = _ba_repeated(d, cb)
        sd_t = math.sqrt(sd_b**2 + sd_w**2)
        out[b, 2:] = (mean_d, mean_d - z * sd_t, mean_d + z * sd_t)
        try:
            with np.errstate(all="ignore"):
                fit = _pair_model(yb, cb, theta0)
        except (EngineError, np.linalg.LinAlgError):
            continue
        out[b, 0], out[b, 1], _ = _model_iccs(fit)
    return out


# ------------------------------------------------------------------ pair sums (fast path)
#: Grid of the variance ratio ``lambda = 4 v_client / omega`` on which the profiled REML
#: criterion is first evaluated (0, then 10^-8 .. 10^8 in steps of 10^(1/6)); the best grid
#: point's neighbours bracket the minimum that golden-section search and secant steps refine.
_LAMBDA_GRID = np.concatenate([[0.0], np.logspace(-8.0, 8.0, 97)])
_GOLDEN_STEPS = 20
_SECANT_STEPS = 12

#: Entries of one block of bootstrap weights (replicates x clients, float64: 128 MB).
_BOOT_BLOCK = 16_000_000


@dataclass(frozen=True)
class _PairSums:
    """Per-client sufficient statistics of complete rating pairs, clients sorted by pair count.

    With ``s = y1 + y2`` and ``d = y1 - y2`` centred at their overall means: ``features``
    columns are ``n_i, n_i^2, sum_j (s_ij - sbar_i)^2, sum_j (d_ij - dbar_i)^2, sum_j d_ij,
    n_i dbar_i^2``. ``group_features`` (sparse, ``3 K x n_clients``) has in rows ``3 k, 3 k + 1,
    3 k + 2`` the values ``1, sbar_i, sbar_i^2`` of the clients with ``n_i = sizes[k]`` (the
    ``K`` distinct pair counts), so one product sums them within each pair count. ``pos`` maps
    a client code to its row.
    """

    n_clients: int
    pos: np.ndarray
    features: np.ndarray
    group_features: sparse.csr_matrix
    sizes: np.ndarray
    d_mean: float


def _pair_sums(y2: np.ndarray, codes: np.ndarray) -> _PairSums:
    """Sufficient statistics of the pair model (see :class:`_PairSums`); O(pairs), bincounts."""
    n_clients = int(codes.max()) + 1
    s = y2[:, 0] + y2[:, 1]
    d = y2[:, 0] - y2[:, 1]
    d_mean = float(d.mean())
    sc, dc = s - s.mean(), d - d_mean
    m = np.bincount(codes, minlength=n_clients).astype(float)
    s_sum = np.bincount(codes, sc, n_clients)
    d_sum = np.bincount(codes, dc, n_clients)
    sbar, dbar = s_sum / m, d_sum / m
    s_within = np.bincount(codes, (sc - sbar[codes]) ** 2, n_clients)
    d_within = np.bincount(codes, (dc - dbar[codes]) ** 2, n_clients)
    order = np.argsort(m, kind="stable")
    pos = np.empty(n_clients, dtype=np.intp)
    pos[order] = np.arange(n_clients)
    ms = m[order]
    features = np.column_stack(
        [ms, ms**2, s_within[order], d_within[order], d_sum[order], (d_sum * dbar)[order]]
    )
    sizes, gid = np.unique(ms, return_inverse=True)
    group = sparse.csr_matrix(
        (
            np.column_stack([np.ones(n_clients), sbar[order], sbar[order] ** 2]).ravel(),
            ((3 * gid[:, None] + np.arange(3)).ravel(), np.repeat(np.arange(n_clients), 3)),
        ),
        shape=(3 * sizes.size, n_clients),
    )
    return _PairSums(
        n_clients=n_clients,
        pos=pos,
        features=features,
        group_features=group,
        sizes=sizes,
        d_mean=d_mean,
    )


def _aggregate(ps: _PairSums, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted sums for each row of ``weights`` (replicates x clients, in ``ps`` row order).

    A client weighted ``k`` counts as ``k`` clients (a cluster-bootstrap draw). Returns arrays
    over replicates: ``n_clients``, ``n`` (pairs), ``sum_m2``, ``s_within``, ``d_within``,
    ``d_sum``, ``d_between_raw`` and, per pair-count run, ``c``, ``q1``, ``q2`` (B, K).
    """
    g = weights @ ps.features
    grp = np.asarray(ps.group_features @ weights.T)  # (3 K, B)
    grp = grp.reshape(ps.sizes.size, 3, -1).transpose(2, 1, 0)
    return {
        "n": g[:, 0],
        "sum_m2": g[:, 1],
        "s_within": g[:, 2],
        "d_within": g[:, 3],
        "d_sum": g[:, 4],
        "d_between_raw": g[:, 5],
        "c": grp[:, 0],
        "q1": grp[:, 1],
        "q2": grp[:, 2],
        "n_clients": grp[:, 0].sum(axis=1),
    }


def _profile(lam, sizes, n, w, ssd, c, q1, q2, grad: bool = False):
    """Profiled REML criterion (or its derivative) of the pair model at ratio ``lam`` (B, M).

    ``g(lam) = sum_i log(1 + n_i lam) + log H + b(Q)`` with ``h_i = n_i / (1 + n_i lam)``,
    ``H = sum_i h_i``, ``Q = W + sum_i h_i (sbar_i - alpha)^2`` at the GLS mean ``alpha`` and
    ``b(Q) = (N - 1)(log Q + log SSd)`` when ``Q >= SSd`` (interior), otherwise
    ``2 (N - 1) log((Q + SSd) / 2)`` (session variance at 0); constants dropped.
    """
    nl = lam[..., None] * sizes
    h = sizes / (1.0 + nl)
    cc, a1, a2 = c[:, None, :], q1[:, None, :], q2[:, None, :]
    big_h = (cc * h).sum(-1)
    p1 = (a1 * h).sum(-1)
    p2 = (a2 * h).sum(-1)
    q = w[:, None] + p2 - p1**2 / big_h
    df = (n - 1.0)[:, None]
    sd = ssd[:, None]
    inner = q >= sd
    if not grad:
        log_sd = np.log(np.where(sd > 0, sd, 1.0))
        a = (cc * np.log1p(nl)).sum(-1)
        tail = np.where(inner, df * (np.log(q) + log_sd), 2.0 * df * np.log(0.5 * (q + sd)))
        return a + np.log(big_h) + tail
    h2 = h * h
    h1 = -(cc * h2).sum(-1)
    p11 = -(a1 * h2).sum(-1)
    p21 = -(a2 * h2).sum(-1)
    dq = p21 - 2.0 * p1 * p11 / big_h + p1**2 * h1 / big_h**2
    return big_h + h1 / big_h + np.where(inner, df * dq / q, 2.0 * df * dq / (q + sd))


def _minimise_profile(sizes, n, w, ssd, c, q1, q2) -> tuple[np.ndarray, np.ndarray]:
    """Global minimiser ``lam >= 0`` of :func:`_profile` for every replicate at once.

    Grid (:data:`_LAMBDA_GRID`), golden-section search between the best grid point's
    neighbours, then secant (Illinois) steps on the analytic derivative inside the final
    bracket. Returns ``lam`` and whether it is an optimum: an interior root of the derivative
    (relative to the size of its terms) or ``lam = 0`` with the criterion rising from there.
    """
    args = (sizes, n, w, ssd, c, q1, q2)
    grid = _LAMBDA_GRID
    vals = _profile(np.broadcast_to(grid, (n.size, grid.size)), *args)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    j = np.argmin(vals, axis=1)
    lo = grid[np.maximum(j - 1, 0)]
    hi = grid[np.minimum(j + 1, grid.size - 1)]

    def f(x):
        v = _profile(x[:, None], *args)[:, 0]
        return np.where(np.isfinite(v), v, np.inf)

    r = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(_GOLDEN_STEPS):
        left = f1 <= f2  # the minimum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        nx1 = np.where(left, hi - r * (hi - lo), x2)
        nx2 = np.where(left, x1, lo + r * (hi - lo))
        fnew = f(np.where(left, nx1, nx2))
        f1, f2 = np.where(left, fnew, f2), np.where(left, f1, fnew)
        x1, x2 = nx1, nx2
    best = np.where(f1 <= f2, x1, x2)

    def df(x):
        return _profile(x[:, None], *args, grad=True)[:, 0]

    ga, gb = df(lo), df(hi)
    root = (ga < 0) & (gb > 0)  # a sign change: polish to the derivative's root
    a, b = lo.copy(), hi.copy()
    side = np.zeros(n.size)
    for _ in range(_SECANT_STEPS):
        with np.errstate(all="ignore"):
            x = np.where(root, (a * gb - b * ga) / (gb - ga), best)
        x = np.where(root & (x > a) & (x < b), x, np.where(root, 0.5 * (a + b), best))
        gx = df(x)
        move_b = root & (gx > 0)
        move_a = root & (gx <= 0)
        b, gb_new = np.where(move_b, x, b), np.where(move_b, gx, gb)
        a, ga_new = np.where(move_a, x, a), np.where(move_a, gx, ga)
        # Illinois: halve the stale end's derivative when the same end moves twice
        ga_new = np.where(move_b & (side > 0), 0.5 * ga_new, ga_new)
        gb_new = np.where(move_a & (side < 0), 0.5 * gb_new, gb_new)
        side = np.where(move_b, 1.0, np.where(move_a, -1.0, side))
        ga, gb = ga_new, gb_new
        best = np.where(root, x, best)
    # the boundary: the criterion rising from lam = 0 and the best grid point at 0
    at_zero = (j == 0) & (df(np.zeros(n.size)) >= 0)
    best = np.where(at_zero, 0.0, best)
    scale = (c * sizes).sum(axis=1)  # the derivative's terms are O(number of pairs)
    interior = root & (np.abs(df(best)) <= 1e-8 * scale)
    return best, at_zero | interior


def _pair_reml(ps: _PairSums, agg: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """REML fit of the pair model from the weighted sums, vectorised over replicates.

    Returns arrays over replicates: ``v_client``, ``v_session``, ``v_residual``, ``beta``
    (the engine's rater effect, ``-mean(d)``), ``var_beta`` (its ``vcov[1, 1]``),
    ``lam`` (the ratio ``4 v_client / omega``) and ``converged``.
    """
    n, w = agg["n"], agg["s_within"]
    d_sum = agg["d_sum"]
    ss_between = agg["d_between_raw"] - d_sum**2 / n
    ssd = np.maximum(agg["d_within"] + ss_between, 0.0)
    sizes = ps.sizes
    with np.errstate(all="ignore"):
        if sizes.size == 1 and sizes[0] == 1.0:
            # one pair per client: only v_client + v_session is identified; put it in session
            lam = np.zeros(n.size)
            converged = np.ones(n.size, dtype=bool)
        else:
            lam, converged = _minimise_profile(sizes, n, w, ssd, agg["c"], agg["q1"], agg["q2"])
        h = sizes / (1.0 + lam[:, None] * sizes)
        big_h = (agg["c"] * h).sum(1)
        p1 = (agg["q1"] * h).sum(1)
        q = w + (agg["q2"] * h).sum(1) - p1**2 / big_h
        inner = q >= ssd
        omega = np.where(inner, q, 0.5 * (q + ssd)) / (n - 1.0)
        sigma2 = np.where(inner, 0.5 * ssd / (n - 1.0), 0.5 * omega)
        v_session = np.where(inner, np.maximum(omega - 2.0 * sigma2, 0.0) / 4.0, 0.0)
        mean_d = ps.d_mean + d_sum / n
    return {
        "v_client": lam * omega / 4.0,
        "v_session": v_session,
        "v_residual": sigma2,
        "beta": -mean_d,
        "var_beta": 2.0 * sigma2 / n,
        "lam": lam,
        "converged": converged,
        "ss_between": ss_between,
        "mean_d": mean_d,
    }


def _iccs_from_components(v_client, v_session, v_residual, beta, var_beta):
    """ICC(A,1) and ICC(C,1) (arrays) as :func:`_model_iccs` forms them from a fit."""
    v_rater = np.maximum((beta * beta - var_beta) / 2.0, 0.0)
    target = v_client + v_session
    return target / (target + v_rater + v_residual), target / (target + v_residual), v_rater


def _ba_from_sums(agg: dict[str, np.ndarray], fit: dict[str, np.ndarray]):
    """Bland & Altman (2007) (mean, SD between, SD within) from the weighted sums, as
    :func:`_ba_repeated` computes them from the differences (arrays over replicates)."""
    n, k = agg["n"], agg["n_clients"]
    ss_b = fit["ss_between"]
    ss_w = agg["d_within"]
    with np.errstate(all="ignore"):
        single = (n == k) | (k < 2)  # one pair per client: no within-client part
        sd_all = np.where(n > 1, np.sqrt(np.maximum(ss_b + ss_w, 0.0) / (n - 1.0)), np.nan)
        ms_b = ss_b / (k - 1.0)
        ms_w = ss_w / (n - k)
        divisor = (n**2 - agg["sum_m2"]) / ((k - 1.0) * n)
        var_b = np.maximum((ms_b - ms_w) / divisor, 0.0)  # BA 2007: negative set to 0
        sd_b = np.where(single, sd_all, np.sqrt(var_b))
        sd_w = np.where(single, 0.0, np.sqrt(np.maximum(ms_w, 0.0)))
    return fit["mean_d"], sd_b, sd_w


def _fit_sums(ps: _PairSums, weights: np.ndarray):
    """Point estimates or replicates from client weights: the fit, ICCs and BA numbers."""
    agg = _aggregate(ps, weights)
    fit = _pair_reml(ps, agg)
    icc_a, icc_c, v_rater = _iccs_from_components(
        fit["v_client"], fit["v_session"], fit["v_residual"], fit["beta"], fit["var_beta"]
    )
    mean_d, sd_b, sd_w = _ba_from_sums(agg, fit)
    fit.update(icc_a=icc_a, icc_c=icc_c, v_rater=v_rater, sd_b=sd_b, sd_w=sd_w)
    return fit


def _cluster_bootstrap_sums(
    y2: np.ndarray, codes: np.ndarray, z: float, n_boot: int, seed: int
) -> tuple[np.ndarray, int]:
    """:func:`_cluster_bootstrap_refit`'s replicates from client weights, all fits at once.

    The same draws (``rng.integers(0, n_clients, n_clients)`` per replicate, in order) become
    multinomial client weights (their bincount), processed in blocks of at most
    :data:`_BOOT_BLOCK` weights. Replicates whose closed-form fit is not finite are refitted
    with the engine as before; returns the replicates and how many were refitted.
    """
    rng = np.random.default_rng(seed)
    ps = _pair_sums(y2, codes)
    nc = ps.n_clients
    n_boot = int(n_boot)
    out = np.full((n_boot, 5), np.nan)
    block = max(1, min(n_boot, 256, _BOOT_BLOCK // nc))  # 256: bounds the search arrays
    weights = np.empty((block, nc), order="F")  # its transpose C-ordered for the sparse product
    refitted = 0
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        for r in range(rows):  # the draws of one replicate, exactly as the refit loop made them
            pick = rng.integers(0, nc, nc)
            weights[r] = np.bincount(ps.pos[pick], minlength=nc)
        fit = _fit_sums(ps, weights[:rows])
        sd_t = np.sqrt(fit["sd_b"] ** 2 + fit["sd_w"] ** 2)
        part = np.column_stack(
            [
                fit["icc_a"],
                fit["icc_c"],
                fit["mean_d"],
                fit["mean_d"] - z * sd_t,
                fit["mean_d"] + z * sd_t,
            ]
        )
        bad = ~np.isfinite(part[:, :2]).all(axis=1)
        for r in np.flatnonzero(bad):  # rare degenerate replicates: the engine, as before
            refitted += 1
            part[r, :2] = _refit_weighted(y2, codes, ps, weights[r])
        out[start : start + rows] = part
    return out, refitted


def _refit_weighted(y2, codes, ps: _PairSums, w: np.ndarray) -> tuple[float, float]:
    """Engine refit of one replicate given as client weights (NaN if it fails)."""
    counts = w[ps.pos].astype(int)  # weights back in client-code order
    order = np.argsort(codes, kind="stable")
    m = np.bincount(codes, minlength=ps.n_clients)
    start = np.cumsum(m) - m
    pick = np.repeat(np.arange(ps.n_clients), counts)
    lens = m[pick]
    ends = np.cumsum(lens)
    rows = np.repeat(start[pick] - (ends - lens), lens) + np.arange(int(ends[-1]))
    try:
        with np.errstate(all="ignore"):
            fit = _pair_model(y2[order][rows], np.repeat(np.arange(pick.size), lens))
    except (EngineError, np.linalg.LinAlgError):
        return np.nan, np.nan
    icc_a, icc_c, _ = _model_iccs(fit)
    return icc_a, icc_c


def _percentile(values: np.ndarray, ci: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (np.nan, np.nan)
    lo, hi = np.quantile(v, [(1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0])
    return float(lo), float(hi)


def rater_agreement(
    df: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    rater: str = "rater",
    raters: tuple[str, str] = ("client", "therapist"),
    ci: float = 0.95,
    clustered: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    path: str = "sums",
) -> RaterAgreement:
    """Agreement between two raters (e.g. client and therapist) scoring the same sessions.

    Parameters
    ----------
    df : DataFrame
        Long table, one row per client x session x rater, with a score column (e.g. a scored
        ``wai_sr_total``).
    score : str
        Column holding the score. Rows with a missing score are ignored.
    client, session, rater : str
        Column names of the client id, the session number and the rater.
    raters : tuple of two str, default ("client", "therapist")
        The two rater values compared. Differences are ``raters[0] - raters[1]``.
    ci : float, default 0.95
        Level of all confidence intervals and the coverage of the limits of agreement.
    clustered : bool, default True
        Respect the clustering of sessions in clients: ICCs from a mixed model with clients
        and sessions within clients as random effects, Bland & Altman (2007) limits for
        repeated measurements, intervals by a cluster bootstrap over clients (needs at least
        5 clients). False gives the independent-pairs analysis only (kept in every result as
        the labelled sensitivity ``icc_independent`` / ``bland_altman_independent``).
    n_boot : int, default 1000
        Cluster-bootstrap replicates (all fitted at once from per-client sums: about 2 s for
        1,000 replicates of 100,000 clients).
    seed : int, default 0
        Seed of the bootstrap's random numbers.
    path : {"sums", "refit"}, default "sums"
        How the clustered model is fitted. ``"sums"``: REML from per-client sums of the pair
        sums and differences, every bootstrap replicate as client weights, all replicates at
        once (see Notes). ``"refit"``: the general mixed-model engine, refitted once per
        replicate (the reference; ~1.3 s a replicate at 100,000 clients). Both give the same
        numbers to the optimisers' tolerance (~1e-7 relative). The path that ran is
        ``fit_path`` of the result.

    Returns
    -------
    RaterAgreement
        ICCs with CIs (``.icc``), Bland-Altman statistics (``.bland_altman``), the
        independent-pairs sensitivity, variance components, slope correlation;
        ``.to_frame()`` gives a tidy table with an ``analysis`` label per row.

    Raises
    ------
    RaterAgreementError
        A column is absent, a score or session is not numeric, the same client x session x
        rater appears twice (names the rows), or fewer than 3 sessions are rated by both.

    Notes
    -----
    Only client x session pairs rated by both raters are used. With the pairs as rows of an
    :math:`n \\times 2` table and two-way ANOVA mean squares :math:`MS_R` (targets),
    :math:`MS_C` (raters), :math:`MS_E` (residual), :math:`k = 2`:

    .. math:: ICC(A,1) = \\frac{MS_R - MS_E}{MS_R + (k-1)MS_E + k(MS_C - MS_E)/n},\\qquad
              ICC(C,1) = \\frac{MS_R - MS_E}{MS_R + (k-1)MS_E},

    ``ICC2`` and ``ICC3`` of ``psych::ICC(lmer=FALSE)``; their CIs follow McGraw & Wong
    (1996), as psych. ICC(A,1) counts a systematic difference between raters as disagreement;
    ICC(C,1) does not.

    Bland-Altman: with differences :math:`d`, the limits of agreement are
    :math:`\\bar d \\pm z_{(1+ci)/2} s_d` (1.96 for 95%); the bias has a t interval
    :math:`\\bar d \\pm t_{n-1} s_d/\\sqrt n` and each limit the approximate interval
    :math:`\\pm t_{n-1}\\sqrt{3 s_d^2 / n}`.

    Slopes: for each client with paired ratings at two or more distinct sessions, each rater's
    OLS slope of score on session over those paired sessions,
    :math:`b = \\sum (t - \\bar t)(y - \\bar y) / \\sum (t - \\bar t)^2`; ``slope_r`` is their
    Pearson correlation across clients, with a Fisher-z interval.

    Clustered analysis (default). The paired ratings are fitted by REML with
    ``score ~ rater + (1 | client) + (1 | client:session)`` (lme4 syntax), giving variances
    :math:`\\sigma^2_c` (client), :math:`\\sigma^2_s` (session within client) and
    :math:`\\sigma^2_e` (residual), and the rater difference :math:`\\hat\\beta` with variance
    :math:`v`. The rater variance is :math:`\\sigma^2_r = \\max((\\hat\\beta^2 - v)/2, 0)`
    (with independent pairs this is McGraw & Wong's :math:`(MS_C - MS_E)/n`), and

    .. math:: ICC(A,1) = \\frac{\\sigma^2_c + \\sigma^2_s}{\\sigma^2_c + \\sigma^2_s +
              \\sigma^2_r + \\sigma^2_e},\\qquad
              ICC(C,1) = \\frac{\\sigma^2_c + \\sigma^2_s}{\\sigma^2_c + \\sigma^2_s +
              \\sigma^2_e},

    the agreement of two raters on one session's score. The rater is a fixed effect: client
    and therapist are two roles, not a sample of raters, so the absolute-agreement ICC counts
    their mean difference as disagreement and its interval reflects the sampling of clients
    only (the independent-pairs ICC(A,1) interval of McGraw & Wong treats the two raters as
    drawn at random, which with k = 2 makes it very wide). The model has no client x rater
    term: a stable client-specific difference between the raters enters the residual. Bland & Altman (2007, true value
    varying within a client): with :math:`m_i` pairs of client :math:`i`, :math:`N = \\sum
    m_i`, :math:`n` clients and the one-way ANOVA of the differences on client,
    :math:`\\sigma^2_{dw} = MS_w`, :math:`\\sigma^2_{db} = (MS_b - MS_w) / [(N^2 - \\sum m_i^2)
    / ((n - 1) N)]` (0 if negative), limits :math:`\\bar d \\pm z \\sqrt{\\sigma^2_{db} +
    \\sigma^2_{dw}}` around the mean of all differences. Every interval (ICCs, bias, limits)
    is a percentile interval of a cluster bootstrap that resamples clients with replacement.

    How the clustered model is fitted (``path="sums"``). Every row of the model is a complete
    pair with the same variance structure for both raters, so with :math:`s = y_1 + y_2` and
    :math:`d = y_1 - y_2` per pair, :math:`\\mathrm{cov}(s, d) = 0`, the differences are iid
    :math:`N(-\\beta, 2\\sigma^2_e)` and the sums follow a one-way random-effects model over
    clients with a free mean, between-client variance :math:`\\tau = 4\\sigma^2_c` and within
    variance :math:`\\omega = 4\\sigma^2_s + 2\\sigma^2_e`. The transformation is linear with a
    constant Jacobian and reparametrises the fixed effects, so the REML criterion is that of
    the sums plus that of the differences, up to a constant, maximised subject to
    :math:`\\omega \\ge 2\\sigma^2_e` and :math:`\\tau \\ge 0`. Profiling out
    :math:`\\omega` and :math:`\\sigma^2_e` leaves one dimension, :math:`\\lambda =
    \\tau/\\omega`; with :math:`h_i = n_i/(1 + n_i\\lambda)`, :math:`N` pairs, the within-client
    sum of squares of the sums :math:`W`, :math:`Q(\\lambda) = W + \\sum_i h_i (\\bar s_i -
    \\hat\\alpha)^2` at the GLS mean and :math:`D = \\sum (d - \\bar d)^2`,

    .. math:: g(\\lambda) = \\sum_i \\log(1 + n_i\\lambda) + \\log\\sum_i h_i +
              \\begin{cases} (N - 1)\\log(Q D) & Q \\ge D \\\\
              2(N - 1)\\log((Q + D)/2) & Q < D \\text{ (} \\sigma^2_s = 0 \\text{)}
              \\end{cases}

    (Searle, Casella & McCulloch 1992, ch. 3 and 6, for the one-way REML). Its global minimum
    over :math:`\\lambda \\ge 0` is found on a grid, by golden-section search and secant steps
    on the analytic derivative; :math:`\\hat\\omega = Q/(N-1)`, :math:`\\hat\\sigma^2_e =
    D/(2(N-1))` (on the boundary :math:`\\hat\\omega = 2\\hat\\sigma^2_e = (Q + D)/(2(N-1))`),
    and :math:`v = 2\\hat\\sigma^2_e/N`, the engine's ``vcov[1, 1]``. Everything depends on
    per-client sums only, and the one-way part on them grouped by the number of pairs
    :math:`n_i`. A bootstrap replicate (the same draws of clients as a refit would use) is a
    vector of client weights, so all replicates' sums are one blocked matrix product and all
    their fits one vectorised search. When every client has a single pair, only
    :math:`\\sigma^2_c + \\sigma^2_s` is identified (and the ICCs, which use only the sum);
    it is reported as :math:`\\sigma^2_s`. With identical differences (:math:`D = 0`) the
    REML optimum has :math:`\\sigma^2_e = 0`, which the engine's relative parametrisation
    cannot reach (``path="refit"`` then stops elsewhere).

    Independent pairs (sensitivity; the only analysis with ``clustered=False``): as above,
    treating the pairs as independent; its intervals are too narrow when clients contribute
    many sessions. The slope correlation is the client-level comparison.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
    reliability. Psychological Bulletin, 86(2), 420-428.
    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation
    coefficients. Psychological Methods, 1(1), 30-46.
    Bland, J. M., & Altman, D. G. (1986). Statistical methods for assessing agreement between
    two methods of clinical measurement. Lancet, 327(8476), 307-310.
    Bland, J. M., & Altman, D. G. (2007). Agreement between methods of measurement with
    multiple observations per individual. J Biopharm Stat, 17(4), 571-582.
    Searle, S. R., Casella, G., & McCulloch, C. E. (1992). Variance Components. Wiley.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "client_id": ["a"] * 6 + ["b"] * 6,
    ...     "session": [1, 1, 2, 2, 3, 3] * 2,
    ...     "rater": ["client", "therapist"] * 6,
    ...     "wai": [4.0, 3.5, 4.2, 3.9, 4.5, 4.1, 3.0, 3.2, 3.1, 3.0, 3.6, 3.3]})
    >>> res = rater_agreement(df, "wai", clustered=False)  # 2 clients: too few to cluster
    >>> res.n_pairs, round(res.mean_difference, 3)
    (6, 0.233)
    >>> res.icc["icc"].round(3).tolist()
    [0.819, 0.885]
    >>> import alliance_lib as al
    >>> sim = al.simulate_study(n_therapists=4, n_clients=30, max_sessions=6, seed=2,
    ...                         output="scores").dropna(subset=["alliance", "alliance_therapist"])
    >>> long = pd.concat([sim.assign(rater="client", wai=sim["alliance"]),
    ...                   sim.assign(rater="therapist", wai=sim["alliance_therapist"])])
    >>> res = rater_agreement(long, "wai", n_boot=50, seed=1)
    >>> res.icc[["icc", "ci_low", "ci_high"]].round(2)  # doctest: +NORMALIZE_WHITESPACE
               icc  ci_low  ci_high
    type
    ICC(A,1)  0.41    0.26     0.54
    ICC(C,1)  0.51    0.33     0.63
    >>> res.bland_altman.method
    'repeated measures (Bland & Altman 2007)'
    """
    mf = model_frame(
        df,
        {"client": client, "session": session, "rater": rater, "score": score},
        numeric=["score", "session"],
        ids=["client"],
        what="rater_agreement",
    )
    if len(raters) != 2 or raters[0] == raters[1]:
        raise RaterAgreementError(f"raters must be two different values; got {raters!r}.")
    if not 0.0 < ci < 1.0:
        raise RaterAgreementError(f"ci must be between 0 and 1; got {ci!r}.", value=ci)
    raters = (str(raters[0]), str(raters[1]))

    sub = mf.data.loc[mf.data[rater].isin(raters) & mf.data[score].notna()]
    dup = sub.duplicated([client, session, rater], keep=False)
    if dup.any():
        rows = sub.index[dup.to_numpy()]
        first = sub[dup].iloc[0]  # positional: row labels may themselves be duplicated
        raise RaterAgreementError(
            f"{int(dup.sum())} rows share a {client} x {session} x {rater} with another row, e.g. "
            f"rows {', '.join(map(repr, rows[:6].tolist()))} ({client}={first[client]!r}, "
            f"{session}={first[session]:g}, {rater}={first[rater]!r}). Remove duplicates first "
            "(alliance_lib.validate quarantines them).",
            row=list(rows),
            column=rater,
        )
    wide = sub.pivot(index=[client, session], columns=rater, values=score)
    wide = wide.reindex(columns=list(raters)).dropna()
    n = len(wide)
    if n < 3:
        raise RaterAgreementError(
            f"only {n} {client} x {session} pair(s) rated by both {raters[0]!r} and "
            f"{raters[1]!r} in column {score!r}; need at least 3.",
            column=score,
        )
    y = wide.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # perfect agreement: MSE = 0
        icc = _icc(y, ci)

    d = y[:, 0] - y[:, 1]
    mean_d = float(d.mean())
    sd_d = float(d.std(ddof=1))
    q = 1.0 - (1.0 - ci) / 2.0
    z = stats.norm.ppf(q)
    t = stats.t.ppf(q, n - 1)
    half_mean = t * sd_d / np.sqrt(n)
    half_loa = t * np.sqrt(3.0 * sd_d**2 / n)
    loa_low, loa_high = mean_d - z * sd_d, mean_d + z * sd_d

    pairs = wide.reset_index()
    pairs.columns.name = None
    pairs["difference"] = d
    pairs["mean"] = y.mean(axis=1)

    # client-level OLS slopes over the paired sessions, vectorised with groupby sums
    g = pairs.groupby(client, sort=True)
    tc = pairs[session] - g[session].transform("mean")
    sxx = (tc**2).groupby(pairs[client]).sum()
    slope_cols = {}
    for r in raters:  # two raters, not a loop over rows
        yc = pairs[r] - g[r].transform("mean")
        slope_cols[f"slope_{r}"] = (tc * yc).groupby(pairs[client]).sum() / sxx
    slopes = pd.DataFrame({"n_sessions": g.size(), **slope_cols})
    slopes = slopes[sxx.to_numpy() > 0]
    m = len(slopes)
    slope_r, slope_p, r_ci = np.nan, np.nan, (np.nan, np.nan)
    if m >= 3:
        s1, s2 = (slopes[f"slope_{r}"].to_numpy() for r in raters)
        slope_r = float(np.corrcoef(s1, s2)[0, 1])
        with np.errstate(divide="ignore"):  # identical slopes: r = 1, p = 0
            t_r = slope_r * np.sqrt(np.float64(m - 2) / (1.0 - slope_r**2))
        slope_p = float(2.0 * stats.t.sf(abs(t_r), m - 2))
        if m >= 4:
            with np.errstate(divide="ignore"):
                zr, se = np.arctanh(slope_r), 1.0 / np.sqrt(m - 3)
            r_ci = (float(np.tanh(zr - z * se)), float(np.tanh(zr + z * se)))
    n_clients = int(pairs[client].nunique())
    independent = BlandAltman(
        method="independent pairs (Bland & Altman 1986)",
        mean_difference=mean_d,
        mean_difference_ci=(float(mean_d - half_mean), float(mean_d + half_mean)),
        sd_difference=sd_d,
        sd_between=np.nan,
        sd_within=np.nan,
        loa_low=float(loa_low),
        loa_high=float(loa_high),
        loa_low_ci=(float(loa_low - half_loa), float(loa_low + half_loa)),
        loa_high_ci=(float(loa_high - half_loa), float(loa_high + half_loa)),
        interval="t interval for the bias; limits +/- t sqrt(3 s^2 / n)",
        n_pairs=int(n),
        n_clients=n_clients,
    )
    main_ba, main_icc, components, fit_path = independent, icc, None, None
    if clustered:
        if n_clients < MIN_CLUSTERS:
            raise RaterAgreementError(
                f"only {n_clients} client(s) with paired ratings in column {score!r}; the "
                f"clustered analysis needs at least {MIN_CLUSTERS}. Pass clustered=False for "
                "the independent-pairs numbers.",
                column=client,
            )
        if int(n_boot) < 1:
            raise RaterAgreementError(f"n_boot must be >= 1; got {n_boot!r}.", value=n_boot)
        if path not in ("sums", "refit"):
            raise RaterAgreementError(f"path must be 'sums' or 'refit'; got {path!r}.", value=path)
        codes = pd.factorize(pairs[client], sort=True)[0]
        point = None
        if path == "sums":
            ps = _pair_sums(y, codes)
            point = _fit_sums(ps, np.ones((1, ps.n_clients)))
            if not all(np.isfinite(point[k][0]) for k in ("icc_a", "icc_c", "v_rater")):
                point = None  # degenerate sums: the engine decides (and may refuse)
        if point is not None:
            comps = tuple(
                float(point[k][0]) for k in ("v_client", "v_session", "v_rater", "v_residual")
            )
            icc_a, icc_c = float(point["icc_a"][0]), float(point["icc_c"][0])
            ratio = min(comps[0], comps[1]) / comps[3] if comps[3] > 0 else 0.0
            fit_info = {
                "converged": bool(point["converged"][0]),
                "singular": bool(ratio < SINGULAR_TOL**2),  # the engine's theta < SINGULAR_TOL
                "optimizer_message": "profiled REML of the pair sums (grid, golden section, "
                "secant steps on the derivative)",
            }
            boot, refitted = _cluster_bootstrap_sums(y, codes, z, n_boot, seed)
            fit_path = "pair sums"
            if refitted:
                fit_path += f" ({refitted} replicate(s) refitted with the engine)"
        else:
            try:
                with np.errstate(all="ignore"):
                    model_fit = _pair_model(y, codes)
            except EngineError as exc:
                raise RaterAgreementError(
                    f"the mixed model of the paired ratings in {score!r} cannot be fitted: {exc}",
                    column=score,
                ) from exc
            icc_a, icc_c, comps = _model_iccs(model_fit)
            fit_info = {
                "converged": bool(model_fit.converged),
                "singular": bool(model_fit.singular),
                "optimizer_message": model_fit.optimizer_message,
            }
            boot = _cluster_bootstrap_refit(y, codes, z, n_boot, seed, model_fit.theta)
            fit_path = "engine refit"
        mean_r, sd_b, sd_w = _ba_repeated(d, codes)
        sd_t = math.sqrt(sd_b**2 + sd_w**2)
        ci_a, ci_c, ci_m, ci_lo, ci_hi = (_percentile(boot[:, j], ci) for j in range(5))
        main_icc = pd.DataFrame(
            {
                "icc": [icc_a, icc_c],
                "F": np.nan,
                "df1": np.nan,
                "df2": np.nan,
                "p": np.nan,
                "ci_low": [ci_a[0], ci_c[0]],
                "ci_high": [ci_a[1], ci_c[1]],
            },
            index=pd.Index(["ICC(A,1)", "ICC(C,1)"], name="type"),
        ).astype(float)
        components = pd.DataFrame(
            {"variance": list(comps)},
            index=pd.Index(["client", "session", "rater", "residual"], name="component"),
        )
        components.attrs.update(
            **fit_info,
            fit_path=fit_path,
            formula=f"{score} ~ {rater} + (1 | {client}) + (1 | {client}:{session})",
        )
        main_ba = BlandAltman(
            method="repeated measures (Bland & Altman 2007)",
            mean_difference=mean_r,
            mean_difference_ci=ci_m,
            sd_difference=sd_t,
            sd_between=sd_b,
            sd_within=sd_w,
            loa_low=float(mean_r - z * sd_t),
            loa_high=float(mean_r + z * sd_t),
            loa_low_ci=ci_lo,
            loa_high_ci=ci_hi,
            interval=f"cluster bootstrap over clients ({int(n_boot)} replicates, seed {seed}), "
            "percentile",
            n_pairs=int(n),
            n_clients=n_clients,
        )
    return RaterAgreement(
        raters=raters,
        ci=float(ci),
        n_pairs=int(n),
        n_clients=n_clients,
        icc=main_icc,
        mean_difference=main_ba.mean_difference,
        sd_difference=main_ba.sd_difference,
        mean_difference_ci=main_ba.mean_difference_ci,
        loa_low=main_ba.loa_low,
        loa_high=main_ba.loa_high,
        loa_low_ci=main_ba.loa_low_ci,
        loa_high_ci=main_ba.loa_high_ci,
        clustered=bool(clustered),
        icc_independent=icc,
        variance_components=components,
        bland_altman=main_ba,
        bland_altman_independent=independent,
        n_boot=int(n_boot) if clustered else None,
        seed=int(seed) if clustered else None,
        fit_path=fit_path,
        slope_r=slope_r,
        slope_r_ci=r_ci,
        slope_p=slope_p,
        n_slope_clients=int(m),
        slopes=slopes,
        pairs=pairs,
    )
