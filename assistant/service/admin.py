"""Operations routes: liveness, readiness with the index's manifest, and rebuilding the index.

GET  /healthz              the process is up (no check of the index)
GET  /readyz               the index is loaded: its manifest summary; 503 when not
POST /api/admin/reindex    {"rebuild": false} -> what the rebuild did (needs an API key)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from assistant.service.context import Context
from assistant.service.models import (
    IndexSummaryOut,
    ReadyOut,
    ReindexRequest,
    ReindexResponse,
    SkippedOut,
)
from assistant.service.security import require_admin_key

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Says the process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut)
def readyz(context: Context) -> ReadyOut:
    """Says the index is loaded and describes it; 503 (IndexNotFoundError ...) when it is not."""
    store = context.assistant.store
    manifest = store.manifest
    return ReadyOut(
        status="ready",
        index=IndexSummaryOut(
            version=store.path.name,
            model=manifest.model,
            dimension=manifest.dimension,
            documents=len(manifest.documents),
            chunks=manifest.chunks,
            vector_index=manifest.vector_index,
            built_at=manifest.built_at,
        ),
    )


@router.post(
    "/api/admin/reindex",
    response_model=ReindexResponse,
    dependencies=[Depends(require_admin_key)],
)
async def reindex(context: Context, body: Annotated[ReindexRequest | None, Body()] = None) -> ReindexResponse:
    """Brings the index up to date with the corpus while requests keep being answered.

    Runs in a worker thread; a second call waits for the running one, then runs itself.
    Requests in flight finish on the old index; later ones use the new one.
    """
    report = await context.reindexer.run_async(rebuild=body.rebuild if body else False)
    return ReindexResponse(
        written=report.written,
        documents=report.documents,
        chunks=report.chunks,
        added=report.added,
        changed=report.changed,
        removed=report.removed,
        unchanged=report.unchanged,
        embedded=report.embedded,
        skipped=[SkippedOut(doc=doc, reason=reason) for doc, reason in report.skipped],
        rebuild_reason=report.rebuild_reason,
        seconds=round(report.seconds, 3),
        version=report.version,
    )
