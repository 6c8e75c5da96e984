"""Lazy package exports (PEP 562): a package's `__init__` names where each export lives, and the module is
imported on first use of a name.

Used by the package `__init__`s that re-export heavy modules (the registry's SQLAlchemy, the probe's mcp SDK,
the credentials' httpx2), so that importing one light submodule, or the package for one light name, does not
pay for the rest, and a CLI command imports only what it uses. Each such `__init__` also imports the same names
under `TYPE_CHECKING`, so type checkers and import-linter see the real dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Iterable[str]], *, relative_to: str | None = None
) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: `modules` maps a submodule (relative to `package`, or to
    `relative_to` for a plain module re-exporting its siblings) to the names it exports. A name is imported once
    and then cached in the namespace of `package`."""
    base = relative_to or package
    origin = {name: f"{base}.{module}" for module, names in modules.items() for name in names}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in origin:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin[name]), name)
        namespace[name] = value
        return value

    return __getattr__
