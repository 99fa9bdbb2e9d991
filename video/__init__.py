"""genmotion.video."""

__all__: list[str] = []
