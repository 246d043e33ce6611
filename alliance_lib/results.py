"""Machine-readable report results: every number a report shows, as deterministic JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Results", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Convert pandas/NumPy values to plain JSON types (NaN and infinities become ``None``).

    The library's one JSON converter: every ``to_dict()`` and ``results.json`` goes through it.
    Mappings become dicts with text keys, sequences and arrays lists, NumPy scalars Python
    numbers, timestamps ISO text, a DataFrame a list of records (its index as a column unless it
    is a plain range) and anything else its text.

    Examples
    --------
    >>> to_jsonable({"a": np.float64(1.5), "b": [np.nan, np.int64(2)]})
    {'a': 1.5, 'b': [None, 2]}
    >>> to_jsonable(pd.DataFrame({"x": [1, 2]}, index=["p", "q"]))
    [{'index': 'p', 'x': 1}, {'index': 'q', 'x': 2}]
    """
    if isinstance(value, pd.DataFrame):
        frame = value
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        return [to_jsonable(r) for r in frame.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    return value if isinstance(value, str) else str(value)


class Results:
    """An ordered collection of report sections, written as JSON byte for byte the same for the
    same inputs.

    Examples
    --------
    >>> r = Results()
    >>> r.add("sample", {"n_clients": 3})
    >>> r.get("sample")["n_clients"]
    3
    >>> r.to_json().splitlines()[0]
    '{'
    """

    def __init__(self) -> None:
        self._sections: dict[str, Any] = {}

    def add(self, section: str, value: Any) -> None:
        """Store (or replace) a section; values are converted to JSON types at once."""
        self._sections[section] = to_jsonable(value)

    def skip(self, section: str, reason: str) -> None:
        """Record that a section was skipped and why."""
        self._sections[section] = {"skipped": True, "reason": reason}

    def get(self, section: str) -> Any:
        return self._sections[section]

    def sections(self) -> list[str]:
        return list(self._sections)

    def to_json(self) -> str:
        return json.dumps(self._sections, indent=2, allow_nan=False, ensure_ascii=False) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path
