"""Run an Argo CD health script the way Argo CD does, with a real Lua interpreter (lupa's embedded Lua 5.1).

Used by `test_health.py`. Argo CD (util/lua/lua.go) runs health scripts in gopher-lua, a Lua 5.1, with only
the base, table, package and a safe os library opened, no string or math library (so strings have no
methods either); it sets the global `obj` to the live object (numbers as float64, lists as sequences,
null fields absent), runs the chunk, and decodes the returned table's `status` and `message`, turning an
unknown status into Unknown. This module reproduces that sandbox so a script that would fail in Argo CD
fails here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import lupa.lua51 as lua51
except ImportError as err:  # a required dev dependency: fail loudly, never skip
    raise ImportError("lupa is required to run the Argo CD health checks: .venv/bin/pip install -e '.[dev]'") from err

__all__ = ["VALID_STATUSES", "Health", "run_health_script"]

VALID_STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})

# What Argo CD's VM leaves reachable: Lua 5.1's base library, table, package and a reduced os.
_SANDBOX = """
debug.setmetatable("", nil)
local safe_os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime }
for _, name in ipairs({ "string", "math", "io", "debug", "coroutine", "os", "python" }) do
  _G[name] = nil
  package.loaded[name] = nil
end
os = safe_os
package.loaded.os = safe_os
"""


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[str(key)] = _to_lua(runtime, item)
        return table
    if isinstance(value, list | tuple):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = _to_lua(runtime, item)
        return table
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        # The API server sends RFC 3339 strings; YAML fixtures may have parsed them into datetimes.
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot pass {value!r} to Lua")


def run_health_script(script: str | Path, obj: Mapping[str, Any]) -> Health:
    """The health status Argo CD would compute for `obj` with this script."""
    source = script.read_text() if isinstance(script, Path) else script
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    runtime.execute(_SANDBOX)
    runtime.globals()["obj"] = _to_lua(runtime, obj)
    returned = runtime.execute(source)
    if lua51.lua_type(returned) != "table":
        raise TypeError(f"expect table output from Lua script, not {lua51.lua_type(returned) or type(returned)}")
    status = returned["status"]
    message = returned["message"]
    if status not in VALID_STATUSES:
        return Health("Unknown", "Lua returned an invalid health status")
    return Health(str(status), "" if message is None else str(message))
