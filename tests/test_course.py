"""The course kit: self-checks, handouts and the rendered course site (issue 17)."""

import json
import re
import time
from pathlib import Path

import pytest

from alliance_lib import course

ROOT = Path(__file__).resolve().parents[1]
TEACHING = ROOT / "notebooks" / "teaching"
LESSONS = course.lessons(TEACHING)


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- Checks


def test_checks_lenient_prints_and_never_raises(capsys):
    check = course.Checks(strict=False)
    assert check("truth inside the interval", False) is False
    assert check.solution("estimate near truth", True) is True
    out = capsys.readouterr().out.splitlines()
    assert out == ["truth inside the interval: no", "solution check · estimate near truth: yes"]
    assert check.results == [("truth inside the interval", False), ("estimate near truth", True)]


def test_checks_strict_raises_and_is_quiet_when_true(capsys):
    check = course.Checks(strict=True)
    assert check("slope recovered", True)
    assert capsys.readouterr().out == ""
    with pytest.raises(AssertionError, match="slope recovered: 0.5"):
        check("slope recovered", False, detail=0.5)
    with pytest.raises(AssertionError):
        check.solution("solution", [True, False])


def test_inside_is_strict_and_elementwise():
    assert course.inside([0, 0, 0], [1, 1, 1], [0.5, 1.0, -1]).tolist() == ["yes", "no", "no"]


# ---------------------------------------------------------------- the lessons' course material


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_objectives_exercises_solutions_and_r_box(lesson):
    nb = _load(lesson)
    if lesson.name.startswith("07-"):
        pytest.skip("lesson 07 is written by another helper")
    cells = nb["cells"]
    objectives = [c for c in cells if "objectives" in _tags(c)]
    assert len(objectives) == 1 and cells.index(objectives[0]) <= 2, "objectives at the top"
    text = "".join(objectives[0]["source"])
    assert re.search(r"\*\*Time:\*\* about \d+ minutes", text) and "Learning objectives" in text
    exercises = [i for i, c in enumerate(cells) if "exercise" in _tags(c)]
    assert 3 <= len(exercises) <= 5
    for i in exercises:
        following = []
        for c in cells[i + 1 :]:
            if "solution" not in _tags(c):
                break
            following.append(c)
        code = [c for c in following if c["cell_type"] == "code"]
        assert code, f"exercise at cell {i} has no solution code"
        assert any("check.solution(" in "".join(c["source"]) for c in code), (
            "solution checks itself"
        )
        assert all(c["metadata"].get("jupyter", {}).get("source_hidden") for c in code)
    r_box = [c for c in cells if "in-r" in _tags(c)]
    assert len(r_box) == 1 and "**In R" in "".join(r_box[0]["source"])


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_code_cells_stay_short(lesson):
    """Figures come from alliance_lib.plots, so visible cells stay short (at most ~10 lines)."""
    nb = _load(lesson)
    if lesson.name.startswith("07-"):
        pytest.skip("lesson 07 is written by another helper")
    long = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code"
        and not {"remove-cell", "solution"} & set(_tags(c))
        and len("".join(c["source"]).strip().splitlines()) > 10
    ]
    assert not long, f"cells {long} are longer than 10 lines"


# ---------------------------------------------------------------- handouts


def test_handouts_student_and_instructor(tmp_path):
    written = course.make_handouts(TEACHING, tmp_path)
    assert [p.name for p in written["student"]] == [p.name for p in LESSONS]
    for student, instructor, lesson in zip(
        written["student"], written["instructor"], LESSONS, strict=True
    ):
        s, i, original = _load(student), _load(instructor), _load(lesson)
        n_solutions = sum("solution" in _tags(c) for c in original["cells"])
        assert not any({"solution", "remove-cell"} & set(_tags(c)) for c in s["cells"])
        assert sum("solution" in _tags(c) for c in i["cells"]) == n_solutions
        assert not any("remove-cell" in _tags(c) for c in i["cells"])
        # the exercises themselves stay in both
        n_ex = sum("exercise" in _tags(c) for c in original["cells"])
        assert sum("exercise" in _tags(c) for c in s["cells"]) == n_ex
        for nb in (s, i):
            assert nb["metadata"]["kernelspec"]["name"] == "python3"
            assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_handouts_refuse_a_cell_that_needs_a_hidden_one(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {"tags": ["remove-cell"]},
                "source": "x = 1",
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "print(x)",
                "outputs": [],
                "execution_count": None,
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    (folder / "01-broken.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match=r"01-broken.ipynb: the student handout would use \['x'\]"):
        course.make_handouts(folder, tmp_path / "out")


def test_cli_handouts(tmp_path, capsys):
    assert course.main(["handouts", "--lessons", str(TEACHING), "--out", str(tmp_path)]) == 0
    assert f"student: {len(LESSONS)} lessons" in capsys.readouterr().out
    assert (tmp_path / "instructor" / LESSONS[0].name).exists()


# ---------------------------------------------------------------- the site


def test_remote_assets_found():
    page = (
        '<script src="https://cdn.example.org/x.js"></script><link href="//fonts.example/a.css">'
        '<img src="data:image/png;base64,AA"><a href="https://doi.org/10.1">paper</a>'
    )
    assert len(course.remote_assets(page)) == 2


def test_student_page_has_no_solutions():
    nb = {
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {"tags": ["exercise"]},
                "source": "### Exercise 1.1 · X",
            },
            {
                "cell_type": "markdown",
                "metadata": {"tags": ["solution"]},
                "source": "SECRET answer",
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "1 + 1",
                "outputs": [],
                "execution_count": None,
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    student = course._lesson_html(nb, "x", "", solutions=False)
    teacher = course._lesson_html(nb, "x", "", solutions=True)
    assert "SECRET" not in student and "Exercise 1.1" in student
    assert "SECRET" in teacher and '<details class="course-solution">' in teacher
    assert '<details class="course-code">' in student
    assert not course.remote_assets(student)


@pytest.mark.slow
@pytest.mark.notebook
def test_book_builds_every_lesson_and_exercise(tmp_path):
    start = time.perf_counter()
    index = course.build_book(TEACHING, tmp_path / "book")
    print(f"book built in {time.perf_counter() - start:.1f} s")
    home = index.read_text(encoding="utf-8")
    assert not course.remote_assets(home)
    for lesson in LESSONS:
        outline = course.lesson_outline(lesson)
        page = (tmp_path / "book" / f"{lesson.stem}.html").read_text(encoding="utf-8")
        assert f'href="{lesson.stem}.html"' in home
        assert not course.remote_assets(page), lesson.name
        assert not re.search(r"<(script|link|img)\b[^>]*(src|href)=[\"']?https?:", page)
        assert '<details class="course-code">' in page  # code folded by default
        assert "<details open" not in page
        nb = _load(lesson)
        n_solutions = sum("solution" in _tags(c) for c in nb["cells"])
        assert page.count('<details class="course-solution">') == n_solutions
        for title in outline["exercises"]:
            assert title.split("·")[-1].strip() in page, title
            assert title.split("·")[-1].strip() in home, title
        # executed at build time: figures are embedded, and solution checks ran
        assert "data:image/png;base64," in page
        if n_solutions:
            assert (
                "solution check · " in page
                and ": no<" not in page.split("solution check")[-1][:200]
            )
        # the hidden checks never reach the page
        hidden = [c for c in nb["cells"] if "remove-cell" in _tags(c)]
        for cell in hidden:
            first = "".join(cell["source"]).strip().splitlines()[-1]
            assert first not in page
