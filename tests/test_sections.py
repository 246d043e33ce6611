"""Report sections in the library: every section on the demo study, the skip mechanism, the
document they make, and the analyses that moved out of the template (early alliance regression,
EB intervals, per-client pre/post, event rates, wave-over-wave refits)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

import alliance_lib as al
from alliance_lib.results import to_jsonable
from alliance_lib.sections import (
    Section,
    common,
    data,
    events,
    outcome,
    raters,
    scores,
    therapists,
    trajectories,
    waves,
)
from alliance_lib.sections.render import Document, record
from alliance_lib.simulate import simulate_study
from alliance_lib.tables import format_table
from alliance_lib.trajectories import ModelError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "study.yaml"
FIXTURES = ROOT / "tests" / "reference" / "fixtures"
FORBIDDEN = re.compile(r"\bnan\b|\bNone\b|\bTrue\b|\bFalse\b|\d[eE][+-]\d|<NA>", re.I)


def all_sections(w):
    return [
        data.data_quality_section(w),
        data.missingness_section(w),
        data.sample_section(w),
        scores.score_descriptives_section(w),
        scores.reliability_section(w),
        trajectories.trajectory_section(w, n_clients=10, seed=1),
        trajectories.shape_comparison_section(w),
        therapists.icc_section(w),
        therapists.therapist_effects_section(w),
        raters.rater_agreement_section(w),
        outcome.early_alliance_outcome_section(w),
        outcome.early_alliance_section(w),
        outcome.alliance_outcome_section(w),
        outcome.therapist_alliance_outcome_section(w),
        events.ruptures_section(w),
        events.sudden_gains_section(w),
        events.event_timeline_section(w, seed=1),
        events.clinical_significance_section(w),
        events.event_rates_section(w),
        waves.wave_over_wave_section(w),
    ]


@pytest.fixture(scope="module")
def wave3():
    return al.prepare_wave(al.load_study(DEMO), 3)


@pytest.fixture(scope="module")
def sections3(wave3):
    return all_sections(wave3)


@pytest.mark.slow
def test_every_section_applies_to_the_demo_and_is_readable(sections3):
    keys = [s.key for s in sections3]
    assert len(set(keys)) == len(keys)
    for s in sections3:
        assert isinstance(s, Section) and s.applies, s.key
        json.dumps(to_jsonable(s.numbers), allow_nan=False)
        assert any(s.sentences), f"{s.key} says nothing in words"
        for t in s.tables:
            shown = format_table(t)
            assert not FORBIDDEN.search(" ".join(shown.to_numpy().ravel())), (s.key, t.title)
            assert not any(re.fullmatch(r"[a-z]+(_[a-z]+)+", str(col)) for col in shown.columns), (
                f"snake_case column label in {t.title}"
            )
            assert t.title and t.note, f"{s.key}: table without title or note"
        for f in s.figures:
            assert f.caption and f.alt == f.caption and f.name
            axes_text = " ".join(ax.get_ylabel() + ax.get_xlabel() for ax in f.figure.axes)
            assert "wai-sr" not in axes_text and "oq-45.2" not in axes_text, "internal codes"


@pytest.mark.slow
def test_section_numbers_are_those_of_the_demo_study(sections3):
    n = {s.key: s.numbers for s in sections3}
    assert n["data_quality"]["rows_read"] == 6387 and n["data_quality"]["rows_quarantined"] == 6
    assert (n["sample"]["n_clients"], n["sample"]["n_therapists"]) == (300, 20)
    assert n["sample"]["n_sessions"] == 3341
    assert n["ruptures"]["n_episodes"] == 37
    assert (n["sudden_gains"]["n_gains"], n["sudden_gains"]["n_losses"]) == (45, 1)
    cats = {r["category"]: r["clients"] for r in n["clinical_significance"]["categories"]}
    # ended clients only (289 of 300; 11 still in treatment at the cut-off)
    assert cats == {"recovered": 96, "improved": 86, "unchanged": 104, "deteriorated": 3}
    assert (n["sample"]["n_ended"], n["sample"]["n_ongoing"]) == (289, 11)
    assert [r["wave"] for r in n["wave_over_wave"]["summary"]] == [1, 2, 3]
    assert n["event_counts"] == {"repair": 31, "rupture": 37, "sudden gain": 45, "sudden loss": 1}


@pytest.mark.slow
def test_summaries_are_sentences_written_from_the_numbers(sections3):
    by_key = {s.key: s for s in sections3}
    assert by_key["sample"].summary.startswith("300 clients seen by 20 therapists had 3,341 ")
    assert "rose by 0.027 points per session, 95% CI [0.022, 0.032], p < .001" in (
        by_key["trajectory"].summary
    )
    assert "4.02 points lower at the next session" in by_key["alliance_outcome"].summary
    assert "2.9% between therapists" in by_key["icc"].summary
    assert by_key["wave_over_wave"].summary.startswith("Since wave 2, the sample grew from 269")
    for s in sections3:
        if s.summary:
            assert s.summary.endswith(".") and s.summary[0].isupper() or s.summary[0].isdigit()


@pytest.mark.slow
def test_document_numbers_tables_and_figures_across_sections(sections3):
    doc = Document(sections3, title="Demo", meta=["m"])
    assert [n for n, _ in doc.tables()] == list(range(1, len(doc.tables()) + 1))
    assert [n for n, _ in doc.figures()] == list(range(1, len(doc.figures()) + 1))
    head = doc.head_html()
    assert head.index("This wave") < head.index("Contents")
    s = sections3[5]  # trajectories: a table and a figure
    html = doc.section_html(s)
    n_fig = doc.figure_number(s.figures[0])
    assert f'alt="Figure {n_fig}. Individual alliance trajectories' in html
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)
    assert '<h2 id="sec-trajectory">6. Alliance trajectories</h2>' in html
    methods = doc.methods_paragraph()
    assert "restricted maximum likelihood" in methods and "alliance_lib" in methods
    assert "Bates, D., Mächler, M." in " ".join(doc.references())
    doc.close()


def _alliance_only_wave(tmp_path):
    d = simulate_study(n_clients=30, n_therapists=3, seed=9, therapist_ratings=False)
    d = d.drop(columns=["therapist_id"] + [c for c in d if c.startswith("oq_")])
    d = d[d["session"] >= 1]
    d.to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: Alliance only\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr}\n"
    )
    return al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)


@pytest.mark.slow
def test_sections_that_do_not_apply_say_why_once(tmp_path):
    w = _alliance_only_wave(tmp_path)
    sections = all_sections(w)
    skipped = {s.key: s.not_applicable for s in sections if not s.applies}
    assert skipped == {
        "therapist_effects": "no therapist column in this study",
        "rater_agreement": "no therapist-rated alliance in this study",
        "early_alliance": "no outcome measure in this study",
        "early_alliance_outcome": "no outcome measure in this study",
        "alliance_outcome": "no outcome measure in this study",
        "therapist_alliance_outcome": "needs an outcome measure and therapists",
        "sudden_gains": "no outcome measure in this study",
        "clinical_significance": "no outcome measure in this study",
        "event_rates_by_therapist": "no therapist column in this study",
    }
    for s in sections:
        if not s.applies:
            assert not (s.tables or s.figures or s.methods), "a skipped section prints its method"
    doc = Document(sections, title="t")
    tail = doc.tail_html()
    assert tail.count("no outcome measure in this study") == 5
    assert "Sections that do not apply" in doc.contents_html()
    body = "".join(doc.section_html(s) for s in doc.applying)
    assert "no outcome measure" not in body
    results = al.results.Results()
    record(results, sections)
    assert results.get("alliance_outcome") == {
        "skipped": True,
        "reason": "no outcome measure in this study",
    }
    assert results.get("sample")["n_therapists"] is None
    doc.close()


def test_analyses_are_computed_once_per_wave(tmp_path):
    w = _alliance_only_wave(tmp_path)
    assert common.trajectory_fit(w) is common.trajectory_fit(w)
    assert common.sessions(w) is common.sessions(w)
    w2 = _alliance_only_wave(tmp_path)
    assert common.trajectory_fit(w2) is not common.trajectory_fit(w)


# ------------------------------------------------------------------ early alliance -> outcome
@pytest.mark.parametrize("early", [3, 5])
def test_early_alliance_outcome_matches_r_lm(early):
    # R: tests/reference/lm_early_alliance.R (per-client table built in base R, then lm())
    ref = pd.read_csv(FIXTURES / "lm_early_alliance.csv")
    ref = ref[ref["early_session"] == early].set_index("term")
    d = pd.read_csv(FIXTURES / "demo_sessions.csv", dtype={"client_id": str})
    fit = al.early_alliance_outcome(d, "alliance", "outcome", early_session=early)
    assert fit.nobs == int(ref["nobs"].iloc[0])
    for col in ("estimate", "se", "t", "p", "ci_low", "ci_high"):
        assert_allclose(fit.fixed.loc[ref.index, col], ref[col], rtol=1e-8, atol=1e-12)
    assert_allclose(fit.r2, ref["r2"].iloc[0], rtol=1e-10)
    assert sum(fit.n_dropped.values()) + fit.nobs == d["client_id"].nunique()
    assert "reverse causation" in fit.caveat and "lesson 03" in fit.caveat
    json.dumps(fit.to_dict(), allow_nan=False)


def test_early_alliance_outcome_recovers_known_coefficients():
    rng = np.random.default_rng(7)
    n = 4000
    intake = rng.normal(80, 15, n)
    change = rng.normal(-8, 6, n)
    alliance = 3.8 + 0.03 * -change + rng.normal(0, 0.5, n)  # early change raises the alliance
    later = 5 + 0.9 * intake + 0.7 * change - 4.0 * alliance + rng.normal(0, 8, n)
    ids = [f"C{i:04d}" for i in range(n)]
    long = pd.concat(
        [
            pd.DataFrame({"client_id": ids, "session": 0, "alliance": np.nan, "outcome": intake}),
            pd.DataFrame(
                {"client_id": ids, "session": 3, "alliance": alliance, "outcome": intake + change}
            ),
            pd.DataFrame({"client_id": ids, "session": 9, "alliance": np.nan, "outcome": later}),
        ]
    )
    fit = al.early_alliance_outcome(long, "alliance", "outcome", early_session=3)
    truth = {"alliance_early": -4.0, "outcome_intake": 0.9, "outcome_change_early": 0.7}
    for term, value in truth.items():
        row = fit.fixed.loc[term]
        assert abs(row["estimate"] - value) < 4 * row["se"], term
    assert fit.data["later_session"].eq(9).all()


def test_early_alliance_outcome_needs_enough_clients():
    d = pd.DataFrame(
        {
            "client_id": ["a", "a", "a"],
            "session": [0, 3, 6],
            "alliance": [np.nan, 4, 4],
            "outcome": [70, 60, 50],
        }
    )
    with pytest.raises(ModelError, match="needs at least 6"):
        al.early_alliance_outcome(d, "alliance", "outcome")
    with pytest.raises(ModelError, match="'mood'"):
        al.early_alliance_outcome(d, "alliance", "mood")


# ------------------------------------------------------------------ other moved analyses
def test_client_effects_intervals_are_mode_plus_minus_z_sd():
    d = simulate_study(n_clients=60, n_therapists=6, seed=3, output="scores")
    fit = al.fit_trajectory(d, "alliance", therapist="therapist_id")
    plain = fit.client_effects("therapist")
    eff = fit.client_effects("therapist", ci=0.95)
    z = stats.norm.ppf(0.975)
    assert list(plain.columns) == ["Intercept", "Intercept_sd"]
    assert_allclose(eff["Intercept_ci_low"], eff["Intercept"] - z * eff["Intercept_sd"])
    assert_allclose(eff["Intercept_ci_high"], eff["Intercept"] + z * eff["Intercept_sd"])
    clients = fit.client_effects(ci=0.9)
    assert {"session_ci_low", "session_ci_high", "n_obs"} <= set(clients.columns)
    with pytest.raises(ValueError, match="between 0 and 1"):
        fit.client_effects(ci=95)


def test_client_pre_post_by_hand(tmp_path):
    w = _alliance_only_wave(tmp_path)
    s = common.sessions(w).copy()
    # a hand-built wave: outcome at sessions 1, 3 for client a; nothing for b
    s = pd.DataFrame(
        {
            "client_id": ["a", "a", "a", "b"],
            "session": [1, 2, 3, 1],
            "alliance": [4.0, 5.0, np.nan, 3.0],
            "outcome": [70.0, np.nan, 50.0, np.nan],
        }
    )
    w.__dict__["_section_cache"] = {("sessions",): s}
    pp = common.client_pre_post(w)
    assert pp["client_id"].tolist() == ["a"]
    row = pp.iloc[0]
    assert (row["pre_session"], row["outcome_pre"], row["last_session"], row["outcome_post"]) == (
        1,
        70.0,
        3,
        50.0,
    )
    assert row["alliance"] == 4.5


@pytest.mark.slow
def test_event_rates_by_therapist_by_hand(wave3, sections3):
    rates = {s.key: s for s in sections3}["event_rates_by_therapist"].numbers["table"]
    s = common.sessions(wave3)
    episodes = common.rupture_episodes(wave3)
    th = rates[0]["therapist_id"]
    clients = s.loc[s["therapist_id"] == th, "client_id"].unique()
    expected = np.isin(clients, episodes["client_id"]).mean()
    assert rates[0]["rupture_rate"] == pytest.approx(expected)
    assert rates[0]["n_clients"] == len(clients)


def test_wave_over_wave_refits_every_wave_like_the_current_one():
    study = al.load_study(DEMO)
    w2 = al.prepare_wave(study, 2)
    summary, fixed = waves.wave_estimates(w2)
    assert summary["wave"].tolist() == [1, 2]
    w1 = al.prepare_wave(study, 1)
    assert summary.loc[0, "n_clients"] == common.trajectory_fit(w1).n_clients
    assert_allclose(
        fixed.loc[fixed["wave"] == 1, "estimate"], common.trajectory_fit(w1).fixed["estimate"]
    )
    assert summary.loc[1, "nobs"] == common.trajectory_fit(w2).nobs


# ------------------------------------------------------------------ methods a reviewer accepts
@pytest.mark.slow
def test_reliability_is_at_one_administration_per_client_with_multilevel_omega(wave3):
    s = scores.reliability_section(wave3)
    table = pd.DataFrame(s.numbers["table"])
    client = wave3.scored[wave3.scored["rater"] == "client"]
    direct = al.reliability(client, "wai-sr", administration="first")
    got = table[(table["instrument"] == "wai-sr") & (table["rater"] == "client")]
    assert_allclose(got["alpha"], direct["alpha"], rtol=1e-12)
    assert_allclose(got["omega_h"], direct["omega_h"], rtol=1e-12, equal_nan=True)
    total = got.set_index("scale").loc["total"]
    # one row per client (never the 2,435 pooled administrations), omega_h for the total only
    assert total["n"] <= client["client_id"].nunique() and total["first_session"] == 1
    assert total["omega_h"] < total["omega"] and got["omega_h"].isna().sum() == 3
    assert "Schmid-Leiman" in total["omega_model"]
    assert "session 1 for" in s.tables[0].note and "omega hierarchical" in s.tables[0].note
    assert "intake (session 0)" in s.tables[0].note  # the OQ-45.2 is first given at intake
    ml = pd.DataFrame(s.numbers["multilevel"])
    direct_ml = al.multilevel_reliability(client, "wai-sr")
    got_ml = ml[(ml["instrument"] == "wai-sr") & (ml["rater"] == "client")]
    assert_allclose(got_ml["omega_within"], direct_ml["omega_within"], rtol=1e-10)
    assert got_ml["n"].iloc[0] > 5 * total["n"]  # every administration
    assert [t.name for t in s.tables] == ["reliability", "reliability-multilevel"]
    assert "ω hierarchical" in s.sentences[0] and "ω within" in s.sentences[1]


@pytest.mark.slow
def test_icc_at_time_zero_with_intervals_and_one_definition_everywhere(wave3):
    s = therapists.icc_section(wave3)
    n = s.numbers
    fit = common.trajectory_fit(wave3)
    assert fit.time_zero == n["time_zero"] == 1.0  # the first alliance session, not intake
    assert n["client_ci_low"] < n["client"] < n["client_ci_high"]
    assert n["therapist_ci_low"] <= n["therapist"] < n["therapist_ci_high"]
    assert n["n_boot"] == 500 and n["seed"] == wave3.study.seed
    assert s.summary.startswith("At session 1, the first alliance session, 60% of")
    assert "95% CI" in s.summary and "2.9% between therapists" in s.summary
    assert s.tables[0].formats["95% CI"] == "ci_prop"
    assert not n["therapist_imprecise"]  # 20 therapists
    # wave over wave: the same ICC (same fit, same time zero) for the current wave
    now = waves.wave_estimates(wave3)[0].set_index("wave").loc[3]
    assert now["icc_client"] == pytest.approx(n["client"], rel=1e-12)
    assert now["time_zero"] == 1.0
    assert (
        "Intercept (session 1)"
        in format_table(trajectories.trajectory_section(wave3).tables[0])
        .to_numpy()
        .ravel()
        .tolist()
    )


@pytest.mark.slow
def test_icc_flags_a_small_pilot_as_imprecise(tmp_path):
    d = simulate_study(n_clients=36, n_therapists=3, seed=5, therapist_ratings=False)
    d.to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: Pilot\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\nanalysis: {time_zero: 2}\n"
    )
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    s = therapists.icc_section(w)
    assert s.numbers["therapist_imprecise"] and s.numbers["time_zero"] == 2.0
    assert "fewer than 15" in s.sentences[1] and "imprecise" in s.tables[0].note
    assert "fewer than 15: imprecise" in s.tables[0].data["Note"].iloc[1]
    assert s.summary.startswith("At session 2, the study's time zero")


@pytest.mark.slow
def test_rater_agreement_is_clustered_with_the_independent_pairs_as_sensitivity(wave3):
    s = raters.rater_agreement_section(wave3)
    # the section's fits (every rated pair) are not kept for the rest of the report
    assert ("raters",) not in wave3.__dict__.get("_section_cache", {})
    rows = pd.DataFrame(s.numbers)
    fit = al.rater_agreement(
        wave3.scored, "wai_sr_total", seed=wave3.study.seed, n_boot=common.RATER_BOOT
    )
    main = rows[rows["analysis"] == "clustered"].set_index("statistic")
    assert_allclose(main.loc["ICC(C,1)", "estimate"], fit.icc.loc["ICC(C,1)", "icc"], rtol=1e-12)
    assert_allclose(main.loc["loa_high", "estimate"], fit.bland_altman.loa_high, rtol=1e-12)
    assert fit.bland_altman.method.startswith("repeated measures")
    sens = rows[rows["analysis"] == "independent pairs (sensitivity)"].set_index("statistic")
    assert_allclose(
        sens.loc["ICC(C,1)", "estimate"], fit.icc_independent.loc["ICC(C,1)", "icc"], rtol=1e-12
    )
    # clustering widens the interval of the consistency ICC (3,032 sessions of 300 clients)
    width = main["ci_high"] - main["ci_low"]
    assert width["ICC(C,1)"] > 1.5 * (sens["ci_high"] - sens["ci_low"])["ICC(C,1)"]
    assert set(rows["n_boot"]) == {500} and set(rows["comparison"]) == {"Client vs therapist"}
    assert "Clustered" in s.tables[0].title and "Sensitivity" in s.tables[1].title
    assert "500 replicates" in s.tables[0].note and "fast" in s.tables[0].note
    assert "Bland & Altman, 2007" in s.tables[0].note
    assert "(sensitivity)" in s.sentences[1]


@pytest.mark.slow
def test_rater_agreement_compares_every_perspective_present(tmp_path):
    import dataclasses

    d = simulate_study(n_clients=30, n_therapists=3, seed=4)
    d.to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: Raters\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\n"
    )
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    th = w.scored[w.scored["rater"] == "therapist"].copy()
    rng = np.random.default_rng(1)
    th["rater"] = "observer"
    th["wai_sr_total"] = th["wai_sr_total"] + rng.normal(0, 0.3, len(th))
    w3 = dataclasses.replace(w, scored=pd.concat([w.scored, th], ignore_index=True))
    assert common.rater_perspectives(w3) == ["client", "therapist", "observer"]
    s = raters.rater_agreement_section(w3)
    pairs = set(pd.DataFrame(s.numbers)["comparison"])
    assert pairs == {"Client vs therapist", "Client vs observer", "Therapist vs observer"}
    assert "therapist vs observer" in s.sentences[-1]
    assert len(s.figures) == 1  # the client-therapist figure


@pytest.mark.slow
def test_ruptures_under_both_presets_with_their_false_alarm_rates(wave3):
    s = events.ruptures_section(wave3)
    n = s.numbers
    a = wave3.study.analysis
    direct = al.compare_rupture_presets(
        common.sessions(wave3),
        "alliance",
        client="client_id",
        session="session",
        presets=("stiles", "gumz"),
        min_drop=a["rupture_min_drop"],
        n_simulations=200,
        seed=wave3.study.seed,
    )
    got = pd.DataFrame(n["comparison"]).set_index("preset")
    want = direct.summary.set_index("preset")
    assert list(got.index) == ["stiles", "gumz"] == n["presets_compared"]
    for col in ("n_rupture", "share_rupture", "false_alarm_share", "false_alarm_se"):
        assert_allclose(got[col], want[col], rtol=1e-12)
    # the study preset (stiles) is the one the timeline and event rates use: 37 as before
    assert n["n_episodes"] == got.loc["stiles", "n_episodes"] == 37
    assert 0 < got.loc["stiles", "false_alarm_share"] < got.loc["gumz", "false_alarm_share"] < 1
    side = s.tables[0].data
    assert len(side) == 2 and "Expected by chance" in side.columns
    assert side["Expected by chance"].str.match(r"^\d+\.\d% \(SE \d\.\d%\)$").all()
    assert "expected by chance" in s.sentences[2] and "Gumz rule" in s.sentences[2]
    assert n["crosstab"]["table"]["repaired"]["repaired"] == 31
    shown = format_table(s.tables[1])
    assert {"Stiles: clients", "Gumz: clients"} <= set(shown.columns)


@pytest.mark.slow
def test_change_is_for_ended_clients_and_the_sample_says_ended_or_ongoing(wave3):
    a = wave3.study.analysis
    status = al.treatment_status(
        wave3.scored,
        client="client_id",
        session="session",
        date="date",
        end=None,
        ongoing_within_days=a["ongoing_within_days"],
        last_planned_session=16,
    )
    ended = set(status.loc[status["status"] == "ended", "client_id"])
    s = events.clinical_significance_section(wave3)
    rc, cs = common.clinical_change(wave3)
    assert set(rc["client_id"]) <= ended and len(ended - set(rc["client_id"])) < 5
    assert s.numbers["treatment_status"] == {"ended": 289, "ongoing": 11, "unknown": 0}
    assert s.numbers["clients_analysed"] == "ended"
    assert "11 clients still in treatment are left out" in s.sentences[1]
    # the six reliable-change indices, each with the outcome's alpha from these data
    m = pd.DataFrame(s.numbers["rci_methods"]).set_index("method")
    assert list(m.index) == list(al.RCI_METHODS) == ["JT", "GLN", "HLL", "EN", "NK", "HA"]
    r = s.numbers["rci_reliability"]
    alpha = pd.DataFrame(scores.reliability_section(wave3).numbers["table"])
    alpha = alpha[(alpha["instrument"] == "oq-45.2") & (alpha["scale"] == "total")]
    assert r == pytest.approx(alpha["alpha"].iloc[0])
    for method in ("GLN", "HA"):
        direct = al.reliable_change(
            rc, pre="pre", post="post", reliability=r, higher_is_better=False, method=method
        )
        assert m.loc[method, "improved"] == (direct["category"] == "improved").sum()
    assert (m["improved"] + m["unchanged"] + m["deteriorated"] == m["n_clients"]).all()
    assert "r = .939" in s.tables[1].note and "first administration" in s.tables[1].note
    sample = data.sample_section(wave3)
    shown = " ".join(format_table(sample.tables[0]).to_numpy().ravel())
    assert "dropout" not in (shown + sample.tables[0].note).lower()
    assert "Still in treatment at the data cut-off" in shown and "Ended early" in shown
    assert sample.numbers["n_ended_early"] == int(status["ended_early"].fillna(False).sum())
    assert "11 were still in treatment at the data cut-off" in sample.summary


def test_without_dates_or_an_end_column_change_says_it_cannot_tell(tmp_path):
    d = simulate_study(n_clients=40, n_therapists=4, seed=8, therapist_ratings=False)
    d.drop(columns="date").to_csv(tmp_path / "w1.csv", index=False)
    (tmp_path / "study.yaml").write_text(
        "study: No dates\ndata: {1: w1.csv}\nmissing_codes: [-99, 999]\n"
        "instruments: {alliance: wai-sr, outcome: oq-45.2}\n"
    )
    w = al.prepare_wave(al.load_study(tmp_path / "study.yaml"), 1)
    status, why = common.treatment_status(w)
    assert status is None and "no session dates" in why
    s = events.clinical_significance_section(w)
    assert s.numbers["clients_analysed"] == "all"
    assert "cannot be told from clients still in treatment" in s.tables[0].note
    sample = data.sample_section(w)
    assert sample.numbers["n_ended"] is None
    assert "not recorded" in sample.summary


@pytest.mark.slow
def test_sudden_gains_are_searched_in_the_selected_cases_only(wave3):
    s = events.sudden_gains_section(wave3)
    direct = al.select_sudden_gain_cases(
        common.sessions(wave3), "outcome", client="client_id", session="session", method="pattern"
    )
    chosen = set(direct.loc[direct["selected"], "client_id"])
    assert s.numbers["n_selected"] == len(chosen) == 254
    gains, losses, _ = common.gains_and_losses(wave3)
    assert set(gains["client_id"]) <= chosen and set(losses["client_id"]) <= chosen
    assert (s.numbers["n_gains"], s.numbers["n_losses"]) == (45, 1)
    assert "254 of 300 clients" in s.sentences[1]
    assert "select_cases" in s.tables[0].note
    # results.json keeps the interval counts' study totals, not one record per client
    counts = al.count_intervals(common.sessions(wave3), "outcome")
    totals = s.numbers["intervals"]
    assert totals["n_clients"] == counts["client_id"].nunique() == 300
    for col in ("n_intervals", "n_tested", "n_analysable", "n_not_analysable"):
        assert totals[col] == int(counts[col].sum()) > 0


def test_the_adjusted_early_alliance_estimate_is_primary(wave3):
    adjusted = outcome.early_alliance_outcome_section(wave3)
    plain = outcome.early_alliance_section(wave3)
    assert "adjusted for intake and early change" in adjusted.title
    assert "unadjusted" in plain.title.lower() and "comparison" in plain.title
    assert "reverse causation" in adjusted.sentences[1] and "lesson 03" in adjusted.sentences[1]
    assert "03-alliance-and-outcome.ipynb" in adjusted.tables[0].note
    assert "adjusted estimate in the previous section" in plain.sentences[0]
    assert set(adjusted.numbers["fixed"][1]) >= {"term", "estimate"}
    template = (ROOT / "alliance_lib" / "templates" / "study_report.ipynb").read_text()
    assert template.index("early_alliance_outcome_section") < template.index(
        "early_alliance_section,"
    )
