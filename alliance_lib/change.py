"""Reliable and clinically significant change; sudden gains and losses."""

__all__: list[str] = []
