"""The manager id recorded on the rows a driver owns, alone in a module that imports nothing.

`--help`, `validate` and the operator's settings need only this constant as a default; taking it from here
spares them the record types (and orjson) that `records.py` loads. A folder is the complete desired state of
its manager, so two folders applied under two managers never prune each other's rows.
"""

DEFAULT_MANAGER = "mcp-reconciler"
