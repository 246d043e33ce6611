"""Benchmark: the report's monitoring section at 100,000 clients, against the pre-issue-16 scheme.

Run with ``python benchmarks/bench_monitoring.py`` (``make bench``; default 100,000 clients and
2,000 therapists, about 2.1 million rows, ~5 minutes on 2 shared cores). Simulates the study as
``bench_report.py`` does (``simulate_study(..., seed=7)``, one CSV wave, the same study YAML),
prepares the wave once (``--pickle PATH`` reuses a pickled prepared wave) and measures in the same
run, each step's wall time, CPU time (``time.process_time``: the machine is shared) and peak RSS:

* ``monitoring_section(wave)`` (expected curves, ``validate_alerts`` by therapist with 200
  bootstrap replicates, the alliance signals, the current states), as the report calls it;
* ``validate_alerts(cv="therapist")`` alone on the ended clients: above 50 therapists a grouped
  10-fold by therapist (one refit per fold);
* the old scheme, leave-one-therapist-out (one refit per therapist): ``--loto-folds`` of its
  folds are timed (the mixed model refitted without one therapist and the held-out clients
  scored) and the total extrapolated as ``validate_alerts + (therapists - 10) x fold time``;
* the bootstrap AUC of one session (the at-risk clients at session 3, 201 weight rows): the old
  implementation (``np.add.at`` on a dense ``replicates x clients`` matrix) against the new
  (sparse tie-group x therapist counts, blocks of 32 MB), with the results compared.

Writes ``benchmarks/results/monitoring.json``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al
from alliance_lib import monitoring as mon

sys.path.insert(0, str(Path(__file__).parent))
from bench_report import measure, prepare_simulated, write_simulated_study  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
# the AUC before issue 16 (np.add.at on a dense replicates x n weight matrix), kept in the tests
from test_monitoring import _weighted_auc_reference  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "monitoring.json"
TARGET_CPU_S = 15.0


def prepared_wave(args):
    if args.pickle and args.pickle.exists():
        with open(args.pickle, "rb") as f:
            return pickle.load(f), None
    tmp = tempfile.TemporaryDirectory(prefix="alliance-bench-monitoring-")
    folder = Path(tmp.name)
    write_simulated_study(folder, args.clients, args.therapists)
    wave = prepare_simulated(folder)
    if args.pickle:
        args.pickle.parent.mkdir(parents=True, exist_ok=True)
        with open(args.pickle, "wb") as f:
            pickle.dump(wave, f, protocol=5)
    return wave, tmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--therapists", type=int, default=2_000)
    parser.add_argument("--loto-folds", type=int, default=3)
    parser.add_argument("--pickle", type=Path, default=None, help="reuse/store the prepared wave")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import matplotlib

    matplotlib.use("Agg")
    from alliance_lib.sections import monitoring as sm

    load_before = os.getloadavg()
    mib = 2**20
    wave, _tmp = prepared_wave(args)
    steps: list[dict] = []

    def add(name, wall, cpu, peak, grow, **extra):
        steps.append(
            {
                "step": name,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "peak_rss_mib": round(peak / mib, 1),
                "rss_growth_mib": round(grow / mib, 1),
                **extra,
            }
        )

    section, *m = measure(lambda: sm.monitoring_section(wave))
    settings = section.numbers["validation_settings"]
    add("monitoring_section", *m, scheme=settings["scheme"], n_folds=settings["n_folds"])
    t_section_cpu = m[1]

    data = wave.sessions()
    data = data[data["outcome"].notna()]
    ended = data[~data["client_id"].isin(sm._ongoing(wave, None))]
    del data
    kw = dict(therapist="therapist_id", instrument="oq-45.2", sessions=[3, 5], n_boot=200)
    val, *m = measure(lambda: mon.validate_alerts(ended, "outcome", cv="therapist", **kw))
    add("validate_alerts (new scheme)", *m, scheme=val.settings["scheme"])
    t_val_cpu, t_val_wall = m[1], m[0]

    # the old scheme: leave-one-therapist-out, a few of its folds timed
    cutoff, rci, _ = mon._norms("oq-45.2", None, None, None)
    post, intake_w, _ = mon._frame(ended, "outcome", "client_id", "session", "therapist_id", 0, 1)
    _, labels = mon._client_outcomes(post, intake_w, rci, cutoff)
    fkw = dict(shape="linear", red=0.9, yellow=0.5, rci=rci, cutoff_w=cutoff, horizon=None)
    fkw.update(intake_session=0, therapist="therapist_id", direction="higher_is_worse")
    ther = post["therapist"].to_numpy()
    picks = pd.unique(ther)[: args.loto_folds]
    fold_cpu, fold_wall = [], []
    for t in picks:
        out = ther == t
        _, wall, cpu, *_ = measure(
            lambda out=out: mon._score_fold(post[~out], post[out], labels, mon.FAILURES, **fkw)
        )
        fold_cpu.append(cpu)
        fold_wall.append(wall)
    n_ther = int(pd.unique(ther).size)
    per_fold_cpu, per_fold_wall = float(np.mean(fold_cpu)), float(np.mean(fold_wall))
    k = val.settings["n_folds"]
    loto_cpu = t_val_cpu + (n_ther - k) * per_fold_cpu
    loto_wall = t_val_wall + (n_ther - k) * per_fold_wall
    steps.append(
        {
            "step": f"validate_alerts leave-one-therapist-out (extrapolated from {len(picks)} folds)",
            "wall_s": round(loto_wall, 1),
            "cpu_s": round(loto_cpu, 1),
            "per_fold_cpu_s": round(per_fold_cpu, 3),
            "folds": n_ther,
        }
    )

    # one session's bootstrap AUC, old against new
    sc = val.scores
    at = sc[(sc["session"] == 3) & (sc["session"] < sc["end"])]
    lab = labels["no_reliable_improvement"].reindex(at["client"]).to_numpy().astype(bool)
    score = at["percentile"].to_numpy()
    clusters, ccode = np.unique(sc["cluster"].astype(str), return_inverse=True)
    cw = ccode[at.index.to_numpy()]
    rng = np.random.default_rng(0)
    Wc = rng.multinomial(clusters.size, np.full(clusters.size, 1 / clusters.size), size=200)
    Wall = np.vstack([np.ones(clusters.size), Wc]).astype(float)
    new_auc, *m = measure(lambda: mon._weighted_auc(score, lab, Wall, cw))
    add("bootstrap AUC, one session (new)", *m, n=int(score.size))
    old_auc, *m = measure(lambda: _weighted_auc_reference(score, lab, Wall[:, cw]))
    add("bootstrap AUC, one session (old np.add.at)", *m, n=int(score.size))
    same = bool(np.array_equal(new_auc, old_auc, equal_nan=True))

    load_after = os.getloadavg()
    result = {
        "clients": args.clients,
        "therapists": args.therapists,
        "rows": int(len(wave.scored)),
        "steps": steps,
        "section_cpu_s": round(t_section_cpu, 3),
        "target_cpu_s": TARGET_CPU_S,
        "loto_over_new_cpu": round(loto_cpu / t_val_cpu, 1),
        "auc_identical": same,
        "old_weight_matrix_mib": round(Wall.shape[0] * score.size * 8 / mib, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "alliance_lib": al.__version__,
        },
        "machine": platform.platform(),
        "when_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"monitoring, {args.clients:,} clients, {args.therapists:,} therapists")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'step':<72}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}")
    for s in steps:
        print(
            f"{s['step']:<72}{s['wall_s']:9.2f}{s['cpu_s']:9.2f}"
            + (f"{s['peak_rss_mib']:10.0f}" if "peak_rss_mib" in s else "")
        )
    print(
        f"section CPU {t_section_cpu:.1f} s (target <= {TARGET_CPU_S:.0f} s: "
        f"{'met' if t_section_cpu <= TARGET_CPU_S else 'NOT met'}); validation scheme "
        f"{settings['scheme']} ({settings['n_folds']} folds); leave-one-therapist-out would "
        f"take ~{loto_cpu / t_val_cpu:.0f}x the CPU; bootstrap AUC identical: {same}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
