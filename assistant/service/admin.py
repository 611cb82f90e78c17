"""Operations routes: liveness, readiness with the index's manifest, and rebuilding the index.

GET  /healthz              the process is up (no check of the index)
GET  /readyz               the index version that answers (its manifest summary), a build
                           under way and the answering process; 503 while no index can answer,
                           with the reason ("building the first index: 3 of 5 documents read ...")
POST /api/admin/reindex    {"rebuild": false} -> what the rebuild did (needs an admin key)
"""

from __future__ import annotations

import os
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends

from assistant.errors import IndexBuildingError, IndexNotFoundError
from assistant.service.context import Context
from assistant.service.models import (
    BuildingOut,
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
    """Says which index version answers and whether a newer one is being built; 503 when none can.

    The 503's detail says why: the first index is being built (and how far it has got), the
    last build failed (and why), or there is no index at all.
    """
    assistant, failure = context.assistant, context.reindexer.last_error
    indexing = assistant.indexing
    try:
        store = assistant.store
    except IndexNotFoundError as exc:
        if failure is None or isinstance(exc, IndexBuildingError):
            raise
        # "Run assistant index" is no advice when the server's own build just failed.
        raise failure.with_traceback(None) from None
    manifest = store.manifest
    building = None
    if indexing is not None:
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(indexing.started))
        building = BuildingOut(started_at=started, progress=indexing.describe())
    return ReadyOut(
        status="ready",
        building=building,
        last_build_error=str(failure) if failure is not None else None,
        worker_pid=os.getpid(),
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
