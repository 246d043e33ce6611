"""`alliance init`: a draft study YAML from file headers, every guess marked for review, which
loads as it is and, on the intake examples, gives the curated YAML's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

import alliance_lib as al
from alliance_lib.cli import main
from alliance_lib.init_study import draft_study, write_draft

INTAKE = Path(__file__).resolve().parent / "data" / "intake"


def _copy(folder: Path, tmp_path: Path, names=None) -> list[Path]:
    out = []
    for f in sorted(folder.iterdir()):
        if f.suffix in (".csv", ".sav") and (names is None or f.name in names):
            (tmp_path / f.name).write_bytes(f.read_bytes())
            out.append(tmp_path / f.name)
    return out


def test_every_guess_is_marked_for_review(tmp_path):
    files = _copy(INTAKE / "multi_file", tmp_path)
    text = draft_study(files, name="Trial")
    guesses = [
        line
        for line in text.splitlines()
        if line.strip().startswith(("columns:", "rater", "level:", "session_", "items:", "date_"))
        or line.startswith(("  alliance:", "  outcome:"))
    ]
    assert guesses and all("# REVIEW" in line for line in guesses)
    assert "session_offset: -1" in text  # numbered by appointment
    assert 'match: "alliance_therapist.csv", within_days: 3' in text
    assert "level: client" in text and "rater_id: coder" in text


def test_draft_of_the_multi_file_trial_loads_and_matches(tmp_path):
    files = _copy(INTAKE / "multi_file", tmp_path)
    out = write_draft(files, tmp_path / "draft.yaml", name="Multi-file alliance trial")
    draft = al.prepare_wave(al.load_study(out), 1)
    curated = al.prepare_wave(al.load_study(INTAKE / "multi_file" / "study.yaml"), 1)
    assert draft.sources[["source", "rows_in", "analysed"]].sort_values(
        "source"
    ).to_numpy().tolist() == (
        curated.sources[["source", "rows_in", "analysed"]].sort_values("source").to_numpy().tolist()
    )
    keys = ["session", "rater"]
    a = draft.scored.groupby(keys)["wai_sr_total"].mean()
    b = curated.scored.groupby(keys)["wai_sr_total"].mean()
    assert (a - b).abs().max() < 1e-12
    with pytest.raises(al.DefinitionError, match="exists already"):
        write_draft(files, out)


@pytest.mark.parametrize(
    ("folder", "names", "expect"),
    [
        ("qualtrics", ["qualtrics_wai_sr.csv"], 'items: {wai-sr: "Q2_{n}"}'),
        ("spss", None, 'pattern: "{column}_s{session}"'),
        ("redcap", ["redcap_repeating_raw.csv"], "session_from: {date: session_date}"),
        (
            "redcap",
            ["redcap_longitudinal_raw.csv", "redcap_data_dictionary.csv"],
            'dictionary: "redcap_data_dictionary.csv"',
        ),
        ("routine_systems", ["oq_analyst_like_HYPOTHETICAL.csv"], 'date_format: "%m/%d/%Y"'),
    ],
)
def test_drafts_of_the_other_examples_load(tmp_path, folder, names, expect):
    files = _copy(INTAKE / folder, tmp_path, names)
    out = write_draft(files, tmp_path / "draft.yaml")
    assert expect in out.read_text()
    w = al.prepare_wave(al.load_study(out), 1)
    assert (w.sources["rows_in"] == w.sources["analysed"] + w.sources["quarantined"]).all()
    assert len(w.scored) > 0


def test_cli_init_prints_or_writes(tmp_path, capsys):
    files = _copy(INTAKE / "qualtrics", tmp_path, ["qualtrics_wai_sr.csv"])
    assert main(["init", str(files[0])]) == 0
    assert "# REVIEW" in capsys.readouterr().out
    assert main(["init", str(files[0]), "-o", str(tmp_path / "s.yaml")]) == 0
    assert "check every line marked REVIEW" in capsys.readouterr().out
    assert main(["init", str(files[0]), "-o", str(tmp_path / "s.yaml")]) == 2
