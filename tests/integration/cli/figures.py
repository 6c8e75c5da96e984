"""Figures the bad-input corpus measures, kept on the pytest config so the terminal summary can print them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class CorpusFigures:
    kinds: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    partial_writes: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"bad-input corpus: {len(self.kinds)} kinds tried, {len(self.tracebacks)} tracebacks, "
            f"{len(self.partial_writes)} partial writes, {len(self.accepted)} accepted"
        )


CORPUS_FIGURES = pytest.StashKey[CorpusFigures]()
