"""Verifying a credential against the live server: a probe that must authenticate.

The engine calls `verify_credential` for a rotated Secret before any row points at it, and hands
`credential_verifier(target, ...)` to the credentials package when a dynamically registered client is rotated: the
credentials package mints with the new client and calls it with the new headers; `credentials.rotation.verdict`
then reads the result. The result doubles as the server's probe for this pass, so a rotation costs one probe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping

from reconciler.probe.probing import ProbeResult, probe_server
from reconciler.probe.settings import ProbeSettings, ProbeTarget
from reconciler.probe.transports import ProbeHttp


async def verify_credential(target: ProbeTarget, *, settings: ProbeSettings, http: ProbeHttp) -> ProbeResult:
    """Probe the live server with the new credential (`target.headers` already holds it).

    Listing is forced on, because an open endpoint may accept the unauthenticated discovery request: only an
    authenticated request proves the credential. The result doubles as the server's probe for this pass.
    """
    return await probe_server(dataclasses.replace(target, list_tools=True), settings=settings, http=http)


def credential_verifier(
    target: ProbeTarget, *, settings: ProbeSettings, http: ProbeHttp
) -> Callable[[Mapping[str, str]], Awaitable[ProbeResult]]:
    """`verify_credential` of `target` with extra headers (a freshly minted `Authorization`, which wins)."""

    async def verify(headers: Mapping[str, str]) -> ProbeResult:
        return await verify_credential(
            dataclasses.replace(target, headers={**target.headers, **headers}), settings=settings, http=http
        )

    return verify
