"""The OCI runtime-spec data: config.json / process.json / state / features models and their loaders.

Deliberately imports nothing: hot CLI commands (state, kill, ...) import engine.spec.constants or
engine.spec.version and must not drag pydantic in by way of this package's __init__.

- models.py: the pydantic models, the one definition of a valid document; rules.py: their rules beyond types.
- document.py: what the runtime uses: load_config/load_process/load_resources give the validated JSON object,
  checked by compiled.py (generated from the models by codegen.py), without importing pydantic.
- load.py: the same loaders returning the models, for tools and tests.
"""
