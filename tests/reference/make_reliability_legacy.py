"""Write tests/reference/fixtures/reliability_legacy.json: the reliability tables computed by
the implementation of commit cacbbd7 (before the sufficient-statistics rewrite of issue 16).

Run from the repository root: ``.venv/bin/python tests/reference/make_reliability_legacy.py``
(needs git). The tables: the report's ``reliability_table`` / ``multilevel_reliability_table``
on the demo study (wave 3), computed as the old ``sections/common.py`` did (a ``groupby("rater")``
copy, then ``reliability(..., administration="first")`` and ``multilevel_reliability``), and
``reliability`` / ``multilevel_reliability`` with ``by="rater"`` on a simulated study
(``simulate_study(n_therapists=10, n_clients=400, seed=3)``: unbalanced clusters, missing-item
codes, invalid values omitted) for WAI-SR and OQ-45.2.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al
from alliance_lib.sections import common

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "cacbbd7"
OUT = Path(__file__).parent / "fixtures" / "reliability_legacy.json"


def legacy():
    """The reliability module of :data:`COMMIT` (the implementation replaced), loaded from git;
    ``benchmarks/bench_reliability.py`` times it."""
    src = subprocess.run(
        ["git", "show", f"{COMMIT}:alliance_lib/reliability.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "legacy_reliability.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("legacy_reliability", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["legacy_reliability"] = mod
    spec.loader.exec_module(mod)
    return mod


def legacy_tables(wave, old) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables as the old ``common.py`` computed them (same row order and columns)."""
    insts = [common.alliance_instrument(wave)]
    if common.outcome_instrument(wave):
        insts.append(common.outcome_instrument(wave))
    single, multi = [], []
    for inst in insts:
        if not set(inst.columns) <= set(wave.scored.columns):
            continue
        keep = [c for c in ("client_id", "therapist_id", "session", "rater") if c in wave.scored]
        rows = wave.scored[keep + [c for c in inst.columns if c not in keep]]
        for rater, g in rows.groupby("rater", sort=True):
            if not g[list(inst.columns)].notna().any(axis=None):
                continue
            r = old.reliability(g, inst, **common.COLUMNS, administration="first")
            r.insert(0, "rater", rater)
            r.insert(0, "instrument", inst.id)
            single.append(r)
            m = old.multilevel_reliability(g, inst, client="client_id")
            m.insert(0, "rater", rater)
            m.insert(0, "instrument", inst.id)
            multi.append(m)
    return pd.concat(single, ignore_index=True), pd.concat(multi, ignore_index=True)


def records(table):
    out = []
    for rec in table.to_dict(orient="records"):
        row = {}
        for k, v in rec.items():
            if isinstance(v, (bool, np.bool_)):
                row[k] = bool(v)
            elif isinstance(v, (int, float, np.integer, np.floating)):
                row[k] = None if v != v else float(v)
            elif v is None or v is getattr(__import__("pandas"), "NA", None):
                row[k] = None
            else:
                row[k] = str(v)
        out.append(row)
    return out


def main():
    old = legacy()
    warnings.simplefilter("ignore")
    wave = al.prepare_wave(al.load_study(ROOT / "data" / "demo" / "study.yaml"), 3)
    single, multi = legacy_tables(wave, old)
    out = {
        "commit": COMMIT,
        "demo_single": records(single),
        "demo_multilevel": records(multi),
    }
    df = al.simulate_study(n_therapists=10, n_clients=400, seed=3)
    kw = dict(by="rater", missing_codes=(-99, 999), errors="omit")
    for inst in ("wai-sr", "oq-45.2"):
        out[f"sim_{inst}_single"] = records(old.reliability(df, inst, **kw))
        out[f"sim_{inst}_multilevel"] = records(old.multilevel_reliability(df, inst, **kw))
    OUT.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
