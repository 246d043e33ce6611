"""Benchmark: growth-model fit time against statsmodels MixedLM and lme4 (issue 6).

Not a test. For 2,000 / 20,000 / 100,000 / 500,000 clients x ~10 sessions it times, on the same
simulated data in the same run:

* ``fit_trajectory`` (REML, ``(session | client)``) and with ``+ (1 | therapist)``;
* statsmodels ``MixedLM`` (two-level only; skipped above ``--sm-max`` clients, default 2,000:
  on these data (slope SD 0.03 per session) it fails to converge, retries two more optimizers
  and took 43 s at 2,000 and 521 s at 20,000 clients in a trial run here, too slow for
  ``make bench``; pass ``--sm-max 20000`` to time it there);
* lme4 ``lmer`` through ``Rscript`` when R with lme4 is installed (skipped above ``--r-max``);

checks that fixed effects agree with lme4 within 1e-5 (relative) and logLik within 1e-3, prints
a table with the ratios and the peak memory of a one-million-row fit, and writes
``benchmarks/results/trajectories.json``.

Usage::

    .venv/bin/python benchmarks/bench_trajectories.py [--sizes 2000 20000 100000 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alliance_lib.trajectories import fit_trajectory  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "trajectories.json"
CLIENTS_PER_THERAPIST = 50

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("character", "character", "numeric", "numeric"))
out <- list()
for (model in c("two_level", "three_level")) {
  f <- if (model == "two_level") wai ~ session + (session | client_id) else
    wai ~ session + (session | client_id) + (1 | therapist_id)
  tm <- system.time(m <- lmer(f, d, REML = TRUE))[["elapsed"]]
  out[[model]] <- list(seconds = tm, fixef = unname(fixef(m)), loglik = as.numeric(logLik(m)),
                       singular = isSingular(m), theta = unname(getME(m, "theta")),
                       messages = as.list(m@optinfo$conv$lme4$messages))
}
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
jsonlite::write_json(out, args[2], digits = NA, auto_unbox = TRUE)
"""


def simulate(n_clients: int, seed: int = 1) -> pd.DataFrame:
    """Growth data: ~10 sessions per client (6-14), clients nested in therapists."""
    rng = np.random.default_rng(seed)
    n_ther = max(2, n_clients // CLIENTS_PER_THERAPIST)
    k = rng.integers(6, 15, n_clients)
    client = np.repeat(np.arange(n_clients), k)
    session = np.arange(client.size) - np.repeat(np.cumsum(k) - k, k) + 1
    ther = rng.integers(0, n_ther, n_clients)
    cov = [[0.45**2, -0.3 * 0.45 * 0.03], [-0.3 * 0.45 * 0.03, 0.03**2]]
    u = rng.multivariate_normal([0, 0], cov, n_clients)
    v = rng.normal(0, 0.18, n_ther)
    y = 3.55 + u[client, 0] + v[ther[client]] + (0.03 + u[client, 1]) * session
    y = y + rng.normal(0, 0.3, client.size)
    width = len(str(n_clients))
    return pd.DataFrame(
        {
            "client_id": pd.Series(np.char.add("C", np.char.zfill(client.astype(str), width))),
            "therapist_id": pd.Series(np.char.add("T", ther[client].astype(str))),
            "session": session.astype(float),
            "wai": y,
        }
    )


def time_ours(df: pd.DataFrame, therapist: str | None, repeats: int) -> dict:
    best, fit = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_trajectory(df, "wai", therapist=therapist)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    fixed = fit.fixed  # Satterthwaite df (lazy, as lmerTest computes them at summary time)
    satt = time.perf_counter() - t0
    return {
        "fit": fit,
        "seconds": best,
        "satterthwaite_seconds": satt,
        "n_evals": int(fit.raw.n_evals),
        "fixef": fixed["estimate"].tolist(),
        "loglik": fit.loglik,
        "converged": fit.converged,
        "singular": fit.singular,
        "warnings": fit.warnings,
    }


def time_statsmodels(df: pd.DataFrame) -> dict:
    from statsmodels.regression.mixed_linear_model import MixedLM

    X = np.column_stack([np.ones(len(df)), df["session"].to_numpy()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        res = MixedLM(df["wai"].to_numpy(), X, groups=df["client_id"].to_numpy(), exog_re=X).fit(
            reml=True
        )
        sec = time.perf_counter() - t0
    return {
        "seconds": sec,
        "fixef": np.asarray(res.fe_params).tolist(),
        "loglik": float(res.llf),
        "converged": bool(res.converged),
        "warnings": sorted({str(w.message) for w in caught}),
    }


def time_lme4(df: pd.DataFrame, tmp: Path) -> dict | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    csv, out, script = tmp / "data.csv", tmp / "out.json", tmp / "fit.R"
    df.to_csv(csv, index=False)
    script.write_text(R_SCRIPT)
    proc = subprocess.run(
        [rscript, str(script), str(csv), str(out)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print("lme4 failed:", proc.stderr[-500:], file=sys.stderr)
        return None
    return json.loads(out.read_text())


def peak_memory_one_million_rows() -> dict:
    df = simulate(101_000, seed=7).iloc[:1_000_000]
    df = df[df["client_id"] != df["client_id"].iloc[-1]]  # no client cut in half
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    fit = fit_trajectory(df, "wai", therapist="therapist_id")
    sec = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    data_mb = df.memory_usage(deep=True).sum() / 2**20
    return {
        "rows": len(df),
        "fit_seconds_traced": sec,
        "peak_mb_during_fit": peak / 2**20,
        "data_mb": float(data_mb),
        "converged": fit.converged,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20_000, 100_000, 500_000])
    ap.add_argument("--sm-max", type=int, default=2000, help="largest size timed in statsmodels")
    ap.add_argument("--r-max", type=int, default=100_000, help="largest size timed in lme4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)

    rows = []
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmpd:
        for n in args.sizes:
            df = simulate(n)
            rec = {"clients": n, "rows": len(df)}
            rec["ours_two_level"] = time_ours(df, None, args.repeats if n <= 100_000 else 1)
            rec["ours_three_level"] = time_ours(
                df, "therapist_id", args.repeats if n <= 100_000 else 1
            )
            rec["statsmodels_two_level"] = time_statsmodels(df) if n <= args.sm_max else None
            r = time_lme4(df, Path(tmpd)) if n <= args.r_max else None
            rec["lme4"] = r
            if r is not None:
                for model in ("two_level", "three_level"):
                    o, ref = rec[f"ours_{model}"], r[model]
                    o["fixef_max_rel_diff_vs_lme4"] = float(
                        np.max(np.abs(np.subtract(o["fixef"], ref["fixef"]) / ref["fixef"]))
                    )
                    o["loglik_diff_vs_lme4"] = o["loglik"] - ref["loglik"]
                    # our criterion evaluated at lme4's theta: equal to lme4's logLik when both
                    # compute the same function (then any difference is where each optimiser stopped)
                    at = -0.5 * o["fit"]._model.deviance(np.asarray(ref["theta"], dtype=float))
                    o["loglik_at_lme4_theta_minus_lme4"] = at - ref["loglik"]
                    o["lme4_messages"] = ref.get("messages", [])
            _print_row(rec)
            for model in ("two_level", "three_level"):
                rec[f"ours_{model}"].pop("fit")
            rows.append(rec)
        mem = None if args.no_memory else peak_memory_one_million_rows()
    if mem:
        print(
            f"peak memory of a {mem['rows']:,}-row three-level fit: "
            f"{mem['peak_mb_during_fit']:.0f} MB above the data ({mem['data_mb']:.0f} MB)"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                },
                "notes": "seconds = best of --repeats for our fits (one run for statsmodels/lme4); "
                "statsmodels is not run above --sm-max clients (trial run at 20,000 clients: "
                "521 s and not converged); "
                "lme4 time is lmer() only, excluding reading the CSV",
                "results": rows,
                "memory": mem,
            },
            indent=2,
            default=float,
        )
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _print_row(rec: dict) -> None:
    o2, o3 = rec["ours_two_level"], rec["ours_three_level"]
    sm, r = rec["statsmodels_two_level"], rec["lme4"]
    line = (
        f"{rec['clients']:>8,} clients {rec['rows']:>9,} rows | two-level {o2['seconds']:7.3f} s"
        f" (+{o2['satterthwaite_seconds']:.2f} s df)"
    )
    if sm:
        line += f" | statsmodels {sm['seconds']:7.2f} s ({sm['seconds'] / o2['seconds']:6.0f}x)"
    else:
        line += " | statsmodels   (not run)"
    if r:
        line += f" | lme4 {r['two_level']['seconds']:6.2f} s ({r['two_level']['seconds'] / o2['seconds']:5.1f}x)"
    print(line)
    line = f"{'':>35}| three-level {o3['seconds']:5.3f} s (+{o3['satterthwaite_seconds']:.2f} s df)"
    if r:
        line += (
            f" | lme4 {r['three_level']['seconds']:6.2f} s "
            f"({r['three_level']['seconds'] / o3['seconds']:5.1f}x)"
            f" | max rel diff fixef {o2['fixef_max_rel_diff_vs_lme4']:.1e}/"
            f"{o3['fixef_max_rel_diff_vs_lme4']:.1e}, logLik diff "
            f"{o2['loglik_diff_vs_lme4']:+.1e}/{o3['loglik_diff_vs_lme4']:+.1e}"
            f" (ours at lme4's theta: {o2['loglik_at_lme4_theta_minus_lme4']:+.1e}/"
            f"{o3['loglik_at_lme4_theta_minus_lme4']:+.1e})"
        )
        msgs = o2["lme4_messages"] + o3["lme4_messages"]
        if msgs:
            line += f"\n{'':>35}| lme4 messages: {'; '.join(map(str, msgs))}"
    print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
