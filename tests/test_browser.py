"""The demo report read in a real browser: headless Chromium lays it out on screen (no table wider
than the page) and prints it to PDF (every column of every table survives, read back with
pdftotext). Skips, saying why, when Chromium or pdftotext is not installed (Debian packages
``chromium`` and ``poppler-utils``; ``.ci/run`` installs them)."""

import html
import json
import re
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDFTOTEXT = shutil.which("pdftotext")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.notebook,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not found (install the Debian package 'chromium')",
    ),
]

# measures every table after layout and writes the result into the DOM for --dump-dom
PROBE = """
<script>
window.addEventListener("load", () => {
  const page = document.documentElement.clientWidth;
  const bad = [];
  const tables = document.querySelectorAll("figure.apa-table table");
  tables.forEach((t, i) => {
    const r = t.getBoundingClientRect();
    if (r.right > page + 1 || r.left < -1) bad.push(`table ${i + 1} spans ${r.left}-${r.right}`);
    const wrap = t.closest(".apa-wrap");
    if (wrap && wrap.scrollWidth > wrap.clientWidth + 1) bad.push(`table ${i + 1} scrolls`);
  });
  const imgs = [...document.images].filter((im) => !im.alt || im.alt.startsWith("No description"));
  const out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify({page, tables: tables.length, bad, imgs_without_alt: imgs.length,
    scroll: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>
"""


def _chromium(*args, timeout=180):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, body rows) of every APA table in the report."""
    out = []
    for head, body in re.findall(
        r"<table><thead><tr>(.*?)</tr></thead><tbody>(.*?)</tbody></table>", page, re.S
    ):
        cells = [html.unescape(c) for c in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]
        rows = [
            [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        ]
        out.append((cells, rows))
    return out


@pytest.fixture
def report(demo_wave3_report):
    """The session's demo wave-3 report (tests/conftest.py), read-only."""
    return demo_wave3_report


@pytest.mark.parametrize("width", [1280, 1024])
def test_no_table_is_wider_than_the_page(report, tmp_path, width):
    page = (report / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(
        f"--window-size={width},2000", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()
    ).stdout
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    assert found, "the layout probe did not run"
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["tables"] == len(_tables(page)) >= 15
    assert probe["bad"] == [], probe["bad"]
    assert probe["scroll"] <= probe["page"], "the page scrolls sideways"
    assert probe["imgs_without_alt"] == 0


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext not found (Debian 'poppler-utils')")
def test_printing_to_pdf_keeps_every_column(report, tmp_path):
    pdf = tmp_path / "report.pdf"
    _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", (report / "report.html").as_uri())
    assert pdf.is_file() and pdf.stat().st_size > 10_000
    text = subprocess.run(
        [PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    words = set(text.split())
    tables = _tables((report / "report.html").read_text(encoding="utf-8"))
    missing = []
    for n, (header, rows) in enumerate(tables, start=1):
        # every header word, and every word of the last (rightmost) column, must be on the page
        wanted = [w for cell in header for w in cell.split()]
        wanted += [w for row in rows for w in row[-1].split()]
        missing += [f"table {n}: {w!r}" for w in wanted if w not in words]
    assert not missing, missing[:20]
