"""prepare_wave for both forms of a wave: declared means checked (mapped columns exist, SPSS
user-missing codes honoured, therapist_alliance honoured), no-analysable-row waves stop early,
pre-scored totals are range-checked, and rows are accounted for per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

import alliance_lib as al
from alliance_lib.study import StudyError
from alliance_lib.waves import read_wave

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "study.yaml"
SPSS = Path(__file__).resolve().parent / "data" / "intake" / "spss"
WAI = [f"wai_sr_{i}" for i in range(1, 13)]


def _study(tmp_path, body: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text("study: Test\nprivacy: {salt: test-only-salt}\n" + body)
    return path


def _long(n_clients=3, value=4):
    rows = [
        {"client_id": f"{c:03d}", "session": s, **{col: value for col in WAI}}
        for c in range(1, n_clients + 1)
        for s in (1, 2)
    ]
    return pd.DataFrame(rows)


def test_demo_wave_one_file_counts():
    w = al.prepare_wave(al.load_study(DEMO), 1)
    n = len(pd.read_csv(DEMO.parent / "wave1.csv"))
    assert w.sources.to_dict("records") == [
        {"source": "wave1.csv", "rows_in": n, "analysed": len(w.scored), "quarantined": 6}
    ]
    assert w.n_read == n == len(w.scored) + len(w.quarantine)
    assert set(w.quarantine["source"]) == {"wave1.csv"}
    assert w.files == (al.load_study(DEMO).data[1],)
    assert w.codes_used == (-99, 999)


def test_absent_mapped_column_is_an_error(tmp_path):
    """Issue 10, item 8: `columns: {therapist: clinician}` on a file without it is an error."""
    _long().to_csv(tmp_path / "w1.csv", index=False)
    path = _study(
        tmp_path,
        "data: {1: w1.csv}\ncolumns: {therapist: clinician}\ninstruments: {alliance: wai-sr}\n",
    )
    with pytest.raises(StudyError) as err:
        read_wave(al.load_study(path), 1)
    msg = str(err.value)
    assert err.value.key == "columns.therapist"
    assert "'clinician' not found in w1.csv" in msg and "columns there: client_id, session" in msg


def test_no_analysable_row_stops_with_the_top_reasons(tmp_path):
    _long(value=7).to_csv(tmp_path / "w1.csv", index=False)
    path = _study(tmp_path, "data: {1: w1.csv}\ninstruments: {alliance: wai-sr}\n")
    with pytest.raises(al.DataError, match=r"wave 1: no row can be analysed \(6 rows") as err:
        al.prepare_wave(al.load_study(path), 1)
    assert "wai_sr_N = N is outside N-N (6 rows)" in str(err.value)


def test_therapist_alliance_is_honoured(tmp_path):
    _long().to_csv(tmp_path / "w1.csv", index=False)
    path = _study(
        tmp_path, "data: {1: w1.csv}\ntherapist_alliance: true\ninstruments: {alliance: wai-sr}\n"
    )
    with pytest.raises(al.DataError, match="therapist_alliance: true"):
        al.prepare_wave(al.load_study(path), 1)
    d = _long()
    d = pd.concat([d.assign(rater="client"), d.assign(rater="therapist")])
    d.to_csv(tmp_path / "w1.csv", index=False)
    w = al.prepare_wave(al.load_study(path), 1)
    assert w.has_therapist_ratings


def _sav(path: Path, declared: bool) -> None:
    d = _long().astype({c: float for c in WAI})
    d.loc[d.index[:3], "wai_sr_3"] = -9.0
    ranges = {"wai_sr_3": [-9.0]} if declared else {}
    pyreadstat.write_sav(d, path, missing_ranges=ranges)


def test_sav_user_missing_scores_instead_of_quarantining(tmp_path):
    """Issue 10, item 9: a .sav declaring -9 missing: -9 is missing (prorated), not bad."""
    _sav(tmp_path / "w1.sav", declared=True)
    path = _study(tmp_path, "data: {1: w1.sav}\ninstruments: {alliance: wai-sr}\n")
    w = al.prepare_wave(al.load_study(path), 1)
    assert len(w.quarantine) == 0 and len(w.scored) == 6
    assert w.scored["wai_sr_prorated"].sum() == 3 and w.scored["wai_sr_total"].notna().all()
    spss = w.missing_codes[w.missing_codes["declared"].str.startswith("SPSS")]
    assert spss[["column", "code", "n"]].to_dict("records") == [
        {"column": "wai_sr_3", "code": -9.0, "n": 3}
    ]
    assert w.codes_used == (-9.0,)
    _sav(tmp_path / "w1.sav", declared=False)  # the same value undeclared is out of range
    w = al.prepare_wave(al.load_study(path), 1)
    assert len(w.quarantine) == 3
    assert w.quarantine["reason"].str.contains("wai_sr_3 = -9 is outside 1-5").all()


def test_sav_codes_apply_to_their_own_columns():
    """The wide SPSS example declares 98-99 on the items and -9 on the OQ totals: an OQ total
    of 98 or 99 is a score, and the -9 totals are missing."""
    raw = al.read_table(SPSS / "wide_wai_sessions.sav")
    w = al.prepare_wave(al.load_study(SPSS / "study.yaml"), 1)
    totals = pd.concat([raw["oqtot_s0"], raw["oqtot_s5"]])
    assert w.scored["oq_total"].notna().sum() == int(((totals >= 0) & totals.notna()).sum())
    assert set(w.scored["oq_total"].dropna()) == set(totals[totals >= 0])
    assert w.sources["quarantined"].tolist() == [0]
    assert w.codes_used == (-9.0, 98.0, 99.0)
    n_items = (raw.filter(regex=r"^wai\d+_s\d$").isin([98, 99])).sum().sum()
    declared = w.missing_codes
    assert declared.loc[declared["code"].isin([98.0, 99.0]), "n"].sum() == n_items
    # client ids are the file's N4 ids, as SPSS shows them
    assert read_wave(al.load_study(SPSS / "study.yaml"), 1)["client_id"].iloc[0] == "0001"


def test_wide_sessions_follow_the_pattern():
    table = read_wave(al.load_study(SPSS / "study.yaml"), 1)
    raw = al.read_table(SPSS / "wide_wai_sessions.sav")
    assert sorted(table["session"].unique()) == [0, 1, 3, 5]
    one = table[(table["client_id"] == "0001") & (table["session"] == 3)]
    assert one["wai_sr_2"].iloc[0] == raw.loc[1, "wai2_s3"]


def test_pre_scored_total_is_range_checked(tmp_path):
    d = pd.DataFrame(
        {"client_id": ["P01", "P01", "P02"], "session": [0, 1, 0], "phq9_total": [12, 30, "n/a"]}
    )
    for c in WAI:
        d[c] = 4
    d.to_csv(tmp_path / "w1.csv", index=False)
    path = _study(
        tmp_path,
        "data: {1: w1.csv}\ninstruments: {alliance: wai-sr, "
        "outcome: {id: phq-9, total: phq9_total}}\n",
    )
    w = al.prepare_wave(al.load_study(path), 1)
    assert w.scored["phq9_total"].tolist() == [12.0]
    assert sorted(w.quarantine["reason"]) == [
        "phq9_total = 'n/a' is not a number",
        "phq9_total = 30 is outside 0-27",
    ]
    assert w.outcome == "phq9"


def test_text_missing_codes_in_one_file(tmp_path):
    d = _long().astype({"wai_sr_1": object})
    d.loc[0, "wai_sr_1"] = "NASK"
    d.to_csv(tmp_path / "w1.csv", index=False)
    path = _study(
        tmp_path, "data: {1: w1.csv}\nmissing_codes: [NASK, -99]\ninstruments: {alliance: wai-sr}\n"
    )
    w = al.prepare_wave(al.load_study(path), 1)
    assert len(w.quarantine) == 0
    assert w.missing_codes.set_index("column").loc["wai_sr_1", "n"] == 1


def test_interpreter_rater_in_one_file(tmp_path):
    d = _long()
    d = pd.concat(
        [d.assign(rater="client"), d.assign(rater="interpreter"), d.iloc[:1].assign(rater="nurse")]
    )
    d.to_csv(tmp_path / "w1.csv", index=False)
    path = _study(tmp_path, "data: {1: w1.csv}\ninstruments: {alliance: wai-sr}\n")
    w = al.prepare_wave(al.load_study(path), 1)
    assert w.scored["rater"].value_counts().to_dict() == {"client": 6, "interpreter": 6}
    assert w.quarantine["reason"].tolist() == [
        "rater = 'nurse' is not one of client, therapist, observer, interpreter"
    ]
    assert w.n_read == len(d)
    assert np.isclose(w.scored["wai_sr_total"], 4).all()


def test_absent_instrument_columns_stop_before_any_kernel(tmp_path):
    d = _long().drop(columns="wai_sr_12")
    d.to_csv(tmp_path / "w1.csv", index=False)
    path = _study(tmp_path, "data: {1: w1.csv}\ninstruments: {alliance: wai-sr}\n")
    with pytest.raises(StudyError, match=r"wai-sr: column\(s\) wai_sr_12 not found in w1.csv"):
        read_wave(al.load_study(path), 1)
    path = _study(
        tmp_path,
        "data: {1: w1.csv}\ninstruments: {alliance: {id: wai-sr, total: wai_total}}\n",
    )
    with pytest.raises(StudyError) as err:
        read_wave(al.load_study(path), 1)
    assert err.value.key == "instruments.alliance.total"


def test_mapped_id_columns_are_text_in_one_file(tmp_path):
    """Silent result 1 in the one-file form: a mapped ID column keeps 000001 and 012 vs 0012,
    and a typed number 101 (a float in SPSS) is "101", not "101.0"."""
    d = _long(n_clients=2).rename(columns={"client_id": "Client number"})
    d["Client number"] = ["000001", "000001", "012", "012"]
    extra = d.iloc[:2].assign(**{"Client number": "0012"})
    pd.concat([d, extra]).to_csv(tmp_path / "w1.csv", index=False)
    path = _study(
        tmp_path,
        "data: {1: w1.csv}\ncolumns: {client: Client number}\ninstruments: {alliance: wai-sr}\n",
    )
    assert sorted(set(read_wave(al.load_study(path), 1)["client_id"])) == ["000001", "0012", "012"]
    s = _long(n_clients=1).astype({c: float for c in WAI}).rename(columns={"client_id": "pid"})
    s["pid"] = 101.0
    pyreadstat.write_sav(s, tmp_path / "w2.sav")
    path = _study(
        tmp_path, "data: {1: w2.sav}\ncolumns: {client: pid}\ninstruments: {alliance: wai-sr}\n"
    )
    assert set(read_wave(al.load_study(path), 1)["client_id"]) == {"101"}


def test_pseudonym_length_from_the_study_and_the_default_prefix(tmp_path):
    import shutil

    from alliance_lib.study import load_study
    from alliance_lib.waves import prepare_wave

    demo = Path(__file__).parents[1] / "data" / "demo"
    shutil.copytree(demo, tmp_path / "demo")
    path = tmp_path / "demo" / "study.yaml"
    default = prepare_wave(load_study(path), 1)
    assert default.pseudonym_length == 8
    assert default.scored["client_id"].str.len().eq(10).all()
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw.setdefault("privacy", {})["pseudonym_length"] = 16
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    longer = prepare_wave(load_study(path), 1)
    assert longer.pseudonym_length == 16
    assert longer.scored["client_id"].str.len().eq(18).all()
    # the same clients, the 8-digit pseudonyms being the first digits of the 16-digit ones
    assert (longer.scored["client_id"].str[:10] == default.scored["client_id"]).all()
    if "therapist_id" in longer.scored:
        assert (longer.scored["therapist_id"].str[:10] == default.scored["therapist_id"]).all()


def test_a_prepared_wave_is_handed_over_and_checked(tmp_path):
    from alliance_lib.errors import ReportError
    from alliance_lib.study import load_study
    from alliance_lib.waves import load_prepared, prepare_wave, save_prepared

    study = load_study(Path(__file__).parents[1] / "data" / "demo" / "study.yaml")
    w = prepare_wave(study, 1)
    path = save_prepared(w, tmp_path / "w.pickle")
    again = load_prepared(path, load_study(study.path), 1)
    pd.testing.assert_frame_equal(again.scored, w.scored)
    assert again.n_read == w.n_read and again.study is not w.study
    with pytest.raises(ReportError, match="not the prepared wave 2"):
        load_prepared(path, study, 2)


def test_item_columns_are_float32_only_where_that_is_exact(tmp_path):
    """Integer answers are kept as float32 (half the memory of the wave); an ORS mark such as
    7.3 is not a float32, and that column stays float64. Scores and reliability are the same
    as from the float64 cells."""
    rng = np.random.default_rng(3)
    df = _long(n_clients=40)
    df[WAI] = rng.integers(1, 6, size=(len(df), len(WAI))).astype(float)
    df.loc[3, "wai_sr_2"] = np.nan
    for j in range(1, 5):
        df[f"ors_{j}"] = np.round(rng.uniform(0, 10, len(df)), 1)
    df["ors_3"] = np.round(df["ors_3"])  # whole marks only: exact in float32
    df.to_csv(tmp_path / "w1.csv", index=False)
    path = _study(tmp_path, "data: {1: w1.csv}\ninstruments: {alliance: wai-sr, outcome: ors}\n")
    w = al.prepare_wave(al.load_study(path), 1)
    s = w.scored
    assert {str(s[c].dtype) for c in WAI} == {"float32"}
    assert str(s["ors_3"].dtype) == "float32"
    assert {str(s[c].dtype) for c in ("ors_1", "ors_2", "ors_4")} == {"float64"}
    assert s["ors_1"].tolist() == df["ors_1"].tolist()  # the marks as read, not rounded
    assert np.isnan(s.loc[3, "wai_sr_2"])
    assert s[WAI].astype(float).equals(df[WAI].reset_index(drop=True))
    ref = al.score(df.assign(client_id=df["client_id"].astype(str)), "wai-sr")
    assert np.array_equal(s["wai_sr_total"], ref["wai_sr_total"], equal_nan=True)
    assert str(s["wai_sr_total"].dtype) == "float64"
    a32 = al.cronbach_alpha(s[WAI]).alpha
    assert a32 == al.cronbach_alpha(df[WAI]).alpha
