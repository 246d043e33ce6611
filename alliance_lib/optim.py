"""Convergence by optimality, not by an optimiser's flag.

An optimiser's ``success`` flag only says why it stopped (a small relative change of the
objective, an iteration limit, a line search that failed); it is not a test that the point is a
minimum. Every fit in alliance_lib that uses a numerical optimiser decides convergence with the
first-order (Karush-Kuhn-Tucker) conditions of its bounded problem instead, and keeps the
optimiser's own message for diagnosis:

* :func:`projected_gradient` sets to zero the gradient components that point out of the box at
  an active bound (there a positive multiplier holds the point on the bound);
* :func:`kkt_satisfied` accepts a point when every remaining component is below a tolerance.

The one-factor omega (:mod:`alliance_lib.reliability`) applies the test to the raw gradient of
its discrepancy (``KKT_TOL``); the mixed-model engine (:mod:`alliance_lib.engine`) applies it to
lme4's Hessian-scaled gradient of the profiled deviance (``GRADIENT_TOL`` 2e-3, lme4's
``check.conv.grad``), on the components left free by :func:`free_components`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KKT_TOL", "free_components", "kkt_satisfied", "projected_gradient"]

#: Default largest projected-gradient component accepted as a stationary point.
KKT_TOL = 1e-5


def _active(x: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Components sitting on a finite bound (to rounding relative to the bound's size)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(bound) & (np.abs(x - bound) <= 1e-9 * np.maximum(1.0, np.abs(bound)))


def projected_gradient(x, grad, lower=-np.inf, upper=np.inf) -> np.ndarray:
    """Gradient of a box-constrained minimisation with the outward components at bounds removed.

    Parameters
    ----------
    x, grad : array
        Point and gradient of the objective there.
    lower, upper : float or array
        Bounds (``-inf`` / ``inf`` for none).

    Returns
    -------
    ndarray
        ``grad`` with ``min(g, 0)`` kept where ``x`` is at its lower bound (a positive component
        there would leave the box) and ``max(g, 0)`` where it is at its upper bound.

    Notes
    -----
    At a local minimum of ``f`` over ``lower <= x <= upper`` the projected gradient is zero
    (the KKT conditions with non-negative multipliers for the active bounds); see Nocedal &
    Wright (2006), *Numerical Optimization*, ch. 12 and 16.7.

    Examples
    --------
    >>> projected_gradient([0.0, 0.5, 1.0], [3.0, 1e-9, -2.0], 0.0, 1.0).tolist()
    [0.0, 1e-09, 0.0]
    >>> projected_gradient([0.0], [-3.0], 0.0).tolist()  # pointing into the box: not optimal
    [-3.0]
    """
    x = np.asarray(x, dtype=float)
    g = np.asarray(grad, dtype=float)
    lo = np.broadcast_to(np.asarray(lower, dtype=float), x.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=float), x.shape)
    out = np.where(_active(x, lo), np.minimum(g, 0.0), g)
    return np.where(_active(x, hi), np.maximum(out, 0.0), out)


def free_components(x, grad, lower=-np.inf, upper=np.inf) -> np.ndarray:
    """Indices of the components not held on a bound by the KKT conditions.

    A component is held (and excluded) when it sits on a bound and its gradient points out of
    the box; every other component must have a zero gradient at a minimum.

    Examples
    --------
    >>> free_components([0.0, 0.3, 0.0], [2.0, 0.1, -1.0], 0.0).tolist()
    [1, 2]
    """
    x = np.asarray(x, dtype=float)
    g = np.asarray(grad, dtype=float)
    lo = np.broadcast_to(np.asarray(lower, dtype=float), x.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=float), x.shape)
    held = (_active(x, lo) & (g >= 0)) | (_active(x, hi) & (g <= 0))
    return np.flatnonzero(~held)


def kkt_satisfied(x, grad, lower=-np.inf, upper=np.inf, *, tol: float = KKT_TOL) -> bool:
    """Whether ``x`` is a first-order stationary point of the bounded problem.

    Parameters
    ----------
    x, grad : array
        Point and gradient there.
    lower, upper : float or array
        Box bounds.
    tol : float, default :data:`KKT_TOL`
        Largest absolute projected-gradient component accepted.

    Returns
    -------
    bool
        True when the gradient is finite and ``max |projected_gradient| < tol``.

    Examples
    --------
    >>> kkt_satisfied([0.005, 0.5], [2.0, 1e-8], 0.005, 1.0)
    True
    >>> kkt_satisfied([0.005, 0.5], [-2.0, 1e-8], 0.005, 1.0)
    False
    """
    g = np.asarray(grad, dtype=float)
    if not np.all(np.isfinite(g)):
        return False
    pg = projected_gradient(x, g, lower, upper)
    return bool(pg.size == 0 or np.max(np.abs(pg)) < tol)
