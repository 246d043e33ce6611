"""Simulated alliance studies with known true values."""

__all__: list[str] = []
