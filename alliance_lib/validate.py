"""Row-level validation: clean rows and quarantined rows with reasons."""

__all__: list[str] = []
