"""Study YAML: loads the demo; bad input gives a message naming the file, the key and the fix."""

import re
from pathlib import Path

import pytest

from alliance_lib.study import StudyError, load_study

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "study.yaml"

VALID = """
study: Tiny study
data: {1: w1.csv}
columns: {client: client_id, session: session}
instruments: {alliance: wai-sr}
"""


def _write(tmp_path, text, data=True):
    if data:
        (tmp_path / "w1.csv").write_text("client_id,session\nA,1\n")
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_demo_study_loads():
    s = load_study(DEMO)
    assert s.name == "Demo alliance study" and s.slug == "demo"
    assert s.waves == [1, 2, 3]
    assert all(p.is_file() for p in s.data.values())
    assert s.missing_codes == (-99, 999)
    assert s.instruments == {"alliance": "wai-sr", "outcome": "oq-45.2"}
    assert s.small_cell == 5


def test_minimal_study_gets_defaults(tmp_path):
    s = load_study(_write(tmp_path, VALID))
    assert s.slug == "tiny"
    assert s.analysis["trajectory_shape"] == "linear"
    assert s.columns["therapist"] is None
    assert s.data[1] == (tmp_path / "w1.csv").resolve()


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (VALID.replace("study: Tiny study\n", ""), "study", "expected the study's name"),
        (
            VALID.replace("wai-sr", "wai-xyz"),
            "instruments.alliance",
            "unknown instrument 'wai-xyz'",
        ),
        (VALID.replace("w1.csv", "nope.csv"), "data", "does not exist"),
        (VALID + "colour: blue\n", "colour", "unknown key"),
        (VALID + "analysis: {trajectory_shape: cubic}\n", "analysis.trajectory_shape", "cubic"),
        (VALID + "analysis: {trajectory_shape: piecewise}\n", "analysis.knot", "knot"),
        (VALID + "missing_codes: [-99, [1]]\n", "missing_codes", "list of numbers or text"),
        (VALID + "privacy: {small_cell: 0}\n", "privacy.small_cell", ">= 1"),
        (VALID.replace("{1: w1.csv}", "{first: w1.csv}"), "data", "whole number"),
        (VALID.replace("client: client_id", "patient: client_id"), "columns", "unknown role"),
    ],
)
def test_bad_study_names_file_key_and_problem(tmp_path, text, key, message):
    path = _write(tmp_path, text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert err.value.key == key
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(StudyError, match="file not found"):
        load_study(tmp_path / "absent.yaml")


def test_unreadable_yaml_names_line(tmp_path):
    path = _write(tmp_path, "study: x\ndata: {1: [unclosed\n")
    with pytest.raises(StudyError, match=r"not valid YAML at line \d+"):
        load_study(path)


def test_unknown_wave(tmp_path):
    s = load_study(_write(tmp_path, VALID))
    with pytest.raises(StudyError, match=r"wave 4 is not defined; defined waves: \[1\]"):
        s.wave_file(4)


SOURCES = """
study: Sources study
waves:
  1:
    cutoff: 2026-03-31
    sources:
      - {file: demo.csv, level: client, columns: {client: Client ID}}
      - file: a.csv
        items: {wai-sr: "wai_{n}"}
        date_format: "%d/%m/%Y"
        session_from: {date: completed_on, match: b.csv, within_days: 3}
      - {file: b.csv, rater: therapist, columns: {session: session, date: date}}
      - {file: o.csv, rater: observer, rater_id: coder, combine: keep}
      - {file: w.sav, layout: wide, pattern: "wai{n}_s{session}"}
      - {redcap: r.csv, dictionary: dd.csv, session_from: event, intake_events: [intake]}
      - {qualtrics: q.csv, responses: all, columns: {client: Q1, session: sess}}
missing_codes: [-99, NASK]
instruments: {alliance: wai-sr, outcome: {id: phq-9, total: phq9_total}}
"""


def _sources(tmp_path, text=SOURCES):
    for name in ("demo.csv", "a.csv", "b.csv", "o.csv", "w.sav", "r.csv", "dd.csv", "q.csv"):
        (tmp_path / name).write_text("x\n")
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_sources_form_parses(tmp_path):
    s = load_study(_sources(tmp_path))
    assert s.waves == [1] and s.data == {}
    src = s.sources[1]
    assert [x.kind for x in src] == ["file"] * 5 + ["redcap", "qualtrics"]
    assert src[0].level == "client" and src[0].columns == {"client": "Client ID"}
    assert src[1].items == {"wai-sr": "wai_{n}"} and src[1].session_from["within_days"] == 3
    assert src[3].combine == "keep" and src[3].rater_id == "coder"
    assert src[4].pattern == ("wai{n}_s{session}",)
    assert src[5].options["intake_events"] == ("intake",)
    assert src[6].options["responses"] == "all"
    assert s.cutoffs[1].isoformat() == "2026-03-31"
    assert s.missing_codes == (-99, "NASK")
    assert s.instruments == {"alliance": "wai-sr", "outcome": "phq-9"}
    assert s.totals == {"outcome": "phq9_total"}
    files = [p.name for p in s.wave_files(1)]
    assert files == ["demo.csv", "a.csv", "b.csv", "o.csv", "w.sav", "r.csv", "dd.csv", "q.csv"]
    with pytest.raises(StudyError, match="read from 7 sources"):
        s.wave_file(1)


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("level: client", "level: clients", "waves.1.sources[0].level", "session or client"),
        ("combine: keep", "combine: median", "waves.1.sources[3].combine", "mean or keep"),
        ("rater: observer", "rater: supervisor", "waves.1.sources[3].rater", "interpreter"),
        ('"wai_{n}"', '"wai_"', "waves.1.sources[1].items", "pattern with {n}"),
        ("match: b.csv", "match: c.csv", "waves.1.sources[1].session_from.match", "not a source"),
        (
            'pattern: "wai{n}_s{session}"',
            'pattern: "wai_s{session}"',
            "waves.1.sources[4].pattern",
            "{session}",
        ),
        ("responses: all", "responses: some", "waves.1.sources[6].responses", "finished or all"),
        (
            "{file: o.csv,",
            "{file: o.csv, colour: red,",
            "waves.1.sources[3].colour",
            "unknown source key",
        ),
        (
            "{file: o.csv,",
            "{file: o.csv, dictionary: dd.csv,",
            "waves.1.sources[3].dictionary",
            "applies to redcap:",
        ),
        ("{file: o.csv,", "{redcap: r.csv, file: o.csv,", "waves.1.sources[3]", "exactly one of"),
        ("cutoff: 2026-03-31", "cutoff: soon", "waves.1.cutoff", "a date"),
        ("demo.csv, level", "nothere.csv, level", "waves.1.sources[0].file", "does not exist"),
        (
            "rater_id: coder, combine: keep",
            "combine: keep",
            "waves.1.sources[3].combine",
            "rater_id",
        ),
        ("total: phq9_total}", "total: 3}", "instruments.outcome", "pre-scored"),
    ],
)
def test_bad_source_names_file_key_and_problem(tmp_path, old, new, key, message):
    assert old in SOURCES
    path = _sources(tmp_path, SOURCES.replace(old, new))
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert err.value.key == key
    assert message in str(err.value)


def test_wide_needs_a_pattern(tmp_path):
    path = _sources(tmp_path, SOURCES.replace(', pattern: "wai{n}_s{session}"', ""))
    with pytest.raises(StudyError, match="layout: wide needs a pattern"):
        load_study(path)


def test_therapist_alliance_needs_a_therapist_source(tmp_path):
    text = SOURCES.replace("rater: therapist, ", "") + "therapist_alliance: true\n"
    with pytest.raises(StudyError, match="no source with rater: therapist"):
        load_study(_sources(tmp_path, text))


def test_demo_wave_files():
    s = load_study(DEMO)
    assert s.wave_files(3) == [s.data[3]]


DESIGN_EXAMPLE = """study: Clinic alliance study
waves:
  1:
    cutoff: 2026-03-31                  # optional: data up to this date
    sources:
      - file: demographics.csv          # csv, tsv, xlsx, sav, parquet file or parquet folder
        level: client                   # one row per client, carried to every session row
        columns: {client: "Client ID", therapist: clinician}
      - file: alliance_client.csv
        rater: client                   # client | therapist | observer | interpreter
        items: {wai-sr: "wai_{n}"}      # item columns of an instrument; {n} = item number
        columns: {client: client_id, date: completed_on}
        date_format: "%d/%m/%Y"
        session_from: {date: completed_on, match: alliance_therapist.csv, within_days: 3}
      - file: alliance_therapist.csv
        rater: therapist
      - file: alliance_observer.csv
        rater: observer
        rater_id: coder                 # several raters of one role
        combine: mean                   # or keep (one row per rater; inter-coder ICC)
      - file: outcome.csv
        columns: {session: appointment}
        session_offset: -1              # appointment 1 = assessment = session 0
      - redcap: export.csv              # REDCap "CSV (raw data)" export
        dictionary: dictionary.csv      # optional data dictionary
        session_from: event             # event | instance | {date: session_date}
        event_session: 'session_(\\d+)'  # event name -> session number; intake_events -> 0
        intake_events: [intake]
      - qualtrics: responses.csv
        responses: finished             # finished | all
      - file: wide.sav
        layout: wide
        pattern: "wai{n}_s{session}"     # one row per client -> long
missing_codes: [-99, NASK, UNK]         # numbers or text; a .sav's declared codes are added
instruments:
  alliance: wai-sr
  outcome: {id: phq-9, total: phq9_total}   # a pre-scored total column instead of items
"""


def test_design_md_sources_example_parses(tmp_path):
    """The example of DESIGN.md, "Study YAML: sources", verbatim (key names are fixed there)."""
    names = re.findall(r"(?:file|redcap|qualtrics|dictionary): ([\w.]+)", DESIGN_EXAMPLE)
    for name in names:
        (tmp_path / name).write_text("x\n")
    path = tmp_path / "study.yaml"
    path.write_text(DESIGN_EXAMPLE)
    s = load_study(path)
    kinds = [src.kind for src in s.sources[1]]
    assert kinds == ["file"] * 5 + ["redcap", "qualtrics", "file"]
    assert s.sources[1][4].session_offset == -1 and s.sources[1][7].layout == "wide"
    assert s.missing_codes == (-99, "NASK", "UNK") and s.totals == {"outcome": "phq9_total"}
    assert [p.name for p in s.wave_files(1)] == list(dict.fromkeys(names))
