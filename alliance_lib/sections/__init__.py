"""Report sections: one function per section, each returning a :class:`Section`."""

from alliance_lib.sections.base import FORMATS, Figure, Section, Table

__all__ = ["FORMATS", "Figure", "Section", "Table"]
