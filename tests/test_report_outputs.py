"""run_report's contract with the user's folders: `--out` is a root in every mode, nothing the
program did not write is removed or overwritten, outputs hold no absolute path and fetch nothing."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from alliance_lib.cli import main
from alliance_lib.errors import ReportError
from alliance_lib.report import report_files, run_report

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def _study_folder(tmp_path: Path) -> Path:
    """A copy of the demo study (wave 1 only) beside the user's own files."""
    folder = tmp_path / "my study"
    folder.mkdir()
    text = (
        (DEMO / "study.yaml")
        .read_text()
        .replace("data: {1: wave1.csv, 2: wave2.csv, 3: wave3.csv}", "data: {1: wave1.csv}")
    )
    (folder / "study.yaml").write_text(text)
    shutil.copy(DEMO / "wave1.csv", folder / "wave1.csv")
    (folder / "notes.txt").write_text("my notes\n")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def run_in_study_folder(tmp_path_factory):
    """`alliance report study.yaml --out .` run from inside the study folder."""
    tmp = tmp_path_factory.mktemp("out-dot")
    folder = _study_folder(tmp)
    before = _snapshot(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        status = main(["report", "study.yaml", "--wave", "1", "--out", ".", "--quiet"])
    finally:
        os.chdir(cwd)
    return folder, before, status


def test_out_dot_keeps_the_users_files(run_in_study_folder):
    folder, before, status = run_in_study_folder
    assert status == 0
    after = _snapshot(folder)
    assert {k: after[k] for k in before} == before, "a file of the user's changed"
    assert (folder / "demo" / "wave-1" / "report.html").is_file()


def test_outputs_hold_no_absolute_path(run_in_study_folder):
    folder, _, _ = run_in_study_folder
    report = folder / "demo" / "wave-1"
    import alliance_lib

    library = Path(alliance_lib.__file__).resolve().parents[1]
    forbidden = {
        str(folder.resolve()),
        str(folder.parent.resolve()),
        str(Path.home()),
        str(library),
    }
    forbidden.discard("/")
    for path in report.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".html", ".json", ".csv"):
            text = path.read_text(encoding="utf-8")
            for absolute in forbidden:
                assert absolute not in text, f"{path.name} holds {absolute}"
    prov = json.loads((report / "provenance.json").read_text())
    assert set(prov["inputs_sha256"]) >= {"study.yaml", "wave1.csv"}
    assert "git_dirty" in prov and "git_commit" in prov
    assert "python_executable" not in prov
    assert prov["privacy"]["small_cell"] == 5
    assert sorted(prov["outputs"]) == sorted(report_files(report))
    nb = json.loads((report / "report.ipynb").read_text())
    assert nb["metadata"]["papermill"]["input_path"] == "study_report.ipynb"


def test_report_html_fetches_nothing(run_in_study_folder):
    folder, _, _ = run_in_study_folder
    html = (folder / "demo" / "wave-1" / "report.html").read_text(encoding="utf-8")
    remote = re.findall(
        r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^\"'>\s]*",
        html,
        flags=re.IGNORECASE,
    )
    assert remote == []
    assert not re.search(r"@import\s+url\(\s*[\"']?https?://", html)
    assert "<title>Demo alliance study: wave 1 report</title>" in html


def test_rerun_replaces_only_its_own_files(run_in_study_folder):
    folder, _, _ = run_in_study_folder
    report = folder / "demo" / "wave-1"
    (report / "my-comments.docx").write_bytes(b"user's own file")
    before = _snapshot(report)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with pytest.raises(ReportError, match=r"my-comments\.docx") as err:
            run_report("study.yaml", 1, ".", quiet=True)
    finally:
        os.chdir(cwd)
    assert "Nothing was changed" in str(err.value)
    assert _snapshot(report) == before
    (report / "my-comments.docx").unlink()


def test_out_reports_leaves_another_studys_reports(tmp_path):
    folder = _study_folder(tmp_path)
    other = tmp_path / "reports" / "other-study" / "wave-1"
    other.mkdir(parents=True)
    (other / "report.html").write_text("another study's report")
    (tmp_path / "reports" / "index.html").write_text("the user's own index")
    before = _snapshot(tmp_path / "reports")
    out = run_report(folder / "study.yaml", 1, tmp_path / "reports", quiet=True)
    assert out == (tmp_path / "reports" / "demo" / "wave-1").resolve()
    after = _snapshot(tmp_path / "reports")
    assert {k: after[k] for k in before} == before


def test_a_foreign_wave_folder_stops_the_run_before_a_kernel(tmp_path, capsys):
    folder = _study_folder(tmp_path)
    target = tmp_path / "out" / "demo" / "wave-1"
    target.mkdir(parents=True)
    (target / "results.json").write_text("{}")  # same name as ours, but not our report
    status = main(["report", str(folder / "study.yaml"), "--wave", "1", "--out",
                   str(tmp_path / "out"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert "no provenance.json" in err and "results.json" in err and "--out" in err
    assert len(err.strip().splitlines()) == 1
    assert (target / "results.json").read_text() == "{}"
    assert not list(target.parent.glob(".wave-1.tmp-*"))


def test_all_waves_uses_the_same_root(tmp_path):
    folder = _study_folder(tmp_path)
    paths = run_report(folder / "study.yaml", out_dir=tmp_path / "r", all_waves=True, quiet=True)
    assert paths == [(tmp_path / "r" / "demo" / "wave-1").resolve()]
    index = (tmp_path / "r" / "demo" / "index.html").read_text()
    assert 'href="wave-1/report.html"' in index
    # an index page of the user's own is never overwritten
    (tmp_path / "r" / "demo" / "index.html").write_text("mine")
    with pytest.raises(ReportError, match="index.html exists"):
        run_report(folder / "study.yaml", out_dir=tmp_path / "r", all_waves=True, quiet=True)
    assert (tmp_path / "r" / "demo" / "index.html").read_text() == "mine"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_provenance_says_whether_the_library_checkout_is_dirty(run_in_study_folder):
    folder, _, _ = run_in_study_folder
    prov = json.loads((folder / "demo" / "wave-1" / "provenance.json").read_text())
    root = Path(__file__).resolve().parents[1]
    inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True)
    if inside.returncode == 0:
        assert prov["git_commit"] == inside.stdout.decode().strip()
        assert isinstance(prov["git_dirty"], bool)
