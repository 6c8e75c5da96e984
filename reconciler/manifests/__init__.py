"""The folder-of-YAML driver's source: turns a git checkout into the engine's `DesiredInput`.

Called by the CLI (`validate`, `plan`, `apply`); never imports the operator, which reads the cluster instead.
"""

from reconciler.manifests.loading import (
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_NODES,
    MAX_FILE_BYTES,
    MAX_FILE_NODES,
    load_folder,
)

__all__ = ["MAX_DOCUMENT_DEPTH", "MAX_DOCUMENT_NODES", "MAX_FILE_BYTES", "MAX_FILE_NODES", "load_folder"]
