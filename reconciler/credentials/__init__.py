"""Credential handling: secret fingerprints now; secret stores, OAuth flows and rotation build on it."""

from reconciler.credentials.fingerprints import fingerprint

__all__ = ["fingerprint"]
