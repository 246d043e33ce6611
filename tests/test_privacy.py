"""Pseudonyms are stable, keyed and irreversible-looking; small cells are suppressed."""

import hashlib
import hmac

import numpy as np
import pandas as pd

from alliance_lib.privacy import pseudonymise, suppress_small_cells


def test_pseudonym_is_hmac_sha256_of_the_id():
    expected = "C-" + hmac.new(b"salt", b"CL-0042", hashlib.sha256).hexdigest()[:8]
    assert pseudonymise(pd.Series(["CL-0042"]), salt="salt").iloc[0] == expected


def test_stable_across_waves_and_salt_dependent():
    wave1 = pseudonymise(pd.Series(["007", "A"]), salt="s1")
    wave2 = pseudonymise(pd.Series(["B", "007", "A"]), salt="s1")
    assert wave1.iloc[0] == wave2.iloc[1] and wave1.iloc[1] == wave2.iloc[2]
    other = pseudonymise(pd.Series(["007"]), salt="s2")
    assert other.iloc[0] != wave1.iloc[0]


def test_leading_zeros_matter_and_missing_stays_missing():
    p = pseudonymise(pd.Series(["007", "7", None]), salt="k", prefix="T")
    assert p.iloc[0] != p.iloc[1]
    assert p.iloc[2] is None
    assert p.iloc[0].startswith("T-")


def test_suppression():
    t = pd.DataFrame(
        {"therapist": ["T-a", "T-b", "T-c"], "n_clients": [4, 5, 12], "rate": [0.1, 0.2, 0.3]}
    )
    s = suppress_small_cells(t, count="n_clients", threshold=5)
    assert s["suppressed"].tolist() == [True, False, False]
    assert np.isnan(s.loc[0, "rate"]) and s.loc[1, "rate"] == 0.2
    assert s.loc[0, "therapist"] is None and s.loc[0, "n_clients"] == 4
