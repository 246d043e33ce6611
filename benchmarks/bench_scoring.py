"""Benchmark: validate + score 1,000,000 WAI-SR administrations (issue 3 part 8; issue 6).

Run with ``python benchmarks/bench_scoring.py`` (``make bench``). Prints the timings and the
speed-up over a naive row-wise pandas ``DataFrame.apply`` scorer timed in the same run, and
writes ``benchmarks/results/scoring.json``. The naive scorer is timed on a random subsample and
extrapolated linearly to the full table (row-wise apply cost is linear in the number of rows);
the output says so. Issue 6 sets the target at 0.3 s for validation + scoring on a 2-core
machine; the wall time depends on the machine's load, so the CPU (process) time is printed too.
``score(v, ...)`` is handed the item block that ``validate`` has checked and does not check the
cells again (see the Notes of ``alliance_lib.score``). This is a benchmark, not a test.

The data are synthetic: 62,500 clients x 16 sessions, items 1-5, with 0.5% of the item cells set
to the missing code -99 and 100 rows holding an out-of-range answer (quarantined).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al

RESULTS = Path(__file__).parent / "results" / "scoring.json"
GOAL, TASK, BOND = (4, 6, 8, 11), (1, 2, 10, 12), (3, 5, 7, 9)


def make_table(n_rows: int, seed: int = 20261126) -> pd.DataFrame:
    """Synthetic long table of WAI-SR administrations (canonical columns, file-row index)."""
    rng = np.random.default_rng(seed)
    sessions = 16
    df = pd.DataFrame(
        {
            "client_id": pd.array(
                np.char.zfill((np.arange(n_rows) // sessions).astype(str), 6), dtype="str"
            ),
            "session": (np.arange(n_rows) % sessions).astype(np.int64),
            "rater": pd.array(np.full(n_rows, "client"), dtype="str"),
        }
    )
    person = rng.normal(0, 0.8, size=(n_rows, 1))
    items = np.clip(np.rint(3.6 + person + rng.normal(0, 0.7, size=(n_rows, 12))), 1, 5)
    items[rng.random(items.shape) < 0.005] = -99
    bad = rng.choice(n_rows, size=min(100, n_rows), replace=False)
    items[bad, 0] = 7
    for j in range(12):
        df[f"wai_sr_{j + 1}"] = items[:, j]
    df.index = pd.RangeIndex(2, n_rows + 2, name="row")
    return df


def naive_row(row: pd.Series) -> pd.Series:
    """A plain row-wise scorer (same rules as al.score), as a researcher might write it."""
    values = []
    for i in range(1, 13):
        v = row[f"wai_sr_{i}"]
        values.append(np.nan if v == -99 else v)
    out = {}
    for name, items in (("goal", GOAL), ("task", TASK), ("bond", BOND)):
        answered = [values[i - 1] for i in items if not np.isnan(values[i - 1])]
        out[f"wai_sr_{name}"] = sum(answered) / len(answered) if len(answered) >= 3 else np.nan
    answered = [v for v in values if not np.isnan(v)]
    out["wai_sr_total"] = sum(answered) / len(answered) if len(answered) >= 10 else np.nan
    return pd.Series(out)


def fast(df: pd.DataFrame) -> tuple[float, float, float, pd.DataFrame, al.Validated]:
    """Wall-clock seconds of validate and score, CPU seconds of both, and the results."""
    c0, t0 = time.process_time(), time.perf_counter()
    v = al.validate(df, "wai-sr", missing_codes=(-99,))
    t1 = time.perf_counter()
    scored = al.score(v, "wai-sr")  # the checked block, handed over explicitly
    t2, c2 = time.perf_counter(), time.process_time()
    return t1 - t0, t2 - t1, c2 - c0, scored, v


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    df = make_table(args.rows)
    load_before = os.getloadavg()
    fast(df.iloc[:1000])  # warm-up (imports, caches)
    runs = [fast(df)[:3] for _ in range(args.repeats)]
    validate_s = [r[0] for r in runs]
    score_s = [r[1] for r in runs]
    total_s = [r[0] + r[1] for r in runs]
    cpu_s = [r[2] for r in runs]
    *_, scored, v = fast(df)

    sub = df.sample(n=min(args.naive_rows, args.rows), random_state=1)
    t0 = time.perf_counter()
    naive = sub.apply(naive_row, axis=1)
    naive_sub_s = time.perf_counter() - t0
    naive_full_s = naive_sub_s * args.rows / len(sub)

    # the two scorers agree on the subsample's clean rows
    common = naive.index.intersection(scored.index)
    cols = ["wai_sr_total", "wai_sr_goal", "wai_sr_task", "wai_sr_bond"]
    np.testing.assert_allclose(
        scored.loc[common, cols].to_numpy(), naive.loc[common, cols].to_numpy(), rtol=1e-12
    )

    best, median = min(total_s), statistics.median(total_s)
    result = {
        "benchmark": "validate + score WAI-SR",
        "n_rows": args.rows,
        "n_clean": v.n_clean,
        "n_quarantined": v.n_quarantined,
        "missing_code_cells": int(v.missing_codes.sum()),
        "repeats": args.repeats,
        "validate_s_best": min(validate_s),
        "score_s_best": min(score_s),
        "total_s_best": best,
        "total_s_median": median,
        "total_cpu_s_best": min(cpu_s),
        "naive_apply_rows_timed": len(sub),
        "naive_apply_s_subsample": naive_sub_s,
        "naive_apply_s_extrapolated": naive_full_s,
        "naive_apply_note": "row-wise DataFrame.apply timed on a random subsample and "
        "extrapolated linearly to n_rows",
        "speedup_vs_naive_best": naive_full_s / best,
        "target_s": 0.3,
        "issue_limit_s": 1.0,
        "load_average_1min_before": load_before[0],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "alliance_lib": al.__version__,
        "platform": platform.platform(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(f"alliance_lib scoring benchmark: {args.rows:,} WAI-SR administrations")
    print(
        f"  validate  best {min(validate_s):.3f} s   (median {statistics.median(validate_s):.3f} s)"
    )
    print(f"  score     best {min(score_s):.3f} s   (median {statistics.median(score_s):.3f} s)")
    print(f"  total     best {best:.3f} s   (median {median:.3f} s; target 0.3 s, limit 1 s)")
    print(f"  CPU time  best {min(cpu_s):.3f} s   (process time of validate + score)")
    print(
        f"  naive row-wise apply: {naive_sub_s:.2f} s for {len(sub):,} rows -> "
        f"{naive_full_s:.1f} s extrapolated to {args.rows:,} rows"
    )
    print(f"  speed-up over naive apply: {naive_full_s / best:,.0f}x (best) ")
    print(
        f"  {v.n_clean:,} clean, {v.n_quarantined:,} quarantined, "
        f"{int(v.missing_codes.sum()):,} missing-code cells; load average before "
        f"{load_before[0]:.2f} on {os.cpu_count()} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"  written {args.out}")
    return result


if __name__ == "__main__":
    main()
