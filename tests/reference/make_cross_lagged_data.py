"""Data sets for the lavaan cross-lagged fixtures (run from the repository root).

Writes ``tests/reference/fixtures/cross_lagged_<name>.csv`` (long: client_id, session, alliance,
outcome; sessions 1-8 as waves). ``complete``: no dropout, every session observed; ``missing``:
MAR dropout on the observed outcome plus 5 % of single scores blanked at random. Both come from
``simulate_study`` with inertia 0.3 in both series, a reverse path and client slopes (so the
LCM-SR has slope variance to estimate). Then run ``Rscript tests/reference/lavaan_cross_lagged.R``.
"""

from pathlib import Path

import numpy as np

from alliance_lib.simulate import SimulationTruth, simulate_study

OUT = Path(__file__).resolve().parent / "fixtures"
TRUTH = SimulationTruth(
    alliance_inertia=0.3,
    outcome_inertia=0.3,
    reverse_change_effect=0.01,
    dropout_alliance=0.0,
    dropout_base=-2.4,
    dropout_outcome=-0.8,
)


def make(name: str, *, dropout: bool, gaps: float, seed: int) -> None:
    df = simulate_study(
        n_clients=300, max_sessions=8, output="scores", truth=TRUTH, seed=seed, dropout=dropout
    )
    df = df[df["session"] >= 1][["client_id", "session", "alliance", "outcome"]].copy()
    rng = np.random.default_rng(seed + 1)
    for col in ("alliance", "outcome"):
        df.loc[rng.random(len(df)) < gaps, col] = np.nan
    df.to_csv(OUT / f"cross_lagged_{name}.csv", index=False, float_format="%.10g")


if __name__ == "__main__":
    make("complete", dropout=False, gaps=0.0, seed=101)
    make("missing", dropout=True, gaps=0.05, seed=202)
    from alliance_lib.cross_lagged import cross_lagged_syntax

    # the syntax alliance_lib writes for the variants the R script does not build itself
    for c in ("none", "stationary"):
        (OUT / f"cross_lagged_syntax_riclpm_{c}.lav").write_text(
            cross_lagged_syntax(8, model="riclpm", constraints=c) + "\n", encoding="utf-8"
        )
    (OUT / "cross_lagged_syntax_riclpm_lag2.lav").write_text(
        cross_lagged_syntax(8, model="riclpm", lag=2) + "\n", encoding="utf-8"
    )
    (OUT / "cross_lagged_syntax_mlsem_none.lav").write_text(
        cross_lagged_syntax(8, model="mlsem", constraints="none") + "\n", encoding="utf-8"
    )
