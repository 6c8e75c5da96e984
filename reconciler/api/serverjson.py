"""The `server.json` format (MCP Registry, schema 2025-12-11) as far as the reconciler reads it, and its meta keys.

`mcp-reconciler import` validates publishers' files and Registry API answers with `parse_server_json`; the
Registry API (`runtime/publishing.py`) writes the same shape and the same `_meta` keys. Only what importing
uses is typed strictly (name, description, version, remotes with headers and URL variables); other fields are
kept as given, so a newer publisher's extras do not fail an import. No I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.errors import InvalidInput, Problem

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
OFFICIAL_META_KEY = "io.modelcontextprotocol.registry/official"
LIVE_META_KEY = "dev.reconciler.mcp/live"
"""Our live facts about a server (tools, health, auth), under the reverse-DNS form of the CRDs' API group."""
NAME_PATTERN = r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"
URL_TEMPLATE_PATTERN = r"^(https?://[^\s]+|\{[a-zA-Z_][a-zA-Z0-9_]*\}[^\s]*)$"
VARIABLE = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
VERSION_RANGE = re.compile(r"^[\^~<>=]|\.x$|\.x\.|\*")
KIND = "server.json"


class _Lenient(BaseModel):
    """Unknown fields are kept, not refused: the format grows, and an import reads only what it maps."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class Input(_Lenient):
    """A value a client supplies (a header value or a URL variable)."""

    description: str | None = None
    is_required: bool = Field(False, alias="isRequired")
    is_secret: bool = Field(False, alias="isSecret")
    value: str | None = None
    default: str | None = None
    placeholder: str | None = None
    choices: list[str] | None = None


class KeyValueInput(Input):
    name: Annotated[str, Field(min_length=1)]


class Remote(_Lenient):
    """A remote transport: what the reconciler registers as `spec.url` and `spec.transport`."""

    type: Literal["streamable-http", "sse"]
    url: Annotated[str, Field(pattern=URL_TEMPLATE_PATTERN)]
    headers: list[KeyValueInput] = Field(default_factory=list)
    variables: dict[str, Input] = Field(default_factory=dict)


class Package(_Lenient):
    registry_type: str | None = Field(None, alias="registryType")
    identifier: str | None = None


class ServerJson(_Lenient):
    """One `server.json`."""

    name: Annotated[str, Field(min_length=3, max_length=200, pattern=NAME_PATTERN)]
    description: Annotated[str, Field(min_length=1, max_length=100)]
    version: Annotated[str, Field(min_length=1, max_length=255)]
    title: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    remotes: list[Remote] = Field(default_factory=list)
    packages: list[Package] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict, alias="_meta")

    @field_validator("version")
    @classmethod
    def _not_a_range(cls, version: str) -> str:
        if version == "latest" or VERSION_RANGE.search(version):
            raise ValueError(f"must be one exact version, not {version!r}")
        return version


class ServerEntry(BaseModel):
    """A `server.json` with the registry's metadata around it (a Registry API `ServerResponse`), or alone."""

    model_config = ConfigDict(frozen=True)

    server: ServerJson
    registry_meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def live(self) -> dict[str, Any]:
        """Our live facts, when the entry came from a reconciler's Registry API; empty otherwise."""
        found = self.registry_meta.get(LIVE_META_KEY) or self.server.meta.get(LIVE_META_KEY)
        return dict(found) if isinstance(found, dict) else {}

    @property
    def status(self) -> tuple[str, str | None]:
        """The official lifecycle status and its message (`active` when the registry gave none)."""
        official = self.registry_meta.get(OFFICIAL_META_KEY)
        if not isinstance(official, dict):
            return "active", None
        return str(official.get("status", "active")), official.get("statusMessage")


def parse_server_json(document: Any, *, source: str) -> ServerEntry:
    """A `server.json` or a `ServerResponse` (`{server, _meta}`) → `ServerEntry`.

    `InvalidInput` names the source, the server (when its name could be read) and every field that is wrong.
    """
    if not isinstance(document, dict):
        raise InvalidInput([Problem("expected a JSON object", file=source, kind=KIND)])
    wrapped = isinstance(document.get("server"), dict)
    inner = document["server"] if wrapped else document
    name = inner.get("name") if isinstance(inner.get("name"), str) else None
    try:
        server = ServerJson.model_validate(inner)
    except ValidationError as err:
        problems = [
            Problem(
                error["msg"],
                file=source,
                kind=KIND,
                name=name or "(unnamed)",
                field=("server." if wrapped else "") + ".".join(str(part) for part in error["loc"]),
            )
            for error in err.errors()
        ]
        raise InvalidInput(problems) from None
    for index, remote in enumerate(server.remotes):
        for variable in VARIABLE.findall(remote.url):
            if variable not in remote.variables:
                raise InvalidInput(
                    [
                        Problem(
                            f"the URL uses {{{variable}}} but `variables` does not declare it",
                            file=source,
                            kind=KIND,
                            name=server.name,
                            field=("server." if wrapped else "") + f"remotes.{index}.url",
                        )
                    ]
                )
    meta = document.get("_meta") if wrapped else None
    return ServerEntry(server=server, registry_meta=meta if isinstance(meta, dict) else {})
