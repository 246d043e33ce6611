"""Growth models of alliance trajectories (sessions in clients in therapists)."""

__all__: list[str] = []
