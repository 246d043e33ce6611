"""Benchmark: a partitioned Parquet wave on a local Dask cluster (issue 16, item 4).

Run with ``python benchmarks/bench_distributed.py`` (``make bench``; default 100,000 clients x
20 sessions = 2 million rows in 10 parts, where the in-memory path is timed too and the
estimates compared) or ``--clients 1000000 --parts 40`` (20 million rows; in-memory comparison
skipped with ``--no-memory``). The data are simulated part by part with NumPy (a linear growth
model of the client-rated WAI-SR, 12 items on 1-5, clients in therapists) and written as one
Parquet file per part, so no step ever holds all rows.

Measured: writing the parts; :func:`alliance_lib.distributed.prepare_dataset` (read, validate,
score per partition, counts); :func:`~alliance_lib.distributed.growth_sums` (two passes, the
per-client table back); the three-level fit from the sums; the in-memory path (read all parts,
validate + score, ``fit_trajectory``) at the same size; wall time, CPU time of this process (the
workers are threads here), peak RSS, load average. Writes ``benchmarks/results/distributed.json``.
This is a benchmark, not a test. Needs the optional extra ``distributed``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_report import RssPeak  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "distributed.json"


def simulate_part(k: int, n_clients: int, n_sessions: int, n_therapists: int, seed: int):
    """One part: clients k*n .. (k+1)*n - 1, every client n_sessions client-rated sessions."""
    rng = np.random.default_rng([seed, k])
    ids = np.arange(k * n_clients, (k + 1) * n_clients)
    ther = rng.integers(0, n_therapists, n_clients)
    u0 = rng.normal(0, 0.45, n_clients)
    u1 = rng.normal(0, 0.03, n_clients)
    v = rng.normal(0, 0.15, n_therapists)
    c = np.repeat(np.arange(n_clients), n_sessions)
    s = np.tile(np.arange(1, n_sessions + 1), n_clients)
    eta = 3.6 + v[ther[c]] + u0[c] + (0.04 + u1[c]) * (s - 1)
    items = np.clip(np.rint(eta[:, None] + rng.normal(0, 0.7, (c.size, 12))), 1, 5).astype("int8")
    df = pd.DataFrame(
        {
            "client_id": pd.array([f"CL{i:07d}" for i in ids], dtype="str")[c],
            "therapist_id": pd.array([f"TH{j:05d}" for j in range(n_therapists)], dtype="str")[
                ther[c]
            ],
            "session": s.astype("int16"),
            "rater": "client",
        }
    )
    for i in range(12):
        df[f"wai_sr_{i + 1}"] = items[:, i]
    return df


def timed(fn):
    with RssPeak() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mib": round(mem.peak / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--therapists", type=int, default=2_000)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory comparison")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        import distributed
    except ImportError:
        print("bench_distributed: Dask is not installed (pip install '.[distributed]'); skipped")
        return 0
    import alliance_lib as al
    from alliance_lib import distributed as dist

    load_before = os.getloadavg()
    per_part = args.clients // args.parts
    n_rows = per_part * args.parts * args.sessions
    steps = {}
    with tempfile.TemporaryDirectory(prefix="alliance-dask-") as tmp:
        folder = Path(tmp) / "wave"
        folder.mkdir()

        def write():
            for k in range(args.parts):
                part = simulate_part(k, per_part, args.sessions, args.therapists, seed=16)
                part.to_parquet(folder / f"part-{k:04d}.parquet", index=False)

        _, steps["simulate_and_write_parts"] = timed(write)
        with (
            distributed.LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads,
                processes=False,
                dashboard_address=None,
            ) as lc,
            distributed.Client(lc),
        ):
            (scored, counts), steps["dask_prepare_dataset"] = timed(
                lambda: dist.prepare_dataset(folder, "wai-sr")
            )
            sums, steps["dask_growth_sums"] = timed(
                lambda: dist.growth_sums(scored, "wai_sr_total", therapist="therapist_id")
            )
        fit, steps["fit_from_sums"] = timed(lambda: dist.fit_growth_from_sums(sums))
        mem_fit = None
        if not args.no_memory:

            def in_memory():
                raw = pd.concat(
                    [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))],
                    ignore_index=True,
                )
                scored, _ = dist.score_partition(raw, "wai-sr")
                del raw
                return al.fit_trajectory(scored, "wai_sr_total", therapist="therapist_id")

            mem_fit, steps["in_memory_read_score_fit"] = timed(in_memory)
    c = counts.set_index("problem")["n_rows"]
    result = {
        "clients": per_part * args.parts,
        "rows": n_rows,
        "parts": args.parts,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "rows_clean": int(c["rows_clean"]),
        "client_table_rows": len(sums.table),
        "client_table_mib": round(sums.table.memory_usage(deep=True).sum() / 2**20, 1),
        "steps": steps,
        "dask_total_s": round(
            sum(steps[k]["wall_s"] for k in ("dask_prepare_dataset", "dask_growth_sums"))
            + steps["fit_from_sums"]["wall_s"],
            3,
        ),
        "fixed": fit.fixed.round(8).to_dict(),
        "variances": {
            "therapist": fit.efit.var_therapist,
            "residual": fit.efit.sigma**2,
            "client": fit.efit.cov_client.tolist(),
        },
        "max_abs_diff_vs_in_memory": None
        if mem_fit is None
        else {
            "beta": float(np.max(np.abs(fit.efit.beta - mem_fit._efit.beta))),
            "theta": float(np.max(np.abs(fit.efit.theta - mem_fit._efit.theta))),
            "deviance": float(abs(fit.efit.deviance - mem_fit._efit.deviance)),
            "deviance_relative": float(
                abs(fit.efit.deviance - mem_fit._efit.deviance) / abs(mem_fit._efit.deviance)
            ),
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "versions": {
            "dask": __import__("dask").__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "machine": platform.platform(),
        "when_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"Dask wave: {result['clients']:,} clients, {n_rows:,} rows in {args.parts} parts; "
        f"{args.workers} worker(s) x {args.threads} threads; load {load_before[0]:.2f}"
    )
    print(f"{'step':<34}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}")
    for name, s in steps.items():
        print(f"{name:<34}{s['wall_s']:9.2f}{s['cpu_s']:9.2f}{s['peak_rss_mib']:10.0f}")
    print(
        f"per-client table back: {len(sums.table):,} rows, {result['client_table_mib']} MiB; "
        f"Dask total {result['dask_total_s']:.1f} s"
    )
    if mem_fit is not None:
        d = result["max_abs_diff_vs_in_memory"]
        print(
            f"vs in-memory: max |d beta| {d['beta']:.2e}, |d theta| {d['theta']:.2e}, "
            f"|d deviance| {d['deviance']:.2e}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
