"""Waves larger than memory: intake and growth-model statistics on Dask, the fit in memory.

When a wave is a partitioned Parquet dataset too large for one machine, only three things need
every row: validating the cells, scoring the instruments, and the per-client sufficient
statistics of the growth model. This module runs those on Dask (:mod:`dask.dataframe`; a
:mod:`distributed` cluster when a client is active) and brings back only small tables:

* the validation counts (rows read, clean, quarantined; problems by kind and column);
* one row per client: its therapist and the sums of the cross products of the model's
  (centred, scaled) row vector ``v = [X, y, Z]`` -- ``(k + q)(k + q + 1) / 2`` numbers a client.

The growth model is then fitted from the client sums alone
(:meth:`alliance_lib.engine.NestedLMM.from_client_sums`): the profiled (RE)ML deviance of a
two- or three-level model depends on the data only through these sums (Bates et al. 2015), so
the estimates equal the in-memory :func:`~alliance_lib.trajectories.fit_trajectory` on the same
rows up to rounding (the test checks 1e-10).

The design is engine-agnostic: every step is a function of one pandas partition
(:func:`score_partition`, :func:`moments_partition`, :func:`client_sums_partition`) followed by
a sum or a group-by sum, which a Spark ``mapInPandas`` + ``groupBy().sum()`` (or SQL) produces
as well; :func:`fit_growth_from_sums` takes the resulting table, whatever made it.

Two passes read the scored rows: the first finds the time origin and the centring and scaling
constants (n, sums, sums of squares), the second the per-client sums. The scored rows are small
(ids, session, rater and totals: a few columns instead of dozens of items) and are persisted on
the cluster between the passes.

Requirements: the optional extra ``pip install alliance_lib[distributed]``. Client and
therapist ids in the returned tables are pseudonyms (the study key), never the raw ids.
Duplicate client x session x rater rows are found within a partition only, so partition the
dataset by client (e.g. ``partition_on`` a client hash); the sums themselves are additive and
correct however the rows are split.

References
----------
Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1-48. doi:10.18637/jss.v067.i01

Examples
--------
>>> import pandas as pd
>>> import alliance_lib as al
>>> df = al.simulate_study(n_therapists=4, n_clients=40, seed=5, output="scores")
>>> df = df.assign(rater="client")
>>> m = moments_partition(df, score="alliance", time_zero=1.0)
>>> sorted(m)[:3]
['n', 'sum_0', 'sum_1']
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alliance_lib.engine import EngineFit, NestedLMM
from alliance_lib.errors import DataError
from alliance_lib.registry import Instrument, get_instrument
from alliance_lib.scoring import score as score_instrument
from alliance_lib.trajectories import SHAPES, ModelError, _time_term_names, _trajectory_columns
from alliance_lib.validate import validate

__all__ = [
    "score_partition",
    "moments_partition",
    "client_sums_partition",
    "GrowthSums",
    "DistributedFit",
    "fit_growth_from_sums",
    "growth_sums_frame",
    "prepare_dataset",
    "growth_sums",
    "fit_growth",
]

ID_COLUMNS = ["client_id", "therapist_id", "session", "rater"]


# ------------------------------------------------------------------ per-partition functions
def _instruments(instruments) -> list[Instrument]:
    if isinstance(instruments, (str, Instrument)):
        instruments = [instruments]
    return [i if isinstance(i, Instrument) else get_instrument(i) for i in instruments]


def score_partition(
    df: pd.DataFrame, instruments, *, missing_codes: Iterable = (), keep: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and score one partition: (scored ids + totals, validation counts).

    Parameters
    ----------
    df : DataFrame
        Rows with the canonical id columns and the instruments' item columns.
    instruments : str, Instrument or list
    missing_codes : iterable
    keep : sequence of str
        Further columns of the clean rows to keep (e.g. covariates).

    Returns
    -------
    scored : DataFrame
        The clean rows: ``client_id``, ``therapist_id`` (when present), ``session``, ``rater``,
        the ``keep`` columns and each instrument's ``{prefix}_total`` (float64), in the
        partition's order.
    counts : DataFrame
        ``problem``, ``column``, ``action``, ``n_rows``, ``n_cells`` (the validation summary)
        plus the lines ``rows_in``, ``rows_clean``, ``rows_quarantined`` (in ``n_rows``): a
        table to add up over partitions.

    Examples
    --------
    >>> d = pd.DataFrame({"client_id": ["a", "b"], "session": [1, 1], "rater": "client",
    ...                   **{f"wai_sr_{i}": [4, 9] for i in range(1, 13)}})
    >>> scored, counts = score_partition(d, "wai-sr")
    >>> scored["wai_sr_total"].tolist(), int(counts.set_index("problem").loc["rows_in", "n_rows"])
    ([4.0], 2)
    """
    insts = _instruments(instruments)
    checked = validate(df, insts, missing_codes=missing_codes)
    clean = checked.clean
    cols = [c for c in [*ID_COLUMNS, *keep] if c in clean.columns]
    out = clean[cols].copy()
    for inst in insts:
        scored = score_instrument(checked, inst)
        out[f"{inst.prefix}_total"] = scored[f"{inst.prefix}_total"].to_numpy(dtype=float)
    if "rater" not in out:
        out["rater"] = "client"
    summary = checked.summary[["problem", "column", "action", "n_rows", "n_cells"]]
    rows = pd.DataFrame(
        {
            "problem": ["rows_in", "rows_clean", "rows_quarantined"],
            "column": "",
            "action": "",
            "n_rows": [checked.n_in, checked.n_clean, checked.n_quarantined],
            "n_cells": 0,
        }
    )
    counts = pd.concat([summary, rows], ignore_index=True)
    counts["column"] = counts["column"].astype(str)
    counts[["n_rows", "n_cells"]] = counts[["n_rows", "n_cells"]].astype("int64")
    return out.reset_index(drop=True), counts


def _model_rows(df, score, time, therapist, covariates, rater="client"):
    """The analysed rows of a partition: client-rated, score, time, ids and covariates present
    (the rows ``fit_trajectory`` keeps from ``WaveData.sessions()``)."""
    if rater is not None and "rater" in df:
        df = df[df["rater"] == rater]
    need = [score, time, "client_id", *([therapist] if therapist else []), *covariates]
    return df.dropna(subset=need)


def _design(df, score, spec, covariates):
    t = df[spec["time"]].to_numpy(dtype=float)
    covs = {c: df[c].to_numpy(dtype=float) for c in covariates}
    cols = _trajectory_columns(t, covs, spec)
    X = np.column_stack([np.ones(len(t)), *cols.values()])
    return X, df[score].to_numpy(dtype=float), list(cols)


def moments_partition(
    df: pd.DataFrame,
    *,
    score: str,
    time: str = "session",
    therapist: str | None = None,
    covariates: Sequence[str] = (),
    spec: dict | None = None,
    time_zero: float | None = None,
) -> dict:
    """Pass 1 on one partition: ``n``, ``time_min`` and, given the time origin, the sums and
    sums of squares of the design columns and the score (``sum_j``, ``sumsq_j``; the score is
    the last column). Without ``spec`` (and ``time_zero``) only ``n`` and ``time_min``."""
    rows = _model_rows(df, score, time, therapist, covariates)
    out = {"n": len(rows), "time_min": float(rows[time].min()) if len(rows) else np.inf}
    if spec is None and time_zero is None:
        return out
    spec = spec or _spec(time, "linear", None, None, list(covariates), time_zero)
    X, y, _ = _design(rows, score, spec, covariates)
    V = np.column_stack([X, y])
    for j in range(V.shape[1]):
        out[f"sum_{j}"] = float(V[:, j].sum())
        out[f"sumsq_{j}"] = float((V[:, j] * V[:, j]).sum())
    return out


def _spec(time, shape, knot, offset, covariates, time_zero) -> dict:
    return {
        "time": time,
        "shape": shape,
        "knot": knot,
        "offset": offset,
        "base_covariates": list(covariates),
        "interactions": [],
        "time_zero": float(time_zero),
    }


def client_sums_partition(
    df: pd.DataFrame,
    *,
    score: str,
    spec: dict,
    centre: dict,
    therapist: str | None = None,
    covariates: Sequence[str] = (),
) -> pd.DataFrame:
    """Pass 2 on one partition: per client (and therapist) the sums of ``v_a v_b`` (a <= b)
    over its rows, ``v = [(X - x_center) / x_scale, y - y_center, Z / z_scale]``; columns
    ``c_a_b``. Add up over partitions with a group-by sum on the id columns."""
    rows = _model_rows(df, score, spec["time"], therapist, covariates)
    X, y, _ = _design(rows, score, spec, covariates)
    xs = (X - centre["x_center"]) / centre["x_scale"]
    Z = X[:, centre["z_index"]] / centre["z_scale"]
    v = np.column_stack([xs, y - centre["y_center"], Z])
    keys = ["client_id"] + ([therapist] if therapist else [])
    out = rows[keys].reset_index(drop=True).astype(str)
    a, b = np.triu_indices(v.shape[1])
    prods = pd.DataFrame(
        v[:, a] * v[:, b], columns=[f"c_{i}_{j}" for i, j in zip(a, b, strict=True)]
    )
    return pd.concat([out, prods], axis=1).groupby(keys, sort=False).sum().reset_index()


# ------------------------------------------------------------------ the fit from client sums
@dataclass
class GrowthSums:
    """Per-client sums of a growth model and the constants they were made with.

    ``table`` has one row per client (``client_id``, ``therapist_id`` when three-level) and the
    columns ``c_a_b``; ``names`` are the fixed-effect terms (``Intercept`` first), ``random``
    those with a client random effect.
    """

    table: pd.DataFrame
    names: list[str]
    random: list[str]
    centre: dict
    spec: dict
    therapist: str | None
    n_rows: int
    counts: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def cross(self) -> np.ndarray:
        """The (k + q, k + q, n_clients) stack of the sums."""
        kq = len(self.names) + 2 + len(self.random)  # v = [X, y, Z], Z = [1, random]
        out = np.empty((kq, kq, len(self.table)))
        for a, b in zip(*np.triu_indices(kq), strict=True):
            col = self.table[f"c_{a}_{b}"].to_numpy(dtype=float)
            out[a, b] = col
            out[b, a] = col
        return out


@dataclass
class DistributedFit:
    """A growth model fitted from client sums: the engine fit and labelled estimates."""

    efit: EngineFit
    names: list[str]
    random: list[str]
    n_rows: int
    n_clients: int
    n_therapists: int
    time_zero: float

    @property
    def fixed(self) -> pd.DataFrame:
        """Fixed effects: estimate and standard error by term."""
        se = np.sqrt(np.diag(self.efit.vcov))
        return pd.DataFrame({"estimate": self.efit.beta, "se": se}, index=self.names)

    @property
    def variances(self) -> dict:
        """Client random-effect covariance, therapist and residual variance."""
        z_names = ["Intercept", *self.random]
        return {
            "client": pd.DataFrame(self.efit.cov_client, index=z_names, columns=z_names),
            "therapist": self.efit.var_therapist,
            "residual": self.efit.sigma**2,
        }


def fit_growth_from_sums(sums: GrowthSums, method: str = "reml") -> DistributedFit:
    """Fit the growth model from per-client sums (however they were computed).

    Examples
    --------
    >>> import alliance_lib as al
    >>> df = al.simulate_study(n_therapists=6, n_clients=80, seed=5, output="scores")
    >>> s = growth_sums_frame(df.assign(rater="client"), "alliance", therapist="therapist_id")
    >>> f = fit_growth_from_sums(s)
    >>> mem = al.fit_trajectory(df, "alliance", therapist="therapist_id")
    >>> bool(abs(f.efit.deviance / mem._efit.deviance - 1) < 1e-10)
    True
    >>> bool(abs(f.efit.beta - mem._efit.beta).max() < 1e-6)  # the optimiser's resolution
    True
    """
    if method not in ("reml", "ml"):
        raise ModelError(f"method must be 'reml' or 'ml', not {method!r}", value=method)
    tab = sums.table
    ther_codes = ther_labels = None
    if sums.therapist:
        dup = tab["client_id"].duplicated(keep=False)
        if dup.any():
            bad = tab.loc[dup, "client_id"].iloc[0]
            raise ModelError(
                f"client {bad!r} is seen with more than one therapist in column "
                f"{sums.therapist!r}; clients must be nested in therapists",
                column=sums.therapist,
                value=bad,
            )
        ther_codes, ther_labels = pd.factorize(tab[sums.therapist], sort=True)
    c = sums.centre
    model = NestedLMM.from_client_sums(
        sums.cross(),
        p=len(sums.names),
        x_center=c["x_center"],
        x_scale=c["x_scale"],
        y_center=c["y_center"],
        z_scale=c["z_scale"],
        client_labels=tab["client_id"].to_numpy(),
        therapist_codes=ther_codes,
        therapist_labels=ther_labels,
        reml=method == "reml",
    )
    efit = model.fit()
    return DistributedFit(
        efit=efit,
        names=sums.names,
        random=sums.random,
        n_rows=sums.n_rows,
        n_clients=len(tab),
        n_therapists=0 if ther_labels is None else len(ther_labels),
        time_zero=sums.spec["time_zero"],
    )


def _centre(m: dict, n_cols: int, z_index: list[int]) -> dict:
    n = m["n"]
    mean = np.array([m[f"sum_{j}"] for j in range(n_cols + 1)]) / n
    sq = np.array([m[f"sumsq_{j}"] for j in range(n_cols + 1)]) / n
    xc = np.zeros(n_cols)
    xc[1:] = mean[1:n_cols]
    xs = np.ones(n_cols)
    xs[1:] = np.sqrt(np.maximum(sq[1:n_cols] - mean[1:n_cols] ** 2, 0.0))
    if np.any(xs == 0):
        raise ModelError(f"design column {int(np.flatnonzero(xs == 0)[0])} is constant")
    # Z columns are columns of X: root mean square of the raw column
    zs = np.sqrt(sq[z_index])
    return {
        "x_center": xc,
        "x_scale": xs,
        "y_center": float(mean[n_cols]),
        "z_scale": zs,
        "z_index": list(z_index),
    }


def _terms(time, shape, knot, offset, covariates, random_slope):
    if shape not in SHAPES:
        raise ModelError(f"shape must be one of {SHAPES}, not {shape!r}", value=shape)
    spec0 = {"time": time, "shape": shape, "knot": knot, "offset": offset}
    tnames = _time_term_names(time, spec0)
    names = ["Intercept", *tnames, *covariates, *[f"{t}:{c}" for c in covariates for t in tnames]]
    random = (tnames[:1] if shape == "quadratic" else tnames) if random_slope else []
    z_index = [0] + [names.index(r) for r in random]
    return names, random, z_index


def growth_sums_frame(
    df: pd.DataFrame,
    score: str,
    *,
    time: str = "session",
    therapist: str | None = None,
    shape: str = "linear",
    knot: float | None = None,
    offset: float | None = None,
    covariates: Sequence[str] = (),
    random_slope: bool = True,
) -> GrowthSums:
    """The client sums of one in-memory frame (the partition functions on a single partition;
    for tests and for engines that hand over pandas frames)."""
    names, random, z_index = _terms(time, shape, knot, offset, covariates, random_slope)
    m0 = moments_partition(df, score=score, time=time, therapist=therapist, covariates=covariates)
    spec = _spec(time, shape, knot, offset, covariates, m0["time_min"])
    m = moments_partition(
        df, score=score, time=time, therapist=therapist, covariates=covariates, spec=spec
    )
    centre = _centre(m, len(names), z_index)
    tab = client_sums_partition(
        df, score=score, spec=spec, centre=centre, therapist=therapist, covariates=covariates
    )
    return GrowthSums(tab, names, random, centre, spec, therapist, int(m["n"]))


# ------------------------------------------------------------------ on Dask
def _dask():
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - the optional extra
        raise ImportError(
            "alliance_lib.distributed needs Dask: pip install 'alliance_lib[distributed]'"
        ) from exc
    return dask, dd


def prepare_dataset(
    path,
    instruments,
    *,
    missing_codes: Iterable = (),
    salt: str | None = None,
    columns: Sequence[str] | None = None,
    persist: bool = True,
    pseudonym_length: int = 16,
):
    """Validate and score a partitioned Parquet dataset on Dask.

    Parameters
    ----------
    path : str or Path
        A Parquet file or folder of parts (hive partitions allowed), canonical column names.
    instruments : str, Instrument or list
    missing_codes : iterable
    salt : str, optional
        The study key: client and therapist ids are replaced by their pseudonyms in each
        partition (:func:`alliance_lib.privacy.pseudonymise`), so no raw id leaves a worker.
    pseudonym_length : int
        Hex digits of the pseudonyms (default 16: expected collisions below 0.01 up to 600
        million ids). One length for every partition, since a partition does not see the others'
        ids; collisions are checked within each partition only.
    columns : sequence of str, optional
        Extra columns to read (e.g. covariates); the ids and item columns are always read.
    persist : bool
        Keep the scored rows in the cluster's memory (they are read twice by the growth sums).

    Returns
    -------
    scored : dask.dataframe.DataFrame
        ``client_id``, ``therapist_id``, ``session``, ``rater`` and the totals.
    counts : DataFrame
        The validation counts over all partitions (computed).
    """
    dask, dd = _dask()
    insts = _instruments(instruments)
    items = [c for inst in insts for c in inst.columns]
    want = ["client_id", "therapist_id", "session", "rater", *items, *(columns or [])]
    import pyarrow.parquet as pq

    have = set(pq.ParquetDataset(str(path)).schema.names)
    ddf = dd.read_parquet(str(path), columns=[c for c in want if c in have])
    parts = ddf.to_delayed()
    codes = tuple(missing_codes)
    extra = tuple(columns or ())

    # a module-level function bound with partial: pickled by reference, not by cloudpickle
    # (pickling a closure by value raced with other threads on a local cluster)
    run = functools.partial(
        _score_and_pseudonymise,
        insts=insts,
        codes=codes,
        extra=extra,
        salt=salt,
        length=int(pseudonym_length),
    )
    done = [dask.delayed(run, nout=2)(p) for p in parts]
    meta = run(ddf._meta)[0]
    scored = dd.from_delayed([d[0] for d in done], meta=meta, verify_meta=False)
    if persist:
        scored = scored.persist()
    counts = dask.compute(*[d[1] for d in done])
    total = (
        pd.concat(counts, ignore_index=True)
        .groupby(["problem", "column", "action"], sort=True)[["n_rows", "n_cells"]]
        .sum()
        .reset_index()
    )
    return scored, total


def _score_and_pseudonymise(part, *, insts, codes, extra, salt, length=16):
    """One partition: validated and scored rows (pseudonymised when a key is given) and its
    validation counts."""
    scored, counts = score_partition(part, insts, missing_codes=codes, keep=extra)
    if salt is not None:
        from alliance_lib.privacy import pseudonymise

        for col, prefix in (("client_id", "C"), ("therapist_id", "T")):
            if col in scored:
                scored[col] = pseudonymise(scored[col], salt=salt, prefix=prefix, length=length)
    return scored, counts


def growth_sums(
    scored,
    score: str,
    *,
    time: str = "session",
    therapist: str | None = None,
    shape: str = "linear",
    knot: float | None = None,
    offset: float | None = None,
    covariates: Sequence[str] = (),
    random_slope: bool = True,
    time_zero: float | None = None,
    split_out: int | None = None,
) -> GrowthSums:
    """The per-client sums of a growth model of ``score`` on a Dask frame of scored rows (the
    client-rated rows; the same rows and terms as :func:`~alliance_lib.trajectories.fit_trajectory`
    on ``WaveData.sessions()``). Two passes; returns the small per-client table (computed)."""
    dask, _ = _dask()
    names, random, z_index = _terms(time, shape, knot, offset, covariates, random_slope)
    kw = {"score": score, "time": time, "therapist": therapist, "covariates": list(covariates)}
    if time_zero is None:
        parts = scored.to_delayed()
        m0 = dask.compute(*[dask.delayed(moments_partition)(p, **kw) for p in parts])
        n = sum(m["n"] for m in m0)
        if n == 0:
            raise DataError(f"no row with {score!r}, {time!r} and the ids present")
        time_zero = min(m["time_min"] for m in m0)
    spec = _spec(time, shape, knot, offset, covariates, time_zero)
    parts = scored.to_delayed()
    m1 = dask.compute(*[dask.delayed(moments_partition)(p, **kw, spec=spec) for p in parts])
    m = {key: sum(d[key] for d in m1) for key in m1[0] if key != "time_min"}
    centre = _centre(m, len(names), z_index)
    keys = ["client_id"] + ([therapist] if therapist else [])
    meta = client_sums_partition(
        scored._meta,
        score=score,
        spec=spec,
        centre=centre,
        therapist=therapist,
        covariates=covariates,
    )
    per_part = scored.map_partitions(
        client_sums_partition,
        score=score,
        spec=spec,
        centre=centre,
        therapist=therapist,
        covariates=covariates,
        meta=meta,
    )
    table = per_part.groupby(keys, sort=False).sum(split_out=split_out).compute().reset_index()
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    return GrowthSums(table, names, random, centre, spec, therapist, int(m["n"]))


def fit_growth(scored, score: str, *, method: str = "reml", **options) -> DistributedFit:
    """:func:`growth_sums` on Dask, then :func:`fit_growth_from_sums` in memory."""
    return fit_growth_from_sums(growth_sums(scored, score, **options), method=method)
