"""`serve`'s read-only window on Kubernetes Secrets (`serve --secrets kubernetes`).

`serve` runs no Kopf operator and no event loop of its own that the connect service or the MCP endpoint could lend
to the Kubernetes client: both call the engine from worker threads. `ServeSecretValues` owns one event loop on a
thread of its own, with the API client and a `KubernetesSecretStore` on it, and offers the synchronous
`SecretReader` the connect service's logins (a pre-registered confidential client's `clientSecret` at the code
exchange) and the on-demand renewal of members' tokens (the same secret at the refresh) read through. `cli.py`
builds it; nothing here writes. Every read is bounded by `timeout`, values are kept only in the store's memory
cache (briefly: no watch keeps them current here), and errors name the Secret, never its contents. Only the
namespace a reference names is read, and references come from the engine, which refuses a Secret outside the
object's own namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from kubernetes.aio import client as aclient

from reconciler.credentials.errors import SecretStoreUnavailable
from reconciler.credentials.kubernetes_store import KubernetesSecretStore
from reconciler.operator.cluster import CoreObjects, load_client_configuration

_T = TypeVar("_T")

CACHE_SECONDS = 30.0
"""How long a read Secret is reused: no watch reports its changes to `serve`, so a rotated client secret is seen
within this long."""


class ServeSecretValues:
    """A synchronous `SecretReader` over the Kubernetes API, for `serve`. `start` connects; `close` stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, *, timeout: float) -> None:
        self._loop = loop
        self._thread = thread
        self._timeout = timeout
        self._api_client: aclient.ApiClient | None = None
        self._store: KubernetesSecretStore | None = None

    def __repr__(self) -> str:
        return f"ServeSecretValues({self._store!r})"

    @classmethod
    def start(
        cls, *, kubeconfig: Path | None = None, environ: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> ServeSecretValues:
        """Load the client configuration (`kubeconfig`, else `$KUBECONFIG`/`~/.kube/config`, else the pod's
        service account) and start the loop. Raises `SecretStoreUnavailable` when there is no configuration."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="serve-secrets", daemon=True)
        thread.start()
        values = cls(loop, thread, timeout=timeout)
        try:
            values._call(values._connect(kubeconfig, dict(os.environ if environ is None else environ)), "connect")
        except BaseException:
            values.close()
            raise
        return values

    async def _connect(self, kubeconfig: Path | None, environ: Mapping[str, str]) -> None:
        try:
            configuration, _ = await load_client_configuration(kubeconfig=kubeconfig, context=None, environ=environ)
        except Exception as err:  # the kubernetes config loader raises its own ConfigException and OSError
            raise SecretStoreUnavailable(
                f"serve --secrets kubernetes: no Kubernetes API configuration ({type(err).__name__}); "
                "give --kubeconfig, or run in a pod with a mounted service-account token"
            ) from None
        self._api_client = aclient.ApiClient(configuration)
        self._store = KubernetesSecretStore(
            CoreObjects(self._api_client, request_timeout=self._timeout),
            request_timeout=self._timeout,
            max_age=CACHE_SECONDS,
        )

    def read(self, namespace: str, name: str, key: str) -> str | None:
        """The value, or None when the Secret or key does not exist; `SecretStoreUnavailable` when it cannot be
        read (forbidden, unreachable, timed out), naming the Secret."""
        assert self._store is not None, "started"
        return self._call(self._store.aread(namespace, name, key), f"read Secret {namespace}/{name}")

    def close(self) -> None:
        if self._api_client is not None:
            client, self._api_client = self._api_client, None
            with contextlib.suppress(SecretStoreUnavailable):  # best effort: the process is ending
                self._call(client.close(), "close the Kubernetes client")  # type: ignore[no-untyped-call]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self._timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, _T], what: str) -> _T:
        """Run on the loop's thread; the wait covers the API's own bound (`timeout`) with room to spare."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=self._timeout * 2)
        except FutureTimeout:
            future.cancel()
            raise SecretStoreUnavailable(f"cannot {what}: no answer within {self._timeout * 2:.0f} s") from None
