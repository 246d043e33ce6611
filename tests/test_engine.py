"""Tests for alliance_lib.engine: the block algebra against dense linear algebra.

The independent reference is the marginal model written out densely (n x n matrices):
``V = I + Z~ Lambda Lambda' Z~'``, GLS ``beta``, ``r^2 = e'V^{-1}e`` and the profiled
criteria of Bates et al. (2015, eqs. 34 and 41) -- computed with numpy.linalg only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from alliance_lib.engine import EngineError, NestedLMM, fit_nested_lmm
from alliance_lib.engine.lmm import _jacobian


def _data(seed=0, n_clients=24, n_ther=6, q=2, unbalanced=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, n_clients) if unbalanced else np.full(n_clients, 6)
    client = np.repeat(np.arange(n_clients), sizes)
    n = client.size
    t = np.concatenate([np.arange(k) for k in sizes]).astype(float)
    ther = (np.arange(n_clients) % n_ther)[client]
    cols = [np.ones(n), t, t**2][:q]
    Z = np.column_stack(cols)
    X = np.column_stack([np.ones(n), t, rng.normal(size=n)])
    b = rng.normal(0, [1.0, 0.3, 0.05][:q], (n_clients, q))
    y = X @ [2.0, 0.4, -0.3] + (Z * b[client]).sum(1) + rng.normal(0, 0.5, n_ther)[ther]
    y += rng.normal(0, 0.6, n)
    # shuffle rows so the engine cannot rely on sorted input
    perm = rng.permutation(n)
    return y[perm], X[perm], Z[perm], client[perm], ther[perm]


def _dense(theta, y, X, Z, client, ther, reml):
    """Dense profiled deviance and GLS quantities (independent of the block algebra)."""
    n, q = Z.shape
    nc = client.max() + 1
    ncl = q * (q + 1) // 2
    lam = np.zeros((q, q))
    r, c = np.triu_indices(q)
    lam[c, r] = theta[:ncl]
    Zfull = np.zeros((n, nc * q))
    for a in range(q):
        Zfull[np.arange(n), client * q + a] = Z[:, a]
    Lfull = np.kron(np.eye(nc), lam)
    if ther is not None:
        nt = ther.max() + 1
        Zt = np.zeros((n, nt))
        Zt[np.arange(n), ther] = 1.0
        Zfull = np.hstack([Zfull, Zt])
        Lfull = np.block(
            [[Lfull, np.zeros((nc * q, nt))], [np.zeros((nt, nc * q)), theta[-1] * np.eye(nt)]]
        )
    ZL = Zfull @ Lfull
    V = np.eye(n) + ZL @ ZL.T
    Vi = np.linalg.inv(V)
    C = X.T @ Vi @ X
    beta = np.linalg.solve(C, X.T @ Vi @ y)
    e = y - X @ beta
    r2 = e @ Vi @ e
    p = X.shape[1]
    ldV = np.linalg.slogdet(V)[1]
    if reml:
        m = n - p
        dev = ldV + np.linalg.slogdet(C)[1] + m * (1 + math.log(2 * math.pi * r2 / m))
    else:
        dev = ldV + n * (1 + math.log(2 * math.pi * r2 / n))
    sigma2 = r2 / (n - p if reml else n)
    u_cov = sigma2 * (Lfull @ Lfull.T - Lfull @ Lfull.T @ Zfull.T @ Vi @ Zfull @ Lfull @ Lfull.T)
    modes = Lfull @ Lfull.T @ Zfull.T @ Vi @ e
    return {
        "dev": dev,
        "beta": beta,
        "vcov": sigma2 * np.linalg.inv(C),
        "modes": modes,
        "mode_cov": u_cov,
        "sigma2": sigma2,
    }


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("with_ther", [False, True])
@pytest.mark.parametrize("reml", [True, False])
def test_block_deviance_equals_dense_deviance(q, with_ther, reml):
    y, X, Z, client, ther = _data(seed=q, q=q)
    th = None if not with_ther else ther
    model = NestedLMM(y, X, Z, client, th, reml=reml)
    rng = np.random.default_rng(7)
    theta = np.abs(rng.normal(0.5, 0.3, model.n_theta))
    ref = _dense(theta, y, X, Z, client, th, reml)
    assert model.deviance(theta) == pytest.approx(ref["dev"], rel=1e-10)


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("with_ther", [False, True])
@pytest.mark.parametrize("reml", [True, False])
def test_analytic_gradient_matches_finite_differences(q, with_ther, reml):
    y, X, Z, client, ther = _data(seed=10 + q, q=q)
    model = NestedLMM(y, X, Z, client, ther if with_ther else None, reml=reml)
    theta_s = np.abs(np.random.default_rng(3).normal(0.6, 0.3, model.n_theta))
    _, g = model.value_and_grad(theta_s)
    g_fd = _jacobian(model.deviance_scaled, theta_s, h_rel=1e-4)
    np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-6 * np.abs(g).max())
    vp = np.append(theta_s, 0.7)
    gv_fd = _jacobian(model.deviance_varpar, vp, h_rel=1e-4)
    np.testing.assert_allclose(
        model.grad_varpar(vp), gv_fd, rtol=1e-6, atol=1e-6 * np.abs(gv_fd).max()
    )


@pytest.mark.parametrize("with_ther", [False, True])
def test_fit_quantities_match_dense_formulas_at_the_optimum(with_ther):
    y, X, Z, client, ther = _data(seed=5)
    th = ther if with_ther else None
    model, fit = fit_nested_lmm(y, X, Z, client, th)
    assert fit.converged and fit.max_grad < 1e-3
    ref = _dense(fit.theta, y, X, Z, client, th, True)
    np.testing.assert_allclose(fit.beta, ref["beta"], rtol=1e-9)
    np.testing.assert_allclose(fit.vcov, ref["vcov"], rtol=1e-8)
    assert fit.deviance == pytest.approx(ref["dev"], rel=1e-12)
    # the optimum: no direction within the bounds lowers the dense deviance
    for j in range(fit.theta.size):
        for h in (1e-4, -1e-4):
            t2 = fit.theta.copy()
            t2[j] += h
            if j in (0, 2, fit.theta.size - 1) and t2[j] < 0:
                continue
            assert _dense(t2, y, X, Z, client, th, True)["dev"] >= fit.deviance - 1e-9
    # conditional modes and their covariance (lme4's ranef(condVar = TRUE))
    m = model.conditional_modes(fit)
    labels = model.client_levels
    nc, q = len(labels), Z.shape[1]
    dense_modes = ref["modes"][: nc * q].reshape(nc, q)
    np.testing.assert_allclose(m["client"], dense_modes[labels], rtol=1e-7, atol=1e-10)
    blocks = np.array([ref["mode_cov"][i * q : (i + 1) * q, i * q : (i + 1) * q] for i in labels])
    np.testing.assert_allclose(m["client_cov"], blocks, rtol=1e-7, atol=1e-12)
    if with_ther:
        tail = ref["modes"][nc * q :]
        np.testing.assert_allclose(m["therapist"], tail[model.therapist_levels], rtol=1e-7)
        tv = np.diag(ref["mode_cov"])[nc * q :]
        np.testing.assert_allclose(m["therapist_var"], tv[model.therapist_levels], rtol=1e-7)


def test_balanced_random_intercept_satterthwaite_df_is_groups_minus_one():
    # Balanced one-way random-intercept model: the intercept's Satterthwaite df is g - 1
    # exactly (the classical ANOVA result), and the within-cluster slope gets ~ n - g - 1.
    rng = np.random.default_rng(11)
    g, k = 15, 6
    client = np.repeat(np.arange(g), k)
    t = np.tile(np.arange(k, dtype=float), g) - (k - 1) / 2  # centred: intercept = grand mean
    y = 1 + 0.2 * t + rng.normal(0, 1, g)[client] + rng.normal(0, 1, g * k)
    X = np.column_stack([np.ones(g * k), t])
    model, fit = fit_nested_lmm(y, X, X[:, :1], client)
    df = model.satterthwaite(fit)
    assert df[0] == pytest.approx(g - 1, rel=1e-4)
    assert df[1] == pytest.approx(g * k - g - 1, rel=1e-3)


def test_singular_flag_follows_lme4_tolerance():
    rng = np.random.default_rng(2)
    client = np.repeat(np.arange(30), 5)
    y = rng.normal(size=150)  # no client variance at all
    _, fit = fit_nested_lmm(y, np.ones((150, 1)), np.ones((150, 1)), client)
    assert fit.theta[0] < 1e-4
    assert fit.singular
    assert "boundary (singular) fit: see help('isSingular')" in fit.warnings


def test_rows_in_any_order_and_any_labels_give_the_same_fit():
    y, X, Z, client, ther = _data(seed=9)
    _, a = fit_nested_lmm(y, X, Z, client, ther)
    labels = np.array([f"c{i:03d}" for i in client])
    perm = np.random.default_rng(1).permutation(y.size)
    _, b = fit_nested_lmm(y[perm], X[perm], Z[perm], labels[perm], (ther * 7 + 3)[perm])
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)
    assert a.deviance == pytest.approx(b.deviance, rel=1e-12)


def test_engine_errors():
    y, X, Z, client, ther = _data(seed=1)
    crossed = ther.copy()
    first = np.flatnonzero(client == client[0])
    crossed[first[0]] = (ther[first[0]] + 1) % 6
    with pytest.raises(EngineError, match="nested"):
        NestedLMM(y, X, Z, client, crossed)
    with pytest.raises(EngineError, match="same number of rows"):
        NestedLMM(y[:-1], X, Z, client)
    bad = y.copy()
    bad[4] = np.nan
    with pytest.raises(EngineError, match="row 4"):
        NestedLMM(bad, X, Z, client)
    with pytest.raises(EngineError, match="constant"):
        NestedLMM(y, np.column_stack([X, np.full(y.size, 2.0)]), Z, client)


def test_pilot_start_on_large_data_reaches_the_same_optimum():
    # >= 16,000 clients: the fit starts from a pilot fit on a subset of clients; the optimum
    # must not depend on the start (compare with lme4's default identity start).
    rng = np.random.default_rng(4)
    nc, k = 16_000, 4
    client = np.repeat(np.arange(nc), k)
    t = np.tile(np.arange(k, dtype=float), nc)
    ther = (np.arange(nc) % 97)[client]
    y = 1 + 0.1 * t + rng.normal(0, 0.5, nc)[client] + rng.normal(0, 0.1, nc)[client] * t
    y += rng.normal(0, 0.3, 97)[ther] + rng.normal(0, 0.4, nc * k)
    X = np.column_stack([np.ones(nc * k), t])
    model = NestedLMM(y, X, X, client, ther)
    a = model.fit()
    assert model.n_evals_pilot > 0
    b = model.fit(theta0=np.array([1.0, 0.0, 1.0, 1.0]))
    assert a.converged and b.converged
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-8)
    assert a.deviance == pytest.approx(b.deviance, rel=1e-12, abs=1e-7)


# ------------------------------------------------------------------------------- global optimum
def _between_within(seed):
    """Random-intercept data whose between-group slope differs from the within-group slope.

    With few, small groups such data can give a (RE)ML profile in theta with two local minima,
    one at the boundary theta = 0 and one in the interior; the seeds below were chosen (by
    scanning seeds with the grid of :func:`_grid_profile`) to give either one the lower value.
    """
    rng = np.random.default_rng(seed)
    g = rng.integers(8, 30)
    sizes = rng.integers(2, 7, g)
    client = np.repeat(np.arange(g), sizes)
    n = client.size
    xb = rng.normal(0, 1, g)[client]
    xw = rng.normal(0, rng.uniform(0.2, 2), n)
    slope_within, slope_between = rng.normal(0, 3, 2)
    y = slope_between * xb + slope_within * xw + rng.normal(0, rng.uniform(0, 1.5), g)[client]
    y += rng.normal(0, 1, n)
    X = np.column_stack([np.ones(n), xb + xw])
    return y, X, client


def _grid_profile(model):
    """Brute-force profile of a one-parameter model (no optimiser): theta = 0 plus a log grid
    on [1e-3, 30], then a fine linear grid between the neighbours of the best grid point.

    Returns (theta_min, deviance_min, is the boundary a local minimum, interior local minima).
    """
    grid = np.concatenate([[0.0], np.geomspace(1e-3, 30.0, 600)])
    dev = np.array([model.deviance([t]) for t in grid])
    i = int(np.argmin(dev))
    fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], 801)
    fdev = np.array([model.deviance([t]) for t in fine])
    j = int(np.argmin(fdev))
    inner = [
        (grid[k], dev[k])
        for k in range(1, grid.size - 1)
        if dev[k] < dev[k - 1] and dev[k] < dev[k + 1]
    ]
    return fine[j], fdev[j], bool(dev[1] > dev[0]), inner


@pytest.mark.parametrize(
    ("seed", "reml", "best"),
    [
        (939, False, "boundary"),
        (1191, True, "boundary"),
        (939, True, "interior"),
        (262, True, "interior"),
    ],
)
def test_fit_finds_the_global_optimum_of_a_bimodal_profile(seed, reml, best):
    y, X, client = _between_within(seed)
    model = NestedLMM(y, X, X[:, :1], client, reml=reml)
    theta_grid, dev_grid, boundary_local, inner = _grid_profile(model)
    # the case is what it claims to be: a local minimum at 0 and one inside, `best` lower
    assert boundary_local and len(inner) == 1
    dev0, (theta_in, dev_in) = model.deviance([0.0]), inner[0]
    assert theta_in > 1.0 and abs(dev0 - dev_in) > 0.1
    assert (dev0 < dev_in) == (best == "boundary")
    if best == "boundary":
        # plain L-BFGS-B from lme4's start (theta = 1) is trapped in the interior minimum
        trapped = model._local(model.start_theta(), 500)
        assert trapped.x[0] > 1.0 and trapped.fun > dev_grid + 0.1
    fit = model.fit()
    assert fit.deviance <= dev_grid + 1e-9
    assert fit.theta[0] == pytest.approx(theta_grid, abs=1e-3)
    assert fit.singular is (best == "boundary")
    assert fit.converged
    # the reported optimum is the dense (n x n) profiled deviance at the reported theta
    ref = _dense(fit.theta, y, X, X[:, :1], client, None, reml)
    assert fit.deviance == pytest.approx(ref["dev"], rel=1e-10)
    np.testing.assert_allclose(fit.beta, ref["beta"], rtol=1e-9)


def test_a_start_on_the_boundary_with_zero_gradient_is_not_accepted():
    # At theta = 0 the profiled deviance of a lone random intercept is even in theta, so its
    # gradient is exactly 0 there: L-BFGS-B started (or landing) at 0 stops at once. The fit
    # probes along the coordinate and continues to the interior optimum of the grid.
    y, X, Z, client, _ = _data(seed=3, q=1)
    model = NestedLMM(y, X, Z, client)
    theta_grid, dev_grid, _, _ = _grid_profile(model)
    assert theta_grid > 0.5
    _, g0 = model.value_and_grad(np.zeros(1))
    assert g0[0] == 0.0
    stuck = model._local(np.zeros(1), 500)
    assert stuck.x[0] == 0.0 and stuck.fun > dev_grid + 1.0
    fit = model.fit(theta0=np.zeros(1))
    assert fit.theta[0] == pytest.approx(theta_grid, abs=1e-3)
    assert fit.deviance <= dev_grid + 1e-9
    assert not fit.singular and fit.converged


def test_a_boundary_stop_of_a_three_parameter_model_is_left_for_a_better_interior():
    # Correlated intercept and slope with little slope variance: L-BFGS-B from lme4's start
    # stops on the face theta_22 = 0 (a singular fit), but the interior is lower. Brute force:
    # a grid over that face is nowhere as low as the fit, and no small step from the fit
    # lowers the dense (n x n) deviance.
    rng = np.random.default_rng(21)
    nc, k = 40, 5
    client = np.repeat(np.arange(nc), k)
    t = np.tile(np.arange(k, dtype=float), nc)
    y = 1 + 0.3 * t + rng.normal(0, 1, nc)[client] + rng.normal(0, 1, nc * k)
    X = np.column_stack([np.ones(nc * k), t])
    model = NestedLMM(y, X, X, client)
    stuck = model._local(model.start_theta(), 500)
    assert stuck.x[2] == 0.0
    fit = model.fit()
    assert fit.theta[2] > 0.05 and not fit.singular and fit.converged
    assert fit.deviance < stuck.fun - 0.1
    l11, l21 = np.meshgrid(np.linspace(0, 3, 61), np.linspace(-1, 1, 81))
    pts = np.column_stack([l11.ravel(), l21.ravel(), np.zeros(l11.size)])
    face = np.array([model.deviance(pt) for pt in pts])
    assert fit.deviance < face.min() - 0.1
    ref = _dense(fit.theta, y, X, X, client, None, True)
    assert fit.deviance == pytest.approx(ref["dev"], rel=1e-10)
    for j in range(3):
        for h in (1e-3, -1e-3):
            t2 = fit.theta.copy()
            t2[j] += h
            assert _dense(t2, y, X, X, client, None, True)["dev"] >= fit.deviance - 1e-9


# --------------------------------------------------------------------------------------------
# convergence is the KKT test, not the optimiser's flag (issue 10 item 1)


def test_flag_false_but_optimal_is_converged():
    y, X, Z, client, ther = _data(seed=11)
    model = NestedLMM(y, X, Z, client, ther)
    best = model.fit()
    assert best.converged
    # the same optimum reported by an optimiser that says it failed
    again = model.evaluate(best.theta, converged=False, message="ABNORMAL_TERMINATION_IN_LNSRCH")
    assert again.converged and again.max_grad <= 2e-3
    assert "ABNORMAL_TERMINATION_IN_LNSRCH" in again.optimizer_message
    assert "not converged" in again.optimizer_message


def test_flag_true_but_not_stationary_is_not_converged():
    y, X, Z, client, ther = _data(seed=11)
    model = NestedLMM(y, X, Z, client, ther)
    best = model.fit()
    off = best.theta * 1.5  # every component moved off the optimum, none at a bound
    bad = model.evaluate(off, converged=True, message="CONVERGENCE: REL_REDUCTION_OF_F")
    assert not bad.converged and bad.max_grad > 2e-3
    assert any("failed to converge" in w for w in bad.warnings)


def test_fit_ignores_the_optimizer_flag(monkeypatch):
    """A run whose optimiser always reports failure is still converged at the optimum."""
    from scipy import optimize

    import alliance_lib.engine.lmm as lmm

    real = optimize.minimize

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        res.success = False
        res.message = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
        return res

    monkeypatch.setattr(lmm.optimize, "minimize", failing)
    y, X, Z, client, ther = _data(seed=12)
    fit = NestedLMM(y, X, Z, client, ther).fit()
    assert fit.converged
    assert fit.optimizer_message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


def test_bounded_component_held_at_zero_is_converged():
    """A variance at its zero bound with the gradient pointing out of the box passes KKT."""
    rng = np.random.default_rng(5)
    client = np.repeat(np.arange(40), 5)
    y = rng.normal(size=200)  # no client variance at all
    model = NestedLMM(y, np.ones((200, 1)), np.ones((200, 1)), client)
    fit = model.fit()
    assert fit.singular and fit.converged and fit.theta[0] == 0.0
    _, g = model.value_and_grad(fit.theta_scaled)
    assert g[0] >= 0  # held at 0 by its multiplier, excluded from the test


def _sums_model(rows, y, X, client, therapist=None):
    """The client-sums twin of a row model (the cross products a group-by sum gives)."""
    v = np.column_stack([(X - rows.x_center) / rows.x_scale, y - rows.y_center, X / rows.z_scale])
    nc = int(client.max()) + 1
    kq = v.shape[1]
    cross = np.empty((kq, kq, nc))
    for a in range(kq):
        for b in range(kq):
            cross[a, b] = np.bincount(client, weights=v[:, a] * v[:, b], minlength=nc)
    ther = None
    if therapist is not None:
        ther = np.zeros(nc, dtype=int)
        ther[client] = therapist
    return NestedLMM.from_client_sums(
        cross,
        p=X.shape[1],
        x_center=rows.x_center,
        x_scale=rows.x_scale,
        y_center=rows.y_center,
        z_scale=rows.z_scale,
        client_labels=np.arange(nc),
        therapist_codes=ther,
    )


@pytest.mark.parametrize("n_clients", [300, 9000])  # 9000: the pilot runs on a client subset
def test_from_client_sums_is_the_same_model(n_clients):
    rng = np.random.default_rng(16)
    nt = max(n_clients // 30, 3)
    ther_of = rng.integers(0, nt, n_clients)
    m = rng.integers(2, 12, n_clients)
    client = np.repeat(np.arange(n_clients), m)
    t = np.concatenate([np.arange(k) for k in m]).astype(float)
    y = (
        3
        + 0.1 * t
        + rng.normal(0, 0.5, n_clients)[client]
        + rng.normal(0, 0.05, n_clients)[client] * t
        + rng.normal(0, 0.3, nt)[ther_of[client]]
        + rng.normal(0, 0.6, t.size)
    )
    X = np.column_stack([np.ones_like(t), t])
    rows = NestedLMM(y, X, X, client, ther_of[client])
    sums = _sums_model(rows, y, X, client, ther_of[client])
    for theta in ([1.0, 0.1, 0.2, 0.5], [0.3, -0.05, 0.01, 0.0]):
        assert sums.deviance(theta) == pytest.approx(rows.deviance(theta), rel=1e-12)
    f_rows, f_sums = rows.fit(), sums.fit()
    assert f_sums.deviance == pytest.approx(f_rows.deviance, rel=1e-12)
    np.testing.assert_allclose(f_sums.beta, f_rows.beta, rtol=1e-8)
    np.testing.assert_allclose(f_sums.theta, f_rows.theta, atol=1e-6)
    at = sums.evaluate(f_rows.theta)
    np.testing.assert_allclose(at.beta, f_rows.beta, rtol=1e-10)
    np.testing.assert_allclose(at.vcov, f_rows.vcov, rtol=1e-10)
    with pytest.raises(EngineError, match="need rows"):
        sums.fitted(f_sums)
