"""Holds back near-duplicate chunks and more than a few chunks of one headed section.

The top k then cover more places: a list question often needs several.
"""

from __future__ import annotations

from assistant.records import Chunk
from assistant.text import analyze


class Diversity:
    """Decides, hit by hit, whether a chunk adds a place the hits kept so far do not cover.

    Args:
        max_per_section: chunks kept from one headed section.
        duplicate_overlap: a chunk sharing this share of its terms with a kept one is a duplicate.

    One instance serves one search: it remembers what it kept.
    """

    def __init__(self, max_per_section: int, duplicate_overlap: float) -> None:
        self.max_per_section = max_per_section
        self.duplicate_overlap = duplicate_overlap
        self._per_section: dict[tuple[str, tuple[str, ...]], int] = {}
        self._kept_terms: list[set[str]] = []

    def keep(self, chunk: Chunk) -> bool:
        """Returns whether to keep `chunk`, and remembers it when kept."""
        # Only headed sections are capped: a document without headings is one long "section",
        # and capping it would hide most of it.
        place = (chunk.doc_id, chunk.section_path)
        if chunk.section_path and self._per_section.get(place, 0) >= self.max_per_section:
            return False
        terms = set(analyze(chunk.text))
        if any(overlap(terms, other) >= self.duplicate_overlap for other in self._kept_terms):
            return False
        self._per_section[place] = self._per_section.get(place, 0) + 1
        self._kept_terms.append(terms)
        return True


def overlap(a: set[str], b: set[str]) -> float:
    """Returns the share of the smaller term set that the other one holds too."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
