"""FIML panel-SEM engine: analytic gradient vs numerical, patterns, h1 by EM, boundary diagnostics."""

import numpy as np
import pytest
from scipy import optimize

from alliance_lib.cross_lagged import _model_builder, _starts
from alliance_lib.engine.panel import (
    RamSpec,
    fit_ram,
    independence_fit,
    loglik,
    loglik_gradient,
    loglik_gradients,
    missing_patterns,
    observed_information,
    saturated_fit,
)
from alliance_lib.errors import DataError


def _panel(rng, n=150, T=5, p_missing=0.1):
    ri = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.3], [0.0, 0.8]])
    X = np.hstack([ri[:, :1] + rng.normal(size=(n, T)), ri[:, 1:] + rng.normal(size=(n, T))])
    X[rng.random(X.shape) < p_missing] = np.nan
    return X


@pytest.mark.parametrize("model", ["riclpm", "mlsem", "lcmsr"])
def test_gradient_matches_numerical(model):
    rng = np.random.default_rng(4)
    T = 5
    X = _panel(rng, T=T)
    b = _model_builder(model, T, "lags", 1)
    if model == "mlsem":
        X = np.hstack([X[:, : T - 1], X[:, T:]])
    spec = b.spec()
    pat = missing_patterns(X)
    theta = _starts(b, X) + 0.02 * rng.normal(size=spec.n_par)
    ll, grad = loglik_gradient(spec, theta, pat)
    num = optimize.approx_fprime(theta, lambda t: loglik(spec, t, pat), 1e-6)
    assert np.isfinite(ll)
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-3)


def test_patterns_group_rows_and_drop_empty_rows():
    X = np.array([[1.0, 2.0], [3.0, np.nan], [np.nan, np.nan], [2.0, 5.0], [4.0, np.nan]])
    pat = missing_patterns(X)
    assert pat.n_rows == 4 and sorted(pat.n.tolist()) == [2, 2]
    full = [k for k, o in enumerate(pat.observed) if len(o) == 2][0]
    np.testing.assert_allclose(pat.mean[full], [1.5, 3.5])
    np.testing.assert_allclose(pat.cov[full], np.cov(X[[0, 3]].T, bias=True))


def test_regression_by_fiml_equals_least_squares_on_complete_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    y = 1.0 + 0.7 * x + rng.normal(scale=0.5, size=400)
    spec = RamSpec(2, [0, 1], [(1, 0, 0)], [(0, 0, 1), (1, 1, 2)], [(0, 3), (1, 4)], 5)
    fit = fit_ram(spec, np.column_stack([x, y]), np.array([0, 1, 1, 0, 0.0]))
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - icpt - slope * x
    assert fit.converged
    np.testing.assert_allclose(fit.theta[[0, 4]], [slope, icpt], rtol=1e-7)
    np.testing.assert_allclose(fit.theta[2], resid.var(), rtol=1e-7)
    # ML standard error of the slope: sigma / sqrt(sum (x - xbar)^2), sigma^2 by ML
    np.testing.assert_allclose(
        fit.se[0], np.sqrt(resid.var() / ((x - x.mean()) ** 2).sum()), rtol=1e-5
    )
    assert np.all(
        np.linalg.eigvalsh(
            observed_information(spec, fit.theta, missing_patterns(np.column_stack([x, y])))
        )
        > 0
    )


def test_saturated_em_reaches_the_complete_data_moments_and_a_higher_loglik():
    rng = np.random.default_rng(3)
    X = _panel(rng, n=300, T=3, p_missing=0.0)
    mu, sig, ll = saturated_fit(missing_patterns(X))
    np.testing.assert_allclose(mu, X.mean(0), atol=1e-10)
    np.testing.assert_allclose(sig, np.cov(X.T, bias=True), atol=1e-8)
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    pat = missing_patterns(Xm)
    mu, sig, ll = saturated_fit(pat)
    # the EM solution is a stationary point: the gradient of the saturated likelihood is ~0
    _, _, ll0 = independence_fit(pat)
    assert ll > ll0
    spec = RamSpec(
        6,
        np.arange(6),
        [],
        [(i, j, k) for k, (i, j) in enumerate((i, j) for i in range(6) for j in range(i, 6))],
        [(i, 21 + i) for i in range(6)],
        27,
    )
    theta = np.concatenate([sig[np.triu_indices(6)], mu])
    _, grad = loglik_gradient(spec, theta, pat)
    assert np.max(np.abs(grad)) < 2e-3


def test_boundary_variance_is_reported():
    rng = np.random.default_rng(5)
    # no random intercept in the truth: its variance goes to (or below) 0
    X = rng.normal(size=(200, 8))
    b = _model_builder("riclpm", 4, "lags", 1)
    fit = fit_ram(b.spec(), X, _starts(b, X))
    ri = b.labels.get("RIa") or [r.index for r in b.rows if r.lhs == r.rhs == "RIa"][0]
    assert fit.theta[ri] < 0.05
    if fit.theta[ri] <= 0:
        assert any("RIa~~RIa" in w for w in fit.warnings)


def test_bad_start_raises_data_error():
    spec = RamSpec(2, [0, 1], [(1, 0, 0)], [(0, 0, 1), (1, 1, 2)], [(0, 3), (1, 4)], 5)
    with pytest.raises(DataError):
        fit_ram(spec, np.ones((5, 2)), np.array([0, -1.0, 1, 0, 0]))


def test_every_start_reaches_the_same_optimum():
    import pandas as pd

    from alliance_lib.cross_lagged import START_SHARES, _wide

    d = pd.read_csv(
        __import__("pathlib").Path(__file__).parent / "reference/fixtures/cross_lagged_missing.csv"
    )
    A, Y, _ = _wide(d, "alliance", "outcome", "client_id", "session", None, 20)
    X = np.hstack([A, Y])
    X = X / np.nanstd(X, axis=0)
    b = _model_builder("riclpm", A.shape[1], "lags", 1)
    pat = missing_patterns(X)
    lls = [fit_ram(b.spec(), pat, _starts(b, X, share)).loglik for share in START_SHARES]
    assert max(lls) - min(lls) < 1e-6


def _patterns_by_unique(X):
    """The grouping before issue 16: ``np.unique`` on the mask rows, per-pattern statistics."""
    X = X[~np.isnan(X).all(axis=1)]
    mask = ~np.isnan(X)
    codes, inverse = np.unique(mask, axis=0, return_inverse=True)
    out = []
    for g, code in enumerate(codes):
        rows = X[inverse.ravel() == g][:, code]
        mu = rows.mean(axis=0)
        d = rows - mu  # one operand twice: numpy's d.T @ d takes the symmetric (syrk) path
        out.append((np.flatnonzero(code), len(rows), mu, d.T @ d / len(rows)))
    return out


@pytest.mark.parametrize("p", [3, 10, 64])
def test_integer_coded_patterns_equal_the_unique_rows_grouping(p):
    # up to 62 columns the mask rows are integer codes; 64 takes the np.unique(axis=0) path
    rng = np.random.default_rng(p)
    X = rng.normal(size=(3000, p)) * 3.0 + 10.0
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:5] = np.nan  # rows without any value are left out
    pat = missing_patterns(X)
    ref = _patterns_by_unique(X)
    assert pat.n_rows == (~np.isnan(X)).any(axis=1).sum() and len(pat.n) == len(ref)
    for g, (obs, n, mu, cov) in enumerate(ref):  # same order, same bits
        assert np.array_equal(pat.observed[g], obs) and pat.n[g] == n
        assert np.array_equal(pat.mean[g], mu) and np.array_equal(pat.cov[g], cov)


@pytest.mark.parametrize("model", ["riclpm", "mlsem"])
def test_batched_gradients_equal_single_calls_bit_for_bit(model):
    rng = np.random.default_rng(7)
    T = 6
    X = _panel(rng, n=400, T=T, p_missing=0.25)  # many patterns, some groups of one pattern
    if model == "mlsem":
        X = np.hstack([X[:, : T - 1], X[:, T:]])
    b = _model_builder(model, T, "lags", 1)
    spec = b.spec()
    pat = missing_patterns(X)
    assert min(len(n) for _, n, *_ in pat.groups) == 1
    base = _starts(b, X)
    thetas = base + 0.01 * rng.normal(size=(20, spec.n_par))
    thetas[3, [r.index for r in b.rows if r.op == "~~" and r.lhs == r.rhs][0]] = -5.0  # not PD
    batch = loglik_gradients(spec, thetas, pat)
    for t, gb in zip(thetas, batch, strict=True):
        ll, g1 = loglik_gradient(spec, t, pat)
        assert np.array_equal(gb, g1)
    assert not np.isfinite(loglik(spec, thetas[3], pat)) and not batch[3].any()


def test_observed_information_is_the_forward_difference_of_the_gradient():
    rng = np.random.default_rng(8)
    X = _panel(rng, n=300, T=4, p_missing=0.2)
    b = _model_builder("riclpm", 4, "lags", 1)
    spec = b.spec()
    pat = missing_patterns(X)
    theta = _starts(b, X)
    H = observed_information(spec, theta, pat)
    g0 = loglik_gradient(spec, theta, pat)[1]
    ref = np.empty_like(H)
    for j in range(spec.n_par):  # the loop the batched evaluation replaces
        h = 1e-6 * max(1e-2, abs(theta[j]))
        tp = theta.copy()
        tp[j] += h
        ref[:, j] = (loglik_gradient(spec, tp, pat)[1] - g0) / h
    assert np.array_equal(H, -0.5 * (ref + ref.T))
