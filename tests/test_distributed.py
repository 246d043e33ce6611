"""alliance_lib.distributed: intake and growth-model sums on a local Dask cluster.

The sums are exact sufficient statistics, so the profiled deviance from them equals the row
model's at any theta, and every estimate at the same theta agrees to 1e-10; two separate
optimisations agree to the optimiser's own resolution (the profiled deviance is flat to
rounding within ~1e-8 of its minimum, so the in-memory fit itself moves by that much when only
the summation order changes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
distributed_mod = pytest.importorskip("distributed")

import alliance_lib as al  # noqa: E402
from alliance_lib import distributed as dist  # noqa: E402
from alliance_lib.engine import NestedLMM  # noqa: E402
from alliance_lib.validate import validate  # noqa: E402

INSTRUMENTS = ["wai-sr", "oq-45.2"]
CODES = (-99, 999)


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed_mod.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as lc,
        distributed_mod.Client(lc) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def raw():
    df = al.simulate_study(n_clients=240, n_therapists=12, seed=11)
    df = df.copy()
    # a few cells to quarantine and missing codes, to check the counts
    df.loc[df.index[5], "wai_sr_3"] = 9
    df.loc[df.index[17], "oq_2"] = -99
    return df


@pytest.fixture(scope="module")
def dataset(raw, tmp_path_factory):
    """Four Parquet parts, clients split by a hash of their id (whole clients per part)."""
    folder = tmp_path_factory.mktemp("wave")
    part = pd.util.hash_pandas_object(raw["client_id"], index=False).to_numpy() % 4
    for k in range(4):
        raw[part == k].to_parquet(folder / f"part-{k}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def prepared(cluster, dataset):
    return dist.prepare_dataset(dataset, INSTRUMENTS, missing_codes=CODES)


def test_scoring_and_counts_match_in_memory(raw, prepared):
    scored, counts = prepared
    got = scored.compute().sort_values(["client_id", "session", "rater"]).reset_index(drop=True)
    want, want_counts = dist.score_partition(raw, INSTRUMENTS, missing_codes=CODES)
    want = want.sort_values(["client_id", "session", "rater"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    v = validate(raw, INSTRUMENTS, missing_codes=CODES)
    c = counts.set_index("problem")["n_rows"]
    assert (c["rows_in"], c["rows_clean"], c["rows_quarantined"]) == (
        v.n_in,
        v.n_clean,
        v.n_quarantined,
    )
    assert c["rows_quarantined"] >= 1
    summary = v.summary.groupby(["problem", "column", "action"])[["n_rows", "n_cells"]].sum()
    ours = counts.set_index(["problem", "column", "action"]).loc[summary.index]
    np.testing.assert_array_equal(ours.to_numpy(), summary.to_numpy())


def _in_memory(raw, therapist):
    scored, _ = dist.score_partition(raw, INSTRUMENTS, missing_codes=CODES)
    rows = scored[scored["rater"] == "client"]
    return al.fit_trajectory(rows, "wai_sr_total", therapist=therapist)


@pytest.mark.parametrize("therapist", [None, "therapist_id"])
def test_growth_from_dask_sums_matches_in_memory(raw, prepared, therapist):
    scored, _ = prepared
    sums = dist.growth_sums(scored, "wai_sr_total", therapist=therapist)
    fit = dist.fit_growth_from_sums(sums)
    mem = _in_memory(raw, therapist)
    ref = mem._efit
    assert sums.n_rows == mem._model.n
    # the same profiled deviance surface: evaluated at the in-memory optimum, every estimate
    model = NestedLMM.from_client_sums(
        sums.cross(),
        p=len(sums.names),
        x_center=sums.centre["x_center"],
        x_scale=sums.centre["x_scale"],
        y_center=sums.centre["y_center"],
        z_scale=sums.centre["z_scale"],
        client_labels=sums.table["client_id"].to_numpy(),
        therapist_codes=None
        if therapist is None
        else pd.factorize(sums.table[therapist], sort=True)[0],
    )
    at = model.evaluate(ref.theta)
    for name in ("beta", "vcov", "cov_client"):
        np.testing.assert_allclose(getattr(at, name), getattr(ref, name), rtol=1e-10, atol=1e-12)
    assert at.sigma == pytest.approx(ref.sigma, rel=1e-10)
    assert at.deviance == pytest.approx(ref.deviance, rel=1e-12)
    if therapist:
        assert at.var_therapist == pytest.approx(ref.var_therapist, rel=1e-10)
    # two optimisations: the same minimum; estimates within the optimiser's resolution
    assert fit.efit.deviance == pytest.approx(ref.deviance, rel=1e-10)
    np.testing.assert_allclose(fit.efit.beta, ref.beta, rtol=1e-6)
    np.testing.assert_allclose(fit.efit.theta, ref.theta, atol=1e-6)
    assert fit.n_clients == raw["client_id"].nunique()


def test_sums_table_is_small_and_pseudonymised(cluster, dataset, raw):
    scored, _ = dist.prepare_dataset(dataset, "wai-sr", salt="k" * 32)
    sums = dist.growth_sums(scored, "wai_sr_total", therapist="therapist_id")
    assert len(sums.table) == raw["client_id"].nunique()
    assert not set(sums.table["client_id"]) & set(raw["client_id"].astype(str))
    assert sums.table["client_id"].str.startswith("C-").all()


def test_clients_with_two_therapists_are_refused(raw):
    df, _ = dist.score_partition(raw, "wai-sr")
    df = df[df["rater"] == "client"].reset_index(drop=True)
    last_of_first = int(np.flatnonzero(df["client_id"] == df["client_id"].iloc[0])[-1])
    df.loc[last_of_first, "therapist_id"] = "T-other"
    with pytest.raises(al.errors.AllianceError, match="more than one therapist"):
        dist.fit_growth_from_sums(
            dist.growth_sums_frame(df, "wai_sr_total", therapist="therapist_id")
        )
