"""Benchmark: fit_cross_lagged against lavaan on the same data in the same run (issue 12, item 8).

Not a test. Data: ``simulate_study`` with inertia 0.3 in both series, a reverse path, MAR dropout
on the observed outcome (sessions 1-12 as waves); and the same with 4 % of single scores missing
at random ("gaps": many missing-data patterns). For 300 and 10,000 clients it times

* ``fit_cross_lagged`` (RI-CLPM, lags equal over sessions, FIML, with the fit indices (h1 by EM,
  baseline) and the constraint test, i.e. a second fit with free lags), best of 3 runs (1 run at
  10,000 clients); at 300 clients also ML-SEM and LCM-SR;
* lavaan 0.6-14 through ``Rscript`` on the same wide data: the same model (``missing = "ml"``,
  fit measures, and the free-lag model for the same test), outcome analysed as y / 10 as lavaan
  advises for variances of very different size;

checks that the alliance -> outcome estimate and the log-likelihood agree (within 1e-4 of the
SE, and 1e-3), and writes ``benchmarks/results/cross_lagged.json`` with the ratios, the load
average and the versions.

``--section-clients 100000`` (issue 16) also times the report section
(``cross_lagged_section``: RI-CLPM with its constraint test, ML-SEM, LCM-SR, lag 2, the
descriptive multilevel line) on ``simulate_study(n_clients=100000, n_therapists=2000, seed=7)``
read, scored and prepared as ``bench_report.py`` does, with this code and, in a subprocess on the
same prepared wave, with the code of ``--baseline-ref`` (default a0ab212, before the speed work;
``git archive`` of ``alliance_lib``): CPU and wall time, memory growth of the section and of the
four fits alone, and the largest relative difference between the two sections' numbers
(``results/cross_lagged_section.json``).

Usage::

    .venv/bin/python benchmarks/bench_cross_lagged.py [--sizes 300 10000] [--no-r]
    .venv/bin/python benchmarks/bench_cross_lagged.py --sizes --section-clients 100000
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
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alliance_lib.cross_lagged import cross_lagged_syntax, fit_cross_lagged  # noqa: E402
from alliance_lib.simulate import SimulationTruth, simulate_study  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cross_lagged.json"
SECTION_RESULTS = ROOT / "benchmarks" / "results" / "cross_lagged_section.json"
WAVES = 12
TRUTH = SimulationTruth(
    sd_client_slope=0.0,
    sd_outcome_slope=0.0,
    alliance_inertia=0.3,
    outcome_inertia=0.3,
    reverse_change_effect=0.012,
    dropout_alliance=0.0,
    dropout_base=-3.0,
    dropout_outcome=-0.8,
)

R_SCRIPT = r"""
suppressPackageStartupMessages({library(lavaan); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
w <- read.csv(args[1])
ycols <- grep("^y", names(w))
w[ycols] <- w[ycols] / 10
out <- list(versions = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan"))))
for (m in strsplit(args[3], ",")[[1]]) {
  syn <- paste(readLines(file.path(args[2], paste0(m, ".lav"))), collapse = "\n")
  tm <- system.time(fit <- lavaan(syn, data = w, missing = "ml", meanstructure = TRUE,
                                  int.ov.free = TRUE, int.lv.free = FALSE,
                                  fixed.x = FALSE))[["elapsed"]]
  tf <- system.time(fm <- fitMeasures(fit, c("logl", "chisq", "cfi", "rmsea", "srmr")))[["elapsed"]]
  pe <- parameterEstimates(fit)
  b <- pe[!is.na(pe$label) & pe$label == "beta", ][1, ]
  shift <- sum(!is.na(as.matrix(w[ycols]))) * log(10)
  out[[m]] <- list(seconds = tm + tf, beta = 10 * b$est, beta_se = 10 * b$se,
                   logl = fm[["logl"]] - shift, converged = lavInspect(fit, "converged"))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), args[4])
"""


def simulate(n_clients: int, seed: int = 12, gaps: float = 0.0) -> pd.DataFrame:
    df = simulate_study(
        n_therapists=max(2, n_clients // 15),
        n_clients=n_clients,
        max_sessions=WAVES,
        output="scores",
        truth=TRUTH,
        seed=seed,
    )
    df = df[df["session"] >= 1][["client_id", "session", "alliance", "outcome"]].copy()
    if gaps:
        # missed single questionnaires (MCAR): many more missing-data patterns than dropout
        rng = np.random.default_rng(seed + 1)
        for col in ("alliance", "outcome"):
            df.loc[rng.random(len(df)) < gaps, col] = np.nan
    return df


def to_wide(df: pd.DataFrame) -> pd.DataFrame:
    a = df.pivot(index="client_id", columns="session", values="alliance")
    y = df.pivot(index="client_id", columns="session", values="outcome")
    a.columns = [f"a{t}" for t in a.columns]
    y.columns = [f"y{t}" for t in y.columns]
    return pd.concat([a, y], axis=1)


def time_ours(df, model, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit = fit_cross_lagged(df, "alliance", "outcome", model=model)
        best = min(best, time.perf_counter() - t0)
    return best, fit


def time_lavaan(df, models, tmp):
    wide = tmp / "wide.csv"
    to_wide(df).to_csv(wide, index=False, na_rep="NA")
    for m in models:
        model, _, cons = m.partition("_")
        (tmp / f"{m}.lav").write_text(
            cross_lagged_syntax(WAVES, model=model, constraints=cons or "lags")
        )
    script = tmp / "bench.R"
    script.write_text(R_SCRIPT)
    out = tmp / "lavaan.json"
    subprocess.run(
        ["Rscript", str(script), str(wide), str(tmp), ",".join(models), str(out)],
        check=True,
        capture_output=True,
    )
    return json.loads(out.read_text())


SECTION_SCRIPT = r"""
import json, pickle, sys, time
sys.path.insert(0, sys.argv[3])
from bench_report import measure
from alliance_lib.cross_lagged import fit_cross_lagged
from alliance_lib.sections.cross_lagged import cross_lagged_section
with open(sys.argv[1], "rb") as f:
    wave = pickle.load(f)
with open(sys.argv[1] + ".sessions", "rb") as f:
    data = pickle.load(f)
M = 2**20
out = {}
sec, wall, cpu, peak, grow = measure(lambda: cross_lagged_section(wave))
out["section"] = {"wall": wall, "cpu": cpu, "grow_mib": grow / M}
out["numbers"] = sec.numbers
try:
    from alliance_lib.cross_lagged import cross_lagged_panel
except ImportError:  # before the shared panel: each fit from the long table
    cross_lagged_panel = None
def fits():
    src = data if cross_lagged_panel is None else cross_lagged_panel(data, "alliance", "outcome")
    first = fit_cross_lagged(src, "alliance", "outcome")
    kw = {} if cross_lagged_panel is not None else {"waves": first.waves}
    for extra in ({"model": "mlsem"}, {"model": "lcmsr"}, {"lag": 2}):
        fit_cross_lagged(src, "alliance", "outcome", test_constraints=False, **kw, **extra)
_, wall, cpu, peak, grow = measure(fits)
out["fits"] = {"wall": wall, "cpu": cpu, "grow_mib": grow / M}
json.dump(out, open(sys.argv[2], "w"), default=float)
"""


def _max_rel_diff(a, b) -> float:
    """Largest relative difference between the numbers of two JSON-like structures."""
    if isinstance(b, dict):
        return max((_max_rel_diff(a[k], b[k]) for k in b), default=0.0)
    if isinstance(b, list):
        return max((_max_rel_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(b, float) and isinstance(a, float):
        return 0.0 if a == b else abs(a - b) / max(abs(b), 1e-300)
    return 0.0 if a == b else float("inf")


def section_benchmark(n_clients: int, n_therapists: int, baseline_ref: str) -> dict:
    """The cross-lagged section at ``n_clients``: this code and ``baseline_ref``'s, same wave."""
    import pickle

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_report import prepare_simulated, write_simulated_study

    out = {"n_clients": n_clients, "n_therapists": n_therapists, "baseline_ref": baseline_ref}
    with tempfile.TemporaryDirectory(prefix="alliance-bench-cl-") as tmp:
        folder = Path(tmp)
        out["n_rows"] = write_simulated_study(folder, n_clients, n_therapists)
        wave = prepare_simulated(folder)
        sessions = wave.sessions()
        sessions = sessions[sessions["alliance"].notna() | sessions["outcome"].notna()]
        wave_pkl = folder / "wave.pkl"
        with open(wave_pkl, "wb") as f:
            pickle.dump(wave, f, protocol=pickle.HIGHEST_PROTOCOL)
        with open(str(wave_pkl) + ".sessions", "wb") as f:
            pickle.dump(sessions, f, protocol=pickle.HIGHEST_PROTOCOL)
        del wave, sessions
        script = folder / "section.py"
        script.write_text(SECTION_SCRIPT)
        old_tree = folder / "old"
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", baseline_ref, "alliance_lib"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        runs = {}
        for label, tree in (("before", old_tree), ("after", ROOT)):
            res = folder / f"{label}.json"
            env = dict(os.environ, PYTHONPATH=str(tree))
            subprocess.run(
                [sys.executable, str(script), str(wave_pkl), str(res), str(ROOT / "benchmarks")],
                check=True,
                env=env,
                cwd=str(tree),
            )
            runs[label] = json.loads(res.read_text())
    for label in ("before", "after"):
        out[label] = {k: runs[label][k] for k in ("section", "fits")}
        s, f = runs[label]["section"], runs[label]["fits"]
        print(
            f"cross_lagged_section {label:6s}: section {s['cpu']:6.1f} s CPU {s['wall']:6.1f} s wall "
            f"+{s['grow_mib']:6.0f} MiB   four fits {f['cpu']:6.1f} s CPU {f['wall']:6.1f} s wall "
            f"+{f['grow_mib']:6.0f} MiB",
            flush=True,
        )
    out["max_relative_difference"] = _max_rel_diff(
        runs["after"]["numbers"], runs["before"]["numbers"]
    )
    print(
        f"largest relative difference of the section's numbers: {out['max_relative_difference']:.1e}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[300, 10000])
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument(
        "--gaps",
        type=float,
        default=0.04,
        help="share of single scores missing at random in the extra 'gaps' runs (0: none); "
        "lavaan is timed on them up to --r-gaps-max clients",
    )
    ap.add_argument("--r-gaps-max", type=int, default=300)
    ap.add_argument(
        "--section-clients",
        type=int,
        default=0,
        help="also time cross_lagged_section at this many clients, before/after (0: skip)",
    )
    ap.add_argument("--section-therapists", type=int, default=2000)
    ap.add_argument("--baseline-ref", default="a0ab212", help="git ref of the 'before' code")
    args = ap.parse_args()
    if args.section_clients:
        res = section_benchmark(args.section_clients, args.section_therapists, args.baseline_ref)
        res.update(load_average=os.getloadavg(), cpus=os.cpu_count(), numpy=np.__version__)
        SECTION_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        SECTION_RESULTS.write_text(json.dumps(res, indent=1, default=float) + "\n")
        print(f"written {SECTION_RESULTS.relative_to(ROOT)}")
        if not args.sizes:
            return
    have_r = shutil.which("Rscript") is not None and not args.no_r
    results = {
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "waves": WAVES,
        "runs": [],
    }
    plan = [(n, 0.0) for n in args.sizes] + (
        [(n, args.gaps) for n in args.sizes] if args.gaps else []
    )
    for n, gaps in plan:
        df = simulate(n, gaps=gaps)
        models = ["riclpm"] + (["mlsem", "lcmsr"] if n <= 1000 and not gaps else [])
        with tempfile.TemporaryDirectory() as tmpdir:
            lav = None
            if have_r and (not gaps or n <= args.r_gaps_max):
                lav_models = []
                for m in models:
                    lav_models += [m, f"{m}_none"]
                lav = time_lavaan(df, lav_models, Path(tmpdir))
                results["lavaan_versions"] = lav["versions"]
            for m in models:
                secs, fit = time_ours(df, m, 3 if n <= 1000 else 1)
                row = {
                    "model": m,
                    "n_clients": n,
                    "gaps": gaps,
                    "n_patterns": fit.n_patterns,
                    "seconds": secs,
                    "beta": fit.effects.loc["alliance -> outcome", "estimate"],
                    "beta_se": fit.effects.loc["alliance -> outcome", "se"],
                    "loglik": fit.loglik,
                    "converged": fit.converged,
                }
                if lav is not None:
                    lsecs = lav[m]["seconds"] + lav[f"{m}_none"]["seconds"]
                    row.update(
                        lavaan_seconds=lsecs,
                        ratio=lsecs / secs,
                        beta_diff_in_se=abs(row["beta"] - lav[m]["beta"]) / lav[m]["beta_se"],
                        loglik_diff=row["loglik"] - lav[m]["logl"],
                        lavaan_converged=lav[m]["converged"],
                    )
                results["runs"].append(row)
                print(
                    f"{m:7s} {n:6d} clients gaps {gaps:.2f} {fit.n_patterns:5d} patterns"
                    f"  {secs:7.2f} s"
                    + (
                        f"   lavaan {row['lavaan_seconds']:7.2f} s   ratio {row['ratio']:6.1f}x"
                        f"   |d beta|/SE {row['beta_diff_in_se']:.1e}   d logLik "
                        f"{row['loglik_diff']:.1e}"
                        if lav is not None
                        else ""
                    ),
                    flush=True,
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
