"""What the CLI's `resolve` and `serve` commands call: open the registry, do the work, hand back text.

`reconciler.cli` stays a thin leaf: it parses arguments, builds the `SecretReader` (from a folder's Secret
manifests; this package may not import the manifests loader) and the engine's planner for `plan`, then prints
what these functions return. Domain errors (`UnknownTenant`, registry errors) propagate for the CLI to map to exit
codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import yaml

from reconciler.credentials import SecretKeyProblem, SecretReader
from reconciler.errors import PermanentError
from reconciler.probe.settings import ProbeSettings
from reconciler.registry import open_registry
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.runtime.presenting import render_mcp_config, resolution_json, resolution_text
from reconciler.runtime.registry_api import CallerDirectory, load_callers
from reconciler.runtime.renewing import default_renewal
from reconciler.runtime.resolution import ToolNamespace
from reconciler.runtime.resolving import resolve

ResolveOutput = Literal["json", "mcp-config", "text"]
EXIT_OK = 0


def resolve_command(
    *,
    registry_url: str | None,
    namespace_or_tenant: str,
    template: str | None = None,
    agent: str | None = None,
    user: str | None = None,
    teams: Sequence[str] = (),
    output: ResolveOutput = "json",
    explain: bool = False,
    show_secrets: bool = False,
    namespace_tools: bool | ToolNamespace = False,
    secrets: SecretReader | None = None,
    manager: str = DEFAULT_MANAGER,
    platform_tenant: str | None = None,
    renew_tokens: bool = False,
    allow_private_networks: bool = False,
    public_url: str | None = None,
) -> tuple[int, str]:
    """`mcp-reconciler resolve`: (exit code, text to print). Values are masked unless `show_secrets`.

    `namespace_or_tenant` is the `-n` namespace (or a tenant slug). `secrets` is needed for `show_secrets`;
    when given without it, secrets are still read so a missing one shows as a blocked server.
    `-o mcp-config` lists only ready servers and ignores `explain`. `renew_tokens` refreshes the due member and
    organization tokens it hands out first (`allow_private_networks` as for probes; without a store key there is
    none to refresh); the CLI renews the client-credentials tokens itself. `public_url` (the connect service's)
    gives servers waiting on the member's own login a `connectUrl`.
    """
    registry = open_registry(registry_url, manager=manager)
    try:
        renewal = None
        if renew_tokens:
            try:
                renewal = default_renewal(registry, probe=ProbeSettings(allow_private_networks=allow_private_networks))
            except SecretKeyProblem:
                renewal = None  # nothing was ever sealed: no member token to renew

        resolution = resolve(
            registry,
            namespace_or_tenant,
            template=template,
            agent=agent,
            user=user,
            teams=teams,
            secrets=secrets,
            show_secrets=show_secrets,
            namespace_tools=namespace_tools,
            explain=explain and output != "mcp-config",
            platform_tenant=platform_tenant,
            renew_tokens=renew_tokens,
            renewal=renewal,
            public_url=public_url,
        )
    finally:
        registry.close()
    if output == "mcp-config":
        return EXIT_OK, render_mcp_config(resolution)
    if output == "text":
        return EXIT_OK, resolution_text(resolution)
    return EXIT_OK, resolution_json(resolution)


def caller_directory(platform_token: str, *, callers_file: Path | None, anonymous: bool) -> CallerDirectory:
    """`serve`'s Registry API callers: the platform token, the members of `callers_file`, maybe anonymous."""
    members = {}
    if callers_file is not None:
        try:
            document = yaml.safe_load(callers_file.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise PermanentError(f"{callers_file}: cannot read the callers file: {err}") from None
        try:
            members = load_callers(document, source=str(callers_file))
        except ValueError as err:
            raise PermanentError(str(err)) from None
    return CallerDirectory(platform_token=platform_token, members=members, anonymous=anonymous)
