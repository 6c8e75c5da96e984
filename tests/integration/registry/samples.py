"""Record sets the registry tests write: one tenant exercising every field, and a generated fleet for bulk tests."""

from __future__ import annotations

from reconciler.registry.records import (
    DEFAULT_MANAGER,
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    Ownership,
    Record,
    ServerRecord,
    SourceRef,
    TenantRecord,
)


def owned(kind: str, namespace: str, name: str, *, deletion_policy: str = "Delete") -> Ownership:
    return Ownership(
        manager=DEFAULT_MANAGER,
        source=SourceRef(kind=kind, namespace=namespace, name=name),
        spec_hash=f"sha256:{kind}-{namespace}-{name}",
        deletion_policy="Orphan" if deletion_policy == "Orphan" else "Delete",
    )


def tenant(slug: str) -> TenantRecord:
    return TenantRecord(slug=slug, namespace=f"ns-{slug}")


def full_tenant(slug: str = "acme") -> list[Record]:
    """Every record type with every field in use: secret refs, nested auth, ordered children, None vs empty."""
    ns = f"ns-{slug}"
    return [
        ServerRecord(
            tenant=slug,
            name="crm",
            ownership=owned("MCPServer", ns, "crm"),
            display_name="Twenty CRM",
            description="",
            url="https://crm.example.com/mcp",
            transport="streamable-http",
            enabled=True,
            featured=True,
            headers=(
                HeaderRecord(name="X-Org", value="acme"),
                HeaderRecord(name="X-Api-Key", secret_ref=f"{ns}/crm-key#token", fingerprint="hmac-sha256:0a1b"),
                HeaderRecord(name="X-Empty", value=""),
            ),
            auth_type="oauthClientCredentials",
            auth={
                "tokenUrl": "https://auth.example.com/token",
                "scopes": ["crm.read", "crm.write"],
                "clientId": "acme-crm",
                "clientSecretRef": f"{ns}/crm-oauth#secret",
                "clientSecretFingerprint": "hmac-sha256:ffee",
                "extra": {"n": 1, "big": 10**20, "f": 1.5, "e": 1e16, "yes": True, "none": None, "empty": {}},
            },
            owner_kind="App",
            owner_name="twenty",
            tool_policy="Pin",
            approved_hash="sha256:" + "ab" * 32,
            tools_allow=("search_*", "get_record"),
            tools_deny=("delete_*",),
            allow_private=True,
            discovery_enabled=False,
            discovery_interval_seconds=600,
            discovery_connection="crm-platform",
        ),
        ServerRecord(tenant=slug, name="wiki", url="http://wiki.internal/sse", transport="sse"),
        ConnectionRecord(
            tenant=slug,
            name="crm-platform",
            ownership=owned("MCPConnection", ns, "crm-platform", deletion_policy="Orphan"),
            server="crm",
            scope="platform",
            credential_mode="shared",
            secret_ref=f"{ns}/crm-token#token",
            fingerprint="hmac-sha256:1234",
            authorization_scheme="Token",
            headers=(HeaderRecord(name="X-Tenant", value="acme"),),
            use_for_discovery=True,
        ),
        ConnectionRecord(
            tenant=slug,
            name="crm-alice",
            ownership=owned("MCPConnection", ns, "crm-alice"),
            server="crm",
            scope="user",
            subject="alice",
            credential_mode="perMember",
            active=False,
        ),
        GrantRecord(
            tenant=slug,
            name="crm-everyone",
            ownership=owned("MCPAccessGrant", ns, "crm-everyone"),
            target_server="crm",
            subjects=(GrantSubjectRecord(kind="organization"),),
        ),
        GrantRecord(
            tenant=slug,
            name="crm-sales",
            ownership=owned("MCPAccessGrant", ns, "crm-sales"),
            target_connection="crm-platform",
            subjects=(
                GrantSubjectRecord(kind="team", name="sales"),
                GrantSubjectRecord(kind="member", name="bob"),
                GrantSubjectRecord(kind="member", name="alice"),
            ),
        ),
        GrantRecord(tenant=slug, name="nobody", ownership=owned("MCPAccessGrant", ns, "nobody")),
        BindingRecord(
            tenant=slug,
            name="support-agent",
            ownership=owned("MCPTemplateBinding", ns, "support-agent"),
            template="support",
            servers=(
                BoundServerRecord(server="wiki"),
                BoundServerRecord(
                    server="crm", connection="crm-platform", tools_allow=("search_*",), tools_deny=("get_record",)
                ),
            ),
        ),
        BindingRecord(tenant=slug, name="bare", template="bare"),
    ]


def fleet(*, tenants: int, objects_per_tenant: int) -> tuple[list[TenantRecord], list[Record]]:
    """`objects_per_tenant` rows per tenant, a quarter of each kind, cross-referenced like real manifests."""
    per_kind = max(objects_per_tenant // 4, 1)
    tenant_records = [tenant(f"t{index:03d}") for index in range(tenants)]
    records: list[Record] = []
    for tenant_record in tenant_records:
        slug, ns = tenant_record.slug, tenant_record.namespace
        for index in range(per_kind):
            server, connection = f"server-{index}", f"conn-{index}"
            records.append(
                ServerRecord(
                    tenant=slug,
                    name=server,
                    ownership=owned("MCPServer", ns, server),
                    url=f"https://mcp-{index}.example.com/mcp",
                    headers=(HeaderRecord(name="X-Key", secret_ref=f"{ns}/key-{index}#k", fingerprint="hmac:1"),),
                    auth_type="bearer",
                    auth={"secretRef": f"{ns}/tok-{index}#t", "scheme": "Bearer"},
                    tools_allow=("*",),
                )
            )
            records.append(
                ConnectionRecord(
                    tenant=slug,
                    name=connection,
                    ownership=owned("MCPConnection", ns, connection),
                    server=server,
                    secret_ref=f"{ns}/c-{index}#token",
                    fingerprint="hmac:2",
                )
            )
            records.append(
                GrantRecord(
                    tenant=slug,
                    name=f"grant-{index}",
                    ownership=owned("MCPAccessGrant", ns, f"grant-{index}"),
                    target_server=server,
                    subjects=(GrantSubjectRecord(kind="team", name="a"), GrantSubjectRecord(kind="member", name="b")),
                )
            )
            records.append(
                BindingRecord(
                    tenant=slug,
                    name=f"binding-{index}",
                    ownership=owned("MCPTemplateBinding", ns, f"binding-{index}"),
                    template=f"template-{index % 5}",
                    servers=(BoundServerRecord(server=server, connection=connection), BoundServerRecord(server=server)),
                )
            )
    return tenant_records, records
