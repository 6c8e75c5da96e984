"""The `mcp-reconciler` command: parse arguments, call the engine, print, and map errors to exit codes.

A thin leaf: every decision lives in the engine; this module only wires a folder of YAML and a registry
URL to it. `plan` exits 0 when nothing would change, 2 when something would, 1 on any error, so it works
as a pull-request check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from reconciler import presenting
from reconciler.api import KINDS, kind_for
from reconciler.api.crds import render_crds
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.errors import PermanentError, ReconcilerError
from reconciler.manifests import load_folder
from reconciler.registry import open_registry
from reconciler.registry.records import DEFAULT_MANAGER

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
log = logging.getLogger("mcp_reconciler")


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        metavar="URL",
        help="registry database URL (default: $MCP_RECONCILER_REGISTRY, else sqlite:///mcp-registry.db)",
    )
    parser.add_argument("--manager", default=DEFAULT_MANAGER, help="manager id recorded on owned rows")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-reconciler",
        description="Reconcile MCP server registrations declared in YAML into a registry database.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check a folder of manifests without touching the registry")
    validate.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR")
    validate.add_argument("--registry", metavar="URL", help="accepted for symmetry; not opened")

    plan = commands.add_parser("plan", help="show what apply would change (exit 0: none, 2: changes, 1: error)")
    plan.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR")
    plan.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _add_registry(plan)

    apply = commands.add_parser("apply", help="make the registry match a folder of manifests")
    apply.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR")
    _add_registry(apply)

    get = commands.add_parser("get", help="list objects as last applied, with their status")
    get.add_argument("kind", nargs="?", default="mcp", help="kind, plural, singular or short name (default: all)")
    get.add_argument("name", nargs="?")
    get.add_argument("-n", "--namespace")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json"])
    _add_registry(get)

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions generated from the models")
    crds.add_argument("--dir", type=Path, default=Path("crds"), help="output folder (default: crds)")
    crds.add_argument("--check", action="store_true", help="fail if the files differ from what would be written")
    return parser


def _colour(stream: TextIO) -> bool:
    return stream.isatty()


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.engine.reconciling import validate

    desired = load_folder(args.filename)
    validate(desired)
    for warning in desired.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(desired.resources)} objects valid in {args.filename}", file=out)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    desired = load_folder(args.filename)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        report = reconcile(desired, registry, settings=EngineSettings(manager=args.manager), dry_run=True)
    finally:
        registry.close()
    _print_warnings(desired.warnings)
    if args.output == "json":
        print(presenting.plan_json(report.plan), file=out)
    else:
        print(presenting.plan_text(report.plan, colour=_colour(out)), file=out)
    if report.plan.conflicts:
        return EXIT_ERROR
    return EXIT_CHANGES if report.plan.has_changes else EXIT_OK


def _print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    desired = load_folder(args.filename)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        report = reconcile(desired, registry, settings=EngineSettings(manager=args.manager))
    finally:
        registry.close()
    _print_warnings(desired.warnings)
    print(presenting.plan_text(report.plan, colour=_colour(out)).replace("Plan: ", "Applied: "), file=out)
    if report.plan.conflicts:
        print(f"error: {len(report.plan.conflicts)} conflicts left unresolved (see above)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    kinds = [info.kind for info in KINDS] if args.kind == "mcp" else [_kind(args.kind)]
    registry = open_registry(args.registry, manager=args.manager)
    try:
        stored = registry.fetch_resources(namespace=args.namespace, name=args.name)
    finally:
        registry.close()
    objects = {kind: [presenting.as_object(r) for r in stored if r.kind == kind] for kind in kinds}
    if args.output in ("json", "yaml"):
        found = [obj for kind in kinds for obj in objects[kind]]
        if args.name and len(found) == 1 and len(kinds) == 1:
            print(presenting.dump(found[0], args.output), file=out)
        elif args.name and not found:
            raise _not_found(args)
        else:
            print(presenting.dump(presenting.as_list(found), args.output), file=out)
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
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
    return EXIT_OK


def _kind(spelling: str) -> str:
    try:
        return kind_for(spelling).kind
    except KeyError:
        known = ", ".join(sorted(name for info in KINDS for name in (info.plural, *info.short_names)))
        raise PermanentError(f"unknown resource type {spelling!r} (known: {known}, mcp)") from None


def _not_found(args: argparse.Namespace) -> PermanentError:
    return PermanentError(
        f"{args.kind} {args.name!r} not found" + (f" in namespace {args.namespace}" if args.namespace else "")
    )


def cmd_crds(args: argparse.Namespace, out: TextIO) -> int:
    rendered = render_crds()
    if args.check:
        stale = [name for name, text in rendered.items() if _read(args.dir / name) != text]
        if stale:
            print(f"error: CRDs out of date: {', '.join(stale)}; run `mcp-reconciler crds` to regenerate", file=out)
            return EXIT_ERROR
        print(f"{len(rendered)} CRDs up to date in {args.dir}", file=out)
        return EXIT_OK
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.dir / name).write_text(text)
    print(f"wrote {len(rendered)} CRDs to {args.dir}", file=out)
    return EXIT_OK


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "get": cmd_get,
    "crds": cmd_crds,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    stream = out or sys.stdout
    try:
        return COMMANDS[args.command](args, stream)
    except ReconcilerError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
