"""Every kopf decorator of the operator, in one place: thin shells over `ObjectReconciler`.

`running.py` calls `build_handlers` once per operator with its collaborators; nothing registers into kopf's global
registry, so two operators can run in one process (tests do). Per kind: a watch-event handler keeping the object
index (by namespace and by uid, and which objects read which Secret; ours, not kopf's indexes: see `indexing.py`),
create/update/resume → one pass (kopf's diff base is kept in memory, `handled.py`), delete → the finalizer. Periodic
passes are not kopf daemons (one per object would cost ~40 KB each): indexing an object schedules it in the
reconciler's one resync loop, which the first indexed object starts, and an imported MCPServer in the upstream
checker's loop (no kopf timer either: kopf would keep every MCPServer's full body for it). create/update/resume only
queue the pass (`ObjectReconciler.request_pass`), which the reconciler runs from the index with its own back-off: a
handler waiting for its pass held kopf's worker and the event's copies meanwhile. One more watch, on Secrets
labelled `mcp.reconciler.dev/credential` (filtered server-side through `settings.watching.label_selectors`, see
`config.py`), reconciles exactly the objects that read a changed Secret. Handlers are async: kopf runs sync handlers
in threads, and the scheduling indexing does belongs on the event loop. Handlers return None (status is written by
the pass itself); the finalizer translates the domain's two error roots into kopf's: PermanentError →
kopf.PermanentError (no retries until the spec changes), RetryableError → kopf.TemporaryError with exponential
back-off.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable
from typing import Any

import aiohttp
import kopf

from reconciler.api import API_GROUP, API_VERSION, KINDS
from reconciler.errors import PermanentError, RetryableError
from reconciler.operator.annotations import CREDENTIAL_LABEL
from reconciler.operator.cluster import KubeAccess
from reconciler.operator.gathering import index_entry, secret_users
from reconciler.operator.handled import HandledSpecs
from reconciler.operator.indexing import ObjectIndex
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.operator.upstream import UpstreamChecker

SECRET_EVENTS = ("ADDED", "MODIFIED", "DELETED")
"""Watch event types that mean a Secret changed (None marks the initial listing, covered by resume)."""


def bounded_session(info: kopf.ConnectionInfo, *, limit: int | None) -> kopf.AiohttpSession:
    """The session kopf builds from `info` for itself, with at most `limit` connections (None: no bound, as kopf's
    own). The session is made on the event loop, as aiohttp requires; kopf closes it when it logs in again."""
    with warnings.catch_warnings():  # kopf's own deprecation notice for basic auth, as kopf silences it
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="kopf")
        auth = info.as_aiohttp_basic_auth()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit or 0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=False,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
    )


async def _translated(work: Awaitable[None], *, reconciler: ObjectReconciler, retry: int) -> None:
    try:
        await work
    except PermanentError as error:
        raise kopf.PermanentError(str(error)) from error
    except RetryableError as error:
        raise kopf.TemporaryError(str(error), delay=reconciler.retry_delay(retry)) from error


def build_handlers(
    *,
    reconciler: ObjectReconciler,
    access: KubeAccess,
    upstream: UpstreamChecker | None = None,
    handled: HandledSpecs | None = None,
    connection_limit: int | None = None,
) -> kopf.OperatorRegistry:
    """A kopf registry with all handlers, bound to `reconciler`; `access` answers kopf's login, with a session of at
    most `connection_limit` connections (`config.kopf_connection_limit`; None: no bound). With `upstream`,
    the object index hands it the imported MCPServers to check against their registry (its own schedule, not a
    kopf timer: see `upstream.py`). `handled` is kopf's diff base (the same object as in its settings): a finalized
    object's entry is dropped there."""
    registry = kopf.OperatorRegistry()
    objects = ObjectIndex()  # filled from the watch events of our kinds

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        if access.in_cluster:
            info = kopf.login_with_service_account(**kwargs)
        else:
            info = kopf.ConnectionInfo(
                server=access.server,
                token=access.token,
                ca_path=access.ca_path,
                insecure=access.insecure,
                certificate_path=access.certificate_path,
                private_key_path=access.private_key_path,
            )
        return bounded_session(info, limit=connection_limit) if info is not None else None

    for info in KINDS:
        resource = (API_GROUP, API_VERSION, info.plural)

        @kopf.on.event(*resource, id="index", registry=registry)
        async def index_object(
            *, type: str | None, body: kopf.Body, namespace: str | None, uid: str | None, **_: Any
        ) -> None:
            if not uid:
                return
            if type == "DELETED":
                objects.remove(uid)
                return
            entry = index_entry(body)
            objects.put(uid, namespace or "", entry, secret_users(body))
            if not reconciler.resyncing:
                # Started from inside kopf's event processing, so that the loop's passes inherit kopf's context:
                # kopf.event finds its queue through context variables set there.
                reconciler.start_resyncs(objects)
            reconciler.track(entry)  # its periodic passes (idempotent: a known object keeps its schedule)
            if upstream is not None:
                if not upstream.started:
                    upstream.start(objects)
                upstream.track(entry)  # imported servers only: checked now, then every upstream interval

        @kopf.on.resume(*resource, id="reconcile", registry=registry)
        @kopf.on.create(*resource, id="reconcile", registry=registry)
        @kopf.on.update(*resource, id="reconcile", registry=registry)
        async def reconcile_object(*, body: kopf.Body, **_: Any) -> None:
            reconciler.request_pass(body)  # run from the index by the reconciler; kopf's worker is free at once

        @kopf.on.delete(*resource, id="finalize", registry=registry)
        async def finalize_object(*, body: kopf.Body, retry: int, **_: Any) -> None:
            await _translated(reconciler.remove(body), reconciler=reconciler, retry=retry)
            if handled is not None:
                handled.forget(body.metadata.uid)

    @kopf.on.event("v1", "secrets", labels={CREDENTIAL_LABEL: kopf.PRESENT}, id="credential", registry=registry)
    async def credential_changed(
        *, type: str | None, body: kopf.Body, name: str, namespace: str | None, **kwargs: Any
    ) -> None:
        if namespace is None:
            return
        reconciler.secret_observed(body, gone=type == "DELETED")
        if type not in SECRET_EVENTS:
            return
        users = objects.readers(namespace, name)
        if users:
            await reconciler.reconcile_users(users, namespace=namespace, peers=objects.peers(namespace))

    return registry
