"""The malformed-input corpus (tests/data/bad/): every file gives a precise message or reason.

File-level problems must raise `ReadError` naming the file and, where it applies, the row, column
and value and what to do; row-level problems must come out of `validate` as quarantine reasons
(and out of `score` as a `ScoringError` naming row, client, session, column and value). Nothing
is lost: clean + quarantined = rows read. Expected texts are written out by hand here, from the
file contents listed in tests/data/bad/README.md.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_lib.io import ReadError, read_sav, read_table
from alliance_lib.scoring import MissingColumnsError, ScoringError, score
from alliance_lib.validate import validate

BAD = Path(__file__).parent / "data" / "bad"
ITEMS = [f"wai_sr_{i}" for i in range(1, 13)]


def path(name: str) -> Path:
    return BAD / name


# --------------------------------------------------------------------------- ReadError cases

# (file, read_table options, row, column, value, texts the message must contain)
READ_ERRORS = [
    ("empty.csv", {}, None, None, None, ["the file is empty", "check the export"]),
    ("blank_lines_only.csv", {}, None, None, None, ["the file is empty"]),
    ("header_only.csv", {}, 1, None, None, ["header but no data rows", "allow_empty=True"]),
    (
        "ragged_rows.csv",
        {},
        3,
        None,
        "C002,T01,1,3,3,3,3,3,3,3,3,3,3,3,3,5",
        [
            "ragged rows: 2 row(s) do not have 15 fields",
            "row 3: 16 fields, header has 15",
            "row 5: 13 fields, header has 15",
            "decimal comma",
        ],
    ),
    (
        "wrong_delimiter.csv",
        {},
        1,
        None,
        ",".join(["client_id", "therapist_id", "session", *ITEMS]),
        ["the header is separated by ',' but the data rows by ';'", "one delimiter throughout"],
    ),
    (
        "colon_delimited.csv",
        {"required": ("client_id",)},
        1,
        "client_id",
        None,
        ["required column 'client_id' is missing", "the delimiter is probably not ','"],
    ),
    (
        "decimal_comma_in_comma_file.csv",
        {},
        4,
        None,
        "C003,T01,1,3,5,4,4,4,4,4,4,4,4,4,4,4",
        ["row 4: 16 fields, header has 15", "(a decimal comma in a comma-separated file?)"],
    ),
    (
        "unbalanced_quote.csv",
        {},
        4,
        None,
        '"C003,T01,1,4,4,4,4,4,4,4,4,4,4,4,4',
        ["unbalanced quote character", 'double a quote inside a quoted value ("")'],
    ),
    (
        "no_header.csv",
        {},
        1,
        None,
        "C001, T01, 1, 4, 4, 4",
        ["no header row found", "pass header= with its row number"],
    ),
    (
        "duplicated_column.csv",
        {},
        1,
        "wai_sr_3",
        None,
        ["duplicate column name (fields 6 and 15 are both named 'wai_sr_3')", "rename"],
    ),
    (
        "unnamed_column_with_data.csv",
        {},
        3,
        None,
        "note",
        ["field 16 has no name in the header but holds data", "give field 16 a name in row 1"],
    ),
    (
        "wrong_encoding.csv",
        {"encoding": "utf-8"},
        2,
        None,
        None,
        ["is not valid utf-8 (byte b'\\xfc'", "encoding='cp1252'"],
    ),
    (
        "utf16_no_bom.csv",
        {},
        1,
        None,
        None,
        ["contains NUL bytes", "encoding='utf-16-le'"],
    ),
    (
        "missing_id_column.csv",
        {"required": ("client_id", "session")},
        1,
        "client_id",
        None,
        ["required column 'client_id' is missing", "the columns are ['therapist_id', 'session'"],
    ),
    (
        "misnamed_id_column.csv",
        {"required": ("client_id",)},
        1,
        "client_id",
        None,
        ["required column 'client_id' is missing", "did you mean 'Client ID'? Rename it"],
    ),
    ("data.json", {}, None, None, None, ["unsupported file type '.json'", "CSV or Parquet"]),
    ("legacy.xls", {}, None, None, None, ["unsupported file type '.xls'", "save it as .xlsx"]),
    (
        "corrupt.xlsx",
        {},
        None,
        None,
        None,
        ["cannot be opened as an Excel workbook (BadZipFile", "save it again as .xlsx"],
    ),
    (
        "corrupt.parquet",
        {},
        None,
        None,
        None,
        ["cannot be read as a Parquet file", "write it again"],
    ),
    (
        "excel_saved_as.csv",
        {},
        None,
        None,
        None,
        ["has a .csv extension but is a zip archive (an .xlsx workbook?)", "real extension"],
    ),
    (
        "excel_error_cells.xlsx",
        {"sheet": "wave2"},
        None,
        None,
        None,
        ["there is no sheet 'wave2'; sheets are ['wave 1', 'wave 2']", "sheet='wave 2'"],
    ),
]


@pytest.mark.parametrize(
    ("name", "options", "row", "column", "value", "texts"),
    READ_ERRORS,
    ids=[f"{c[0]}-{'-'.join(c[1])}" if c[1] else c[0] for c in READ_ERRORS],
)
def test_read_error_names_file_row_column_value(name, options, row, column, value, texts):
    with pytest.raises(ReadError) as info:
        read_table(path(name), **options)
    err = info.value
    message = str(err)
    assert err.file == str(path(name))
    assert message.startswith(str(path(name)))
    assert (err.row, err.column, err.value) == (row, column, value)
    if row is not None:
        assert f", row {row}" in message
    if column is not None:
        assert f"column {column!r}" in message
    if value is not None:
        assert f"value {value!r}" in message
    assert "What to do: " in message
    for text in texts:
        assert text in message
    assert isinstance(err, ValueError)


def test_ragged_rows_lists_every_offending_row():
    with pytest.raises(ReadError) as info:
        read_table(path("ragged_rows.csv"))
    assert info.value.problems == [
        {"row": 3, "detail": "16 fields, header has 15"},
        {"row": 5, "detail": "13 fields, header has 15"},
    ]


def test_header_only_can_be_allowed_as_an_empty_table():
    df = read_table(path("header_only.csv"), allow_empty=True)
    assert df.empty and list(df.columns) == ["client_id", "therapist_id", "session", *ITEMS]
    assert df.index.name == "row"
    assert df.attrs["warnings"] == ["header only: the table has no data rows"]


def test_missing_file_is_a_read_error_and_file_not_found():
    with pytest.raises(ReadError, match=r"empty\.cvs: file not found.*did you mean 'empty\.csv'"):
        read_table(path("empty.cvs"))
    with pytest.raises(FileNotFoundError):
        read_table(path("no_such_file.csv"))


# ------------------------------------------------------------------- files that read fine


def test_utf8_bom_is_removed_from_the_first_name():
    df = read_table(path("utf8_bom.csv"))
    assert df.columns[0] == "client_id"
    assert df.attrs["encoding"] == "utf-8-sig"
    assert df["site"].tolist() == ["Zürich", "São Paulo", "Malmö"]


def test_latin1_accents_are_decoded_and_the_fallback_is_reported():
    df = read_table(path("latin1_accents.csv"))
    assert df["site"].tolist() == ["Zürich", "São Paulo", "Malmö"]
    assert df.attrs["encoding"] == "cp1252"
    assert df.attrs["warnings"] == [
        "not valid UTF-8 (first non-UTF-8 byte b'\\xfc' on row 2); decoded as cp1252"
    ]
    # the same bytes read with the encoding named explicitly give the same table, no warning
    same = read_table(path("wrong_encoding.csv"), encoding="latin-1")
    pd.testing.assert_frame_equal(same, df)
    assert same.attrs["warnings"] == []


def test_double_encoded_utf8_is_flagged():
    df = read_table(path("double_encoded_utf8.csv"))
    assert df["site"].iloc[0] == "ZÃ¼rich"
    (note,) = df.attrs["warnings"]
    assert note.startswith("row 2: text looks double-encoded")


def test_semicolon_decimal_comma_crlf_and_leading_zeros():
    df = read_table(path("semicolon_decimal_comma.csv"))
    assert (df.attrs["delimiter"], df.attrs["decimal"]) == (";", ",")
    assert df.index.tolist() == [2, 3]
    assert df["client_id"].tolist() == ["0101", "0102"]
    assert df["srs_1"].tolist() == [7.5, 10.0]
    assert df["srs_3"].tolist() == [9.25, 8.0]
    assert df["srs_4"].tolist() == [6, 7]  # "6,0" -> 6.0, the column is then whole
    v = validate(df, "srs")
    assert (v.n_clean, v.n_quarantined) == (2, 0)
    # SRS total = sum of the four marks: 7.5 + 8 + 9.25 + 6 and 10 + 9.5 + 8 + 7
    assert score(df, "srs")["srs_total"].tolist() == [30.75, 34.5]


def test_tab_separated():
    df = read_table(path("tab_separated.tsv"))
    assert (df.attrs["delimiter"], df.attrs["format"]) == ("\t", "tsv")
    assert df.shape == (2, 15)


def test_whitespace_is_stripped_from_names_and_cells():
    df = read_table(path("whitespace_headers.csv"))
    assert list(df.columns) == ["client_id", "therapist_id", "session", *ITEMS]
    assert df["client_id"].tolist() == ["C001", "C002"]
    assert df["wai_sr_1"].dtype == np.int64
    assert df["wai_sr_1"].tolist() == [4, 3]


def test_trailing_empty_lines_are_dropped_and_listed():
    df = read_table(path("trailing_empty_lines.csv"))
    assert df.index.tolist() == [2, 3]
    assert df.attrs["blank_rows_dropped"] == [4, 5, 6, 7]
    assert df.attrs["warnings"] == ["dropped 4 blank row(s): 4, 5, 6, 7"]


def test_title_row_csv_is_skipped_and_reported():
    df = read_table(path("title_row.csv"))
    assert df.attrs["header_row"] == 2
    assert df.index.tolist() == [3, 4]
    assert df.attrs["warnings"] == [
        "skipped 1 row(s) above the header (row 1: WAI-SR export wave 1)"
    ]


def test_title_row_xlsx_keeps_excel_row_numbers():
    df = read_table(path("title_row.xlsx"))
    assert df.attrs["header_row"] == 3
    assert df.attrs["sheet"] == "wave 1"
    assert df.index.tolist() == [4, 5, 6]
    assert df["client_id"].tolist() == ["C001", "C002", "C003"]
    assert df["wai_sr_1"].tolist() == [4, 3, 4]
    assert df.attrs["warnings"] == [
        "skipped 1 row(s) above the header "
        "(row 1: Working Alliance Inventory (short revised), wave 1)"
    ]
    # the header can also be given explicitly (Excel row number)
    pd.testing.assert_frame_equal(read_table(path("title_row.xlsx"), header=3), df)


def test_leading_zero_ids_survive():
    df = read_table(path("leading_zero_ids.csv"))
    assert df["client_id"].tolist() == ["007", "0012", "00"]
    assert df["therapist_id"].tolist() == ["001", "010", "T01"]


def test_numeric_ids_in_parquet_become_text():
    df = read_table(path("numeric_ids.parquet"))
    assert df["client_id"].tolist() == ["7", "12"]
    assert df["therapist_id"].tolist() == ["3", "3"]
    assert df.index.tolist() == [1, 2]


def test_excel_error_cells_numeric_ids_blank_rows_and_sheets():
    df = read_table(path("excel_error_cells.xlsx"))
    assert df.index.tolist() == [2, 3, 4]
    assert df["client_id"].tolist() == ["C001", "C002", "007"]
    assert df["therapist_id"].tolist() == ["T01", "T01", "12"]
    assert df.attrs["text_cells"] == {"wai_sr_2": 1}
    assert df.attrs["blank_rows_dropped"] == [5]
    assert df.attrs["warnings"][0] == (
        "workbook has 2 sheets ['wave 1', 'wave 2']: read the first, 'wave 1'"
    )
    v = validate(df, "wai-sr")
    assert dict(zip(v.quarantined.index, v.quarantined["reason"], strict=True)) == {
        3: "wai_sr_2 = '#N/A' is text, not a number"
    }
    second = read_table(path("excel_error_cells.xlsx"), sheet="wave 2")
    assert second["session"].tolist() == [2]
    pd.testing.assert_frame_equal(read_table(path("excel_error_cells.xlsx"), sheet=1), second)


def test_spss_user_missing_codes_are_kept_and_reported():
    df = read_table(path("spss_user_missing.sav"))
    assert df.loc[2, "wai_sr_2"] == 99 and df.loc[3, "wai_sr_8"] == 98  # raw codes, not NaN
    assert df["client_id"].tolist() == ["0001", "0002", "0003"]  # SPSS N4 format
    assert df["session"].dtype == np.int64
    assert df.attrs["missing_codes"] == [97.0, 98.0, 99.0]
    assert df.attrs["user_missing_cells"] == {"wai_sr_2": 1, "wai_sr_8": 1}
    assert df.attrs["user_missing"]["wai_sr_1"] == [[97.0, 98.0], [99.0, 99.0]]
    # without the codes they are out of range ...
    v = validate(df, "wai-sr")
    assert dict(zip(v.quarantined.index, v.quarantined["reason"], strict=True)) == {
        2: "wai_sr_2 = 99 is outside 1-5",
        3: "wai_sr_8 = 98 is outside 1-5",
    }
    # ... and with them they are missing, counted, and the rows are scored
    v = validate(df, "wai-sr", missing_codes=df.attrs["missing_codes"])
    assert (v.n_clean, v.n_quarantined) == (3, 0)
    assert v.missing_codes.to_dict() == {"wai_sr_2": 1, "wai_sr_8": 1}
    scored = score(df, "wai-sr", missing_codes=df.attrs["missing_codes"])
    assert scored["wai_sr_total"].tolist() == [4.0, 3.0, 5.0]
    assert scored["wai_sr_n_missing"].tolist() == [0, 1, 1]


def test_spss_value_labels_are_not_applied():
    df, book = read_sav(path("spss_value_labels.sav"))
    assert df.loc[2, "wai_sr_2"] == 1 and df.loc[3, "wai_sr_8"] == 5
    assert pd.api.types.is_numeric_dtype(df["wai_sr_2"])
    assert book.value_labels["wai_sr_2"] == {1.0: "Seldom", 5.0: "Always"}
    # row 2: eleven 3s and one 1 -> mean 34 / 12
    assert score(df, "wai-sr")["wai_sr_total"].tolist() == pytest.approx([4.0, 34 / 12, 5.0])


# ------------------------------------------------------------- validation and scoring cases

# (file, validate options, {file row: reason})
QUARANTINE = [
    (
        "out_of_range.csv",
        {},
        {3: "wai_sr_3 = 7 is outside 1-5", 4: "wai_sr_12 = 0 is outside 1-5"},
    ),
    (
        "text_na_dash.csv",
        {},
        {
            2: "wai_sr_2 = 'n/a' is text, not a number",
            3: "wai_sr_7 = '—' is text, not a number",
        },
    ),
    (
        "duplicated_rows.csv",
        {},
        {
            2: "duplicate client_id x session x rater ('C001', 1, 'client'): 2 rows (rows 2, 4)",
            4: "duplicate client_id x session x rater ('C001', 1, 'client'): 2 rows (rows 2, 4)",
        },
    ),
    (
        "sessions_as_text.csv",
        {},
        {2: "session = 'three' is not a number", 3: "session = 'S2' is not a number"},
    ),
    ("negative_session.csv", {}, {3: "session = -1 is negative"}),
    ("non_integer_session.csv", {}, {3: "session = 2.5 is not a whole number"}),
    ("missing_client_id.csv", {}, {3: "client_id is missing"}),
    ("mixed_types.csv", {}, {2: "wai_sr_4 = 'four' is text, not a number"}),
    (
        "non_integer_item.csv",
        {},
        {2: "wai_sr_6 = 3.5 is not a whole number (the 1-5 scale has whole-number answers)"},
    ),
    (
        "missing_codes.csv",
        {},
        {
            2: "wai_sr_1 = -99 is outside 1-5",
            3: "wai_sr_5 = 999 is outside 1-5; wai_sr_6 = 999 is outside 1-5",
        },
    ),
    ("missing_codes.csv", {"missing_codes": (-99, 999)}, {}),
    ("invalid_rater.csv", {}, {3: "rater = 'patient' is not one of client, therapist, observer"}),
]


@pytest.mark.parametrize(
    ("name", "options", "reasons"),
    QUARANTINE,
    ids=[c[0] + ("-codes" if c[1] else "") for c in QUARANTINE],
)
def test_quarantine_reason(name, options, reasons):
    df = read_table(path(name))
    v = validate(df, "wai-sr", **options)
    assert v.n_in == len(df) == v.n_clean + v.n_quarantined
    assert dict(zip(v.quarantined.index, v.quarantined["reason"], strict=True)) == reasons
    assert sorted([*v.clean.index, *v.quarantined.index]) == df.index.tolist()
    assert v.source == str(path(name))


ITEM_PROBLEMS = [
    (n, o, r)
    for n, o, r in QUARANTINE
    if r and all(re.match(r"wai_sr_\d+ = ", reason) for reason in r.values())
]


@pytest.mark.parametrize(
    ("name", "options", "reasons"), ITEM_PROBLEMS, ids=[c[0] for c in ITEM_PROBLEMS]
)
def test_score_raises_naming_row_client_session_and_value(name, options, reasons):
    df = read_table(path(name))
    with pytest.raises(ScoringError) as info:
        score(df, "wai-sr", **options)
    message = str(info.value)
    for row, reason in reasons.items():
        client = df.loc[row, "client_id"]
        for part in reason.split("; "):
            assert f"row {row}, client {client!r}, session 1: {part}" in message
    quarantined = score(df, "wai-sr", errors="quarantine", **options)
    assert len(quarantined) == len(df)
    problems = quarantined["wai_sr_problem"].dropna().to_dict()
    assert problems == reasons
    assert quarantined.loc[list(reasons), "wai_sr_total"].isna().all()


def test_missing_codes_are_counted_not_quarantined():
    df = read_table(path("missing_codes.csv"))
    v = validate(df, "wai-sr", missing_codes=(-99, 999))
    assert v.missing_codes.to_dict() == {"wai_sr_1": 1, "wai_sr_5": 1, "wai_sr_6": 1}
    assert np.isnan(v.clean.loc[2, "wai_sr_1"]) and np.isnan(v.clean.loc[3, "wai_sr_6"])
    scored = score(df, "wai-sr", missing_codes=(-99, 999))
    assert scored["wai_sr_n_missing"].tolist() == [1, 2]
    assert scored["wai_sr_total"].tolist() == [4.0, 3.0]


def test_mixed_types_keep_numbers_and_text():
    df = read_table(path("mixed_types.csv"))
    assert df["wai_sr_4"].tolist() == ["four", 2.0, 5.0]
    assert df.attrs["text_cells"] == {"wai_sr_4": 1}


def test_misspelt_item_column_gets_a_suggestion():
    df = read_table(path("misspelt_item_column.csv"))
    with pytest.raises(MissingColumnsError) as info:
        validate(df, "wai-sr")
    assert info.value.missing == ["wai_sr_12"]
    assert info.value.suggestions == {"wai_sr_12": "wai_sr12"}
    assert "Did you mean 'wai_sr12' for 'wai_sr_12'?" in str(info.value)


def test_missing_id_column_in_validation():
    df = read_table(path("missing_id_column.csv"))
    with pytest.raises(MissingColumnsError, match="id columns: column\\(s\\) not found: client_id"):
        validate(df, "wai-sr")


# ------------------------------------------------------------------------ corpus bookkeeping


def _readme_files() -> list[str]:
    text = (BAD / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)


def test_readme_lists_exactly_the_corpus_and_every_file_is_tested():
    listed = _readme_files()
    own = ("README.md", "make_corpus.py", ".gitattributes")
    present = sorted(p.name for p in BAD.iterdir() if p.name not in own)
    assert sorted(listed) == present
    assert len(present) >= 25
    source = Path(__file__).read_text(encoding="utf-8")
    untested = [name for name in present if f'"{name}"' not in source]
    assert untested == []


def test_make_corpus_regenerates_the_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_corpus", BAD / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(_readme_files())
    for name in made:
        new, old = tmp_path / name, BAD / name
        if name.endswith((".xlsx", ".sav", ".parquet")) and not name.startswith("corrupt"):
            # binary formats carry timestamps: compare what they hold
            got = read_table(new)
            want = read_table(old)
            got.attrs, want.attrs = {}, {}
            pd.testing.assert_frame_equal(got, want)
        elif name != "excel_saved_as.csv":  # a copy of title_row.xlsx
            assert new.read_bytes() == old.read_bytes(), name


READABLE = [
    "utf8_bom.csv",
    "latin1_accents.csv",
    "double_encoded_utf8.csv",
    "semicolon_decimal_comma.csv",
    "tab_separated.tsv",
    "whitespace_headers.csv",
    "trailing_empty_lines.csv",
    "title_row.csv",
    "title_row.xlsx",
    "leading_zero_ids.csv",
    "excel_error_cells.xlsx",
    "spss_user_missing.sav",
    "spss_value_labels.sav",
    "numeric_ids.parquet",
]


@pytest.mark.parametrize("name", READABLE)
def test_reading_emits_no_python_warnings(name):
    # every decision is reported in df.attrs["warnings"], never on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_table(path(name))
    assert df.index.name == "row" and df.attrs["source"] == str(path(name))
    assert isinstance(df.attrs["warnings"], list)


def test_utf16_without_bom_reads_when_the_encoding_is_named():
    df = read_table(path("utf16_no_bom.csv"), encoding="utf-16-le")
    assert df.shape == (2, 15)
    assert df["client_id"].tolist() == ["C001", "C002"]
    assert df.attrs["encoding"] == "utf-16-le"


# --------------------------------------------------------------- one error for a misspelt column


def _sessions() -> pd.DataFrame:
    import alliance_lib as al

    df = al.simulate_study(n_therapists=4, n_clients=24, seed=5, output="scores")
    return df.assign(pre=df["outcome"], post=df["outcome"] - 1.0, srs_total=df["alliance"] * 8)


def _items() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"client_id": [f"c{k}" for k in range(30)], "session": 1})
    for c in ITEMS:
        df[c] = rng.integers(1, 6, 30).astype(float)
    return df


def _analyses():
    import alliance_lib as al

    s, t = "allaince", "alliance"  # a swapped pair of letters
    return {
        # analysis: (call with a misspelt column, the misspelt name, its right name)
        "score": (
            lambda d: score(d.rename(columns={"wai_sr_3": "wai_sr3"}), "wai-sr"),
            "wai_sr_3",
            "wai_sr3",
            _items,
        ),
        "validate": (
            lambda d: validate(d, "wai-sr", client="clinet_id"),
            "clinet_id",
            "client_id",
            _items,
        ),
        "reliability": (
            lambda d: al.reliability(d.rename(columns={"wai_sr_3": "wai_sr3"}), "wai-sr"),
            "wai_sr_3",
            "wai_sr3",
            _items,
        ),
        "reliability by": (
            lambda d: al.reliability(d, "wai-sr", by="sesion"),
            "sesion",
            "session",
            _items,
        ),
        "severity": (
            lambda d: al.severity(d, "srs", score="srs_totl"),
            "srs_totl",
            "srs_total",
            _sessions,
        ),
        "fit_trajectory": (lambda d: al.fit_trajectory(d, s), s, t, _sessions),
        "fit_trajectory client": (
            lambda d: al.fit_trajectory(d, t, client="clinet_id"),
            "clinet_id",
            "client_id",
            _sessions,
        ),
        "fit_mixed": (lambda d: al.fit_mixed(d, s, ["session"]), s, t, _sessions),
        "decompose": (lambda d: al.decompose(d, s), s, t, _sessions),
        "fit_alliance_outcome": (
            lambda d: al.fit_alliance_outcome(d, s, "outcome"),
            s,
            t,
            _sessions,
        ),
        "fit_alliance_outcome therapist": (
            lambda d: al.fit_alliance_outcome(d, t, "outcome", therapist="therapst_id"),
            "therapst_id",
            "therapist_id",
            _sessions,
        ),
        "therapist_effects": (lambda d: al.therapist_effects(d, s, "post", "pre"), s, t, _sessions),
        "ruptures": (lambda d: al.ruptures(d, s), s, t, _sessions),
        "rupture_patterns": (lambda d: al.rupture_patterns(d, s), s, t, _sessions),
        "srs_alliance_flags": (
            lambda d: al.srs_alliance_flags(d, "srs_totl"),
            "srs_totl",
            "srs_total",
            _sessions,
        ),
        "sudden_gains": (lambda d: al.sudden_gains(d, s, cutoff=1.0), s, t, _sessions),
        "sudden_losses": (lambda d: al.sudden_losses(d, s, cutoff=1.0), s, t, _sessions),
        "sudden_gains_by_client": (
            lambda d: al.sudden_gains_by_client(d, s, cutoff=1.0),
            s,
            t,
            _sessions,
        ),
        "sudden_gain_intervals": (
            lambda d: al.sudden_gain_intervals(d, s, cutoff=1.0),
            s,
            t,
            _sessions,
        ),
        "count_intervals": (lambda d: al.count_intervals(d, s), s, t, _sessions),
        "reliable_change": (
            lambda d: al.reliable_change(d, pre="pre", post="psot", sd=10.0, reliability=0.8),
            "psot",
            "post",
            _sessions,
        ),
        "reliable_change_from_long": (
            lambda d: al.reliable_change_from_long(d, "outcmoe", sd=10.0, reliability=0.8),
            "outcmoe",
            "outcome",
            _sessions,
        ),
        "clinical_significance": (
            lambda d: al.clinical_significance(
                d,
                pre="per",
                post="post",
                cutoff=50.0,
                sd=10.0,
                reliability=0.8,
                higher_is_better=False,
            ),
            "per",
            "pre",
            _sessions,
        ),
        "rater_agreement": (lambda d: al.rater_agreement(d, s), s, t, _sessions),
        "rater_agreement session": (
            lambda d: al.rater_agreement(d, t, session="sessoin"),
            "sessoin",
            "session",
            _sessions,
        ),
    }


@pytest.mark.parametrize("analysis", list(_analyses()))
def test_a_misspelt_column_gives_one_error_with_did_you_mean(analysis):
    from alliance_lib.errors import AllianceError, DataError

    call, wrong, right, data = _analyses()[analysis]
    with pytest.raises(MissingColumnsError) as info:
        call(data())
    err = info.value
    assert type(err) is MissingColumnsError  # one type, in every analysis
    assert isinstance(err, DataError) and isinstance(err, AllianceError)
    assert wrong in err.missing and err.column == err.missing[0]
    assert err.suggestions.get(wrong) == right
    assert f"Did you mean {right!r} for {wrong!r}?" in str(err)
    assert err.hint and "did you mean" in err.hint


def test_one_error_tree_with_the_old_names_kept():
    import inspect

    import alliance_lib as al
    from alliance_lib import errors
    from alliance_lib.change import ChangeInputError
    from alliance_lib.engine import EngineError
    from alliance_lib.norms import NormsError
    from alliance_lib.raters import RaterAgreementError
    from alliance_lib.reliability import ReliabilityError
    from alliance_lib.trajectories import ModelError

    for alias in (ModelError, ReliabilityError, RaterAgreementError, ChangeInputError, EngineError):
        assert alias is errors.DataError
    assert NormsError is errors.DefinitionError
    assert MissingColumnsError is errors.MissingColumnsError
    # every exception class the package exports is in the tree
    public = {name: getattr(al, name) for name in al.__all__}  # the package loads them lazily
    exported = {
        name: obj
        for name, obj in public.items()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
    }
    assert {"AllianceError", "DataError", "DefinitionError", "ReportError"} <= set(exported)
    assert all(issubclass(c, errors.AllianceError) for c in exported.values()), exported
    # and every error carries the typed fields
    err = MissingColumnsError(["x"], {}, "demo")
    assert (err.file, err.row, err.column, err.value, err.hint) == (None, None, "x", None, None)


@pytest.mark.parametrize(
    "call",
    [
        lambda al, d: al.ruptures(d, "alliance", preset="safran"),
        lambda al, d: al.sudden_gains(d, "alliance", cutoff=-7),
        lambda al, d: al.fit_trajectory(d, "alliance", method="bayes"),
        lambda al, d: al.fit_alliance_outcome(d, "alliance", "outcome", lag=0),
        lambda al, d: al.reliable_change(d, pre="pre", post="post", sd=10.0, reliability=1.5),
        lambda al, d: al.simulate_study(output="everything"),
        lambda al, d: score(_items(), "wai-sr", metric="median"),
    ],
    ids=[
        "ruptures",
        "sudden_gains",
        "fit_trajectory",
        "lag",
        "reliable_change",
        "simulate",
        "score",
    ],
)
def test_a_bad_option_is_a_definition_error(call):
    import alliance_lib as al
    from alliance_lib.errors import AllianceError, DefinitionError

    with pytest.raises(DefinitionError) as info:
        call(al, _sessions())
    assert isinstance(info.value, AllianceError) and isinstance(info.value, ValueError)
