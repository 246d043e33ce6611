"""The library's one error tree: every error it raises on purpose derives from :class:`AllianceError`.

::

    AllianceError                     file, row, column, value, hint (each None when not known)
    ├── DataError (ValueError)        data that cannot be analysed: values, models, change events
    │   ├── MissingColumnsError       a mapped column is absent: the one error for a misspelt
    │   │                             column in every analysis, with "did you mean"
    │   ├── ScoringError              invalid item cells (``.cells`` lists every one; scoring)
    │   └── ReadError, ReshapeError   a file that cannot be read or reshaped (io)
    ├── DefinitionError (ValueError)  an instrument definition, a study YAML or an analysis
    │   │                             option (keyword value) that cannot be used
    │   ├── InstrumentError           a malformed definition (``field``: the dotted key)
    │   ├── UnknownInstrumentError    an id not in the registry (also a LookupError)
    │   └── StudyError                a study YAML that cannot be used (study)
    └── ReportError (RuntimeError)    a report run that failed

Only classes that add something (a field, a second base) exist. The older names that added
nothing are kept as names of their base, so imports and ``except`` clauses keep working:
``ModelError``, ``ReliabilityError``, ``RaterAgreementError``, ``ChangeInputError`` and
``EngineError`` are :class:`DataError`; ``NormsError`` is :class:`DefinitionError`.

Every analysis checks its columns and values in one intake stage
(:func:`alliance_lib.frame.model_frame`), so the same mistake gives the same error everywhere.
Callers catch :class:`AllianceError` (the command line prints one line and exits with status 2);
the ``ValueError`` / ``RuntimeError`` bases keep older ``except ValueError`` code working.
(``TypeError`` is left for calls Python itself would reject, e.g. an unknown keyword.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["AllianceError", "DataError", "DefinitionError", "MissingColumnsError", "ReportError"]


class AllianceError(Exception):
    """Base of every error the library raises on purpose.

    Attributes
    ----------
    file, row, column, value : object or None
        Where the problem is: the file, the row label (the ``row`` index from ``read_table`` is the
        line of the source file), the column and the offending value, where known.
    hint : str or None
        What to do about it.

    Examples
    --------
    >>> err = AllianceError("not a number", column="wai_sr_3", row=12, value="n/a")
    >>> (str(err), err.row, err.file)
    ('not a number', 12, None)
    """

    def __init__(
        self,
        message: str = "",
        *,
        file: Any = None,
        row: Any = None,
        column: Any = None,
        value: Any = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        # subclasses may have set these before calling us; keep what they set
        for name, val in (("file", file), ("row", row), ("column", column), ("value", value)):
            if val is not None or not hasattr(self, name):
                setattr(self, name, val)
        if hint is not None or not hasattr(self, "hint"):
            self.hint = hint


class DataError(AllianceError, ValueError):
    """Data that cannot be analysed; names the offending file, column, row and value where known.

    Examples
    --------
    >>> err = DataError("not a number", column="wai_sr_3", row=12, value="n/a")
    >>> (str(err), err.row, isinstance(err, ValueError), isinstance(err, AllianceError))
    ('not a number', 12, True, True)
    """


class MissingColumnsError(DataError):
    """Columns an analysis needs that the table lacks: the one error for a misspelt column.

    Every analysis raises it from its intake stage (:func:`alliance_lib.frame.model_frame`), with
    a "did you mean" for near misses.

    Attributes
    ----------
    missing : list of str
        The absent columns (``column`` is the first).
    suggestions : dict of str to str
        Absent column to the closest existing column name (difflib), for near misses.
    roles : dict of str to str
        Absent column to the role (keyword) it was given for, where known.

    Examples
    --------
    >>> err = MissingColumnsError(["wai_totl"], {"wai_totl": "wai_total"}, "fit_trajectory",
    ...                           roles={"wai_totl": "score"})
    >>> print(err)
    fit_trajectory: column(s) not found: wai_totl (score). Did you mean 'wai_total' for 'wai_totl'?
    >>> err.column, err.hint
    ('wai_totl', "did you mean 'wai_total'?")
    """

    def __init__(
        self,
        missing: list[str],
        suggestions: dict[str, str] | None = None,
        what: str = "data",
        *,
        roles: dict[str, str] | None = None,
        **fields: Any,
    ):
        self.missing = list(missing)
        self.suggestions = dict(suggestions or {})
        self.roles = {c: r for c, r in (roles or {}).items() if c in self.missing}

        def name(c):
            role = self.roles.get(c)
            return f"{c} ({role})" if role and role != c else str(c)

        shown = ", ".join(name(c) for c in self.missing[:12]) + (
            f", ... ({len(self.missing)} in all)" if len(self.missing) > 12 else ""
        )
        hint = ""
        if self.suggestions:
            pairs = list(self.suggestions.items())[:6]
            hint = " Did you mean " + ", ".join(f"{v!r} for {k!r}" for k, v in pairs) + "?"
        fields.setdefault("column", self.missing[0] if self.missing else None)
        if self.suggestions and "hint" not in fields:
            first = next(iter(self.suggestions.values()))
            fields["hint"] = f"did you mean {first!r}?"
        super().__init__(f"{what}: column(s) not found: {shown}.{hint}", **fields)


class DefinitionError(AllianceError, ValueError):
    """An instrument definition or a study YAML that cannot be used (names the file and key)."""


class ReportError(AllianceError, RuntimeError):
    """A report run that failed; ``failed_notebook`` is kept for inspection when it exists.

    Examples
    --------
    >>> ReportError("cell 3 failed").failed_notebook is None
    True
    """

    def __init__(self, message: str, failed_notebook: Any = None, **fields: Any):
        self.failed_notebook = failed_notebook
        super().__init__(message, **fields)
