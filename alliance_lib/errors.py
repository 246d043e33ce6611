"""The library's one error tree: every error it raises on purpose derives from :class:`AllianceError`.

::

    AllianceError                 file, row, column, value, hint (each None when not known)
    ├── DataError (ValueError)    data that cannot be analysed: reading, validation, scoring, models
    ├── DefinitionError (ValueError)  an instrument definition or a study YAML that cannot be used
    └── ReportError (RuntimeError)    a report run that failed

Callers catch :class:`AllianceError` (the command line prints one line and exits with status 2);
the ``ValueError`` / ``RuntimeError`` bases keep older ``except ValueError`` code working.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AllianceError", "DataError", "DefinitionError", "ReportError"]


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
