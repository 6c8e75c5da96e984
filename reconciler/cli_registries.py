"""The commands about other MCP registries, `import` and `upstream`: arguments and commands beside `cli.py`.

`cli.build_parser` calls `add_registry_commands`; `cli.main` dispatches through `REGISTRY_COMMANDS`. `import`
calls `reconciler.manifests.importing.import_sources` and prints the YAML; `upstream` checks the servers a folder
imported from registries (`reconciler.engine.upstream`), records each finding as the `Upstream` condition of the
copy `apply` stored in the registry (when there is one), and exits 0 when all are active, 2 when one is deprecated
or deleted upstream, 1 on an error. Like every command, they import what they use inside the function, so
`--help` starts without pydantic or the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from reconciler.registry.managers import DEFAULT_MANAGER

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def add_registry_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, allow_private_default: bool
) -> None:
    add_import_parser(commands, allow_private_default=allow_private_default)
    upstream = commands.add_parser("upstream", help="check servers imported from registries for deprecation/deletion")
    upstream.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR")
    upstream.add_argument("-o", "--output", choices=["text", "json"], default="text")
    upstream.add_argument(
        "--registry",
        metavar="URL",
        help="where `apply` keeps the folder's status: each finding becomes the server's Upstream condition "
        "(default: $MCP_RECONCILER_REGISTRY, else sqlite:///mcp-registry.db; not created when missing)",
    )
    upstream.add_argument("--manager", default=DEFAULT_MANAGER, help="manager id of the registry's rows")
    upstream.add_argument("--token-env", default="MCP_RECONCILER_IMPORT_TOKEN", metavar="VAR", help="registry token")
    upstream.add_argument(
        "--allow-private-networks",
        action="store_true",
        default=allow_private_default,
        help="let the check reach registries on loopback and private addresses",
    )


def add_import_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, allow_private_default: bool
) -> None:
    imports = commands.add_parser(
        "import", help="server.json files, catalog presets or a Registry API → MCPServer YAML"
    )
    imports.add_argument("source", nargs="*", type=Path, help="server.json files, or folders of them")
    imports.add_argument("--preset", action="append", default=[], metavar="NAME", help="a catalog preset (repeatable)")
    imports.add_argument("--list-presets", action="store_true", help="list the catalog's presets and exit")
    imports.add_argument("--from", dest="upstream", metavar="URL", help="a Registry API (v0.1) base URL; with --server")
    imports.add_argument("--server", action="append", default=[], metavar="NAME", help="a server name at --from")
    imports.add_argument("--server-version", default="latest", metavar="VERSION", help="with --from (default: latest)")
    imports.add_argument("-n", "--namespace", help="namespace of the objects (default: the source's, else default)")
    imports.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the YAML here instead of stdout")
    imports.add_argument(
        "--token-env",
        default="MCP_RECONCILER_IMPORT_TOKEN",
        metavar="VAR",
        help="environment variable holding a bearer token for --from (never a flag: it would leak)",
    )
    imports.add_argument(
        "--allow-private-networks",
        action="store_true",
        default=allow_private_default,
        help="let --from reach loopback and private addresses",
    )


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    """Print (or write to `-o`) the YAML; notes go to stderr. Errors propagate for `cli.main` to map."""
    from reconciler.manifests import importing

    if args.list_presets:
        print("\n".join(f"{name:<16} {summary}" for name, summary in importing.preset_summaries()), file=out)
        return EXIT_OK
    imported = importing.import_sources(
        paths=args.source,
        presets=args.preset,
        upstream=args.upstream,
        servers=args.server,
        server_version=args.server_version,
        namespace=args.namespace,
        allow_private=args.allow_private_networks,
        token=os.environ.get(args.token_env) or None,
    )
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    text = importing.render_documents(imported.documents)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {len(imported.documents)} objects to {args.output}", file=sys.stderr)
    else:
        print(text, file=out, end="")
    return EXIT_OK


def cmd_upstream(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio  # here, not at the top: asyncio (and ssl with it) costs every other command's start
    import datetime as dt

    from reconciler.engine.upstream import UpstreamReason, UpstreamWatcher, record_findings, upstream_refs
    from reconciler.manifests import load_folder
    from reconciler.probe import ProbeSettings
    from reconciler.probe.registry_client import fetch_changes
    from reconciler.registry import open_registry_if_present
    from reconciler.registry.records import SourceRef

    desired = load_folder(args.filename)
    refs = upstream_refs(
        (SourceRef(r.kind, r.metadata.namespace, r.metadata.name), r.metadata.annotations) for r in desired.resources
    )
    settings = ProbeSettings(allow_private_networks=args.allow_private_networks)
    token = os.environ.get(args.token_env) or None

    async def fetch(registry: str, since: object) -> list[Any]:
        return await fetch_changes(
            registry, since=None, settings=settings, allow_private=args.allow_private_networks, token=token
        )

    findings, errors = asyncio.run(UpstreamWatcher(fetch).check(refs))
    registry = open_registry_if_present(args.registry, manager=args.manager) if findings else None
    if registry is not None:
        try:
            record_findings(registry, findings, now=dt.datetime.now(dt.UTC))
        finally:
            registry.close()
    elif findings:
        print("note: no registry to record the findings in (run apply first); they are only printed", file=sys.stderr)
    if args.output == "json":
        rows = [
            {
                "kind": f.ref.source.kind,
                "namespace": f.ref.source.namespace,
                "name": f.ref.source.name,
                "upstream": f.ref.name,
                "registry": f.ref.registry,
                "reason": str(f.reason),
                "message": f.message,
            }
            for f in findings
        ]
        print(json.dumps({"servers": rows, "errors": errors}, indent=2), file=out)
    else:
        for f in findings:
            print(f"MCPServer {f.ref.source.namespace}/{f.ref.source.name}: {f.reason}: {f.message}", file=out)
        if not refs:
            print(f"no MCPServer in {args.filename} records an upstream registry", file=out)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return EXIT_ERROR
    return EXIT_CHANGES if any(f.reason is not UpstreamReason.ACTIVE for f in findings) else EXIT_OK


REGISTRY_COMMANDS = {"import": cmd_import, "upstream": cmd_upstream}
