"""Report exports: figures (PNG 300 dpi, SVG), tables (CSV), tables.docx, the index page."""

import json
import struct
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from alliance_lib import exports
from alliance_lib.sections import Figure, Section, Table
from alliance_lib.sections.render import Document
from alliance_lib.tables import format_table


def _png_dpi(path):
    """Pixels per metre of the PNG's pHYs chunk, as dots per inch."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", data[pos + 8 : pos + 17])
            assert unit == 1
            return round(x * 0.0254), round(y * 0.0254)
        pos += 12 + length
    raise AssertionError("no pHYs chunk")


@pytest.fixture
def document():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2], [3, 4])
    t1 = Table(
        "Sample and Attendance",
        pd.DataFrame({"Characteristic": ["Clients", "Therapists"], "n": [300, 20]}),
        formats={"n": "int"},
        note="Made up.",
        name="sample",
    )
    t2 = Table(
        "Fixed Effects",
        pd.DataFrame(
            {"Term": ["Session"], "b": [0.027287], "95% CI": [(0.0222, 0.0324)], "p": [1e-20]}
        ),
        formats={"b": "num", "95% CI": "ci", "p": "p"},
        digits={"b": 3, "95% CI": 3},
        note="REML.",
    )
    return Document(
        [
            Section("sample", "Sample", tables=[t1]),
            Section.skip("raters", "Raters", "no therapist ratings"),
            Section(
                "trajectory",
                "Trajectories",
                tables=[t2],
                figures=[Figure(fig, "A line.", name="trajectories")],
            ),
        ]
    )


def test_writes_every_figure_and_table(tmp_path, document):
    written = exports.write_exports(tmp_path, document, title="Demo: wave 3")
    rel = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert rel == [
        "figures/figure-01-trajectories.png",
        "figures/figure-01-trajectories.svg",
        "tables.docx",
        "tables/table-01-sample.csv",
        "tables/table-02-fixed-effects.csv",
    ]
    assert exports.exported_files(tmp_path) == rel
    assert _png_dpi(tmp_path / "figures/figure-01-trajectories.png") == (300, 300)
    svg = (tmp_path / "figures/figure-01-trajectories.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_csv_holds_raw_values_with_readable_headers(tmp_path, document):
    exports.write_exports(tmp_path, document)
    t = pd.read_csv(tmp_path / "tables/table-02-fixed-effects.csv")
    assert list(t.columns) == ["Term", "b", "95% CI low", "95% CI high", "p"]
    assert t.loc[0, "b"] == pytest.approx(0.027287)  # unrounded
    assert t.loc[0, "95% CI high"] == pytest.approx(0.0324)
    assert t.loc[0, "p"] == pytest.approx(1e-20)


def test_docx_has_the_apa_tables(tmp_path, document):
    from docx import Document as WordDocument

    exports.write_exports(tmp_path, document, title="Demo")
    word = WordDocument(str(tmp_path / "tables.docx"))
    assert len(word.tables) == 2
    texts = [p.text for p in word.paragraphs]
    assert "Table 1" in texts and "Sample and Attendance" in texts and "Table 2" in texts
    assert "Note. REML." in texts
    grid = word.tables[1]
    header = [c.text for c in grid.rows[0].cells]
    assert header == ["Term", "b", "95% CI", "p"]
    assert [c.text for c in grid.rows[1].cells] == format_table(document.tables()[1][1]).iloc[
        0
    ].tolist()
    assert [c.text for c in grid.rows[1].cells] == ["Session", "0.027", "[0.022, 0.032]", "< .001"]
    # APA: horizontal rules only (top and bottom of the header, bottom of the last row)
    xml = grid._tbl.xml
    assert "w:top" in xml and "w:bottom" in xml and "w:left" not in xml


def test_nothing_to_export_writes_nothing(tmp_path):
    assert exports.write_exports(tmp_path, Document([Section.skip("a", "A", "why")])) == []
    assert exports.exported_files(tmp_path) == []


def test_index_page_links_every_wave_with_headline_numbers(tmp_path):
    study = SimpleNamespace(name="Demo <study>", slug="demo")
    for w, n in ((1, 174), (2, 269)):
        folder = tmp_path / "demo" / f"wave-{w}"
        folder.mkdir(parents=True)
        results = {
            "sample": {"n_clients": n, "n_therapists": 20, "n_sessions": 10 * n},
            "trajectory": {"fixed": [{"term": "session", "estimate": 0.0301}]},
            "data_quality": {"rows_quarantined": 6},
        }
        (folder / "results.json").write_text(json.dumps(results))
    page = exports.write_index(tmp_path, study, [2, 1, 3])
    html = page.read_text()
    assert page == tmp_path / "demo" / "index.html"
    assert html.index('href="wave-1/report.html"') < html.index('href="wave-2/report.html"')
    assert "Wave 3" in html and 'href="wave-3/' not in html  # not run yet: a row, no dead link
    assert "no report yet" in html
    assert ">174<" in html and ">2,690<" in html and ">0.030<" in html
    assert "Demo &lt;study&gt;" in html and "<title>" in html


def test_the_same_figure_gives_the_same_files(tmp_path, document):
    exports.write_figures(tmp_path / "a", document)
    exports.write_figures(tmp_path / "b", document)
    for name in ("figure-01-trajectories.png", "figure-01-trajectories.svg"):
        assert (tmp_path / "a/figures" / name).read_bytes() == (
            tmp_path / "b/figures" / name
        ).read_bytes()
