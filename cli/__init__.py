"""The ``crucible-ray`` command: a thin click app over the library (parse, call the API, print)."""

from crucible_ray.cli._main import app, main

__all__ = ["app", "main"]
