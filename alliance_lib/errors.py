"""The shared base of the library's typed data errors."""

from __future__ import annotations

from typing import Any

__all__ = ["DataError"]


class DataError(ValueError):
    """Data that cannot be analysed; names the offending column, row and value where known.

    Attributes
    ----------
    column, row, value : object or None
        The offending column, the row label (the ``row`` index from ``read_table`` is the line of
        the source file) and the value.

    Examples
    --------
    >>> err = DataError("not a number", column="wai_sr_3", row=12, value="n/a")
    >>> (str(err), err.row, isinstance(err, ValueError))
    ('not a number', 12, True)
    """

    def __init__(self, message: str, *, column: Any = None, row: Any = None, value: Any = None):
        super().__init__(message)
        self.column = column
        self.row = row
        self.value = value
