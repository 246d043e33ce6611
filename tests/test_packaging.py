"""The project installs as documented: version, console script, environment.yml in step."""

import re
import shutil
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import alliance_lib

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?(\.dev\d+)?", alliance_lib.__version__)


def _lock_pins():
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_every_declared_dependency_within_its_range():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = list(pyproject["project"]["dependencies"])
    for extra in pyproject["project"]["optional-dependencies"].values():
        declared += extra
    declared += pyproject["build-system"]["requires"]
    pins = _lock_pins()
    for spec in declared:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"{req.name} is declared in pyproject.toml but not locked; run make lock"
        )
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} in requirements/lock.txt is outside {req.specifier}; "
            "run make lock"
        )
    text = (ROOT / "requirements" / "lock.txt").read_text()
    assert "--hash=sha256:" in text


def test_environment_yml_installs_the_lock():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements/lock.txt" in pip_lines and "--require-hashes" in pip_lines
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert python.split("=")[1].startswith(minimum)


def test_make_installs_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps -r $(LOCK)" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile


def test_console_script_is_declared_and_installed():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["alliance"] == "alliance_lib.cli:main"
    assert shutil.which("alliance") or (ROOT / ".venv" / "bin" / "alliance").exists()


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make report" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_report_template_ships_in_the_package_and_matches_the_readable_copy():
    from alliance_lib.report import TEMPLATE

    assert TEMPLATE.is_relative_to(Path(alliance_lib.__file__).parent)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "templates/*.ipynb" in pyproject["tool"]["setuptools"]["package-data"]["alliance_lib"]
    copy = ROOT / "notebooks" / "study_report.ipynb"
    assert TEMPLATE.read_bytes() == copy.read_bytes(), (
        "notebooks/study_report.ipynb differs from alliance_lib/templates/study_report.ipynb: "
        "edit the package copy and run `make template-copy`"
    )


def test_every_public_name_resolves_and_functions_win_over_modules():
    import alliance_lib.reliability  # noqa: F401  (binds the module's function, not the module)
    import alliance_lib.ruptures  # noqa: F401

    for name in alliance_lib.__all__:
        assert getattr(alliance_lib, name) is not None, name
    for name in ("reliability", "ruptures", "validate"):
        assert callable(getattr(alliance_lib, name)), name


def test_version_and_help_are_fast_and_import_no_heavy_module():
    import subprocess
    import sys
    import time

    code = (
        "import sys, alliance_lib.cli as c\n"
        "try:\n    c.main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'numpy', 'scipy', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout
    for args in (["--version"], ["--help"], ["report", "--help"]):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alliance_lib.cli", *args], capture_output=True)
        assert time.perf_counter() - start < 1.0, args
