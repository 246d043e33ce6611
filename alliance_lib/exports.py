"""Report exports: every figure as PNG (300 dpi) and SVG, every table as CSV, the APA tables in one
Word file, and an index page linking the reports of every wave.

Files are named by their number in the report (``figures/figure-03-trajectories.png``,
``tables/table-02-sample.csv``), so a reader finds Figure 3 of the report as figure-03. CSV files
hold the raw, unrounded values under the table's readable column labels; ``tables.docx`` holds the
tables as the report shows them (APA 7: number, italic title, horizontal rules only, note).

Examples
--------
>>> import tempfile, pandas as pd
>>> from pathlib import Path
>>> from alliance_lib.sections import Section, Table
>>> from alliance_lib.sections.render import Document
>>> t = Table("Clients", pd.DataFrame({"Group": ["A"], "n": [3]}), formats={"n": "int"})
>>> doc = Document([Section("sample", "Sample", tables=[t])])
>>> out = Path(tempfile.mkdtemp())
>>> [p.relative_to(out).as_posix() for p in write_exports(out, doc)]
['tables/table-01-clients.csv', 'tables.docx']
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from alliance_lib.tables import format_table

__all__ = [
    "write_exports",
    "write_figures",
    "write_tables",
    "write_docx",
    "write_index",
    "exported_files",
    "slug",
]

FIGURE_DPI = 300


def slug(text: str, default: str = "item") -> str:
    """A file-name stem: lower case, ASCII letters, digits and dashes.

    >>> slug("Rows Quarantined, by Reason"), slug("alliance_by_session")
    ('rows-quarantined-by-reason', 'alliance-by-session')
    """
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:60].rstrip("-") or default


def _csv_frame(table) -> pd.DataFrame:
    data = table.data.reset_index(drop=True).copy()
    for col in data.columns:
        if data[col].map(lambda v: isinstance(v, tuple)).any():
            lows, highs = zip(
                *[v if isinstance(v, tuple) else (None, None) for v in data[col]], strict=True
            )
            at = data.columns.get_loc(col)
            data.insert(at, f"{col} low", lows)
            data.insert(at + 1, f"{col} high", highs)
            data = data.drop(columns=col)
    return data


def write_figures(out_dir: str | Path, document, *, dpi: int = FIGURE_DPI) -> list[Path]:
    """``figures/figure-NN-<name>.png`` (``dpi``) and ``.svg`` for every figure."""
    import matplotlib.pyplot as plt

    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, fig in document.figures():
        stem = f"figure-{n:02d}-{slug(fig.name or fig.caption)}"
        png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
        fig.figure.savefig(png, dpi=dpi, metadata={"Software": None})
        # a fixed salt for the SVG's element ids: the same figure gives the same file
        with plt.rc_context({"svg.hashsalt": "alliance_lib"}):
            fig.figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        written += [png, svg]
    return written


def write_tables(out_dir: str | Path, document) -> list[Path]:
    """``tables/table-NN-<name>.csv`` (raw values, readable headers, CIs as two columns)."""
    folder = Path(out_dir) / "tables"
    written = []
    for n, table in document.tables():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"table-{n:02d}-{slug(table.name or table.title)}.csv"
        _csv_frame(table).to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written


def _rule(cell, edges: dict[str, int]) -> None:
    """Set the cell's top/bottom borders (eighths of a point); APA tables have no vertical rules."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    tc_pr = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    for edge, size in edges.items():
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), "single")
        el.set(qn("w:sz"), str(size))
        el.set(qn("w:color"), "000000")
        borders.append(el)
    tc_pr.append(borders)


def write_docx(path: str | Path, document, *, title: str | None = None) -> Path:
    """Every table of the report in APA 7 layout in one Word file (python-docx).

    Each table: "Table N" in bold, the title in italics on the next line, the grid with a rule
    above and below the header and below the last row, then "*Note.* ..." under it.
    """
    from docx import Document as WordDocument
    from docx.shared import Pt

    word = WordDocument()
    style = word.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(11)
    if title:
        word.add_heading(title, level=1)
    for n, table in document.tables():
        word.add_paragraph().add_run(f"Table {n}").bold = True
        word.add_paragraph().add_run(table.title).italic = True
        shown = format_table(table)
        grid = word.add_table(rows=len(shown) + 1, cols=len(shown.columns))
        # one pass over the rows, each row's cells taken once (``grid.cell(i, j)`` lists every
        # cell of the table on each call: quadratic, minutes for a 2,000-row table)
        values = [list(map(str, shown.columns))] + [list(r) for r in shown.itertuples(index=False)]
        for i, (row, texts) in enumerate(zip(grid.rows, values, strict=True)):
            for cell, text in zip(row.cells, texts, strict=True):
                cell.text = text
                if i == 0:
                    _rule(cell, {"top": 12, "bottom": 6})
                elif i == len(shown):
                    _rule(cell, {"bottom": 12})
                for para in cell.paragraphs:
                    for run in para.runs:
                        run.font.size = Pt(9)
        if table.note:
            para = word.add_paragraph()
            para.add_run("Note.").italic = True
            para.add_run(f" {table.note}")
        word.add_paragraph()
    path = Path(path)
    word.core_properties.title = title or "Tables"
    word.save(path)
    return path


def write_exports(out_dir: str | Path, document, *, title: str | None = None) -> list[Path]:
    """Write figures/, tables/ and tables.docx for a :class:`~alliance_lib.sections.render.
    Document` into ``out_dir``; returns the files written (for provenance)."""
    out = Path(out_dir)
    written = write_figures(out, document) if document.figures() else []
    written += write_tables(out, document)
    if document.tables():
        written.append(write_docx(out / "tables.docx", document, title=title))
    return written


def _headline(results: dict) -> dict:
    sample = results.get("sample") or {}
    traj = results.get("trajectory") or {}
    slope = next((r for r in traj.get("fixed") or [] if r.get("term") == "session"), None)
    return {
        "clients": sample.get("n_clients"),
        "therapists": sample.get("n_therapists"),
        "sessions": sample.get("n_sessions"),
        "slope": None if slope is None else slope.get("estimate"),
        "quarantined": (results.get("data_quality") or {}).get("rows_quarantined"),
    }


def write_index(root: str | Path, study, waves) -> Path:
    """An index page linking the report of every wave, with its headline numbers.

    Parameters
    ----------
    root : str or Path
        The folder that holds ``<study-slug>/wave-<N>/`` (as ``run_report(all_waves=True)``
        writes them).
    study : Study
    waves : iterable of int

    Returns
    -------
    Path
        ``<root>/<study-slug>/index.html``.

    Examples
    --------
    >>> import tempfile
    >>> from types import SimpleNamespace
    >>> root = Path(tempfile.mkdtemp())
    >>> page = write_index(root, SimpleNamespace(name="Demo", slug="demo"), [1, 2])
    >>> page.relative_to(root).as_posix(), "no report yet" in page.read_text()
    ('demo/index.html', True)
    """
    from alliance_lib.sections.render import STYLE
    from alliance_lib.tables import format_int, format_number

    folder = Path(root) / study.slug
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for w in sorted(int(x) for x in waves):
        res_path = folder / f"wave-{w}" / "results.json"
        head = (
            _headline(json.loads(res_path.read_text(encoding="utf-8")))
            if res_path.is_file()
            else {}
        )
        ran = res_path.is_file()
        link = f'<a href="wave-{w}/report.html">Wave {w}</a>' if ran else f"Wave {w}"
        files = (
            f'<a href="wave-{w}/tables.docx">tables.docx</a> · '
            f'<a href="wave-{w}/results.json">results.json</a>'
            if ran
            else "no report yet"
        )
        cells = [
            f'<td class="txt">{link}</td>',
            f'<td class="num">{format_int(head.get("clients"))}</td>',
            f'<td class="num">{format_int(head.get("therapists"))}</td>',
            f'<td class="num">{format_int(head.get("sessions"))}</td>',
            f'<td class="num">{format_number(head.get("slope"), 3)}</td>',
            f'<td class="num">{format_int(head.get("quarantined"))}</td>',
            f'<td class="txt">{files}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    heads = [
        "Report",
        "Clients",
        "Therapists",
        "Sessions",
        "Alliance slope",
        "Quarantined",
        "Files",
    ]
    th = "".join(
        f'<th scope="col" class="{"txt" if h in ("Report", "Files") else "num"}">{h}</th>'
        for h in heads
    )
    name = html.escape(study.name)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="generator" content="alliance_lib">'
        f"<title>{name}: reports by "
        f'wave</title><style>{STYLE}</style></head><body><div class="alliance-report">'
        f"<h1>{name}: reports by wave</h1><p>Each wave's report analyses the cumulative data up to "
        "that wave. Alliance slope = growth-model change in the client-rated alliance per "
        f"session.</p><table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</div></body></html>\n"
    )
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def exported_files(out_dir: str | Path) -> list[str]:
    """The export files in a report folder, relative and sorted (for provenance).

    >>> import tempfile
    >>> exported_files(tempfile.mkdtemp())
    []
    """
    out = Path(out_dir)
    found = [p for d in ("figures", "tables") for p in (out / d).glob("*") if p.is_file()]
    if (out / "tables.docx").is_file():
        found.append(out / "tables.docx")
    return sorted(p.relative_to(out).as_posix() for p in found)
