"""The profiled (RE)ML engine for nested linear mixed models; knows only arrays, no pandas."""

from alliance_lib.engine.lmm import (
    GRADIENT_TOL,
    SINGULAR_TOL,
    EngineError,
    EngineFit,
    NestedLMM,
    fit_nested_lmm,
)

__all__ = [
    "EngineError",
    "EngineFit",
    "NestedLMM",
    "SINGULAR_TOL",
    "GRADIENT_TOL",
    "fit_nested_lmm",
]
