"""Whether this instance is the active one, by kopf's peering rule, for the periodic passes kopf does not start.

kopf pauses its watches and handlers while a peer of higher (or equal) priority is alive, but the resync loop
(`resyncing.py`) is ours, so it asks this gate before each pass. The gate reads the peering object kopf keeps
alive (`status`: peer id → priority, lifetime, lastseen) and applies kopf's rule from
`kopf._core.engines.peering.process_peering_event`: paused while another live peer has a priority greater than
or equal to ours. A missing peering object or CRD pauses too, as it does kopf with mandatory peering. Verdicts are
cached per namespace for a few seconds, so 1,000 objects in one namespace cost one read per period, not 1,000.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
NAMESPACED_PEERINGS = "kopfpeerings"
CLUSTER_PEERINGS = "clusterkopfpeerings"


class ResyncGate(Protocol):
    async def allows(self, namespace: str) -> bool: ...


class AlwaysOpen:
    """Standalone: no peers, every pass runs."""

    async def allows(self, namespace: str) -> bool:
        return True


PeeringReader = Callable[[str | None, str], Awaitable[Mapping[str, Any] | None]]
"""(namespace, or None for the cluster-wide object; name) → the object's status, None when it does not exist.
Raises when the API cannot be asked (the CRD missing included)."""


def own_identity(environ: Mapping[str, str]) -> str:
    """This instance's peer id (given to kopf, so the gate knows which entry is its own): the pod name (kopf's
    `POD_ID`, or the chart's `POD_NAME`), else user@host plus a random suffix, as kopf makes its own."""
    pod = environ.get("POD_ID") or environ.get("POD_NAME")
    if pod:
        return pod
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return f"{user}@{socket.gethostname()}/{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Peer:
    identity: str
    priority: int
    alive_until: dt.datetime


def peers_of(status: Mapping[str, Any]) -> list[Peer]:
    """The entries of a peering object's status; malformed ones are skipped (kopf would fail on them)."""
    found: list[Peer] = []
    for identity, info in status.items():
        if not isinstance(info, Mapping):
            continue
        try:
            lastseen = dt.datetime.fromisoformat(str(info["lastseen"]))
            lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
            priority = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=dt.UTC)
        found.append(Peer(identity=str(identity), priority=priority, alive_until=lastseen + lifetime))
    return found


def blocking_peers(status: Mapping[str, Any], *, identity: str, priority: int, now: dt.datetime) -> list[Peer]:
    """Live peers other than us with a priority ≥ ours: while any exists, kopf keeps this instance paused."""
    return [
        peer
        for peer in peers_of(status)
        if peer.identity != identity and peer.alive_until > now and peer.priority >= priority
    ]


class PeeringGate:
    """kopf's pause decision, re-derived from the peering object for the passes kopf does not drive."""

    def __init__(
        self,
        read: PeeringReader,
        *,
        name: str,
        identity: str,
        priority: int,
        clusterwide: bool,
        cache_seconds: float = 10.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._read = read
        self._name = name
        self._identity = identity
        self._priority = priority
        self._clusterwide = clusterwide
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._verdicts: dict[str | None, tuple[dt.datetime, bool]] = {}

    async def allows(self, namespace: str) -> bool:
        scope = None if self._clusterwide else namespace
        now = self._clock()
        cached = self._verdicts.get(scope)
        if cached is not None and (now - cached[0]).total_seconds() < self._cache_seconds:
            return cached[1]
        try:
            status = await self._read(scope, self._name)
        except Exception:  # cannot tell (API down, CRD missing): behave as paused, as kopf does, and ask again
            verdict = False
        else:
            # No peering object: kopf's keep-alive has nowhere to write, so a mandatory-peering kopf stays paused.
            verdict = status is not None and not blocking_peers(
                status, identity=self._identity, priority=self._priority, now=now
            )
        self._verdicts[scope] = (now, verdict)
        return verdict


@dataclass(frozen=True)
class PeeringState:
    """Whether this instance can work at all: its peering object exists (or it runs standalone). `/healthz`
    reports it, and the runner logs it, so a missing object is never a silent wait."""

    ready: bool
    message: str


STANDALONE = PeeringState(True, "standalone: no peering")
_PATTERN_CHARS = frozenset("*?[],!")


def waiting_message(name: str, missing: list[str], *, clusterwide: bool) -> str:
    """What a mandatory-peering instance waits for, and the two ways out."""
    kind = "ClusterKopfPeering" if clusterwide else "KopfPeering"
    where = "" if clusterwide else f" in namespace {', '.join(missing)}"
    return (
        f"waiting: nothing is reconciled until the {kind} {name!r} exists{where} (peering is mandatory unless "
        f"--standalone is given, so that only one instance is active). Either run with --standalone (one "
        f"instance, no peering), or install the chart, which creates the peering CRDs and the {kind} "
        f"(by hand: kubectl apply -f charts/mcp-reconciler/crds/kopf.dev_peerings.yaml, then create a {kind} named "
        f"{name}{where})"
    )


class PeeringCheck:
    """Does the peering object a mandatory-peering kopf needs exist? Only literal namespaces can be checked;
    namespace patterns (`team-*`) are reported as not verifiable."""

    def __init__(self, read: PeeringReader, *, name: str, namespaces: tuple[str, ...], clusterwide: bool) -> None:
        self._read = read
        self._name = name
        self._clusterwide = clusterwide
        self._namespaces = [n for n in namespaces if not _PATTERN_CHARS & set(n)]

    async def check(self) -> PeeringState:
        scopes: list[str | None] = [None] if self._clusterwide else list(self._namespaces)
        if not scopes:
            return PeeringState(True, f"peering object {self._name!r} expected in every served namespace; not verified")
        missing: list[str] = []
        for scope in scopes:
            try:
                status = await self._read(scope, self._name)
            except Exception:  # a missing CRD or an unreachable API: the object cannot be there for kopf either
                status = None
            if status is None:
                missing.append(scope or "")
        if missing:
            return PeeringState(False, waiting_message(self._name, missing, clusterwide=self._clusterwide))
        return PeeringState(True, f"peering object {self._name!r} found")
