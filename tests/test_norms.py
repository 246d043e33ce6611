"""Tests for alliance_lib.norms: band edges by hand from ../shared/reference/instruments.md."""

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.norms import NormsError, norms_table, severity
from alliance_lib.scoring import MissingColumnsError


def bands(ident, column, values):
    out = severity(pd.DataFrame({column: values}), ident)
    return out


def test_phq9_band_edges():  # s6: 0-4, 5-9, 10-14, 15-19, 20-27; cutoff >= 10
    out = bands("phq-9", "phq9_total", [0, 4, 5, 9, 10, 14, 15, 19, 20, 27])
    assert out["phq9_severity"].tolist() == [
        "none-minimal", "none-minimal", "mild", "mild", "moderate", "moderate",
        "moderately severe", "moderately severe", "severe", "severe",
    ]  # fmt: skip
    assert out["phq9_clinical"].tolist() == [False] * 4 + [True] * 6
    assert out["phq9_severity"].cat.ordered


def test_gad7_severe_starts_at_15():  # s7 and s12 pitfall 8
    out = bands("gad-7", "gad7_total", [4, 5, 9, 10, 14, 15, 21])
    assert out["gad7_severity"].tolist() == [
        "minimal", "mild", "mild", "moderate", "moderate", "severe", "severe",
    ]  # fmt: skip


def test_core10_bands_and_prorated_scores():  # s8: 0-5, 6-10, 11-14, 15-19, 20-24, >= 25
    out = bands("core-10", "core10_total", [5, 10 * 5 / 9, 6, 10, 10.5, 11, 14, 15, 20, 24, 25, 40])
    assert out["core10_severity"].tolist() == [
        "healthy", "healthy", "low", "low", "low", "mild", "mild", "moderate",
        "moderate-to-severe", "moderate-to-severe", "severe", "severe",
    ]  # fmt: skip
    assert out["core10_clinical"].tolist()[4:6] == [False, True]  # cutoff 11
    assert out.attrs["norms"]["core10"]["uncertain"] == []


def test_core_om_band_edges_are_flagged_uncertain():
    out = bands("core-om", "core_om_total", [5.99, 6, 9.99, 10, 24.99, 25])
    assert out["core_om_severity"].tolist() == [
        "healthy", "low", "low", "mild", "moderate-to-severe", "severe",
    ]  # fmt: skip
    assert out.attrs["norms"]["core_om"]["uncertain"] == ["bands"]


def test_core_om_scored_edge():
    # a clinical score of exactly 10 (computed as 10 x mean) is "mild" and clinical, not "low"
    reverse = {3, 4, 7, 12, 19, 21, 31, 32}
    items = [3 if i in reverse else 1 for i in range(1, 35)]  # every scored value is 1
    df = pd.DataFrame({f"core_om_{i}": [v] for i, v in enumerate(items, start=1)})
    scored = al.score(df, "core-om")
    assert scored["core_om_total"].tolist() == [10.0]
    out = severity(scored, "core-om")
    assert out["core_om_severity"].tolist() == ["mild"]
    assert out["core_om_clinical"].tolist() == [True]


def test_cutoff_only_instruments():
    out = bands("oq-45.2", "oq_total", [63, 64, 180, np.nan])  # s5: 64 and above clinical
    assert out["oq_severity"].tolist() == ["non-clinical", "clinical", "clinical", np.nan]
    assert out["oq_clinical"].tolist() == [False, True, True, pd.NA]
    assert out.attrs["norms"]["oq"]["bands_derived_from_cutoff"]
    assert out.attrs["norms"]["oq"]["uncertain"] == ["cutoff"]
    out = bands("srs", "srs_total", [35.9, 36, 40])  # s4: < 36 flags the alliance
    assert out["srs_clinical"].tolist() == [True, False, False]
    out = bands("ors", "ors_total", [25, 25.1])  # s4: <= 25 clinical range
    assert out["ors_clinical"].tolist() == [True, False]


def test_no_norms_raises():
    with pytest.raises(NormsError, match="wai-sr has no severity bands or cutoff"):
        bands("wai-sr", "wai_sr_total", [3.0])


def test_unscored_table_raises_with_hint():
    with pytest.raises(MissingColumnsError, match="run score"):
        severity(pd.DataFrame({"phq9": [3]}), "phq-9")


def test_other_column_and_rows_kept():
    df = pd.DataFrame({"x": [1, 2], "phq9_total": [3, 22]}, index=pd.Index([7, 9], name="row"))
    out = severity(df, "phq-9")
    assert out.index.equals(df.index) and list(out.columns[:2]) == ["x", "phq9_total"]
    out = severity(df.rename(columns={"phq9_total": "end"}), "phq-9", score="end")
    assert out["phq9_severity"].tolist() == ["none-minimal", "severe"]


def test_norms_table():
    tab = norms_table().set_index("id")
    assert tab.loc["oq-45.2", "reliable_change"] == 14
    assert tab.loc["oq-45.2", "cutoff"] == ">= 64"
    assert tab.loc["core-10", "rc_confidence"] == 0.90
    assert tab.loc["ors", "rc_status"] == "uncertain"
    assert pd.isna(tab.loc["wai-sr", "cutoff"])
