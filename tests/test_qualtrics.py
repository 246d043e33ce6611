"""read_qualtrics on the Qualtrics examples (tests/data/intake/qualtrics, copies of
../shared/intake-examples/qualtrics): three header rows, previews, unfinished responses, the last
finished response, recode values. Expected values are read off the CSV files by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.qualtrics import read_qualtrics

HERE = Path(__file__).resolve().parent / "data" / "intake" / "qualtrics"
WAI = HERE / "qualtrics_wai_sr.csv"


def test_header_rows_codebook_and_dropped_responses():
    d = read_qualtrics(WAI, client="Q1", session="sess")
    assert d.index[0] == 5  # row 4 is the preview (rows 1-3: names, texts, import ids)
    assert len(d) == 40
    assert d.attrs["codebook"]["Q1"].startswith("Please type your client number")
    dropped = pd.DataFrame(d.attrs["dropped"])
    assert dropped["row"].tolist() == [4, 18]
    assert dropped["reason"].str.startswith(("survey preview", "unfinished")).all()
    assert d["client_id"].str.strip().eq(d["client_id"]).all()
    assert sorted(set(d["client_id"]))[:3] == ["101", "CL-0100", "CL-0101"]


def test_all_responses_keeps_the_last_finished_one(tmp_path):
    d = read_qualtrics(WAI, client="Q1", session="sess", responses="all")
    # the unfinished response duplicates CL-0103's session 1, which has a finished response
    assert len(d) == 40
    assert pd.DataFrame(d.attrs["dropped"])["reason"].str.startswith("superseded").sum() == 1
    kept = d[(d["client_id"] == "CL-0103") & (d["session"] == 1)]
    assert kept["Finished"].tolist() == [1]


def test_later_finished_response_wins(tmp_path):
    lines = WAI.read_text().splitlines()
    again = lines[5].split(",")
    again[7] = "2025-05-30 10:00:00"  # RecordedDate: later
    again[8] = "R_again"
    again[18] = "1"  # Q2_1
    (tmp_path / "q.csv").write_text("\n".join(lines + [",".join(again)]) + "\n")
    d = read_qualtrics(tmp_path / "q.csv", client="Q1", session="sess")
    key = (d["client_id"] == again[17].strip()) & (d["session"] == float(again[-1]))
    assert d.loc[key, "ResponseId"].tolist() == ["R_again"]


def test_recode_value_named_in_the_reason():
    w = al.prepare_wave(al.load_study(HERE / "study.yaml"), 2)
    bad = w.quarantine[w.quarantine["reason"].str.contains("recode value")]
    assert len(bad) == 27
    assert bad["reason"].str.contains(r"= 6 is outside 1-5: Qualtrics recode value 6 of Q2_").all()
    assert w.sources["rows_in"].tolist() == [42]


def test_wave_of_a_qualtrics_source():
    w = al.prepare_wave(al.load_study(HERE / "study.yaml"), 1)
    assert w.sources.to_dict("records") == [
        {"source": WAI.name, "rows_in": 42, "analysed": 40, "quarantined": 2}
    ]
    near = [n for n in w.notes if "probably one client typed differently" in n]
    assert len(near) == 1 and "CL-0101" not in near[0] and near[0].count("C-") == 3


def test_not_a_qualtrics_export(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    with pytest.raises(al.DataError, match="not a Qualtrics export"):
        read_qualtrics(tmp_path / "x.csv")


def test_choice_text_export_refused(tmp_path):
    lines = WAI.read_text().splitlines()
    row = lines[4].split(",")
    row[2] = "IP Address"
    (tmp_path / "q.csv").write_text("\n".join(lines[:4] + [",".join(row)]) + "\n")
    with pytest.raises(al.DataError, match="Use numeric values"):
        read_qualtrics(tmp_path / "q.csv", client="Q1")
    assert isinstance(pd.DataFrame(), pd.DataFrame)
