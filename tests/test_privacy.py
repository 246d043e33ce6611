"""Pseudonyms are stable, keyed and irreversible-looking; small cells are suppressed."""

import hashlib
import hmac
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance_lib import privacy
from alliance_lib.errors import DefinitionError
from alliance_lib.privacy import (
    collision_free_length,
    pseudonym_length,
    pseudonymise,
    suppress_small_cells,
)


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


def test_length_grows_with_the_number_of_ids_by_the_birthday_bound():
    # expected colliding pairs n(n-1)/2 / 16**L <= 0.01: 8 digits to 9,268 ids, 12 to ~2.4M
    assert pseudonym_length(9_268) == 8 and pseudonym_length(9_269) == 12
    assert pseudonym_length(100_000) == 12 and pseudonym_length(2_372_656) == 12
    assert pseudonym_length(2_372_658) == 16 and pseudonym_length(20_000_000) == 16
    assert pseudonym_length(0) == 8
    for n in (9_268, 2_372_656, 600_000_000):
        length = pseudonym_length(n)
        assert n * (n - 1) / 2 / 16.0**length <= 0.01


def test_a_longer_pseudonym_starts_with_the_shorter_one():
    ids = pd.Series([f"P{i:05d}" for i in range(20_000)])
    short = pseudonymise(ids.iloc[:50], salt="secret-key")
    long = pseudonymise(ids, salt="secret-key")  # 20,000 ids: 12 digits by default
    assert short.str.len().eq(10).all() and long.str.len().eq(14).all()
    assert (long.iloc[:50].str[:10] == short).all()
    assert long.is_unique


def test_a_given_length_that_collides_is_an_error_naming_the_study_option():
    ids = pd.Series([f"P{i}" for i in range(3_000)])  # ~69 expected collisions in 4 digits
    with pytest.raises(DefinitionError, match="collide in 4 hex digits") as err:
        pseudonymise(ids, salt="secret-key", length=4)
    assert err.value.column == "privacy.pseudonym_length"
    with pytest.raises(DefinitionError, match="4 to 64"):
        pseudonymise(ids, salt="secret-key", length=80)


def test_a_collision_at_the_default_length_takes_the_next_length():
    same8 = ["0123abcd" + "0" * 56, "0123abcd" + "1" * 56, "ffffffff" + "2" * 56]
    assert privacy._free_length(same8) == 12
    assert privacy._free_length(same8, at_least=16) == 16
    with pytest.raises(DefinitionError):
        privacy._free_length(same8, 8)


def test_one_length_for_all_kinds_of_a_wave():
    clients = [f"C{i}" for i in range(10_000)] * 2
    assert collision_free_length([clients, ["T1", "T2"]], salt="secret-key") == 12
    assert collision_free_length([["a", None, ""], []], salt="secret-key") == 8


def test_suppression():
    t = pd.DataFrame(
        {"therapist": ["T-a", "T-b", "T-c"], "n_clients": [4, 5, 12], "rate": [0.1, 0.2, 0.3]}
    )
    s = suppress_small_cells(t, count="n_clients", threshold=5)
    assert s["suppressed"].tolist() == [True, False, False]
    assert np.isnan(s.loc[0, "rate"]) and s.loc[1, "rate"] == 0.2
    assert s.loc[0, "therapist"] is None and s.loc[0, "n_clients"] == 4


# --------------------------------------------------------------------------------------------
# the secret key


def _study(tmp_path, privacy: str = ""):
    from alliance_lib.study import load_study

    tmp_path = tmp_path / "study"
    tmp_path.mkdir(exist_ok=True)
    rows = "client_id,session,rater," + ",".join(f"wai_sr_{i}" for i in range(1, 13)) + "\n"
    for c in range(1, 41):
        rows += f"P{c:03d},1,client," + ",".join(["3"] * 12) + "\n"
    (tmp_path / "w1.csv").write_text(rows)
    (tmp_path / "study.yaml").write_text(
        "study: Small study\ndata: {1: w1.csv}\ninstruments: {alliance: wai-sr}\n" + privacy
    )
    return load_study(tmp_path / "study.yaml")


def test_without_a_configured_key_pseudonyms_cannot_be_recomputed_from_the_study(tmp_path):
    from alliance_lib.waves import prepare_wave

    study = _study(tmp_path)
    scored = prepare_wave(study, 1).scored
    raw = pd.Series([f"P{c:03d}" for c in range(1, 41)])
    shown = set(scored["client_id"])
    for guess in (study.slug, study.name, "Small study", "small", (tmp_path / "study.yaml").name):
        assert not shown & set(pseudonymise(raw, salt=guess)), guess
    key = study.pseudonym_key
    assert key.created and "configuration folder" in key.source
    assert set(pseudonymise(raw, salt=key.key)) == shown  # the key file does reproduce them
    key_path = next(Path(os.environ["ALLIANCE_KEY_DIR"]).glob(f"{study.slug}.key"))
    assert not key_path.is_relative_to(tmp_path), "the key file sits in the study folder"
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert key.key not in repr(key) and key.key not in repr(study)


def test_refuses_without_a_key_when_asked_not_to_create_one(tmp_path):
    from alliance_lib.errors import DefinitionError
    from alliance_lib.privacy import resolve_key

    study = _study(tmp_path)
    with pytest.raises(DefinitionError, match="no pseudonym key") as err:
        resolve_key(study, create=False, env={"ALLIANCE_KEY_DIR": str(tmp_path / "none")})
    assert "ALLIANCE_SALT" in err.value.hint and "alliance key" in err.value.hint


def test_key_sources_in_order(tmp_path, monkeypatch):
    from alliance_lib.privacy import create_key_file, resolve_key

    key_file = create_key_file(tmp_path / "elsewhere" / "k.key")
    study = _study(tmp_path, f"privacy: {{key_file: {key_file}}}\n")
    assert resolve_key(study, env={}).key == key_file.read_text().strip()
    assert resolve_key(study, env={"ALLIANCE_SALT": "from-the-env"}).key == "from-the-env"
    assert "ALLIANCE_SALT" in resolve_key(study, env={"ALLIANCE_SALT": "x" * 8}).source
    with pytest.raises(Exception, match="never overwritten"):
        create_key_file(key_file)


def test_warns_when_git_tracks_the_key(tmp_path):
    import shutil
    import subprocess

    from alliance_lib.privacy import PrivacyWarning, resolve_key

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    study = _study(tmp_path, "privacy: {salt: a-long-enough-secret}\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "study", check=True)
    subprocess.run(["git", "add", "study.yaml"], cwd=tmp_path / "study", check=True)
    with pytest.warns(PrivacyWarning, match="git tracks"):
        key = resolve_key(study, env={})
    assert key.warnings and key.source == "privacy.salt in study.yaml"


def test_a_short_salt_is_refused(tmp_path):
    from alliance_lib.study import StudyError

    with pytest.raises(StudyError, match="privacy.salt"):
        _study(tmp_path, "privacy: {salt: abc}\n")
