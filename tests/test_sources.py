"""Waves given as sources: the intake examples reach prepare_wave with only a study YAML, the
merge checks catch what a hand merge gets silently wrong, and every source row is accounted for.

The examples under tests/data/intake/ are copies of ../shared/intake-examples/ (see the README
there); the expected counts below were read off the files by hand (rows per file) and by the
generator's design (make_examples.py: 24 clients, appointment 1 = assessment, two coders of
sessions 3 and 5, six interpreter-mediated clients).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from instrument_keys import EXPECTED

import alliance_lib as al
from alliance_lib.sources import pivot_coded_scores, read_wave_sources
from alliance_lib.study import StudyError
from alliance_lib.waves import read_wave

INTAKE = Path(__file__).resolve().parent / "data" / "intake"
MULTI = INTAKE / "multi_file"
WAI = [f"wai_sr_{i}" for i in range(1, 13)]


def _copy(folder: Path, tmp_path: Path, yaml_text: str | None = None) -> Path:
    for f in folder.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    study = tmp_path / "study.yaml"
    if yaml_text is not None:
        study.write_text(yaml_text)
    return study


@pytest.fixture(scope="module")
def multi():
    return al.prepare_wave(al.load_study(MULTI / "study.yaml"), 1)


# -------------------------------------------------------------------------- the multi-file trial


def test_multi_file_counts_per_source(multi):
    counts = multi.sources.set_index("source")
    expected_in = {
        "demographics.csv": 24,
        "alliance_therapist.csv": 166,
        "alliance_client.csv": 156,
        "alliance_observer.csv": 96,
        "alliance_interpreter.csv": 40,
        "outcome_phq9_gad7.csv": 190,
    }
    for name, n in expected_in.items():  # the files' data rows
        assert counts.loc[name, "rows_in"] == n == len(pd.read_csv(MULTI / name))
    assert (counts["rows_in"] == counts["analysed"] + counts["quarantined"]).all()
    assert counts["quarantined"].sum() == 0
    assert multi.n_read == len(multi.scored) + len(multi.quarantine)
    # one client row per outcome appointment; observers averaged to one row per coded session
    assert multi.scored["rater"].value_counts().to_dict() == {
        "client": 190,
        "therapist": 166,
        "observer": 48,
        "interpreter": 40,
    }
    assert multi.raters == ["client", "therapist", "observer", "interpreter"]


def test_multi_file_equals_the_hand_merge(multi, tmp_path):
    """merge_by_hand.py's file, read as a one-file wave, gives the same numbers."""
    _copy(MULTI, tmp_path)
    merged = tmp_path / "merged.csv"
    argv, cwd = sys.argv, Path.cwd()
    try:
        import os

        os.chdir(tmp_path)
        sys.argv = ["merge_by_hand.py", str(merged)]
        runpy.run_path(str(tmp_path / "merge_by_hand.py"), run_name="__main__")
    finally:
        sys.argv = argv
        os.chdir(cwd)
    (tmp_path / "hand.yaml").write_text(
        "study: Multi-file alliance trial\nslug: multi-file\ndata: {1: merged.csv}\n"
        "columns: {client: client_id, therapist: therapist_id, session: session, rater: rater, "
        "date: date}\ninstruments: {alliance: wai-sr, outcome: phq-9}\n"
        "covariates: [age, baseline_severity]\nprivacy: {salt: multi-file-test-salt}\n"
    )
    hand = al.prepare_wave(al.load_study(tmp_path / "hand.yaml"), 1)
    keys = ["client_id", "session", "rater"]
    ours = multi.scored[multi.scored["rater"] != "interpreter"].set_index(keys).sort_index()
    theirs = hand.scored.set_index(keys).sort_index()
    assert ours.index.equals(theirs.index)
    same = ["wai_sr_total", "wai_sr_goal", "wai_sr_task", "wai_sr_bond", "phq9_total"]
    cr = ours.index.get_level_values("rater") != "observer"
    pd.testing.assert_frame_equal(ours.loc[cr, same], theirs.loc[cr, same])
    pd.testing.assert_series_equal(ours["therapist_id"], theirs["therapist_id"])
    pd.testing.assert_frame_equal(
        multi.sessions(), hand.sessions(), check_dtype=False
    )  # one row per client x session: alliance, therapist alliance, outcome, covariates


def test_perspectives_of_all_four_raters(multi):
    p = multi.perspectives()
    assert list(p.columns[2:]) == [
        "alliance_client",
        "alliance_therapist",
        "alliance_observer",
        "alliance_interpreter",
    ]
    assert (
        p["alliance_observer"].notna().sum() == 48 and p["alliance_interpreter"].notna().sum() == 40
    )
    s = multi.sessions().merge(p, on=["client_id", "session"], how="left")
    same = s["alliance"].notna()
    assert np.allclose(s.loc[same, "alliance"], s.loc[same, "alliance_client"])


def test_observers_mean_is_the_mean_of_the_coders_scores(multi):
    """combine: mean averages the coders' scores (the hand merge rounds item means instead)."""
    ob = al.read_table(MULTI / "alliance_observer.csv")
    per_coder = al.score(ob, "wai-sr")
    expected = per_coder.groupby(["client_id", "session"])["wai_sr_total"].mean()
    got = multi.scored[multi.scored["rater"] == "observer"]
    assert (got["n_raters"] == 2).all()
    assert np.allclose(np.sort(got["wai_sr_total"]), np.sort(expected.to_numpy()))


def test_inter_coder_icc_matches_rater_agreement(multi):
    ob = al.read_table(MULTI / "alliance_observer.csv")
    direct = al.rater_agreement(
        al.score(ob, "wai-sr"), "wai_sr_total", rater="coder", raters=("O1", "O2")
    )
    icc = multi.inter_rater.set_index("type")
    assert icc.loc["ICC(A,1)", "n_pairs"] == 48 == direct.n_pairs
    assert icc.loc["ICC(A,1)", "icc"] == pytest.approx(direct.icc.loc["ICC(A,1)", "icc"])
    assert icc.loc["ICC(C,1)", "icc"] == pytest.approx(direct.icc.loc["ICC(C,1)", "icc"])
    assert not icc["rater_a"].str.contains("O1|O2").any()  # coder ids pseudonymised


def test_combine_keep_keeps_one_row_per_coder(tmp_path):
    text = (MULTI / "study.yaml").read_text().replace("combine: mean", "combine: keep")
    study = _copy(MULTI, tmp_path, text)
    w = al.prepare_wave(al.load_study(study), 1)
    obs = w.scored[w.scored["rater"] == "observer"]
    assert len(obs) == 96 and obs["rater_id"].nunique() == 2
    assert set(w.inter_rater["type"]) == {"ICC(A,1)", "ICC(C,1)"}


# --------------------------------------------------------------- silent result 2: off by one


def test_outcome_numbered_by_appointment_without_offset_is_caught(tmp_path):
    """Without session_offset every outcome is one session off: the dates disagree, the rows
    are quarantined, and the reason says which offset fixes it (issue 11, silent result 2)."""
    text = (MULTI / "study.yaml").read_text().replace("session_offset: -1", "")
    w = al.prepare_wave(al.load_study(_copy(MULTI, tmp_path, text)), 1)
    counts = w.sources.set_index("source")
    assert counts.loc["alliance_therapist.csv", "analysed"] == 0
    assert counts.loc["outcome_phq9_gad7.csv", "quarantined"] == 166  # all but the last appts
    reasons = w.quarantine["reason"]
    assert reasons.str.contains("session has two dates across sources").all()
    assert reasons.str.contains("set session_offset: -1").all()


def test_appointment_numbering_without_dates_is_noted(tmp_path):
    """With no dates to compare, the signature (same first session, one more at the end for
    most clients) is reported in the wave's notes; with the offset set, no note."""
    items = ",".join(WAI)
    th = [f"C{c},{s},{ROW}" for c in range(6) for s in range(1, 5 + c % 2)]
    oc = [f"C{c},{a},2" for c in range(6) for a in range(1, 6 + c % 2)]
    (tmp_path / "a.csv").write_text(f"client_id,session,{items}\n" + "\n".join(th) + "\n")
    (tmp_path / "b.csv").write_text("client_id,appointment,phq9_1\n" + "\n".join(oc) + "\n")
    text = (
        "study: Small\nwaves:\n  1:\n    sources:\n      - {file: a.csv, rater: therapist}\n"
        "      - {file: b.csv, columns: {session: appointment}OFFSET}\n"
        "instruments: {alliance: wai-sr}\nprivacy: {salt: test-only-salt}\n"
    )
    (tmp_path / "study.yaml").write_text(text.replace("OFFSET", ""))
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    assert any("b.csv has one session more at the end than a.csv for 6 of 6" in n for n in w.notes)
    (tmp_path / "study.yaml").write_text(text.replace("OFFSET", ", session_offset: -1"))
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    assert not any("one session more" in n for n in w.notes)


def test_date_matching_sessions_like_merge_asof(multi):
    """Client forms get the session of the therapist's latest session on or before, <= 3 days."""
    cl = pd.read_csv(MULTI / "alliance_client.csv", dtype={"client_id": str})
    th = pd.read_csv(MULTI / "alliance_therapist.csv", dtype={"client_id": str})
    cl["date"] = pd.to_datetime(cl["completed_on"], format="%d/%m/%Y")
    th["date"] = pd.to_datetime(th["date"])
    m = pd.merge_asof(
        cl.sort_values("date"),
        th[["client_id", "session", "date"]].sort_values("date"),
        on="date",
        by="client_id",
        direction="backward",
        tolerance=pd.Timedelta(days=3),
    )
    intake = read_wave_sources(al.load_study(MULTI / "study.yaml"), 1)
    t = intake.table
    got = t[(t["rater"] == "client") & t["wai_sr_1"].notna()]
    assert sorted(zip(got["client_id"], got["session"].astype(int), strict=True)) == sorted(
        zip(m["client_id"], m["session"].astype(int), strict=True)
    )


# ------------------------------------------------------------------ merge checks, on small files


def _two_sources(tmp_path, a: str, b: str, extra: str = "", demo: str | None = None) -> Path:
    items = ",".join(WAI)
    (tmp_path / "a.csv").write_text(f"client_id,session,date,{items}\n{a}")
    (tmp_path / "b.csv").write_text(f"client_id,session,date,phq9_1\n{b}")
    demo_src = ""
    if demo is not None:
        (tmp_path / "demo.csv").write_text(demo)
        demo_src = "      - {file: demo.csv, level: client}\n"
    (tmp_path / "study.yaml").write_text(
        "study: Small\nwaves:\n  1:\n    sources:\n"
        + demo_src
        + "      - {file: a.csv, rater: therapist}\n"
        "      - {file: b.csv, rater: client}\n"
        + extra
        + "instruments: {alliance: wai-sr}\nprivacy: {salt: test-only-salt}\n"
    )
    return tmp_path / "study.yaml"


ROW = ",".join(["4"] * 12)


def test_one_date_per_client_session_across_sources(tmp_path):
    study = _two_sources(
        tmp_path,
        f"A,1,2025-01-06,{ROW}\nA,2,2025-01-13,{ROW}\n",
        "A,1,2025-01-06,2\nA,2,2025-01-20,1\n",
    )
    w = al.prepare_wave(al.load_study(study), 1)
    q = w.quarantine
    assert len(q) == 2 and set(q["session"]) == {2}
    assert q["reason"].str.contains("a.csv 2025-01-13").all()
    assert q["reason"].str.contains("b.csv 2025-01-20").all()
    assert w.sources["quarantined"].tolist() == [1, 1]


def test_ids_stay_text_in_every_source(tmp_path):
    """Silent result 1: 000001 stays 000001, 012 and 0012 stay apart, a typed 101 is '101'."""
    items = ",".join(WAI)
    (tmp_path / "a.csv").write_text(
        f"Client number,session,{items}\n000001,1,{ROW}\n1,1,{ROW}\n012,1,{ROW}\n0012,1,{ROW}\n"
    )
    pd.DataFrame({"pid": [101, 102], "session": [1, 1], **{c: [4, 4] for c in WAI}}).to_parquet(
        tmp_path / "b.parquet"
    )
    (tmp_path / "study.yaml").write_text(
        "study: Ids\nwaves:\n  1:\n    sources:\n"
        "      - {file: a.csv, columns: {client: Client number}}\n"
        "      - {file: b.parquet, columns: {client: pid}, rater: therapist}\n"
        "instruments: {alliance: wai-sr}\nprivacy: {salt: test-only-salt}\n"
    )
    table = read_wave(al.load_study(tmp_path / "study.yaml"), 1)
    assert sorted(table["client_id"]) == ["000001", "0012", "012", "1", "101", "102"]
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    assert w.scored["client_id"].nunique() == 6


def test_client_level_values_constant_and_carried(tmp_path):
    study = _two_sources(
        tmp_path,
        f"A,1,,{ROW}\nB,1,,{ROW}\n",
        "A,1,,2\n",
        demo="client_id,age,therapist_id\nA,30,T1\nB,40,T2\nB,41,T2\nC,50,T3\n",
    )
    w = al.prepare_wave(al.load_study(study), 1)
    counts = w.sources.set_index("source")
    assert counts.loc["demo.csv"].tolist() == [4, 1, 3]  # B twice with two ages; C no sessions
    reasons = " | ".join(w.quarantine["reason"])
    assert "client-level values differ between rows for this client: age" in reasons
    assert "no analysable session row for this client" in reasons
    a = w.scored[w.scored["rater"] == "therapist"]
    assert a["age"].tolist() == [30]  # carried to the session rows of A


def test_a_client_with_two_therapists_is_quarantined(tmp_path):
    items = ",".join(WAI)
    (tmp_path / "a.csv").write_text(
        f"client_id,therapist_id,session,{items}\nA,T1,1,{ROW}\nA,T2,2,{ROW}\nB,T1,1,{ROW}\n"
    )
    (tmp_path / "study.yaml").write_text(
        "study: Small\nwaves:\n  1:\n    sources:\n      - {file: a.csv}\n"
        "instruments: {alliance: wai-sr}\nprivacy: {salt: test-only-salt}\n"
    )
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    assert len(w.scored) == 1 and len(w.quarantine) == 2
    assert w.quarantine["reason"].str.startswith("the client has more than one therapist (T-").all()


def test_duplicate_in_one_source_quarantines_every_copy(tmp_path):
    study = _two_sources(tmp_path, f"A,1,,{ROW}\nA,1,,{ROW}\nA,2,,{ROW}\n", "A,1,,2\n")
    w = al.prepare_wave(al.load_study(study), 1)
    dup = w.quarantine[w.quarantine["reason"].str.contains("twice in a.csv")]
    assert len(dup) == 2 and dup["reason"].str.contains(r"rows 2, 3").all()


def test_a_value_given_by_two_sources_must_agree(tmp_path):
    items = ",".join(WAI)
    (tmp_path / "a.csv").write_text(f"client_id,session,site,{items}\nA,1,north,{ROW}\n")
    (tmp_path / "b.csv").write_text("client_id,session,site,phq9_1\nA,1,south,2\n")
    (tmp_path / "study.yaml").write_text(
        "study: Small\nwaves:\n  1:\n    sources:\n      - {file: a.csv}\n      - {file: b.csv}\n"
        "instruments: {alliance: wai-sr}\nprivacy: {salt: test-only-salt}\n"
    )
    with pytest.raises(al.DataError, match="site differs between sources: north in a.csv"):
        al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)


def test_cutoff_keeps_rows_up_to_the_date(tmp_path):
    study = _two_sources(
        tmp_path, f"A,1,2025-01-06,{ROW}\nA,2,2025-04-13,{ROW}\n", "A,1,2025-01-06,2\n"
    )
    text = study.read_text().replace(
        "  1:\n    sources:", "  1:\n    cutoff: 2025-03-31\n    sources:"
    )
    study.write_text(text)
    w = al.prepare_wave(al.load_study(study), 1)
    assert w.quarantine["reason"].tolist() == ["dated after the wave's cutoff (2025-03-31)"]


def test_absent_mapped_column_is_an_error_naming_file_key_and_columns(tmp_path):
    text = (
        (MULTI / "study.yaml")
        .read_text()
        .replace("therapist: therapist_id", "therapist: clinician")
    )
    study = _copy(MULTI, tmp_path, text)
    with pytest.raises(StudyError) as err:
        read_wave(al.load_study(study), 1)
    msg = str(err.value)
    assert "'clinician' not found in demographics.csv" in msg
    assert "columns.therapist" in msg and "columns there: client_id, therapist_id" in msg
    text = (
        (MULTI / "study.yaml")
        .read_text()
        .replace("within_days: 3}", 'within_days: 3}\n        items: {wai-sr: "wai_{n}"}')
    )
    with pytest.raises(StudyError, match=r"'wai_1'.*not found in alliance_client.csv"):
        read_wave(al.load_study(_copy(MULTI, tmp_path, text)), 1)


def test_unmatched_dates_are_quarantined_with_the_reason(tmp_path):
    text = (MULTI / "study.yaml").read_text().replace("within_days: 3", "within_days: 0")
    w = al.prepare_wave(al.load_study(_copy(MULTI, tmp_path, text)), 1)
    q = w.quarantine[w.quarantine["source"] == "alliance_client.csv"]
    cl = pd.read_csv(MULTI / "alliance_client.csv")
    th = pd.read_csv(MULTI / "alliance_therapist.csv")
    cl["date"] = pd.to_datetime(cl["completed_on"], format="%d/%m/%Y")
    th["date"] = pd.to_datetime(th["date"])
    home_same_day = len(cl.merge(th[["client_id", "date"]], on=["client_id", "date"]))
    assert len(q) == 156 - home_same_day > 0
    assert (
        q["reason"]
        .str.startswith("completed_on matched no session of alliance_therapist.csv within 0 days")
        .all()
    )


# ------------------------------------------------------------------------ routine systems, IAPT


def test_oq_export_ids_and_totals_match_the_vendor():
    study = al.load_study(INTAKE / "routine_systems" / "study.yaml")
    table = read_wave(study, 1)
    assert table["client_id"].iloc[0] == "000001"
    w = al.prepare_wave(study, 1)
    assert w.sources["rows_in"].tolist() == [62] and w.sources["quarantined"].tolist() == [0]
    # our total reverse-scores the nine positively worded items (keys transcribed from
    # instruments.md); the invented vendor "Total" is the plain item sum, which it is not
    raw = pd.read_csv(INTAKE / "routine_systems" / "oq_analyst_like_HYPOTHETICAL.csv")
    reverse = EXPECTED["oq-45.2"][5]
    q = raw[[f"Q{i}" for i in range(1, 46)]]
    expected = q.sum(axis=1) + sum(4 - 2 * q[f"Q{i}"] for i in reverse)
    assert np.array_equal(np.sort(w.scored["oq_total"]), np.sort(expected.astype(float)))
    assert (raw["Total"] == q.sum(axis=1)).all() and (
        w.scored["oq_total"] != w.scored["Total"]
    ).any()
    assert w.alliance is None and w.outcome == "oq"


def test_iapt_coded_scores_pivot_and_match_contacts():
    study = al.load_study(INTAKE / "routine_systems" / "iapt_study.yaml")
    w = al.prepare_wave(study, 1)
    counts = w.sources.set_index("source")
    raw = pd.read_csv(INTAKE / "routine_systems" / "iapt_style_coded_scored_assessments.csv")
    contacts = pd.read_csv(INTAKE / "routine_systems" / "iapt_style_care_contacts.csv")
    assert counts.loc["iapt_style_coded_scored_assessments.csv", "rows_in"] == len(raw) / 2
    assert counts.loc["iapt_style_care_contacts.csv", "rows_in"] == len(contacts)
    assert counts["quarantined"].sum() == 0
    phq = raw[raw["CodedAssToolType"] == 720433000].sort_values(["PathwayID", "AssToolCompDate"])
    got = w.scored.dropna(subset=["phq9_total"]).sort_values(["client_id", "date"])
    assert sorted(got["phq9_total"]) == sorted(phq["PersScore"].astype(float))
    # sessions are contact numbers (assessment = 0), DNAs included
    first = w.scored.groupby("client_id")["session"].min()
    assert (first == 0).all() and len(w.scored) == len(contacts)


def test_pivot_coded_scores_conflict_and_other_codes():
    d = pd.DataFrame(
        {
            "p": ["A", "A", "A", "A"],
            "d": ["x", "x", "x", "x"],
            "code": [720433000, 720433000, 445455005, 999],
            "score": [10, 12, 5, 1],
        }
    )
    out = pivot_coded_scores(d, client="p", code="code", score="score", keys=["d"])
    assert np.isnan(out["phq9_total"].iloc[0]) and out["gad7_total"].iloc[0] == 5
    assert out.attrs["conflicts"] == {"phq9_total": 1}
    assert "1 rows with other assessment codes left out" in out.attrs["warnings"][0]


# --------------------------------------------------------------------------- Parquet, large data


def test_parquet_folder_source_reads_only_needed_columns(tmp_path):
    d = al.simulate_study(n_clients=30, n_therapists=3, seed=3)
    d["site"] = np.where(d["client_id"].str[-1].isin(list("02468")), "a", "b")
    d["unused_free_text"] = "x"
    d.to_parquet(tmp_path / "big", partition_cols=["site"])
    (tmp_path / "study.yaml").write_text(
        "study: Big\nwaves:\n  1:\n    sources:\n"
        "      - {file: big, columns: {client: client_id, therapist: therapist_id, "
        "session: session, rater: rater}}\n"
        "missing_codes: [-99, 999]\ninstruments: {alliance: wai-sr, outcome: oq-45.2}\n"
        "covariates: [site]\nprivacy: {salt: test-only-salt}\n"
    )
    study = al.load_study(tmp_path / "study.yaml")
    table = read_wave(study, 1)
    assert "unused_free_text" not in table and "site" in table and "date" in table
    w = al.prepare_wave(study, 1)
    one = tmp_path / "one.csv"
    d.drop(columns="unused_free_text").to_csv(one, index=False)
    (tmp_path / "one.yaml").write_text(
        "study: Big\ndata: {1: one.csv}\ncolumns: {rater: rater}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\ncovariates: [site]\nprivacy: {salt: test-only-salt}\n"
    )
    ref = al.prepare_wave(al.load_study(tmp_path / "one.yaml"), 1)
    keys = ["client_id", "session", "rater"]
    a = w.scored.set_index(keys).sort_index()[["wai_sr_total", "oq_total"]]
    b = ref.scored.set_index(keys).sort_index()[["wai_sr_total", "oq_total"]]
    pd.testing.assert_frame_equal(a, b)
    assert w.sources["quarantined"].sum() == len(ref.quarantine)
    assert any("read" in n and "Parquet" in n for n in w.notes)
    parts = study.wave_files(1)
    assert len(parts) == 2 and all(p.suffix == ".parquet" for p in parts)  # one per partition
    (tmp_path / "folder.yaml").write_text(
        (tmp_path / "one.yaml").read_text().replace("one.csv", "big")
    )
    folder = al.prepare_wave(al.load_study(tmp_path / "folder.yaml"), 1)  # the one-file form
    assert "unused_free_text" not in folder.scored
    c = folder.scored.set_index(keys).sort_index()[["wai_sr_total", "oq_total"]]
    pd.testing.assert_frame_equal(c, b)


EXAMPLES = [
    ("multi_file/study.yaml", 1),
    ("redcap/study.yaml", 1),
    ("redcap/study.yaml", 2),
    ("qualtrics/study.yaml", 1),
    ("qualtrics/study.yaml", 2),
    ("spss/study.yaml", 1),
    ("routine_systems/study.yaml", 1),
    ("routine_systems/iapt_study.yaml", 1),
]


@pytest.mark.parametrize(("yaml_file", "wave"), EXAMPLES)
def test_every_intake_example_reaches_prepare_wave(yaml_file, wave):
    """Done-when of issue 11: every example needs only its study YAML."""
    study = al.load_study(INTAKE / yaml_file)
    w = al.prepare_wave(study, wave)
    c = w.sources
    assert (c["rows_in"] == c["analysed"] + c["quarantined"]).all()
    assert w.n_read == len(w.scored) + len(w.quarantine)
    assert len(w.scored) > 0
    assert all(p.exists() for p in study.wave_files(wave))
    assert not w.quarantine["client_id"].astype(str).str.match(r"(CL-|P0|PW0)").any()


EXAMPLES = [
    ("multi_file/study.yaml", 1),
    ("redcap/study.yaml", 1),
    ("redcap/study.yaml", 2),
    ("qualtrics/study.yaml", 1),
    ("qualtrics/study.yaml", 2),
    ("spss/study.yaml", 1),
    ("routine_systems/study.yaml", 1),
    ("routine_systems/iapt_study.yaml", 1),
]


@pytest.mark.slow
@pytest.mark.parametrize(("yaml_file", "wave"), EXAMPLES)
def test_alliance_report_runs_on_every_intake_example(tmp_path, yaml_file, wave):
    """Every example of shared/intake-examples reaches `alliance report` with only its study
    YAML: every row read is analysed or quarantined, per source, and what cannot be computed
    for the data (pre-scored totals, an outcome-only study) is said, not fatal."""
    import json

    from alliance_lib.cli import main

    code = main(
        ["report", str(INTAKE / yaml_file), "--wave", str(wave), "--out", str(tmp_path), "--quiet"]
    )
    assert code == 0
    (report,) = [p for p in tmp_path.glob("*/wave-*") if p.is_dir()]
    results = json.loads((report / "results.json").read_text())
    dq = results["data_quality"]
    w = al.prepare_wave(al.load_study(INTAKE / yaml_file), wave)
    assert dq["rows_read"] == w.n_read == dq["rows_analysed"] + dq["rows_quarantined"]
    per_source = w.sources
    assert (per_source["rows_in"] == per_source["analysed"] + per_source["quarantined"]).all()
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "This wave" in html and "Traceback" not in html
