"""read_redcap on the REDCap examples (tests/data/intake/redcap, copies of
../shared/intake-examples/redcap): events, repeating instruments, base rows, calculated fields,
missing data codes, labels exports. Expected values are read off the CSV files by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.redcap import read_redcap, read_redcap_dictionary

HERE = Path(__file__).resolve().parent / "data" / "intake" / "redcap"
LONG = HERE / "redcap_longitudinal_raw.csv"
REP = HERE / "redcap_repeating_raw.csv"
DICT = HERE / "redcap_data_dictionary.csv"


def test_longitudinal_events_become_sessions():
    d = read_redcap(LONG, DICT)
    raw = pd.read_csv(LONG, dtype=str)
    assert len(d) == len(raw) == 157  # every row is a record x event
    event = raw["redcap_event_name"].str.replace(r"_arm_\d+$", "", regex=True)
    expected = event.str.extract(r"session_(\d+)")[0].astype(float).fillna(0).to_numpy()
    assert np.array_equal(d["session"].to_numpy(), expected)
    assert set(d.loc[d["arm"] == "2", "session"]) == {0.0}  # waiting list: intake only
    assert d["client_id"].map(type).eq(str).all()


def test_base_row_fields_are_carried_to_every_event():
    d = read_redcap(LONG, DICT)
    rec1 = d[d["client_id"] == "1"]
    assert rec1["age"].nunique() == 1 and rec1["age"].iloc[0] == 58
    assert rec1["therapist"].iloc[-1] == 1 and rec1["ref_reason___1"].iloc[-1] == 1
    assert "wai_sr_complete" in d and "phq9_complete" in d  # {form}_complete kept


def test_calculated_field_kept_and_equal_to_our_score():
    study = al.load_study(HERE / "study.yaml")
    w = al.prepare_wave(study, 1)
    s = w.scored
    assert "phq9_total_redcap" in s and "phq9_total" in s
    both = s[["phq9_total", "phq9_total_redcap"]].dropna()
    assert len(both) > 100 and (both["phq9_total"] == both["phq9_total_redcap"]).all()
    n = len(both)
    assert (
        f"phq9_total: the export's calculated phq9_total_redcap agrees with the score computed here on {n} of {n} rows"
        in w.notes
    )


def test_missing_data_codes_are_missing_and_counted():
    d = read_redcap(LONG, DICT)
    raw = pd.read_csv(LONG, dtype=str)
    cells = pd.DataFrame(d.attrs["missing_cells"]).groupby("code")["n"].sum().to_dict()
    assert cells == {
        "NASK": int((raw == "NASK").sum().sum()),
        "UNK": int((raw == "UNK").sum().sum()),
    }
    w = al.prepare_wave(al.load_study(HERE / "study.yaml"), 1)
    assert w.sources["quarantined"].tolist() == [0]
    assert set(w.missing_codes["declared"]) == {"REDCap missing data code"}


def test_labels_export_is_refused_with_what_to_do():
    with pytest.raises(al.DataError, match=r"re-export as CSV \(raw data\)") as err:
        read_redcap(HERE / "redcap_longitudinal_labels.csv")
    assert err.value.column == "Record ID"


def test_repeat_instance_is_not_a_session():
    """Silent result 3: instances are in entry order; a session needs a date."""
    with pytest.raises(al.DataError, match="not the session order") as err:
        read_redcap(REP, DICT, session="instance")
    assert "session_date" in err.value.hint


def test_repeating_instrument_in_date_order():
    d = read_redcap(REP, DICT, session={"date": "session_date"})
    raw = pd.read_csv(REP, dtype=str)
    rec4 = d[d["client_id"] == "004"].sort_values("session")
    assert rec4["session_date"].is_monotonic_increasing
    assert rec4["redcap_repeat_instance"].astype(int).tolist()[:4] == [1, 4, 2, 3]
    assert len(d.attrs["base_rows"]) == raw["redcap_repeat_instrument"].isna().sum() == 15
    assert [r["reason"] for r in d.attrs["dropped"]] == ["empty repeat instance (no data entered)"]
    assert d.loc[d["client_id"] == "004", "age"].notna().all()  # base row carried
    assert any("not their place in session_date order" in n for n in d.attrs["warnings"])


def test_repeating_wave_counts_every_row():
    w = al.prepare_wave(al.load_study(HERE / "study.yaml"), 2)
    raw = pd.read_csv(REP, dtype=str)
    assert w.sources.to_dict("records") == [
        {"source": REP.name, "rows_in": len(raw), "analysed": len(raw) - 1, "quarantined": 1}
    ]


def test_dictionary_choices_checked(tmp_path):
    text = LONG.read_text().splitlines()
    cols = text[0].split(",")
    row = text[1].split(",")
    row[cols.index("gender")] = "7"
    (tmp_path / "x.csv").write_text("\n".join([text[0], ",".join(row)] + text[2:]) + "\n")
    d = read_redcap(tmp_path / "x.csv", DICT)
    assert any("gender = '7' (row 2) is not one of its choices" in n for n in d.attrs["warnings"])
    dd = read_redcap_dictionary(DICT)
    assert dd.set_index("field").loc["phq9_total", "type"] == "calc"
