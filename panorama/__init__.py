"""genmotion.panorama."""

__all__: list[str] = []
