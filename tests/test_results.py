"""results.json: plain JSON types, NaN as null, deterministic bytes."""

import json

import numpy as np
import pandas as pd
import pytest

from alliance_lib.results import Results, to_jsonable


def test_types_are_plain():
    value = to_jsonable(
        {
            "i": np.int32(3),
            "f": np.float32(0.5),
            "b": np.bool_(True),
            "nan": float("nan"),
            "inf": np.inf,
            "ts": pd.Timestamp("2025-01-02"),
        }
    )
    assert value == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "nan": None,
        "inf": None,
        "ts": "2025-01-02T00:00:00",
    }
    assert type(value["i"]) is int and type(value["f"]) is float


def test_frames_become_records_with_their_index():
    df = pd.DataFrame(
        {"estimate": [1.0, np.nan]}, index=pd.Index(["Intercept", "session"], name="term")
    )
    assert to_jsonable(df) == [
        {"term": "Intercept", "estimate": 1.0},
        {"term": "session", "estimate": None},
    ]


def test_deterministic_and_strict_json(tmp_path):
    def build():
        r = Results()
        r.add("a", {"x": 0.1 + 0.2})
        r.skip("b", "no data")
        return r

    p1, p2 = build().write(tmp_path / "1.json"), build().write(tmp_path / "2.json")
    assert p1.read_bytes() == p2.read_bytes()
    loaded = json.loads(p1.read_text())
    assert loaded == {"a": {"x": 0.30000000000000004}, "b": {"skipped": True, "reason": "no data"}}
    with pytest.raises(KeyError):
        build().get("c")
