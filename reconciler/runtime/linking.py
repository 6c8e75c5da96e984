"""Connect links as a resolving process and `serve` hold them: the public URL of the connect service and the key
both derive from the registry's store key (`credentials.connect_links`).

`resolving.resolve` issues a link for each server waiting on the member's own login when it is given a public URL;
`endpoint.build_serving_app` hands the same key to the connect service, which opens the links. Both load the store
key as every reader of the registry's sealed values does (`$MCP_RECONCILER_KEY`, else the key file), so a link
issued by `mcp-reconciler resolve`, the Python API or the MCP endpoint opens on any `serve` of the same registry.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from reconciler.credentials import load_store_key
from reconciler.credentials.connect_links import LINK_SECONDS, LinkTarget, connect_url, link_key, sign_link
from reconciler.errors import ReconcilerError
from reconciler.registry import Registry


@dataclass(frozen=True)
class ConnectLinks:
    """Issues connect links for one connect service (`public_url`), signed with `key` (`link_key`)."""

    public_url: str
    key: bytes = field(repr=False)
    seconds: int = LINK_SECONDS

    def url(self, target: LinkTarget, *, now: dt.datetime) -> str:
        token = sign_link(self.key, target, expires_at=now + dt.timedelta(seconds=self.seconds))
        return connect_url(self.public_url, token)


def registry_link_key(registry: Registry, *, create: bool) -> bytes:
    """The links' key for `registry`, derived from its store key; `create` as `load_store_key` (the connect service
    creates the store key it will seal tokens with; a resolution never does). Raises `SecretKeyProblem`."""
    store_key = load_store_key(environ=os.environ, database_path=registry.database_path(), create=create)
    return link_key(store_key)


def links_for(registry: Registry, public_url: str) -> ConnectLinks | str:
    """The links a resolution of `registry` issues, or why it cannot (no store key yet: nothing connected so far
    and no `$MCP_RECONCILER_KEY`)."""
    try:
        return ConnectLinks(public_url.rstrip("/"), registry_link_key(registry, create=False))
    except ReconcilerError as err:
        return str(err)
