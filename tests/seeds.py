"""The five source pages kept in tests/fixtures/seeds/, found by what they say (the file
names are content hashes)."""

from __future__ import annotations

from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"


def seed(title: str) -> str:
    """The stored source page whose text contains `title`."""
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if title in text:
            return text
    raise AssertionError(f"no seed page mentions {title!r}")
