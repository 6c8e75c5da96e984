"""The `mcp-reconciler` command: parse arguments, call the engine, print, and map errors to exit codes.

A thin leaf: every decision lives in the engine; this module only wires a folder of YAML and a registry
URL to it. `plan` exits 0 when nothing would change, 2 when something would, 1 on any error, so it works
as a pull-request check. Each command imports what it uses inside its function, so `--help` starts without
the models, and `validate` without the registry store, the probe, the mcp SDK or kopf (a test pins this).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from reconciler.cli_listing import cmd_get
from reconciler.cli_registries import REGISTRY_COMMANDS, add_registry_commands
from reconciler.cli_serving import add_resolve_arguments, add_serve_arguments
from reconciler.cli_serving import print_warnings as _print_warnings
from reconciler.errors import PermanentError, ReconcilerError
from reconciler.registry.managers import DEFAULT_MANAGER

if TYPE_CHECKING:
    from reconciler.probe import ProbeSettings

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
log = logging.getLogger("mcp_reconciler")


def _add_platform_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform-namespace",
        default=os.environ.get(PLATFORM_NAMESPACE_ENV) or None,
        metavar="NS",
        help=f"the platform tenant whose featured servers every tenant is offered last (${PLATFORM_NAMESPACE_ENV})",
    )


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        metavar="URL",
        help="registry database URL (default: $MCP_RECONCILER_REGISTRY, else sqlite:///mcp-registry.db)",
    )
    parser.add_argument(
        "--manager",
        default=DEFAULT_MANAGER,
        help="manager id recorded on owned rows; a folder is the complete desired state of its manager",
    )


def _add_prune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-prune",
        action="store_true",
        help="keep rows of objects that are not in the folder (default: delete or orphan them)",
    )


ALLOW_PRIVATE_ENV = "MCP_RECONCILER_ALLOW_PRIVATE_NETWORKS"
PLATFORM_NAMESPACE_ENV = "MCP_RECONCILER_PLATFORM_NAMESPACE"
PUBLIC_URL_ENV = "MCP_RECONCILER_PUBLIC_URL"


def _add_public_url(parser: argparse.ArgumentParser, *, help: str | None = None) -> None:
    parser.add_argument(
        "--public-url",
        default=os.environ.get(PUBLIC_URL_ENV) or None,
        metavar="URL",
        help=help
        or "where the reconciler is reachable: OAuth callback {URL}/oauth/callback and, where the authorization "
        f"server supports CIMD, client id {{URL}}/oauth/client-metadata.json (${PUBLIC_URL_ENV})",
    )


def _public_url(args: argparse.Namespace) -> str | None:
    """The checked `--public-url`: client ids and redirect URIs are built from it and compared exactly."""
    from reconciler.credentials.identity import public_url_problem

    url: str | None = args.public_url
    if url is None:
        return None
    problem = public_url_problem(url)
    if problem is not None:
        raise PermanentError(f"--public-url: {problem}")
    return url.rstrip("/")


def _add_probe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-private-networks",
        action="store_true",
        default=os.environ.get(ALLOW_PRIVATE_ENV) == "1",
        help=f"let servers with spec.network.allowPrivate reach loopback/private addresses (or ${ALLOW_PRIVATE_ENV}=1)",
    )
    parser.add_argument("--probe-concurrency", type=int, default=16, metavar="N", help="servers probed at once")
    parser.add_argument("--probe-timeout", type=float, default=30.0, metavar="SECONDS", help="bound on one probe")


def _probe_settings(args: argparse.Namespace) -> ProbeSettings:
    from reconciler.probe import ProbeSettings

    return ProbeSettings(
        allow_private_networks=args.allow_private_networks,
        max_concurrency=max(1, args.probe_concurrency),
        total_timeout=max(1.0, args.probe_timeout),
    )


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
    plan.add_argument("-o", "--output", choices=["text", "json", "markdown"], default="text")
    _add_prune(plan)
    _add_registry(plan)

    apply = commands.add_parser("apply", help="make the registry match a folder of manifests, then probe servers")
    apply.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR")
    apply.add_argument("--no-probe", action="store_true", help="write the registry only; do not contact servers")
    apply.add_argument(
        "--client-max-age",
        metavar="DURATION",
        help="re-register dynamically registered OAuth clients older than this (e.g. 720h); default: on expiry",
    )
    _add_public_url(apply)
    _add_probe(apply)
    _add_prune(apply)
    _add_registry(apply)

    test = commands.add_parser(
        "test",
        help="Test Connection: probe one server now and record the result (before apply: discovery only, no writes)",
    )
    test.add_argument("name")
    test.add_argument("-n", "--namespace", default=None, help="namespace of the MCPServer (default: unique match)")
    test.add_argument("-f", "--filename", required=True, type=Path, metavar="DIR", help="the manifests folder")
    test.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _add_public_url(test)
    _add_probe(test)
    _add_registry(test)

    demo = commands.add_parser("demo", help="start local MCP servers, apply the quickstart example, show the result")
    demo.add_argument("-f", "--filename", type=Path, default=None, metavar="DIR", help="example folder to apply")
    demo.add_argument("--serve", action="store_true", help="keep the demo servers running until interrupted")
    _add_registry(demo)

    get = commands.add_parser("get", help="list objects as last applied, with their status")
    get.add_argument("kind", nargs="?", default="mcp", help="kind, plural, singular or short name (default: all)")
    get.add_argument("name", nargs="?")
    get.add_argument("-n", "--namespace")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json"])
    _add_registry(get)

    resolve = commands.add_parser("resolve", help="the MCP servers one agent invocation gets, with credentials")
    add_resolve_arguments(resolve)
    _add_probe(resolve)
    _add_public_url(
        resolve,
        help="where `serve`'s connect service is reachable: a server waiting on the member's own login gets a "
        f"connectUrl, {{URL}}/oauth/connect?link=... (${PUBLIC_URL_ENV})",
    )
    _add_platform_namespace(resolve)
    _add_registry(resolve)

    serve = commands.add_parser("serve", aliases=["serve-mcp"], help="the registry read-only: /mcp and /v0.1")
    add_serve_arguments(serve)
    _add_public_url(serve)
    _add_probe(serve)
    _add_platform_namespace(serve)
    _add_registry(serve)

    add_registry_commands(commands, allow_private_default=os.environ.get(ALLOW_PRIVATE_ENV) == "1")
    for verb, what in (
        ("connect", "connect a member's own account to an authorization-code server (a browser login)"),
        ("disconnect", "revoke and delete a member's tokens for an authorization-code server"),
    ):
        login = commands.add_parser(verb, help=what)
        login.add_argument("name", help="the MCPServer")
        login.add_argument("-n", "--namespace", required=True, help="namespace (or tenant slug)")
        whose = login.add_mutually_exclusive_group(required=True)
        whose.add_argument("--member", metavar="ID", help="the member whose account it is")
        whose.add_argument(
            "--shared",
            action="store_true",
            help="the organization's connection: every granted member without their own uses it",
        )
        login.add_argument(
            "--connection",
            metavar="NAME",
            help="a perMember MCPConnection of the server: the member's tokens are kept for it (not with --shared)",
        )
        login.add_argument("-f", "--filename", type=Path, metavar="DIR", help="folder whose Secrets hold the client's")
        if verb == "connect":
            login.add_argument("--open", action="store_true", help="open the URL in the default browser")
            login.add_argument(
                "--timeout", type=float, default=300.0, metavar="SECONDS", help="how long to wait for the login"
            )
        _add_public_url(login)
        _add_probe(login)
        _add_registry(login)

    operator = commands.add_parser("run", help="run the Kubernetes operator")
    operator.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="PATTERN",
        help="namespaces to serve (globs, `a,b,!c`); repeatable; default: all",
    )
    operator.add_argument("--registry", metavar="URL", help="registry database URL (default: $MCP_RECONCILER_REGISTRY)")
    operator.add_argument(
        "--allow-private-networks",
        action="store_true",
        default=os.environ.get(ALLOW_PRIVATE_ENV) == "1",
        help="let servers with spec.network.allowPrivate reach private addresses",
    )
    operator.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="do not contact MCP servers (no discovery, tool snapshots or verification of rotated Secrets)",
    )
    operator.add_argument("--metrics-port", type=int, default=8080, help="port for /metrics and /healthz")
    _add_public_url(operator)
    _add_platform_namespace(operator)
    operator.add_argument("--standalone", action="store_true", help="no peering: this instance is always active")
    operator.add_argument("--peering", default="mcp-reconciler", metavar="NAME", help="kopf peering object name")
    operator.add_argument("--priority", type=int, default=0, help="peering priority")
    operator.add_argument("--resync-interval", default="5m", metavar="DURATION", help="default resync period")
    operator.add_argument(
        "--upstream-interval",
        default="1h",
        metavar="DURATION",
        help="how often servers imported from a Registry API are checked there (token: $MCP_RECONCILER_UPSTREAM_TOKEN)",
    )
    operator.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")

    migrate = commands.add_parser(
        "migrate", help="bring the registry schema up to date and exit (the chart's init container runs this)"
    )
    migrate.add_argument(
        "--registry",
        metavar="URL",
        help="registry database URL (default: $MCP_RECONCILER_REGISTRY, else sqlite:///mcp-registry.db)",
    )

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions generated from the models")
    crds.add_argument("--dir", type=Path, default=Path("crds"), help="output folder (default: crds)")
    crds.add_argument("--check", action="store_true", help="fail if the files differ from what would be written")
    return parser


def _colour(stream: TextIO) -> bool:
    return stream.isatty()


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.engine.desired import validate_rendered
    from reconciler.manifests import load_folder

    desired = load_folder(args.filename)
    validate_rendered(desired)
    for warning in desired.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(desired.resources)} objects valid in {args.filename}", file=out)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler import presenting
    from reconciler.engine.impact import tool_impact
    from reconciler.engine.reconciling import EngineSettings, reconcile
    from reconciler.manifests import load_folder
    from reconciler.registry import open_registry

    desired = load_folder(args.filename)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        settings = EngineSettings(manager=args.manager, prune=not args.no_prune)
        report = reconcile(desired, registry, settings=settings, dry_run=True)
        impact = tool_impact(registry, report.plan)
    finally:
        registry.close()
    _print_warnings(desired.warnings)
    if args.output == "json":
        print(presenting.plan_json(report.plan, impact), file=out)
    elif args.output == "markdown":
        print(presenting.plan_markdown(report.plan, impact), file=out, end="")
    else:
        print(presenting.plan_text(report.plan, colour=_colour(out)), file=out)
        if not impact.empty:
            print("\n" + presenting.impact_text(impact), file=out)
    if report.plan.conflicts:
        return EXIT_ERROR
    return EXIT_CHANGES if report.plan.has_changes else EXIT_OK


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler import presenting
    from reconciler.engine.probing import ProbeOptions
    from reconciler.engine.reconciling import EngineSettings, reconcile
    from reconciler.engine.renewing import renew_member_tokens
    from reconciler.manifests import load_folder
    from reconciler.registry import open_registry

    max_age = None
    if args.client_max_age:
        from reconciler.api.durations import parse_duration

        try:
            max_age = dt.timedelta(seconds=parse_duration(args.client_max_age))
        except ValueError as err:
            raise PermanentError(f"--client-max-age: {err}") from None
    public_url = _public_url(args)
    desired = load_folder(args.filename)
    registry = open_registry(args.registry, manager=args.manager)
    probe = (
        None
        if args.no_probe
        else ProbeOptions(
            _probe_settings(args), on_result=_progress(sys.stderr), client_max_age=max_age, public_url=public_url
        )
    )
    renewals = None
    try:
        settings = EngineSettings(manager=args.manager, prune=not args.no_prune, network=_probe_settings(args))
        report = reconcile(desired, registry, settings=settings, probe=probe)
        if probe is not None:
            # Members' tokens of the folder's tenants, renewed when due (the same network permission as probing).
            tenants = {tenant.slug for tenant in desired.tenants.values()}
            renewals = renew_member_tokens(registry, tenants=tenants, settings=probe.settings, secrets=desired.secrets)
    finally:
        registry.close()
    # Plan warnings are printed with the plan; the rest (input, credential clean-up) here.
    _print_warnings([warning for warning in report.warnings if warning not in report.plan.warnings])
    print(presenting.plan_text(report.plan, colour=_colour(out)).replace("Plan: ", "Applied: "), file=out)
    summary = renewals.summary() if renewals is not None else None
    if summary is not None:
        print(summary, file=out)
    if report.probed:
        print("", file=out)
        print(presenting.probe_table([(obj.source, result) for obj, result in report.probed]), file=out)
    if report.plan.conflicts:
        print(f"error: {len(report.plan.conflicts)} conflicts left unresolved (see above)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _progress(stream: TextIO) -> Callable[[int, int], None] | None:
    """A one-line progress counter on a terminal; nothing when output is redirected."""
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        stream.write(f"\rprobing servers: {done}/{total}{end}")
        stream.flush()

    return show


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler import presenting
    from reconciler.engine.probing import ProbeOptions
    from reconciler.engine.reconciling import EngineSettings, test_server
    from reconciler.manifests import load_folder
    from reconciler.registry import open_registry_if_present
    from reconciler.registry.records import SourceRef

    desired = load_folder(args.filename)
    matches = [
        r
        for r in desired.resources
        if r.kind == "MCPServer"
        and r.metadata.name == args.name
        and (args.namespace is None or r.metadata.namespace == args.namespace)
    ]
    if not matches:
        where = f" in namespace {args.namespace}" if args.namespace else ""
        raise PermanentError(f"MCPServer {args.name!r} not found in {args.filename}{where}")
    if len(matches) > 1:
        spaces = ", ".join(sorted(r.metadata.namespace for r in matches))
        raise PermanentError(f"MCPServer {args.name!r} exists in several namespaces ({spaces}): pass -n")
    source = SourceRef("MCPServer", matches[0].metadata.namespace, args.name)
    public_url = _public_url(args)
    # Before save (no registry yet, or no row for the server) the test only discovers: nothing is created.
    registry = open_registry_if_present(args.registry, manager=args.manager)
    try:
        outcome = test_server(
            desired,
            registry,
            source=source,
            settings=EngineSettings(manager=args.manager),
            probe=ProbeOptions(_probe_settings(args), public_url=public_url),
        )
    finally:
        if registry is not None:
            registry.close()
    result = outcome.result
    if args.output == "json":
        print(json.dumps(presenting.test_json(result, applied=not outcome.discovered_only), indent=2), file=out)
    else:
        print(presenting.test_text(result, colour=_colour(out)), file=out)
        if outcome.discovered_only:
            print(presenting.discovery_text(result.discovery), file=out)
    if not outcome.recorded:
        print(
            f"note: not recorded — MCPServer {source.namespace}/{source.name} is not applied yet: discovery only, "
            "nothing written (run apply to save it)",
            file=sys.stderr,
        )
    return EXIT_OK if result.ok else EXIT_ERROR


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.demo import DEMO_PORTS, start_demo_servers

    folder = args.filename or Path(__file__).resolve().parents[1] / "examples" / "01-quickstart"
    if not folder.is_dir():
        raise PermanentError(f"example folder {folder} not found: pass -f DIR")
    try:
        servers = start_demo_servers(ports=DEMO_PORTS)
        running = servers.__enter__()
    except OSError as err:
        raise PermanentError(f"{err}; is another demo running?") from err
    try:
        print(
            f"demo MCP servers listening: {running.tools_url}  {running.events_url}  {running.protected_url}", file=out
        )
        print(f"$ mcp-reconciler apply -f {folder} --allow-private-networks", file=out)
        apply_args = build_parser().parse_args(
            ["apply", "-f", str(folder), "--allow-private-networks", "--no-prune", "--manager", args.manager]
            + (["--registry", args.registry] if args.registry else [])
        )
        code = cmd_apply(apply_args, out)
        print("\n$ mcp-reconciler get mcps -n demo -o wide", file=out)
        get_args = build_parser().parse_args(
            ["get", "mcps", "-n", "demo", "-o", "wide", "--manager", args.manager]
            + (["--registry", args.registry] if args.registry else [])
        )
        cmd_get(get_args, out)
        if args.serve:
            print("\ndemo servers keep running; press Ctrl-C to stop", file=out)
            _wait_forever()
        return code
    finally:
        servers.__exit__(None, None, None)


def _wait_forever() -> None:
    import threading

    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        return


def cmd_resolve(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.cli_serving import cmd_resolve as resolve

    return resolve(args, out, settings=_probe_settings(args), public_url=_public_url(args))


def cmd_connect(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.cli_connect import cmd_connect as connect

    return connect(args, out, settings=_probe_settings(args), public_url=_public_url(args))


def cmd_disconnect(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.cli_connect import cmd_disconnect as disconnect

    return disconnect(args, out, settings=_probe_settings(args), public_url=_public_url(args))


def cmd_serve_mcp(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.cli_serving import cmd_serve as serve

    return serve(args, out, settings=_probe_settings(args), public_url=_public_url(args))


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.api.durations import parse_duration
    from reconciler.operator import run_operator

    try:
        resync = parse_duration(args.resync_interval)
    except ValueError as err:
        raise PermanentError(f"--resync-interval: {err}") from None
    try:
        upstream = parse_duration(args.upstream_interval)
    except ValueError as err:
        raise PermanentError(f"--upstream-interval: {err}") from None
    public_url = _public_url(args)
    run_operator(
        args.namespace,
        registry_url=args.registry,
        allow_private_networks=args.allow_private_networks,
        probe=args.probe,
        port=args.metrics_port,
        standalone=args.standalone,
        peering_name=args.peering,
        priority=args.priority,
        resync_interval=resync,
        upstream_interval=upstream,
        kubeconfig=args.kubeconfig,
        platform_namespace=args.platform_namespace,
        public_url=public_url,
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """Migrating before the operator starts keeps Alembic out of the operator's memory (it loads only when needed)."""
    from reconciler.registry import open_registry

    with open_registry(args.registry) as registry:
        applied = registry.applied_migrations
        where = registry.url
    if applied:
        print(f"migrated {where}: {', '.join(applied)}", file=out)
    else:
        print(f"{where} is up to date", file=out)
    return EXIT_OK


def cmd_crds(args: argparse.Namespace, out: TextIO) -> int:
    from reconciler.api.crds import render_crds

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
    "connect": cmd_connect,
    "disconnect": cmd_disconnect,
    "crds": cmd_crds,
    "test": cmd_test,
    "demo": cmd_demo,
    "resolve": cmd_resolve,
    "run": cmd_run,
    **REGISTRY_COMMANDS,
    "migrate": cmd_migrate,
    "serve": cmd_serve_mcp,
    "serve-mcp": cmd_serve_mcp,
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
