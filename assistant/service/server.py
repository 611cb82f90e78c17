"""An Assistant -> the web service, running under uvicorn until stopped, its index kept up to date.

One process answers one question at a time (Python's GIL), so `run_workers` serves with several
processes, each with its own copy of the model, over the one index on disk:

    assistant serve --workers 2         uvicorn's supervisor and two worker processes

The supervisor holds the listening socket and restarts a worker that dies. One worker keeps the
index up to date (start-up build, file watching); a reindex asked of any worker reaches the
others through the index folder (assistant/service/reindex.py). Conversations live in SQLite,
which every worker reads and writes, so any worker answers a follow-up. The workers share their
numbers of requests in flight through a small file the supervisor makes (`WorkerLoads`): a
worker busier than another one asks its clients to reconnect (`SpreadConnections`).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import tempfile
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.onnx_runtime import cpu_cores
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from assistant.store.milvus import is_lite

GRACEFUL_SHUTDOWN_S = 30  # lets answers and a running reindex finish
LOADS_ENV = "ASSISTANT_SERVE_LOADS_FILE"  # set by run_workers for its workers, not a setting


def run_server(assistant: Assistant, *, host: str = "127.0.0.1", port: int = 8000, update_index: bool = True) -> None:
    """Serves the chat API, the OpenAI-compatible API, the Slack bot and the widget, in this process.

    Listens at once: with `update_index` the index is brought up to date with the corpus in
    the background (built when missing) while the version on disk answers; /readyz says
    which version answers and how far a build has got.

    Example: `run_server(Assistant.from_settings(Settings()), port=8000)`.
    """
    app = create_app(assistant, assistant.settings, update_index=update_index)
    _log_answers()
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    uvicorn.Server(config).run()


def run_workers(settings: Settings, workers: int, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves as `run_server` does, with `workers` processes sharing the port and the index.

    Each worker reads its settings as this process did (ASSISTANT_* variables and .env), with
    this process's folders, and runs ONNX Runtime on cores / workers threads (unless
    ASSISTANT_ONNX_THREADS says otherwise), so that the workers do not fight over the cores.
    """
    # Workers are new processes (spawned, not forked): they learn their settings from the environment.
    os.environ["ASSISTANT_INDEX_DIR"] = str(settings.index_dir)
    os.environ["ASSISTANT_CORPUS_DIR"] = str(settings.corpus_dir)
    os.environ["ASSISTANT_DATA_DIR"] = str(settings.data_dir)
    os.environ["ASSISTANT_WORKERS"] = str(workers)
    if not settings.onnx_threads:
        os.environ["ASSISTANT_ONNX_THREADS"] = str(max(1, cpu_cores() // workers))
    handle, loads = tempfile.mkstemp(prefix="assistant-worker-loads-")
    try:
        os.write(handle, bytes(WorkerLoads.SIZE))
        os.close(handle)
        os.environ[LOADS_ENV] = loads
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(loads)


def worker_app() -> ASGIApp:
    """Builds one worker's application from the settings in the environment (uvicorn calls it
    in each worker process of `run_workers`)."""
    # What `assistant`'s main() and run_server set up, which a spawned worker has not run;
    # the process id tells the workers' lines apart.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s [%(process)d]: %(message)s")
    logging.getLogger("assistant.indexing.indexer").setLevel(logging.ERROR)
    _log_answers()
    settings = Settings()
    loads = WorkerLoads.join(Path(os.environ[LOADS_ENV])) if os.environ.get(LOADS_ENV) else None
    return SpreadConnections(create_app(Assistant.from_settings(settings), settings, update_index=True), loads)


def serve_workers(settings: Settings) -> int:
    """Returns how many worker processes `assistant serve` runs: ASSISTANT_WORKERS, or one per core.

    Milvus Lite opens its database file in one process only ("Open local milvus failed" in any
    other), so with it the default is one worker, and more is a ConfigError that says what to do.
    """
    lite = settings.store == "milvus" and (settings.milvus_uri is None or is_lite(settings.milvus_uri))
    if lite:
        if settings.workers and settings.workers > 1:
            raise ConfigError(
                f"{settings.workers} workers cannot share Milvus Lite, which opens its file in one process: "
                "serve with --workers 1, or set ASSISTANT_MILVUS_URI to a Milvus server (http://host:19530)"
            )
        return 1
    return settings.workers or cpu_cores()


def _log_answers() -> None:
    # One line per answer (sizes, latency, outcome) goes to the log at INFO.
    service_log = logging.getLogger("assistant.service")
    if service_log.getEffectiveLevel() > logging.INFO:
        service_log.setLevel(logging.INFO)


class WorkerLoads:
    """How many requests each worker of one server is answering, in a small file they all map.

    Slot i holds a worker's pid and its requests in flight (two int32); a worker takes the first
    slot that is free or whose process is gone. Reads of the other slots take no lock: a count
    one request stale only delays a decision by one response.
    """

    SLOTS = 64
    SLOT = struct.Struct("=ii")
    SIZE = SLOTS * SLOT.size

    def __init__(self, memory: mmap.mmap, slot: int) -> None:
        self.memory = memory
        self.slot = slot
        self.pid = os.getpid()

    @classmethod
    def join(cls, path: Path) -> WorkerLoads | None:
        """Takes a slot in the file `run_workers` made; None when it cannot (no coordination then)."""
        import fcntl

        try:
            with open(path, "r+b") as handle:
                memory = mmap.mmap(handle.fileno(), cls.SIZE)
                fcntl.flock(handle, fcntl.LOCK_EX)  # two workers starting must not take one slot
                try:
                    for slot in range(cls.SLOTS):
                        pid, _ = cls.SLOT.unpack_from(memory, slot * cls.SLOT.size)
                        if pid == 0 or not _alive(pid):
                            cls.SLOT.pack_into(memory, slot * cls.SLOT.size, os.getpid(), 0)
                            return cls(memory, slot)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except (OSError, ValueError) as exc:
            logging.getLogger(__name__).warning("workers cannot share their loads (%s): %s", path, exc)
        return None

    def publish(self, in_flight: int) -> None:
        """Records this worker's requests in flight."""
        self.SLOT.pack_into(self.memory, self.slot * self.SLOT.size, self.pid, in_flight)

    def least_other(self) -> int | None:
        """Returns the fewest requests in flight at another live worker (None: no other worker)."""
        least = None
        for slot in range(self.SLOTS):
            pid, in_flight = self.SLOT.unpack_from(self.memory, slot * self.SLOT.size)
            if pid and slot != self.slot and (least is None or in_flight < least) and _alive(pid):
                least = in_flight
        return least


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SpreadConnections:
    """ASGI middleware for one of several workers: a worker busier than another one asks each
    client to reconnect.

    Workers share one listening socket, and a connection stays with the worker that accepted
    it; clients that keep their connections open (browsers, proxies, HTTP client libraries)
    would then load the workers unevenly for as long as they run. A worker answering more
    requests than the least busy other worker plus one closes the connection after its
    response ("Connection: close"): the client's next request opens a new one, which any worker
    may accept. Balanced workers keep connections open, since reconnecting costs CPU on both
    sides. Without `loads` (the other workers' counts) a worker closes whenever it is
    answering another request meanwhile.
    """

    def __init__(self, app: ASGIApp, loads: WorkerLoads | None = None) -> None:
        self.app = app
        self.loads = loads
        self.in_flight = 0  # only the event loop's thread touches it

    def _busier(self) -> bool:
        if self.in_flight <= 1:
            return False
        if self.loads is None:
            return True
        least = self.loads.least_other()
        return least is not None and self.in_flight > least + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._count(+1)

        async def send_or_close(message: Message) -> None:
            if message["type"] == "http.response.start" and self._busier():
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_or_close)
        finally:
            self._count(-1)

    def _count(self, change: int) -> None:
        self.in_flight += change
        if self.loads is not None:
            self.loads.publish(self.in_flight)
