"""Agreement between client and therapist ratings of the same sessions.

:func:`rater_agreement` pairs the two raters' scores of each client x session and reports
intraclass correlations (absolute agreement and consistency, Shrout & Fleiss 1979 / McGraw &
Wong 1996, as ``psych::ICC``), the mean difference with Bland-Altman limits of agreement, and
the correlation between the two raters' client-level OLS slopes over sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance_lib.errors import DataError
from alliance_lib.frame import model_frame
from alliance_lib.results import to_jsonable

__all__ = ["RaterAgreement", "RaterAgreementError", "rater_agreement"]


#: Data that cannot give a rater-agreement analysis: the library's :class:`DataError` (name kept).
RaterAgreementError = DataError


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
    mean_difference, sd_difference : float
        Mean and SD (n - 1) of the paired differences.
    mean_difference_ci : tuple of float
        t interval for the mean difference (the systematic bias).
    loa_low, loa_high : float
        Limits of agreement ``mean +/- z * sd``.
    loa_low_ci, loa_high_ci : tuple of float
        Approximate intervals for each limit (Bland & Altman 1986, SE = sqrt(3 s^2 / n)).
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

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per statistic with ``estimate``, ``ci_low``, ``ci_high``, ``n``.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({
        ...     "client_id": ["a"] * 6 + ["b"] * 6,
        ...     "session": [1, 1, 2, 2, 3, 3] * 2,
        ...     "rater": ["client", "therapist"] * 6,
        ...     "wai": [4.0, 3.5, 4.2, 3.9, 4.5, 4.1, 3.0, 3.2, 3.1, 3.0, 3.6, 3.3]})
        >>> rater_agreement(df, "wai").to_frame()["statistic"].tolist()
        ['ICC(A,1)', 'ICC(C,1)', 'mean_difference', 'loa_low', 'loa_high', 'slope_r']
        """
        rows = [
            (name, r["icc"], r["ci_low"], r["ci_high"], self.n_pairs)
            for name, r in self.icc.iterrows()
        ]
        rows += [
            ("mean_difference", self.mean_difference, *self.mean_difference_ci, self.n_pairs),
            ("loa_low", self.loa_low, *self.loa_low_ci, self.n_pairs),
            ("loa_high", self.loa_high, *self.loa_high_ci, self.n_pairs),
            ("slope_r", self.slope_r, *self.slope_r_ci, self.n_slope_clients),
        ]
        return pd.DataFrame(rows, columns=["statistic", "estimate", "ci_low", "ci_high", "n"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the scalar results (tables as lists of records)."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in self.__dataclass_fields__
            if k not in ("icc", "slopes", "pairs")
        }
        out["raters"] = list(self.raters)
        out["icc"] = self.icc.reset_index(names="type").to_dict(orient="records")
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


def rater_agreement(
    df: pd.DataFrame,
    score: str,
    *,
    client: str = "client_id",
    session: str = "session",
    rater: str = "rater",
    raters: tuple[str, str] = ("client", "therapist"),
    ci: float = 0.95,
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

    Returns
    -------
    RaterAgreement
        ICCs with CIs (``.icc``), Bland-Altman statistics, slope correlation; ``.to_frame()``
        gives a tidy table.

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

    Caveat: pairs from the same client are not independent. The ICCs and limits of agreement
    describe session-level agreement pooled over clients, and their intervals are too narrow
    when clients contribute many sessions (Bland & Altman 2007 give a repeated-measures
    correction); the slope correlation is the client-level comparison.

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

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "client_id": ["a"] * 6 + ["b"] * 6,
    ...     "session": [1, 1, 2, 2, 3, 3] * 2,
    ...     "rater": ["client", "therapist"] * 6,
    ...     "wai": [4.0, 3.5, 4.2, 3.9, 4.5, 4.1, 3.0, 3.2, 3.1, 3.0, 3.6, 3.3]})
    >>> res = rater_agreement(df, "wai")
    >>> res.n_pairs, round(res.mean_difference, 3)
    (6, 0.233)
    >>> res.icc["icc"].round(3).tolist()
    [0.819, 0.885]
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
        t_r = slope_r * np.sqrt((m - 2) / (1.0 - slope_r**2))
        slope_p = float(2.0 * stats.t.sf(abs(t_r), m - 2))
        if m >= 4:
            zr, se = np.arctanh(slope_r), 1.0 / np.sqrt(m - 3)
            r_ci = (float(np.tanh(zr - z * se)), float(np.tanh(zr + z * se)))
    return RaterAgreement(
        raters=raters,
        ci=float(ci),
        n_pairs=int(n),
        n_clients=int(pairs[client].nunique()),
        icc=icc,
        mean_difference=mean_d,
        sd_difference=sd_d,
        mean_difference_ci=(float(mean_d - half_mean), float(mean_d + half_mean)),
        loa_low=float(loa_low),
        loa_high=float(loa_high),
        loa_low_ci=(float(loa_low - half_loa), float(loa_low + half_loa)),
        loa_high_ci=(float(loa_high - half_loa), float(loa_high + half_loa)),
        slope_r=slope_r,
        slope_r_ci=r_ci,
        slope_p=slope_p,
        n_slope_clients=int(m),
        slopes=slopes,
        pairs=pairs,
    )
