"""CHANGELOG.md keeps the Keep a Changelog form, and its newest release is the package's version.

Unreleased first, then releases newest first with ISO dates, and only the six kinds of change under them, so
the merged entries of parallel branches stay in one shape and a version bump cannot forget the changelog.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "CHANGELOG.md").read_text()
RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")
KINDS_OF_CHANGE = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def headings(level: str) -> list[str]:
    return [line for line in TEXT.splitlines() if line.startswith(level + " ")]


def test_unreleased_comes_first_then_dated_releases_newest_first() -> None:
    sections = headings("##")
    assert sections[0] == "## [Unreleased]"
    releases = [RELEASE.match(line) for line in sections[1:]]
    assert all(releases), [line for line, match in zip(sections[1:], releases, strict=True) if not match]
    versions = [tuple(int(part) for part in match["version"].split(".")) for match in releases if match]
    dates = [match["date"] for match in releases if match]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert dates == sorted(dates, reverse=True)


def test_only_the_six_kinds_of_change() -> None:
    assert {line.removeprefix("### ") for line in headings("###")} <= KINDS_OF_CHANGE


def test_the_newest_release_is_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    newest = next(match for line in headings("##") if (match := RELEASE.match(line)))
    assert newest["version"] == version, "add the release to CHANGELOG.md with the version bump"
