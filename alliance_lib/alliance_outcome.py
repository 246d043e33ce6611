"""Alliance-outcome models: within/between decomposition, lagged models, therapist effects."""

__all__: list[str] = []
