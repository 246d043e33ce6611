"""cross_lagged_section on the demo study (wave 3)."""

import json
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from alliance_lib import fit_cross_lagged
from alliance_lib.sections.base import FORMATS, Section
from alliance_lib.sections.cross_lagged import cross_lagged_section
from alliance_lib.study import load_study
from alliance_lib.waves import prepare_wave

STUDY = Path(__file__).resolve().parents[1] / "data" / "demo" / "study.yaml"


@cache
def _wave():
    return prepare_wave(load_study(STUDY), 3)


@cache
def _section():
    return cross_lagged_section(_wave())


def test_section_reports_the_riclpm_as_primary_with_sensitivity_and_descriptive_lines():
    sec = _section()
    assert isinstance(sec, Section) and sec.applies
    table = sec.tables[0].data
    assert table["Model"].tolist() == [
        "RI-CLPM (primary)",
        "ML-SEM, alliance predetermined",
        "RI-CLPM + client slopes (LCM-SR)",
        "RI-CLPM with lag-2 paths",
        "Multilevel model (descriptive; biased under dynamics)",
    ]
    assert set(sec.tables[0].formats.values()) <= set(FORMATS)
    # the primary line is the fit itself
    direct = fit_cross_lagged(_wave().sessions(), "alliance", "outcome")
    b = direct.effects.loc["alliance -> outcome", "estimate"]
    assert table.loc[0, "Alliance → outcome"] == pytest.approx(b, rel=1e-8)
    assert sec.numbers["primary"]["effects"]["alliance -> outcome"]["estimate"] == pytest.approx(b)
    # demo study: true within effect -6, attenuated by item measurement error; clearly negative
    assert -6.5 < b < -2.0
    assert sec.numbers["primary"]["waves"][0] == 1


def test_section_text_numbers_and_json():
    sec = _section()
    json.dumps(sec.numbers)
    text = " ".join(sec.sentences)
    assert "random-intercept cross-lagged panel model" in text
    assert "reverse path" in text and "long-run effect" in text
    assert "descriptive multilevel model" in text
    assert sec.summary.startswith("Within clients")
    assert "Hamaker" in sec.methods and any("Allison" in r for r in sec.references)
    assert sec.numbers["multilevel_descriptive"]["warnings"]
    assert "RIa =~" in sec.numbers["primary_lavaan_syntax"]
    # no raw ids in the numbers
    assert "C-" not in json.dumps(sec.numbers)


def test_section_skips_without_outcome():
    w = _wave()
    sec = cross_lagged_section(type(w)(**{**w.__dict__, "outcome": None}))
    assert not sec.applies and "outcome" in sec.not_applicable


def test_section_reads_the_client_rows_of_the_session_table():
    from alliance_lib.sections.cross_lagged import _session_scores

    wave = _wave()
    full = wave.sessions().astype({"client_id": object})  # (categorical there)
    full = full[full["alliance"].notna() | full["outcome"].notna()].reset_index(drop=True)
    lean = _session_scores(wave)
    cols = ["client_id", "session", "alliance", "outcome"]
    pd.testing.assert_frame_equal(lean, full[cols])
