"""The operator's object index: our objects as the watch last reported them, and which objects read which Secret.

Kept from kopf's raw watch events (an `@kopf.on.event` handler per kind, `handlers.py`), not from kopf's own indexes.
With an index declared, kopf holds every object's worker at start-up until all existing objects are indexed, and
wakes every waiting worker each time one more object is listed or indexed: quadratic in the objects that exist
when the operator starts. At 10,000 objects the initial listing then took longer than the API server keeps a list's
continue token (5 minutes), and the failed listing stopped the operator, on every restart. Without that barrier an
object's change handler can run before a peer it references is indexed; its pass then finds the reference pending
and is retried with back-off, as when the peer is created after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SecretKey = tuple[str, str]
"""(namespace, Secret name)."""
ObjectName = tuple[str, str]
"""(kind, name)."""


class ObjectIndex:
    """Index entries by uid and by namespace, and the Secrets each object reads. One per operator process; the
    periodic passes read it as `objects.IndexedObjects`."""

    def __init__(self) -> None:
        self._by_uid: dict[str, tuple[str, Mapping[str, Any]]] = {}
        """uid → (namespace, entry)."""
        self._by_namespace: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._readers: dict[SecretKey, dict[str, ObjectName]] = {}
        """Secret → uid → the (kind, name) reading it."""
        self._reads: dict[str, tuple[SecretKey, ...]] = {}
        """uid → the Secrets it reads (to drop them when the object changes or goes)."""

    def put(self, uid: str, namespace: str, entry: Mapping[str, Any], reads: Mapping[SecretKey, ObjectName]) -> None:
        """The object as the watch reports it now (listed, added or modified)."""
        self.remove(uid)
        self._by_uid[uid] = (namespace, entry)
        self._by_namespace.setdefault(namespace, {})[uid] = entry
        for secret, reader in reads.items():
            self._readers.setdefault(secret, {})[uid] = reader
        if reads:
            self._reads[uid] = tuple(reads)

    def remove(self, uid: str) -> None:
        """The object is gone from the cluster (or about to be re-put)."""
        known = self._by_uid.pop(uid, None)
        if known is not None:
            namespace = known[0]
            peers = self._by_namespace.get(namespace)
            if peers is not None:
                peers.pop(uid, None)
                if not peers:
                    del self._by_namespace[namespace]
        for secret in self._reads.pop(uid, ()):
            readers = self._readers.get(secret)
            if readers is not None:
                readers.pop(uid, None)
                if not readers:
                    del self._readers[secret]

    def body(self, key: str) -> Mapping[str, Any] | None:
        known = self._by_uid.get(key)
        return known[1] if known is not None else None

    def peers(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return list(self._by_namespace.get(namespace, {}).values())

    def readers(self, namespace: str, secret: str) -> list[ObjectName]:
        """(kind, name) of the objects of `namespace` that read the Secret `secret`."""
        return list(self._readers.get((namespace, secret), {}).values())

    def __len__(self) -> int:
        return len(self._by_uid)
