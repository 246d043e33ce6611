"""Growth models of alliance trajectories (sessions in clients in therapists).

:func:`fit_mixed` fits a nested linear mixed model (lme4: ``y ~ x + (1 + a | client) +
(1 | therapist)``) with the profiled-(RE)ML engine of :mod:`alliance_lib.engine`;
:func:`fit_trajectory` builds the time terms of a growth curve (linear, quadratic, log, piecewise)
and calls it; :func:`compare_trajectories` compares fits by ML likelihood.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from alliance_lib.engine import EngineError, EngineFit, NestedLMM
from alliance_lib.errors import DataError, DefinitionError
from alliance_lib.frame import model_frame
from alliance_lib.results import to_jsonable as _jsonable

__all__ = [
    "MIN_THERAPISTS",
    "ModelError",
    "MixedFit",
    "TrajectoryFit",
    "fit_mixed",
    "fit_trajectory",
    "compare_trajectories",
]

SHAPES = ("linear", "quadratic", "log", "piecewise")
MIN_THERAPISTS = 15
#: From this many clients ``icc(interval="auto")`` gives delta-method intervals: the ICCs'
#: sampling distribution is then close to normal on the logit scale, the delta and bootstrap
#: intervals agree (``tests/test_trajectories.py``), and 500 bootstrap refits would take minutes.
ICC_DELTA_MIN_CLIENTS = 5000
"""Fewer therapists than this make the therapist variance (and ICC) too imprecise to interpret."""


#: A model cannot be fitted to these data: the library's :class:`DataError` (the name is kept).
ModelError = DataError


class _SummaryText(str):
    """A string that displays itself verbatim (so ``fit.summary()`` reads well in notebooks)."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


class MixedFit:
    """A fitted nested linear mixed model (see :func:`fit_mixed`).

    Attributes
    ----------
    fixed : DataFrame
        Indexed by term (``Intercept`` first): estimate, se, df (Satterthwaite, as lmerTest),
        t, p, ci_low, ci_high (95 %, t with the Satterthwaite df).
    random : DataFrame
        lme4's ``as.data.frame(VarCorr(fit))`` layout: grp, var1, var2, vcov, sdcor.
    loglik, aic, bic : float
        As lme4's ``logLik``/``AIC``/``BIC`` (REML fits use the REML criterion).
    nobs, n_clients, n_therapists : int
    converged : bool
        The KKT test on the profiled deviance (lme4's scaled gradient ``max_grad`` on the
        components not held at a zero bound, below ``alliance_lib.engine.GRADIENT_TOL``), never
        the optimiser's flag.
    max_grad : float
        The statistic of that test.
    optimizer_message : str
        The optimiser's own message, for diagnosis.
    singular : bool
    warnings : list of str
        Every engine message, captured (nothing is printed).
    method : {"reml", "ml"}
    n_dropped : dict
        Rows not analysed, by reason (missing outcome, missing predictor, ...).
    raw : EngineFit or statsmodels results

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=6, n_clients=60, seed=8, output="scores")
    >>> fit = al.fit_mixed(df, "alliance", ["session"], random=["session"],
    ...                    therapist="therapist_id")
    >>> sorted(fit.icc())
    ['client', 'therapist', 'total_variance']
    >>> fit.client_effects().columns.tolist()
    ['Intercept', 'Intercept_sd', 'session', 'session_sd', 'n_obs']
    >>> import json; _ = json.dumps(fit.to_dict(), allow_nan=False)
    """

    def __init__(
        self,
        *,
        model: NestedLMM,
        efit: EngineFit,
        outcome: str,
        fixed_terms: list[str],
        random_terms: list[str],
        client: str,
        therapist: str | None,
        method: str,
        engine: str,
        raw,
        n_dropped: dict,
        extra_warnings: list[str],
        refit: Callable[[str], MixedFit],
        data_key: str,
        design_means: dict,
    ):
        self._model = model
        self._efit = efit
        self.outcome = outcome
        self.fixed_terms = list(fixed_terms)
        self.random_terms = list(random_terms)
        self.client = client
        self.therapist = therapist
        self.method = method
        self.engine = engine
        self.raw = raw
        self.n_dropped = dict(n_dropped)
        self.warnings = list(extra_warnings) + list(efit.warnings)
        self._refit = refit
        self._data_key = data_key
        self._design_means = design_means
        self.nobs = int(model.n)
        self.n_clients = int(model.n_clients)
        self.n_therapists = int(model.n_therapists)
        self.converged = bool(efit.converged)
        self.max_grad = float(efit.max_grad)
        self.optimizer_message = str(efit.optimizer_message)
        self.singular = bool(efit.singular)
        self.loglik = float(efit.loglik)
        self.npar = int(model.p + model.n_theta + 1)
        self.aic = float(-2 * self.loglik + 2 * self.npar)
        self.bic = float(-2 * self.loglik + math.log(self.nobs) * self.npar)
        self.sigma = float(efit.sigma)
        self.theta = np.asarray(efit.theta, dtype=float)
        self.therapist_imprecise = therapist is not None and self.n_therapists < MIN_THERAPISTS
        self.therapist_note = (
            f"only {self.n_therapists} therapists: the therapist variance and ICC are imprecise "
            f"(fewer than {MIN_THERAPISTS}); read them as descriptive of these therapists"
            if self.therapist_imprecise
            else ""
        )
        if self.therapist_note:
            self.warnings.append(self.therapist_note)

    # ------------------------------------------------------------------ tables
    @cached_property
    def fixed(self) -> pd.DataFrame:
        """Fixed effects with Satterthwaite df (lmerTest), t, p and 95 % CI (computed on first use).

        Notes
        -----
        ``p = 2 P(T_df > |t|)`` and ``CI = estimate +/- t_{0.975, df} se`` with
        ``df = 2 Var(b)^2 / (g' A g)`` (see :meth:`alliance_lib.engine.NestedLMM.satterthwaite`).
        """
        est = np.asarray(self._efit.beta, dtype=float)
        se = np.sqrt(np.diag(self._efit.vcov))
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
            warnings.simplefilter("always")
            df = self._model.satterthwaite(self._efit)
        self.warnings.extend(str(w.message) for w in caught)
        t = est / se
        df_eff = np.where(np.isfinite(df), df, np.inf)
        p = 2 * stats.t.sf(np.abs(t), df_eff)
        crit = stats.t.ppf(0.975, df_eff)
        out = pd.DataFrame(
            {
                "estimate": est,
                "se": se,
                "df": df,
                "t": t,
                "p": p,
                "ci_low": est - crit * se,
                "ci_high": est + crit * se,
            },
            index=pd.Index(self.fixed_terms, name="term"),
        )
        return out

    @cached_property
    def random(self) -> pd.DataFrame:
        """Variance components in lme4's ``as.data.frame(VarCorr(fit))`` layout.

        A covariance row has both ``var1`` and ``var2`` and its ``sdcor`` is the correlation
        (NaN when a variance is zero); other rows hold a variance and its SD.
        """
        rows = []
        cov = self._efit.cov_client
        names = ["(Intercept)" if t == "Intercept" else t for t in self.random_terms]
        sd = np.sqrt(np.diag(cov))
        for a, name in enumerate(names):
            rows.append((self.client, name, None, cov[a, a], sd[a]))
        for b in range(len(names)):
            for a in range(b + 1, len(names)):
                with np.errstate(all="ignore"):
                    corr = cov[a, b] / (sd[a] * sd[b])
                rows.append((self.client, names[b], names[a], cov[a, b], corr))
        if self.therapist is not None:
            v = float(self._efit.var_therapist)
            rows.append((self.therapist, "(Intercept)", None, v, math.sqrt(v)))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        df = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        return df.astype({"vcov": float, "sdcor": float})

    # ------------------------------------------------------------------ derived
    def _icc_point(self, cov_client, var_therapist, sigma2, z) -> tuple[float, float, float]:
        tau_c = float(z @ cov_client @ z)
        tau_t = float(var_therapist or 0.0)
        total = tau_c + tau_t + sigma2
        return tau_c / total, tau_t / total, total

    def _icc_z(self, at: Mapping[str, float] | None) -> np.ndarray:
        at = dict(at or {})
        return np.array(
            [1.0 if t == "Intercept" else float(at.get(t, 0.0)) for t in self.random_terms]
        )

    def icc(
        self,
        at: Mapping[str, float] | None = None,
        *,
        ci: float | None = None,
        n_boot: int = 500,
        seed: int = 0,
        interval: str = "bootstrap",
    ) -> dict:
        """Intraclass correlations: the share of outcome variance at each level, at time zero.

        Parameters
        ----------
        at : dict, optional
            Values of the random-slope columns at which to evaluate the client variance
            (default 0: time zero, where the intercept is stated). A trajectory fit also takes
            its time column's name with a *session* value (e.g. ``{"session": 6}``).
        ci : float, optional
            Confidence level (e.g. 0.95): adds percentile intervals from a parametric bootstrap
            (:meth:`icc_bootstrap`).
        n_boot, seed : int
            Bootstrap replicates and the seed of their random numbers (used with ``ci``).
        interval : {"bootstrap", "delta", "auto"}
            ``"bootstrap"``: percentile intervals of a parametric bootstrap
            (:meth:`icc_bootstrap`). ``"delta"``: Wald intervals on the logit scale from the
            observed information of the profiled (RE)ML criterion (:meth:`icc_delta`; needs
            every variance away from zero, else the bootstrap is used). ``"auto"``: the delta
            method from :data:`ICC_DELTA_MIN_CLIENTS` clients on (where the two agree and 500
            refits would take minutes), the bootstrap below.

        Returns
        -------
        dict
            ``client``, ``therapist`` (when a therapist level is modelled) and
            ``total_variance``; with ``ci`` also ``client_ci_low``, ``client_ci_high``,
            ``therapist_ci_low``, ``therapist_ci_high``, ``n_boot`` (0 for the delta method) and
            ``interval`` (the method used).

        Notes
        -----
        One definition everywhere (the report, wave over wave, the lessons): the ICC at time
        zero, conditional on the random slopes, i.e. with ``z = (1, 0, ...)``::

            client    = z' T z / (z' T z + tau2_therapist + sigma^2)
            therapist = tau2_therapist / (z' T z + tau2_therapist + sigma^2)

        ``T`` is the client random-effect covariance. With random slopes the client variance,
        hence the ICC, changes with time; the correlation of two observations of the same client
        at time zero is ``client + therapist``. For a trajectory fit, time zero is the fit's
        ``time_zero`` (default the first session at which the outcome is observed).
        """
        z = self._icc_z(at)
        c, t, total = self._icc_point(
            self._efit.cov_client, self._efit.var_therapist, self.sigma**2, z
        )
        out = {"client": c}
        if self.therapist is not None:
            out["therapist"] = t
        out["total_variance"] = total
        if interval not in ("bootstrap", "delta", "auto"):
            raise ValueError(f"interval must be 'bootstrap', 'delta' or 'auto', not {interval!r}")
        if ci is not None and interval != "bootstrap":
            wald = None
            if interval == "delta" or self.n_clients >= ICC_DELTA_MIN_CLIENTS:
                wald = self.icc_delta(at, ci=ci)
            if wald is not None:
                out.update(wald)
                out["n_boot"] = 0
                out["interval"] = "delta"
                return out
        if ci is not None:
            boot = self.icc_bootstrap(at, n_boot=n_boot, seed=seed)
            out["interval"] = "bootstrap"
            lo, hi = (1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0
            for level in ("client", "therapist") if self.therapist is not None else ("client",):
                vals = boot[level].to_numpy()
                vals = vals[np.isfinite(vals)]
                out[f"{level}_ci_low"] = float(np.quantile(vals, lo)) if vals.size else np.nan
                out[f"{level}_ci_high"] = float(np.quantile(vals, hi)) if vals.size else np.nan
            out["n_boot"] = int(len(boot))
        return out

    def icc_delta(self, at: Mapping[str, float] | None = None, *, ci: float = 0.95) -> dict | None:
        """Wald intervals of the ICCs on the logit scale from the observed information.

        The ICCs depend on the relative covariance factor theta only (sigma^2 cancels), so
        ``Var(theta_hat) = 2 H^-1`` with ``H`` the Hessian of the profiled deviance
        (-2 log-likelihood, REML or ML as fitted; central differences of its analytic gradient)
        and ``Var(logit ICC) = g' Var(theta_hat) g`` with ``g`` the gradient of ``logit ICC``
        in theta (delta method). The interval is transformed back, so it stays inside (0, 1).

        Returns
        -------
        dict or None
            ``client_ci_low``, ``client_ci_high`` (and the therapist's) and ``client_se``
            (``therapist_se``), the standard errors of the ICCs; None when a variance
            component lies at zero (the interval's normal approximation fails at a boundary:
            use :meth:`icc_bootstrap`).

        References
        ----------
        Pinheiro, J. C., & Bates, D. M. (2000). *Mixed-effects models in S and S-PLUS*
        (section 2.4.3, approximate distributions of the variance components). Springer.
        Searle, S. R., Casella, G., & McCulloch, C. E. (1992). *Variance components* (section
        6.3). Wiley.

        Examples
        --------
        >>> from alliance_lib.simulate import simulate_study
        >>> d = simulate_study(n_clients=300, n_therapists=20, seed=3, output="scores")
        >>> fit = fit_trajectory(d, "alliance", therapist="therapist_id")
        >>> r = fit.icc_delta(ci=0.95)
        >>> bool(r["client_ci_low"] < fit.icc()["client"] < r["client_ci_high"])
        True
        """
        from alliance_lib.optim import free_components

        m = self._model
        th_s = np.asarray(self._efit.theta_scaled, dtype=float)
        _, g = m.value_and_grad(th_s)
        free = free_components(th_s, g, m.lower)
        if free.size < m.n_theta or not np.all(np.isfinite(g)):
            return None
        with np.errstate(all="ignore"):
            H = m._hessian_from_grad(th_s, free)
        try:
            cov = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            return None
        z = self._icc_z(at)
        has_t = self.therapist is not None

        def logit_iccs(ts):
            theta = m.to_original(ts)
            lam = m._lambda(theta)
            tau_c = float(z @ lam @ lam.T @ z)
            tau_t = float(theta[-1] ** 2) if has_t else 0.0
            total = tau_c + tau_t + 1.0
            p = np.array([tau_c / total, tau_t / total])
            return np.log(p) - np.log1p(-p), p

        lp, p = logit_iccs(th_s)
        h = 1e-6 * np.maximum(np.abs(th_s), 0.1)
        jac = np.empty((2, th_s.size))
        for k in range(th_s.size):
            e = np.zeros_like(th_s)
            e[k] = h[k]
            jac[:, k] = (logit_iccs(th_s + e)[0] - logit_iccs(th_s - e)[0]) / (2.0 * h[k])
        crit = float(stats.norm.ppf(0.5 + ci / 2.0))
        out = {}
        for i, level in enumerate(("client", "therapist") if has_t else ("client",)):
            var = float(jac[i] @ cov @ jac[i])
            if not (var >= 0 and np.isfinite(lp[i])):
                return None
            se = math.sqrt(var)
            out[f"{level}_ci_low"] = float(1.0 / (1.0 + math.exp(-(lp[i] - crit * se))))
            out[f"{level}_ci_high"] = float(1.0 / (1.0 + math.exp(-(lp[i] + crit * se))))
            out[f"{level}_se"] = float(se * p[i] * (1.0 - p[i]))
        return out

    def icc_bootstrap(
        self, at: Mapping[str, float] | None = None, *, n_boot: int = 500, seed: int = 0
    ) -> pd.DataFrame:
        """ICCs of ``n_boot`` parametric-bootstrap refits (one row per replicate).

        Each replicate draws new outcomes from the fitted model (fixed effects, client and
        therapist random effects and residuals from their estimated normal distributions, on
        the analysed rows' design) and refits it with the same method, starting from the
        estimate. Returns columns ``client`` (and ``therapist``) and ``converged``.

        References
        ----------
        Davison, A. C., & Hinkley, D. V. (1997). Bootstrap methods and their application,
        section 2.2 (parametric simulation) and 5.3 (percentile intervals). Cambridge UP.
        """
        if int(n_boot) < 1:
            raise ValueError(f"n_boot must be a positive whole number, not {n_boot!r}")
        rng = np.random.default_rng(seed)
        m = self._model
        z = self._icc_z(at)
        X, Z = m._X, m._Z
        fixed = X @ self._efit.beta
        cov = self._efit.cov_client
        w, v = np.linalg.eigh(0.5 * (cov + cov.T))
        root = v * np.sqrt(np.clip(w, 0.0, None))
        ther = m.row_ther if m.n_therapists else None
        sd_t = math.sqrt(max(float(self._efit.var_therapist or 0.0), 0.0))
        rows = []
        for _ in range(int(n_boot)):  # one refit per replicate (each vectorised over rows)
            b = rng.standard_normal((m.n_clients, m.q)) @ root.T
            y = fixed + np.einsum("nq,nq->n", Z, b[m.row_block])
            if ther is not None:
                y = y + (sd_t * rng.standard_normal(m.n_therapists))[ther]
            y = y + self.sigma * rng.standard_normal(m.n)
            try:
                refit = NestedLMM(y, X, Z, m.row_block, ther, reml=m.reml).fit(self.theta)
            except (EngineError, np.linalg.LinAlgError):
                rows.append((np.nan, np.nan, False))
                continue
            c, t, _ = self._icc_point(refit.cov_client, refit.var_therapist, refit.sigma**2, z)
            rows.append((c, t, bool(refit.converged)))
        out = pd.DataFrame(rows, columns=["client", "therapist", "converged"])
        if self.therapist is None:
            out = out.drop(columns="therapist")
        return out

    def icc_table(
        self, *, ci: float = 0.95, n_boot: int = 500, seed: int = 0, interval: str = "bootstrap"
    ) -> pd.DataFrame:
        """The ICCs with their intervals (parametric bootstrap or, with ``interval="delta"`` or
        ``"auto"``, see :meth:`icc`), one row per level, ready to report.

        Returns
        -------
        DataFrame
            Index ``level`` (``client``, ``therapist``); columns ``icc``, ``ci_low``,
            ``ci_high``, ``n_groups`` (clients or therapists), ``imprecise`` (therapists: fewer
            than :data:`MIN_THERAPISTS`), ``note``. ``attrs`` hold ``ci``, ``n_boot``, ``seed``,
            ``method`` and ``time_zero``.
        """
        res = self.icc(ci=ci, n_boot=n_boot, seed=seed, interval=interval)
        levels = ["client"] + (["therapist"] if self.therapist is not None else [])
        rows = []
        for level in levels:
            n_groups = self.n_clients if level == "client" else self.n_therapists
            imprecise = level == "therapist" and self.therapist_imprecise
            rows.append(
                {
                    "level": level,
                    "icc": res[level],
                    "ci_low": res[f"{level}_ci_low"],
                    "ci_high": res[f"{level}_ci_high"],
                    "n_groups": n_groups,
                    "imprecise": imprecise,
                    "note": self.therapist_note if imprecise else "",
                }
            )
        table = pd.DataFrame(rows).set_index("level")
        table.attrs.update(
            ci=ci,
            n_boot=res["n_boot"],
            seed=seed,
            method=(
                "parametric bootstrap, percentile interval"
                if res["interval"] == "bootstrap"
                else "delta method on the logit scale (observed information)"
            ),
            interval=res["interval"],
            time_zero=getattr(self, "time_zero", 0.0),
        )
        return table

    @cached_property
    def _modes(self) -> dict:
        return self._model.conditional_modes(self._efit)

    def client_effects(self, level: str = "client", *, ci: float | None = None) -> pd.DataFrame:
        """Empirical Bayes predictions (conditional modes) with conditional SDs (lme4 ``ranef``).

        Parameters
        ----------
        level : {"client", "therapist"}
        ci : float, optional
            Also give prediction intervals at this level (e.g. 0.95): columns ``t_ci_low`` and
            ``t_ci_high`` = mode -/+ z * conditional SD, as lme4's ``dotplot(ranef(fit,
            condVar = TRUE))`` draws them.

        Returns
        -------
        DataFrame
            Indexed by client (or therapist) id; for every random term ``t`` a column ``t``
            (deviation from the fixed effect) and ``t_sd`` (conditional SD), plus ``n_obs``.

        Examples
        --------
        >>> from alliance_lib.simulate import simulate_study
        >>> d = simulate_study(n_clients=40, n_therapists=4, seed=3, output="scores")
        >>> fit = fit_trajectory(d, "alliance", therapist="therapist_id")
        >>> list(fit.client_effects("therapist", ci=0.95).columns)
        ['Intercept', 'Intercept_sd', 'Intercept_ci_low', 'Intercept_ci_high']
        """
        out = self._conditional_modes(level)
        if ci is not None:
            if not 0 < ci < 1:
                raise ValueError(f"ci must lie between 0 and 1, not {ci!r}")
            z = stats.norm.ppf(0.5 + ci / 2)
            terms = [c[:-3] for c in out.columns if c.endswith("_sd")]
            for t in terms:
                out.insert(
                    out.columns.get_loc(f"{t}_sd") + 1, f"{t}_ci_low", out[t] - z * out[f"{t}_sd"]
                )
                out.insert(
                    out.columns.get_loc(f"{t}_ci_low") + 1,
                    f"{t}_ci_high",
                    out[t] + z * out[f"{t}_sd"],
                )
        return out

    def _conditional_modes(self, level: str) -> pd.DataFrame:
        m = self._modes
        if level == "therapist":
            if self.therapist is None:
                raise ModelError("this model has no therapist level", column=self.therapist)
            idx = pd.Index(self._therapist_labels, name=self.therapist)
            return pd.DataFrame(
                {
                    "Intercept": m["therapist"],
                    "Intercept_sd": np.sqrt(np.clip(m["therapist_var"], 0.0, None)),
                },
                index=idx,
            ).sort_index()
        if level != "client":
            raise DefinitionError(f"level must be 'client' or 'therapist', not {level!r}")
        cols = {}
        for a, t in enumerate(self.random_terms):
            cols[t] = m["client"][:, a]
            cols[f"{t}_sd"] = np.sqrt(np.clip(m["client_cov"][:, a, a], 0.0, None))
        cols["n_obs"] = self._model.client_nobs
        out = pd.DataFrame(cols, index=pd.Index(self._client_labels, name=self.client))
        return out.sort_index()

    def residuals(self) -> np.ndarray:
        """Conditional residuals (y - X beta - Z b), in the order of the analysed rows."""
        return self._model.residuals(self._efit, self._modes)

    def refit(self, method: str) -> MixedFit:
        """The same model refitted with ``method`` ("reml" or "ml")."""
        if method == self.method:
            return self
        return self._refit(method)

    # ------------------------------------------------------------------ output
    def formula(self) -> str:
        """The model in lme4 syntax."""
        rhs = " + ".join(t for t in self.fixed_terms if t != "Intercept") or "1"
        rnd = " + ".join(["1"] + [t for t in self.random_terms if t != "Intercept"])
        f = f"{self.outcome} ~ {rhs} + ({rnd} | {self.client})"
        if self.therapist is not None:
            f += f" + (1 | {self.therapist})"
        return f

    def to_dict(self) -> dict:
        """JSON-ready summary (only str, int, float, bool, None, lists and dicts)."""
        fixed = self.fixed.reset_index()
        return _jsonable(
            {
                "formula": self.formula(),
                "method": self.method,
                "engine": self.engine,
                "nobs": self.nobs,
                "n_clients": self.n_clients,
                "n_therapists": self.n_therapists,
                "n_dropped": self.n_dropped,
                "loglik": self.loglik,
                "aic": self.aic,
                "bic": self.bic,
                "converged": self.converged,
                "convergence_test": "KKT: lme4 scaled gradient on free components",
                "max_grad": self.max_grad,
                "optimizer_message": self.optimizer_message,
                "singular": self.singular,
                "warnings": self.warnings,
                "fixed": fixed.to_dict(orient="records"),
                "random": self.random.to_dict(orient="records"),
                "icc": self.icc(),
                "therapist_imprecise": self.therapist_imprecise,
            }
        )

    def summary(self) -> str:
        """A text summary laid out like lme4's ``summary(lmer(...))`` with lmerTest's columns."""
        crit = "REML criterion at convergence" if self.method == "reml" else None
        lines = [
            f"Linear mixed model fit by {'REML' if self.method == 'reml' else 'maximum likelihood'}."
            " t-tests use Satterthwaite's method",
            f"Formula: {self.formula()}",
            "",
        ]
        if crit:
            lines.append(f"{crit}: {-2 * self.loglik:.1f}")
        else:
            lines.append(
                f"{'AIC':>9}{'BIC':>9}{'logLik':>9}{'deviance':>9}{'df.resid':>9}\n"
                f"{self.aic:9.1f}{self.bic:9.1f}{self.loglik:9.1f}{-2 * self.loglik:9.1f}"
                f"{self.nobs - self.npar:9d}"
            )
        res = self.residuals() / self.sigma
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1])
        lines += [
            "",
            "Scaled residuals:",
            "".join(f"{h:>9}" for h in ["Min", "1Q", "Median", "3Q", "Max"]),
        ]
        lines.append("".join(f"{v:9.4f}" for v in q))
        lines += ["", "Random effects:"]
        r = self.random
        tab = [("Groups", "Name", "Variance", "Std.Dev.", "Corr")]
        nrand = len(self.random_terms)
        cov = r[r["var2"].notna()]
        for _, row in r[r["var2"].isna()].iterrows():
            grp = row["grp"]
            name = "" if pd.isna(row["var1"]) else str(row["var1"])
            corr = ""
            if grp == self.client and nrand > 1:
                cc = cov[(cov["grp"] == grp) & (cov["var2"] == name)]
                corr = " ".join(f"{v:5.2f}" for v in cc["sdcor"])
            shown_grp = grp if not any(t[0] == grp for t in tab) else ""
            tab.append((shown_grp, name, f"{row['vcov']:.4g}", f"{row['sdcor']:.4g}", corr))
        widths = [max(len(t[i]) for t in tab) for i in range(5)]
        for t in tab:
            lines.append(
                " "
                + "  ".join(
                    t[i].ljust(widths[i]) if i < 2 else t[i].rjust(widths[i]) for i in range(4)
                )
                + ("  " + t[4] if t[4] else "")
            )
        groups = f"{self.client}, {self.n_clients}"
        if self.therapist is not None:
            groups += f"; {self.therapist}, {self.n_therapists}"
        lines.append(f"Number of obs: {self.nobs}, groups:  {groups}")
        dropped = ", ".join(f"{k} missing {why}" for why, k in self.n_dropped.items() if k)
        if dropped:
            lines.append(f"Rows dropped: {dropped}")
        lines += ["", "Fixed effects:"]
        f = self.fixed
        ftab = [("", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)")]
        for term, row in f.iterrows():
            name = "(Intercept)" if term == "Intercept" else term
            pv = row["p"]
            ps = "< 2e-16" if pv < 2e-16 else f"{pv:.3g}"
            ftab.append(
                (
                    name,
                    f"{row['estimate']:.4g}",
                    f"{row['se']:.4g}",
                    f"{row['df']:.1f}",
                    f"{row['t']:.3f}",
                    ps,
                )
            )
        widths = [max(len(t[i]) for t in ftab) for i in range(6)]
        for t in ftab:
            lines.append(
                t[0].ljust(widths[0]) + "".join(" " + t[i].rjust(widths[i]) for i in range(1, 6))
            )
        if self.warnings:
            lines += [""] + [f"warning: {w}" for w in self.warnings]
        return _SummaryText("\n".join(lines))

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.formula()!r} {self.method.upper()} nobs={self.nobs} "
            f"loglik={self.loglik:.3f} converged={self.converged} singular={self.singular}>"
        )

    @property
    def _client_labels(self):
        return self._labels["client"][self._model.client_levels]

    @property
    def _therapist_labels(self):
        return self._labels["therapist"][self._model.therapist_levels]


def _statsmodels_theta(y, X, Z, codes, reml) -> tuple[np.ndarray, object, list[str], bool]:
    from statsmodels.regression.mixed_linear_model import MixedLM

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = MixedLM(y, X, groups=codes, exog_re=Z).fit(reml=reml)
    msgs = [str(w.message) for w in caught]
    rel = np.asarray(res.cov_re, dtype=float) / float(res.scale)
    q = rel.shape[0]
    try:
        lam = np.linalg.cholesky(rel)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(rel)
        lam = np.linalg.cholesky(v @ np.diag(np.clip(w, 0, None) + 1e-14) @ v.T)
    rows, cols = np.triu_indices(q)
    return lam[cols, rows], res, msgs, bool(res.converged)


def fit_mixed(
    data: pd.DataFrame,
    outcome: str,
    fixed: Sequence[str] = (),
    *,
    client: str = "client_id",
    therapist: str | None = None,
    random: Sequence[str] = (),
    method: str = "reml",
    engine: str = "auto",
) -> MixedFit:
    """Fit a nested linear mixed model: sessions in clients (in therapists).

    Parameters
    ----------
    data : DataFrame
        Long table, one row per observation.
    outcome : str
        Outcome column.
    fixed : sequence of str
        Numeric predictor columns (an intercept is always added).
    client : str
        Client id column (random intercept plus the random slopes in ``random``).
    therapist : str, optional
        Therapist id column; adds a therapist random intercept. Clients must be nested in
        therapists.
    random : sequence of str
        Columns with a random slope per client, correlated with the intercept.
    method : {"reml", "ml"}
    engine : {"auto", "profiled", "statsmodels"}
        ``auto``/``profiled``: the built-in profiled-deviance engine. ``statsmodels``:
        ``MixedLM`` estimates the variance parameters (two-level models only); fixed effects,
        SEs, logLik and Satterthwaite df are then evaluated at those parameters.

    Returns
    -------
    MixedFit

    Notes
    -----
    The model (lme4: ``outcome ~ fixed + (1 + random | client) + (1 | therapist)``)::

        y = X beta + Z b_i + u_j + e,  b_i ~ N(0, T),  u_j ~ N(0, tau_t^2),  e ~ N(0, sigma^2)

    is fitted by minimising the profiled REML criterion (or ML deviance) over the relative
    covariance factor theta (Bates et al. 2015); ``singular`` is lme4's rule (a diagonal
    element of theta below 1e-4). Rows with a missing value in any model column are dropped and
    counted in ``n_dropped``. Fixed-effect df are Satterthwaite's, as in lmerTest (Kuznetsova,
    Brockhoff & Christensen 2017).

    References
    ----------
    Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
    using lme4. Journal of Statistical Software, 67(1). doi:10.18637/jss.v067.i01
    Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: Tests in
    linear mixed effects models. Journal of Statistical Software, 82(13).

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=5, n_clients=60, seed=3, output="scores")
    >>> fit = fit_mixed(df, "alliance", ["session"], random=["session"])
    >>> list(fit.fixed.index), fit.converged
    (['Intercept', 'session'], True)
    """
    fixed, random = list(fixed), list(random)
    if method not in ("reml", "ml"):
        raise DefinitionError(f"method must be 'reml' or 'ml', not {method!r}")
    if engine not in ("auto", "profiled", "statsmodels"):
        raise DefinitionError(f"engine must be 'auto', 'profiled' or 'statsmodels', not {engine!r}")
    if engine == "statsmodels" and therapist is not None:
        raise ModelError(
            "engine='statsmodels' cannot fit correlated client slopes with a therapist intercept; "
            "use engine='auto'",
            column=therapist,
        )
    for r in random:
        if r not in fixed:
            raise ModelError(f"random slope {r!r} must also be a fixed term", column=r)
    if len(set(fixed)) != len(fixed):
        raise ModelError(f"fixed terms repeat a column: {fixed}")
    mf = model_frame(
        data,
        {"outcome": outcome, "fixed": fixed, "client": client, "therapist": therapist},
        numeric=["outcome", "fixed"],
        ids=["client", "therapist"],
        dropna={"outcome": ["outcome"], "predictors": ["fixed"], "ids": ["client", "therapist"]},
        what="fit_mixed",
    )
    frame, dropped = mf.data, mf.n_dropped
    return _fit_frame(
        frame,
        outcome,
        fixed,
        fixed,
        random,
        client=client,
        therapist=therapist,
        method=method,
        engine=engine,
        n_dropped=dropped,
        fixed_columns=None,
        refit=lambda m: fit_mixed(
            data,
            outcome,
            fixed,
            client=client,
            therapist=therapist,
            random=random,
            method=m,
            engine=engine,
        ),
    )


def _fit_frame(
    frame,
    outcome,
    fixed_names,
    fixed_source,
    random,
    *,
    client,
    therapist,
    method,
    engine,
    n_dropped,
    fixed_columns,
    refit,
    cls=MixedFit,
    extra=None,
    start=None,
):
    """Shared core: arrays from ``frame`` (or precomputed ``fixed_columns``) into the engine
    (``start``: theta on lme4's scale, the optimiser's only start)."""
    if len(frame) == 0:
        raise ModelError(f"no rows left to analyse (dropped: {n_dropped})", column=outcome)
    y = frame[outcome].to_numpy(dtype=float)  # (converted by model_frame)
    n = len(frame)
    cols = [np.ones(n)]
    if fixed_columns is None:
        cols += [frame[c].to_numpy(dtype=float) for c in fixed_source]
    else:
        cols += [np.asarray(fixed_columns[c], dtype=float) for c in fixed_source]
    X = np.column_stack(cols)
    names = ["Intercept", *fixed_names]
    zidx = [0] + [1 + list(fixed_names).index(r) for r in random]
    Z = X[:, zidx]
    ccodes, clabels = pd.factorize(frame[client], sort=False)
    labels = {"client": np.asarray(clabels, dtype=object)}
    tcodes = None
    if therapist is not None:
        tcodes, tlabels = pd.factorize(frame[therapist], sort=False)
        labels["therapist"] = np.asarray(tlabels, dtype=object)
        # nesting check with a readable message (the engine checks again, on codes)
        ther_of = np.empty(len(clabels), dtype=np.intp)
        ther_of[ccodes] = tcodes
        clash = np.flatnonzero(ther_of[ccodes] != tcodes)
        if clash.size:
            bad = clabels[ccodes[clash[0]]]
            raise ModelError(
                f"client {bad!r} is seen with more than one therapist in column {therapist!r} "
                f"(row {frame.index[clash[0]]!r}); clients must be nested in therapists",
                column=therapist,
                row=frame.index[clash[0]],
                value=bad,
            )
    reml = method == "reml"
    msgs: list[str] = []
    try:
        model = NestedLMM(y, X, Z, ccodes, tcodes, reml=reml)
    except EngineError as exc:
        raise ModelError(f"{exc} (model {outcome} ~ {' + '.join(names)})") from exc
    if engine == "statsmodels":
        theta, raw, sm_msgs, sm_conv = _statsmodels_theta(y, X, Z, ccodes, reml)
        efit = model.evaluate(theta, converged=sm_conv, message="statsmodels", msgs=sm_msgs)
        used = "statsmodels"
    else:
        efit = model.fit(None if start is None else np.asarray(start, dtype=float))
        raw = efit
        used = "profiled"
    key = hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()
    fit = cls(
        model=model,
        efit=efit,
        outcome=outcome,
        fixed_terms=names,
        random_terms=[names[i] for i in zidx],
        client=client,
        therapist=therapist,
        method=method,
        engine=used,
        raw=raw,
        n_dropped=n_dropped,
        extra_warnings=msgs,
        refit=refit,
        data_key=key,
        design_means={c: float(np.mean(X[:, 1 + i])) for i, c in enumerate(fixed_names)},
    )
    fit._labels = labels
    for k, v in (extra or {}).items():
        setattr(fit, k, v)
    return fit


class TrajectoryFit(MixedFit):
    """A fitted growth model (see :func:`fit_trajectory`): a :class:`MixedFit` plus time info.

    Attributes
    ----------
    shape : str
        linear, quadratic, log or piecewise.
    time : str
        Name of the time column.
    knot, offset : float or None
    time_zero : float
        The session at which the intercept and the ICCs are stated (time terms are 0 there).
    covariates : tuple
    """

    def _icc_z(self, at: Mapping[str, float] | None) -> np.ndarray:
        at = dict(at or {})
        if self.time in at:  # a session value: the random-slope columns at that session
            t = np.array([float(at.pop(self.time))])
            covs = {c: np.zeros(1) for c in self._base_covariates}
            cols = _trajectory_columns(t, covs, self._spec)
            at.update({nm: float(cols[nm][0]) for nm in self.random_terms if nm in cols})
        return super()._icc_z(at)

    def predict(
        self,
        sessions: Sequence[float] | None = None,
        covariates: Mapping[str, float] | None = None,
        level: float = 0.95,
    ) -> pd.DataFrame:
        """Population (fixed-effects) curve with a confidence band.

        Parameters
        ----------
        sessions : sequence of float, optional
            Time values; default every integer from the smallest to the largest observed time.
        covariates : dict, optional
            Covariate values (default: their means in the analysed rows).
        level : float
            Confidence level of the band (normal quantile).

        Returns
        -------
        DataFrame
            Columns: the time column, estimate, se, ci_low, ci_high.

        Notes
        -----
        ``estimate = x' beta``, ``se = sqrt(x' V x)``, band ``estimate +/- z se``.
        """
        if sessions is None:
            lo, hi = self._time_range
            sessions = np.arange(math.floor(lo), math.ceil(hi) + 1, dtype=float)
        t = np.asarray(sessions, dtype=float)
        covs = {c: self._design_means.get(c, 0.0) for c in self._base_covariates}
        covs.update(covariates or {})
        cols = _trajectory_columns(
            t, {c: np.full(t.size, float(v)) for c, v in covs.items()}, self._spec
        )
        X = np.column_stack([np.ones(t.size)] + [cols[nm] for nm in self.fixed_terms[1:]])
        est = X @ self._efit.beta
        se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", X, self._efit.vcov, X), 0.0, None))
        z = stats.norm.ppf(0.5 + level / 2)
        return pd.DataFrame(
            {
                self.time: t,
                "estimate": est,
                "se": se,
                "ci_low": est - z * se,
                "ci_high": est + z * se,
            }
        )

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(
            _jsonable(
                {
                    "shape": self.shape,
                    "time": self.time,
                    "knot": self.knot,
                    "offset": self.offset,
                    "time_zero": self.time_zero,
                    "covariates": [c if isinstance(c, str) else list(c) for c in self.covariates],
                }
            )
        )
        return d


def _time_term_names(time: str, spec: dict) -> list[str]:
    shape = spec["shape"]
    if shape == "linear":
        return [time]
    if shape == "quadratic":
        return [time, f"{time}^2"]
    if shape == "log":
        off = spec["offset"]
        return [f"log({time})" if not off else f"log({time} + {off:g})"]
    k = spec["knot"]
    return [f"{time}_to_{k:g}", f"{time}_after_{k:g}"]


def _trajectory_columns(t: np.ndarray, covs: dict, spec: dict) -> dict:
    """All fixed-effect columns of a trajectory model, by term name."""
    time, shape = spec["time"], spec["shape"]
    z = float(spec.get("time_zero", 0.0))  # every time term is 0 at time zero
    names = _time_term_names(time, spec)
    if shape == "linear":
        tcols = [t - z]
    elif shape == "quadratic":
        tcols = [t - z, (t - z) ** 2]
    elif shape == "log":
        off = spec["offset"] or 0.0
        tcols = [np.log(t + off) - math.log(z + off)]
    else:
        k = spec["knot"]
        tcols = [np.minimum(t, k) - min(z, k), np.maximum(t - k, 0.0) - max(z - k, 0.0)]
    out = dict(zip(names, tcols, strict=True))
    for c in spec["base_covariates"]:
        out[c] = covs[c]
    for c in spec["base_covariates"]:
        for nm, col in zip(names, tcols, strict=True):
            out[f"{nm}:{c}"] = col * covs[c]
    for tup in spec["interactions"]:
        prod = np.ones_like(t)
        for c in tup:
            prod = prod * covs[c]
        out[":".join(tup)] = prod
    return out


def fit_trajectory(
    data: pd.DataFrame,
    score: str,
    *,
    time: str = "session",
    client: str = "client_id",
    therapist: str | None = None,
    shape: str = "linear",
    knot: float | None = None,
    offset: float | None = None,
    covariates: Sequence[str | tuple[str, ...]] = (),
    random_slope: bool = True,
    method: str = "reml",
    engine: str = "auto",
    time_zero: float | str | None = None,
    start: np.ndarray | None = None,
) -> TrajectoryFit:
    """Fit a growth model of a score over sessions (clients, optionally in therapists).

    Parameters
    ----------
    data : DataFrame
        Long table (one row per client x session).
    score : str
        Outcome column (e.g. ``wai_sr_total``).
    time : str
        Time column (session number).
    client, therapist : str
        Id columns; ``therapist`` adds a therapist random intercept (lme4 ``+ (1 | therapist)``).
    shape : {"linear", "quadratic", "log", "piecewise"}
        Time terms: ``t``; ``t, t^2``; ``log(t + offset)``; ``min(t, knot), max(t - knot, 0)``.
    knot : float
        Knot of the piecewise shape (strictly inside the observed time range).
    offset : float, optional
        Added to time before the log (needed when time has values below 1).
    covariates : sequence of str or tuple
        Client- or therapist-level numeric columns. Each enters as a main effect and in
        interaction with every time term (lme4 ``time * cov``). A tuple such as
        ``("experience", "ipp")`` adds the product term ``experience:ipp`` (its components are
        added as covariates when not listed).
    random_slope : bool
        Random slopes of the time terms per client, correlated with the intercept (linear: t;
        quadratic: t; log: log t; piecewise: both pieces). False gives a random intercept only.
    method : {"reml", "ml"}
    engine : {"auto", "profiled", "statsmodels"}
    time_zero : float or "first", optional
        The session at which the intercept, the intercept variance and the ICCs are stated: the
        time terms are centred there (``t - time_zero``). Default (``None`` or ``"first"``): the
        first session at which ``score`` is observed in the analysed rows (for the alliance the
        first alliance session, never an intake session 0 where it is not measured, which would
        make the intercept an extrapolation). Stored as ``fit.time_zero``.
    start : array, optional
        Variance parameters to start the optimiser from (``fit.theta`` of a fit of the same
        model, on lme4's scale), as the only start: for fits of overlapping data, such as the
        training sets of cross-validation folds (lme4's ``start``; Bates et al., 2015). Default:
        lme4's start with a global search, or on large data a pilot fit on a subset of clients.
        The optimum is the same to the optimiser's tolerance (about 1e-7 in theta).

    Returns
    -------
    TrajectoryFit

    Notes
    -----
    Linear shape (lme4 ``score ~ I(t - t0) + (I(t - t0) | client) [+ (1 | therapist)]``)::

        y_tij = (b0 + u0i + v_j) + (b1 + u1i) (t - t0) + e_tij

    with ``t0 = time_zero``. The other shapes centre the same way: quadratic ``t - t0`` and
    ``(t - t0)^2``; log ``log(t + offset) - log(t0 + offset)``; piecewise
    ``min(t, k) - min(t0, k)`` and ``max(t - k, 0) - max(t0 - k, 0)``. Term names stay
    ``session``, ``session^2``, ... Centring changes the intercept and its variance (the
    likelihood and the slope of a linear model are unchanged).

    Rows with a missing score (or time, covariate, id) are dropped and counted in ``n_dropped``.
    Compare shapes with :func:`compare_trajectories` (ML).

    References
    ----------
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis. Oxford UP.
    Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). J Stat Softw 67(1).

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=6, n_clients=80, seed=5, output="scores")
    >>> fit = fit_trajectory(df, "alliance", therapist="therapist_id")
    >>> list(fit.random["grp"])
    ['client_id', 'client_id', 'client_id', 'therapist_id', 'Residual']
    >>> fit.predict(sessions=[1, 8]).shape
    (2, 5)
    """
    if shape not in SHAPES:
        raise ModelError(f"shape must be one of {SHAPES}, not {shape!r}", value=shape)
    base: list[str] = []
    inter: list[tuple[str, ...]] = []
    for c in covariates:
        if isinstance(c, str):
            if c not in base:
                base.append(c)
        else:
            tup = tuple(c)
            if len(tup) < 2 or not all(isinstance(x, str) for x in tup):
                raise ModelError(f"an interaction must be a tuple of >= 2 column names, not {c!r}")
            inter.append(tup)
    for tup in inter:
        for c in tup:
            if c not in base:
                base.append(c)
    mf = model_frame(
        data,
        {
            "score": score,
            "time": time,
            "covariates": base,
            "client": client,
            "therapist": therapist,
        },
        numeric=["score", "time", "covariates"],
        ids=["client", "therapist"],
        dropna={
            "outcome": ["score"],
            "time": ["time"],
            "covariates": ["covariates"],
            "ids": ["client", "therapist"],
        },
        what="fit_trajectory",
    )
    frame, dropped = mf.data, mf.n_dropped
    t = mf.values("time")
    if time_zero is None or (isinstance(time_zero, str) and time_zero == "first"):
        t0 = float(t.min()) if len(t) else 0.0
    elif isinstance(time_zero, (int, float, np.integer, np.floating)) and not isinstance(
        time_zero, bool
    ):
        t0 = float(time_zero)
    else:
        raise ModelError(
            f"time_zero must be a session number or 'first', not {time_zero!r}",
            column=time,
            value=time_zero,
        )
    if shape == "log":
        shifted = t + (offset or 0.0)
        bad = shifted <= 0 if offset is not None else t < 1
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            # smallest offset that maps the earliest time to log(1) = 0: 1 when time starts at 0
            need = max(1.0, 1.0 - float(t.min())) if offset is None else 1.0 - float(t.min())
            if offset is None:
                hint = f"pass offset={need:g} to model log({time} + {need:g})"
            else:
                hint = f"{time} + offset must be > 0 (offset={offset:g}); pass offset={need:g}"
            raise ModelError(
                f"shape='log' needs {time} >= 1 (or an offset); row {frame.index[i]!r} has "
                f"{time} = {t[i]:g}; {hint}",
                column=time,
                row=frame.index[i],
                value=t[i],
            )
    if shape == "log" and not t0 + (offset or 0.0) > 0:
        raise ModelError(
            f"shape='log' needs time_zero + offset > 0; got time_zero={t0:g}, offset={offset!r}",
            column=time,
            value=t0,
        )
    if shape == "piecewise":
        if knot is None:
            raise ModelError("shape='piecewise' needs knot=", column=time)
        if not (t.min() < knot < t.max()):
            raise ModelError(
                f"knot={knot!r} must lie strictly inside the observed {time} range "
                f"[{t.min():g}, {t.max():g}]",
                column=time,
                value=knot,
            )
    spec = {
        "time": time,
        "shape": shape,
        "knot": knot,
        "offset": offset,
        "base_covariates": base,
        "interactions": inter,
        "time_zero": t0,
    }
    covs = {c: frame[c].to_numpy(dtype=float) for c in base}
    cols = _trajectory_columns(t, covs, spec)
    names = list(cols)
    tnames = _time_term_names(time, spec)
    random = (tnames[:1] if shape == "quadratic" else tnames) if random_slope else []
    extra = {
        "shape": shape,
        "time": time,
        "knot": knot,
        "offset": offset,
        "time_zero": t0,
        "covariates": tuple(covariates),
        "_spec": spec,
        "_base_covariates": base,
        "_time_range": (float(t.min()), float(t.max())) if len(t) else (0.0, 0.0),
    }

    def refit(m):
        return fit_trajectory(
            data,
            score,
            time=time,
            client=client,
            therapist=therapist,
            shape=shape,
            knot=knot,
            offset=offset,
            covariates=covariates,
            random_slope=random_slope,
            method=m,
            engine=engine,
            time_zero=t0,
        )

    if method not in ("reml", "ml"):
        raise DefinitionError(f"method must be 'reml' or 'ml', not {method!r}")
    if engine not in ("auto", "profiled", "statsmodels"):
        raise DefinitionError(f"engine must be 'auto', 'profiled' or 'statsmodels', not {engine!r}")
    if engine == "statsmodels" and therapist is not None:
        raise ModelError("engine='statsmodels' cannot fit a therapist level", column=therapist)
    fit = _fit_frame(
        frame,
        score,
        names,
        names,
        random,
        client=client,
        therapist=therapist,
        method=method,
        engine=engine,
        n_dropped=dropped,
        fixed_columns=cols,
        refit=refit,
        cls=TrajectoryFit,
        extra=extra,
        start=start,
    )
    fit._design_means.update({c: float(np.mean(covs[c])) for c in base})
    return fit


def compare_trajectories(fits: Sequence[MixedFit] | Mapping[str, MixedFit]) -> pd.DataFrame:
    """Compare models fitted to the same rows by ML: logLik, AIC, BIC and likelihood-ratio tests.

    Parameters
    ----------
    fits : sequence or dict of MixedFit
        REML fits are refitted with ML first. Names are the dict keys, else the shape (or
        ``model_k``).

    Returns
    -------
    DataFrame
        Indexed by model, ordered by number of parameters as lme4's ``anova()``: npar, loglik,
        aic, bic, deviance, chisq, df, p, tested_against. Each model is tested against the
        closest preceding model (fewer parameters) that is nested in it, named in
        ``tested_against``; chisq, df and p are NaN (and ``tested_against`` missing) when no
        preceding model is nested in it. AIC and BIC compare any models.

    Notes
    -----
    ``chisq = 2 (logLik_k - logLik_j)`` on ``df = npar_k - npar_j`` for the model j tested
    against. Model j is nested in model k when its fixed-effect terms are a subset of k's, its
    client random terms are a subset of k's (same client column), and it has no therapist
    intercept or the same one as k. Term names identify the columns, as all models are fitted
    to the same rows (checked); for example ``log(session)`` is not nested in
    ``session + session^2``, so a log and a quadratic model get no likelihood-ratio test.
    A variance tested on its boundary makes the chi-square p conservative (Self & Liang,
    1987), as in lme4's ``anova()``.

    References
    ----------
    Self, S. G., & Liang, K.-Y. (1987). Asymptotic properties of maximum likelihood estimators
    and likelihood ratio tests under nonstandard conditions. Journal of the American
    Statistical Association, 82(398), 605-610.

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=5, n_clients=60, seed=4, output="scores")
    >>> a = al.fit_trajectory(df, "alliance")
    >>> b = al.fit_trajectory(df, "alliance", shape="quadratic")
    >>> list(compare_trajectories([a, b]).index)
    ['linear', 'quadratic']
    """
    if isinstance(fits, Mapping):
        items = list(fits.items())
    else:
        items = []
        for k, f in enumerate(fits):
            name = getattr(f, "shape", None) or f"model_{k + 1}"
            if any(name == n for n, _ in items):
                name = f"{name}_{k + 1}"
            items.append((name, f))
    if len(items) < 1:
        raise DefinitionError("compare_trajectories needs at least one fit")
    ml = [(n, f.refit("ml")) for n, f in items]
    keys = {f._data_key for _, f in ml}
    if len(keys) > 1:
        raise ModelError(
            "models were fitted to different rows or outcomes; likelihoods are not comparable"
        )
    rows = []
    for name, f in ml:
        rows.append((name, f.npar, f.loglik, f.aic, f.bic, -2 * f.loglik))
    out = pd.DataFrame(rows, columns=["model", "npar", "loglik", "aic", "bic", "deviance"])
    order = np.argsort(out["npar"].to_numpy(), kind="stable")
    out = out.iloc[order].set_index("model")
    fits = [ml[i][1] for i in order]
    names = list(out.index)
    chisq = np.full(len(fits), np.nan)
    ddf = np.full(len(fits), np.nan)
    against: list[str | None] = [None] * len(fits)
    for k, big in enumerate(fits):
        for j in range(k - 1, -1, -1):
            small = fits[j]
            if small.npar < big.npar and _nested(small, big):
                chisq[k] = 2 * (big.loglik - small.loglik)
                ddf[k] = big.npar - small.npar
                against[k] = names[j]
                break
    p = np.full(len(fits), np.nan)
    ok = np.isfinite(ddf)
    p[ok] = stats.chi2.sf(np.clip(chisq[ok], 0, None), ddf[ok])
    out["chisq"] = chisq
    out["df"] = ddf
    out["p"] = p
    out["tested_against"] = pd.Series(against, index=out.index, dtype=object)
    return out


def _nested(small: MixedFit, big: MixedFit) -> bool:
    """Whether ``small`` is a special case of ``big`` (same rows; term names identify columns)."""
    if small.client != big.client:
        return False
    if small.therapist is not None and small.therapist != big.therapist:
        return False
    return set(small.fixed_terms) <= set(big.fixed_terms) and set(small.random_terms) <= set(
        big.random_terms
    )
