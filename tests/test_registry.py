"""Tests for alliance_lib.registry: definitions as data, checked against instruments.md."""

import textwrap

import pandas as pd
import pytest
import yaml
from instrument_keys import EXPECTED

import alliance_lib as al
from alliance_lib.registry import (
    BUILTIN_FOLDER,
    FACT_STATUSES,
    InstrumentError,
    UnknownInstrumentError,
    load_instrument,
    load_instruments,
)


@pytest.mark.parametrize("ident", sorted(EXPECTED))
def test_builtin_keys_match_reference(ident):
    prefix, n, lo, hi, integer, reverse, subscales = EXPECTED[ident]
    inst = al.get_instrument(ident)
    assert inst.prefix == prefix
    assert inst.n_items == n
    assert (inst.scale_min, inst.scale_max, inst.integer_scale) == (lo, hi, integer)
    assert inst.reverse == reverse
    assert dict(inst.subscales) == subscales
    assert inst.columns == tuple(f"{prefix}_{i}" for i in range(1, n + 1))
    assert inst.score_columns == (f"{prefix}_total", *(f"{prefix}_{s}" for s in subscales))


def test_list_instruments_has_all_eleven():
    tab = al.list_instruments()
    assert isinstance(tab, pd.DataFrame)
    assert set(tab["id"]) == set(EXPECTED)
    assert tab["prefix"].is_unique


def test_metrics_and_directions():
    metric = {i: al.get_instrument(i).metric for i in EXPECTED}
    assert metric == {
        "wai-sr": "mean", "wai": "mean", "wai-s": "mean", "haq-ii": "mean",
        "srs": "sum", "ors": "sum", "oq-45.2": "sum", "phq-9": "sum", "gad-7": "sum",
        "core-om": "mean_x10", "core-10": "sum",
    }  # fmt: skip
    better = {i for i in EXPECTED if al.get_instrument(i).direction == "higher_is_better"}
    assert better == {"wai-sr", "wai", "wai-s", "haq-ii", "srs", "ors"}


def test_missing_limits_match_issue_rules():
    lim = {i: dict(al.get_instrument(i).max_missing) for i in EXPECTED}
    assert lim["wai-sr"] == {"total": 2, "goal": 1, "task": 1, "bond": 1}
    assert lim["wai-s"] == {"total": 2, "goal": 1, "task": 1, "bond": 1}
    assert lim["wai"] == {"total": 3, "goal": 1, "task": 1, "bond": 1}
    assert al.get_instrument("wai").total_requires_subscales
    assert lim["oq-45.2"]["total"] == 4
    assert al.get_instrument("oq-45.2").missing_rule == "impute_subscale_mean"
    assert al.get_instrument("oq-45.2").subscales_require_total
    assert lim["core-om"] == {
        "total": 3, "non_risk": 3, "problems": 1, "functioning": 1, "wellbeing": 0, "risk": 0
    }  # fmt: skip
    assert lim["core-10"] == {"total": 1}
    for ident in ("phq-9", "gad-7", "srs", "ors"):
        assert lim[ident] == {"total": 0}


def test_known_pitfalls_are_avoided():
    # s12.1: CORE-OM reverses 32, not 30
    core = al.get_instrument("core-om")
    assert 32 in core.reverse and 30 not in core.reverse
    # s12.2: OQ-45 has nine reverse items, not 24
    assert len(al.get_instrument("oq-45.2").reverse) == 9
    # s12.3: WAI-S and WAI-SR keys differ, WAI-SR has no reverse items
    s, sr = al.get_instrument("wai-s"), al.get_instrument("wai-sr")
    assert s.subscales["task"] != sr.subscales["task"]
    assert s.subscales["goal"] != sr.subscales["goal"]
    assert s.subscales["bond"] == sr.subscales["bond"]
    # s12.6: CORE-10 RCI at 90%
    rc = al.get_instrument("core-10").norms["reliable_change"]
    assert (rc["points"], rc["confidence"]) == (6, 0.90)
    # s12.8: GAD-7 severe starts at 15
    bands = al.get_instrument("gad-7").norms["bands"]
    assert [b["lower"] for b in bands] == [0, 5, 10, 15]


@pytest.mark.parametrize("ident", sorted(EXPECTED))
def test_subscales_cover_items_once_except_composites(ident):
    inst = al.get_instrument(ident)
    subs = {k: v for k, v in inst.subscales.items() if k != "non_risk"}
    if subs:
        flat = sorted(i for items in subs.values() for i in items)
        assert flat == list(inst.items)


@pytest.mark.parametrize("ident", sorted(EXPECTED))
def test_every_fact_has_status_and_source(ident):
    inst = al.get_instrument(ident)
    for name in ("scale", "reverse", "metric", "missing_rule"):
        assert name in inst.facts
    for fact in inst.facts.values():
        assert fact.status in FACT_STATUSES
        assert len(fact.source) > 20


def test_uncertain_facts_follow_reference():
    assert "subscales" in al.get_instrument("wai-s").uncertain
    assert "subscales" in al.get_instrument("oq-45.2").uncertain
    assert "cutoff" in al.get_instrument("oq-45.2").uncertain
    assert set(al.get_instrument("haq-ii").uncertain) >= {"scale", "reverse"}
    assert al.get_instrument("wai-sr").uncertain == ()
    assert al.get_instrument("wai-sr").facts["missing_rule"].status == "local"
    assert al.get_instrument("oq-45.2").uncertain_facts("sd") == ("subscales",)
    assert al.get_instrument("oq-45.2").uncertain_facts("total") == ()


def test_score_range():
    assert al.get_instrument("core-om").score_range() == (0, 40)
    assert al.get_instrument("wai").score_range("bond", metric="sum") == (12, 84)
    assert al.get_instrument("srs").score_range() == (0, 40)


def test_get_instrument_case_and_passthrough():
    inst = al.get_instrument("PHQ-9")
    assert inst.id == "phq-9"
    assert al.get_instrument(inst) is inst


def test_unknown_instrument_suggests():
    with pytest.raises(UnknownInstrumentError, match="did you mean 'oq-45.2'"):
        al.get_instrument("oq-45")
    with pytest.raises(UnknownInstrumentError, match="did you mean 'core-om'"):
        al.get_instrument("core_om")


GOOD = """
id: my-scale
name: My scale
citation: Me (2024).
n_items: 3
scale: {min: 1, max: 4, integer: true}
reverse: [2]
subscales:
  a: [1, 2]
metric: mean
missing:
  rule: prorate
  max_missing: {total: 1}
direction: higher_is_better
facts:
  scale: {status: local, source: "our own pilot scale"}
  reverse: {status: local, source: "our own pilot scale"}
  subscales: {status: local, source: "our own pilot scale"}
  metric: {status: local, source: "our own pilot scale"}
  missing_rule: {status: local, source: "our own pilot scale"}
"""


def _write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_user_folder(tmp_path):
    _write(tmp_path, "mine.yaml", GOOD)
    inst = al.get_instrument("my-scale", folder=tmp_path)
    assert inst.prefix == "my_scale"
    assert inst.max_missing["a"] == 0  # a subscale without a limit allows none missing
    assert "my-scale" in set(al.list_instruments(folder=tmp_path)["id"])
    assert "wai-sr" in set(al.list_instruments(folder=tmp_path)["id"])
    assert set(load_instruments(tmp_path)) == {"my-scale"}


def test_user_definition_overrides_builtin(tmp_path):
    _write(tmp_path, "phq.yaml", GOOD.replace("id: my-scale", "id: PHQ-9"))
    assert al.get_instrument("phq-9", folder=tmp_path).n_items == 3
    assert al.get_instrument("phq-9").n_items == 9


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("n_items: 3\n", "", "n_items", "required"),
        ("reverse: [2]", "reverse: [5]", "reverse", "outside 1-3"),
        ("reverse: [2]", "reverse: [2, 2]", "reverse", "listed twice"),
        ("reverse: [2]", "revers: [2]", "revers", "did you mean 'reverse'"),
        ("  a: [1, 2]", "  a: [1, 9]", "subscales.a", "outside 1-3"),
        ("metric: mean", "metric: median", "metric", "must be one of"),
        ("scale: {min: 1, max: 4, integer: true}", "scale: {min: 4, max: 1, integer: true}", "scale", "below max"),
        ("max_missing: {total: 1}", "max_missing: {total: 3}", "missing.max_missing.total", "from 0 to 2"),
        ("max_missing: {total: 1}", "max_missing: {total: 1, b: 0}", "missing.max_missing.b", "not a scale"),
        ("direction: higher_is_better", "direction: up", "direction", "must be one of"),
        ('scale: {status: local, source: "our own pilot scale"}', 'scale: {status: sure, source: "x"}', "facts.scale.status", "must be one of"),
        ('  metric: {status: local, source: "our own pilot scale"}\n', "", "facts.metric", "source and status"),
    ],
)  # fmt: skip
def test_malformed_definition_names_file_and_field(tmp_path, old, new, field, message):
    assert old in GOOD
    path = _write(tmp_path, "bad.yaml", GOOD.replace(old, new))
    with pytest.raises(InstrumentError, match=message) as info:
        load_instrument(path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert str(path) in str(info.value) and field in str(info.value)


def test_invalid_yaml_and_duplicate_ids(tmp_path):
    path = _write(tmp_path, "broken.yaml", "id: [unclosed\n")
    with pytest.raises(InstrumentError, match="not valid YAML") as info:
        load_instrument(path)
    assert info.value.file == str(path)
    path.unlink()
    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(InstrumentError, match="already defined"):
        load_instruments(tmp_path)


def test_band_and_cutoff_validation(tmp_path):
    text = GOOD + "norms:\n  bands:\n    - {label: low, lower: 2}\n    - {label: high, lower: 1}\n"
    with pytest.raises(InstrumentError, match="must increase") as info:
        load_instrument(_write(tmp_path, "x.yaml", text))
    assert info.value.field == "norms.bands"
    text = GOOD + "norms:\n  cutoff: {value: 2, clinical_if: '=>'}\n"
    with pytest.raises(InstrumentError) as info:
        load_instrument(_write(tmp_path, "y.yaml", text))
    assert info.value.field == "norms.cutoff.clinical_if"


def test_builtin_folder_is_the_package_folder():
    assert (BUILTIN_FOLDER / "wai-sr.yaml").is_file()
    assert len(list(BUILTIN_FOLDER.glob("*.yaml"))) == 11


def test_no_item_wording_fields():
    # Item wording of copyrighted instruments never enters the repository: definitions have no
    # per-item text fields at all.
    for path in BUILTIN_FOLDER.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(raw) <= {
            "id", "name", "prefix", "citation", "license", "n_items", "scale", "reverse",
            "subscales", "metric", "missing", "direction", "norms", "facts", "notes",
        }  # fmt: skip
        assert all(isinstance(v, list) for v in (raw.get("subscales") or {}).values())


def test_user_prefix_clash_with_builtin(tmp_path):
    _write(tmp_path, "mine.yaml", GOOD + "prefix: wai_sr\n")
    with pytest.raises(
        InstrumentError, match="already used by the built-in instrument 'wai-sr'"
    ) as info:
        al.get_instrument("my-scale", folder=tmp_path)
    assert info.value.field == "prefix"


def test_every_instrument_pickles_plainly():
    # plain pickle (no by-value fallback): Dask ships instruments to its workers this way, and a
    # fallback to pickling by value raced with other threads on a local cluster
    import pickle

    from alliance_lib.registry import get_instrument

    for name in ("core-10", "core-om", "gad-7", "haq-ii", "oq-45.2", "ors", "phq-9", "srs"):
        inst = get_instrument(name)
        back = pickle.loads(pickle.dumps(inst))
        assert back == inst and back.to_dict() == inst.to_dict()
        assert type(back.subscales) is type(inst.subscales) and back.reverse == inst.reverse
    for name in ("wai", "wai-s", "wai-sr"):
        assert pickle.loads(pickle.dumps(get_instrument(name))) == get_instrument(name)
