"""`mcp-reconciler import`: its arguments and its command, kept beside `cli.py` so the CLI module stays short.

`cli.build_parser` calls `add_import_parser`; `cli.main` dispatches to `cmd_import`, which calls
`reconciler.manifests.importing.import_sources` and prints. Like every command, it imports what it uses inside
the function, so `--help` starts without pydantic or the probe.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

EXIT_OK = 0


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
