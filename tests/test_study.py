"""Study YAML: loads the demo; bad input gives a message naming the file, the key and the fix."""

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
        (VALID + "missing_codes: [-99, n/a]\n", "missing_codes", "list of numbers"),
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
