"""`resolve`: the effective MCP servers of one agent invocation, read from the registry at call time.

Called by agent runtimes (Python), by the CLI's `resolve` command (through `commands.resolve_command`) and
by the agent-facing MCP endpoint. Three steps: fetch what the decision needs (a fixed number of indexed
queries, `Registry.fetch_resolution_inputs`), decide (pure, `deciding.decide`), then read secret values for
the chosen headers from the `SecretSource` — only when one is given, and shown only with `show_secrets`.
A secret that cannot be read blocks its server and is named by reference; values never reach an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.credentials import parse_reference
from reconciler.engine.inputs import SecretSource
from reconciler.errors import PermanentError
from reconciler.registry import Registry
from reconciler.runtime.deciding import Caller, HeaderSource, ServerDecision, decide
from reconciler.runtime.resolution import MASK, Resolution, ResolvedServer, ServerState


class UnknownTenant(PermanentError):
    """No tenant has this slug or lives in this namespace."""

    reason = "UnknownTenant"


def resolve(
    registry: Registry,
    tenant: str,
    *,
    template: str | None = None,
    agent: str | None = None,
    user: str | None = None,
    teams: Sequence[str] = (),
    secrets: SecretSource | None = None,
    show_secrets: bool = False,
    namespace_tools: bool = False,
    explain: bool = False,
) -> Resolution:
    """The servers, URLs, headers and tools `template` gets for this agent and member.

    `tenant` is a tenant slug or its namespace. Without `template`, every server of the tenant is offered.
    Header values are masked unless `show_secrets` (which needs `secrets`); with `secrets` given, every
    referenced secret is read so a missing one shows up as a blocked server either way. Forbidden servers
    are listed only with `explain`.
    """
    if show_secrets and secrets is None:
        raise ValueError("show_secrets needs a secret source to read header values from")
    team_names = tuple(dict.fromkeys(teams))
    inputs = registry.fetch_resolution_inputs(tenant, template=template, user=user, teams=team_names)
    if inputs is None:
        raise UnknownTenant(f"no tenant has slug or namespace {tenant!r} in registry {registry.url}")
    caller = Caller(agent=agent, user=user, teams=team_names)
    decisions = decide(inputs, caller=caller, template=template, namespace_tools=namespace_tools)
    servers = tuple(
        _resolved(decision, secrets=secrets, show_secrets=show_secrets)
        for decision in decisions.servers
        if explain or decision.state is not ServerState.FORBIDDEN
    )
    return Resolution(
        tenant=inputs.tenant.slug,
        namespace=inputs.tenant.namespace,
        template=template,
        agent=agent,
        user=user,
        teams=team_names,
        servers=servers,
        explained=explain,
        secrets_shown=show_secrets,
        notes=decisions.notes if explain else (),
    )


def _resolved(decision: ServerDecision, *, secrets: SecretSource | None, show_secrets: bool) -> ResolvedServer:
    server = decision.server
    headers, unreadable = _header_values(decision.headers, secrets=secrets, show_secrets=show_secrets)
    if unreadable:
        reason = f"secret {', '.join(unreadable)} could not be read"
        return ResolvedServer(
            name=server.name,
            url=server.url,
            transport=server.transport,
            state=ServerState.BLOCKED,
            connection=decision.connection,
            scope=decision.scope,
            reason=reason,
            action="an administrator must restore the referenced Secret key",
            explain=(*decision.explain[:-1], f"headers: {reason}", "state: blocked"),
        )
    return ResolvedServer(
        name=server.name,
        url=server.url,
        transport=server.transport,
        state=decision.state,
        connection=decision.connection,
        scope=decision.scope,
        headers=headers,
        tools=decision.tools,
        reason=decision.reason,
        action=decision.action,
        explain=decision.explain,
    )


def _header_values(
    sources: Sequence[HeaderSource], *, secrets: SecretSource | None, show_secrets: bool
) -> tuple[dict[str, str], list[str]]:
    """Header values (masked unless `show_secrets`) and the references that could not be read."""
    headers: dict[str, str] = {}
    unreadable: list[str] = []
    for source in sources:
        if source.secret_ref is None:
            value = source.value or ""
        else:
            secret = _read(secrets, source.secret_ref) if secrets is not None else MASK
            if secret is None:
                unreadable.append(source.secret_ref)
                continue
            value = secret if show_secrets else MASK
        headers[source.name] = f"{source.prefix} {value}" if source.prefix else value
    return headers, unreadable


def _read(secrets: SecretSource, reference: str) -> str | None:
    try:
        namespace, name, key = parse_reference(reference)
    except ValueError:
        return None
    return secrets.read(namespace, name, key)
