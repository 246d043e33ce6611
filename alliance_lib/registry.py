"""The instrument registry: loads instrument definitions (YAML files) and looks them up."""

__all__: list[str] = []
