"""Alliance ruptures and repairs from session-by-session scores."""

__all__: list[str] = []
