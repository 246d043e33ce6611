"""The within-client alliance -> outcome effect by dynamic panel SEMs fitted by FIML.

:func:`fit_cross_lagged` takes the long table (one row per client and session; sessions are the
waves) and fits, on the in-house FIML engine (:mod:`alliance_lib.engine.panel`):

- ``"riclpm"``: the random-intercept cross-lagged panel model (Hamaker, Kuiper & Grasman 2015)
  in the lavaan code of Mulder & Hamaker (2021);
- ``"mlsem"``: the ML-SEM dynamic panel model with fixed effects and a predetermined alliance
  (Allison, Williams & Moral-Benito 2017), the outcome equation only;
- ``"lcmsr"``: the RI-CLPM plus client-specific linear slopes (latent curve model with structured
  residuals; Curran et al. 2014) for studies where both series drift.

Each wave ``t`` holds the outcome measured before session ``t`` (``y_t``) and the alliance
rated after it (``a_t``); the lagged effects are outcome at ``t`` on alliance at ``t - 1``
("alliance -> outcome") and alliance at ``t`` on outcome at ``t - 1`` ("outcome -> alliance");
the same-session association is a within-wave residual covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

from alliance_lib.alliance_outcome import _check_unique_sessions
from alliance_lib.engine.panel import (
    RamFit,
    RamSpec,
    fit_ram,
    implied_moments,
    independence_fit,
    missing_patterns,
    saturated_fit,
)
from alliance_lib.errors import DataError
from alliance_lib.frame import model_frame
from alliance_lib.trajectories import ModelError

__all__ = [
    "CrossLaggedFit",
    "CrossLaggedPanel",
    "cross_lagged_panel",
    "fit_cross_lagged",
    "cross_lagged_syntax",
]

MODELS = ("riclpm", "mlsem", "lcmsr")
CONSTRAINTS = ("lags", "stationary", "none")
EFFECTS = (
    "alliance -> outcome",
    "outcome -> alliance",
    "alliance -> alliance",
    "outcome -> outcome",
)
_EFFECT_LABEL = {
    "alliance -> outcome": "beta",
    "outcome -> alliance": "cay",
    "alliance -> alliance": "pa",
    "outcome -> outcome": "py",
}


# ----------------------------------------------------------------------------- model builder
@dataclass
class _Par:
    lhs: str
    op: str
    rhs: str
    label: str
    index: int  # -1 = fixed
    value: float = 0.0  # fixed value


class _Builder:
    """Collects RAM entries by variable name; a shared label is one parameter."""

    def __init__(self, observed: list[str], latent: list[str]):
        self.vars = list(observed) + list(latent)
        self.pos = {v: k for k, v in enumerate(self.vars)}
        self.observed = list(observed)
        self.rows: list[_Par] = []
        self.labels: dict[str, int] = {}
        self.n_par = 0
        self.a, self.s, self.m = [], [], []
        self.a_fixed, self.s_fixed = [], []
        self.series: dict[str, str] = {}

    def _index(self, label: str | None) -> int:
        if label is None:
            self.n_par += 1
            return self.n_par - 1
        if label not in self.labels:
            self.labels[label] = self.n_par
            self.n_par += 1
        return self.labels[label]

    def path(self, lhs, rhs, label=None, fixed=None):  # lhs ~ rhs
        if fixed is not None:
            self.a_fixed.append((self.pos[lhs], self.pos[rhs], fixed))
            return
        j = self._index(label)
        self.a.append((self.pos[lhs], self.pos[rhs], j))
        self.rows.append(_Par(lhs, "~", rhs, label or "", j))

    def load(self, latent, ind, value):  # latent =~ value*ind
        self.a_fixed.append((self.pos[ind], self.pos[latent], value))
        self.rows.append(_Par(latent, "=~", ind, "", -1, value))

    def cov(self, x, y, label=None, fixed=None):
        if fixed is not None:
            if fixed != 0:
                self.s_fixed.append((self.pos[x], self.pos[y], fixed))
            self.rows.append(_Par(x, "~~", y, "", -1, fixed))
            return
        j = self._index(label)
        self.s.append((self.pos[x], self.pos[y], j))
        self.rows.append(_Par(x, "~~", y, label or "", j))

    def mean(self, x, label=None):
        j = self._index(label)
        self.m.append((self.pos[x], j))
        self.rows.append(_Par(x, "~1", "", label or "", j))

    def spec(self) -> RamSpec:
        names = [""] * self.n_par
        for r in self.rows:
            if r.index >= 0 and not names[r.index]:
                names[r.index] = r.label or f"{r.lhs}{r.op}{r.rhs}"
        return RamSpec(
            n_vars=len(self.vars),
            observed=np.arange(len(self.observed)),
            a_entries=self.a,
            s_entries=self.s,
            m_entries=self.m,
            n_par=self.n_par,
            a_fixed=self.a_fixed,
            s_fixed=self.s_fixed,
            names=names,
        )


def _lag_label(name: str, t: int, constraints: str) -> str | None:
    return name if constraints != "none" else None


def _build_riclpm(T: int, constraints: str, slopes: bool, lag: int) -> _Builder:
    a = [f"a{t}" for t in range(1, T + 1)]
    y = [f"y{t}" for t in range(1, T + 1)]
    wa = [f"wa{t}" for t in range(1, T + 1)]
    wy = [f"wy{t}" for t in range(1, T + 1)]
    latent = ["RIa", "RIy"] + wa + wy + (["Sa", "Sy"] if slopes else [])
    b = _Builder(a + y, latent)
    for v in a + wa + ["RIa", "Sa"]:
        b.series[v] = "alliance"
    for v in y + wy + ["RIy", "Sy"]:
        b.series[v] = "outcome"
    for t in range(T):
        b.load("RIa", a[t], 1.0)
    for t in range(T):
        b.load("RIy", y[t], 1.0)
    if slopes:
        for t in range(T):
            b.load("Sa", a[t], float(t))
        for t in range(T):
            b.load("Sy", y[t], float(t))
    for t in range(T):
        b.load(wa[t], a[t], 1.0)
    for t in range(T):
        b.load(wy[t], y[t], 1.0)
    free = constraints == "none"
    for t in range(1, T):
        b.path(wy[t], wy[t - 1], None if free else "py")
        b.path(wy[t], wa[t - 1], None if free else "beta")
        if lag >= 2 and t >= 2:
            b.path(wy[t], wy[t - 2], None if free else "py2")
            b.path(wy[t], wa[t - 2], None if free else "beta2")
    for t in range(1, T):
        b.path(wa[t], wa[t - 1], None if free else "pa")
        b.path(wa[t], wy[t - 1], None if free else "cay")
        if lag >= 2 and t >= 2:
            b.path(wa[t], wa[t - 2], None if free else "pa2")
            b.path(wa[t], wy[t - 2], None if free else "cay2")
    stat = constraints == "stationary"
    for t in range(T):
        b.cov(wa[t], wy[t], "cv" if stat and t >= lag else None)
    for t in range(T):
        b.cov(wa[t], wa[t], "va" if stat and t >= lag else None)
    for t in range(T):
        b.cov(wy[t], wy[t], "vy" if stat and t >= lag else None)
    b.cov("RIa", "RIa")
    b.cov("RIy", "RIy")
    b.cov("RIa", "RIy")
    first = [w[t] for t in range(min(lag, T)) for w in (wa, wy)]
    for ri in ["RIa", "RIy"] + (["Sa", "Sy"] if slopes else []):
        for w in first:
            b.cov(ri, w, fixed=0.0)
    if slopes:
        b.cov("Sa", "Sa")
        b.cov("Sy", "Sy")
        b.cov("Sa", "Sy")
        b.cov("Sa", "RIa")
        b.cov("Sa", "RIy")
        b.cov("Sy", "RIa")
        b.cov("Sy", "RIy")
    for v in a + y:
        b.mean(v)
    return b


def _build_mlsem(T: int, constraints: str, lag: int) -> _Builder:
    a = [f"a{t}" for t in range(1, T)]
    y = [f"y{t}" for t in range(1, T + 1)]
    b = _Builder(a + y, ["alpha"])
    for v in a:
        b.series[v] = "alliance"
    for v in y + ["alpha"]:
        b.series[v] = "outcome"
    for t in range(1, T):
        b.load("alpha", y[t], 1.0)
    free = constraints == "none"
    for t in range(1, T):
        b.path(y[t], a[t - 1], None if free else "beta")
        b.path(y[t], y[t - 1], None if free else "py")
        if lag >= 2 and t >= 2:
            b.path(y[t], a[t - 2], None if free else "beta2")
            b.path(y[t], y[t - 2], None if free else "py2")
    b.cov("alpha", "alpha")
    for v in a + [y[0]]:
        b.cov("alpha", v)
    stat = constraints == "stationary"
    for t in range(1, T):
        b.cov(y[t], y[t], "vy" if stat else None)
    # predetermined alliance: a_s may correlate with the outcome residual of any t <= s
    for t in range(1, T - 1):
        for s in range(t, T - 1):
            b.cov(y[t], a[s])
    ex = [y[0]] + a
    for i, u in enumerate(ex):
        for v in ex[i:]:
            b.cov(u, v)
    for v in a + y:
        b.mean(v)
    return b


def _syntax(b: _Builder) -> str:
    """lavaan model syntax for :func:`lavaan::lavaan` (everything explicit)."""
    lines = []
    by_op: dict[tuple[str, str], list[str]] = {}
    order = []
    for r in b.rows:
        if r.op == "~1":
            continue  # intercepts: int.ov.free = TRUE
        key = (r.lhs, r.op)
        if key not in by_op:
            by_op[key] = []
            order.append(key)
        if r.index < 0:
            term = f"{_num(r.value)}*{r.rhs}"
        elif r.label:
            term = f"{r.label}*{r.rhs}"
        else:
            term = r.rhs
        by_op[key].append(term)
    for key in order:
        lhs, op = key
        lines.append(f"{lhs} {op} " + " + ".join(by_op[key]))
    # observed variables carry no residual variance of their own in the RI models
    latent_loaded = {r.rhs for r in b.rows if r.op == "=~" and r.lhs.startswith("w")}
    for v in b.observed:
        if v in latent_loaded:
            lines.append(f"{v} ~~ 0*{v}")
    return "\n".join(lines)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def cross_lagged_syntax(
    n_waves: int, *, model: str = "riclpm", constraints: str = "lags", lag: int = 1
) -> str:
    """The lavaan syntax of a cross-lagged panel model over ``n_waves`` waves.

    Variables are ``a1 … aT`` (alliance) and ``y1 … yT`` (outcome); fit it with
    ``lavaan(model, data, missing = "ml", meanstructure = TRUE, int.ov.free = TRUE,
    int.lv.free = FALSE, fixed.x = FALSE)``.

    Examples
    --------
    >>> print(cross_lagged_syntax(3).splitlines()[0])
    RIa =~ 1*a1 + 1*a2 + 1*a3
    """
    _check_choice("model", model, MODELS)
    _check_choice("constraints", constraints, CONSTRAINTS)
    return _syntax(_model_builder(model, n_waves, constraints, lag))


def _model_builder(model: str, T: int, constraints: str, lag: int) -> _Builder:
    if model == "mlsem":
        return _build_mlsem(T, constraints, lag)
    return _build_riclpm(T, constraints, slopes=model == "lcmsr", lag=lag)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ModelError(
            f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}", value=value
        )


# ----------------------------------------------------------------------------- starts, scaling
def _starts(b: _Builder, X: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Starts: observed means; a ``share`` of the observed variance to the random intercept
    (fixed effect), the rest to the within part; lags and covariances 0."""
    mean = np.nanmean(X, axis=0)
    var = np.nanvar(X, axis=0)
    col = {v: k for k, v in enumerate(b.observed)}
    pooled = {
        s: np.nanmean([var[col[v]] for v in b.observed if b.series.get(v) == s] or [1.0])
        for s in ("alliance", "outcome")
    }
    theta = np.zeros(b.n_par)
    seen = set()
    for r in b.rows:
        if r.index < 0 or r.index in seen:
            continue
        seen.add(r.index)
        if r.op == "~1":
            theta[r.index] = mean[col[r.lhs]]
        elif r.op == "~~" and r.lhs == r.rhs:
            base = pooled[b.series[r.lhs]]
            if r.lhs in ("Sa", "Sy"):
                theta[r.index] = 0.01 * base / max(len(b.observed) / 2, 1) ** 2
            elif r.lhs in col:  # observed exogenous / residual variance
                theta[r.index] = (1.0 - share) * var[col[r.lhs]]
            elif r.lhs in ("RIa", "RIy", "alpha"):
                theta[r.index] = share * base
            else:
                theta[r.index] = (1.0 - share) * base
    return theta


START_SHARES = (0.5, 0.2, 0.8)
"""Random-intercept shares of the variance tried as starts, in turn, until a fit converges."""


def _param_scale(b: _Builder, scale: dict[str, float]) -> np.ndarray:
    """Factor taking a parameter on the standardised metric back to the data metric."""
    f = np.ones(b.n_par)
    for r in b.rows:
        if r.index < 0:
            continue
        s_l = scale[b.series[r.lhs]]
        if r.op == "~":
            f[r.index] = s_l / scale[b.series[r.rhs]]
        elif r.op == "~~":
            f[r.index] = s_l * scale[b.series[r.rhs]]
        elif r.op == "~1":
            f[r.index] = s_l
    return f


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class CrossLaggedFit:
    """A cross-lagged panel model fitted by FIML (see :func:`fit_cross_lagged`).

    Attributes
    ----------
    effects : DataFrame
        Index ``"alliance -> outcome"``, ``"outcome -> alliance"``, ``"alliance -> alliance"``,
        ``"outcome -> outcome"``; columns ``estimate, se, ci_low, ci_high, p`` (lags held equal
        over sessions; with ``constraints="none"`` the mean over sessions). Paths a model does
        not estimate (``mlsem`` has no alliance equation) are NaN.
    random_intercepts : DataFrame
        Variances of the alliance and outcome random intercepts (``mlsem``: the fixed-effect
        variance of the outcome), their covariance and correlation.
    long_run : dict
        The long-run effect of a sustained one-point alliance change on the outcome,
        ``beta / (1 - rho_y)``, with its delta-method SE, CI and p.
    parameters : DataFrame
        Every parameter as lavaan's ``parameterEstimates`` lists it (lhs, op, rhs, label,
        estimate, se, z, p, ci_low, ci_high; fixed ones with NaN SE).
    loglik : float
    fit_indices : dict
        chisq, df, pvalue, baseline chisq/df, cfi, tli, rmsea, rmsea_ci_low, rmsea_ci_high
        (90 %), rmsea_pvalue (close fit), srmr, aic, bic, npar, loglik_h1.
    constraint_test : dict or None
        Likelihood-ratio test of the constraints against the model with everything free over
        sessions (chisq, df, p); None when ``constraints="none"``.
    lavaan_syntax : str
        The same model in lavaan syntax (variables ``a1 … aT``, ``y1 … yT``).
    waves : list
        The sessions used as waves.
    n_clients, n_patterns : int
    converged : bool
    singular : bool
        A boundary fit (property; see :attr:`CrossLaggedFit.singular`).
    warnings : list of str
    raw : RamFit
        The engine result (on the internally standardised metric).
    """

    model: str
    constraints: str
    lag: int
    effects: pd.DataFrame
    random_intercepts: pd.DataFrame
    long_run: dict
    parameters: pd.DataFrame
    loglik: float
    fit_indices: dict
    constraint_test: dict | None
    lavaan_syntax: str
    waves: list
    n_clients: int
    n_patterns: int
    converged: bool
    warnings: list = field(default_factory=list)
    raw: RamFit | None = None
    vcov: np.ndarray | None = None

    @property
    def singular(self) -> bool:
        """A boundary fit, as lme4's ``isSingular`` (tolerance 1e-4): a latent variance at or
        below 1e-4 of the largest variance of its series, or a non-positive-definite latent
        covariance matrix (see :attr:`warnings`)."""
        p = self.parameters
        var = p[(p["op"] == "~~") & (p["lhs"] == p["rhs"]) & (p["free"] > 0)]
        latent = var[~var["lhs"].str.fullmatch(r"[ay]\d+")]
        if latent.empty:
            return any("not positive definite" in w for w in self.warnings)
        top = {
            s: var.loc[var["lhs"].map(_series_of) == s, "estimate"].abs().max()
            for s in ("alliance", "outcome")
        }
        rel = latent["estimate"] / latent["lhs"].map(lambda v: top[_series_of(v)])
        return bool((rel <= 1e-4).any()) or any(
            "latent variables is not positive definite" in w for w in self.warnings
        )

    def summary(self) -> str:
        """The fit as lavaan's ``summary(fit)`` prints it."""
        fi = self.fit_indices
        npar = int(fi["npar"])
        n_entries = int((self.parameters["free"] > 0).sum())
        w = 52
        out = [
            f"alliance_lib FIML ({self.model}, constraints={self.constraints!r}) "
            f"{'ended normally' if self.converged else 'did NOT converge'} after "
            f"{self.raw.iterations if self.raw else 0} iterations",
            "",
            f"  {'Estimator':<{w - 10}}{'ML':>10}",
            f"  {'Optimization method':<{w - 10}}{'BFGS+NEWTON':>10}",
            f"  {'Number of model parameters':<{w - 10}}{n_entries:>10}",
        ]
        if n_entries > npar:
            out.append(f"  {'Number of equality constraints':<{w - 10}}{n_entries - npar:>10}")
        out += [
            "",
            f"  {'Number of observations':<{w - 10}}{self.n_clients:>10}",
            f"  {'Number of missing patterns':<{w - 10}}{self.n_patterns:>10}",
            "",
            "Model Test User Model:",
            "",
            f"  {'Test statistic':<{w - 10}}{fi['chisq']:>10.3f}",
            f"  {'Degrees of freedom':<{w - 10}}{int(fi['df']):>10}",
            f"  {'P-value (Chi-square)':<{w - 10}}{fi['pvalue']:>10.3f}",
            "",
            f"  {'Comparative Fit Index (CFI)':<{w - 10}}{fi['cfi']:>10.3f}",
            f"  {'Tucker-Lewis Index (TLI)':<{w - 10}}{fi['tli']:>10.3f}",
            f"  {'RMSEA':<{w - 10}}{fi['rmsea']:>10.3f}",
            f"  {'90 Percent confidence interval - lower':<{w - 10}}{fi['rmsea_ci_low']:>10.3f}",
            f"  {'90 Percent confidence interval - upper':<{w - 10}}{fi['rmsea_ci_high']:>10.3f}",
            f"  {'SRMR':<{w - 10}}{fi['srmr']:>10.3f}",
            f"  {'Loglikelihood user model (H0)':<{w - 10}}{self.loglik:>10.3f}",
            "",
            "Parameter Estimates:",
            "",
            f"  {'Standard errors':<{w - 10}}{'Standard':>10}",
            f"  {'Information':<{w - 10}}{'Observed':>10}",
            f"  {'Observed information based on':<{w - 10}}{'Hessian':>10}",
        ]
        sections = [
            ("Latent Variables:", "=~"),
            ("Regressions:", "~"),
            ("Covariances:", "~~cov"),
            ("Intercepts:", "~1"),
            ("Variances:", "~~var"),
        ]
        p = self.parameters
        for title, key in sections:
            if key == "~~cov":
                sub = p[(p["op"] == "~~") & (p["lhs"] != p["rhs"])]
            elif key == "~~var":
                sub = p[(p["op"] == "~~") & (p["lhs"] == p["rhs"])]
            else:
                sub = p[p["op"] == key]
            if sub.empty:
                continue
            out += [
                "",
                title,
                f"{'':<20}{'Estimate':>10}{'Std.Err':>10}{'z-value':>9}{'P(>|z|)':>9}",
            ]
            last = None
            for _, r in sub.iterrows():
                if key in ("=~", "~", "~~cov") and r["lhs"] != last:
                    out.append(f"  {r['lhs']} {r['op']}")
                    last = r["lhs"]
                name = r["rhs"] if key in ("=~", "~", "~~cov") else r["lhs"]
                lab = f"({r['label']})" if r["label"] else ""
                indent = "    " if key in ("=~", "~", "~~cov") else "   ."
                cell = f"{indent}{name:<8}{lab:>8}"
                line = f"{cell:<20}{r['estimate']:>10.3f}"
                if np.isfinite(r["se"]):
                    line += f"{r['se']:>10.3f}{r['z']:>9.3f}{r['p']:>9.3f}"
                out.append(line)
        return "\n".join(out)

    def to_dict(self) -> dict:
        """JSON-ready numbers (no data, no IDs)."""

        def clean(v):
            if isinstance(v, (np.floating, float)):
                return None if not np.isfinite(v) else float(v)
            if isinstance(v, (np.integer,)):
                return int(v)
            return v

        return {
            "model": self.model,
            "constraints": self.constraints,
            "lag": self.lag,
            "effects": {
                k: {c: clean(v) for c, v in row.items()}
                for k, row in self.effects.to_dict("index").items()
            },
            "random_intercepts": {
                k: {c: clean(v) for c, v in row.items()}
                for k, row in self.random_intercepts.to_dict("index").items()
            },
            "long_run": {k: clean(v) for k, v in self.long_run.items()},
            "loglik": clean(self.loglik),
            "fit_indices": {k: clean(v) for k, v in self.fit_indices.items()},
            "constraint_test": None
            if self.constraint_test is None
            else {k: clean(v) for k, v in self.constraint_test.items()},
            "waves": [clean(w) for w in self.waves],
            "n_clients": self.n_clients,
            "n_patterns": self.n_patterns,
            "converged": self.converged,
            "singular": self.singular,
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        b = self.effects.loc["alliance -> outcome"]
        return (
            f"<CrossLaggedFit {self.model} {self.constraints} waves={len(self.waves)} "
            f"n_clients={self.n_clients} alliance->outcome={b['estimate']:.4g} (SE {b['se']:.3g})>"
        )


# ----------------------------------------------------------------------------- fit indices
def _rmsea_ci(chisq: float, df: float, n: int, level: float = 0.90) -> tuple[float, float]:
    """lavaan's ``lav_fit_rmsea_ci``: invert the noncentral chi-square in its noncentrality."""
    if df < 1 or not np.isfinite(chisq):
        return (0.0, 0.0) if df < 1 else (np.nan, np.nan)
    up, lo = 1 - (1 - level) / 2, (1 - level) / 2

    def f(lam, q):
        return stats.ncx2.cdf(chisq, df, lam) - q if lam > 0 else stats.chi2.cdf(chisq, df) - q

    if f(0.0, up) < 0:
        low = 0.0
    else:
        lam = optimize.brentq(lambda x: f(x, up), 0.0, chisq, xtol=1e-12)
        low = math.sqrt(lam / (n * df))
    n_r = max(n, 4 * chisq)
    if f(n_r, lo) > 0 or f(0.0, lo) < 0:
        high = 0.0
    else:
        lam = optimize.brentq(lambda x: f(x, lo), 0.0, n_r, xtol=1e-12)
        high = math.sqrt(lam / (n * df))
    return low, high


_FIT_INDEX_KEYS = (
    "chisq", "df", "pvalue", "baseline_chisq", "baseline_df", "cfi", "tli", "rmsea",
    "rmsea_ci_low", "rmsea_ci_high", "rmsea_pvalue", "srmr", "aic", "bic", "npar", "loglik_h1",
)  # fmt: skip


def _fit_indices(spec, fit: RamFit, pat, h1, base) -> dict:
    if h1 is None:  # the unrestricted model could not be fitted (too few clients per pattern)
        out = dict.fromkeys(_FIT_INDEX_KEYS, np.nan)
        p = pat.n_cols
        out["npar"] = float(spec.n_par)
        out["df"] = float(p * (p + 3) // 2 - spec.n_par)
        out["aic"] = -2.0 * fit.loglik + 2.0 * spec.n_par
        out["bic"] = -2.0 * fit.loglik + math.log(pat.n_rows) * spec.n_par
        return out
    mu1, sig1, ll1 = h1
    _, _, llb = base
    p = pat.n_cols
    n_mom = p * (p + 3) // 2
    npar = spec.n_par
    chisq = max(2.0 * (ll1 - fit.loglik), 0.0)
    df = n_mom - npar
    chisq_b = 2.0 * (ll1 - llb)
    df_b = n_mom - 2 * p
    n = pat.n_rows
    pval = float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan
    d0 = max(chisq - df, 0.0)
    denom = max(chisq - df, chisq_b - df_b, 0.0)
    cfi = 1.0 - d0 / denom if denom > 0 else 1.0
    tli = ((chisq_b / df_b) - (chisq / df)) / ((chisq_b / df_b) - 1.0) if df > 0 else 1.0
    rmsea = math.sqrt(max(chisq / n / df - 1.0 / n, 0.0)) if df > 0 else 0.0
    lo, hi = _rmsea_ci(chisq, df, n)
    # RMSEA close-fit test (H0: rmsea <= .05)
    rmsea_p = float(stats.ncx2.sf(chisq, df, 0.05**2 * n * df)) if df > 0 else np.nan
    mu0, sig0, *_ = implied_moments(spec, fit.theta)
    sd = np.sqrt(np.diag(sig1))
    r_cov = (sig1 - sig0) / np.outer(sd, sd)
    r_mean = (mu1 - mu0) / sd
    tri = np.tril_indices(p)
    srmr = math.sqrt((np.sum(r_cov[tri] ** 2) + np.sum(r_mean**2)) / (len(tri[0]) + p))
    return {
        "chisq": chisq,
        "df": float(df),
        "pvalue": pval,
        "baseline_chisq": chisq_b,
        "baseline_df": float(df_b),
        "cfi": cfi,
        "tli": tli,
        "rmsea": rmsea,
        "rmsea_ci_low": lo,
        "rmsea_ci_high": hi,
        "rmsea_pvalue": rmsea_p,
        "srmr": srmr,
        "aic": -2.0 * fit.loglik + 2.0 * npar,
        "bic": -2.0 * fit.loglik + math.log(n) * npar,
        "npar": float(npar),
        "loglik_h1": ll1,
    }


# ----------------------------------------------------------------------------- data
def _wide(data, alliance, outcome, client, session, waves, min_clients):
    mf = model_frame(
        data,
        {"client": client, "session": session, "alliance": alliance, "outcome": outcome},
        numeric=["session", "alliance", "outcome"],
        ids=["client"],
        required=["client", "session"],
        what="fit_cross_lagged",
    )
    df = mf.data
    sess, a, y = mf.values("session"), mf.values("alliance"), mf.values("outcome")
    _check_unique_sessions(df, client, session)
    codes, uniq = pd.factorize(df[client], sort=True)
    if waves is None:
        both = ~np.isnan(a) & ~np.isnan(y)
        counts = pd.Series(both).groupby(sess).sum()
        ok = counts[counts >= min_clients].index.to_numpy()
        if ok.size == 0:
            raise ModelError(
                f"no session has both {alliance!r} and {outcome!r} observed for at least "
                f"{min_clients} clients; a panel model needs waves",
                column=session,
            )
        # the longest run of consecutive sessions from the first usable one
        run = [ok[0]]
        allsess = np.unique(sess)
        for s in allsess[allsess > ok[0]]:
            if s in set(ok):
                run.append(s)
            else:
                break
        waves = run
    waves = [float(w) for w in waves]
    if len(waves) < 3:
        raise ModelError(
            f"a cross-lagged panel model needs at least 3 waves; sessions {waves} qualify",
            column=session,
            hint="lower min_clients or pass waves=",
        )
    col = pd.Index(np.asarray(waves, dtype=float)).get_indexer(np.asarray(sess, dtype=float))
    keep = col >= 0
    n = len(uniq)
    T = len(waves)
    A = np.full((n, T), np.nan)
    Y = np.full((n, T), np.nan)
    A[codes[keep], col[keep]] = a[keep]
    Y[codes[keep], col[keep]] = y[keep]
    present = ~(np.isnan(A).all(1) & np.isnan(Y).all(1))
    return A[present], Y[present], waves


# ----------------------------------------------------------------------------- fitting
PILOT_PATTERNS = 200
PILOT_ROWS = 1500


def _carry(b_from: _Builder, theta: np.ndarray, b_to: _Builder, default: np.ndarray) -> np.ndarray:
    """Starts for ``b_to`` from a fit of ``b_from``: same (lhs, op, rhs) entry, same value."""
    value = {(r.lhs, r.op, r.rhs): theta[r.index] for r in b_from.rows if r.index >= 0}
    out = default.copy()
    for r in b_to.rows:
        if r.index >= 0 and (r.lhs, r.op, r.rhs) in value:
            out[r.index] = value[(r.lhs, r.op, r.rhs)]
    return out


@dataclass
class CrossLaggedPanel:
    """The wide panel of a long table, built once and shared by several cross-lagged fits.

    Made by :func:`cross_lagged_panel`; pass it to :func:`fit_cross_lagged` in place of the
    long table. It caches, per set of analysed variables (e.g. the RI-CLPM's and the ML-SEM's),
    the scaled data, their missing-data patterns and sufficient statistics, the pilot subset and
    the unrestricted (h1) and baseline fits, so that models over the same variables (RI-CLPM,
    LCM-SR, lag 2, the free-lag model of the constraint test) reuse them.

    Attributes
    ----------
    alliance, outcome : ndarray
        ``(clients, waves)`` scores, NaN where missing (clients with no score left out).
    waves : list of float
        The sessions used as waves.
    columns : dict
        The alliance, outcome, client and session column names of the long table.
    """

    alliance: np.ndarray
    outcome: np.ndarray
    waves: list
    columns: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_clients(self) -> int:
        """Clients with at least one score in the waves."""
        return int(self.alliance.shape[0])

    def _model_data(self, key, A, Y, observed, series):
        """Scaled data, patterns, log-scale shift and pilot patterns of one variable set."""
        if key not in self._cache:
            T = A.shape[1]
            X = np.hstack([A[:, : T - 1] if len(observed) < 2 * T else A, Y])
            scale = {"alliance": float(np.nanstd(A)) or 1.0, "outcome": float(np.nanstd(Y)) or 1.0}
            colscale = np.array([scale[series[v]] for v in observed])
            Xs = X / colscale
            pat = missing_patterns(Xs)
            shift = float(np.sum(~np.isnan(Xs) * np.log(colscale)))
            self._cache[key] = {"Xs": Xs, "pat": pat, "shift": shift}
        return self._cache[key]


def cross_lagged_panel(
    data: pd.DataFrame,
    alliance: str,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    waves=None,
    min_clients: int = 20,
) -> CrossLaggedPanel:
    """The wide panel (clients x waves) of a long table, for several :func:`fit_cross_lagged` fits.

    Parameters are those of :func:`fit_cross_lagged`. Fitting from the panel gives the same
    numbers as fitting from the long table, without reshaping the table and regrouping the
    missing-data patterns for every model.

    Returns
    -------
    CrossLaggedPanel

    Examples
    --------
    >>> from alliance_lib.simulate import simulate_study
    >>> df = simulate_study(n_clients=120, max_sessions=5, output="scores", seed=3)
    >>> panel = cross_lagged_panel(df[df["session"] >= 1], "alliance", "outcome")
    >>> panel.alliance.shape
    (120, 5)
    >>> fit = fit_cross_lagged(panel, "alliance", "outcome", test_constraints=False)
    >>> fit.n_clients
    120
    """
    A, Y, w = _wide(data, alliance, outcome, client, session, waves, min_clients)
    cols = {"alliance": alliance, "outcome": outcome, "client": client, "session": session}
    return CrossLaggedPanel(A, Y, w, cols)


def _fit_model(
    panel,
    A,
    Y,
    model,
    constraints,
    lag,
    *,
    fit_h1=True,
    information=True,
    start_from=None,
    subset="fiml",
):
    T = A.shape[1]
    b = _model_builder(model, T, constraints, lag)
    md = panel._model_data((subset, tuple(b.observed)), A, Y, b.observed, b.series)
    Xs, pat, shift = md["Xs"], md["pat"], md["shift"]
    spec = b.spec()
    start = _starts(b, Xs)
    h0 = None
    if start_from is not None:
        start = _carry(start_from[0], start_from[1], b, start)
    elif len(pat.n) > PILOT_PATTERNS and pat.n_rows > 2 * PILOT_ROWS:
        # many missing-data patterns make each evaluation costly: get close on a pilot subset
        # of clients (fixed, for reproducibility), then finish on all of them
        if "pilot" not in md:
            rows = np.random.default_rng(0).choice(Xs.shape[0], PILOT_ROWS, replace=False)
            md["pilot"] = missing_patterns(Xs[rows])
        try:
            pilot = fit_ram(spec, md["pilot"], start, information=False)
            start, h0 = pilot.theta, pilot.hess_inv
        except Exception:  # noqa: BLE001 - the pilot is only a start; fall back to the default
            pass
    fit = fit_ram(spec, pat, start, information=information, hess_inv0=h0)
    if not fit.converged and start_from is None:
        # robust starts: other splits of the variance between levels; keep the best fit
        for share in START_SHARES[1:]:
            try:
                alt = fit_ram(spec, pat, _starts(b, Xs, share), information=information)
            except DataError:
                continue
            if alt.converged and (not fit.converged or alt.loglik > fit.loglik):
                fit = alt
                break
    h1 = base = None
    if fit_h1:
        # the unrestricted and baseline models depend on the variables only: fitted once
        if "h1" not in md:
            try:
                md["h1"] = saturated_fit(pat)
            except np.linalg.LinAlgError:  # singular unrestricted model: no fit indices
                md["h1"] = None
            md["base"] = None if md["h1"] is None else independence_fit(pat)
        h1, base = md["h1"], md["base"]
    return b, spec, fit, pat, shift, h1, base


def _wald(est, se, level=0.95):
    z = est / se if se > 0 else np.nan
    q = stats.norm.ppf(0.5 + level / 2)
    return {
        "estimate": est,
        "se": se,
        "ci_low": est - q * se,
        "ci_high": est + q * se,
        "p": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
    }


def fit_cross_lagged(
    data: pd.DataFrame,
    alliance: str,
    outcome: str,
    *,
    client: str = "client_id",
    session: str = "session",
    model: str = "riclpm",
    constraints: str = "lags",
    missing: str = "fiml",
    lag: int = 1,
    waves=None,
    min_clients: int = 20,
    test_constraints: bool = True,
) -> CrossLaggedFit:
    """Fit a dynamic panel SEM of alliance and outcome by full-information maximum likelihood.

    Parameters
    ----------
    data : DataFrame or CrossLaggedPanel
        Long table, one row per client and session (one rater's rows); or its wide panel from
        :func:`cross_lagged_panel` (same numbers; for several models on the same data: the
        panel keeps the missing-data patterns and the unrestricted model between fits). With a
        panel, ``client``, ``session`` and ``min_clients`` are the panel's, and ``waves`` must
        be None or the panel's waves.
    alliance, outcome : str
        Score columns. The outcome of wave ``t`` is taken as measured before session ``t`` and
        the alliance after it.
    client, session : str
        Id and session columns; each session used is a wave.
    model : {"riclpm", "mlsem", "lcmsr"}
        Random-intercept cross-lagged panel model; ML-SEM dynamic panel model (outcome equation
        with a fixed effect, alliance predetermined); RI-CLPM with random linear slopes.
    constraints : {"lags", "stationary", "none"}
        ``"lags"``: autoregressive and cross-lagged coefficients equal over sessions, means and
        within-client (co)variances free per session (Mulder & Hamaker 2021); ``"stationary"``
        also holds the within-client (residual) (co)variances of waves after the first equal;
        ``"none"`` frees everything.
    missing : {"fiml", "listwise"}
        FIML (missing sessions and dropout under MAR) or complete cases only.
    lag : {1, 2}
        ``2`` adds paths from ``t - 2`` (the lag-2 sensitivity analysis); the effects keep the
        lag-1 paths.
    waves : sequence, optional
        Sessions to use; default: the consecutive sessions, from the first, in which at least
        ``min_clients`` clients have both scores.
    min_clients : int
        See ``waves``.
    test_constraints : bool
        Also fit the model with everything free over sessions for the likelihood-ratio test of
        the constraints.

    Returns
    -------
    CrossLaggedFit

    Notes
    -----
    RI-CLPM for client ``i`` at wave ``t`` (``y`` outcome, ``a`` alliance)::

        y_it = mu_y,t + RIy_i + wy_it,   a_it = mu_a,t + RIa_i + wa_it
        wy_it = rho_y wy_i,t-1 + beta  wa_i,t-1 + e_it
        wa_it = rho_a wa_i,t-1 + gamma wy_i,t-1 + d_it,   cov(e_it, d_it) free

    with the random intercepts uncorrelated with the first wave's within part. The ML-SEM writes
    ``y_it = mu_t + beta a_i,t-1 + rho_y y_i,t-1 + alpha_i + e_it`` with ``alpha_i`` correlated
    with ``y_i1`` and every alliance score, and ``a_is`` free to correlate with ``e_it`` for
    ``s >= t`` (predetermined). The LCM-SR adds slopes with loadings ``0 … T-1``. The long-run
    effect is ``beta / (1 - rho_y)`` (Falkenström 2024). Standard errors come from the observed
    information (lavaan's default with ``missing = "ml"``); fit indices compare with the
    unrestricted model fitted by EM, and the baseline model has free means and variances only
    (lavaan's formulas, including its RMSEA with ``N``, not ``N - 1``).

    References
    ----------
    Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the cross-lagged
    panel model. *Psychological Methods, 20*(1), 102-116.
    Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept cross-lagged
    panel model. *Structural Equation Modeling, 28*(4), 638-648.
    Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged
    panel models with fixed effects. *Socius, 3*.
    Curran, P. J., Howard, A. L., Bainter, S. A., Lane, S. T., & McGinley, J. S. (2014). The
    separation of between-person and within-person components of individual change over time.
    *Journal of Consulting and Clinical Psychology, 82*(5), 879-894.
    Falkenström, F. (2024). Time-lagged panel models in psychotherapy process and mechanisms of
    change research. *Clinical Psychology Review, 110*, 102435.

    Examples
    --------
    >>> from alliance_lib.simulate import SimulationTruth, simulate_study
    >>> truth = SimulationTruth(sd_client_slope=0.0, sd_outcome_slope=0.0, alliance_inertia=0.3,
    ...                         outcome_inertia=0.3)
    >>> df = simulate_study(n_clients=200, max_sessions=6, output="scores", truth=truth, seed=3)
    >>> fit = fit_cross_lagged(df[df["session"] >= 1], "alliance", "outcome")
    >>> fit.effects.columns.tolist()
    ['estimate', 'se', 'ci_low', 'ci_high', 'p']
    >>> bool(fit.effects.loc["alliance -> outcome", "ci_low"] < -6 + 3)
    True
    """
    _check_choice("model", model, MODELS)
    _check_choice("constraints", constraints, CONSTRAINTS)
    _check_choice("missing", missing, ("fiml", "listwise"))
    if lag not in (1, 2):
        raise ModelError(f"lag must be 1 or 2, not {lag!r}", value=lag)
    # small dense algebra: BLAS threads only add contention
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_cross_lagged(
            data,
            alliance,
            outcome,
            client,
            session,
            model,
            constraints,
            missing,
            lag,
            waves,
            min_clients,
            test_constraints,
        )


def _fit_cross_lagged(
    data,
    alliance,
    outcome,
    client,
    session,
    model,
    constraints,
    missing,
    lag,
    waves,
    min_clients,
    test_constraints,
):
    if isinstance(data, CrossLaggedPanel):
        panel = data
        if (panel.columns["alliance"], panel.columns["outcome"]) != (alliance, outcome):
            raise ModelError(
                f"the panel holds {panel.columns['alliance']!r} and {panel.columns['outcome']!r}, "
                f"not {alliance!r} and {outcome!r}",
                hint="build a panel for these scores with cross_lagged_panel()",
            )
        if waves is not None and [float(w) for w in waves] != panel.waves:
            raise ModelError(
                f"the panel's waves are sessions {panel.waves}, not {list(waves)}",
                hint="build a panel for these waves with cross_lagged_panel(..., waves=)",
            )
    else:
        panel = cross_lagged_panel(
            data,
            alliance,
            outcome,
            client=client,
            session=session,
            waves=waves,
            min_clients=min_clients,
        )
    A, Y, waves = panel.alliance, panel.outcome, panel.waves
    if missing == "listwise":
        key = "listwise_rows"
        if key not in panel._cache:
            panel._cache[key] = ~(np.isnan(A).any(1) | np.isnan(Y).any(1))
        cc = panel._cache[key]
        A, Y = A[cc], Y[cc]
    if A.shape[0] < 10:
        raise ModelError(f"only {A.shape[0]} clients have data in the waves used", column=client)
    b, spec, fit, pat, shift, h1, base = _fit_model(
        panel, A, Y, model, constraints, lag, subset=missing
    )
    f = _param_scale(
        b, {"alliance": float(np.nanstd(A)) or 1.0, "outcome": float(np.nanstd(Y)) or 1.0}
    )
    theta = fit.theta * f
    vcov = fit.vcov * np.outer(f, f)
    se = fit.se * f
    ll = fit.loglik - shift
    fi = _fit_indices(spec, fit, pat, h1, base)
    fi["loglik_h1"] = fi["loglik_h1"] - shift
    fi["aic"] = -2.0 * ll + 2.0 * spec.n_par
    fi["bic"] = -2.0 * ll + math.log(pat.n_rows) * spec.n_par

    # parameter table (lavaan order)
    rows = []
    for r in b.rows:
        if r.index >= 0:
            est, s = theta[r.index], se[r.index]
            z = est / s if s > 0 else np.nan
            w = _wald(est, s)
            rows.append(
                dict(
                    lhs=r.lhs,
                    op=r.op,
                    rhs=r.rhs,
                    label=r.label,
                    estimate=est,
                    se=s,
                    z=z,
                    p=w["p"],
                    ci_low=w["ci_low"],
                    ci_high=w["ci_high"],
                    free=r.index + 1,
                )
            )
        else:
            rows.append(
                dict(
                    lhs=r.lhs,
                    op=r.op,
                    rhs=r.rhs,
                    label="",
                    estimate=r.value,
                    se=np.nan,
                    z=np.nan,
                    p=np.nan,
                    ci_low=np.nan,
                    ci_high=np.nan,
                    free=0,
                )
            )
    params = pd.DataFrame(rows)

    # the four lagged effects (constraints="none": mean over waves, delta method)
    def combo(weights: np.ndarray) -> dict:
        est = float(weights @ theta)
        s = float(np.sqrt(max(weights @ vcov @ weights, 0.0)))
        return _wald(est, s)

    lag_rows = _lag_parameters(b, model)
    effects = {}
    for name in EFFECTS:
        idx = lag_rows.get(_EFFECT_LABEL[name], [])
        if not idx:
            effects[name] = {k: np.nan for k in ("estimate", "se", "ci_low", "ci_high", "p")}
            continue
        wts = np.zeros(spec.n_par)
        for j in set(idx):
            wts[j] += 1.0 / len(set(idx))
        effects[name] = combo(wts)
    effects = pd.DataFrame.from_dict(effects, orient="index")[
        ["estimate", "se", "ci_low", "ci_high", "p"]
    ]

    ri = _random_intercepts(b, model, theta, vcov)
    beta_idx = sorted(set(lag_rows.get("beta", [])))
    py_idx = sorted(set(lag_rows.get("py", [])))
    wb = np.zeros(spec.n_par)
    wp = np.zeros(spec.n_par)
    wb[beta_idx] = 1.0 / len(beta_idx)
    wp[py_idx] = 1.0 / len(py_idx)
    bb, pp = wb @ theta, wp @ theta
    lr = bb / (1.0 - pp)
    grad = wb / (1.0 - pp) + wp * bb / (1.0 - pp) ** 2
    long_run = _wald(float(lr), float(np.sqrt(max(grad @ vcov @ grad, 0.0))))

    ctest = None
    warn = list(fit.warnings)
    if h1 is None:
        warn.append(
            "the unrestricted (saturated) model is singular with these data (too few clients for "
            "the number of sessions and missing-data patterns): no chi-square-based fit indices"
        )
    if constraints != "none" and test_constraints:
        _, spec_f, fit_f, *_ = _fit_model(
            panel,
            A,
            Y,
            model,
            "none",
            lag,
            fit_h1=False,
            information=False,
            start_from=(b, fit.theta),
            subset=missing,
        )
        lr_stat = max(2.0 * (fit_f.loglik - fit.loglik), 0.0)
        ddf = spec_f.n_par - spec.n_par
        ctest = {
            "against": "none",
            "chisq": lr_stat,
            "df": float(ddf),
            "p": float(stats.chi2.sf(lr_stat, ddf)),
        }
        if not fit_f.converged:
            warn.append(
                "the model with free lags did not converge: the constraint test is unreliable"
            )
    if model == "riclpm" and pat.n_rows < 100:
        warn.append(
            f"only {pat.n_rows} clients: FIML standard errors of a {len(waves)}-wave RI-CLPM can "
            "be optimistic below about 100 clients"
        )
    return CrossLaggedFit(
        model=model,
        constraints=constraints,
        lag=lag,
        effects=effects,
        random_intercepts=ri,
        long_run=long_run,
        parameters=params,
        loglik=float(ll),
        fit_indices=fi,
        constraint_test=ctest,
        lavaan_syntax=_syntax(b),
        waves=[int(w) if float(w).is_integer() else w for w in waves],
        n_clients=int(pat.n_rows),
        n_patterns=int(len(pat.n)),
        converged=bool(fit.converged),
        warnings=warn,
        raw=fit,
        vcov=vcov,
    )


def _series_of(name: str) -> str:
    return "alliance" if name in ("RIa", "Sa") or name.startswith(("a", "wa")) else "outcome"


def _lag_parameters(b: _Builder, model: str) -> dict[str, list[int]]:
    """Parameter indices of each lag-1 path family (one per wave with constraints='none')."""
    out: dict[str, list[int]] = {}
    for r in b.rows:
        if r.op != "~" or r.index < 0:
            continue
        lt, rt = int(r.lhs.lstrip("wayS")), int(r.rhs.lstrip("wayS"))
        if lt - rt != 1:
            continue
        lhs_s, rhs_s = b.series[r.lhs], b.series[r.rhs]
        key = {
            ("outcome", "alliance"): "beta",
            ("alliance", "outcome"): "cay",
            ("alliance", "alliance"): "pa",
            ("outcome", "outcome"): "py",
        }[(lhs_s, rhs_s)]
        out.setdefault(key, []).append(r.index)
    return out


def _random_intercepts(b, model, theta, vcov) -> pd.DataFrame:
    def idx(x, y):
        for r in b.rows:
            if r.op == "~~" and {r.lhs, r.rhs} == {x, y} and r.index >= 0:
                return r.index
        return None

    out = {}
    n = len(theta)
    if model == "mlsem":
        j = idx("alpha", "alpha")
        w = np.zeros(n)
        w[j] = 1
        out["outcome variance"] = _wald(theta[j], float(np.sqrt(vcov[j, j])))
        nan = {k: np.nan for k in ("estimate", "se", "ci_low", "ci_high", "p")}
        out["alliance variance"] = nan
        out["covariance"] = nan
        out["correlation"] = nan
    else:
        ja, jy, jc = idx("RIa", "RIa"), idx("RIy", "RIy"), idx("RIa", "RIy")
        for name, j in (("alliance variance", ja), ("outcome variance", jy), ("covariance", jc)):
            out[name] = _wald(theta[j], float(np.sqrt(max(vcov[j, j], 0.0))))
        va, vy, c = theta[ja], theta[jy], theta[jc]
        if va > 0 and vy > 0:
            r = c / math.sqrt(va * vy)
            g = np.zeros(n)
            g[jc] = 1.0 / math.sqrt(va * vy)
            g[ja] = -0.5 * r / va
            g[jy] = -0.5 * r / vy
            out["correlation"] = _wald(r, float(np.sqrt(max(g @ vcov @ g, 0.0))))
        else:
            out["correlation"] = {k: np.nan for k in ("estimate", "se", "ci_low", "ci_high", "p")}
    order = ["alliance variance", "outcome variance", "covariance", "correlation"]
    return pd.DataFrame.from_dict(out, orient="index").loc[order][
        ["estimate", "se", "ci_low", "ci_high", "p"]
    ]
