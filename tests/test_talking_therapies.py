"""NHS Talking Therapies definitions, checked on hand-computed cases at every boundary."""

import pandas as pd
import pytest

import alliance_lib.talking_therapies as tt
from alliance_lib.errors import DataError


def test_caseness_thresholds_are_inclusive():
    # PHQ-9 >= 10 or GAD-7 >= 8 (not Spitzer's GAD-7 cutoff of 10)
    assert bool(tt.caseness(10, 0)) is True
    assert bool(tt.caseness(9, 7)) is False
    assert bool(tt.caseness(9, 8)) is True
    assert tt.caseness([9], [None]).isna().all()


def test_reliable_improvement_hand_cases():
    # pre/post PHQ, pre/post GAD -> expected (hand-computed)
    cases = [
        ((15, 9, 6, 6), True),  # PHQ -6 exactly
        ((15, 10, 6, 6), False),  # PHQ -5
        ((8, 8, 12, 8), True),  # GAD -4 exactly
        ((8, 8, 12, 9), False),  # GAD -3
        ((15, 5, 6, 10), False),  # PHQ -10 but GAD +4: reliable deterioration on the other
        ((15, 5, 6, 9), True),  # GAD +3 is not reliable
    ]
    for args, expected in cases:
        assert bool(tt.reliable_improvement(*args)) is expected, args


def test_reliable_deterioration_hand_cases():
    assert bool(tt.reliable_deterioration(5, 11, 3, 3)) is True
    assert bool(tt.reliable_deterioration(5, 10, 3, 6)) is False
    assert bool(tt.reliable_deterioration(5, 5, 3, 7)) is True
    # worse on one, reliably better on the other: neither improvement nor deterioration
    assert bool(tt.reliable_deterioration(5, 11, 12, 8)) is False
    assert bool(tt.reliable_improvement(5, 11, 12, 8)) is False


def test_recovery_and_reliable_recovery_golden():
    # rom-feedback.md 5.4 (7): with the other measure below caseness throughout,
    # PHQ 15 -> 8 = reliable recovery; GAD 9 -> 7 = recovery, not reliable (-2 < 4).
    assert bool(tt.recovery(15, 8, 5, 5)) and bool(tt.reliable_recovery(15, 8, 5, 5))
    assert bool(tt.recovery(5, 5, 9, 7)) is True
    assert bool(tt.reliable_recovery(5, 5, 9, 7)) is False
    # not a case at the start: recovery does not apply
    assert tt.recovery([9], [3], [7], [2]).isna().all()
    assert tt.reliable_recovery([9], [3], [7], [2]).isna().all()
    # still a case at the end on the other measure
    assert bool(tt.recovery(15, 8, 9, 8)) is False


def test_outcomes_table_first_and_last_paired_scores():
    d = pd.DataFrame(
        {
            "client_id": ["a"] * 4 + ["b"] * 3,
            "session": [0, 1, 2, 3, 0, 1, 2],
            "phq9_total": [16, 12, None, 9, 12, 12, 13],
            "gad7_total": [9, 8, 4, 7, 5, 5, 6],
        }
    )
    out = tt.talking_therapies_outcomes(d)
    a = out.loc["a"]
    assert (a["first_session"], a["last_session"], a["n_sessions"]) == (0, 3, 3)
    assert a[["phq9_start", "phq9_end", "gad7_start", "gad7_end"]].tolist() == [16, 9, 9, 7]
    assert bool(a["reliable_improvement"]) and bool(a["recovery"]) and bool(a["reliable_recovery"])
    assert bool(a["finished_treatment"])
    b = out.loc["b"]
    assert not bool(b["reliable_improvement"]) and not bool(b["recovery"])
    assert not bool(b["reliable_deterioration"])


def test_bad_input_names_the_column():
    with pytest.raises(DataError, match="gad7_total"):
        tt.talking_therapies_outcomes(
            pd.DataFrame({"client_id": [], "session": [], "phq9_total": []})
        )
    with pytest.raises(DataError):
        tt.caseness(["x"], [3])
