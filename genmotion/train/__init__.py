"""genmotion.train."""

__all__: list[str] = []
