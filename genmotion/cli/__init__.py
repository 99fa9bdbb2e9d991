"""The `genmotion` command line: one typer app, a command per generator, thin over the Python API."""

__all__: list[str] = []
