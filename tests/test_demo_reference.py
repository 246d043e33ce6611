"""The demo study's alliance growth models against lme4 + lmerTest (tests/reference/lme4_demo.R).

# R: lmer(alliance ~ session + (session | client_id) [+ (1 | therapist_id)], REML = TRUE / FALSE)
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "reference" / "fixtures"
REFERENCE = json.loads((FIXTURES / "lme4_demo.json").read_text())
SESSIONS = pd.read_csv(
    FIXTURES / "demo_sessions.csv", dtype={"client_id": str, "therapist_id": str}
)
# lme4_demo.R fits uncentred session; fit_trajectory centres at the first alliance session unless
# time_zero is given
MODELS = {
    "two_level": {"time_zero": 0},
    "three_level": {"therapist": "therapist_id", "time_zero": 0},
    "three_level_ml": {"therapist": "therapist_id", "method": "ml", "time_zero": 0},
}


def test_fixture_is_the_demo_pipeline_output():
    # Guards the link between the R fixture and the demo data: the session table R fitted is the
    # one prepare_wave gives today (read, validate, score, pseudonymise).
    study = al.load_study(ROOT / "data" / "demo" / "study.yaml")
    now = al.prepare_wave(study, 3).sessions()
    ids = ["client_id", "therapist_id"]
    assert all(isinstance(now[c].dtype, pd.CategoricalDtype) for c in ids)  # codes, not text
    pd.testing.assert_frame_equal(
        now.astype(dict.fromkeys(ids, str)).reset_index(drop=True),
        SESSIONS,
        check_dtype=False,
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_matches_lme4(name):
    ref = REFERENCE["models"][name]
    fit = al.fit_trajectory(SESSIONS, "alliance", **MODELS[name])
    fixed = pd.DataFrame(ref["fixed"])
    np.testing.assert_allclose(fit.fixed["estimate"], fixed["estimate"], rtol=1e-5)
    np.testing.assert_allclose(fit.fixed["se"], fixed["se"], rtol=1e-3)
    np.testing.assert_allclose(fit.fixed["df"], fixed["df"], rtol=1e-3)
    np.testing.assert_allclose(fit.fixed["p"], fixed["p"], rtol=1e-3)
    random = pd.DataFrame(ref["random"])
    np.testing.assert_allclose(fit.random["sdcor"], random["sdcor"], atol=1e-3)
    assert list(fit.random["grp"]) == list(random["grp"])
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    assert fit.nobs == ref["nobs"]
    assert fit.singular == ref["singular"]
