"""genmotion.world."""

__all__: list[str] = []
