"""Shared test set-up: a non-interactive matplotlib backend and paths to bundled data."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# pseudonym keys created by tests go to a throw-away folder, never the user's config folder
os.environ["ALLIANCE_KEY_DIR"] = tempfile.mkdtemp(prefix="alliance-test-keys-")
os.environ.pop("ALLIANCE_SALT", None)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def demo_study_yaml() -> Path:
    return DEMO / "study.yaml"
