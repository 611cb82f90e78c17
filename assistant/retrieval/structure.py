"""A list question about a name that heads a section with subsections gets one chunk per subsection.

"Which clusters represent Auvergne-Rhône-Alpes?" and "3.3.1. Auvergne Rhône-Alpes" >
"Plastipolis", "Viameca", ...: the opening chunk of each subsection follows the best hit, since
the document's own structure lists the items even when their text never repeats the question's
words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.question import QuestionProfile, mentions
from assistant.store.index_store import IndexStore
from assistant.text import fold


@dataclass(frozen=True)
class Subsections:
    """The subsections' opening chunks placed after the best hit."""

    added: tuple[int, ...]  # rows that were no candidate, to be scored and appended to the candidates
    order: np.ndarray  # positions in candidates + added, best first
    items: dict[int, str]  # row -> heading of the section it is an item of


def subsections_first(
    store: IndexStore, asked: QuestionProfile, rows: tuple[int, ...], order: np.ndarray, depth: int, k: int
) -> Subsections | None:
    """Places the opening chunk of each subsection right after the best hit, or returns None.

    The section is the deepest one among the best `depth` candidates' ancestors whose heading
    names what the question names, with 2 to k - 1 subsections.
    """
    best: tuple[int, str, tuple[str, ...]] | None = None
    for i in order[:depth]:
        chunk = store.chunk(rows[i])
        for level in range(1, len(chunk.section_path)):
            heading = fold(chunk.section_path[level - 1])
            if any(mentions(heading, name) for name in asked.names) and (best is None or level > best[0]):
                best = (level, chunk.doc_id, chunk.section_path[:level])
    if best is None:
        return None
    level, doc_id, parent = best
    children: dict[tuple[str, ...], int] = {}  # subsection -> its first row
    for row in store.rows_of_document(doc_id):
        path = store.chunk(row).section_path
        if len(path) > level and path[:level] == parent:
            children.setdefault(path[: level + 1], row)
    if not 2 <= len(children) < k:
        return None
    position = {row: i for i, row in enumerate(rows)}
    added: list[int] = []
    chosen: list[int] = []
    items: dict[int, str] = {}
    for first_row in children.values():
        # A subsection's first chunk introduces its item ("Plastipolis is the only ...").
        if first_row not in position:
            position[first_row] = len(rows) + len(added)
            added.append(first_row)
        chosen.append(position[first_row])
        items[first_row] = parent[-1]
    first = int(order[0])
    picked = {first, *chosen}
    new_order = np.asarray(
        [first, *(i for i in chosen if i != first), *(int(i) for i in order if int(i) not in picked)]
    )
    return Subsections(tuple(added), new_order, items)
