"""genmotion.rigging."""

__all__: list[str] = []
