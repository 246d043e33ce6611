"""Benchmark: the full study report end to end for a simulated 20,000-client study (issue 6).

Run with ``python benchmarks/bench_report.py`` (``make bench``). Simulates a study with
``simulate_study(n_clients=20000, n_therapists=400)`` (about 420,000 rows of WAI-SR client and
therapist items and OQ-45.2 items), writes it as one wave, and times ``alliance report`` from
reading the CSV to the finished HTML, in the same run as the library steps it is made of, so the
share of each step is visible. Target: <= 120 s on this 2-core machine. Writes
``benchmarks/results/report.json``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import alliance_lib as al

RESULTS = Path(__file__).parent / "results" / "report.json"
TARGET_SECONDS = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--therapists", type=int, default=400)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        folder = Path(tmp)
        data = al.simulate_study(n_clients=args.clients, n_therapists=args.therapists, seed=7)
        data.to_csv(folder / "wave1.csv", index=False)
        (folder / "study.yaml").write_text(
            "study: Benchmark study\ndata: {1: wave1.csv}\n"
            "columns: {client: client_id, therapist: therapist_id, session: session, "
            "rater: rater}\nmissing_codes: [-99, 999]\n"
            "instruments: {alliance: wai-sr, outcome: oq-45.2}\n",
            encoding="utf-8",
        )
        study = al.load_study(folder / "study.yaml")
        t0 = time.perf_counter()
        wave = al.prepare_wave(study, 1)
        t_prepare = time.perf_counter() - t0
        t0 = time.perf_counter()
        al.fit_trajectory(wave.sessions(), "alliance", therapist="therapist_id")
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        al.run_report(folder / "study.yaml", 1, folder / "report", quiet=True)
        t_report = time.perf_counter() - t0

    result = {
        "clients": args.clients,
        "therapists": args.therapists,
        "rows": int(len(data)),
        "prepare_wave_seconds": round(t_prepare, 3),
        "trajectory_fit_seconds": round(t_fit, 3),
        "report_seconds": round(t_report, 3),
        "target_seconds": TARGET_SECONDS,
        "met": t_report <= TARGET_SECONDS,
        "machine": platform.platform(),
        "when_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"study report, {args.clients:,} clients ({len(data):,} rows):")
    print(f"  read + validate + score + pseudonymise : {t_prepare:7.2f} s")
    print(f"  one three-level trajectory fit         : {t_fit:7.2f} s")
    print(
        f"  full report (papermill + nbconvert)    : {t_report:7.2f} s "
        f"(target <= {TARGET_SECONDS:.0f} s: {'met' if result['met'] else 'NOT met'})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
