"""genmotion.cache."""

__all__: list[str] = []
