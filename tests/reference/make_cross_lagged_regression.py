"""Regression fixture: the numbers of ``fit_cross_lagged`` and ``cross_lagged_section`` as they
were before the issue-16 speed work (commit a0ab212), so the faster path can be held to them.

Not an independent reference (lavaan is, see ``lavaan_cross_lagged.R``): this pins the
pre-optimisation code's own results, to 1e-8 relative, on

* the demo study (``data/demo/study.yaml``, wave 3): the section's four fits;
* simulated data with many missing-data patterns (dropout plus 4 % missed scores): 400 clients
  (every model, constraints, listwise) and 3,500 clients (past the pilot-fit threshold).

Run from the repository root: ``.venv/bin/python tests/reference/make_cross_lagged_regression.py``
(writes ``fixtures/cross_lagged_regression.json``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from alliance_lib.cross_lagged import fit_cross_lagged
from alliance_lib.sections.cross_lagged import cross_lagged_section
from alliance_lib.simulate import SimulationTruth, simulate_study
from alliance_lib.study import load_study
from alliance_lib.waves import prepare_wave

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "fixtures" / "cross_lagged_regression.json"
TRUTH = SimulationTruth(
    sd_client_slope=0.0,
    sd_outcome_slope=0.0,
    alliance_inertia=0.3,
    outcome_inertia=0.3,
    reverse_change_effect=0.012,
    dropout_alliance=0.0,
    dropout_base=-3.0,
    dropout_outcome=-0.8,
)
CASES = {
    "riclpm": {},
    "riclpm_stationary": {"constraints": "stationary"},
    "riclpm_listwise": {"missing": "listwise", "test_constraints": False},
    "mlsem": {"model": "mlsem", "test_constraints": False},
    "lcmsr": {"model": "lcmsr", "test_constraints": False},
    "riclpm_lag2": {"lag": 2, "test_constraints": False},
}


def gaps_data(n_clients: int, seed: int = 12, gaps: float = 0.04):
    """Simulated sessions 1-12 with MAR dropout and ``gaps`` of single scores missing (MCAR)."""
    df = simulate_study(
        n_therapists=max(2, n_clients // 15),
        n_clients=n_clients,
        max_sessions=12,
        output="scores",
        truth=TRUTH,
        seed=seed,
    )
    df = df[df["session"] >= 1][["client_id", "session", "alliance", "outcome"]].copy()
    rng = np.random.default_rng(seed + 1)
    for col in ("alliance", "outcome"):
        df.loc[rng.random(len(df)) < gaps, col] = np.nan
    return df.reset_index(drop=True)


def record(fit) -> dict:
    """Every number of a fit: parameters (estimate, se), to_dict(), vcov."""
    p = fit.parameters
    return {
        "estimate": p["estimate"].tolist(),
        "se": [None if not np.isfinite(v) else float(v) for v in p["se"]],
        "numbers": fit.to_dict(),
        "iterations": int(fit.raw.iterations),
    }


def main() -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    out = {"commit": commit, "simulated": {}, "demo": {}}
    for n in (400, 3500):
        df = gaps_data(n)
        cases = CASES if n < 1000 else {"riclpm": {}, "mlsem": CASES["mlsem"]}
        for name, kw in cases.items():
            out["simulated"][f"{n}/{name}"] = record(
                fit_cross_lagged(df, "alliance", "outcome", **kw)
            )
            print(n, name, flush=True)
    sec = cross_lagged_section(prepare_wave(load_study(ROOT / "data/demo/study.yaml"), 3))
    out["demo"]["numbers"] = sec.numbers
    OUT.write_text(json.dumps(out, indent=1, allow_nan=False) + "\n")
    print("written", OUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
