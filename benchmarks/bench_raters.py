"""Benchmark: clustered rater agreement with 1,000 cluster-bootstrap replicates (issue 16).

Not a test. For 2,000 / 20,000 / 100,000 clients (``simulate_study(..., output="scores")``,
client- and therapist-rated alliance of the same sessions, ~10 pairs a client) it times, on the
same data in the same run:

* ``rater_agreement(clustered=True, n_boot=1000)`` on the default path (``path="sums"``: the
  REML pair model from per-client sums, every replicate as client weights, all fitted at once),
  CPU and wall time, and the peak of traced allocations (``tracemalloc``) in a second call;
* the previous path (``path="refit"``: the engine refitted once per replicate): the point fit
  and the first ``--refits`` replicates (default 5) are timed and the replicates' time is
  extrapolated linearly to 1,000 (each refit costs the same O(clients)); up to
  ``--full-refit-max`` clients (default 2,000) the whole refit path runs instead.

It checks that the refitted replicates equal the new path's (same draws) to 1e-6 relative and,
where the whole refit path ran, that every estimate and interval agrees to 1e-6; prints a table
and writes ``benchmarks/results/raters.json``.

Usage::

    .venv/bin/python benchmarks/bench_raters.py [--sizes 2000 20000 100000] [--refits 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import alliance_lib as al  # noqa: E402
from alliance_lib import raters  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "raters.json"
N_BOOT = 1000
SEED = 1
REL = 1e-6


def make_long(n_clients: int, seed: int = 7) -> pd.DataFrame:
    """Client and therapist ratings of the same sessions, long (one row per rating)."""
    sim = al.simulate_study(
        n_clients=n_clients, n_therapists=max(n_clients // 50, 1), seed=seed, output="scores"
    )
    sim = sim.dropna(subset=["alliance", "alliance_therapist"])
    ids = sim[["client_id", "session"]]
    return pd.concat(
        [
            ids.assign(rater="client", wai=sim["alliance"].to_numpy()),
            ids.assign(rater="therapist", wai=sim["alliance_therapist"].to_numpy()),
        ],
        ignore_index=True,
    )


def timed(fn, *args, **kwargs):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c0, time.perf_counter() - t0


def bench_size(n_clients: int, refits: int, full_refit_max: int) -> dict:
    long = make_long(n_clients)
    res, cpu, wall = timed(raters.rater_agreement, long, "wai", n_boot=N_BOOT, seed=SEED)
    tracemalloc.start()
    raters.rater_agreement(long, "wai", n_boot=N_BOOT, seed=SEED)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    pairs = res.pairs
    y = pairs[list(res.raters)].to_numpy(dtype=float)
    codes = pd.factorize(pairs["client_id"], sort=True)[0]
    z = stats.norm.ppf(0.975)
    (boot, _), boot_cpu, boot_wall = timed(
        raters._cluster_bootstrap_sums, y, codes, z, N_BOOT, SEED
    )
    point, point_cpu, point_wall = timed(raters._pair_model, y, codes)
    out = {
        "n_clients": res.n_clients,
        "n_pairs": res.n_pairs,
        "n_boot": N_BOOT,
        "fit_path": res.fit_path,
        "sums_cpu_s": cpu,
        "sums_wall_s": wall,
        "sums_peak_traced_mb": peak / 2**20,
        "sums_bootstrap_cpu_s": boot_cpu,
        "engine_point_fit_cpu_s": point_cpu,
        "icc_a": float(res.icc.loc["ICC(A,1)", "icc"]),
        "icc_a_ci": [float(v) for v in res.icc.loc["ICC(A,1)", ["ci_low", "ci_high"]]],
    }
    icc_a, icc_c, comps = raters._model_iccs(point)
    out["point_max_rel_diff"] = float(
        max(
            abs(res.icc.loc["ICC(A,1)", "icc"] / icc_a - 1),
            abs(res.icc.loc["ICC(C,1)", "icc"] / icc_c - 1),
            *(
                abs(a - b) / abs(b)
                for a, b in zip(res.variance_components["variance"], comps, strict=True)
                if b != 0
            ),
        )
    )
    if n_clients <= full_refit_max:
        ref, rcpu, rwall = timed(
            raters.rater_agreement, long, "wai", n_boot=N_BOOT, seed=SEED, path="refit"
        )
        num = ["estimate", "ci_low", "ci_high"]
        a, b = res.to_frame()[num].to_numpy(), ref.to_frame()[num].to_numpy()
        out["all_numbers_max_rel_diff"] = float(
            np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))
        )
        out["refit_cpu_s"] = rcpu
        out["refit_wall_s"] = rwall
        out["refit_note"] = "whole rater_agreement(path='refit') timed"
        assert out["all_numbers_max_rel_diff"] < REL, out
    else:
        ref, rcpu, rwall = timed(
            raters._cluster_bootstrap_refit, y, codes, z, refits, SEED, point.theta
        )
        out["refit_replicates_timed"] = refits
        out["refit_cpu_s"] = point_cpu + rcpu * N_BOOT / refits
        out["refit_wall_s"] = point_wall + rwall * N_BOOT / refits
        out["refit_note"] = (
            f"engine point fit + {refits} replicate refits timed, extrapolated to {N_BOOT}"
        )
        out["replicates_max_rel_diff"] = float(
            np.max(np.abs(boot[:refits] - ref) / np.maximum(np.abs(ref), 1e-12))
        )
        assert out["replicates_max_rel_diff"] < REL, out
    out["speedup_cpu"] = out["refit_cpu_s"] / cpu
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--refits", type=int, default=5)
    parser.add_argument("--full-refit-max", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = [bench_size(n, args.refits, args.full_refit_max) for n in args.sizes]
    print(f"rater_agreement(clustered=True, n_boot={N_BOOT}): pair sums against engine refits")
    print(
        f"{'clients':>9} {'pairs':>10} {'sums CPU s':>11} {'wall s':>7} {'peak MB':>8} "
        f"{'refit CPU s':>12} {'speed-up':>9} {'max rel diff':>13}  refit timing"
    )
    for r in rows:
        diff = r.get("all_numbers_max_rel_diff", r.get("replicates_max_rel_diff"))
        print(
            f"{r['n_clients']:>9,} {r['n_pairs']:>10,} {r['sums_cpu_s']:>11.2f} "
            f"{r['sums_wall_s']:>7.2f} {r['sums_peak_traced_mb']:>8.0f} {r['refit_cpu_s']:>12.1f} "
            f"{r['speedup_cpu']:>8.0f}x {diff:>13.1e}  {r['refit_note']}"
        )
    result = {
        "benchmark": "rater_agreement clustered, 1,000 cluster-bootstrap replicates",
        "rows": rows,
        "tolerance_rel": REL,
        "load_average_1min_before": load_before[0],
        "load_average_1min_after": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "alliance_lib": al.__version__,
        "platform": platform.platform(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"written {args.out}")
    return rows


if __name__ == "__main__":
    main()
