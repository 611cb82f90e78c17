"""Document routes: the index's documents -> listings, full texts and cited passages.

    GET /api/documents                          id, title, language, sections, chunks, chars
    GET /api/documents/{id}                     the extracted text and its sections
    GET /api/documents/{id}?start=&end=         the passage start..end with text around it

Ids are paths relative to the corpus folder (`reports/2024/q1.txt`), hence the path
converter. An id is only ever looked up in the index, never opened as a file; ids with
dot segments, backslashes or control characters are refused outright (400).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from assistant.records import Document
from assistant.service.context import Context
from assistant.service.models import (
    DocumentListOut,
    DocumentOut,
    DocumentSummaryOut,
    PassageOut,
    SectionOut,
)
from assistant.service.security import require_api_key

router = APIRouter(prefix="/api", tags=["documents"], dependencies=[Depends(require_api_key)])

CONTEXT_CHARS = 300  # text shown on each side of a cited passage
# Ids with dot segments, backslashes or control characters (also refused by the source page).
BAD_ID = re.compile(r"(^|/)\.\.?(/|$)|\\|[\x00-\x1f]|^/")


@router.get("/documents", response_model=DocumentListOut)
def list_documents(context: Context) -> DocumentListOut:
    """Lists the indexed documents."""
    return DocumentListOut(
        documents=[
            DocumentSummaryOut(
                id=d.id,
                title=d.title,
                language=d.language,
                sections=list(d.sections),
                chunks=d.chunks,
                chars=d.chars,
            )
            for d in context.assistant.store.documents()
        ]
    )


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentOut | PassageOut,
    response_model_exclude_none=True,
)
def get_document(
    doc_id: str,
    context: Context,
    start: Annotated[int | None, Query(ge=0, description="Start of a cited span.")] = None,
    end: Annotated[int | None, Query(ge=0, description="End of a cited span.")] = None,
) -> DocumentOut | PassageOut:
    """Returns a document's text, or with start and end the cited passage and its context."""
    if not doc_id or BAD_ID.search(doc_id):
        raise HTTPException(400, f"invalid document id {doc_id!r}: use an id from GET /api/documents")
    document = context.assistant.store.document(doc_id)
    if start is None and end is None:
        return DocumentOut(
            id=document.id,
            title=document.title,
            language=document.language,
            text=document.text,
            sections=[SectionOut(title=s.title, level=s.level, start=s.start, end=s.end) for s in document.sections],
        )
    return _passage(document, start, end)


def _passage(document: Document, start: int | None, end: int | None) -> PassageOut:
    size = len(document.text)
    if start is None or end is None or not start < end <= size:
        raise HTTPException(
            422,
            f"start and end must both be given with 0 <= start < end <= {size} (the text's length)",
        )
    section = document.section_at(start)
    before_start = max(0, start - CONTEXT_CHARS)
    after_end = min(size, end + CONTEXT_CHARS)
    return PassageOut(
        doc=document.id,
        title=document.title,
        section=section.title if section else "",
        start=start,
        end=end,
        quote=document.text[start:end],
        before=document.text[before_start:start],
        after=document.text[end:after_end],
        page=document.page_at(start),
    )
