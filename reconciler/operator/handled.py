"""kopf's diff base (what each object looked like when its change handler last ran) kept in this process's memory.

kopf decides between create, update, resume and nothing by diffing an object's spec, labels and annotations against
the last handled ones. By default it stores those as an annotation on the object: one more API write per new or
changed object, and in a burst of new objects a third of all the writes the operator causes (a finalizer, our
status, kopf's annotation), with the watch events each write sends back to every watcher. Our passes are
level-based: a pass reads the whole object and the registry and converges them, whatever changed. So the diff base
only has to tell "seen this spec" from "not yet", and memory does that. After a restart nothing is remembered and
every object gets a creation pass, which is what the resume pass did before.
"""

from __future__ import annotations

import json
from typing import cast

import kopf


class HandledSpecs(kopf.DiffBaseStorage):
    """The last handled essence of each live object, by uid, as compact JSON (a few hundred bytes an object)."""

    def __init__(self) -> None:
        super().__init__()
        self._essences: dict[str, str] = {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        encoded = self._essences.get(body.metadata.uid or "")
        return cast(kopf.BodyEssence, json.loads(encoded)) if encoded is not None else None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        uid = body.metadata.uid
        if not uid or body.metadata.deletion_timestamp:
            return  # a deleting object only ever gets its finalizer from here on: nothing to diff against
        self._essences[uid] = json.dumps(essence, separators=(",", ":"))

    def forget(self, uid: str | None) -> None:
        """The object is finalized: drop its entry (its uid never comes back)."""
        if uid:
            self._essences.pop(uid, None)

    def __len__(self) -> int:
        return len(self._essences)
