"""Citations shared by every answerer: numbered spans of documents, and [n] markers checked.

An answer may never carry a marker that points to nothing, and a citation's quote is always
the document's text at its offsets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.records import Chunk, Citation, Sentence

MARKER = re.compile(r"\[(\d+)\]")


def cite(n: int, chunk: Chunk, span: Sentence) -> Citation:
    """Returns citation number `n` for a span inside `chunk` (document offsets)."""
    if not chunk.start <= span.start < span.end <= chunk.end:
        raise ValueError(f"span {span} lies outside chunk {chunk.id}")
    return Citation(
        n=n,
        doc=chunk.doc_id,
        title=chunk.title,
        section=chunk.section,
        start=span.start,
        end=span.end,
        quote=chunk.sentence_text(span),
        page=chunk.page,
    )


def markers(text: str) -> list[int]:
    """Returns the citation numbers used in a text, in order of first use."""
    seen: dict[int, None] = {}
    for match in MARKER.finditer(text):
        seen.setdefault(int(match.group(1)), None)
    return list(seen)


def renumber(text: str, citations: Sequence[Citation]) -> tuple[str, tuple[Citation, ...]]:
    """Drops markers that point to no citation, and numbers the rest 1, 2, ... by first use.

    Citations never referred to in the text are dropped too.
    """
    by_number = {c.n: c for c in citations}
    order = [n for n in markers(text) if n in by_number]
    new_number = {old: new for new, old in enumerate(order, start=1)}

    def replace(match: re.Match[str]) -> str:
        old = int(match.group(1))
        return f"[{new_number[old]}]" if old in new_number else ""

    cleaned = MARKER.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    kept = tuple(
        Citation(
            n=new_number[c.n],
            doc=c.doc,
            title=c.title,
            section=c.section,
            start=c.start,
            end=c.end,
            quote=c.quote,
            page=c.page,
        )
        for c in sorted((by_number[n] for n in order), key=lambda c: new_number[c.n])
    )
    return cleaned, kept
