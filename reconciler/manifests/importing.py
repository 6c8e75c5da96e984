"""`server.json` → `MCPServer` YAML for git: what `mcp-reconciler import` writes.

The CLI reads the sources (a file, a folder of them, a preset, or a Registry API answer fetched by
`reconciler.probe.registry_client`), hands each document to `parse_server_json`, and renders what
`plan_import` returns with `render_documents`. Reading files happens here (`read_server_files`); the mapping is
pure and deterministic, so the same input always gives the same bytes:

- the first remote becomes `spec.url` and `spec.transport`; URL `{variables}` become `{{ tenant.vars.NAME }}`;
- a secret header becomes a `secretKeyRef` into a Secret stub `<server>-credentials` (written, empty, to fill
  in); `Authorization` becomes `auth.type: bearer` and a reconciler's own `apiKey` header `auth.type: apiKey`;
- a non-secret header keeps its value, else its default, else asks for a tenant variable;
- `packages` (local stdio servers) are skipped with a note: the reconciler registers remote servers only.

An entry served by a reconciler's Registry API carries its facts under `_meta`, so importing what we serve gives
back the same object (namespace, auth type and scheme, featured) rather than a lossy guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.api.common import GROUP_VERSION
from reconciler.api.serverjson import VARIABLE, Remote, ServerEntry, parse_server_json
from reconciler.engine.upstream import UPSTREAM_NAME, UPSTREAM_REGISTRY, UPSTREAM_VERSION
from reconciler.errors import InvalidInput, PermanentError, Problem

DEFAULT_NAMESPACE = "default"
MAX_FILE_BYTES = 1024 * 1024
"""Largest server.json read: a description of one server, not a data dump."""
MAX_FILES = 1000
IMPORTABLE_AUTH = ("none", "bearer", "apiKey", "oauthAuthorizationCode")
PRESET_META_KEY = "dev.reconciler.mcp/preset"
"""A catalog preset's hints: the auth type its publisher documents, and where."""
PRESETS = Path(__file__).with_name("presets")


@dataclass(frozen=True)
class Origin:
    """Where an entry came from: recorded on the object when it is a registry, so its lifecycle can be followed."""

    registry: str | None = None


@dataclass
class Imported:
    """The objects one import writes, and what it could not carry over."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def import_sources(
    *,
    paths: Sequence[Path] = (),
    presets: Sequence[str] = (),
    upstream: str | None = None,
    servers: Sequence[str] = (),
    server_version: str = "latest",
    namespace: str | None = None,
    allow_private: bool = False,
    token: str | None = None,
) -> Imported:
    """`mcp-reconciler import`: read every source, validate them all, map them; raises before anything is written."""
    if bool(upstream) != bool(servers):
        raise PermanentError("--from URL and --server NAME go together")
    if not (paths or presets or upstream):
        raise PermanentError("nothing to import: give server.json files or folders, --preset NAME, or --from/--server")
    sources = [loaded for path in paths for loaded in read_server_files(path)]
    sources += [read_preset(name) for name in presets]
    imported = plan_import(parse_sources(sources), namespace=namespace)
    if upstream:
        from reconciler.probe import ProbeSettings
        from reconciler.probe.registry_client import fetch_entry_sync

        settings = ProbeSettings(allow_private_networks=allow_private)
        fetched = [
            (
                f"{upstream} {name}",
                fetch_entry_sync(
                    upstream, name, version=server_version, settings=settings, allow_private=allow_private, token=token
                ),
            )
            for name in servers
        ]
        remote = plan_import(parse_sources(fetched), namespace=namespace, origin=Origin(upstream))
        imported.documents += remote.documents
        imported.notes += remote.notes
    if not imported.documents:
        for note in imported.notes:
            raise PermanentError(f"nothing importable: {note}")
        raise PermanentError("nothing importable")
    return imported


def read_server_files(path: Path) -> list[tuple[str, Any]]:
    """(source label, parsed JSON) for a file, or every `*.json` under a folder (sorted, bounded)."""
    if path.is_dir():
        files = sorted(candidate for candidate in path.rglob("*.json") if candidate.is_file())
        if not files:
            raise InvalidInput([Problem("no *.json files found", file=str(path))])
        if len(files) > MAX_FILES:
            raise InvalidInput([Problem(f"more than {MAX_FILES} *.json files", file=str(path))])
    elif path.is_file():
        files = [path]
    else:
        raise InvalidInput([Problem("no such file or folder", file=str(path))])
    return [(str(file), _read_json(file)) for file in files]


def _read_json(file: Path) -> Any:
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput([Problem(f"larger than {MAX_FILE_BYTES} bytes", file=str(file))])
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput([Problem("not UTF-8 text", file=str(file))]) from None
    except json.JSONDecodeError as err:
        raise InvalidInput([Problem(f"not JSON: {err.msg}", file=str(file), line=err.lineno)]) from None


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS.glob("*.json"))


def read_preset(name: str) -> tuple[str, Any]:
    """(source label, parsed JSON) of a catalog preset; `InvalidInput` lists the presets when there is no such one."""
    if name not in preset_names():
        known = ", ".join(preset_names())
        raise InvalidInput([Problem(f"no such preset (known: {known})", kind="preset", name=name)])
    path = PRESETS / f"{name}.json"
    return f"preset {name}", _read_json(path)


def preset_summaries() -> list[tuple[str, str]]:
    """(preset, `title — url (auth)`) for `import --list-presets`."""
    summaries = []
    for name in preset_names():
        document = _read_json(PRESETS / f"{name}.json")
        remote = document["remotes"][0]
        auth = document.get("_meta", {}).get(PRESET_META_KEY, {}).get("auth", {}).get("type", "none")
        summaries.append((name, f"{document.get('title', name)} — {remote['url']} ({remote['type']}, auth {auth})"))
    return summaries


def parse_sources(sources: Sequence[tuple[str, Any]]) -> list[ServerEntry]:
    """Every source parsed; all problems of all sources in one `InvalidInput`, so nothing is written."""
    entries: list[ServerEntry] = []
    problems: list[Problem] = []
    for source, document in sources:
        try:
            entries.append(parse_server_json(document, source=source))
        except InvalidInput as err:
            problems.extend(err.problems)
    if problems:
        raise InvalidInput(problems)
    names: dict[str, str] = {}
    for (source, _document), entry in zip(sources, entries, strict=True):
        if entry.server.name in names:
            problems.append(
                Problem(
                    f"also defined in {names[entry.server.name]}",
                    file=source,
                    kind="server.json",
                    name=entry.server.name,
                )
            )
        names.setdefault(entry.server.name, source)
    if problems:
        raise InvalidInput(problems)
    return entries


GENERIC_NAMES = frozenset({"mcp", "server", "mcp-server", "remote", "api"})


def object_name(registry_name: str) -> str:
    """`io.github.acme/Weather_API` → `weather-api`: the part after the slash as a DNS-1123 name; a generic one
    (`com.notion/mcp`) gives way to the namespace's last label (`notion`)."""
    namespace, _, tail = registry_name.lower().rpartition("/")
    if tail in GENERIC_NAMES and namespace:
        tail = namespace.rsplit(".", 1)[-1]
    name = re.sub(r"[^a-z0-9.-]+", "-", tail).strip("-.")
    return name[:253] or "server"


def plan_import(
    entries: Sequence[ServerEntry], *, namespace: str | None = None, origin: Origin | None = None
) -> Imported:
    """The `MCPServer` (and Secret stub) documents for `entries`, in order, with notes about what was skipped."""
    imported = Imported()
    for entry in entries:
        _import_one(entry, imported, namespace=namespace, origin=origin or Origin())
    return imported


def _import_one(entry: ServerEntry, imported: Imported, *, namespace: str | None, origin: Origin) -> None:
    server, live = entry.server, dict(entry.live)
    preset = server.meta.get(PRESET_META_KEY)
    if not live.get("auth") and isinstance(preset, Mapping) and isinstance(preset.get("auth"), Mapping):
        live["auth"] = dict(preset["auth"])
    name = str(live.get("server") or object_name(server.name))
    target_namespace = namespace or str(live.get("namespace") or DEFAULT_NAMESPACE)
    status, message = entry.status
    if status != "active":
        imported.notes.append(f"{server.name}: the registry marks it {status}" + (f": {message}" if message else ""))
    if not server.remotes:
        if server.packages:
            what = ", ".join(sorted({p.identifier or "?" for p in server.packages}))
            imported.notes.append(
                f"{server.name}: skipped: only local packages ({what}); the reconciler registers remote servers"
            )
        else:
            imported.notes.append(f"{server.name}: skipped: no remotes")
        return
    if server.packages:
        imported.notes.append(f"{server.name}: its local packages are skipped; the remote is imported")
    if len(server.remotes) > 1:
        imported.notes.append(
            f"{server.name}: {len(server.remotes)} remotes; the first ({server.remotes[0].type}) is imported"
        )
    remote = server.remotes[0]
    secret_name = f"{name}-credentials"
    secret_keys: dict[str, str] = {}
    spec: dict[str, Any] = {}
    if server.title:
        spec["displayName"] = server.title
    spec["description"] = server.description
    spec["url"] = _templated(remote.url)
    spec["transport"] = remote.type
    if live.get("featured"):
        spec["featured"] = True
    if live.get("enabled") is False:
        spec["enabled"] = False
    headers, auth = _headers_and_auth(remote, live, secret_name=secret_name, secret_keys=secret_keys)
    live_auth = live.get("auth")
    if auth is None and isinstance(live_auth, Mapping) and live_auth.get("type") == "oauthAuthorizationCode":
        auth = {"type": "oauthAuthorizationCode", "pkce": str(live_auth.get("pkce", "public"))}
        scopes = live_auth.get("scopes")
        if isinstance(scopes, list) and scopes:
            auth["scopes"] = [str(scope) for scope in scopes]
    if headers:
        spec["headers"] = headers
    if auth is not None:
        spec["auth"] = auth
    variables = sorted(set(VARIABLE.findall(remote.url)) | _header_variables(remote))
    if variables:
        imported.notes.append(
            f"{server.name}: set tenant variables {', '.join(variables)} (see `{{{{ tenant.vars.NAME }}}}`)"
        )
    _note_auth(server.name, live, imported)
    metadata: dict[str, Any] = {"name": name, "namespace": target_namespace}
    if origin.registry is not None:
        metadata["annotations"] = {
            UPSTREAM_REGISTRY: origin.registry,
            UPSTREAM_NAME: server.name,
            UPSTREAM_VERSION: server.version,
        }
    imported.documents.append({"apiVersion": GROUP_VERSION, "kind": "MCPServer", "metadata": metadata, "spec": spec})
    if secret_keys:
        imported.documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": target_namespace},
                "stringData": {key: "" for key in sorted(secret_keys)},
            }
        )
        described = "; ".join(f"{key}: {text}" for key, text in sorted(secret_keys.items()))
        imported.notes.append(f"{server.name}: fill in Secret {target_namespace}/{secret_name} ({described})")


def _templated(text: str) -> str:
    return VARIABLE.sub(lambda match: "{{ tenant.vars." + match.group(1) + " }}", text)


def _header_variables(remote: Remote) -> set[str]:
    found: set[str] = set()
    for header in remote.headers:
        if not header.is_secret and header.value is None and header.default is None:
            found.add(_variable_name(header.name))
        elif not header.is_secret and header.value:
            found.update(VARIABLE.findall(header.value))
    return found


def _variable_name(header: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]+", "_", header).strip("_").lower() or "header"


def _secret_key(header: str) -> str:
    return re.sub(r"[^-._a-zA-Z0-9]+", "-", header).lower()


def _headers_and_auth(
    remote: Remote, live: Mapping[str, Any], *, secret_name: str, secret_keys: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    live_auth = live.get("auth") if isinstance(live.get("auth"), Mapping) else {}
    assert isinstance(live_auth, Mapping)
    auth_type = live_auth.get("type")
    headers: list[dict[str, Any]] = []
    auth: dict[str, Any] | None = None
    for header in remote.headers:
        key = _secret_key(header.name)
        if (
            header.is_secret
            and header.name.lower() == "authorization"
            and auth is None
            and auth_type in (None, "bearer")
        ):
            auth = {"type": "bearer", "secretKeyRef": {"name": secret_name, "key": key}}
            scheme = live_auth.get("scheme")
            if isinstance(scheme, str) and scheme != "Bearer":
                auth["scheme"] = scheme
            secret_keys[key] = header.description or "the bearer token, without the scheme"
        elif header.is_secret and auth_type == "apiKey" and header.name == live_auth.get("headerName") and auth is None:
            auth = {"type": "apiKey", "secretKeyRef": {"name": secret_name, "key": key}}
            if header.name != "X-API-Key":
                auth["headerName"] = header.name
            secret_keys[key] = header.description or "the API key"
        elif header.is_secret:
            headers.append({"name": header.name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}})
            secret_keys[key] = header.description or f"the {header.name} header"
        else:
            value = header.value if header.value is not None else header.default
            if value is None:
                value = "{{ tenant.vars." + _variable_name(header.name) + " }}"
            headers.append({"name": header.name, "value": _templated(value)})
    return headers, auth


def _note_auth(name: str, live: Mapping[str, Any], imported: Imported) -> None:
    live_auth = live.get("auth")
    if isinstance(live_auth, Mapping) and live_auth.get("type") not in (None, *IMPORTABLE_AUTH):
        imported.notes.append(
            f"{name}: the source uses auth type {live_auth.get('type')}; set spec.auth by hand (no secrets travel)"
        )


def render_documents(documents: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML, keys in the order built, so the same input always renders the same bytes."""
    return "---\n".join(
        yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
        for document in documents
    )
