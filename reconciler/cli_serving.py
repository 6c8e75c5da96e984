"""`resolve` and `serve`: what agent runtimes ask, from a terminal and as a service.

Kept beside `cli.py`, which declares their arguments and passes the probe settings and public URL it parsed.
Both renew, before they answer, the due tokens they are about to hand out (`--no-refresh` turns that off): the
members' and the organization's through the runtime, client credentials through the engine. `serve` reads the
Secrets behind references from the cluster (`--secrets kubernetes`), a folder (`-f`), or not at all, in which case
a login that needs one is refused saying what to configure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from reconciler.errors import PermanentError

if TYPE_CHECKING:
    from reconciler.credentials import SecretReader
    from reconciler.probe import ProbeSettings
    from reconciler.registry import Registry
    from reconciler.runtime.connect_service import Connector
    from reconciler.runtime.renewing import OnDemandRenewal

log = logging.getLogger("mcp_reconciler")


def add_resolve_arguments(resolve: argparse.ArgumentParser) -> None:
    """`resolve`'s own arguments (cli.py adds the shared ones: probe, public URL, platform namespace, registry)."""
    resolve.add_argument("-n", "--namespace", required=True, help="namespace (or tenant slug)")
    resolve.add_argument("--template", help="agent template id")
    resolve.add_argument("--agent", help="agent id (agent-scoped connections)")
    resolve.add_argument("--user", help="member id (grants and user-scoped connections)")
    resolve.add_argument("--team", action="append", default=[], metavar="TEAM", help="a team of the member")
    resolve.add_argument("-o", "--output", choices=["json", "mcp-config", "text"], default="text")
    resolve.add_argument("--explain", action="store_true", help="show every decision, including forbidden servers")
    resolve.add_argument("--show-secrets", action="store_true", help="print header values instead of masks")
    resolve.add_argument(
        "--namespace-tools",
        nargs="?",
        const="server",
        choices=["server", "connection"],
        help="name tools mcp:<server>:<tool>, or with =connection mcp:<connection>:<tool> (OpenWork's naming)",
    )
    resolve.add_argument("-f", "--filename", type=Path, metavar="DIR", help="folder whose Secrets hold the values")
    resolve.add_argument(
        "--no-refresh",
        action="store_true",
        help="do not first renew the due tokens about to be handed out (past 80%% of their lifetime: the member's, "
        "the organization's, client credentials); renewing asks their authorization servers",
    )
    resolve.add_argument(
        "--renew-tokens",
        action="store_true",
        help="deprecated, does nothing: resolve renews due tokens unless --no-refresh",
    )


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    """`serve`'s own arguments (cli.py adds the shared ones)."""
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument(
        "--token-env",
        default="MCP_RECONCILER_SERVE_TOKEN",
        metavar="VAR",
        help="environment variable holding the bearer token clients must send (never a flag: it would leak)",
    )
    serve.add_argument("--callers", type=Path, metavar="FILE", help="Registry API tokens (SHA-256) → members, teams")
    serve.add_argument("--anonymous", action="store_true", help="Registry API without a token: organization grants")
    serve.add_argument(
        "--name-prefix", default="local.mcp-reconciler", metavar="DNS", help="<prefix>.<tenant>/<server>"
    )
    serve.add_argument(
        "-f", "--filename", type=Path, metavar="DIR", help="folder whose Secrets hold OAuth clients' secrets (connect)"
    )
    serve.add_argument(
        "--secrets",
        choices=["none", "kubernetes"],
        default="none",
        help="where pre-registered confidential OAuth clients' secrets are read for members' logins and refreshes: "
        "`kubernetes` reads Secrets (get only) through --kubeconfig, else the pod's service account (default: none)",
    )
    serve.add_argument(
        "--kubeconfig", type=Path, help="with --secrets kubernetes: kubeconfig file (default: $KUBECONFIG, in-cluster)"
    )
    serve.add_argument(
        "--no-refresh",
        action="store_true",
        help="the endpoint's resolve_template does not first renew the due tokens it hands out (as resolve does)",
    )


def print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_resolve(args: argparse.Namespace, out: TextIO, *, settings: ProbeSettings, public_url: str | None) -> int:
    from reconciler.manifests import load_folder
    from reconciler.runtime import resolve_command

    if args.show_secrets and args.filename is None:
        # The registry holds only references; the values come from the folder's Secrets.
        raise PermanentError("--show-secrets needs -f DIR: the folder whose Secrets hold the header values")
    secrets = load_folder(args.filename).secrets if args.filename else None
    if args.renew_tokens:
        print_warnings(["--renew-tokens is deprecated and does nothing: due tokens are renewed unless --no-refresh"])
    if not args.no_refresh:
        renew_minted_tokens(args, secrets=secrets, tenants=[args.namespace], settings=settings)
    code, text = resolve_command(
        registry_url=args.registry,
        namespace_or_tenant=args.namespace,
        template=args.template,
        agent=args.agent,
        user=args.user,
        teams=args.team,
        output=args.output,
        explain=args.explain,
        show_secrets=args.show_secrets,
        namespace_tools=args.namespace_tools or False,
        secrets=secrets,
        manager=args.manager,
        platform_tenant=args.platform_namespace,
        renew_tokens=not args.no_refresh,
        allow_private_networks=args.allow_private_networks,
        public_url=public_url,
    )
    print(text, file=out)
    return code


def renew_minted_tokens(
    args: argparse.Namespace,
    *,
    secrets: SecretReader | None,
    tenants: Sequence[str] | None,
    settings: ProbeSettings,
) -> None:
    """Renew the client-credentials tokens due in `tenants` (a tenant slug or namespace each), so that what a
    runtime is handed next is fresh; a server that cannot be renewed is a warning, its token stays as it is."""
    from reconciler.engine.refreshing import renew_client_credentials
    from reconciler.registry import open_registry

    registry = open_registry(args.registry, manager=args.manager)
    try:
        slugs = None
        if tenants is not None:
            found = [registry.find_tenant(name) for name in tenants]
            slugs = [tenant.slug for tenant in found if tenant is not None]
            if not slugs:
                return
        renewal = renew_client_credentials(registry, secrets or _NO_SECRETS, tenants=slugs, settings=settings)
    finally:
        registry.close()
    print_warnings(
        [f"client-credentials token of {server} not renewed: {why}" for server, why in renewal.failed.items()]
    )


class _NoSecrets:
    """No folder given: only values the reconciler minted itself (dynamically registered clients) are known."""

    def read(self, namespace: str, name: str, key: str) -> str | None:
        return None


_NO_SECRETS = _NoSecrets()


def cmd_serve(args: argparse.Namespace, out: TextIO, *, settings: ProbeSettings, public_url: str | None) -> int:
    import tempfile

    from reconciler.engine.inputs import DesiredInput
    from reconciler.engine.proposing import DryRunPlanner
    from reconciler.manifests import load_folder
    from reconciler.runtime import caller_directory, serve_mcp

    token = os.environ.get(args.token_env, "")
    if len(token) < 16:
        raise PermanentError(f"set ${args.token_env} to a bearer token of at least 16 characters")
    if args.secrets == "kubernetes" and args.filename is not None:
        raise PermanentError("serve: give either --secrets kubernetes or -f/--filename, not both")

    def load_manifests(text: str) -> DesiredInput:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "proposed.yaml").write_text(text)
            return load_folder(folder)

    secrets, close_secrets = serve_secrets(args)
    try:
        serve_mcp(
            registry_url=args.registry,
            token=token,
            host=args.host,
            port=args.port,
            plan_manifests=DryRunPlanner(load_manifests, manager=args.manager),
            manager=args.manager,
            callers=caller_directory(token, callers_file=args.callers, anonymous=args.anonymous),
            name_prefix=args.name_prefix,
            platform_tenant=args.platform_namespace,
            public_url=public_url,
            connector_for=connector_for(public_url, secrets=secrets, settings=settings),
            renewing=None if args.no_refresh else on_demand_renewal(secrets=secrets, settings=settings),
        )
    finally:
        close_secrets()
    return 0


def serve_secrets(args: argparse.Namespace) -> tuple[SecretReader | None, Callable[[], None]]:
    """Where `serve` reads the Secrets behind references (pre-registered clients' secrets), and how to let go of
    it: the cluster's with `--secrets kubernetes`, a folder's with `-f`, else none (None)."""
    if args.secrets == "kubernetes":
        from reconciler.operator.secret_reading import ServeSecretValues

        values = ServeSecretValues.start(kubeconfig=args.kubeconfig)
        return values, values.close
    if args.filename:
        from reconciler.manifests import load_folder

        return load_folder(args.filename).secrets, lambda: None
    return None, lambda: None


def on_demand_renewal(*, secrets: SecretReader | None, settings: ProbeSettings) -> OnDemandRenewal:
    """What `serve`'s endpoint renews before it resolves, as `resolve` does: members' and the organization's
    tokens (the runtime's; a pre-registered confidential client's secret read from `secrets`), and
    client-credentials tokens (the engine's, their Secrets read from `secrets` too)."""
    from reconciler.engine.inputs import StaticSecrets
    from reconciler.engine.refreshing import renew_client_credentials
    from reconciler.runtime.renewing import OnDemandRenewal

    reader: SecretReader = secrets if secrets is not None else StaticSecrets()

    def client_credentials(registry: Registry, tenant: str) -> None:
        renewal = renew_client_credentials(registry, reader, tenants=[tenant], settings=settings)
        for server, why in renewal.failed.items():
            log.warning("client-credentials token of %s not renewed: %s", server, why)

    return OnDemandRenewal(probe=settings, client_credentials=client_credentials, client_secrets=secrets)


class _SecretsNotServed:
    """`serve` started without a Secret source: a login that needs a Secret's value (a pre-registered confidential
    client's `clientSecret`) is refused saying what to configure, instead of reaching the token endpoint without
    it."""

    def read(self, namespace: str, name: str, key: str) -> str | None:
        from reconciler.credentials.stores import split_local

        if split_local(namespace) is not None:
            return None  # the registry's own sealed values are read from its store, not here
        raise PermanentError(
            f"Secret {namespace}/{name} (key {key}) cannot be read: serve reads no Secrets unless started with "
            "`--secrets kubernetes` (Helm: serve.secrets.read=true) or `-f DIR` (a folder's Secret manifests)"
        )


def connector_for(
    public_url: str | None, *, secrets: SecretReader | None, settings: ProbeSettings
) -> Callable[[Registry], Connector] | None:
    """The engine's logins for `serve`'s connect service, which needs a public URL for its callback."""
    if public_url is None:
        return None
    from reconciler.engine.connecting import EngineConnector

    reader: SecretReader = secrets if secrets is not None else _SecretsNotServed()
    return lambda registry: EngineConnector(registry, secrets=reader, settings=settings, public_url=public_url)
