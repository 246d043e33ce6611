"""alliance_lib: scoring, trajectories, change events and study reports for alliance research.

The public names load on first use (PEP 562), so ``import alliance_lib`` and the ``alliance``
command start fast (``alliance --version`` imports neither pandas nor SciPy).

Examples
--------
>>> import alliance_lib as al
>>> isinstance(al.__version__, str), callable(al.score)
(True, True)
"""

from __future__ import annotations

import importlib
import sys
import types

from alliance_lib._version import __version__

#: Modules whose ``__all__`` makes up the public API, in lookup order.
_API_MODULES = (
    "errors",
    "alliance_outcome",
    "change",
    "io",
    "norms",
    "raters",
    "registry",
    "reliability",
    "report",
    "ruptures",
    "scoring",
    "simulate",
    "study",
    "trajectories",
    "validate",
    "waves",
    "monitoring",
    "talking_therapies",
    "cross_lagged",
    "sources",
    "redcap",
    "qualtrics",
)
#: Submodules reachable as attributes (``al.plots.trajectory_plot``).
_SUBMODULES = ("plots", "privacy", "sections", "engine")
#: Names exported by a module that does not list them in ``__all__``.
_EXTRA = {"run_report": "report", "ReportError": "errors", "WaveData": "waves"}


def _public(module: str) -> tuple[str, ...]:
    return tuple(getattr(importlib.import_module(f"alliance_lib.{module}"), "__all__", ()))


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"alliance_lib.{name}")
    if name == "__all__":
        names = [n for m in _API_MODULES for n in _public(m)]
        return sorted(set(names) | set(_EXTRA) | {"__version__"})
    if name in _EXTRA:
        return getattr(importlib.import_module(f"alliance_lib.{_EXTRA[name]}"), name)
    if name.startswith("__"):
        raise AttributeError(name)
    for module in _API_MODULES:
        if name in _public(module):
            value = getattr(importlib.import_module(f"alliance_lib.{module}"), name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'alliance_lib' has no attribute {name!r}")


#: Public functions named like their module (``al.validate`` is the function, as it always was).
_SAME_NAME = frozenset({"reliability", "ruptures", "validate"})


class _Package(types.ModuleType):
    """The package module: importing ``alliance_lib.validate`` binds the *function* ``validate``
    as the package attribute (the import system would bind the module of that name)."""

    def __setattr__(self, name, value):
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")) | set(_SUBMODULES))
