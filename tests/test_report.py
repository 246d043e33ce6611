"""The wave report through papermill: outputs, determinism, privacy, failure safety."""

import html
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from alliance_lib.privacy import pseudonymise
from alliance_lib.report import TEMPLATE, ReportError, run_report
from alliance_lib.simulate import simulate_study
from alliance_lib.study import StudyError

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "study.yaml"
OUTPUTS = {"report.ipynb", "report.html", "results.json", "provenance.json", "quarantine.csv"}
EXPORTS = {"figures", "tables", "tables.docx"}
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_wave1(tmp_path_factory):
    return run_report(DEMO, 1, tmp_path_factory.mktemp("reports"), quiet=True)


@pytest.fixture
def demo_wave3(demo_wave3_report):
    """The session's demo wave-3 report (tests/conftest.py), read-only."""
    return demo_wave3_report


def test_wave3_has_every_section_and_wave_over_wave(demo_wave3):
    results = json.loads((demo_wave3 / "results.json").read_text())
    assert [r["wave"] for r in results["wave_over_wave"]["summary"]] == [1, 2, 3]
    assert len(results["figures"]) >= 8
    html = (demo_wave3 / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<img[^>]+src=\"data:image/png;base64", html)) >= 8
    for section in (
        "reliability",
        "shape_comparison",
        "therapist_effects",
        "rater_agreement",
        "alliance_outcome",
        "ruptures",
        "sudden_gains",
        "clinical_significance",
    ):
        value = results[section]
        assert not (isinstance(value, dict) and value.get("skipped")), f"{section} skipped"
    effects = results["therapist_effects"]
    assert all(row["n_clients"] >= effects["small_cell_threshold"] for row in effects["table"])
    assert not re.search(r"CL-\d{4}|TH-\d{2}", html)


def test_writes_the_five_files(demo_wave1):
    assert {p.name for p in demo_wave1.iterdir()} == OUTPUTS | EXPORTS


def test_html_has_figures_no_code_no_raw_ids(demo_wave1):
    html = (demo_wave1 / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r"data:image/png;base64", html)) >= 3
    assert "prepare_wave(" not in html and "import alliance_lib" not in html
    assert 'class="highlight' not in html, "code cells in the HTML"
    assert not re.search(r"CL-\d{4}", html), "raw client IDs in the HTML"
    assert not re.search(r"TH-\d{2}", html), "raw therapist IDs in the HTML"


def test_results_and_quarantine_are_consistent(demo_wave1):
    results = json.loads((demo_wave1 / "results.json").read_text())
    q = pd.read_csv(demo_wave1 / "quarantine.csv")
    dq = results["data_quality"]
    assert dq["rows_read"] == dq["rows_analysed"] + dq["rows_quarantined"]
    assert dq["rows_quarantined"] == len(q) > 0
    wave1 = pd.read_csv(DEMO.parent / "wave1.csv")
    assert dq["rows_read"] == len(wave1)
    assert not q["client_id"].astype(str).str.match(r"CL-\d").any()
    assert q["reason"].str.contains("duplicate").sum() == 2  # both copies of the duplicated row
    assert results["study"]["wave"] == 1


def test_provenance_records_inputs_and_environment(demo_wave1):
    prov = json.loads((demo_wave1 / "provenance.json").read_text())
    assert prov["wave"] == 1
    hashes = prov["inputs_sha256"]
    assert any(k.endswith("wave1.csv") for k in hashes)
    assert not any(k.endswith("wave2.csv") for k in hashes)
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in hashes.values())
    assert prov["package_versions"]["pandas"] == pd.__version__
    assert "python_executable" not in prov and prov["seed"] == 2026
    assert prov["started_utc"] <= prov["finished_utc"]
    # the wave prepared before the kernel started was handed over (read once), then removed
    assert prov["prepared_once"] is True and "prepared_wave" not in prov["parameters"]
    assert not any(p.name.endswith(".pickle") for p in demo_wave1.rglob("*"))
    nb = (demo_wave1 / "report.ipynb").read_text(encoding="utf-8")
    assert 'prepared_wave = \\".prepared-wave.pickle\\"' in nb


def test_same_inputs_same_results_bytes(demo_wave1, tmp_path):
    again = run_report(DEMO, 1, tmp_path / "again", quiet=True)
    assert (again / "results.json").read_bytes() == (demo_wave1 / "results.json").read_bytes()


def test_report_with_a_covariate_and_small_caseloads(tmp_path):
    d = simulate_study(n_clients=40, n_therapists=12, seed=10)
    rng = np.random.default_rng(0)
    age = pd.Series(rng.integers(18, 70, 40), index=sorted(d["client_id"].unique()))
    d["age"] = d["client_id"].map(age).where(d["session"] == 0)  # entered at intake only
    d.to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: With covariate\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "columns: {client: client_id, therapist: therapist_id, session: session, rater: rater}\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\ncovariates: [age]\n"
    )
    out = run_report(tmp_path / "study.yaml", 1, tmp_path / "report", quiet=True)
    terms = [
        r["term"] for r in json.loads((out / "results.json").read_text())["trajectory"]["fixed"]
    ]
    assert terms == ["Intercept", "session", "age", "session:age"]
    # therapists with fewer than 5 clients are suppressed from every therapist display
    results = json.loads((out / "results.json").read_text())
    caseload = d.groupby("therapist_id")["client_id"].nunique()
    from alliance_lib.study import load_study

    key = load_study(tmp_path / "study.yaml").pseudonym_key  # created by the run, outside
    assert "configuration folder" in key.source  # the study folder (no key configured)
    small = pseudonymise(pd.Series(caseload[caseload < 5].index), salt=key.key)
    assert len(small) > 0
    for section in ("therapist_effects", "event_rates_by_therapist"):
        table = results[section]["table"]
        assert results[section]["n_suppressed"] == len(small)
        assert all(row["n_clients"] >= 5 for row in table)
        assert not set(small) & {row["therapist_id"] for row in table}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert not any(p in html for p in small)
    (tmp_path / "study.yaml").write_text(
        (tmp_path / "study.yaml").read_text().replace("[age]", "[agee]")
    )
    with pytest.raises(StudyError, match="'covariates'.*'agee' not found in w1.csv"):
        run_report(tmp_path / "study.yaml", 1, tmp_path / "report2", quiet=True)


def test_report_without_therapists_or_outcome(tmp_path):
    d = simulate_study(n_clients=40, n_therapists=4, seed=9, therapist_ratings=False)
    d = d.drop(columns=["therapist_id", "date"] + [c for c in d if c.startswith("oq_")])
    d = d[d["session"] >= 1]
    d.to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: Alliance only\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr}\n"
    )
    out = run_report(tmp_path / "study.yaml", 1, tmp_path / "report", quiet=True)
    results = json.loads((out / "results.json").read_text())
    assert results["early_alliance"]["skipped"] is True
    assert results["sample"]["n_therapists"] is None
    assert results["trajectory"]["n_clients"] == 40


def _broken_template(tmp_path):
    nb = nbformat.read(TEMPLATE, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')"))
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    return path


def test_failed_run_keeps_previous_report(demo_wave1, tmp_path):
    target = tmp_path / "demo" / "wave-1"
    target.mkdir(parents=True)
    for name in OUTPUTS:
        (target / name).write_bytes((demo_wave1 / name).read_bytes())
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(ReportError) as err:
        run_report(DEMO, 1, tmp_path, template=_broken_template(tmp_path), quiet=True)
    message = str(err.value)
    assert "RuntimeError: deliberate failure" in message and "cell" in message
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert err.value.failed_notebook.is_file()
    assert not list(target.parent.glob(".wave-1.tmp-*")), "staging folder left behind"


def test_unknown_parameter_is_an_error(tmp_path):
    nb = nbformat.read(TEMPLATE, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = "\n".join(
        line for line in params.source.splitlines() if not line.startswith("seed")
    )
    path = tmp_path / "old.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ReportError, match="unknown parameter.*seed"):
        run_report(DEMO, 1, tmp_path / "out", template=path, quiet=True)


def test_bad_study_input_is_a_clear_error(tmp_path):
    with pytest.raises(StudyError, match="wave 7 is not defined"):
        run_report(DEMO, 7, tmp_path / "x", quiet=True)


def test_killed_run_leaves_previous_report_intact(demo_wave1, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "demo" / "wave-1"
    target.mkdir(parents=True)
    for name in OUTPUTS:
        (target / name).write_bytes((demo_wave1 / name).read_bytes())
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    cmd = [
        sys.executable,
        "-m",
        "alliance_lib.cli",
        "report",
        str(DEMO),
        "--wave",
        "1",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not list(target.parent.glob(".wave-1.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    staging = list(target.parent.glob(".wave-1.tmp-*"))
    assert staging, "the run never started staging"
    time.sleep(1.0)  # mid-run: the kernel is executing the notebook
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    # the next run clears the dead run's staging folder and replaces the report
    assert run_report(DEMO, 1, tmp_path, quiet=True) == target.resolve()
    assert not list(target.parent.glob(".wave-1.tmp-*"))
    assert (target / "results.json").read_bytes() == before["results.json"]


# ---------------------------------------------------------------- what the reader sees
FORBIDDEN = re.compile(r"\bnan\b|\bNone\b|\bTrue\b|\bFalse\b|\d[eE][+-]\d|<NA>", re.I)


def _key_paths(value, prefix=""):
    """Every key path of a results.json value; ``[]`` marks the rows of a table."""
    if isinstance(value, dict):
        out = {prefix} if not value and prefix else set()
        for k, v in value.items():
            out |= _key_paths(v, f"{prefix}/{k}" if prefix else k)
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return set().union(*(_key_paths(v, prefix + "[]") for v in value))
    return {prefix}


def test_template_is_a_short_sequence_of_calls():
    nb = nbformat.read(TEMPLATE, as_version=4)
    code = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(code) < 100, len(code)
    source = "\n".join(code)
    assert source.count('client="client_id"') == 0 and "Section.skip" not in source
    assert "results.skip" not in source  # one skip mechanism: the sections' own
    assert (TEMPLATE.parents[2] / "notebooks" / "study_report.ipynb").read_bytes() == (
        TEMPLATE.read_bytes()
    )


def test_results_json_keeps_every_number_it_had(demo_wave3):
    before = set(
        json.loads((Path(__file__).parent / "data" / "report_results_keys.json").read_text())
    )
    now = _key_paths(json.loads((demo_wave3 / "results.json").read_text()))
    assert before - now == set()
    assert {"early_alliance_outcome/fixed[]/estimate", "early_alliance_outcome/caveat"} <= now


def test_report_opens_with_the_findings_and_contents(demo_wave3):
    page = (demo_wave3 / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"<style.*?</style>|<script.*?</script>", "", page, flags=re.S)
    order = [
        text.index("Demo alliance study: wave 3 report"),
        text.index("data cut-off 2026-05-31"),
        text.index("<h2>This wave</h2>"),
        text.index("<h2>Contents</h2>"),
        text.index('id="sec-data_quality">1. Data quality'),
        text.index('id="methods">Methods'),
        text.index('id="references">References'),
    ]
    assert order == sorted(order)
    box = text[order[2] : order[3]]
    for phrase in (
        "300 clients seen by 20 therapists",
        "quarantined",
        "per session",
        "Within clients",
        "between therapists",
        "ruptures",
        "sudden gains",
        "recovered",
        "Since wave 2",
    ):
        assert phrase in box, phrase
    assert "@media print" in page and "overflow: visible" in page


def test_report_tables_and_figures_are_fit_for_readers(demo_wave3):
    page = (demo_wave3 / "report.html").read_text(encoding="utf-8")
    assert 'class="dataframe' not in page, "a raw DataFrame was rendered"
    tables = re.findall(r"<table>.*?</table>", page, re.S)
    assert len(tables) >= 15
    for t in tables:
        cells = " ".join(re.sub(r"<[^>]+>", " ", t).split())
        assert not FORBIDDEN.search(cells), FORBIDDEN.search(cells).group(0)
        assert not re.search(r"\b\d+\.0{3}\b", cells), "an integer shown as a float"
    numbers = [int(n) for n in re.findall(r"<strong>Table (\d+)</strong>", page)]
    assert numbers == list(range(1, len(tables) + 1))
    imgs = [t for t in re.findall(r"<img [^>]+>", page) if 'src="data:image/png;base64,' in t]
    alts = [html.unescape(re.search(r'alt="([^"]*)"', t).group(1)) for t in imgs]
    assert len(alts) == len(json.loads((demo_wave3 / "results.json").read_text())["figures"])
    assert [a.split(".")[0] for a in alts] == [f"Figure {i}" for i in range(1, len(alts) + 1)]
    assert "No description has been provided" not in page
    assert "wai-sr (client)" not in page


def test_exports_match_the_report(demo_wave3):
    from docx import Document as WordDocument

    n_fig = len(json.loads((demo_wave3 / "results.json").read_text())["figures"])
    assert len(list((demo_wave3 / "figures").glob("figure-*.png"))) == n_fig
    assert len(list((demo_wave3 / "figures").glob("figure-*.svg"))) == n_fig
    page = (demo_wave3 / "report.html").read_text(encoding="utf-8")
    n_tab = len(re.findall(r"<strong>Table (\d+)</strong>", page))
    assert len(list((demo_wave3 / "tables").glob("table-*.csv"))) == n_tab
    assert len(WordDocument(str(demo_wave3 / "tables.docx")).tables) == n_tab


def test_a_dead_runs_staging_with_the_handed_over_wave_is_cleared(tmp_path):
    import subprocess
    import sys

    from alliance_lib import report
    from alliance_lib.waves import PREPARED_NAME

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    target = tmp_path / "demo" / "wave-1"
    ours = target.parent / f".wave-1.tmp-{dead}"
    ours.mkdir(parents=True)
    (ours / PREPARED_NAME).write_bytes(b"pickle")  # killed while the kernel ran
    (ours / "report.ipynb").write_text("{}")
    report._remove_stale_staging(target)
    assert not ours.exists()
    foreign = target.parent / f".wave-1.tmp-{dead}"
    foreign.mkdir()
    (foreign / PREPARED_NAME).write_bytes(b"pickle")
    (foreign / "notes.txt").write_text("the user's")  # not ours: the folder stays
    report._remove_stale_staging(target)
    assert (foreign / "notes.txt").read_text() == "the user's"
