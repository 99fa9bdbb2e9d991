"""genmotion.nn."""

__all__: list[str] = []
