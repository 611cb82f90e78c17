"""Corpus changes -> a new index while the server answers, one rebuild at a time.

`Assistant.index()` writes a new index version and swaps it in; requests already running keep
the engine they started with, so no request fails. The rebuild runs in a worker thread (it
embeds with the model for seconds to minutes) and a lock makes concurrent calls wait their
turn: each run then sees the corpus as it is when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import anyio.to_thread

from assistant.errors import AssistantError, ConfigError
from assistant.indexer import IndexReport
from assistant.pipeline import Assistant

logger = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 2000  # editors and copies write in bursts: wait for the burst to end


class Reindexer:
    """Runs `Assistant.index()` serialised, off the event loop, on request or on file changes."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._lock = threading.Lock()
        self.last_report: IndexReport | None = None

    def run(self, *, rebuild: bool = False) -> IndexReport:
        """Brings the index up to date with the corpus (blocks; waits for a running rebuild)."""
        with self._lock:
            report = self.assistant.index(rebuild=rebuild)
            self.last_report = report
        logger.info(
            "reindex written=%s documents=%d chunks=%d added=%d changed=%d removed=%d embedded=%d seconds=%.1f",
            report.written,
            report.documents,
            report.chunks,
            len(report.added),
            len(report.changed),
            len(report.removed),
            report.embedded,
            report.seconds,
        )
        return report

    async def run_async(self, *, rebuild: bool = False) -> IndexReport:
        """Runs `run` in a worker thread so that the event loop keeps serving."""
        return await anyio.to_thread.run_sync(lambda: self.run(rebuild=rebuild))

    async def watch(self, corpus_dir: Path, stop: asyncio.Event) -> None:
        """Reindexes whenever files in `corpus_dir` change, until `stop` is set."""
        try:
            from watchfiles import awatch
        except ImportError as exc:
            raise ConfigError("ASSISTANT_REINDEX_WATCH needs the watchfiles package: pip install watchfiles") from exc
        logger.info("watching %s for changes", corpus_dir)
        async for changes in awatch(corpus_dir, stop_event=stop, debounce=WATCH_DEBOUNCE_MS):
            logger.info("%d corpus files changed: reindexing", len(changes))
            try:
                await self.run_async()
            except AssistantError as exc:
                # A bad corpus state (e.g. all files removed) must not stop the watcher.
                logger.warning("reindex after a corpus change failed: %s", exc)
