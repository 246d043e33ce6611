"""Benchmark: `read_table` against plain `pandas.read_csv` on a realistic wave file (issue 6).

Run with ``python benchmarks/bench_reading.py`` (``make bench``). Simulates a 20,000-client study
(``simulate_study(n_clients=20000, n_therapists=400, seed=7)``: about 416,000 rows x 62 columns of
ids, rater, date, WAI-SR and OQ-45.2 items), writes it as CSV in a temporary folder, and times
``alliance_lib.read_table`` and ``pandas.read_csv`` on the same file in the same run (best and
median of ``--repeats`` alternating runs), printing the ratio. ``read_table`` does more than
``read_csv`` (sniffing, encoding checks, file row numbers, blank rows, ID and text handling),
so the target is a ratio of at most about 2. Writes ``benchmarks/results/reading.json``. This is
a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al

RESULTS = Path(__file__).parent / "results" / "reading.json"
TARGET_RATIO = 2.0


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--therapists", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        path = Path(tmp) / "wave1.csv"
        data = al.simulate_study(n_clients=args.clients, n_therapists=args.therapists, seed=7)
        data.to_csv(path, index=False)
        size_mb = path.stat().st_size / 2**20
        load_before = os.getloadavg()
        ours, plain = [], []
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            plain.append(_time(lambda: pd.read_csv(path)))
            ours.append(_time(lambda: al.read_table(path)))
        df = al.read_table(path)
        ref = pd.read_csv(path)
    # the two agree on every numeric cell (read_table adds the file row index and typed IDs)
    numeric = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c])]
    np.testing.assert_array_equal(
        df[numeric].to_numpy(dtype=float), ref[numeric].to_numpy(dtype=float)
    )
    assert df.index[0] == 2 and len(df) == len(ref)

    best_ours, best_plain = min(ours), min(plain)
    result = {
        "benchmark": "read_table vs pandas.read_csv",
        "n_rows": len(df),
        "n_columns": df.shape[1],
        "file_mb": round(size_mb, 1),
        "repeats": args.repeats,
        "read_table_s_best": best_ours,
        "read_table_s_median": statistics.median(ours),
        "read_csv_s_best": best_plain,
        "read_csv_s_median": statistics.median(plain),
        "ratio_best": best_ours / best_plain,
        "ratio_median": statistics.median(ours) / statistics.median(plain),
        "target_ratio": TARGET_RATIO,
        "load_average_1min_before": load_before[0],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "alliance_lib": al.__version__,
        "platform": platform.platform(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(
        f"alliance_lib reading benchmark: {len(df):,} rows x {df.shape[1]} columns "
        f"({size_mb:.0f} MB CSV)"
    )
    print(f"  read_table       best {best_ours:.3f} s   (median {statistics.median(ours):.3f} s)")
    print(f"  pandas.read_csv  best {best_plain:.3f} s   (median {statistics.median(plain):.3f} s)")
    print(
        f"  ratio read_table / read_csv: {result['ratio_best']:.2f} (best), "
        f"{result['ratio_median']:.2f} (median); target <= {TARGET_RATIO:g}"
    )
    print(f"  load average before {load_before[0]:.2f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"  written {args.out}")
    return result


if __name__ == "__main__":
    main()
