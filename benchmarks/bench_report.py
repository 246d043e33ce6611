"""Benchmark: the study report profiled by section, against ``pandas.read_csv`` (issues 6, 16).

Run with ``python benchmarks/bench_report.py`` (``make bench``; default 5,000 clients and 100
therapists, about 105,000 rows, a few minutes) or ``--clients 100000 --therapists 2000`` (about
2.1 million rows, the issue-16 size; add ``--no-full --section-timeout 240`` to profile the
sections in-process with a cap on any one section, since the rater cluster bootstrap alone runs
far longer at that size). Simulates a study with ``simulate_study`` (WAI-SR client and
therapist items, OQ-45.2 items), writes it as one CSV wave file, and measures in the same run:

* ``pandas.read_csv`` of that file (the reference: the report target is within 5x of it);
* ``prepare_wave`` (read, validate, score, pseudonymise);
* every section function the report template calls, in the template's order, in-process on the
  same prepared wave (so the shared, cached analyses are charged to the first section that needs
  them, as in the report); the calls are read from the template's ``sections = [...]`` cell, so
  the profile follows the template;
* the full ``alliance report`` command (papermill + export) in a subprocess.

Each step records wall time, CPU time (user + system, all threads; the machine is shared, so the
CPU time is the steadier number) and peak resident memory (sampled every 10 ms in a background
thread; the step's peak and its growth over the RSS before it). The full report's memory is the
peak of its whole process tree (``alliance report`` and its kernel, PSS summed every 0.2 s). The
load average before and after is recorded. Writes ``benchmarks/results/report.json``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import alliance_lib as al

RESULTS = Path(__file__).parent / "results" / "report.json"
TEMPLATE = Path(al.__file__).parent / "templates" / "study_report.ipynb"
TARGET_RATIO = 5.0  # report time / read_csv time (issue 16)
TARGET_RSS_GB = 3.0


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """Peak resident memory of this process while the block runs (10 ms sampling)."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval

    def __enter__(self):
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        return False


def measure(fn):
    """(result, wall s, cpu s, peak RSS bytes, RSS growth bytes) of ``fn()``."""
    gc.collect()
    with RssPeak() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        value = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return value, wall, cpu, mem.peak, mem.peak - mem.start


class SectionTimeout(Exception):
    """A section ran past ``--section-timeout`` (its time is then a lower bound)."""


def _alarm(signum, frame):
    raise SectionTimeout


def with_timeout(fn, seconds: float | None):
    """``fn()``, interrupted after ``seconds`` (None: no limit); returns None when interrupted."""
    if not seconds:
        return fn()
    import signal

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except SectionTimeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def template_section_calls(template: Path = TEMPLATE) -> list[str]:
    """The expressions of the template's ``sections = [...]`` list, in order."""
    nb = json.loads(template.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and "sections = [" in src:
            for node in ast.parse(src).body:
                if (
                    isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", "") == "sections"
                    and isinstance(node.value, ast.List)
                ):
                    return [ast.unparse(e) for e in node.value.elts]
    raise RuntimeError(f"no `sections = [...]` cell in {template.name}")


def template_parameters(template: Path = TEMPLATE) -> dict:
    nb = json.loads(template.read_text(encoding="utf-8"))
    params: dict = {}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            exec("".join(cell["source"]), {}, params)  # noqa: S102 - the shipped template
    return params


#: The benchmark studies' pseudonym key (a fixed public key: the data are simulated).
BENCH_KEY = "bench-secret-key-0001"


def write_simulated_study(folder: Path, n_clients: int, n_therapists: int) -> int:
    """``simulate_study(n_clients, n_therapists, seed=7)`` (WAI-SR client and therapist items,
    OQ-45.2 items) as ``folder/wave1.csv`` with its ``folder/study.yaml``; returns the rows.

    Every benchmark of the report's parts prepares this study. The pseudonym length grows with
    the number of IDs (:func:`alliance_lib.privacy.pseudonym_length`), so any fixed key works.
    """
    data = al.simulate_study(n_clients=n_clients, n_therapists=n_therapists, seed=7)
    n_rows = len(data)
    data.to_csv(folder / "wave1.csv", index=False)
    del data
    (folder / "study.yaml").write_text(
        "study: Benchmark study\ndata: {1: wave1.csv}\n"
        "columns: {client: client_id, therapist: therapist_id, session: session, "
        "rater: rater}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\n"
        f"privacy: {{salt: {BENCH_KEY}}}\n",
        encoding="utf-8",
    )
    return n_rows


def prepare_simulated(folder: Path) -> al.WaveData:
    """``prepare_wave`` of the study :func:`write_simulated_study` wrote (the privacy warning
    about a key in the study file is expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", al.privacy.PrivacyWarning)
        return al.prepare_wave(al.load_study(folder / "study.yaml"), 1)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _pss(pid: int) -> int:
    """Proportional set size of one process (shared pages split between their users), bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (from the parent ids in /proc)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        tree += frontier
    return tree


def run_measured(cmd: list[str], interval: float = 0.2) -> tuple[float, float, int, dict]:
    """Run ``cmd``; (wall s, CPU s of it and its children, peak PSS of its whole process tree
    in bytes, peak PSS of each process by role).

    The report is two processes, ``alliance report`` and its notebook kernel; their memory is
    summed, as PSS (a process forked from another shares its pages: RSS would count them twice,
    and ``RUSAGE_CHILDREN``'s maxrss is the largest single process, inherited across fork).
    """
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ, "MPLBACKEND": "Agg"})
    peak, per = 0, {"report": 0, "kernel": 0}
    while proc.poll() is None:
        pids = _descendants(proc.pid)
        sizes = {pid: _pss(pid) for pid in pids}
        peak = max(peak, sum(sizes.values()))
        per["report"] = max(per["report"], sizes.get(proc.pid, 0))
        per["kernel"] = max([per["kernel"]] + [v for k, v in sizes.items() if k != proc.pid])
        time.sleep(interval)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return time.perf_counter() - t0, _children_cpu() - cpu0, peak, per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5_000)
    parser.add_argument("--therapists", type=int, default=100)
    parser.add_argument("--no-full", action="store_true", help="skip the `alliance report` run")
    parser.add_argument(
        "--section-timeout",
        type=float,
        default=None,
        help="stop a section after this many seconds (its time is then a lower bound)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    mib = 2**20

    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        folder = Path(tmp)
        n_rows = write_simulated_study(folder, args.clients, args.therapists)
        steps: list[dict] = []

        def add(name, wall, cpu, peak, grow):
            steps.append(
                {
                    "step": name,
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "peak_rss_mib": round(peak / mib, 1),
                    "rss_growth_mib": round(grow / mib, 1),
                }
            )

        _, *m = measure(lambda: pd.read_csv(folder / "wave1.csv"))
        add("pandas.read_csv", *m)
        t_csv = m[0]

        # the full report first, in a subprocess, so the in-process steps below do not inflate it
        t_report = cpu_report = rss_report = None
        rss_parts: dict = {}
        if not args.no_full:
            t_report, cpu_report, rss_report, rss_parts = run_measured(
                [sys.executable, "-m", "alliance_lib.cli", "report", str(folder / "study.yaml")]
                + ["--wave", "1", "--out", str(folder / "report")]
            )

        wave, *m = measure(lambda: prepare_simulated(folder))
        add("prepare_wave", *m)

        from alliance_lib.sections import (  # noqa: F401 - names used by the template calls
            cross_lagged,
            data,
            events,
            monitoring,
            outcome,
            raters,
            scores,
            therapists,
            trajectories,
            waves,
        )

        def run(fn, *a, **k):  # the template's wrapper, without turning errors into skips
            return fn(*a, **k)

        ns = {**locals(), **template_parameters(), "w": wave, "np": np, "run": run}
        for call in template_section_calls():
            section, *m = measure(
                lambda call=call: with_timeout(
                    lambda: eval(call, ns),  # noqa: S307 - the template's own text
                    args.section_timeout,
                )
            )
            add(call.removeprefix("run(").split("(")[0].split(",")[0], *m)
            steps[-1]["timed_out"] = section is None
            for fig in getattr(section, "figures", []) or []:
                import matplotlib.pyplot as plt

                plt.close(getattr(fig, "figure", None) or "all")
        sections_wall = sum(s["wall_s"] for s in steps[1:])
        sections_cpu = sum(s["cpu_s"] for s in steps[1:])

    peak_inproc = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    load_after = os.getloadavg()
    result = {
        "clients": args.clients,
        "therapists": args.therapists,
        "rows": int(n_rows),
        "read_csv_seconds": round(t_csv, 3),
        "prepare_plus_sections_seconds": round(sections_wall, 3),
        "prepare_plus_sections_cpu_seconds": round(sections_cpu, 3),
        "report_seconds": None if t_report is None else round(t_report, 3),
        "report_cpu_seconds": None if cpu_report is None else round(cpu_report, 3),
        # the report's process tree (alliance report + kernel), PSS summed, sampled every 0.2 s
        "report_peak_rss_mib": None if rss_report is None else round(rss_report / mib, 1),
        "report_peak_by_process_mib": {k: round(v / mib, 1) for k, v in rss_parts.items()},
        "report_to_read_csv": None if t_report is None else round(t_report / t_csv, 2),
        "in_process_peak_rss_mib": round(peak_inproc / mib, 1),
        "target_ratio": TARGET_RATIO,
        "target_rss_gb": TARGET_RSS_GB,
        "steps": steps,
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
    print(
        f"study report, {args.clients:,} clients, {args.therapists:,} therapists ({n_rows:,} rows)"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(f"{'step':<46}{'wall s':>9}{'cpu s':>9}{'x csv':>8}{'peak MiB':>10}{'+MiB':>8}")
    for s in steps:
        print(
            f"{s['step']:<46}{s['wall_s']:9.2f}{s['cpu_s']:9.2f}{s['wall_s'] / t_csv:8.2f}"
            f"{s['peak_rss_mib']:10.0f}{s['rss_growth_mib']:8.0f}"
            + ("  (stopped: lower bound)" if s.get("timed_out") else "")
        )
    print(
        f"{'prepare + all sections (in-process)':<46}{sections_wall:9.2f}{sections_cpu:9.2f}"
        f"{sections_wall / t_csv:8.2f}{peak_inproc / mib:10.0f}"
    )
    if t_report is not None:
        met = t_report / t_csv <= TARGET_RATIO and rss_report / 2**30 <= TARGET_RSS_GB
        print(
            f"{'full `alliance report` (subprocess)':<46}{t_report:9.2f}{cpu_report:9.2f}"
            f"{t_report / t_csv:8.2f}{rss_report / mib:10.0f}"
            f"   target <= {TARGET_RATIO:.0f}x read_csv, <= {TARGET_RSS_GB:.0f} GB: "
            f"{'met' if met else 'NOT met'}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
