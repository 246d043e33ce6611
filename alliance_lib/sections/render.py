"""Turn a list of sections into the report a reader sees: findings first, contents, numbered
sections with APA tables and captioned figures, then what did not apply, methods and references.

The HTML is self-contained: figures are embedded as base64 PNGs with alt text taken from their
captions, and the style sheet (screen and print) is emitted as a ``<style>`` block.

Examples
--------
>>> import pandas as pd
>>> from alliance_lib.sections.base import Section, Table
>>> s = Section("sample", "Sample", numbers={"n_clients": 3}, summary="3 clients were seen.",
...             tables=[Table("Clients", pd.DataFrame({"Group": ["A"], "n": [3]}))])
>>> doc = Document([s, Section.skip("raters", "Rater agreement", "no therapist ratings")])
>>> "3 clients were seen." in doc.findings_html()
True
>>> doc.table_number(s.tables[0]), [x.key for x in doc.applying]
(1, ['sample'])
"""

from __future__ import annotations

import base64
import html
import io
import platform
from collections.abc import Iterable
from importlib import metadata

import numpy as np

from alliance_lib._memory import release_memory
from alliance_lib.errors import AllianceError
from alliance_lib.sections.base import Figure, Section, Table
from alliance_lib.tables import table_html

__all__ = ["Document", "STYLE", "FINDINGS_ORDER", "record", "software_versions", "figure_png"]

#: Sections whose one-sentence summary goes into the "This wave" box, in this order (any other
#: section with a summary follows in report order).
FINDINGS_ORDER = {
    "sample": "Sample",
    "data_quality": "Data",
    "trajectory": "Alliance trend",
    "alliance_outcome": "Alliance → outcome",
    "icc": "Therapist share",
    "ruptures": "Ruptures",
    "sudden_gains": "Sudden gains",
    "clinical_significance": "Change",
    "wave_over_wave": "Since the last wave",
}

SOFTWARE = ("alliance_lib", "numpy", "scipy", "pandas", "statsmodels", "matplotlib")
SOFTWARE_REFERENCES = [
    "Harris, C. R., Millman, K. J., van der Walt, S. J., et al. (2020). Array programming with "
    "NumPy. Nature, 585(7825), 357–362.",
    "Virtanen, P., Gommers, R., Oliphant, T. E., et al. (2020). SciPy 1.0: Fundamental algorithms "
    "for scientific computing in Python. Nature Methods, 17(3), 261–272.",
    "McKinney, W. (2010). Data structures for statistical computing in Python. Proceedings of the "
    "9th Python in Science Conference, 56–61.",
    "Okabe, M., & Ito, K. (2008). Color universal design (CUD): How to make figures and "
    "presentations that are friendly to colorblind people. J*Fly.",
]

#: Screen and print style. Print keeps every column: the wrappers that scroll on screen stop
#: clipping, tables shrink their type and wrap long cells instead of running off the page.
STYLE = """
.alliance-report { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  line-height: 1.45; max-width: 62rem; color: #1a1a1a; }
.alliance-report h1 { font-size: 1.7rem; margin: 0.2rem 0 0.4rem; }
.alliance-report h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.alliance-report .meta { color: #444; font-size: 0.92rem; }
.alliance-report .findings { border: 2px solid #0072B2; border-radius: 6px; padding: 0.6rem 1rem;
  background: #f3f8fc; margin: 1rem 0; }
.alliance-report .findings h2 { border: none; margin: 0.2rem 0 0.4rem; font-size: 1.2rem; }
.alliance-report .findings li { margin: 0.25rem 0; }
.alliance-report nav ol { columns: 2; font-size: 0.95rem; }
.alliance-report figure { margin: 1.2rem 0; }
.alliance-report .apa-number, .alliance-report .apa-title { margin: 0.1rem 0; }
.alliance-report .apa-wrap { overflow-x: auto; max-width: 100%; }
.alliance-report table { border-collapse: collapse !important; border-top: 2px solid #000;
  border-bottom: 2px solid #000; margin: 0.3rem 0 !important; font-size: 0.85rem !important;
  table-layout: auto !important; width: auto; max-width: 100%; }
.alliance-report thead th { border-bottom: 1px solid #000 !important; font-weight: 600; }
.alliance-report th, .alliance-report td { padding: 0.2rem 0.55rem !important;
  vertical-align: top; border: none; }
.alliance-report td.num, .alliance-report th.num { text-align: right !important;
  font-variant-numeric: tabular-nums; white-space: nowrap; }
.alliance-report thead th.num { white-space: normal; }  /* long headers wrap, numbers never */
.alliance-report td.txt, .alliance-report th.txt { text-align: left !important; }
.alliance-report tbody tr:nth-child(odd), .alliance-report tbody tr:nth-child(even),
.alliance-report tbody tr:hover { background: transparent !important; }
.alliance-report .apa-note { font-size: 0.82rem; color: #333; margin-top: 0.25rem; }
.alliance-report img { max-width: 100%; height: auto; }
.alliance-report figcaption { font-size: 0.88rem; }
.alliance-report .skip { color: #555; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child,
  .jp-OutputArea-output, .jp-RenderedHTMLCommon, .alliance-report, .alliance-report .apa-wrap {
    overflow: visible !important; max-width: 100% !important; }
  /* JupyterLab keeps each output in one piece on paper; a whole section is taller than a page, so
     that leaves blank pages: let outputs break, keep single tables and figures whole instead */
  .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child,
  .jp-OutputArea-output { break-inside: auto !important; page-break-inside: auto !important; }
  .alliance-report { max-width: none; font-size: 9.5pt; }
  .alliance-report table { width: 100% !important; font-size: 7pt !important; }
  .alliance-report td.num, .alliance-report th.num { white-space: normal; }
  /* words wrap between words only (a header split as "Sessio / n" loses its word in the PDF
     text); a word longer than its column may still break, without widening the table */
  .alliance-report th, .alliance-report td { padding: 1pt 3pt !important;
    overflow-wrap: break-word; word-break: normal; hyphens: manual; }
  .alliance-report figure, .alliance-report table { break-inside: avoid; }
  .alliance-report h2 { break-after: avoid; }
  .alliance-report nav ol { columns: 1; }
}
"""


def software_versions() -> dict[str, str]:
    """Versions of Python and the packages the analyses ran on."""
    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def figure_png(figure, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (no timestamps in the metadata, so the bytes are reproducible)."""
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def run(section, wave, **options) -> Section:
    """Call one section function; when its analysis cannot be done with this wave's data (a
    library error, or a value the method cannot use, such as too few clients), the section does
    not apply and the reason is listed at the end of the report, instead of stopping the report.

    Examples
    --------
    >>> def sudden_gains_section(wave):
    ...     raise ValueError("need at least 2 clients with 4 or more sessions")
    >>> s = run(sudden_gains_section, None)
    >>> s.key, s.applies, s.not_applicable
    ('sudden_gains', False, 'could not be computed for this wave: need at least 2 clients with 4 or more sessions')
    """
    try:
        return section(wave, **options)
    except (AllianceError, ValueError, np.linalg.LinAlgError) as exc:
        return _not_applicable(section, exc)
    finally:
        # the section's temporaries back to the system before the next one (at 1,000,000
        # clients the kernel otherwise grew by the fragments of every section)
        release_memory()


def _not_applicable(section, exc: Exception) -> Section:
    key = section.__name__.removesuffix("_section")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Section.skip(
        key,
        key.replace("_", " ").capitalize(),
        f"could not be computed for this wave: {reason}",
    )


def record(results, sections: Iterable[Section]) -> None:
    """Store every section's numbers in ``results`` (a :class:`alliance_lib.results.Results`);
    a section that does not apply is stored as ``{"skipped": true, "reason": ...}``."""
    for s in sections:
        if s.applies:
            results.add(s.key, s.numbers)
        else:
            results.skip(s.key, s.not_applicable)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class Document:
    """Sections in reading order, with tables and figures numbered across the report.

    Parameters
    ----------
    sections : list of Section
    title : str
        The report's heading.
    meta : list of str
        Lines under the heading (study, measures, data file, cut-off); plain text.
    """

    def __init__(self, sections: list[Section], *, title: str = "Report", meta=()):
        self.sections = list(sections)
        self.title = title
        self.meta = list(meta)
        self.applying = [s for s in self.sections if s.applies]
        self.skipped = [s for s in self.sections if not s.applies]
        self._tables: dict[int, int] = {}
        self._figures: dict[int, int] = {}
        for s in self.applying:
            for t in s.tables:
                self._tables[id(t)] = len(self._tables) + 1
            for f in s.figures:
                self._figures[id(f)] = len(self._figures) + 1

    # ------------------------------------------------------------ numbering
    def table_number(self, table: Table) -> int:
        return self._tables[id(table)]

    def figure_number(self, figure: Figure) -> int:
        return self._figures[id(figure)]

    def tables(self) -> list[tuple[int, Table]]:
        return [(self.table_number(t), t) for s in self.applying for t in s.tables]

    def figures(self) -> list[tuple[int, Figure]]:
        return [(self.figure_number(f), f) for s in self.applying for f in s.figures]

    # ------------------------------------------------------------ parts
    def style_html(self) -> str:
        return f"<style>{STYLE}</style>"

    def findings_html(self) -> str:
        """The "This wave" box: one sentence per key finding, written from the numbers."""
        by_key = {s.key: s for s in self.applying if s.summary}
        items = [(label, by_key[k]) for k, label in FINDINGS_ORDER.items() if k in by_key]
        items += [(s.title, s) for s in self.applying if s.summary and s.key not in FINDINGS_ORDER]
        lis = "".join(
            f"<li><strong>{_esc(label)}.</strong> {_esc(s.summary)} "
            f'<a href="#sec-{_esc(s.key)}">More</a></li>'
            for label, s in items
        )
        if self.skipped:
            lis += (
                f"<li><strong>Not applicable.</strong> {len(self.skipped)} section(s) do not "
                'apply to this wave: <a href="#not-applicable">listed at the end</a>.</li>'
            )
        return f'<section class="findings"><h2>This wave</h2><ul>{lis}</ul></section>'

    def contents_html(self) -> str:
        lis = "".join(
            f'<li><a href="#sec-{_esc(s.key)}">{_esc(s.title)}</a></li>' for s in self.applying
        )
        extra = '<li><a href="#not-applicable">Sections that do not apply</a></li>' * bool(
            self.skipped
        )
        extra += (
            '<li><a href="#methods">Methods</a></li><li><a href="#references">References</a></li>'
        )
        return f'<nav aria-label="Contents"><h2>Contents</h2><ol>{lis}{extra}</ol></nav>'

    def head_html(self) -> str:
        """Style, title, meta lines, the findings box and the contents list."""
        meta = "".join(f'<p class="meta">{_esc(m)}</p>' for m in self.meta)
        return (
            f'{self.style_html()}<div class="alliance-report"><h1>{_esc(self.title)}</h1>{meta}'
            f"{self.findings_html()}{self.contents_html()}</div>"
        )

    def figure_html(self, figure: Figure, dpi: int = 150) -> str:
        n = self.figure_number(figure)
        data = base64.b64encode(figure_png(figure.figure, dpi)).decode("ascii")
        width = int(figure.figure.get_figwidth() * 96)
        alt = f"Figure {n}. {figure.alt}"
        return (
            f'<figure class="apa-figure" id="figure-{n}">'
            f'<p class="apa-number"><strong>Figure {n}</strong></p>'
            f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}" width="{width}">'
            f"<figcaption><em>{_esc(figure.caption)}</em></figcaption></figure>"
        )

    def section_html(self, section: Section) -> str:
        number = self.applying.index(section) + 1
        parts = [f'<h2 id="sec-{_esc(section.key)}">{number}. {_esc(section.title)}</h2>']
        text = " ".join(x for x in section.sentences if x)
        if text:
            parts.append(f"<p>{_esc(text)}</p>")
        parts += [
            table_html(t, self.table_number(t), anchor=f"table-{self.table_number(t)}")
            for t in section.tables
        ]
        parts += [self.figure_html(f) for f in section.figures]
        return f'<div class="alliance-report">{"".join(parts)}</div>'

    def methods_paragraphs(self, versions: dict[str, str] | None = None) -> list[str]:
        """What was done: one paragraph per section with methods, then the software used."""
        v = versions or software_versions()
        sentences = [s.methods for s in self.applying if s.methods]
        sentences.append(
            f"Analyses ran in Python {v['python']} with alliance_lib {v['alliance_lib']}, NumPy "
            f"{v['numpy']} (Harris et al., 2020), SciPy {v['scipy']} (Virtanen et al., 2020), "
            f"pandas {v['pandas']} (McKinney, 2010), statsmodels {v['statsmodels']} and "
            f"matplotlib {v['matplotlib']}; figures use the Okabe and Ito (2008) colour-blind-safe "
            "palette."
        )
        return sentences

    def methods_paragraph(self, versions: dict[str, str] | None = None) -> str:
        """The methods as one paragraph (for a manuscript draft)."""
        return " ".join(self.methods_paragraphs(versions))

    def references(self) -> list[str]:
        refs = {r for s in self.applying for r in s.references} | set(SOFTWARE_REFERENCES)
        return sorted(refs, key=str.casefold)

    def tail_html(self, versions: dict[str, str] | None = None) -> str:
        """Sections that do not apply (once, with reasons), the methods paragraph, references."""
        parts = []
        if self.skipped:
            lis = "".join(
                f"<li><strong>{_esc(s.title)}</strong>: {_esc(s.not_applicable)}.</li>"
                for s in self.skipped
            )
            parts.append(
                '<h2 id="not-applicable">Sections that do not apply</h2>'
                f'<ul class="skip">{lis}</ul>'
            )
        parts.append(
            f'<h2 id="methods">Methods</h2><p>{_esc(self.methods_paragraph(versions))}</p>'
        )
        refs = "".join(f"<li>{_esc(r)}</li>" for r in self.references())
        parts.append(f'<h2 id="references">References</h2><ul class="references">{refs}</ul>')
        return f'<div class="alliance-report">{"".join(parts)}</div>'

    def close(self) -> None:
        """Close every figure (after rendering and exporting)."""
        import matplotlib.pyplot as plt

        for _, f in self.figures():
            plt.close(f.figure)
