"""Write the demo study's analysed session table (wave 3) for the lme4 reference fits.

Run from the repository root: ``.venv/bin/python tests/reference/make_demo_sessions.py``, then
``Rscript tests/reference/lme4_demo.R``. The table holds pseudonymous IDs only.
"""

from pathlib import Path

import alliance_lib as al

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    study = al.load_study(ROOT / "data" / "demo" / "study.yaml")
    sessions = al.prepare_wave(study, 3).sessions()
    out = ROOT / "tests" / "reference" / "fixtures" / "demo_sessions.csv"
    sessions.to_csv(out, index=False, float_format="%.17g", lineterminator="\n")
    print(out, len(sessions))
