"""genmotion.data.toyworld."""

__all__: list[str] = []
