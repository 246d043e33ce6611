"""Benchmark: the report's change-event analyses at 100,000 clients, against the code before the
issue-16 scale work, in the same run (issue 16).

Not a test. Simulates ``simulate_study(n_clients=100000, n_therapists=2000, seed=7)`` (about 2.1
million rows), writes it as a CSV wave with a study file as ``bench_report.py`` does (with a
fixed pseudonym key), prepares the wave once and times, in CPU seconds (the machine is shared)
and wall seconds:

* each cached analysis of ``alliance_lib.sections.common`` the event sections use
  (``rupture_comparison``: the Stiles and Gumz rules with their false-alarm simulations;
  ``gains_and_losses`` with ``sudden_gain_cases``: the pattern selection, sudden gains and
  losses, interval counts; ``clinical_change``: reliable change of the ended clients), each on
  a fresh cache;
* the five event sections (``alliance_lib.sections.events``) in the template's order, on a fresh
  cache of the event analyses (the outcome reliability, another section's analysis, is computed
  beforehand and not counted);
* the same analyses as composed before (``tests/events_reference.py``: every preset and every
  sudden-gain function on its own session grid, each false-alarm data set simulating every
  client), with the same treatment status;

and checks the numbers: episodes, patterns, the crosstab, gains, losses, interval counts and the
reliable-change table identical; the false-alarm shares within 4 combined Monte Carlo SEs (the new
code simulates 5,000 sampled clients per data set above 5,000 analysable clients). Writes
``benchmarks/results/events.json``.

Usage::

    .venv/bin/python benchmarks/bench_events.py [--clients 100000 --therapists 2000]
        [--wave /tmp/wave.pkl]   # reuse (or create) a pickled prepared wave
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from alliance_lib.sections import common as c
from alliance_lib.sections import events

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import events_reference as ref  # noqa: E402
from bench_report import prepare_simulated, write_simulated_study  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "events.json"
EVENT_KEYS = {
    ("rupture_comparison",),
    ("gains",),
    ("sudden_gain_cases",),
    ("outcome_grid",),
    ("treatment_status",),
    ("clinical",),
    ("rci_methods",),
}
SECTIONS = [
    "ruptures_section",
    "sudden_gains_section",
    "event_timeline_section",
    "clinical_significance_section",
    "event_rates_section",
]


def prepared_wave(n_clients: int, n_therapists: int, pickled: Path | None):
    """Simulate, write as CSV + study.yaml, prepare (or load the pickled prepared wave)."""
    if pickled is not None and pickled.exists():
        with open(pickled, "rb") as f:
            return pickle.load(f)
    with tempfile.TemporaryDirectory(prefix="alliance-bench-events-") as tmp:
        folder = Path(tmp)
        write_simulated_study(folder, n_clients, n_therapists)
        wave = prepare_simulated(folder)
    if pickled is not None:
        with open(pickled, "wb") as f:
            pickle.dump(wave, f, protocol=5)
    return wave


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def clear_events(wave) -> None:
    store = wave.__dict__.setdefault("_section_cache", {})
    for key in EVENT_KEYS:
        store.pop(key, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--therapists", type=int, default=2_000)
    parser.add_argument("--wave", type=Path, default=None, help="pickled prepared wave")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    wave = prepared_wave(args.clients, args.therapists, args.wave)
    s = c.sessions(wave)
    n_rows = len(wave.scored)
    try:  # another section's analysis (the outcome's alpha), not counted
        c.outcome_reliability(wave)
    except Exception as exc:  # noqa: BLE001 (reported, the benchmark goes on)
        print(f"outcome reliability not available: {exc}")
    a = wave.study.analysis
    rows = []

    def add(step, impl, cpu, wall):
        rows.append({"step": step, "implementation": impl, "cpu_s": cpu, "wall_s": wall})

    # new: each analysis on a fresh cache of the event analyses
    clear_events(wave)
    status, cpu, wall = timed(lambda: c.treatment_status(wave)[0])
    add("treatment_status", "both", cpu, wall)
    cmp_new, cpu, wall = timed(lambda: c.rupture_comparison(wave))
    add("rupture_comparison", "new", cpu, wall)
    gl_new, cpu, wall = timed(lambda: (c.sudden_gain_cases(wave), *c.gains_and_losses(wave)))
    add("sudden gains (cases, gains, losses, intervals)", "new", cpu, wall)
    rc_new, cpu, wall = timed(lambda: c.clinical_change(wave)[0])
    add("clinical_change (reliable change, ended)", "new", cpu, wall)
    # new: the five sections on a fresh cache (treatment status included)
    clear_events(wave)
    total_cpu = total_wall = 0.0
    for name in SECTIONS:
        _, cpu, wall = timed(lambda name=name: getattr(events, name)(wave))
        add(f"events.{name}", "new", cpu, wall)
        total_cpu, total_wall = total_cpu + cpu, total_wall + wall
    add("five event sections", "new", total_cpu, total_wall)
    import matplotlib.pyplot as plt

    plt.close("all")
    # old: the same analyses as composed before, same status
    better = c.outcome_instrument(wave).direction == "higher_is_better"
    presets = c.RUPTURE_PRESETS + tuple(
        p for p in (a["rupture_preset"],) if p not in c.RUPTURE_PRESETS
    )
    cmp_old, cpu, wall = timed(
        lambda: ref.old_rupture_comparison(
            s,
            presets=presets,
            min_drop=a["rupture_min_drop"],
            n_simulations=c.RUPTURE_SIMULATIONS,
            seed=wave.study.seed,
        )  # fmt: skip
    )
    add("rupture_comparison", "old", cpu, wall)
    gl_old, cpu, wall = timed(
        lambda: ref.old_gains_and_losses(s, c.sudden_gain_cutoff(wave), better)
    )
    add("sudden gains (cases, gains, losses, intervals)", "old", cpu, wall)
    rc_old, cpu, wall = timed(
        lambda: ref.old_clinical_change(s, status, c.outcome_instrument(wave))
    )
    add("clinical_change (reliable change, ended)", "old", cpu, wall)

    # the numbers
    checks = {}
    for p in presets:
        pd.testing.assert_frame_equal(cmp_new.episodes[p], cmp_old.episodes[p])
        pd.testing.assert_frame_equal(cmp_new.patterns[p], cmp_old.patterns[p])
    pd.testing.assert_frame_equal(cmp_new.crosstab, cmp_old.crosstab)
    exact_cols = ["preset", "n_clients", "n_rupture", "n_repaired", "n_unrepaired", "n_episodes"]
    pd.testing.assert_frame_equal(cmp_new.summary[exact_cols], cmp_old.summary[exact_cols])
    checks["ruptures: episodes, patterns, crosstab, counts"] = "identical"
    for p in presets:
        new, old = cmp_new.null[p], cmp_old.null[p]
        se = float(np.hypot(new["share_clients_se"], old["share_clients_se"]))
        z = (new["share_clients"] - old["share_clients"]) / se
        checks[f"false alarms {p}"] = {
            "new": new["share_clients"],
            "new_se": new["share_clients_se"],
            "old": old["share_clients"],
            "old_se": old["share_clients_se"],
            "z": round(float(z), 2),
            "episodes_new_old": [new["episodes_per_client"], old["episodes_per_client"]],
            "session_rate_new_old": [new["session_rate"], old["session_rate"]],
        }
        assert abs(z) < 4, f"false-alarm share of {p}: z = {z:.2f}"
    for a_, b_ in zip(gl_new, gl_old, strict=True):
        pd.testing.assert_frame_equal(a_, b_)
    checks["sudden gains: cases, gains, losses, interval counts"] = "identical"
    pd.testing.assert_frame_equal(rc_new, rc_old)
    assert rc_new.attrs["treatment_status"] == rc_old.attrs["treatment_status"]
    checks["reliable change of the ended clients"] = "identical"

    by = {(r["step"], r["implementation"]): r for r in rows}
    print(f"change events, {args.clients:,} clients ({n_rows:,} rows), CPU / wall seconds")
    print(f"{'step':<50}{'old cpu':>9}{'new cpu':>9}{'ratio':>8}{'new wall':>10}")
    for r in rows:
        if r["implementation"] == "old":
            continue
        old = by.get((r["step"], "old"))
        ratio = f"{old['cpu_s'] / r['cpu_s']:8.1f}" if old else f"{'':8}"
        print(
            f"{r['step']:<50}{old['cpu_s'] if old else float('nan'):9.2f}{r['cpu_s']:9.2f}"
            f"{ratio}{r['wall_s']:10.2f}"
        )
    for k, v in checks.items():
        print(f"  {k}: {v}")
    result = {
        "benchmark": "events",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "clients": args.clients,
        "therapists": args.therapists,
        "rows": n_rows,
        "steps": rows,
        "checks": checks,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"numpy": np.__version__, "pandas": pd.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
