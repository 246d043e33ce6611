"""Agreement between client and therapist ratings of the same sessions."""

__all__: list[str] = []
