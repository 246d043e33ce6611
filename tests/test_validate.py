"""Tests for alliance_lib.validate: every problem kind, rows in = clean + quarantined."""

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.scoring import MissingColumnsError

GOOD = [3, 4, 3, 4, 3, 4, 3, 4, 3, 4, 3, 4]


def table(rows):
    """rows: (client, session, rater, items) tuples; index = file rows 2, 3, ..."""
    df = pd.DataFrame(
        {
            "client_id": pd.array([r[0] for r in rows], dtype=object),
            "session": pd.array([r[1] for r in rows], dtype=object),
            "rater": pd.array([r[2] for r in rows], dtype=object),
        }
    )
    for i in range(12):
        df[f"wai_sr_{i + 1}"] = pd.array([r[3][i] for r in rows], dtype=object)
    df.index = pd.RangeIndex(2, 2 + len(rows), name="row")
    return df


def item(pos, value):
    out = list(GOOD)
    out[pos - 1] = value
    return out


MESSY = [
    ("001", 1, "client", GOOD),  # 2 clean
    ("001", 2, "client", item(3, 7)),  # 3 out of range
    ("001", 3, "client", item(5, 2.5)),  # 4 non-integer
    ("001", 4, "client", item(4, "n/a")),  # 5 text
    ("001", 5, "client", item(6, "—")),  # 6 dash
    ("001", 6, "client", item(8, -99)),  # 7 missing code: clean
    (None, 1, "client", GOOD),  # 8 missing client
    ("  ", 1, "client", GOOD),  # 9 blank client
    ("002", -1, "client", GOOD),  # 10 negative session
    ("002", 2.5, "client", GOOD),  # 11 non-integer session
    ("002", "two", "client", GOOD),  # 12 text session
    ("002", None, "client", GOOD),  # 13 missing session
    ("003", 1, "client", GOOD),  # 14 duplicate
    ("003", 1, "client", item(1, 5)),  # 15 duplicate
    ("003", 1, None, GOOD),  # 16 duplicate (blank rater = client)
    ("003", 1, "therapist", GOOD),  # 17 clean: other rater
    ("003", 2, "patient", GOOD),  # 18 unknown rater
    ("004", "3", "Client", [None] * 12),  # 19 clean: not administered, session as text "3"
    ("005", 1, "client", item(9, "3,5")),  # 20 decimal comma
]


@pytest.fixture
def result():
    return al.validate(table(MESSY), "wai-sr", missing_codes=[-99])


def test_rows_in_equal_clean_plus_quarantined(result):
    assert result.n_in == 19
    assert result.n_clean + result.n_quarantined == result.n_in
    assert len(result.clean) == result.n_clean and len(result.quarantined) == result.n_quarantined
    assert sorted([*result.clean.index, *result.quarantined.index]) == list(range(2, 21))
    assert result.clean.index.tolist() == [2, 7, 17, 19]


def test_reasons_name_column_and_value(result):
    reason = result.quarantined["reason"]
    assert reason.index.name == "row"
    expected = {
        3: "wai_sr_3 = 7 is outside 1-5",
        4: "wai_sr_5 = 2.5 is not a whole number (the 1-5 scale has whole-number answers)",
        5: "wai_sr_4 = 'n/a' is text, not a number",
        6: "wai_sr_6 = '—' is text, not a number",
        8: "client_id is missing",
        9: "client_id is missing",
        10: "session = -1 is negative",
        11: "session = 2.5 is not a whole number",
        12: "session = 'two' is not a number",
        13: "session is missing",
        14: "duplicate client_id x session x rater ('003', 1, 'client'): 3 rows (rows 14, 15, 16)",
        15: "duplicate client_id x session x rater ('003', 1, 'client'): 3 rows (rows 14, 15, 16)",
        16: "duplicate client_id x session x rater ('003', 1, 'client'): 3 rows (rows 14, 15, 16)",
        18: "rater = 'patient' is not one of client, therapist, observer",
        20: "wai_sr_9 = '3,5' is text, not a number (decimal comma?)",
    }
    assert reason.to_dict() == expected


def test_quarantined_keeps_original_values(result):
    q = result.quarantined
    assert list(q.columns) == [*table(MESSY).columns, "reason"]
    assert q.loc[5, "wai_sr_4"] == "n/a"
    assert q.loc[3, "wai_sr_3"] == 7


def test_clean_is_numeric_with_missing_codes_as_nan(result):
    clean = result.clean
    assert clean.loc[7, "wai_sr_8"] != clean.loc[7, "wai_sr_8"]  # NaN
    assert clean["wai_sr_1"].dtype == np.float64
    assert clean["session"].dtype == np.int64
    assert clean["session"].tolist() == [1, 6, 1, 3]
    scored = al.score(clean, "wai-sr")
    assert scored["wai_sr_total"].notna().tolist() == [True, True, True, False]


def test_missing_codes_counted(result):
    assert result.missing_codes.to_dict() == {"wai_sr_8": 1}
    line = result.summary[result.summary["problem"] == "missing code"]
    assert line[["column", "n_cells", "action"]].values.tolist() == [
        ["wai_sr_8", 1, "set to missing"]
    ]


def test_summary_counts_rows_per_problem(result):
    s = result.summary.set_index(["problem", "column"])["n_rows"]
    assert s["duplicate client_id x session x rater", "client_id, session, rater"] == 3
    assert s["missing client id", "client_id"] == 2
    assert s["text in item column", "wai_sr_4"] == 1
    assert s["value outside scale", "wai_sr_3"] == 1
    assert s["non-integer on integer scale", "wai_sr_5"] == 1
    assert s["unknown rater", "rater"] == 1
    assert set(result.summary["action"]) == {"quarantined", "set to missing"}


def test_absent_item_column_suggests():
    df = table(MESSY[:1]).rename(columns={"wai_sr_12": "wai_sr12"})
    with pytest.raises(MissingColumnsError, match="Did you mean 'wai_sr12' for 'wai_sr_12'"):
        al.validate(df, "wai-sr")


def test_absent_id_column_suggests():
    df = table(MESSY[:1]).rename(columns={"client_id": "ClientID"})
    with pytest.raises(MissingColumnsError, match="'ClientID' for 'client_id'"):
        al.validate(df, "wai-sr")


def test_absent_rater_column_means_client():
    df = table(MESSY[:1] * 2).drop(columns="rater")
    v = al.validate(df, "wai-sr")
    assert v.n_quarantined == 2
    assert v.quarantined["reason"].iloc[0] == (
        "duplicate client_id x session x rater ('001', 1, 'client'): 2 rows (rows 2, 3)"
    )


def test_several_instruments_and_not_administered():
    df = table([("a", 1, "client", GOOD), ("a", 1, "therapist", GOOD)])
    for i in range(1, 46):
        df[f"oq_{i}"] = [2, None]  # therapist row: OQ not administered, not an error
    df.loc[2, "oq_45"] = 5
    v = al.validate(df, ["wai-sr", "oq-45.2"])
    assert v.instruments == ("wai-sr", "oq-45.2")
    assert v.clean.index.tolist() == [3]
    assert v.quarantined["reason"].tolist() == ["oq_45 = 5 is outside 0-4"]


def test_several_problems_in_one_row_are_all_listed():
    v = al.validate(table([(None, -2, "client", item(1, 9))]), "wai-sr")
    assert v.quarantined["reason"].iloc[0] == (
        "client_id is missing; session = -2 is negative; wai_sr_1 = 9 is outside 1-5"
    )


def test_all_clean_numeric_fast_path():
    n = 50
    df = pd.DataFrame({"client_id": [f"{i:03d}" for i in range(n)], "session": np.arange(n)})
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = np.full(n, 3.0)
    df.loc[5, "wai_sr_2"] = -99
    v = al.validate(df, "wai-sr", missing_codes=(-99,), source="x.csv")
    assert (v.n_clean, v.n_quarantined) == (n, 0)
    assert np.isnan(v.clean.loc[5, "wai_sr_2"]) and df.loc[5, "wai_sr_2"] == -99
    assert v.source == "x.csv"
    assert "50 rows from x.csv: 50 clean, 0 quarantined" in repr(v)


def test_ids_stripped_for_duplicates_and_leading_zeros_kept():
    v = al.validate(
        table([("007", 1, "client", GOOD), (" 007 ", 1, "client", GOOD), ("7", 1, "client", GOOD)]),
        "wai-sr",
    )
    assert v.quarantined.index.tolist() == [2, 3]
    assert v.clean["client_id"].tolist() == ["7"]


def test_empty_table():
    v = al.validate(table(MESSY[:1]).iloc[:0], "wai-sr")
    assert (v.n_in, v.n_clean, v.n_quarantined) == (0, 0, 0)


def test_infinite_and_huge_sessions():
    rows = [
        ("a", np.inf, "client", GOOD),
        ("a", 10**15, "client", GOOD),
        ("b", 10**15, "client", GOOD),
    ]
    v = al.validate(table(rows), "wai-sr")
    assert v.quarantined["reason"].tolist() == ["session = inf is not a number"]
    assert v.clean["session"].tolist() == [10**15, 10**15]


def test_numeric_string_missing_code_on_numeric_column():
    df = table([("a", 1, "client", item(2, -99))]).astype(
        {f"wai_sr_{i}": float for i in range(1, 13)}
    )
    v = al.validate(df, "wai-sr", missing_codes=["-99"])
    assert v.n_clean == 1 and v.missing_codes.to_dict() == {"wai_sr_2": 1}


def test_clean_rows_copied_run_by_run_equal_the_row_by_row_copy(monkeypatch, result):
    # the clean frame is built from runs of clean rows (few quarantined rows) or by gathering
    # the clean rows one by one (many); both give the same frame, by hand: rows 2, 7, 17, 19
    validate_module = __import__("sys").modules["alliance_lib.validate"]
    monkeypatch.setattr(validate_module, "_FEW_RUNS", 0)
    gathered = al.validate(table(MESSY), "wai-sr", missing_codes=[-99])
    pd.testing.assert_frame_equal(result.clean, gathered.clean, check_exact=True)
    assert result.clean.index.tolist() == [2, 7, 17, 19]
    assert result.clean["client_id"].tolist() == ["001", "001", "003", "004"]
    assert result.clean["session"].tolist() == [1, 6, 1, 3]
    assert np.isnan(result.clean.loc[7, "wai_sr_8"]) and result.clean.loc[17, "wai_sr_1"] == 3
    # a long table with one quarantined row in the middle: the runs either side of it
    n = 5000
    df = pd.DataFrame({"client_id": [f"{i:05d}" for i in range(n)], "session": 1})
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = np.arange(n) % 5 + 1.0
    df.loc[2500, "wai_sr_3"] = 9
    df.index = pd.RangeIndex(2, n + 2, name="row")
    gathered = al.validate(df, "wai-sr")
    monkeypatch.setattr(validate_module, "_FEW_RUNS", 256)
    runs = al.validate(df, "wai-sr")
    pd.testing.assert_frame_equal(runs.clean, gathered.clean, check_exact=True)
    assert runs.quarantined.index.tolist() == [2502]
    assert runs.clean.index[[2499, 2500]].tolist() == [2501, 2503]
    assert runs.clean["wai_sr_3"].iloc[2500] == 2501 % 5 + 1
    assert runs.clean["client_id"].iloc[2500] == "02501"


def test_arrow_text_ids_in_several_chunks_are_matched_after_stripping():
    # Arrow-backed text columns are encoded in Arrow; a column made of two chunks (concat) and
    # ids differing only by blanks must behave like the object-dtype column, by hand:
    # " 07" and "07" are one client (rows 2 and 4 duplicate), "" is a missing id (row 3)
    rows = [("07", 1), ("", 1), (" 07", 1), ("08", 1), ("08", 2)]
    parts = [
        pd.DataFrame({"client_id": pd.array([c for c, _ in rows[a:b]], dtype="str")})
        for a, b in ((0, 2), (2, 5))
    ]
    df = pd.concat(parts, ignore_index=True)
    df["session"] = [s for _, s in rows]
    df["rater"] = pd.array(["client", "client", "Client ", "client", "client"], dtype="str")
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = 3.0
    df.index = pd.RangeIndex(2, 7, name="row")
    assert df["client_id"].array.__arrow_array__().num_chunks == 2
    v = al.validate(df, "wai-sr")
    as_object = al.validate(df.astype({"client_id": object, "rater": object}), "wai-sr")
    assert v.quarantined.index.tolist() == [2, 3, 4] == as_object.quarantined.index.tolist()
    assert v.quarantined["reason"].tolist() == as_object.quarantined["reason"].tolist()
    assert v.quarantined.loc[3, "reason"] == "client_id is missing"
    assert v.quarantined.loc[2, "reason"] == (
        "duplicate client_id x session x rater ('07', 1, 'client'): 2 rows (rows 2, 4)"
    )
    assert v.clean.index.tolist() == [5, 6]


def test_exact_arrow_raters_are_looked_up_like_the_general_path():
    # Arrow text raters that are all exactly one of RATERS (or missing) are looked up in Arrow;
    # others, and object columns, take the general path. By hand: rows 2 and 4 are duplicates
    # (a missing rater is the client), rows 3 (therapist) and 5 (observer) are clean
    validate_module = __import__("sys").modules["alliance_lib.validate"]
    df = pd.DataFrame(
        {
            "client_id": pd.array(["01"] * 4, dtype="str"),
            "session": [1, 1, 1, 1],
            "rater": pd.array(["client", "therapist", None, "observer"], dtype="str"),
        },
        index=pd.RangeIndex(2, 6, name="row"),
    )
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = 3.0
    assert validate_module._exact_raters(df["rater"]).tolist() == [0, 1, 0, 2]
    assert validate_module._exact_raters(df["rater"].astype(object)) is None
    assert validate_module._exact_raters(pd.Series(["client", "Client"], dtype="str")) is None
    v = al.validate(df, "wai-sr")
    as_object = al.validate(df.astype({"rater": object}), "wai-sr")
    assert v.quarantined.index.tolist() == [2, 4] == as_object.quarantined.index.tolist()
    assert v.quarantined["reason"].tolist() == as_object.quarantined["reason"].tolist()
    assert v.quarantined.loc[2, "reason"] == (
        "duplicate client_id x session x rater ('01', 1, 'client'): 2 rows (rows 2, 4)"
    )
    assert v.clean.index.tolist() == [3, 5]
    unknown = df.assign(rater=pd.array(["client", "therapist", None, "patient"], dtype="str"))
    assert validate_module._exact_raters(unknown["rater"]) is None
    assert al.validate(unknown, "wai-sr").quarantined.loc[5, "reason"] == (
        "rater = 'patient' is not one of client, therapist, observer"
    )


def test_runs_of_arrow_ids_are_encoded_once_per_run():
    # a table sorted by client holds runs of equal ids, encoded one id per run; by hand:
    # " 07" is "07" once stripped, None is missing (-1), "08" is the second id
    validate_module = __import__("sys").modules["alliance_lib.validate"]
    ids = ["07"] * 4 + [" 07"] * 4 + [None] * 4 + ["08"] * 4
    codes, uniq = validate_module._factorize_text(pd.Series(ids, dtype="str"))
    assert codes.tolist() == [0] * 4 + [0] * 4 + [-1] * 4 + [1] * 4
    assert list(uniq) == ["07", "08"] and codes.dtype == np.int64
    codes, uniq = validate_module._factorize_text(pd.Series(["b"] * 5 + ["a"] * 3, dtype="str"))
    assert codes.tolist() == [0] * 5 + [1] * 3 and list(uniq) == ["b", "a"]
    df = pd.DataFrame(
        {"client_id": pd.array(ids, dtype="str"), "session": [1, 2, 3, 4] * 4},
        index=pd.RangeIndex(2, 18, name="row"),
    )
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = 3.0
    v = al.validate(df, "wai-sr")
    as_object = al.validate(df.astype({"client_id": object}), "wai-sr")
    assert v.clean.index.tolist() == [14, 15, 16, 17] == as_object.clean.index.tolist()
    assert v.quarantined["reason"].tolist() == as_object.quarantined["reason"].tolist()
    assert v.quarantined.loc[2, "reason"] == (
        "duplicate client_id x session x rater ('07', 1, 'client'): 2 rows (rows 2, 6)"
    )
    assert v.quarantined.loc[10, "reason"] == "client_id is missing"


def test_validated_result_pickles_with_its_checked_blocks():
    import pickle

    df = pd.DataFrame({"client_id": ["a", "b"], "session": [1, 1]})
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = [4.0, 2.0]
    v = al.validate(df, "wai-sr")
    again = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(again.checked_items["wai-sr"], v.checked_items["wai-sr"])
    # a copy holds other memory: scored from the cells, with the same scores
    pd.testing.assert_frame_equal(again.score(), v.score())


@pytest.mark.parametrize(
    "ids, expect",
    [
        ([101.0, 101.0, 102.0], ["101", "101", "102"]),  # silent result 1: never "101.0"
        ([101, 101, 102], ["101", "101", "102"]),
        (["000001", " 000001", "012"], ["000001", "000001", "012"]),  # zeros survive
    ],
)
def test_clean_client_ids_are_text(ids, expect):
    df = pd.DataFrame({"client_id": ids, "session": [1, 2, 1]})
    for i in range(1, 13):
        df[f"wai_sr_{i}"] = [4.0, 3.0, 2.0]
    v = al.validate(df, "wai-sr")
    assert v.clean["client_id"].tolist() == expect
    assert v.clean["client_id"].dtype == "str"
    assert v.score()["wai_sr_total"].tolist() == [4.0, 3.0, 2.0]  # the block is still handed over
    assert al.score(v, "wai-sr").attrs["scoring"]["wai_sr"]["n_scored"]["wai_sr_total"] == 3
