"""Reliability estimates: Cronbach's alpha, McDonald's omega, item statistics."""

__all__: list[str] = []
