"""Generate the simulated data sets that ``lme4_trajectories.R`` fits (fixed seeds).

Run from the repository root::

    .venv/bin/python tests/reference/make_trajectory_data.py
    Rscript tests/reference/lme4_trajectories.R

The CSV files are committed under ``tests/reference/fixtures/``; rerunning reproduces them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "fixtures"


def three_level(seed: int = 20260401) -> pd.DataFrame:
    """30 therapists x 8 clients, sessions 1-12 with intermittent missing ratings."""
    rng = np.random.default_rng(seed)
    n_th, per = 30, 8
    n_cl = n_th * per
    th = np.repeat(np.arange(n_th), per)
    experience = np.round(rng.uniform(1, 25, n_th), 1)
    ipp = np.round(rng.normal(0, 1, n_cl), 3)
    cov = np.array([[0.45**2, -0.3 * 0.45 * 0.04], [-0.3 * 0.45 * 0.04, 0.04**2]])
    u = rng.multivariate_normal([0, 0], cov, n_cl)
    v = rng.normal(0, 0.2, n_th)
    sess = np.arange(1, 13)
    cl = np.repeat(np.arange(n_cl), sess.size)
    s = np.tile(sess, n_cl).astype(float)
    tj = th[cl]
    y = (
        3.5
        + u[cl, 0]
        + v[tj]
        + (0.035 + u[cl, 1]) * s
        + 0.01 * experience[tj]
        - 0.15 * ipp[cl]
        + 0.001 * experience[tj] * s
        - 0.004 * ipp[cl] * s
        + 0.02 * experience[tj] * ipp[cl]
        - 0.0015 * (s - 6) ** 2
        + rng.normal(0, 0.3, cl.size)
    )
    keep = rng.random(cl.size) > 0.12
    return pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in cl[keep]],
            "therapist_id": [f"T{j:02d}" for j in tj[keep]],
            "session": s[keep].astype(int),
            "wai": np.round(y[keep], 4),
            "experience": experience[tj][keep],
            "ipp": ipp[cl][keep],
        }
    )


def dropout(seed: int = 20260402) -> pd.DataFrame:
    """150 clients who drop out after 2-15 sessions, some missing scores (NaN kept in the file)."""
    rng = np.random.default_rng(seed)
    n_cl = 150
    last = rng.integers(2, 16, n_cl)
    cl = np.repeat(np.arange(n_cl), last)
    s = np.concatenate([np.arange(0, k) for k in last]).astype(float)
    u = rng.multivariate_normal([0, 0], [[0.5**2, 0.004], [0.004, 0.05**2]], n_cl)
    y = 4.0 + u[cl, 0] + (0.05 + u[cl, 1]) * s + rng.normal(0, 0.35, cl.size)
    y[rng.random(cl.size) < 0.05] = np.nan
    return pd.DataFrame(
        {"client_id": [f"D{i:03d}" for i in cl], "session": s.astype(int), "wai": np.round(y, 4)}
    )


def boundary(seed: int = 20260403) -> pd.DataFrame:
    """40 clients x 6 sessions with no true slope variance (lme4 fits a singular model)."""
    rng = np.random.default_rng(seed)
    n_cl, n_s = 40, 6
    cl = np.repeat(np.arange(n_cl), n_s)
    s = np.tile(np.arange(1, n_s + 1), n_cl).astype(float)
    y = 3.8 + rng.normal(0, 0.4, n_cl)[cl] + 0.05 * s + rng.normal(0, 0.5, cl.size)
    return pd.DataFrame(
        {"client_id": [f"B{i:02d}" for i in cl], "session": s.astype(int), "wai": np.round(y, 4)}
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    three_level().to_csv(OUT / "traj_three_level.csv", index=False)
    dropout().to_csv(OUT / "traj_dropout.csv", index=False)
    boundary().to_csv(OUT / "traj_boundary.csv", index=False)


if __name__ == "__main__":
    main()
