"""Alembic migrations of the registry schema, shipped inside the package so they run wherever it is installed.

`store.open_registry` runs them on first use through `env.py`; developers add a revision with
`alembic -c reconciler/registry/migrations/alembic.ini revision -m "..."` and write explicit operations.
"""
