"""The project installs as documented: version, console script, environment.yml in step."""

import re
import shutil
import tomllib
from pathlib import Path

import yaml

import alliance_lib

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?(\.dev\d+)?", alliance_lib.__version__)


def test_environment_yml_installs_the_project_extras():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    (line,) = [p for p in pip_lines if p.startswith("-e")]
    named = set(re.search(r"\[(.*)\]", line).group(1).split(","))
    assert named == extras, f"environment.yml installs {named}, pyproject defines {extras}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert python.split("=")[1].startswith(minimum)


def test_console_script_is_declared_and_installed():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["alliance"] == "alliance_lib.cli:main"
    assert shutil.which("alliance") or (ROOT / ".venv" / "bin" / "alliance").exists()


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make report" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
