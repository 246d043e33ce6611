"""Write the data of the lme4 reference for alliance_lib.monitoring (expected response curves).

Run from the repository root: ``python tests/reference/make_monitoring_data.py``, then
``Rscript tests/reference/lme4_monitoring.R``.
"""

from pathlib import Path

import alliance_lib as al

FIXTURES = Path(__file__).parent / "fixtures"

if __name__ == "__main__":
    df = al.simulate_study(
        n_therapists=8, n_clients=80, seed=15, output="scores", dropout=True, response={}
    )
    df["outcome"] = df["outcome"].round(3)
    cols = ["client_id", "therapist_id", "session", "outcome"]
    df[cols].to_csv(FIXTURES / "monitoring_etr.csv", index=False, lineterminator="\n")
