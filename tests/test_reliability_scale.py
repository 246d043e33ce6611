"""The reliability tables at scale (issue 16): sufficient statistics, same numbers as before.

The fixture tests/reference/fixtures/reliability_legacy.json holds the tables computed by the
implementation of commit cacbbd7 (tests/reference/make_reliability_legacy.py): the report's
tables on the demo study (wave 3) and ``reliability`` / ``multilevel_reliability`` by rater on
a simulated study with unbalanced clusters and missing items.

Tolerances: the single-level table (alpha, Feldt limits, one-factor and Schmid-Leiman omega)
is computed from the same rows with the same arithmetic, 1e-12 relative (observed: equal).
The two-level CFA is fitted from sufficient statistics summed in another order, and L-BFGS-B
stops (``ftol=1e-15``) where the log-likelihood changes at the level of rounding, so the
estimates along the flat directions of the likelihood move by up to ~1e-8 relative: loglik
1e-12 relative, the omegas 2e-8 relative (observed at most 9.5e-9).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.sections import common

rel = sys.modules["alliance_lib.reliability"]
FIXTURE = Path(__file__).parent / "reference" / "fixtures" / "reliability_legacy.json"
LEGACY = json.loads(FIXTURE.read_text(encoding="utf-8"))
ROOT = Path(__file__).resolve().parents[1]
SINGLE_TOL = 1e-12
LOGLIK_TOL = 1e-12
OMEGA_ML_TOL = 2e-8


def assert_same(table: pd.DataFrame, key: str, tolerances: dict[str, float], default: float):
    old = pd.DataFrame(LEGACY[key])
    assert len(table) == len(old), key
    for col in old.columns:
        a, b = table[col], old[col]
        if col in ("rater", "scale", "instrument", "omega_model", "model", "note"):
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), col
            continue
        if col in ("converged", "heywood"):
            assert a.astype(bool).tolist() == b.astype(bool).tolist(), col
            continue
        x = a.astype(float).to_numpy()
        y = b.astype(float).to_numpy()
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f"{key} {col}")
        ok = ~np.isnan(y)
        np.testing.assert_allclose(
            x[ok], y[ok], rtol=tolerances.get(col, default), atol=0, err_msg=f"{key} {col}"
        )


ML_TOL = {"omega_within": OMEGA_ML_TOL, "omega_between": OMEGA_ML_TOL, "loglik": LOGLIK_TOL}


@pytest.fixture(scope="module")
def demo_wave():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return al.prepare_wave(al.load_study(ROOT / "data" / "demo" / "study.yaml"), 3)


def test_demo_tables_equal_the_previous_implementation(demo_wave):
    single, _ = common.reliability_table(demo_wave)
    assert_same(single, "demo_single", {}, SINGLE_TOL)
    assert_same(common.multilevel_reliability_table(demo_wave), "demo_multilevel", ML_TOL, 1e-12)


@pytest.mark.parametrize("inst", ["wai-sr", "oq-45.2"])
def test_simulated_tables_equal_the_previous_implementation(inst):
    df = al.simulate_study(n_therapists=10, n_clients=400, seed=3)
    kw = dict(by="rater", missing_codes=(-99, 999), errors="omit")
    assert_same(al.reliability(df, inst, **kw), f"sim_{inst}_single", {}, SINGLE_TOL)
    ml = al.multilevel_reliability(df, inst, **kw)
    assert_same(ml, f"sim_{inst}_multilevel", ML_TOL, 1e-12)


def _naive_stats(x: np.ndarray, cl: np.ndarray) -> dict:
    """The two-level statistics by a pandas group-by over complete rows (the definition)."""
    frame = pd.DataFrame(x)
    keep = frame.notna().all(axis=1).to_numpy()
    frame, cl = frame[keep], cl[keep]
    grp = frame.groupby(cl, sort=False)
    means = grp.transform("mean")
    dev = (frame - means).to_numpy()
    ybar = grp.mean()
    nj = grp.size().reindex(ybar.index).to_numpy()
    out = {"n": len(frame), "nclus": len(ybar), "wss": dev.T @ dev}
    out["cov_means"] = np.cov(ybar.to_numpy(), rowvar=False)
    sizes = np.unique(nj)
    out["sizes"] = sizes.astype(float)
    out["cnt"] = np.array([(nj == s).sum() for s in sizes], dtype=float)
    yb = ybar.to_numpy()
    out["msum"] = np.array([yb[nj == s].sum(axis=0) for s in sizes])
    out["s2sum"] = np.array([yb[nj == s].T @ yb[nj == s] for s in sizes])
    out["itemvar"] = frame.var(ddof=1).to_numpy()
    return out


def test_two_level_statistics_match_a_group_by():
    rng = np.random.default_rng(16)
    n_cl = 700
    sizes = rng.integers(1, 30, size=n_cl)  # unbalanced clusters, singletons included
    cl = np.repeat(np.arange(n_cl), sizes)
    rng.shuffle(cl)  # rows of a client not adjacent
    n = cl.size
    x = rng.normal(size=(n_cl, 1))[cl] + rng.normal(size=(n, 5)) + 3.0
    x[rng.random((n, 5)) < 0.04] = np.nan  # missing items: the row is left out
    labels = np.array([f"c{c:04d}" for c in cl], dtype=object)
    codes = pd.factorize(labels)[0]
    use = ~np.isnan(x).any(axis=1)
    st = rel._two_level_stats(np.asfortranarray(x), np.arange(5), use, codes)
    ref = _naive_stats(x, labels)
    assert st["n"] == ref["n"] and st["nclus"] == ref["nclus"]
    for key in ("wss", "cov_means", "sizes", "cnt", "msum", "s2sum", "itemvar"):
        np.testing.assert_allclose(st[key], ref[key], rtol=1e-11, atol=1e-9, err_msg=key)


def test_two_level_statistics_blocks_do_not_change_the_sums(monkeypatch):
    rng = np.random.default_rng(5)
    cl = np.repeat(np.arange(300), rng.integers(2, 9, size=300))
    x = np.asfortranarray(rng.normal(size=(cl.size, 4)) + rng.normal(size=(300, 1))[cl])
    use = np.ones(cl.size, dtype=bool)
    whole = rel._two_level_stats(x, np.arange(4), use, cl)
    monkeypatch.setattr(rel, "_BLOCK_ROWS", 97)  # many blocks, one not full
    blocked = rel._two_level_stats(x, np.arange(4), use, cl)
    np.testing.assert_allclose(blocked["wss"], whole["wss"], rtol=1e-13)


def test_multilevel_omega_from_statistics_equals_the_table_path():
    df = al.simulate_study(n_therapists=4, n_clients=80, max_sessions=6, seed=3)
    sub = df[df["rater"] == "client"]
    t = al.multilevel_reliability(sub, "wai-sr", missing_codes=(-99, 999), errors="omit")
    items, mapping, _ = rel._clean_items(sub, al.get_instrument("wai-sr"), (-99, 999), "omit")
    cols = [mapping[i] for i in al.get_instrument("wai-sr").scales["goal"]]
    m = al.multilevel_omega(items[cols], sub["client_id"])
    row = t.set_index("scale").loc["goal"]
    assert m.omega_within == pytest.approx(row["omega_within"], rel=1e-12)
    assert m.loglik == pytest.approx(row["loglik"], rel=1e-12)
    assert m.n_clients == row["n_clients"]


def test_rated_groups_are_row_positions(demo_wave):
    seen = {}
    for inst, rater, pos in common._rated_groups(demo_wave):
        assert np.all(np.diff(pos) > 0)
        assert (demo_wave.scored["rater"].iloc[pos] == rater).all()
        seen[(inst.id, rater)] = pos.size
    assert ("wai-sr", "client") in seen and ("wai-sr", "therapist") in seen
