"""Keyed fingerprints of secret values: enough to tell that a credential changed, useless to guess it.

HMAC-SHA256 with a per-registry key, so a short secret cannot be brute-forced from status or the registry
without that key. Called by the engine when it builds desired rows and by rotation checks.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "hmac-sha256:"


def fingerprint(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:32]
