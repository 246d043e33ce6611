"""Tests for alliance_lib.ruptures against hand-built series (arithmetic in the comments).

Every expected value below is worked out by hand from the rule in methods.md section 4 (client
mean and n - 1 SD across the client's observed sessions; Stiles 2 SD, Strauss 1 SD, Gumz 1 SD of
the larger of the within- and between-client SD), not taken from our own output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import alliance_lib as al
from alliance_lib.change import ChangeInputError
from alliance_lib.errors import MissingColumnsError

NA = np.nan


def long(**clients) -> pd.DataFrame:
    """Long data from client=[scores...] (sessions 1..n; NaN -> absent row)."""
    frames = [
        pd.DataFrame({"client_id": c, "session": np.arange(1, len(v) + 1), "wai": v})
        for c, v in clients.items()
    ]
    return pd.concat(frames).dropna(subset=["wai"]).reset_index(drop=True)


FLAT = [4.0] * 8
# mean 37/8 = 4.625; SS = 7 * 0.375^2 + 2.625^2 = 7.875; SD = sqrt(7.875/7) = 1.0606602
V = [5.0, 5, 5, 5, 2, 5, 5, 5]
# mean 34/8 = 4.25; SS = 5 * .75^2 + .25^2 + 1.25^2 + 2.25^2 = 9.5; SD = sqrt(9.5/7) = 1.1649647
DECLINE = [5.0, 5, 5, 4, 3, 2, 5, 5]
# mean 4.4; SS = 6 * .6^2 + 2.4^2 + 3 * .4^2 = 8.4; SD = sqrt(8.4/9) = 0.9660918
NO_RETURN = [5.0, 5, 5, 5, 2, 4, 4, 4, 5, 5]


@pytest.mark.parametrize("preset", ["stiles", "strauss", "gumz"])
def test_flat_series_has_no_rupture_and_no_error(preset):
    df = long(a=FLAT, b=[3.0] * 8)  # gumz needs 2 clients for the between-client SD
    assert al.ruptures(df, "wai", preset=preset).empty
    pat = al.rupture_patterns(df, "wai", preset=preset)
    assert pat["pattern"].tolist() == ["no rupture", "no rupture"]


@pytest.mark.parametrize("preset", ["stiles", "strauss", "gumz"])
def test_single_v(preset):
    # drop at session 5: 4.625 - 2 = 2.625 >= 2 * 1.0607 = 2.121 (Stiles) and >= 1.0607 (Strauss);
    # Gumz: between SD of means 4.625 and 4 = 0.625 / sqrt(2) = 0.442 < 1.0607, so 1 * 1.0607.
    ep = al.ruptures(long(v=V, f=FLAT), "wai", preset=preset)
    assert len(ep) == 1
    row = ep.iloc[0]
    assert row["client_id"] == "v"
    assert (row["rupture_session"], row["end_session"], row["length"]) == (5, 5, 1)
    assert row["reference"] == pytest.approx(4.625)
    assert row["sd"] == pytest.approx(1.0606602, rel=1e-7)
    assert row["depth_points"] == pytest.approx(2.625)
    assert row["depth_sd"] == pytest.approx(2.625 / 1.0606602, rel=1e-7)
    assert bool(row["repaired"]) and row["repair_session"] == 6
    assert row["sessions_to_repair"] == 1 and not row["censored"]


def test_multi_session_decline_with_sudden_repair():
    # Strauss 1 SD = 1.165: drops 0.25 (s4, no), 1.25 (s5), 2.25 (s6) -> one episode s5-s6
    ep = al.ruptures(long(d=DECLINE), "wai", preset="strauss")
    assert len(ep) == 1
    row = ep.iloc[0]
    assert (row["rupture_session"], row["end_session"], row["length"]) == (5, 6, 2)
    assert row["lowest_score"] == 2 and row["depth_points"] == pytest.approx(2.25)
    assert row["threshold_points"] == pytest.approx(1.1649647, rel=1e-7)
    assert bool(row["repaired"]) and row["repair_session"] == 7  # 5 >= 4.25
    # Stiles 2 SD = 2.33 > 2.25: no rupture at all
    assert al.ruptures(long(d=DECLINE), "wai", preset="stiles").empty


@pytest.mark.parametrize("preset", ["stiles", "strauss"])
def test_drop_with_no_return_within_the_window(preset):
    # s5 drop 2.4 >= 2 * 0.966 = 1.932 (and 0.966); s6-s8 (4.0) drop only 0.4 and stay below
    # the reference 4.4; the return at s9 is 4 sessions after s5: outside the default window 3.
    ep = al.ruptures(long(n=NO_RETURN), "wai", preset=preset)
    assert ep["rupture_session"].tolist() == [5]
    assert ep["sd"].iloc[0] == pytest.approx(0.9660918, rel=1e-7)
    assert not ep["repaired"].iloc[0] and pd.isna(ep["repair_session"].iloc[0])
    assert not ep["censored"].iloc[0]  # s6-s8 were observed
    assert al.rupture_patterns(long(n=NO_RETURN), "wai", preset=preset)["pattern"].tolist() == [
        "unrepaired"
    ]
    wider = al.ruptures(long(n=NO_RETURN), "wai", preset=preset, repair_within=4)
    assert wider["repaired"].iloc[0] and wider["repair_session"].iloc[0] == 9
    anytime = al.ruptures(long(n=NO_RETURN), "wai", preset=preset, repair_within=None)
    assert anytime["repair_session"].iloc[0] == 9


def test_drop_at_the_end_is_censored_and_level_shift_needs_prior_mean():
    # 5 x 6 then 2, 2: client mean 4.5, SD sqrt(14/7) = 1.4142; Strauss: drops 2.5 at s7, s8
    s = [5.0] * 6 + [2.0, 2.0]
    ep = al.ruptures(long(e=s), "wai", preset="strauss")
    assert ep[["rupture_session", "length"]].values.tolist() == [[7, 2]]
    assert not ep["repaired"].iloc[0] and ep["censored"].iloc[0]
    # Stiles with the client mean: 2.5 < 2.83, nothing; with the prior mean: s7 drop 5 - 2 = 3
    # >= 2.83; s8 prior mean 32/7 = 4.571, drop 2.571 < 2.83
    assert al.ruptures(long(e=s), "wai", preset="stiles").empty
    prior = al.ruptures(long(e=s), "wai", preset="stiles", reference="prior_mean")
    assert prior[["rupture_session", "length"]].values.tolist() == [[7, 1]]
    assert prior["reference"].iloc[0] == 5 and prior["depth_points"].iloc[0] == 3
    assert not prior["repaired"].iloc[0]


def test_prior_mean_needs_min_prior_sessions():
    # first session cannot be a rupture; with min_prior=2 neither can the second
    s = [5.0, 1.0, 5, 5, 5, 5]
    # SD: mean 26/6 = 4.333, SS = 5 * .6667^2 + 3.3333^2 = 13.333, SD = 1.633
    assert al.ruptures(long(p=s), "wai", reference="prior_mean").empty
    ep = al.ruptures(long(p=s), "wai", reference="prior_mean", min_prior=1)
    assert ep["rupture_session"].tolist() == [2]  # drop 4 >= 2 * 1.633


def test_missing_session_splits_an_episode():
    # s5 absent: mean 29/7 = 4.142857, SS = 5 * .857143^2 + 2 * 2.142857^2 = 12.857143,
    # SD = sqrt(12.857143/6) = 1.463850; Strauss: s4 and s6 (drop 2.142857) flagged
    s = [5.0, 5, 5, 2, NA, 2, 5, 5]
    ep = al.ruptures(long(m=s), "wai", preset="strauss")
    assert ep["rupture_session"].tolist() == [4, 6]
    assert ep["length"].tolist() == [1, 1]
    assert ep["sd"].iloc[0] == pytest.approx(1.463850, rel=1e-6)
    # the first episode's window (s5 missing, s6 = 2, s7 = 5) is repaired at s7
    assert ep["repair_session"].tolist() == [7, 7]
    assert ep["sessions_to_repair"].tolist() == [3, 1]
    # the same series without the gap is one episode of length 3
    full = al.ruptures(long(m=[5.0, 5, 5, 2, 2, 2, 5, 5]), "wai", preset="strauss")
    assert full[["rupture_session", "length"]].values.tolist() == [[4, 3]]


def test_min_drop_keeps_noise_in_a_stable_series_out():
    # mean 4.0125, SS = 4 * .0125^2 + 3 * .0875^2 + .2125^2 = 0.06875, SD = 0.099103;
    # drop at s8 = 0.2125 >= 2 * 0.0991: a "rupture" of a fifth of a point without a floor.
    s = [4.0, 4.1, 4.0, 4.1, 4.0, 4.1, 4.0, 3.8]
    ep = al.ruptures(long(s=s), "wai", preset="stiles")
    assert ep["rupture_session"].tolist() == [8]
    assert ep["sd"].iloc[0] == pytest.approx(0.099103, rel=1e-5)
    assert al.ruptures(long(s=s), "wai", preset="stiles", min_drop=0.5).empty
    assert len(al.ruptures(long(s=s), "wai", preset="stiles", min_drop=0.21)) == 1
    assert al.ruptures(long(s=s), "wai", preset="stiles", min_drop=0.22).empty
    # the floor is inclusive (binary-exact numbers: the V drop is 4.625 - 2 = 2.625)
    assert len(al.ruptures(long(v=V), "wai", min_drop=2.625)) == 1
    assert al.ruptures(long(v=V), "wai", min_drop=2.6251).empty


def test_gumz_uses_the_stricter_sd():
    # a: mean 4.875, SS = 7 * .125^2 + .875^2 = .875, SD = sqrt(.125) = 0.35355; drop .875
    # b: flat at 2. Between-client SD = (4.875 - 2) / sqrt(2) = 2.03293 -> Gumz threshold 2.03
    df = long(a=[5.0, 5, 5, 5, 4, 5, 5, 5], b=[2.0] * 8)
    assert al.ruptures(df, "wai", preset="strauss")["rupture_session"].tolist() == [5]
    assert al.ruptures(df, "wai", preset="gumz").empty
    between = al.ruptures(df, "wai", preset="strauss", sd_basis="between", k_sd=0.4)
    assert between["sd"].tolist() == [pytest.approx(2.875 / np.sqrt(2))]  # 0.875 >= 0.813
    with pytest.raises(ValueError, match="at least 2 clients"):
        al.ruptures(long(a=V), "wai", preset="gumz")


def test_repair_to_threshold():
    # mean 4.5, SS = 7 * .25 + 6.25 + 2 * .25 = 8.5, SD = sqrt(8.5/9) = 0.971825
    s = [5.0, 5, 5, 5, 2, 4, 4, 5, 5, 5]
    ep = al.ruptures(long(r=s), "wai", preset="strauss")
    assert ep["repair_session"].tolist() == [8]  # first score >= 4.5
    ep2 = al.ruptures(long(r=s), "wai", preset="strauss", repair_to="threshold")
    assert ep2["repair_session"].tolist() == [6]  # 4 > 4.5 - 0.9718 = 3.528


def test_rupture_patterns_larsson_classes():
    df = long(v=V, f=FLAT, n=NO_RETURN, short=[5.0, 1.0, 5.0])
    pat = al.rupture_patterns(df, "wai", preset="stiles").set_index("client_id")
    assert pat.loc[["f", "n", "short", "v"], "pattern"].tolist() == [
        "no rupture",
        "unrepaired",
        "insufficient data",
        "repaired",
    ]
    assert pat.loc["v", ["n_sessions", "n_ruptures", "n_repaired", "n_unrepaired"]].tolist() == [
        8,
        1,
        1,
        0,
    ]
    assert list(pat["pattern"].cat.categories) == [
        "no rupture",
        "repaired",
        "unrepaired",
        "insufficient data",
    ]
    with pytest.raises(TypeError, match="unexpected keyword"):
        al.rupture_patterns(df, "wai", presett="stiles")


def test_bad_arguments_and_input():
    df = long(v=V)
    with pytest.raises(ValueError, match="preset"):
        al.ruptures(df, "wai", preset="safran")
    with pytest.raises(ValueError, match="min_drop"):
        al.ruptures(df, "wai", min_drop=-1)
    with pytest.raises(MissingColumnsError, match="not found: srs"):
        al.ruptures(df, "srs")
    with pytest.raises(ChangeInputError, match="more than one row"):
        al.ruptures(pd.concat([df, df.iloc[[0]]]), "wai")


def test_srs_screen():
    df = pd.DataFrame({"srs_total": [40.0, 36.0, 35.9, 20.0, np.nan]})
    assert al.srs_alliance_flags(df)["srs_flag"].tolist() == [False, False, True, True, pd.NA]
    inclusive = al.srs_alliance_flags(df, inclusive=True)["srs_flag"].tolist()
    assert inclusive[:4] == [False, True, True, True]
    assert al.srs_alliance_flags(df, threshold=30)["srs_flag"].tolist()[:4] == [
        False,
        False,
        False,
        True,
    ]


def naive_episodes(values, k, min_drop, window, reference="client_mean", min_prior=2):
    """Straightforward per-session scan of one client's grid (None = missing), written
    independently of the vectorised code, for the within-client SD rule."""
    obs = [v for v in values if v is not None]
    if len(obs) < 4:
        return []
    mean = sum(obs) / len(obs)
    sd = (sum((v - mean) ** 2 for v in obs) / (len(obs) - 1)) ** 0.5
    refs = []
    for t in range(len(values)):
        prior = [v for v in values[:t] if v is not None]
        if reference == "client_mean":
            refs.append(mean)
        else:
            refs.append(sum(prior) / len(prior) if len(prior) >= min_prior else None)
    flagged = []
    for v, r in zip(values, refs, strict=True):
        drop = None if v is None or r is None else r - v
        flagged.append(drop is not None and drop > 0 and drop >= k * sd and drop >= min_drop)
    episodes = []
    t = 0
    while t < len(values):
        if flagged[t] and (t == 0 or not flagged[t - 1]):
            end = t
            while end + 1 < len(values) and flagged[end + 1]:
                end += 1
            ref = refs[t]
            repair = None
            for u in range(end + 1, min(len(values), end + 1 + window)):
                if values[u] is not None and values[u] >= ref:
                    repair = u
                    break
            lowest = min(values[t : end + 1])
            episodes.append((t, end - t + 1, ref - lowest, repair))
            t = end + 1
        else:
            t += 1
    return episodes


@pytest.mark.parametrize("reference", ["client_mean", "prior_mean"])
@pytest.mark.parametrize("preset", ["stiles", "strauss"])
def test_matches_a_naive_scan_on_random_series(preset, reference):
    rng = np.random.default_rng(20240607)
    k = {"stiles": 2.0, "strauss": 1.0}[preset]
    rows, expected = [], {}
    for c in range(150):
        n = int(rng.integers(3, 16))
        vals = np.round(rng.normal(5, 0.8, n) - (rng.random(n) < 0.15) * 2.0, 1)
        vals = [None if rng.random() < 0.12 else float(v) for v in vals]
        vals[0] = 5.0  # fix the grid start so each client's grid is sessions 1..n
        vals[-1] = 5.0 if vals[-1] is None else vals[-1]
        expected[f"c{c:03d}"] = naive_episodes(vals, k, 0.3, 3, reference)
        rows += [(f"c{c:03d}", s + 1, v) for s, v in enumerate(vals) if v is not None]
    df = pd.DataFrame(rows, columns=["client_id", "session", "wai"])
    # one call for all clients: their grids differ in length (shorter ones end in missing)
    got = al.ruptures(df, "wai", preset=preset, min_drop=0.3, reference=reference)
    n_expected = sum(len(v) for v in expected.values())
    assert n_expected > 20  # the random series do contain ruptures
    assert len(got) == n_expected
    for c, eps in expected.items():
        mine = got[got["client_id"] == c]
        assert mine["rupture_session"].tolist() == [t + 1 for t, _, _, _ in eps], c
        assert mine["length"].tolist() == [n for _, n, _, _ in eps], c
        assert_depths = [d for _, _, d, _ in eps]
        assert mine["depth_points"].to_numpy() == pytest.approx(assert_depths, rel=1e-12)
        reps = [None if r is None else r + 1 for _, _, _, r in eps]
        assert [None if pd.isna(r) else int(r) for r in mine["repair_session"]] == reps, c


def test_change_event_timeline():
    df = long(v=V, f=FLAT)
    ep = al.ruptures(df, "wai")
    gains = pd.DataFrame({"client_id": ["f"], "post_session": [3]})
    t = al.change_event_timeline(gains=gains, ruptures=ep)
    assert t.values.tolist() == [["f", 3, "sudden gain"], ["v", 5, "rupture"], ["v", 6, "repair"]]
    assert al.change_event_timeline().empty


def test_empty_and_tiny_input():
    empty = pd.DataFrame({"client_id": [], "session": [], "wai": []})
    assert al.ruptures(empty, "wai").empty
    assert al.ruptures(empty, "wai", repair_within=None).empty
    assert al.rupture_patterns(empty, "wai").empty
    one = long(a=[3.0])
    assert al.ruptures(one, "wai").empty
    assert al.rupture_patterns(one, "wai")["pattern"].tolist() == ["insufficient data"]


# ---------------------------------------------------------------------------------------------
# Both presets side by side; false-alarm rates under no ruptures
# ---------------------------------------------------------------------------------------------


def null_panel(rng, n_clients=150, n_sessions=12, within=0.35, between=0.4, p_miss=0.15):
    """Scores with no ruptures: client level + independent normal noise, some sessions absent."""
    level = 3.9 + between * rng.standard_normal((n_clients, 1))
    x = level + within * rng.standard_normal((n_clients, n_sessions))
    x[rng.random(x.shape) < p_miss] = np.nan
    df = pd.DataFrame(
        {
            "client_id": np.repeat(np.arange(n_clients), n_sessions),
            "session": np.tile(np.arange(1, n_sessions + 1), n_clients),
            "wai": x.ravel(),
        }
    )
    return df.dropna(subset=["wai"]).reset_index(drop=True)


@pytest.mark.parametrize("n", [3, 6, 8, 12, 30])
@pytest.mark.parametrize("k", [1.0, 2.0])
def test_null_session_rate_matches_studentized_residual_simulation(n, k):
    # Independent of the detector: simulate iid normal scores and count x_t <= mean - k * SD.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200_000, n))
    r = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, ddof=1, keepdims=True)
    p_mc = (r <= -k).mean()
    se = np.sqrt(p_mc * (1 - p_mc) / r.size) + 1e-12
    assert al.rupture_null_session_rate(n, k) == pytest.approx(p_mc, abs=4 * se + 1e-6)


def test_two_sd_rule_cannot_fire_with_five_or_fewer_sessions():
    # max |r_t| = (n - 1) / sqrt(n): 1.79 at n = 5 < 2
    assert al.rupture_null_session_rate([2, 3, 4, 5], 2.0).tolist() == [0, 0, 0, 0]
    assert al.rupture_null_session_rate(6, 2.0) > 0
    assert al.rupture_null_session_rate(2, 0.5) == 0.5  # r = -1/sqrt(2) half the time


def test_false_alarm_session_rate_matches_exact_rate():
    # Stiles (within SD, client mean, no min_drop): the detector on the null model must flag
    # sessions at the exact rate. Monte Carlo SE of the rate with 200 x ~1,500 sessions is
    # about 0.0007; tolerance 4 SE.
    df = null_panel(np.random.default_rng(5))
    fa = al.rupture_false_alarms(df, "wai", preset="stiles", n_simulations=200, seed=1)
    assert fa["session_rate"] == pytest.approx(fa["session_rate_exact"], abs=0.003)
    # the noise model recovers the generating SDs
    assert fa["within_sd"] == pytest.approx(0.35, rel=0.05)
    assert fa["between_sd"] == pytest.approx(0.4, rel=0.2)


@pytest.mark.parametrize(("preset", "min_drop"), [("stiles", 0.5), ("gumz", None), ("gumz", 0.5)])
def test_false_alarm_share_matches_independent_simulation(preset, min_drop):
    # The estimate from one data set against a brute-force simulation through the public API:
    # fresh null panels drawn with the noise the estimate found in the data (levels SD,
    # within SD, grand mean; sessions missing at the data's rate), each run through
    # rupture_patterns. Tolerance: 4 combined Monte Carlo SEs.
    rng = np.random.default_rng(17)
    data = null_panel(rng)
    kw = dict(preset=preset, min_drop=min_drop)
    fa = al.rupture_false_alarms(data, "wai", n_simulations=200, seed=4, **kw)
    shares = []
    for _ in range(60):
        panel = null_panel(rng, within=fa["within_sd"], between=fa["between_sd"])
        panel["wai"] += fa["grand_mean"] - 3.9
        pat = al.rupture_patterns(panel, "wai", **kw)["pattern"]
        analysable = pat != "insufficient data"
        shares.append((pat[analysable] != "no rupture").mean())
    shares = np.asarray(shares)
    se = np.hypot(shares.std(ddof=1) / np.sqrt(len(shares)), fa["share_clients_se"])
    assert fa["share_clients"] == pytest.approx(shares.mean(), abs=4 * se)


def test_false_alarms_are_reproducible_and_need_enough_clients():
    df = null_panel(np.random.default_rng(2), n_clients=30)
    a = al.rupture_false_alarms(df, "wai", n_simulations=20, seed=9)
    b = al.rupture_false_alarms(df, "wai", n_simulations=20, seed=9)
    assert a == b
    with pytest.raises(ValueError, match="at least 2 clients"):
        al.rupture_false_alarms(long(a=V), "wai")
    with pytest.raises(ValueError, match="n_simulations"):
        al.rupture_false_alarms(df, "wai", n_simulations=0)


def test_compare_presets_matches_single_rule_calls():
    rng = np.random.default_rng(3)
    # 60 null clients and one with a clear V (client 999, session 6)
    v = long(a=[4.0, 4.1, 4.0, 4.1, 4.0, 1.0, 4.0, 4.1, 4.0, 4.1]).assign(client_id=999)
    df = pd.concat([null_panel(rng, n_clients=60), v], ignore_index=True)
    cmp = al.compare_rupture_presets(df, "wai", min_drop=0.5, n_simulations=30, seed=8)
    assert cmp.summary["preset"].tolist() == ["stiles", "gumz"]
    for _, row in cmp.summary.iterrows():
        pat = al.rupture_patterns(df, "wai", preset=row["preset"], min_drop=0.5)
        ep = al.ruptures(df, "wai", preset=row["preset"], min_drop=0.5)
        assert row["n_repaired"] == (pat["pattern"] == "repaired").sum()
        assert row["n_unrepaired"] == (pat["pattern"] == "unrepaired").sum()
        assert row["n_episodes"] == len(ep)
        assert row["n_clients"] == (pat["pattern"] != "insufficient data").sum()
        assert row["excess_share"] == pytest.approx(row["share_rupture"] - row["false_alarm_share"])
        fa = al.rupture_false_alarms(
            df, "wai", preset=row["preset"], min_drop=0.5, n_simulations=30, seed=8
        )
        assert row["false_alarm_share"] == fa["share_clients"]
    assert cmp.crosstab.to_numpy().sum() == df["client_id"].nunique()
    assert "999" in cmp.episodes["stiles"]["client_id"].tolist()  # ids are text
    with pytest.raises(TypeError, match="preset"):
        al.compare_rupture_presets(df, "wai", k_sd=3)


# ---------------------------------------------------------------------------------------------
# Scale (issue 16): against the implementation before it (tests/events_reference.py)
# ---------------------------------------------------------------------------------------------

import events_reference as ref  # noqa: E402


def messy_alliance(seed, n_clients=300):
    """Client levels, noise, V-shaped drops, scores rounded to quarter points (ties), 1-15
    sessions, a fifth of the sessions absent and some rows without a score."""
    rng = np.random.default_rng(seed)
    n_sess = rng.integers(1, 16, n_clients)
    cid = np.repeat(np.arange(n_clients), n_sess)
    sess = np.concatenate([np.arange(1, n + 1) for n in n_sess])
    y = 3.9 + 0.4 * rng.standard_normal(n_clients)[cid] + 0.35 * rng.standard_normal(len(cid))
    drop = rng.random(len(cid)) < 0.05
    y[drop] -= rng.uniform(0.8, 2.0, drop.sum())
    y = np.round(y * 4) / 4
    y[rng.random(len(cid)) < 0.1] = np.nan
    df = pd.DataFrame({"client_id": cid, "session": sess, "wai": y})
    return df[rng.random(len(df)) > 0.2].reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("options", [{"min_drop": 0.5}, {"reference": "prior_mean"}, {}])
def test_compare_presets_matches_the_previous_implementation(seed, options):
    df = messy_alliance(seed)
    presets = ("stiles", "gumz", "strauss")
    kw = dict(presets=presets, n_simulations=15, seed=seed, **options)
    old = ref.compare_rupture_presets(df, "wai", **kw)
    # below max_clients every client is simulated, with the same random numbers: exact
    for new in (al.compare_rupture_presets(df, "wai", **kw),
                al.compare_rupture_presets(df, "wai", max_clients=None, **kw)):  # fmt: skip
        pd.testing.assert_frame_equal(new.summary, old.summary)
        pd.testing.assert_frame_equal(new.crosstab, old.crosstab)
        for p in presets:
            pd.testing.assert_frame_equal(new.episodes[p], old.episodes[p])
            pd.testing.assert_frame_equal(new.patterns[p], old.patterns[p])
            assert new.null[p] == old.null[p]
    assert old.summary["n_episodes"].min() > 0


def test_false_alarms_with_sampled_clients_estimate_the_same_rate():
    # 2,000 analysable clients, 250 per simulated data set: the estimate of the same mean
    # rate, within 4 combined Monte Carlo SEs of every client simulated in every data set
    df = null_panel(np.random.default_rng(11), n_clients=2000, n_sessions=10)
    for preset, min_drop in (("stiles", 0.5), ("gumz", 0.5), ("strauss", None)):
        kw = dict(preset=preset, min_drop=min_drop, n_simulations=150)
        full = ref.rupture_false_alarms(df, "wai", seed=4, **kw)
        part = al.rupture_false_alarms(df, "wai", seed=5, max_clients=250, **kw)
        se = np.hypot(full["share_clients_se"], part["share_clients_se"])
        assert part["share_clients"] == pytest.approx(full["share_clients"], abs=4 * se)
        assert part["share_clients_se"] > full["share_clients_se"]  # fewer client draws
        assert part["session_rate"] == pytest.approx(full["session_rate"], rel=0.05)
        for key in ("within_sd", "between_sd", "n_clients", "n_simulations"):
            assert part[key] == full[key]
    with pytest.raises(ValueError, match="max_clients"):
        al.rupture_false_alarms(df, "wai", max_clients=1)
