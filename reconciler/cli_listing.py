"""The `get` command: objects as last applied, with their status, how many members connected each
per-member credential, and each authorization-code server's members' tokens (`status.oauth`) as of now.

`cli.build_parser` declares its arguments; `cli.main` dispatches to `cmd_get` (and `demo` calls it after its
apply). Like every command it imports what it uses inside the function, so `--help` starts without pydantic,
and `get` without the mcp SDK or the endpoint (a test pins both).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from reconciler.errors import PermanentError

EXIT_OK = 0


def cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler import presenting
    from reconciler.api import KINDS
    from reconciler.engine.statuses.oauth import MEMBER_AUTHORIZED, horizon, oauth_health
    from reconciler.registry import open_registry
    from reconciler.runtime.membership import coverage_of_objects, fetch_member_coverage

    kinds = [info.kind for info in KINDS] if args.kind == "mcp" else [_kind(args.kind)]
    now = dt.datetime.now(dt.UTC)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        stored = registry.fetch_resources(namespace=args.namespace, name=args.name)
        coverage = fetch_member_coverage(registry) if {"MCPServer", "MCPConnection"} & set(kinds) else ()
        member_authorized = [
            r for r in stored if r.kind == "MCPServer" and r.kind in kinds and _auth_type(r.spec) == MEMBER_AUTHORIZED
        ]
        tallies = (
            registry.tally_member_tokens([(r.tenant, r.name) for r in member_authorized], now=now, horizon=horizon(now))
            if member_authorized
            else {}
        )
    finally:
        registry.close()
    objects = {kind: [presenting.as_object(r) for r in stored if r.kind == kind] for kind in kinds}
    # The members' tokens as of now (the stored status has them as of the last pass that rebuilt it).
    expected = {(entry.tenant, entry.server) for entry in coverage}
    rollups = {
        (r.namespace, r.name): oauth_health(
            tallies.get((r.tenant, r.name)), members_expected=(r.tenant, r.name) in expected
        )
        for r in member_authorized
    }
    for obj in objects.get("MCPServer", []):
        health = rollups.get((obj["metadata"]["namespace"], obj["metadata"]["name"]))
        if health is not None:
            obj["status"] = {**(obj["status"] or {}), "oauth": health.model_dump(mode="json", by_alias=True)}
    members = coverage_of_objects(coverage, [obj for kind in kinds for obj in objects[kind]])
    for obj in objects.get("MCPConnection", []):
        for entry in members.get(("MCPConnection", obj["metadata"]["namespace"], obj["metadata"]["name"]), []):
            obj["status"] = {**(obj["status"] or {}), "connectedMembers": entry.connected_members}
    if args.output in ("json", "yaml"):
        found = [obj for kind in kinds for obj in objects[kind]]
        if args.name and len(found) == 1 and len(kinds) == 1:
            print(presenting.dump(found[0], args.output), file=out)
        elif args.name and not found:
            raise _not_found(args)
        else:
            print(presenting.dump(presenting.as_list(found), args.output), file=out)
        return EXIT_OK
    blocks = []
    for kind in kinds:
        if objects[kind]:
            blocks.append(
                presenting.table(
                    objects[kind],
                    kind,
                    wide=args.output == "wide",
                    with_namespace=args.namespace is None,
                    with_kind_prefix=len(kinds) > 1,
                    now=now,
                )
            )
    if not blocks:
        if args.name:
            raise _not_found(args)
        where = f" in namespace {args.namespace}" if args.namespace else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return EXIT_OK
    print("\n\n".join(blocks), file=out)
    listed = [entry for entries in members.values() for entry in entries]
    for warning in dict.fromkeys(entry.warning() for entry in coverage if entry in listed):
        if warning:
            print(f"Warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _auth_type(spec: Mapping[str, Any]) -> str:
    auth = spec.get("auth")
    return str(auth.get("type", "none")) if isinstance(auth, Mapping) else "none"


def _kind(spelling: str) -> str:
    from reconciler.api import KINDS, kind_for

    try:
        return kind_for(spelling).kind
    except KeyError:
        known = ", ".join(sorted(name for info in KINDS for name in (info.plural, *info.short_names)))
        raise PermanentError(f"unknown resource type {spelling!r} (known: {known}, mcp)") from None


def _not_found(args: argparse.Namespace) -> PermanentError:
    return PermanentError(
        f"{args.kind} {args.name!r} not found" + (f" in namespace {args.namespace}" if args.namespace else "")
    )
