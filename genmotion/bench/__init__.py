"""genmotion.bench."""

__all__: list[str] = []
