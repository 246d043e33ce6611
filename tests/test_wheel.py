"""A built wheel, installed into a fresh virtual environment, runs `alliance report` (the report
template is package data, not a file of the checkout)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.notebook]


def test_wheel_install_runs_the_report(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("alliance_lib-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # the dependencies come from the test environment (a path line, so its editable install
    # of alliance_lib is not activated); the wheel's own copy comes first on sys.path
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import alliance_lib, alliance_lib.report as r; "
         "print(alliance_lib.__file__); print(r.TEMPLATE.is_file())"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(venv)) and where[1] == "True"

    study = tmp_path / "study"
    study.mkdir()
    text = (ROOT / "data" / "demo" / "study.yaml").read_text()
    (study / "study.yaml").write_text(text.replace(
        "data: {1: wave1.csv, 2: wave2.csv, 3: wave3.csv}", "data: {1: wave1.csv}"))  # fmt: skip
    shutil.copy(ROOT / "data" / "demo" / "wave1.csv", study / "wave1.csv")
    # nbconvert's templates are data files of the environment that holds nbconvert
    env = {**os.environ, "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    run = subprocess.run(
        [str(venv / "bin" / "alliance"), "report", "study/study.yaml", "--wave", "1",
         "--out", "out", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = tmp_path / "out" / "demo" / "wave-1"
    assert (report / "report.html").is_file()
    results = json.loads((report / "results.json").read_text())
    assert results["study"]["wave"] == 1
