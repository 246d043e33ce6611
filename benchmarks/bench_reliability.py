"""Benchmark: the report's reliability tables at 100,000 clients, against the previous code.

Run with ``python benchmarks/bench_reliability.py`` (``make bench``; default 100,000 clients
and 2,000 therapists, about 2.1 million rows, a few minutes) or ``--clients 5000 --therapists
100`` for a quick run. Simulates a study with ``simulate_study`` (WAI-SR client and therapist
items, OQ-45.2 items), writes it as one CSV wave file with its study YAML, prepares the wave
once, and then times on that wave, in the same run:

* ``sections.common.reliability_table`` (alpha, one-factor omega, Schmid-Leiman omega at each
  client's first administration) and ``multilevel_reliability_table`` (two-level CFA omega
  within/between clients) as they are now: sufficient statistics, each item column read once
  at the rater's row positions;
* the same two tables computed by the implementation of commit ``cacbbd7`` (``git show
  cacbbd7:alliance_lib/reliability.py``, loaded as a module, called exactly as the old
  ``common.py`` called it: a ``groupby("rater")`` copy per rater, ``reliability`` and
  ``multilevel_reliability`` on each group);

and checks that both give the same numbers (largest relative difference per table). Each step
records CPU time (process time; the machine is shared, so this is the steadier number), wall
time and the peak growth of resident memory (sampled every 10 ms). Writes
``benchmarks/results/reliability.json``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.sections import common

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "reference"))
from bench_report import measure, prepare_simulated, write_simulated_study  # noqa: E402
from make_reliability_legacy import COMMIT as LEGACY_COMMIT  # noqa: E402
from make_reliability_legacy import legacy as legacy_module  # noqa: E402
from make_reliability_legacy import legacy_tables  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "reliability.json"


def max_rel_diff(new: pd.DataFrame, old: pd.DataFrame) -> dict[str, float]:
    """Largest relative difference per numeric column (NaN patterns must agree)."""
    out = {}
    for col in old.columns:
        if col not in new.columns or not pd.api.types.is_numeric_dtype(old[col]):
            continue
        if pd.api.types.is_bool_dtype(old[col]):
            out[col] = float((new[col].to_numpy() != old[col].to_numpy()).sum())
            continue
        a = new[col].astype(float).to_numpy()
        b = old[col].astype(float).to_numpy()
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            out[col] = float("inf")
            continue
        ok = ~np.isnan(b)
        rel = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)
        out[col] = float(rel.max()) if rel.size else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--therapists", type=int, default=2_000)
    parser.add_argument("--no-legacy", action="store_true", help="skip the old implementation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    mib = 2**20
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-rel-") as tmp:
        folder = Path(tmp)
        n_rows = write_simulated_study(folder, args.clients, args.therapists)
        wave = prepare_simulated(folder)
    steps = []

    def add(name, wall, cpu, peak, grow):  # (bench_report.measure's figures)
        steps.append({"step": name, "wall_s": wall, "cpu_s": cpu, "rss_growth_mib": grow / mib})
        print(f"{name:<44} {wall:8.2f} {cpu:8.2f} {grow / mib:9.0f}", flush=True)

    print(f"reliability tables, {args.clients:,} clients ({n_rows:,} rows)")
    print(f"{'step':<44} {'wall s':>8} {'cpu s':>8} {'+MiB':>9}")
    single, *m = measure(lambda: common.reliability_table(wave)[0])
    add("reliability_table (now)", *m)
    multi, *m = measure(lambda: common.multilevel_reliability_table(wave))
    add("multilevel_reliability_table (now)", *m)
    diffs = {}
    if not args.no_legacy:
        old = legacy_module()
        (old_single, old_multi), *m = measure(lambda: legacy_tables(wave, old))
        add(f"both tables, implementation of {LEGACY_COMMIT}", *m)
        diffs = {
            "single": max_rel_diff(single[old_single.columns], old_single),
            "multilevel": max_rel_diff(multi[old_multi.columns], old_multi),
        }
        for k, v in diffs.items():
            worst = max(v.values())
            col = max(v, key=v.get)
            print(f"largest relative difference, {k}: {worst:.2e} ({col})")
        now = sum(s["cpu_s"] for s in steps[:2])
        print(f"CPU speed-up over {LEGACY_COMMIT}: {steps[2]['cpu_s'] / now:.1f}x")
    record = {
        "benchmark": "reliability",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "clients": args.clients,
        "therapists": args.therapists,
        "rows": n_rows,
        "steps": steps,
        "max_relative_difference": diffs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
