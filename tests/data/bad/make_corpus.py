"""Regenerate the malformed-input corpus in this folder (small, synthetic, no real data).

Run from the repository root::

    .venv/bin/python tests/data/bad/make_corpus.py

Text files are written byte for byte here (so BOMs, encodings and line endings are exact), binary
ones (xlsx, sav, parquet) with openpyxl, pyreadstat and pyarrow. README.md lists every file and
what it tests; tests/test_bad_inputs.py asserts what each one gives.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pyreadstat

HERE = Path(__file__).resolve().parent
ITEMS = [f"wai_sr_{i}" for i in range(1, 13)]
HEADER = ["client_id", "therapist_id", "session", *ITEMS]


def row(client, therapist, session, items) -> list[str]:
    """One CSV row; `items` is one value for all 12 items or a list of 12."""
    if not isinstance(items, list):
        items = [items] * 12
    return [str(client), str(therapist), str(session), *map(str, items)]


def csv_text(rows, sep=",", header=HEADER, newline="\n") -> str:
    return newline.join(sep.join(r) for r in [header, *rows]) + newline


def write_text(out: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    (out / name).write_bytes(text.encode(encoding))


def items_with(base, **changes) -> list:
    """12 item values equal to `base`, with e.g. wai_sr_3="n/a" changed."""
    vals = [base] * 12
    for key, value in changes.items():
        vals[int(key.rsplit("_", 1)[1]) - 1] = value
    return vals


def good_rows(n=3, start=1) -> list[list[str]]:
    return [row(f"C{k:03d}", "T01", 1, 3 + (k % 2)) for k in range(start, start + n)]


def fixed_book() -> openpyxl.Workbook:
    book = openpyxl.Workbook()
    stamp = dt.datetime(2026, 1, 1)
    book.properties.created = stamp
    book.properties.modified = stamp
    return book


def main(out: Path = HERE) -> None:
    """Write every corpus file into `out` (default: this folder)."""
    out = Path(out)
    # -- file-level problems -------------------------------------------------------------------
    write_text(out, "empty.csv", "")
    write_text(out, "blank_lines_only.csv", "\n  \n\n")
    write_text(out, "header_only.csv", csv_text([]))
    ragged = good_rows(5)
    ragged[1] = [*ragged[1], "5"]  # file row 3: one field too many
    ragged[3] = ragged[3][:-2]  # file row 5: two fields short
    write_text(out, "ragged_rows.csv", csv_text(ragged))
    write_text(
        out,
        "wrong_delimiter.csv",
        ",".join(HEADER) + "\n" + "".join(";".join(r) + "\n" for r in good_rows(3)),
    )
    write_text(out, "colon_delimited.csv", csv_text(good_rows(2), sep=":"))
    write_text(
        out,
        "decimal_comma_in_comma_file.csv",
        csv_text(
            [
                *good_rows(2),
                ["C003", "T01", "1", "3,5", *["4"] * 11],
            ]
        ),
    )
    write_text(
        out,
        "unbalanced_quote.csv",
        csv_text([*good_rows(2), ['"C003', "T01", "1", *["4"] * 12]]),
    )
    write_text(out, "no_header.csv", "".join(",".join(r) + "\n" for r in good_rows(3)))
    write_text(
        out, "duplicated_column.csv", csv_text(good_rows(2), header=[*HEADER[:-1], "wai_sr_3"])
    )
    write_text(
        out,
        "unnamed_column_with_data.csv",
        csv_text(
            [[*r, ""] for r in good_rows(1)] + [[*good_rows(1, 2)[0], "note"]], header=[*HEADER, ""]
        ),
    )

    # -- encodings -----------------------------------------------------------------------------
    sites = ["Zürich", "São Paulo", "Malmö"]
    enc_rows = [[*r, s] for r, s in zip(good_rows(3), sites, strict=True)]
    write_text(out, "utf8_bom.csv", "\ufeff" + csv_text(enc_rows, header=[*HEADER, "site"]))
    write_text(out, "latin1_accents.csv", csv_text(enc_rows, header=[*HEADER, "site"]), "latin-1")
    write_text(out, "wrong_encoding.csv", csv_text(enc_rows, header=[*HEADER, "site"]), "latin-1")
    write_text(out, "utf16_no_bom.csv", csv_text(good_rows(2)), "utf-16-le")
    double = csv_text(enc_rows, header=[*HEADER, "site"]).encode("utf-8").decode("latin-1")
    write_text(out, "double_encoded_utf8.csv", double)

    # -- delimiters, decimals, whitespace, blank lines --------------------------------------
    srs_header = ["client_id", "session", "srs_1", "srs_2", "srs_3", "srs_4"]
    write_text(
        out,
        "semicolon_decimal_comma.csv",
        csv_text(
            [
                ["0101", "1", "7,5", "8", "9,25", "6,0"],
                ["0102", "1", "10", "9,5", "8", "7"],
            ],
            sep=";",
            header=srs_header,
            newline="\r\n",
        ),
    )
    write_text(out, "tab_separated.tsv", csv_text(good_rows(2), sep="\t"))
    write_text(
        out,
        "whitespace_headers.csv",
        csv_text(
            [[f" {v} " for v in r] for r in good_rows(2)],
            header=[f"  {h} " for h in HEADER],
        ),
    )
    write_text(
        out,
        "trailing_empty_lines.csv",
        csv_text(good_rows(2)) + "\n" + ",".join([""] * 15) + "\n  \n\n",
    )
    write_text(
        out,
        "title_row.csv",
        "WAI-SR export, wave 1\n" + csv_text(good_rows(2)),
    )
    write_text(
        out,
        "leading_zero_ids.csv",
        csv_text(
            [
                row("007", "001", 1, 4),
                row("0012", "010", 1, 3),
                row("00", "T01", 2, 4),
            ]
        ),
    )

    # -- row-level problems for validation ------------------------------------------------------
    write_text(
        out,
        "out_of_range.csv",
        csv_text(
            [
                row("C001", "T01", 1, 4),
                row("C002", "T01", 1, items_with(4, wai_sr_3=7)),
                row("C003", "T01", 1, items_with(3, wai_sr_12=0)),
            ]
        ),
    )
    write_text(
        out,
        "text_na_dash.csv",
        csv_text(
            [
                row("C001", "T01", 1, items_with(4, wai_sr_2="n/a")),
                row("C002", "T01", 1, items_with(3, wai_sr_7="—")),
                row("C003", "T01", 1, 5),
            ]
        ),
    )
    write_text(
        out,
        "duplicated_rows.csv",
        csv_text([row("C001", "T01", 1, 4), row("C002", "T01", 1, 3), row("C001", "T01", 1, 4)]),
    )
    write_text(
        out,
        "missing_id_column.csv",
        csv_text(
            [r[1:] for r in good_rows(2)],
            header=HEADER[1:],
        ),
    )
    write_text(
        out,
        "misnamed_id_column.csv",
        csv_text(good_rows(2), header=["Client ID", *HEADER[1:]]),
    )
    write_text(
        out,
        "sessions_as_text.csv",
        csv_text(
            [row("C001", "T01", "three", 4), row("C002", "T01", "S2", 3), row("C003", "T01", 1, 3)]
        ),
    )
    write_text(
        out,
        "negative_session.csv",
        csv_text([row("C001", "T01", 1, 4), row("C002", "T01", -1, 3)]),
    )
    write_text(
        out,
        "non_integer_session.csv",
        csv_text([row("C001", "T01", 1, 4), row("C002", "T01", 2.5, 3)]),
    )
    write_text(
        out,
        "missing_client_id.csv",
        csv_text([row("C001", "T01", 1, 4), row("", "T01", 1, 3), row("C003", "T01", 1, 5)]),
    )
    misspelt = [*HEADER[:-1], "wai_sr12"]
    write_text(out, "misspelt_item_column.csv", csv_text(good_rows(2), header=misspelt))
    write_text(
        out,
        "mixed_types.csv",
        csv_text(
            [
                row("C001", "T01", 1, items_with(4, wai_sr_4="four")),
                row("C002", "T01", 1, items_with(3, wai_sr_4="2.0")),
                row("C003", "T01", 1, 5),
            ]
        ),
    )
    write_text(
        out,
        "non_integer_item.csv",
        csv_text([row("C001", "T01", 1, items_with(4, wai_sr_6="3.5")), row("C002", "T01", 1, 3)]),
    )
    write_text(
        out,
        "missing_codes.csv",
        csv_text(
            [
                row("C001", "T01", 1, items_with(4, wai_sr_1=-99)),
                row("C002", "T01", 1, items_with(3, wai_sr_5=999, wai_sr_6=999)),
            ]
        ),
    )
    write_text(
        out,
        "invalid_rater.csv",
        csv_text(
            [
                [*r[:3], rater, *r[3:]]
                for r, rater in zip(good_rows(2), ["client", "patient"], strict=True)
            ],
            header=[*HEADER[:3], "rater", *ITEMS],
        ),
    )

    # -- wrong or damaged binary files --------------------------------------------------------
    write_text(out, "data.json", '{"client_id": ["C001"]}\n')
    (out / "legacy.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    (out / "corrupt.xlsx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    (out / "corrupt.parquet").write_bytes(b"PAR1 truncated")

    # -- Excel ---------------------------------------------------------------------------------
    book = fixed_book()
    ws = book.active
    ws.title = "wave 1"
    ws["A1"] = "Working Alliance Inventory (short revised), wave 1"
    ws.append([])
    for r in [HEADER, *good_rows(3)]:
        ws.append([int(v) if v.isdigit() and not v.startswith("0") else v for v in r])
    book.save(out / "title_row.xlsx")
    (out / "excel_saved_as.csv").write_bytes((out / "title_row.xlsx").read_bytes())

    book = fixed_book()
    ws = book.active
    ws.title = "wave 1"
    ws.append(HEADER)
    ws.append(["C001", "T01", 1, *[4] * 12])
    ws.append(["C002", "T01", 1, 3, "#N/A", *[3] * 10])
    ws.append(["007", 12, 2, *[5] * 12])
    ws.append([None] * 15)
    second = book.create_sheet("wave 2")
    second.append(HEADER)
    second.append(["C001", "T01", 2, *[5] * 12])
    book.save(out / "excel_error_cells.xlsx")

    # -- SPSS ----------------------------------------------------------------------------------
    sav = pd.DataFrame(
        {
            "client_id": [1.0, 2.0, 3.0],
            "session": [1.0, 1.0, 1.0],
            **{c: [4.0, 3.0, 5.0] for c in ITEMS},
        }
    )
    sav.loc[1, "wai_sr_2"] = 99.0
    sav.loc[2, "wai_sr_8"] = 98.0
    pyreadstat.write_sav(
        sav,
        out / "spss_user_missing.sav",
        column_labels={"client_id": "Client", "session": "Session"},
        missing_ranges={c: [99.0, {"lo": 97.0, "hi": 98.0}] for c in ITEMS},
        variable_format={"client_id": "N4"},
    )
    labelled = sav.copy()
    labelled.loc[1, "wai_sr_2"] = 1.0
    labelled.loc[2, "wai_sr_8"] = 5.0
    pyreadstat.write_sav(
        labelled,
        out / "spss_value_labels.sav",
        variable_value_labels={c: {1.0: "Seldom", 5.0: "Always"} for c in ITEMS},
    )

    # -- Parquet ----------------------------------------------------------------------------
    pq = pd.DataFrame(
        {
            "client_id": [7, 12],
            "therapist_id": [3, 3],
            "session": [1, 1],
            **{c: [4, 3] for c in ITEMS},
        }
    )
    pq.to_parquet(out / "numeric_ids.parquet", index=False)


if __name__ == "__main__":
    main()
