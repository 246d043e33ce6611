"""Write WAI-SR item tables for the reliability references (psych::omega, lavaan two-level CFA).

Run from the repository root: ``.venv/bin/python tests/reference/make_reliability_data.py``, then
``Rscript tests/reference/reliability_reference.R``. Data are simulated (alliance_lib.simulate_study,
seed 2026): client-rated WAI-SR items whose subscales share a per-session facet (a bifactor
structure). Only complete, in-range item rows are written; IDs are simulated.

The two-level table is simulated here directly (numpy, seed 2027), because simulate_study's
items have no client-level item residuals, where a two-level CFA then gives negative
between-level residual variances (a boundary case lavaan leaves unbounded): 250 clients with 2 to
8 sessions, a between-client factor with loadings 0.3-0.5 and residual SDs 0.1-0.2, and a
within-client factor with loadings 0.4-0.7 and residual SDs 0.4-0.6 (values rounded to 0.01).
"""

from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "reference" / "fixtures"


def tables():
    df = al.simulate_study(n_therapists=20, n_clients=300, max_sessions=8, seed=2026)
    inst = al.get_instrument("wai-sr")
    cols = list(inst.columns)
    df = df[df["rater"] == "client"]
    items = df[cols].apply(lambda c: c.where(c.between(1, 5)))
    keep = items.notna().all(axis=1).to_numpy()
    sessions = df.loc[keep, ["client_id", "session"]].join(items[keep].astype(int))
    sessions = sessions.sort_values(["client_id", "session"], kind="stable")
    first = sessions.groupby("client_id", sort=False).head(1)
    return first, sessions


def two_level():
    rng = np.random.default_rng(2027)
    n_clients, p = 250, 12
    sizes = rng.integers(2, 9, n_clients)
    client = np.repeat(np.arange(n_clients), sizes)
    session = np.concatenate([np.arange(1, k + 1) for k in sizes])
    lb, sb = rng.uniform(0.3, 0.5, p), rng.uniform(0.1, 0.2, p)
    lw, sw = rng.uniform(0.4, 0.7, p), rng.uniform(0.4, 0.6, p)
    between = rng.normal(size=(n_clients, 1)) * lb + rng.normal(size=(n_clients, p)) * sb
    within = rng.normal(size=(client.size, 1)) * lw + rng.normal(size=(client.size, p)) * sw
    y = np.round(3.5 + between[client] + within, 2)
    out = pd.DataFrame(y, columns=[f"wai_sr_{k}" for k in range(1, p + 1)])
    out.insert(0, "session", session)
    out.insert(0, "client_id", [f"ML{c:04d}" for c in client])
    return out


if __name__ == "__main__":
    first, _ = tables()
    first.to_csv(OUT / "wai_first_admin.csv", index=False, lineterminator="\n")
    sessions = two_level()
    sessions.to_csv(OUT / "wai_two_level.csv", index=False, lineterminator="\n")
    print(len(first), len(sessions))
