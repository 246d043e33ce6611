"""Tests for alliance_lib.io: read_table, read_sav, to_long, to_wide.

Every expected value is written by hand from the small file built in the test. The malformed
corpus under tests/data/bad/ is exercised in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance_lib.io import (
    Codebook,
    ReadError,
    ReshapeError,
    read_sav,
    read_table,
    to_long,
    to_wide,
)


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


# ------------------------------------------------------------------------------ ReadError


def test_read_error_fields_and_message():
    err = ReadError("bad value", file="a.csv", row=7, column="session", value="x", hint="fix it")
    assert (err.file, err.row, err.column, err.value, err.hint) == (
        "a.csv",
        7,
        "session",
        "x",
        "fix it",
    )
    assert str(err) == "a.csv, row 7, column 'session', value 'x': bad value. What to do: fix it."
    assert str(ReadError("empty", file="b.csv")) == "b.csv: empty."
    assert isinstance(err, ValueError)


# ------------------------------------------------------------------------------- CSV basics


def test_csv_index_is_the_file_line_and_attrs_record_the_source(tmp_path):
    p = write(tmp_path, "w.csv", "client_id,session,x\n01,1,2.5\n02,2,3\n")
    df = read_table(p)
    assert df.index.name == "row"
    assert df.index.tolist() == [2, 3]
    assert df.attrs["source"] == str(p)
    assert df.attrs["format"] == "csv"
    assert df.attrs["header_row"] == 1
    assert df["client_id"].tolist() == ["01", "02"]
    assert df["session"].dtype == np.int64
    assert df["x"].tolist() == [2.5, 3.0]


def test_any_column_named_id_or_ending_in_id_is_text(tmp_path):
    p = write(tmp_path, "w.csv", "ID,site_id,rater_code,n\n001,02,003,004\n")
    df = read_table(p)
    assert df["ID"].tolist() == ["001"]
    assert df["site_id"].tolist() == ["02"]
    assert df["rater_code"].tolist() == [3]  # not an id column: a number
    assert read_table(p, id_columns=("rater_code",))["rater_code"].tolist() == ["003"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path, delimiter):
    rows = [["client_id", "session", "wai_sr_1"], ["C1", "1", "4"], ["C2", "2", "5"]]
    p = write(tmp_path, "w.txt", "\n".join(delimiter.join(r) for r in rows) + "\n")
    df = read_table(p)
    assert df.attrs["delimiter"] == delimiter
    assert list(df.columns) == ["client_id", "session", "wai_sr_1"]
    assert df["wai_sr_1"].tolist() == [4, 5]


def test_explicit_delimiter_wins(tmp_path):
    p = write(tmp_path, "w.csv", "a;b,c\n1;2,3\n")
    assert list(read_table(p, delimiter=";").columns) == ["a", "b,c"]
    assert list(read_table(p, delimiter=",").columns) == ["a;b", "c"]


def test_quoted_delimiters_and_line_breaks_keep_file_line_numbers(tmp_path):
    text = 'client_id,note,session\nC1,"two, parts",1\nC2,"first line\nsecond line",2\nC3,plain,3\n'
    df = read_table(write(tmp_path, "w.csv", text))
    assert df.index.tolist() == [2, 3, 5]  # C2's record spans lines 3-4
    assert df["note"].tolist() == ["two, parts", "first line\nsecond line", "plain"]
    assert df["session"].tolist() == [1, 2, 3]


def test_crlf_and_blank_lines_in_the_middle(tmp_path):
    p = write(tmp_path, "w.csv", "a,b\r\n1,2\r\n\r\n3,4\r\n")
    df = read_table(p)
    assert df.index.tolist() == [2, 4]
    assert df.attrs["blank_rows_dropped"] == [3]


def test_na_values_software_tokens_only_by_default(tmp_path):
    p = write(tmp_path, "w.csv", "a,b\nNA,1\nn/a,2\n,3\nNaN,4\n")
    df = read_table(p)
    assert df["a"].isna().tolist() == [True, False, True, True]
    assert df["a"].iloc[1] == "n/a"
    df = read_table(p, na_values=("", "NA", "NaN", "n/a"))
    assert df["a"].isna().all()


def test_cells_and_names_are_stripped_and_empty_strings_become_missing(tmp_path):
    p = write(tmp_path, "w.csv", " client_id , x \n  C1  ,  3 \n   ,   \n C3 ,4\n")
    df = read_table(p)
    assert list(df.columns) == ["client_id", "x"]
    assert df["client_id"].tolist() == ["C1", "C3"]
    assert df["x"].tolist() == [3, 4]
    # row 3 is whitespace only in both cells: a blank row, dropped and listed
    assert df.index.tolist() == [2, 4]
    assert df.attrs["blank_rows_dropped"] == [3]
    p = write(tmp_path, "v.csv", "client_id,x\nC1, \nC2,4\n")
    df = read_table(p)
    assert np.isnan(df.loc[2, "x"]) and df.loc[3, "x"] == 4


def test_mixed_column_keeps_numbers_and_text(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "x\n1\nfour\n2.5\n"))
    assert df["x"].tolist() == [1.0, "four", 2.5]
    assert df.attrs["text_cells"] == {"x": 1}


# ------------------------------------------------------------------------- decimal commas


def test_decimal_comma_detected_with_semicolons(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "id;x;y\n1;3,5;2\n2;-0,25;4\n"))
    assert df.attrs["decimal"] == ","
    assert df["x"].tolist() == [3.5, -0.25]
    assert df["id"].tolist() == ["1", "2"]


def test_decimal_point_with_semicolons_is_left_alone(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "x;y\n3.5;1,5\n"))
    assert df.attrs["decimal"] == "."
    assert df["x"].tolist() == [3.5]
    assert df["y"].tolist() == ["1,5"]  # ambiguous: kept as text for validation to report


def test_explicit_decimal_comma_with_tabs(tmp_path):
    df = read_table(write(tmp_path, "w.tsv", "x\ty\n3,5\t1\n"), decimal=",")
    assert df["x"].tolist() == [3.5]
    df = read_table(write(tmp_path, "v.tsv", "x\ty\n3,5\t1\n"))
    assert df["x"].tolist() == ["3,5"]  # not detected without ';'


# -------------------------------------------------------------------------------- encodings


def test_utf16_with_bom(tmp_path):
    df = read_table(write(tmp_path, "w.txt", "client_id\tsite\n7\tMalmö\n", "utf-16"))
    assert df.attrs["encoding"] == "utf-16"
    assert df["site"].tolist() == ["Malmö"]


def test_cp1252_dash_and_quotes_decode(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes("x,note\n1,\u2014 \u201cok\u201d\n".encode("cp1252"))
    df = read_table(p)
    assert df["note"].tolist() == ["\u2014 \u201cok\u201d"]
    assert df.attrs["encoding"] == "cp1252"


def test_unknown_encoding_is_a_read_error(tmp_path):
    with pytest.raises(ReadError, match="unknown encoding 'klingon'"):
        read_table(write(tmp_path, "w.csv", "a\n1\n"), encoding="klingon")


# ------------------------------------------------------------------------------ header rows


def test_title_rows_are_skipped_and_header_can_be_given(tmp_path):
    text = "Study X\nexported 2026-01-01\n\nclient_id,session\nC1,1\n"
    df = read_table(write(tmp_path, "w.csv", text))
    assert df.attrs["header_row"] == 4
    assert df.index.tolist() == [5]
    assert df.attrs["warnings"] == [
        "skipped 2 row(s) above the header (row 1: Study X; row 2: exported 2026-01-01)"
    ]
    assert read_table(write(tmp_path, "v.csv", text), header=4).index.tolist() == [5]


def test_header_out_of_range(tmp_path):
    with pytest.raises(ReadError, match="header=9 is not a non-blank row"):
        read_table(write(tmp_path, "w.csv", "a,b\n1,2\n"), header=9)


def test_trailing_delimiters_make_an_empty_unnamed_column_that_is_dropped(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "a;b;\n1;2;\n"))
    assert list(df.columns) == ["a", "b"]
    assert df.attrs["warnings"] == ["dropped 1 unnamed empty column(s)"]


def test_single_column_file(tmp_path):
    df = read_table(write(tmp_path, "w.csv", "client_id\nC1\nC2\n"))
    assert df["client_id"].tolist() == ["C1", "C2"]
    assert df.attrs["warnings"] == ["no delimiter among , ; tab | found: read as a single column"]


# --------------------------------------------------------------------------- error paths


def test_file_not_found_suggests_a_near_name(tmp_path):
    write(tmp_path, "wave1.csv", "a\n1\n")
    with pytest.raises(FileNotFoundError, match="did you mean 'wave1.csv'"):
        read_table(tmp_path / "wave_1.csv")


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(ReadError, match="is a folder, not a file"):
        read_table(tmp_path)


def test_short_row_is_ragged(tmp_path):
    with pytest.raises(ReadError) as info:
        read_table(write(tmp_path, "w.csv", "a,b,c\n1,2,3\n4,5\n"))
    assert info.value.row == 3 and info.value.value == "4,5"
    assert info.value.problems == [{"row": 3, "detail": "2 fields, header has 3"}]
    assert "a value is missing or a line break splits the row" in str(info.value)


def test_required_columns(tmp_path):
    p = write(tmp_path, "w.csv", "client,session\nC1,1\n")
    with pytest.raises(ReadError) as info:
        read_table(p, required=("client_id", "session", "rater"))
    assert info.value.column == "client_id"
    assert "(also missing: ['rater'])" in str(info.value)
    assert "did you mean 'client'?" in str(info.value)
    assert read_table(p, required=("session",)).shape == (1, 2)


# ------------------------------------------------------------------------------------ Excel


def make_book(tmp_path, rows, name="w.xlsx", title="data"):
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = title
    for r in rows:
        ws.append(r)
    book.save(tmp_path / name)
    return tmp_path / name


def test_excel_types_ids_dates_and_row_numbers(tmp_path):
    p = make_book(
        tmp_path,
        [
            ["client_id", "session", "date", "wai_sr_1", "comment"],
            [7, 1, dt.datetime(2026, 1, 5), 4, "  fine "],
            ["007", 2, dt.datetime(2026, 1, 12), 5.0, None],
            [None, None, None, None, None],
            [12.0, 3, dt.datetime(2026, 1, 19), "n/a", "late"],
        ],
    )
    df = read_table(p)
    assert df.index.tolist() == [2, 3, 5]
    assert df["client_id"].tolist() == ["7", "007", "12"]
    assert df["session"].tolist() == [1, 2, 3]
    assert df["date"].dt.day.tolist() == [5, 12, 19]
    assert df["wai_sr_1"].tolist() == [4.0, 5.0, "n/a"]
    assert df["comment"].iloc[0] == "fine" and pd.isna(df["comment"].iloc[1])
    assert df.attrs["sheet"] == "data" and df.attrs["format"] == "xlsx"


def test_excel_unnamed_column_with_data_names_the_excel_column(tmp_path):
    p = make_book(tmp_path, [["a", "b", None], [1, 2, 3]])
    with pytest.raises(ReadError) as info:
        read_table(p)
    assert "column C has no name in the header but holds data" in str(info.value)
    assert (info.value.row, info.value.value) == (2, 3)


def test_excel_duplicate_names_name_the_excel_columns(tmp_path):
    p = make_book(tmp_path, [["a", "b", "a"], [1, 2, 3]])
    with pytest.raises(ReadError, match="columns A and C are both named 'a'"):
        read_table(p)


def test_excel_sheet_index_out_of_range(tmp_path):
    p = make_book(tmp_path, [["a"], [1]])
    with pytest.raises(
        ReadError, match=r"there is no sheet number 3 \(0-based\); sheets are \['data'\]"
    ):
        read_table(p, sheet=3)


# ------------------------------------------------------------------------------------- SPSS


def test_read_sav_codebook(tmp_path):
    p = tmp_path / "w.sav"
    frame = pd.DataFrame(
        {
            "client_id": ["A1", "A2"],
            "note": ["", "text"],
            "wai_sr_1": [1.0, 97.0],
            "wai_sr_2": [2.5, 1000.0],
        }
    )
    pyreadstat.write_sav(
        frame,
        p,
        file_label="pilot",
        column_labels={"wai_sr_1": "item one"},
        variable_value_labels={"wai_sr_1": {1.0: "Seldom"}},
        missing_ranges={
            "wai_sr_1": [{"lo": 96.0, "hi": 98.0}],
            "wai_sr_2": [{"lo": 999.0, "hi": 9999.0}],
        },
    )
    df, book = read_sav(p)
    assert isinstance(book, Codebook)
    assert book.file_label == "pilot" and book.n_rows == 2
    assert book.labels["wai_sr_1"] == "item one"
    assert book.value_labels == {"wai_sr_1": {1.0: "Seldom"}}
    assert book.missing == {"wai_sr_1": ((96.0, 98.0),), "wai_sr_2": ((999.0, 9999.0),)}
    # 96-98 is expanded; 999-9999 is too wide to list as codes
    assert book.missing_codes() == (96.0, 97.0, 98.0)
    assert book.missing_codes("wai_sr_2") == ()
    assert pd.isna(df.loc[1, "note"]) and df.loc[2, "note"] == "text"
    assert df["wai_sr_1"].tolist() == [1, 97]
    assert df.attrs["user_missing_cells"] == {"wai_sr_1": 1, "wai_sr_2": 1}
    assert df.index.tolist() == [1, 2]


def test_read_sav_damaged(tmp_path):
    p = tmp_path / "w.sav"
    p.write_bytes(b"$FL2 nothing else")
    with pytest.raises(ReadError, match="cannot be read as an SPSS file"):
        read_table(p)


# ---------------------------------------------------------------------------------- Parquet


def test_parquet_keeps_a_row_index_and_fixes_ids(tmp_path):
    frame = pd.DataFrame(
        {"client_id": [1.0, np.nan], "x": [" a ", ""]}, index=pd.Index([5, 9], name="row")
    )
    p = tmp_path / "w.parquet"
    frame.to_parquet(p)
    df = read_table(p)
    assert df.index.tolist() == [5, 9]
    assert df["client_id"].tolist()[0] == "1" and pd.isna(df["client_id"].iloc[1])
    assert df["x"].tolist()[0] == "a" and pd.isna(df["x"].iloc[1])


# ---------------------------------------------------------------------------- wide <-> long


def test_to_long_by_hand():
    wide = pd.DataFrame(
        {
            "client_id": ["01", "02"],
            "wai_sr_total_s1": [3.5, 4.0],
            "wai_sr_total_s3": [3.75, np.nan],
            "oq_total_s3": [70, 81],
        },
        index=pd.Index([2, 3], name="row"),
    )
    long = to_long(wide)
    assert long.index.tolist() == [2, 2, 3, 3]
    assert long["session"].tolist() == [1, 3, 1, 3]
    assert long["wai_sr_total"].tolist()[:3] == [3.5, 3.75, 4.0]
    assert np.isnan(long["wai_sr_total"].iloc[3])
    assert list(long.columns) == ["client_id", "session", "wai_sr_total", "oq_total"]
    # a stub selection and dropna: client 02 has no WAI at session 3
    only = to_long(wide, stubs=["wai_sr_total"])
    assert only["session"].tolist() == [1, 3, 1]
    assert list(only.columns) == ["client_id", "oq_total_s3", "session", "wai_sr_total"]
    assert len(to_long(wide, stubs=["wai_sr_total"], dropna=False)) == 4


def test_to_long_errors():
    with pytest.raises(ReshapeError, match="no column matches"):
        to_long(pd.DataFrame({"a": [1]}))
    with pytest.raises(ReshapeError, match="already has a column 'session'"):
        to_long(pd.DataFrame({"session": [1], "x_s1": [1]}))


def test_to_wide_by_hand_and_round_trip():
    long = pd.DataFrame(
        {
            "client_id": ["02", "01", "01", "02"],
            "therapist_id": ["T1", "T1", "T1", "T1"],
            "session": [1, 2, 1, 3],
            "wai": [4.0, 3.75, 3.5, 4.5],
        },
        index=pd.Index([5, 3, 2, 9], name="row"),
    )
    wide = to_wide(long, keys=("therapist_id",))
    assert list(wide.columns) == ["client_id", "therapist_id", "wai_s1", "wai_s2", "wai_s3"]
    assert wide.index.tolist() == [2, 5]  # first file row of each client
    assert wide["wai_s1"].tolist() == [3.5, 4.0]
    assert wide["wai_s2"].tolist()[0] == 3.75 and np.isnan(wide["wai_s2"].iloc[1])
    back = to_long(wide).reset_index(drop=True)
    want = long.sort_values(["client_id", "session"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, want[back.columns], check_dtype=False)


def test_to_wide_errors():
    dup = pd.DataFrame({"client_id": ["a", "a"], "session": [1, 1], "x": [1, 2]})
    with pytest.raises(ReshapeError, match="2 rows share a client_id x session"):
        to_wide(dup)
    frac = pd.DataFrame({"client_id": ["a"], "session": [1.5], "x": [1]})
    with pytest.raises(ReshapeError, match="must hold whole numbers"):
        to_wide(frac)
    with pytest.raises(ReshapeError, match="column 'client_id' is missing"):
        to_wide(pd.DataFrame({"session": [1]}))


# ------------------------------------------------------------------------------------- speed


def test_read_table_is_vectorised(tmp_path):
    n = 50_000
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"client_id": [f"{i:06d}" for i in range(n)], "session": rng.integers(0, 16, n)}
    )
    for i in range(1, 13):
        frame[f"wai_sr_{i}"] = rng.integers(1, 6, n)
    p = tmp_path / "big.csv"
    frame.to_csv(p, index=False)
    start = time.perf_counter()
    df = read_table(p)
    elapsed = time.perf_counter() - start
    assert df.index[[0, -1]].tolist() == [2, n + 1]
    assert df["client_id"].iloc[-1] == f"{n - 1:06d}"
    pd.testing.assert_frame_equal(
        df.reset_index(drop=True), frame.astype({"client_id": "str"}), check_dtype=False
    )
    assert elapsed < 3.0  # about 0.5 s on the 2-core dev machine


def test_bom_with_latin1_bytes_falls_back(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes(b"\xef\xbb\xbfsite\nZ\xfcrich\n")
    df = read_table(p)
    assert df.columns.tolist() == ["site"] and df["site"].tolist() == ["Zürich"]
    assert df.attrs["encoding"] == "cp1252"


def test_broken_utf16_is_a_read_error(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes(b"\xff\xfea\x00\n")  # odd number of bytes after the BOM
    with pytest.raises(ReadError, match="not valid UTF-16"):
        read_table(p)


# ------------------------------------------------------------------------------ properties

ids = st.text(alphabet="0123456789ABC", min_size=1, max_size=5)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(ids, st.integers(0, 40), st.one_of(st.none(), st.integers(1, 7))),
        min_size=1,
        max_size=15,
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    blank_after=st.sets(st.integers(0, 14), max_size=3),
)
def test_csv_round_trip_property(tmp_path, rows, delimiter, blank_after):
    # rows in = rows out, ids verbatim (leading zeros), missing stays missing, and the index is
    # the physical file line even with blank lines in between
    lines, expected_rows = [delimiter.join(["client_id", "session", "wai_sr_1"])], []
    for k, (cid, ses, item) in enumerate(rows):
        lines.append(delimiter.join([cid, str(ses), "" if item is None else str(item)]))
        expected_rows.append(len(lines))
        if k in blank_after:
            lines.append("")
    p = tmp_path / "prop.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    df = read_table(p)
    assert df.index.tolist() == expected_rows
    assert df["client_id"].tolist() == [r[0] for r in rows]
    assert df["session"].tolist() == [r[1] for r in rows]
    got = df["wai_sr_1"].tolist()
    assert [None if pd.isna(v) else v for v in got] == [r[2] for r in rows]


def test_option_checks_and_single_strings(tmp_path):
    p = write(tmp_path, "w.csv", "id,code\n01,02\n")
    with pytest.raises(ValueError, match="decimal must be None, '.' or ','"):
        read_table(p, decimal=";")
    with pytest.raises(ValueError, match="header must be 'auto' or a 1-based row number"):
        read_table(p, header=0)
    # a single string is one name, not a set of characters
    df = read_table(p, id_columns="code", required="code")
    assert df["code"].tolist() == ["02"] and df["id"].tolist() == ["01"]


# ------------------------------------------------------------------ fast path for large files

import alliance_lib.io as io_module  # noqa: E402  (the module, for its switches)


def _read_both(monkeypatch, path, **opts):
    """(general path result or error, fast path result or error) for one file."""

    def run():
        try:
            return read_table(path, **opts)
        except ReadError as err:
            return ("ReadError", str(err), err.row, err.problems)

    with monkeypatch.context() as m:
        m.setattr(io_module, "_read_delimited_fast", lambda *a, **k: None)
        general = run()
    with monkeypatch.context() as m:
        m.setattr(io_module, "_FAST_MIN_RECORDS", 0)
        calls = []
        real = io_module._read_delimited_fast
        m.setattr(
            io_module,
            "_read_delimited_fast",
            lambda *a, **k: calls.append(real(*a, **k)) or calls[-1],
        )
        fast = run()
    return general, fast, calls[0] is not None if calls else False


FAST_CASES = {
    "plain": "client_id,session,wai_sr_1,note\n007,1,4,\n012,2,,x\n",
    "blank_lines_and_delimiter_rows": "client_id,session,x\n01,1,2\n\n,,\n02,2,3\n  , ,\n03,3,4\n",
    "quoted_newlines_and_quotes": 'client_id,x,note\n01,1,"a\nb"\n02,2,"say ""hi"", ok"\n03,3,c\n',
    "title_rows": "Wave 1 export\nSite: Bern\nclient_id,session,x\n01,1,2\n02,2,3\n",
    "tokens": "client_id,a,b,c,d,e\n1,NA,nan,inf,True,9007199254740993\n2,NaN,3,-inf,False,1\n",
    "whitespace_cells": "client_id,x,y\n 01 , 3 ,a\n02,NA , b\n03,\u00a0,c\n",
    "huge_integers": "client_id,x\n1,99999999999999999999\n2,3\n",
    "crlf_bom_tabs": "\ufeffclient_id\tsession\tx\r\n01\t1\t2.5\r\n02\t2\t\r\n",
    "pipes": "client_id|x\n01|1\n02|2\n",
    "semicolon_decimal_comma": "client_id;x\n01;4,5\n02;3\n",
    "no_trailing_newline": "client_id,x\n01,1\n02,2",
    "ragged": "client_id,x\n01,1\n02,2,3\n",
    "short_row": "client_id,x,y\n01,1,2\n02\n",
    "unbalanced_quote": 'client_id,x\n01,"1\n02,2\n',
    "duplicate_names": "client_id,x,x\n01,1,2\n",
    "unnamed_empty_column": "client_id,x,\n01,1,\n02,2,\n",
    "header_only": "client_id,x\n",
    "all_text": "client_id,rater,date\n01,client,2025-01-06\n02,therapist,2025-01-13\n",
    "blank_row_longer_than_header": "client_id,x\n01,1\n,,,\n02,2\n",
    "no_header": "1,2\n3,4\n",
}


@pytest.mark.parametrize("chunk_rows", [1, 2, io_module._READ_CHUNK_ROWS])
@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_fast_path_gives_the_general_paths_result(tmp_path, monkeypatch, name, chunk_rows):
    # the fast path either returns exactly what the general path returns (cells, dtypes, index,
    # attrs, warnings) or hands the file over to the general path (errors included); read in
    # chunks of one or two records, every column is typed differently in different chunks
    monkeypatch.setattr(io_module, "_READ_CHUNK_ROWS", chunk_rows)
    p = write(tmp_path, "w.csv", FAST_CASES[name])
    general, fast, _ = _read_both(monkeypatch, p)
    if isinstance(general, tuple):
        assert fast == general
        return
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast.attrs == general.attrs
    assert fast.dtypes.tolist() == general.dtypes.tolist()


@pytest.mark.parametrize(
    "opts",
    [
        {"header": 3},
        {"na_values": ("", "n/a")},
        {"na_values": ()},
        {"id_columns": ("x",)},
        {"delimiter": ","},
        {"decimal": "."},
        {"allow_empty": True},
    ],
)
def test_fast_path_options_match_the_general_path(tmp_path, monkeypatch, opts):
    p = write(tmp_path, "w.csv", "Title\n\nclient_id,x,y\n01,n/a,3\n\n02,007,NA\n")
    general, fast, _ = _read_both(monkeypatch, p, **opts)
    if isinstance(general, tuple):
        assert fast == general
        return
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast.attrs == general.attrs


def test_large_regular_file_takes_the_fast_path_with_file_rows(tmp_path, monkeypatch):
    # 6,000 data rows (above the fast-path threshold) with a title row, a blank line, a row of
    # empty fields, a quoted line break, text in a numeric column and ids with leading zeros
    lines = ["Export 2026-11-26", "client_id,session,wai_sr_1,note"]
    for i in range(6000):
        lines.append(f"{i:05d},{i % 16},{1 + i % 5},")
    lines[2 + 10] = '00010,10,1,"two\nlines"'  # record of data row 11 spans file lines 13-14
    lines.insert(2 + 100, "")  # a blank line before data row 101
    lines.insert(2 + 200, ",,,")  # a row of empty fields before data row 200
    lines[2 + 300] = "00298,10,n/a,"
    p = tmp_path / "big.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    general, fast, used_fast = _read_both(monkeypatch, p)
    assert used_fast
    df = read_table(p)  # default threshold: this file is large enough for the fast path
    pd.testing.assert_frame_equal(df, general, check_exact=True)
    pd.testing.assert_frame_equal(df, fast, check_exact=True)
    assert df.attrs == general.attrs
    # by hand: header on line 2; data row k on line 2 + k, +1 after the quoted line break
    # (data row 11), +1 after the blank line, +1 after the row of empty fields
    assert len(df) == 6000 and df.attrs["header_row"] == 2
    assert df.index[:11].tolist() == list(range(3, 14))
    assert df.index[11] == 15  # data row 12: after the two-line record
    assert df.loc[15, "client_id"] == "00011"
    assert df.attrs["blank_rows_dropped"] == [104, 204]  # list positions 102, 202: +1, +1 quote
    assert df.index[-1] == 6000 + 2 + 1 + 1 + 1
    assert df.loc[14 + 1, "session"] == 11 and df["session"].dtype == np.int64
    assert df.loc[13, "note"] == "two\nlines"
    assert df.attrs["text_cells"] == {"wai_sr_1": 1}
    assert df["wai_sr_1"].dtype == object and "n/a" in df["wai_sr_1"].tolist()
    assert df["client_id"].iloc[0] == "00000" and df["note"].isna().sum() == 5999
    assert df.attrs["warnings"][0].startswith("skipped 1 row(s) above the header (row 1: Export")


def test_chunks_typed_differently_give_the_general_paths_table(tmp_path, monkeypatch):
    # 6,000 rows read in chunks of 1,000: columns whose cells change type between chunks
    rows = []
    for i in range(6000):
        late = i >= 4500
        rows.append(
            [
                f"{i:05d}" if i < 3000 else f"A{i}",  # id: digits, then letters (text)
                str(i % 16),  # int in every chunk
                "" if i % 997 == 0 and late else str(1 + i % 5),  # int, then NaN late: float
                "x" if i == 5500 else str(i % 3),  # numbers, then one text cell late: mixed
                "" if i < 2500 else "note",  # empty (float NaN) chunks, then text
                "9007199254740993" if i == 5999 else "1",  # a huge integer in the last chunk
                "True" if i % 2 else "False",  # booleans
                "",  # never filled
                "2.5" if late else "3",  # ints, then decimals
            ]
        )
    names = ["client_id", "session", "wai_sr_1", "code", "note", "big", "flag", "empty", "dose"]
    p = tmp_path / "typed.csv"
    p.write_text("\n".join([",".join(names)] + [",".join(r) for r in rows]) + "\n")
    monkeypatch.setattr(io_module, "_READ_CHUNK_ROWS", 1000)
    general, fast, used_fast = _read_both(monkeypatch, p)
    assert used_fast
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast.attrs == general.attrs
    assert fast["session"].dtype == np.int64 and fast["wai_sr_1"].dtype == np.float64
    assert fast["dose"].dtype == np.float64 and fast.loc[6001, "dose"] == 2.5
    assert fast.loc[5502, "code"] == "x" and fast.attrs["text_cells"]["code"] == 1
    assert fast.loc[2, "client_id"] == "00000" and fast.loc[6001, "client_id"] == "A5999"
    monkeypatch.setattr(io_module, "_READ_CHUNK_ROWS", 10**6)
    one_chunk = read_table(p)  # one chunk: what one pandas.read_csv call types
    pd.testing.assert_frame_equal(fast, one_chunk, check_exact=True)


def test_fast_path_with_many_rows_starting_with_an_empty_field(tmp_path, monkeypatch):
    # every record starts with the delimiter, so none is settled by its first byte: the blank
    # rows are found among 6,000 candidates at once; two of them are blank (file lines 1002,
    # 4003), one holds only a non-ASCII space in a cell (blank too: cells are stripped)
    lines = ["note,client_id,x"] + [f",{i:04d},{i % 5}" for i in range(6000)]
    lines.insert(1001, ",,")
    lines.insert(4002, ", ,")
    lines.insert(5003, ",\u00a0,")
    p = tmp_path / "lead.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    general, fast, used_fast = _read_both(monkeypatch, p)
    assert used_fast
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast.attrs == general.attrs
    assert fast.attrs["blank_rows_dropped"] == [1002, 4003, 5004]
    assert len(fast) == 6000 and fast["note"].isna().all()
    assert fast.loc[1003, "client_id"] == "1000" and fast.loc[1003, "x"] == 0


# ---------------------------------------------------------- Parquet folders, columns=, SPSS codes


def test_parquet_folder_reads_partitions_and_only_the_columns_asked(tmp_path):
    from alliance_lib.io import parquet_columns

    d = pd.DataFrame(
        {
            "client_id": [101, 102, 103, 104],
            "site": ["a", "a", "b", "b"],
            "wai_sr_1": [4, 5, 3, 2],
            "notes": ["x", "y", "z", "w"],
        }
    )
    d.to_parquet(tmp_path / "big", partition_cols=["site"])
    assert parquet_columns(tmp_path / "big") == ["client_id", "wai_sr_1", "notes", "site"]
    df = read_table(tmp_path / "big", columns=["client_id", "site", "wai_sr_1"])
    assert list(df.columns) == ["client_id", "wai_sr_1", "site"]
    assert sorted(df["client_id"]) == ["101", "102", "103", "104"]  # IDs as text
    assert sorted(df["site"]) == ["a", "a", "b", "b"] and df.attrs["format"] == "parquet dataset"
    with pytest.raises(ReadError, match="required column 'wai_sr_2' is missing") as err:
        read_table(tmp_path / "big", columns=["wai_sr_2"])
    assert "wai_sr_1" in err.value.hint


def test_columns_selects_in_csv_too(tmp_path):
    p = write(tmp_path, "w.csv", "client_id,session,x\n007,1,2\n")
    df = read_table(p, columns=["client_id", "x"])
    assert list(df.columns) == ["client_id", "x"] and df["client_id"].tolist() == ["007"]
    with pytest.raises(ReadError, match="required column 'y'"):
        read_table(p, columns=["y"])


def test_apply_user_missing_is_per_column(tmp_path):
    from alliance_lib.io import apply_user_missing

    p = tmp_path / "w.sav"
    pyreadstat.write_sav(
        pd.DataFrame({"item": [1.0, 98.0, 99.0, 3.0], "total": [98.0, -9.0, 40.0, 99.0]}),
        p,
        missing_ranges={"item": [{"lo": 98.0, "hi": 99.0}], "total": [-9.0]},
    )
    out, used = apply_user_missing(read_table(p))
    assert out["item"].isna().tolist() == [False, True, True, False]
    assert out["total"].tolist()[0] == 98.0 and np.isnan(out["total"].tolist()[1])
    assert used[["column", "code", "n"]].to_dict("records") == [
        {"column": "item", "code": 98.0, "n": 1},
        {"column": "item", "code": 99.0, "n": 1},
        {"column": "total", "code": -9.0, "n": 1},
    ]
    plain = read_table(write(tmp_path, "a.csv", "x\n1\n"))
    assert apply_user_missing(plain)[0] is plain
