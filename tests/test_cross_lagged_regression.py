"""The faster cross-lagged path (shared panel, integer-coded missing-data patterns, batched
finite-difference information) against the numbers of the code before it (issue 16).

Fixture: ``tests/reference/make_cross_lagged_regression.py`` run on commit a0ab212 (demo study
wave 3; simulated data with dropout and 4 % missed scores, 400 and 3,500 clients). Tolerance:
1e-8 relative, against ``max(|reference|, 1e-8)`` (the new path does the same floating-point
operations in the same order, so in practice the numbers are identical).
"""

import json
import math
import sys
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from alliance_lib.cross_lagged import cross_lagged_panel, fit_cross_lagged
from alliance_lib.sections.cross_lagged import cross_lagged_section
from alliance_lib.study import load_study
from alliance_lib.waves import prepare_wave

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))
from make_cross_lagged_regression import CASES, gaps_data  # noqa: E402

REF = json.loads((HERE / "reference" / "fixtures" / "cross_lagged_regression.json").read_text())
RTOL = 1e-8


def _close(new, old, path=""):
    """Assert two JSON-like structures equal, numbers to RTOL relative."""
    if isinstance(old, dict):
        assert set(new) == set(old), path
        for k in old:
            _close(new[k], old[k], f"{path}/{k}")
    elif isinstance(old, list):
        assert len(new) == len(old), path
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(old, float) or isinstance(new, float):
        if old is None or new is None:
            assert new is None and old is None, path
        else:
            assert math.isclose(new, old, rel_tol=RTOL, abs_tol=RTOL * 1e-8) or abs(
                new - old
            ) <= RTOL * max(abs(old), 1e-8), (path, new, old)
    else:
        assert new == old, path


@cache
def _data(n):
    return gaps_data(n)


def _record(fit):
    p = fit.parameters
    return {
        "estimate": p["estimate"].tolist(),
        "se": [None if not np.isfinite(v) else float(v) for v in p["se"]],
        "numbers": fit.to_dict(),
        "iterations": int(fit.raw.iterations),
    }


@pytest.mark.parametrize("case", sorted(k for k in REF["simulated"] if k.startswith("400/")))
def test_fits_equal_the_previous_code(case):
    n, name = case.split("/")
    fit = fit_cross_lagged(_data(int(n)), "alliance", "outcome", **CASES[name])
    _close(_record(fit), REF["simulated"][case], case)


def test_fits_from_one_shared_panel_equal_separate_fits():
    panel = cross_lagged_panel(_data(400), "alliance", "outcome")
    for name, kw in CASES.items():  # one panel: patterns and the h1 model reused across models
        fit = fit_cross_lagged(panel, "alliance", "outcome", **kw)
        _close(_record(fit), REF["simulated"][f"400/{name}"], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["riclpm", "mlsem"])
def test_pilot_path_equals_the_previous_code(name):
    # 3,500 clients and > 200 patterns: the pilot fit on a subset starts the full fit
    panel = _panel_3500()
    fit = fit_cross_lagged(panel, "alliance", "outcome", **CASES[name])
    _close(_record(fit), REF["simulated"][f"3500/{name}"], name)


@cache
def _panel_3500():
    return cross_lagged_panel(_data(3500), "alliance", "outcome")


def test_demo_section_numbers_equal_the_previous_code():
    study = load_study(HERE.parent / "data" / "demo" / "study.yaml")
    with warnings.catch_warnings():  # the demo keeps its pseudonym key in study.yaml
        warnings.simplefilter("ignore")
        wave = prepare_wave(study, 3)
    sec = cross_lagged_section(wave)
    _close(json.loads(json.dumps(sec.numbers)), REF["demo"]["numbers"], "demo")


def test_panel_must_match_the_scores_and_waves():
    from alliance_lib.trajectories import ModelError

    panel = cross_lagged_panel(_data(400), "alliance", "outcome")
    with pytest.raises(ModelError, match="panel holds"):
        fit_cross_lagged(panel, "outcome", "alliance")
    with pytest.raises(ModelError, match="waves"):
        fit_cross_lagged(panel, "alliance", "outcome", waves=[1, 2, 3])
