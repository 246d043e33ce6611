"""simulate_study: realistic structure, exact regeneration of the demo study, known truths."""

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_lib.simulate import SimulationTruth, simulate_study, write_demo_study

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_demo_study_regenerates_byte_identical(tmp_path):
    written = write_demo_study(tmp_path)
    for path in written:
        assert filecmp.cmp(path, DEMO / path.name, shallow=False), f"{path.name} differs"


def test_waves_are_cumulative():
    waves = [pd.read_csv(DEMO / f"wave{k}.csv", dtype={"client_id": str}) for k in (1, 2, 3)]
    for small, big in zip(waves, waves[1:], strict=False):
        assert set(small["client_id"]) <= set(big["client_id"])
        key = ["client_id", "session", "rater"]
        merged = small[key].merge(big[key].drop_duplicates(), how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
        assert len(small) < len(big)


def test_demo_looks_like_practice_data():
    d = pd.read_csv(DEMO / "wave3.csv", dtype={"client_id": str, "therapist_id": str})
    assert d["client_id"].str.fullmatch(r"CL-\d{4}").all()
    assert d["client_id"].nunique() == 300 and d["therapist_id"].nunique() == 20
    assert d["session"].between(0, 16).all()
    assert set(d["rater"]) == {"client", "therapist"}
    wai = d.filter(regex=r"^wai_sr_\d+$")
    oq = d.filter(regex=r"^oq_\d+$")
    assert wai.shape[1] == 12 and oq.shape[1] == 45
    assert (wai == -99).to_numpy().sum() > 0 and (oq == -99).to_numpy().sum() > 0
    out_of_range = ((wai > 5) & (wai != 999)).to_numpy().sum() + (
        (oq > 4) & (oq != 999)
    ).to_numpy().sum()
    assert 1 <= out_of_range <= 10
    assert d.duplicated().sum() == 1
    last = d.groupby("client_id")["session"].max()
    assert 0.2 < (last < 16).mean() < 0.8, "dropout should be realistic, neither none nor all"
    therapist_rows = d[d["rater"] == "therapist"]
    assert therapist_rows.filter(regex=r"^oq_").isna().all().all()


def test_scores_output_has_truth_and_no_errors():
    d = simulate_study(n_clients=60, n_therapists=6, seed=3, output="scores")
    assert d.attrs["truth"] == SimulationTruth().to_dict()
    assert d["outcome"].notna().all()
    assert d.loc[d["session"] == 0, "alliance"].isna().all()
    assert d.loc[d["session"] >= 1, "alliance"].notna().all()


def test_same_seed_same_data_other_seed_other_data():
    a = simulate_study(n_clients=30, n_therapists=3, seed=11)
    b = simulate_study(n_clients=30, n_therapists=3, seed=11)
    c = simulate_study(n_clients=30, n_therapists=3, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_truth_is_recovered_by_simple_moments():
    # Independent check of the generator (no model code): with no dropout, the session means
    # of the latent alliance follow the true mean line, and its residual SD within clients is
    # the true one once person-specific lines are removed.
    truth = SimulationTruth(sd_therapist=0.0)
    d = simulate_study(
        n_clients=4000,
        n_therapists=40,
        seed=5,
        output="scores",
        truth=truth,
        dropout=False,
        max_sessions=8,
    )
    a = d.dropna(subset=["alliance"])
    means = a.groupby("session")["alliance"].mean()
    slope, intercept = np.polyfit(means.index, means.to_numpy(), 1)
    assert slope == pytest.approx(truth.alliance_slope, abs=0.004)
    assert intercept == pytest.approx(truth.alliance_intercept, abs=0.03)
    g = a.groupby("client_id")
    xc = a["session"] - g["session"].transform("mean")
    yc = a["alliance"] - g["alliance"].transform("mean")
    b = (xc * yc).groupby(a["client_id"]).transform("sum") / (xc**2).groupby(
        a["client_id"]
    ).transform("sum")
    r = yc - b * xc
    # a per-client line through 8 points loses 2 df per client
    sd = np.sqrt((r**2).sum() / (len(r) - 2 * a["client_id"].nunique()))
    assert sd == pytest.approx(truth.sd_residual, rel=0.03)
    assert len(a) == 4000 * 8


def test_bad_arguments():
    with pytest.raises(ValueError, match="output"):
        simulate_study(output="wide")
    with pytest.raises(ValueError, match="therapist"):
        simulate_study(n_therapists=0)
