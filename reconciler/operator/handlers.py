"""Every kopf decorator of the operator, in one place: thin shells over `ObjectReconciler`.

`running.py` calls `build_handlers` once per operator with its collaborators; nothing registers into kopf's
global registry, so two operators can run in one process (tests do). Per kind: two indexes (the namespace's
objects, and which objects read which Secret), create/update/resume → one pass, a daemon → periodic resync,
delete → the finalizer. One more watch, on Secrets labelled `mcp.reconciler.dev/credential` (filtered
server-side through `settings.watching.label_selectors`, see `config.py`), reconciles exactly the objects
that read a changed Secret. Handlers return None (status is written by the pass itself) and translate the
domain's two error roots into kopf's: PermanentError → kopf.PermanentError (no retries until the spec
changes), RetryableError → kopf.TemporaryError with exponential back-off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, cast

import kopf

from reconciler.api import API_GROUP, API_VERSION, KINDS
from reconciler.errors import PermanentError, RetryableError
from reconciler.operator.annotations import CREDENTIAL_LABEL
from reconciler.operator.cluster import KubeAccess
from reconciler.operator.gathering import index_entry, secret_users
from reconciler.operator.reconciling import ObjectReconciler

OBJECTS_INDEX = "mcp_objects"
"""namespace → index entries of our objects there (kwarg name in handlers)."""
SECRET_USERS_INDEX = "mcp_secret_users"
"""(namespace, Secret name) → (kind, name) of the objects reading it (kwarg name in handlers)."""
SECRET_EVENTS = ("ADDED", "MODIFIED", "DELETED")
"""Watch event types that mean a Secret changed (None marks the initial listing, covered by resume)."""
DAEMON_CANCELLATION_BACKOFF = 5.0
"""Grace kopf gives a stopping resync daemon before cancelling it (it normally exits at once)."""
DAEMON_CANCELLATION_TIMEOUT = 30.0

ObjectsIndex = Mapping[str, Iterable[Mapping[str, Any]]]
UsersIndex = Mapping[tuple[str, str], Iterable[tuple[str, str]]]


async def _translated(work: Awaitable[None], *, reconciler: ObjectReconciler, retry: int) -> None:
    try:
        await work
    except PermanentError as error:
        raise kopf.PermanentError(str(error)) from error
    except RetryableError as error:
        raise kopf.TemporaryError(str(error), delay=reconciler.retry_delay(retry)) from error


def build_handlers(*, reconciler: ObjectReconciler, access: KubeAccess) -> kopf.OperatorRegistry:
    """A kopf registry with all handlers, bound to `reconciler`; `access` answers kopf's login."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if access.in_cluster:
            return kopf.login_with_service_account(**kwargs)
        return kopf.ConnectionInfo(
            server=access.server,
            token=access.token,
            ca_path=access.ca_path,
            insecure=access.insecure,
            certificate_path=access.certificate_path,
            private_key_path=access.private_key_path,
        )

    def objects_of(kwargs: Mapping[str, Any], namespace: str | None) -> Iterable[Mapping[str, Any]]:
        index = cast(ObjectsIndex, kwargs[OBJECTS_INDEX])
        return index.get(namespace or "", ())

    for info in KINDS:
        resource = (API_GROUP, API_VERSION, info.plural)

        @kopf.index(*resource, id=OBJECTS_INDEX, registry=registry)
        def index_object(*, body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Any]:
            return {namespace or "": index_entry(body)}

        @kopf.index(*resource, id=SECRET_USERS_INDEX, registry=registry)
        def index_secret_users(*, body: kopf.Body, **_: Any) -> dict[tuple[str, str], tuple[str, str]]:
            return secret_users(body)

        @kopf.on.resume(*resource, id="reconcile", registry=registry)
        @kopf.on.create(*resource, id="reconcile", registry=registry)
        @kopf.on.update(*resource, id="reconcile", registry=registry)
        async def reconcile_object(*, body: kopf.Body, namespace: str | None, retry: int, **kwargs: Any) -> None:
            work = reconciler.reconcile(body, peers=objects_of(kwargs, namespace))
            await _translated(work, reconciler=reconciler, retry=retry)

        @kopf.daemon(
            *resource,
            id="resync",
            cancellation_backoff=DAEMON_CANCELLATION_BACKOFF,
            cancellation_timeout=DAEMON_CANCELLATION_TIMEOUT,
            registry=registry,
        )
        async def resync_object(
            *, body: kopf.Body, namespace: str | None, stopped: kopf.DaemonStopped, **kwargs: Any
        ) -> None:
            await reconciler.resync_forever(body, peers=lambda: objects_of(kwargs, namespace), stopped=stopped)

        @kopf.on.delete(*resource, id="finalize", registry=registry)
        async def finalize_object(*, body: kopf.Body, retry: int, **_: Any) -> None:
            await _translated(reconciler.remove(body), reconciler=reconciler, retry=retry)

    @kopf.on.event("v1", "secrets", labels={CREDENTIAL_LABEL: kopf.PRESENT}, id="credential", registry=registry)
    async def credential_changed(
        *, type: str | None, body: kopf.Body, name: str, namespace: str | None, **kwargs: Any
    ) -> None:
        if namespace is None:
            return
        reconciler.secret_observed(body, gone=type == "DELETED")
        if type not in SECRET_EVENTS:
            return
        users = list(cast(UsersIndex, kwargs[SECRET_USERS_INDEX]).get((namespace, name), ()))
        if users:
            await reconciler.reconcile_users(users, namespace=namespace, peers=objects_of(kwargs, namespace))

    return registry
