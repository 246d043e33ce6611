"""The course kit for the teaching lessons: self-checks, the rendered course site and handouts.

A lesson is a notebook ``NN-topic.ipynb`` in ``notebooks/teaching/`` whose cells carry tags:

``parameters``
    the papermill parameters (seed, study size, effect sizes);
``objectives``
    a markdown cell with the time estimate and the learning objectives (shown on the index page);
``exercise``
    a markdown cell whose first heading is the exercise's title;
``solution``
    the exercise's solution (markdown or code); folded in the site, removed from student handouts;
``remove-cell``
    the lesson's correctness checks; never shown.

Every lesson in the folder joins the site and the handouts: there is no list of lessons to keep.

Commands::

    python -m alliance_lib.course book --lessons notebooks/teaching --out book
    python -m alliance_lib.course handouts --lessons notebooks/teaching --out handouts [--html]

The site is made with nbconvert (already a dependency of the report): each lesson is executed
at build time with nbclient, converted with nbconvert's ``lab`` template with code in folded
``<details>`` elements, and linked from an index page. No remote script, style, font or image
is referenced (MathJax, require.js and mermaid are left out; figures are embedded as PNG), so
the site works offline.

References
----------
nbconvert documentation, "Customizing exporters" and "Removing cells" (jupyter/nbconvert).
Jupyter Book, "Exercise and solution directives" (sphinx-exercise), for the exercise pattern.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

__all__ = [
    "Checks",
    "inside",
    "lessons",
    "lesson_outline",
    "build_book",
    "make_handouts",
    "remote_assets",
]

SOLUTION_CHECK = "solution check"


class Checks:
    """A lesson's correctness checks: hard asserts with the default seed, yes/no otherwise.

    The lessons' tolerances are set for the seed that ``make test`` uses. With another seed an
    interval misses the truth now and then (one time in twenty for a 95% interval): that is what
    an interval does, so the lesson then prints the result and carries on.

    Parameters
    ----------
    strict : bool
        Raise ``AssertionError`` when a check fails (use ``seed == <default seed>``).

    Examples
    --------
    >>> check = Checks(strict=False)
    >>> check("truth inside the interval", 0.1 < 0.3 < 0.5)
    truth inside the interval: yes
    True
    >>> check.solution("estimate within 4 SE of the truth", False)
    solution check · estimate within 4 SE of the truth: no
    False
    >>> Checks(strict=True)("slope recovered", False, detail=0.12)
    Traceback (most recent call last):
    ...
    AssertionError: slope recovered: 0.12
    """

    def __init__(self, strict: bool):
        self.strict = bool(strict)
        self.results: list[tuple[str, bool]] = []

    def _record(self, label: str, ok, detail, prefix: str) -> bool:
        ok = bool(np.all(ok))
        self.results.append((label, ok))
        if self.strict and not ok:
            raise AssertionError(f"{label}: {detail}" if detail is not None else label)
        if not self.strict or prefix:
            print(f"{prefix}{label}: {'yes' if ok else 'no'}")
        return ok

    def __call__(self, label: str, ok, detail=None) -> bool:
        """Check one statement of the lesson; quiet when strict and true."""
        return self._record(label, ok, detail, "")

    def solution(self, label: str, ok, detail=None) -> bool:
        """Check an exercise's answer against the simulation's truth (always printed)."""
        return self._record(label, ok, detail, f"{SOLUTION_CHECK} · ")


def inside(low, high, truth):
    """``"yes"`` where ``low < truth < high``, else ``"no"`` (elementwise).

    Examples
    --------
    >>> inside([0.0, 1.0], [2.0, 1.5], [1.0, 3.0]).tolist()
    ['yes', 'no']
    """
    low, high, truth = (np.asarray(v, dtype=float) for v in (low, high, truth))
    return np.where((low < truth) & (truth < high), "yes", "no")


# --------------------------------------------------------------------------------------------
# Lessons as notebooks


def lessons(folder) -> list[Path]:
    """Every lesson notebook ``NN-topic.ipynb`` in ``folder``, in lesson order.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ["02-b.ipynb", "01-a.ipynb", "notes.ipynb"]:
    ...     _ = (folder / name).write_text("{}")
    >>> [p.name for p in lessons(folder)]
    ['01-a.ipynb', '02-b.ipynb']
    """
    found = sorted(Path(folder).glob("[0-9][0-9]-*.ipynb"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _heading(text: str) -> str:
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            return line.lstrip("# ").strip()
    return text.strip().splitlines()[0] if text.strip() else ""


def lesson_outline(path) -> dict:
    """Title, objectives (markdown) and exercise titles of a lesson notebook.

    Examples
    --------
    >>> import json, tempfile
    >>> nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# 01 · Lesson"},
    ...                 {"cell_type": "markdown", "metadata": {"tags": ["exercise"]},
    ...                  "source": "### Exercise 1.1 · Predict"}]}
    >>> path = Path(tempfile.mkdtemp()) / "01-lesson.ipynb"
    >>> _ = path.write_text(json.dumps(nb))
    >>> o = lesson_outline(path)
    >>> o["title"], o["exercises"]
    ('01 · Lesson', ['Exercise 1.1 · Predict'])
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = nb["cells"]
    title = next((_heading(_source(c)) for c in cells if c["cell_type"] == "markdown"), "")
    objectives = "\n\n".join(_source(c) for c in cells if "objectives" in _tags(c))
    exercises = [_heading(_source(c)) for c in cells if "exercise" in _tags(c)]
    return {"path": Path(path), "title": title, "objectives": objectives, "exercises": exercises}


def _strip(nb: dict) -> dict:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def _without(nb: dict, tags: set[str]) -> dict:
    out = copy.deepcopy(nb)
    out["cells"] = [c for c in out["cells"] if not tags & set(_tags(c))]
    return out


def _names(cells) -> tuple[set[str], set[str]]:
    """Names bound and names read by the code cells (IPython magics skipped)."""
    import ast

    bound: set[str] = set()
    read: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = [ln for ln in _source(cell).splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                bound.add(node.name)
    return bound, read


def dangling_names(nb: dict, removed_tags: set[str]) -> set[str]:
    """Names the cells kept after removing ``removed_tags`` read but only removed cells bind.

    A handout without its hidden checks (or solutions) must still run: a visible cell may not
    use a variable that only a removed cell defines.

    Examples
    --------
    >>> nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": "x = 1"},
    ...                 {"cell_type": "code", "metadata": {}, "source": "print(x)"}]}
    >>> sorted(dangling_names(nb, {"remove-cell"}))
    ['x']
    """
    kept = [c for c in nb["cells"] if not removed_tags & set(_tags(c))]
    removed = [c for c in nb["cells"] if removed_tags & set(_tags(c))]
    kept_bound, kept_read = _names(kept)
    removed_bound, _ = _names(removed)
    return (kept_read & removed_bound) - kept_bound


def make_handouts(folder, out, *, html: bool = False, timeout: int = 600) -> dict[str, list[Path]]:
    """Write student and instructor versions of every lesson.

    ``<out>/student/`` holds the lessons without solutions and without the hidden checks;
    ``<out>/instructor/`` the lessons with solutions (checks removed as well). Both are stored
    without outputs, ready to run. With ``html=True`` each version is also executed and
    rendered as a site (``<out>/<version>/site/index.html``), as :func:`build_book` does.

    Returns
    -------
    dict
        ``{"student": [paths], "instructor": [paths]}`` of the notebooks written.
    """
    out = Path(out)
    written: dict[str, list[Path]] = {"student": [], "instructor": []}
    for path in lessons(folder):
        nb = json.loads(path.read_text(encoding="utf-8"))
        removed = {"student": {"solution", "remove-cell"}, "instructor": {"remove-cell"}}
        for version, tags in removed.items():
            missing = dangling_names(nb, tags)
            if missing:
                raise ValueError(
                    f"{path.name}: the {version} handout would use {sorted(missing)}, which only "
                    f"cells tagged {sorted(tags)} define; define them in a visible cell"
                )
        versions = {version: _without(nb, tags) for version, tags in removed.items()}
        for version, vnb in versions.items():
            target = out / version / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(_strip(vnb), indent=1, ensure_ascii=False) + "\n")
            written[version].append(target)
    if html:
        for version in written:
            build_book(
                out / version,
                out / version / "site",
                solutions=version == "instructor",
                cwd=folder,
                timeout=timeout,
            )
    return written


# --------------------------------------------------------------------------------------------
# The site

_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.course_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="course-nav">{{ resources.course_nav }}</nav>
{%- endblock body_header -%}
{% block input_group -%}
{%- if 'solution' in cell.metadata.get('tags', []) -%}
{{ super() }}
{%- else -%}
<details class="course-code"><summary>Code</summary>
{{ super() }}
</details>
{%- endif -%}
{%- endblock input_group %}
{% block codecell %}
{%- if 'solution' in cell.metadata.get('tags', []) -%}
<details class="course-solution"><summary>Solution: code and check</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock codecell %}
{% block markdowncell scoped %}
{%- if 'solution' in cell.metadata.get('tags', []) -%}
<details class="course-solution"><summary>Solution</summary>
{{ super() }}
</details>
{%- elif 'exercise' in cell.metadata.get('tags', []) or 'in-r' in cell.metadata.get('tags', []) or 'objectives' in cell.metadata.get('tags', []) -%}
<div class="course-box course-{{ cell.metadata.get('tags', []) | select('in', ['exercise', 'in-r', 'objectives']) | first }}">
{{ super() }}
</div>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock markdowncell %}
"""

_CSS = """
body { max-width: 62rem; margin: 0 auto; padding: 0 1rem; }
.course-nav { margin: 1rem 0; font-size: 0.9rem; }
.course-nav a { margin-right: 1rem; }
details.course-code > summary { cursor: pointer; color: #555; font-size: 0.85rem; }
details.course-solution { border-left: 4px solid #2a9d8f; padding-left: 0.6rem; margin: 0.4rem 0; }
details.course-solution > summary { cursor: pointer; font-weight: 600; color: #2a9d8f; }
.course-box { border-radius: 4px; padding: 0.2rem 0.8rem; margin: 0.6rem 0; }
.course-exercise { background: #fff7e6; border-left: 4px solid #e9a23b; }
.course-in-r { background: #eef4fb; border-left: 4px solid #1b6ca8; }
.course-objectives { background: #f1f8f1; border-left: 4px solid #5a9e5a; }
"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<style type="text/css">
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
section.lesson {{ border-top: 1px solid #ddd; padding: 0.6rem 0; }}
h2 a {{ color: #1b6ca8; text-decoration: none; }}
.meta {{ color: #666; font-size: 0.9rem; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{intro}</p>
{sections}
<p class="meta">Built {built} from {n} lesson notebooks; every figure and number was computed
when the site was built (nbconvert {nbconvert}).</p>
</body></html>
"""


def _execute(nb: dict, cwd: Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(
        node, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return json.loads(nbformat.writes(node))


def _page_name(path: Path) -> str:
    return path.stem + ".html"


def _lesson_html(nb: dict, name: str, nav: str, *, solutions: bool) -> str:
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    if not solutions:
        nb = _without(nb, {"solution"})
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.embed_images = True
    exporter = HTMLExporter(
        config=config,
        extra_loaders=[DictLoader({"course.html.j2": _TEMPLATE})],
        template_file="course.html.j2",
    )
    body, _ = exporter.from_notebook_node(
        nbformat.reads(json.dumps(nb), as_version=4),
        resources={"metadata": {"name": name}, "course_css": _CSS, "course_nav": nav},
    )
    return body


_REMOTE = re.compile(
    r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE
)


def remote_assets(page: str) -> list[str]:
    """The ``script``, ``link`` and ``img`` elements of an HTML page that load a remote URL.

    Examples
    --------
    >>> remote_assets('<img src="data:image/png;base64,AA"> <script src="https://x.org/a.js">')
    ['<script src="https://']
    """
    return _REMOTE.findall(page)


def build_book(
    folder,
    out,
    *,
    solutions: bool = True,
    execute: bool = True,
    cwd=None,
    timeout: int = 600,
    title: str = "Alliance research methods: a course with simulated data",
) -> Path:
    """Execute every lesson in ``folder`` and write a static site to ``out``.

    Parameters
    ----------
    folder : path
        Folder of lesson notebooks ``NN-topic.ipynb`` (all of them are picked up).
    out : path
        Output folder: ``index.html`` plus one page per lesson.
    solutions : bool
        Keep the solutions (folded). ``False`` gives the student site.
    execute : bool
        Run each lesson first (the committed notebooks have no outputs).
    cwd : path, optional
        Working directory of the kernels (default: ``folder``).

    Returns
    -------
    Path
        The index page.
    """
    import nbconvert
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = lessons(folder)
    if not paths:
        raise FileNotFoundError(f"no lesson notebooks NN-topic.ipynb in {folder}")
    outlines = [lesson_outline(p) for p in paths]
    links = ['<a href="index.html">Contents</a>'] + [
        f'<a href="{_page_name(o["path"])}">{html.escape(o["title"].split("·")[0].strip())}</a>'
        for o in outlines
    ]
    nav = " ".join(links)
    sections = []
    for path, outline in zip(paths, outlines, strict=True):
        start = time.perf_counter()
        nb = json.loads(path.read_text(encoding="utf-8"))
        if execute:
            nb = _execute(nb, Path(cwd) if cwd else path.parent, timeout)
        page = _lesson_html(nb, path.stem, nav, solutions=solutions)
        bad = remote_assets(page)
        if bad:
            raise RuntimeError(f"{path.name}: the page would load remote assets: {bad}")
        (out / _page_name(path)).write_text(page, encoding="utf-8")
        exercises = "".join(f"<li>{html.escape(t)}</li>" for t in outline["exercises"])
        sections.append(
            f'<section class="lesson"><h2><a href="{_page_name(path)}">'
            f"{html.escape(outline['title'])}</a></h2>"
            f"{markdown2html_mistune(outline['objectives'])}"
            f"<p><b>Exercises</b></p><ol>{exercises}</ol>"
            f'<p class="meta">built in {time.perf_counter() - start:.0f} s</p></section>'
        )
    index = out / "index.html"
    index.write_text(
        _INDEX.format(
            title=html.escape(title),
            intro=(
                "Lessons on simulated data whose true values are known, so every estimate can be "
                "compared with the truth. Code is folded: open <i>Code</i> to read it. Each "
                "exercise has a folded solution that checks itself against the simulation."
                if solutions
                else "Lessons on simulated data whose true values are known. Code is folded: "
                "open <i>Code</i> to read it. Solutions are handed out separately."
            ),
            sections="\n".join(sections),
            built=time.strftime("%Y-%m-%d"),
            n=len(paths),
            nbconvert=nbconvert.__version__,
        ),
        encoding="utf-8",
    )
    return index


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    """``python -m alliance_lib.course {book,handouts} ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m alliance_lib.course", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute every lesson and write the course site")
    book.add_argument("--lessons", default="notebooks/teaching", help="folder of lesson notebooks")
    book.add_argument("--out", default="book", help="output folder of the site")
    book.add_argument("--no-solutions", action="store_true", help="leave the solutions out")
    hand = sub.add_parser("handouts", help="student and instructor versions of every lesson")
    hand.add_argument("--lessons", default="notebooks/teaching", help="folder of lesson notebooks")
    hand.add_argument("--out", default="handouts", help="output folder")
    hand.add_argument("--html", action="store_true", help="also execute and render both versions")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.command == "book":
        index = build_book(args.lessons, args.out, solutions=not args.no_solutions)
        print(f"course site: {index} ({time.perf_counter() - start:.0f} s)")
    else:
        written = make_handouts(args.lessons, args.out, html=args.html)
        for version, paths in written.items():
            print(f"{version}: {len(paths)} lessons in {Path(args.out) / version}")
        print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
