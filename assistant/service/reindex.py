"""Corpus changes -> a new index while the server answers, one rebuild at a time.

`Assistant.index()` writes a new index version and swaps it in; requests already running keep
the engine they started with, so no request fails. A rebuild runs in a worker thread (it
embeds with the model for seconds to minutes) and a lock makes concurrent calls wait their
turn: each run then sees the corpus as it is when it starts.

At start-up `start()` loads the index version on disk and then brings it up to date, both in
a background thread, so that the server listens at once: it answers from the version on disk
until the new one is swapped in, or says 503 "building the first index ..." while there is
none.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import anyio.to_thread

from assistant.errors import AssistantError, ConfigError
from assistant.indexer import IndexReport, Progress
from assistant.pipeline import Assistant

logger = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 2000  # editors and copies write in bursts: wait for the burst to end
PROGRESS_LOG_S = 10.0  # a long build logs how far it has got this often (logs have no progress bar)


class Reindexer:
    """Runs `Assistant.index()` serialised, off the event loop: at start-up, on request, on file changes."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._lock = threading.Lock()
        self.last_report: IndexReport | None = None
        self.last_error: AssistantError | None = None  # why the last run failed; None after a success

    def run(self, *, rebuild: bool = False) -> IndexReport:
        """Brings the index up to date with the corpus (blocks; waits for a running rebuild)."""
        with self._lock:
            try:
                report = self.assistant.index(rebuild=rebuild, progress=self._progress_log())
            except AssistantError as exc:
                self.last_error = exc
                raise
            self.last_report, self.last_error = report, None
        # What `assistant index` prints, for a server whose builds only the log witnesses.
        for doc_id, reason in report.skipped:
            logger.warning("skipped %s: %s", doc_id, reason)
        if report.written and report.rebuild_reason:
            logger.info("full rebuild: %s", report.rebuild_reason)
        logger.info(
            "reindex written=%s version=%s documents=%d chunks=%d added=%d changed=%d removed=%d embedded=%d "
            "seconds=%.1f",
            report.written,
            report.version or "unchanged",
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

    def start(self, *, update: bool) -> threading.Thread:
        """Loads the index on disk, then (with `update`) brings it up to date, in a background thread.

        The thread is a daemon: stopping the server does not wait for a build, which the next
        start redoes (the version on disk changes only when a build completes).
        """
        thread = threading.Thread(target=self._start, args=(update,), name="assistant-index", daemon=True)
        thread.start()
        return thread

    def _start(self, update: bool) -> None:
        assistant = self.assistant
        try:
            if update and not assistant.has_index():
                logger.info("no index yet in %s: building the first one", assistant.settings.index_dir)
            else:
                self._load()
            if update:
                self.run()
        except AssistantError as exc:
            # Keep serving: the version on disk if any; /readyz says what went wrong.
            logger.warning("the index could not be brought up to date: %s", exc)
        except Exception:
            # A background thread has no caller to raise to: the log is the only witness.
            logger.exception("the background index build failed")

    def _load(self) -> None:
        try:
            store = self.assistant.store
        except AssistantError as exc:
            logger.warning("the index on disk is not loaded: %s", exc)
            return
        logger.info(
            "serving index version %s: %d documents, %d chunks",
            store.path.name,
            len(store.manifest.documents),
            store.size,
        )
        # The model loads on first use: better now than in the first user's request.
        self.assistant.embedder.embed(["warm up"])

    def _progress_log(self) -> Progress:
        """Returns a progress callback that logs how far a long build has got, every PROGRESS_LOG_S."""
        last = time.monotonic()

        def tick(stage: str, done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < PROGRESS_LOG_S:
                return
            last = now
            status = self.assistant.indexing
            logger.info("indexing: %s", status.describe() if status else f"{stage} {done} of {total}")

        return tick

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
