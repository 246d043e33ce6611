"""Benchmark: the whole study report for 1,000,000 clients (about 20.8 million rows, Parquet).

Run with ``python benchmarks/bench_report_million.py [--folder DIR]`` (issue 16: "a
1,000,000-client study through the whole report on one 24 GB machine"). Writes, once, a
partitioned Parquet wave of ``--parts`` parts of ``--clients-per-part`` clients each into
``DIR/parts`` (``simulate_study`` per part, seeds 100, 101, ...: WAI-SR items for client and
therapist rows, the OQ-45.2 scored to a pre-scored total ``oq_total`` so that the wave has the
shape of a national extract with an outcome total), with ``DIR/study.yaml``; the parts are kept
for the next run (about 200 MB; writing them takes 10 minutes; without ``--folder`` they go to a
temporary folder, removed afterwards). Then runs the full
``alliance report`` in a subprocess and records its wall and CPU time, the peak memory of its
process tree (PSS of ``alliance report`` and its kernel summed, sampled every 0.2 s:
:func:`bench_report.run_measured`), the notebook cells' durations and what the report states
about its own data (rows read, analysed, quarantined; the monitoring validation sample). Writes
``benchmarks/results/report_1m.json``. This is a benchmark, not a test: it needs about 17 GB,
and on a machine with less than :data:`NEEDS_GB` GB it says so and is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al

sys.path.insert(0, str(Path(__file__).parent))
from bench_report import BENCH_KEY, run_measured  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "report_1m.json"
#: Physical memory below which the benchmark is skipped (its peak was 15.8 GB).
NEEDS_GB = 20


def write_million_study(folder: Path, parts: int, per_part: int) -> int:
    """The Parquet wave (one part at a time, so writing it needs little memory); its rows."""
    oq = al.get_instrument("oq-45.2")
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    rows = 0
    for k in range(parts):
        path = folder / "parts" / f"part-{k:02d}.parquet"
        if path.exists():
            rows += pd.read_parquet(path, columns=["session"]).shape[0]
            continue
        d = al.simulate_study(n_clients=per_part, n_therapists=per_part // 50, seed=100 + k)
        items = [c for c in d.columns if c.startswith("oq_")]
        has = d[items].notna().any(axis=1)
        scored = al.score(
            d.loc[has, ["client_id", "session", *items]].copy(),
            oq,
            missing_codes=[-99, 999],
            errors="quarantine",
        )
        d["oq_total"] = np.nan
        d.loc[has, "oq_total"] = scored["oq_total"].to_numpy()
        d = d.drop(columns=items)
        for col in ("client_id", "therapist_id"):  # the parts' ids must not meet
            d[col] = f"P{k:02d}-" + d[col].astype(str)
        d.to_parquet(path, index=False)
        rows += len(d)
    (folder / "study.yaml").write_text(
        "study: Million-client study\ndata: {1: parts}\n"
        "columns: {client: client_id, therapist: therapist_id, session: session, "
        "rater: rater}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: {id: oq-45.2, total: oq_total}}\n"
        f"privacy: {{salt: {BENCH_KEY}}}\n",
        encoding="utf-8",
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where the wave is written and kept for the next run (default: a temporary folder)",
    )
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--clients-per-part", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    if memory_gb < NEEDS_GB:
        print(f"skipped: the million-client report needs about {NEEDS_GB} GB; {memory_gb:.0f} here")
        return 0
    if args.folder is None:
        with tempfile.TemporaryDirectory(prefix="alliance-million-") as tmp:
            return run(Path(tmp), args)
    return run(args.folder, args)


def run(folder: Path, args) -> int:
    """Write the wave into ``folder`` (unless its parts are there), run and measure the report."""
    args.folder = folder
    t0 = time.perf_counter()
    n_rows = write_million_study(args.folder, args.parts, args.clients_per_part)
    t_write = time.perf_counter() - t0
    load_before = os.getloadavg()
    report = args.folder / "report"
    wall, cpu, peak, per = run_measured(
        [sys.executable, "-m", "alliance_lib.cli", "report", str(args.folder / "study.yaml")]
        + ["--wave", "1", "--out", str(report)]
    )
    load_after = os.getloadavg()
    (wave_dir,) = [p for p in report.glob("*/wave-1") if p.is_dir()]
    nb = json.loads((wave_dir / "report.ipynb").read_text(encoding="utf-8"))
    cells = [
        {
            "cell": "".join(c["source"]).splitlines()[0][:70],
            "seconds": round(c["metadata"]["papermill"]["duration"], 1),
        }
        for c in nb["cells"]
        if c["cell_type"] == "code"
        and (c["metadata"].get("papermill", {}).get("duration") or 0) > 1
    ]
    results = json.loads((wave_dir / "results.json").read_text(encoding="utf-8"))
    skipped = [k for k, v in results.items() if isinstance(v, dict) and v.get("skipped")]
    mib = 2**20
    out = {
        "clients": args.parts * args.clients_per_part,
        "rows": int(n_rows),
        "parts": args.parts,
        "write_parts_seconds": round(t_write, 1),
        "report_seconds": round(wall, 1),
        "report_cpu_seconds": round(cpu, 1),
        "report_peak_tree_pss_mib": round(peak / mib),
        "report_peak_by_process_mib": {k: round(v / mib) for k, v in per.items()},
        "notebook_cells_over_1s": cells,
        "data_quality": results["data_quality"],
        "monitoring_validation_sample": results.get("monitoring", {}).get("validation_sample"),
        "sections_not_applying": skipped,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "versions": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "alliance_lib": al.__version__,
        },
        "when_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"{out['clients']:,}-client report: {n_rows:,} rows, {wall:.0f} s wall ({cpu:.0f} s CPU), "
        f"peak {peak / 2**30:.1f} GB (report {per['report'] / 2**30:.1f}, kernel "
        f"{per['kernel'] / 2**30:.1f}); sections not applying: {skipped or 'none'}"
    )
    for c in cells:
        print(f"  {c['seconds']:8.1f} s  {c['cell']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
