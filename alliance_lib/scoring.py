"""Scoring questionnaires by their instrument definitions."""

__all__: list[str] = []
