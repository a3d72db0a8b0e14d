"""The OCI runtime-spec data: config.json / process.json / state / features models and their loaders.

Deliberately imports nothing: hot CLI commands (state, kill, ...) import engine.spec.constants or
engine.spec.version and must not drag pydantic in by way of this package's __init__.
Import engine.spec.models or engine.spec.load explicitly where a validated Spec is needed.
"""
