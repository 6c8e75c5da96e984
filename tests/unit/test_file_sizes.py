"""No product module over 600 lines (issue 12 §6): a module that long has become two concerns, and the next change
to it should split them rather than grow it."""

from __future__ import annotations

from pathlib import Path

import reconciler

MAX_LINES = 600


def test_no_product_module_is_over_600_lines() -> None:
    package = Path(reconciler.__file__).parent
    too_long = {
        str(path.relative_to(package.parent)): count
        for path in sorted(package.rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }

    assert not too_long, f"split these modules: {too_long}"
