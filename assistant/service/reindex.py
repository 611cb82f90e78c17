"""Corpus changes -> a new index while the server answers, one rebuild at a time.

`Assistant.index()` writes a new index version and swaps it in; requests already running keep
the engine they started with, so no request fails. A rebuild runs in a worker thread (it
embeds with the model for seconds to minutes) and a lock makes concurrent calls wait their
turn: each run then sees the corpus as it is when it starts.

At start-up `start()` loads the index version on disk and then brings it up to date, both in
a background thread, so that the server listens at once: it answers from the version on disk
until the new one is swapped in, or says 503 "building the first index ..." while there is
none.

Several processes may serve one index folder (the workers of `assistant serve --workers N`).
Files in the index folder coordinate them:

    index/.keeper.lock      held for life by the one process that keeps the index up to date:
                            the start-up build and the file watcher run there only
    index/.reindex.lock     held by the process that is rebuilding: a reindex asked of another
                            process waits for it, then runs (and finds little left to do)
    index/.building.json    that build's progress, for the other processes' /readyz and 503s

Every process follows the `current` version on disk (a look every FOLLOW_INTERVAL_S): a version
that another process built is loaded beside the old one and swapped in between two requests,
as a build of its own would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import anyio.to_thread

from assistant.errors import AssistantError, ConfigError, IndexWriteError
from assistant.indexing.indexer import IndexReport, Progress
from assistant.pipeline import Assistant, IndexingStatus

logger = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 2000  # editors and copies write in bursts: wait for the burst to end
PROGRESS_LOG_S = 10.0  # a long build logs how far it has got this often (logs have no progress bar)
FOLLOW_INTERVAL_S = 0.25  # how often a server looks for a version built by another process
STATUS_WRITE_S = 0.5  # how often a build rewrites its progress for the other processes
KEEPER_LOCK = ".keeper.lock"
REINDEX_LOCK = ".reindex.lock"
STATUS_FILE = ".building.json"


class Reindexer:
    """Runs `Assistant.index()` serialised, off the event loop: at start-up, on request, on file
    changes; and follows the versions that other processes build."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._lock = threading.Lock()  # held while this process builds
        self.last_error: AssistantError | None = None  # why the last run failed; None after a success
        # This process keeps the index up to date (see the module docstring); set by start().
        self.keeper = False
        self._keeper_file: IO[str] | None = None
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._mirrored = False  # assistant.indexing shows another process's build
        self._follow_failure = ""  # the last failure to load another process's version, logged once

    @property
    def index_dir(self) -> Path:
        """The index folder this reindexer builds and follows."""
        return self.assistant.settings.index_dir

    def run(self, *, rebuild: bool = False) -> IndexReport:
        """Brings the index up to date with the corpus (blocks; waits for a running rebuild,
        in this process or another one serving the same index)."""
        try:
            with _file_lock(self.index_dir / REINDEX_LOCK), self._lock:
                report = self._index(rebuild)
                self.last_error = None
        except AssistantError as exc:
            self.last_error = exc
            raise
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

    def _index(self, rebuild: bool) -> IndexReport:
        """Runs the build, publishing its progress to the other processes meanwhile."""
        status = self.index_dir / STATUS_FILE
        _write_status(status, IndexingStatus())
        try:
            return self.assistant.index(rebuild=rebuild, progress=self._progress(status))
        finally:
            with contextlib.suppress(OSError):
                status.unlink()

    async def run_async(self, *, rebuild: bool = False) -> IndexReport:
        """Runs `run` in a worker thread so that the event loop keeps serving."""
        return await anyio.to_thread.run_sync(lambda: self.run(rebuild=rebuild))

    def start(self, *, update: bool, watch: bool = False) -> threading.Thread:
        """Loads the index on disk, then (with `update`) brings it up to date, in a background
        thread; from then on follows the versions other processes build.

        Of several processes serving one index, only the keeper updates it here (and watches
        the corpus when `watch`): the first to take the keeper lock; `keeper` says whether this
        process is it. The thread is a daemon: stopping the server does not wait for a build,
        which the next start redoes (the version on disk changes only when a build completes).
        """
        self.keeper = (update or watch) and self._take_keeper_lock()
        thread = threading.Thread(
            target=self._start, args=(update and self.keeper,), name="assistant-index", daemon=True
        )
        thread.start()
        self._follower = threading.Thread(target=self._follow, name="assistant-index-follower", daemon=True)
        self._follower.start()
        return thread

    def stop(self) -> None:
        """Stops following other processes' builds and hands the keeper role on (at shutdown)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(5)
        if self._keeper_file is not None:
            self._keeper_file.close()  # closing releases the lock
            self._keeper_file = None
        self.keeper = False

    def _take_keeper_lock(self) -> bool:
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.index_dir / KEEPER_LOCK, "a")  # noqa: SIM115 - held until stop()
        except OSError as exc:
            # A folder this process cannot write in: nothing to coordinate with, as before.
            logger.warning("cannot take the keeper lock of %s (%s): keeping it regardless", self.index_dir, exc)
            return True
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            logger.info("another process keeps %s up to date; this one follows its builds", self.index_dir)
            return False
        self._keeper_file = handle
        return True

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

    def _progress(self, status: Path) -> Progress:
        """Returns a progress callback that logs how far a long build has got, every
        PROGRESS_LOG_S, and writes it for the other processes at each new stage and every
        STATUS_WRITE_S."""
        last_log = last_write = time.monotonic()
        last_stage = ""

        def tick(stage: str, done: int, total: int) -> None:
            nonlocal last_log, last_write, last_stage
            now = time.monotonic()
            indexing = self.assistant.indexing
            if indexing is not None and (stage != last_stage or now - last_write >= STATUS_WRITE_S):
                last_write, last_stage = now, stage
                _write_status(status, indexing)
            if now - last_log < PROGRESS_LOG_S:
                return
            last_log = now
            logger.info("indexing: %s", indexing.describe() if indexing else f"{stage} {done} of {total}")

        return tick

    def _follow(self) -> None:
        """Every FOLLOW_INTERVAL_S: shows another process's build in progress, and swaps in the
        version it made current (this process's own builds swap themselves in)."""
        while not self._stop.wait(FOLLOW_INTERVAL_S):
            if not self._lock.acquire(blocking=False):
                continue  # this process is building
            try:
                self._mirror(_read_status(self.index_dir / STATUS_FILE))
                if self.assistant.refresh():
                    logger.info("serving index version %s, built by another process", self.assistant.store.path.name)
                self._follow_failure = ""
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any failure; the log says it
                # Keep the version that answers; say why once, not four times a second.
                if str(exc) != self._follow_failure:
                    self._follow_failure = str(exc)
                    unexpected = not isinstance(exc, AssistantError)
                    logger.warning("the index version on disk is not loaded: %s", exc, exc_info=unexpected)
            finally:
                self._lock.release()

    def _mirror(self, status: IndexingStatus | None) -> None:
        """Shows another process's build as this assistant's `indexing`, or stops showing it."""
        if status is not None:
            self.assistant.indexing, self._mirrored = status, True
        elif self._mirrored:
            self.assistant.indexing, self._mirrored = None, False

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


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path`, waiting for whoever holds it (any process)."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise IndexWriteError(f"cannot write in the index folder {path.parent} ({exc.strerror or exc})") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_status(path: Path, status: IndexingStatus) -> None:
    """Writes a build's progress for the other processes (atomically; a failure only loses news)."""
    data = {"pid": os.getpid(), "started": status.started, "stages": [list(stage) for stage in status.stages]}
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        logger.debug("could not write %s: %s", path, exc)


def _read_status(path: Path) -> IndexingStatus | None:
    """Returns the progress of a build another process is running, or None when none runs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid, started = int(data["pid"]), float(data["started"])
        stages = tuple((str(name), int(done), int(total)) for name, done, total in data["stages"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.debug("unreadable %s: %s", path, exc)
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left by a build that was killed
    except PermissionError:
        pass  # alive, another user's
    return IndexingStatus(started, stages)
