"""Several processes serving one index: `assistant serve --workers N`, and what lets it work.

The real multi-worker server runs as a subprocess (uvicorn's supervisor and its workers); the
coordination through the index folder (one keeper, builds taking turns, progress and new
versions seen by every process) is also checked in one process with two apps over one index,
where a gated embedder holds a build in mid-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.onnx_runtime import cpu_cores
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from assistant.service.reindex import Reindexer
from assistant.service.server import SpreadConnections, WorkerLoads, serve_workers
from assistant.store.index_store import current_version
from tests.conftest import ROOT, FakeEmbedder
from tests.service.conftest import ADMIN_KEY, live_server
from tests.service.test_background_index import GatedEmbedder

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FIRST_DOC = "news/nordic-robotics-prize.md"
FIRST_TEXT = """# Nordic Robotics Prize 2026

The Nordic Robotics Prize 2026 was awarded to Fjordwerk Automation, a cluster member from Bergen,
for its collaborative welding robot. The jury was chaired by Ingrid Solheim.
"""
FIRST_QUESTION = "Which company was awarded the Nordic Robotics Prize 2026?"
SECOND_DOC = "news/baltic-sensor-fair.md"
SECOND_TEXT = """# Baltic Sensor Fair 2026

The Baltic Sensor Fair 2026 took place in Tartu. Its innovation award went to Vilkas Photonics,
a maker of infrared gas sensors founded by Marta Kask.
"""
SECOND_QUESTION = "Which company won the innovation award of the Baltic Sensor Fair 2026?"
LABEL_QUESTION = "Which cluster organisations were granted a Gold label?"
QUESTIONS = [
    LABEL_QUESTION,
    "In what year was bwcon set up?",
    FIRST_QUESTION,
    SECOND_QUESTION,
]
# Follow-ups of one conversation, each of its own length: the workers' log lines (which give the
# question's length, never its text) then tell which worker answered which.
FOLLOW_UP = "And what else do the documents say about the prize and its winner, briefly"
FOLLOW_UPS = [FOLLOW_UP + "?" * n for n in range(1, 13)]


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the real server, with two worker processes ------------------------------------------


@dataclass
class Served:
    """A running `assistant serve --workers 2`: its address and its log."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve_workers_process(tmp_path: Path, index: Path, corpus: Path, workers: int = 2) -> Iterator[Served]:
    """Runs `assistant serve --workers N` on a free loopback port until the block ends."""
    if os.environ.get("ASSISTANT_STORE") == "milvus":
        pytest.skip("Milvus Lite opens its file in one process: see test_serve_workers_with_milvus_lite.py")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") or k == "ASSISTANT_STORE"}
    (tmp_path / "tmp").mkdir()  # where the supervisor puts the workers' shared load counts
    env.update(ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_ADMIN_KEYS=ADMIN_KEY, TMPDIR=str(tmp_path / "tmp"))
    command = [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--index", str(index), "--corpus", str(corpus)]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", log, process)
    try:
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise


@dataclass
class Askers:
    """Clients that keep asking until stopped, each on its own keep-alive connection."""

    url: str
    statuses: list[int] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        def ask(number: int) -> None:
            with httpx.Client(base_url=self.url, timeout=120) as client:
                i = number
                while not self.stop.is_set():
                    try:
                        question = QUESTIONS[i % len(QUESTIONS)]
                        self.statuses.append(client.post("/api/chat", json={"message": question}).status_code)
                    except httpx.HTTPError as exc:
                        self.failures.append(exc)
                    i += 1

        self.threads = [threading.Thread(target=ask, args=(n,)) for n in range(clients)]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)


def _versions_by_worker(url: str, seconds: float = 2.0) -> dict[int, tuple[str, int]]:
    """Asks /readyz on new connections for a while -> worker pid: (index version, documents)."""
    seen: dict[int, tuple[str, int]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = httpx.get(f"{url}/readyz", timeout=30)  # a new connection each time
        if ready.status_code == 200:
            body = ready.json()
            seen[body["worker_pid"]] = (body["index"]["version"], body["index"]["documents"])
        time.sleep(0.02)
    return seen


def _until_every_worker(url: str, workers: int, check: Callable[[str, int], bool], timeout: float = 120) -> set[int]:
    """Waits until `workers` distinct workers have answered /readyz with a state that passes `check`."""
    good: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(good) < workers:
        assert time.monotonic() < deadline, f"only workers {good} reached the state"
        for pid, (version, documents) in _versions_by_worker(url, 1.0).items():
            if check(version, documents):
                good.add(pid)
            else:
                good.discard(pid)
    return good


@pytest.mark.slow
def test_two_workers_build_once_and_a_reindex_reaches_both_with_no_failed_request(
    tmp_path: Path, corpus_copy: Path, index_copy: Path
) -> None:
    # A document the index does not have yet: the start-up build adds it, in one worker only.
    (corpus_copy / FIRST_DOC).parent.mkdir(parents=True)
    (corpus_copy / FIRST_DOC).write_text(FIRST_TEXT, encoding="utf-8")
    with serve_workers_process(tmp_path, index_copy, corpus_copy) as served:
        askers = Askers(served.url)
        try:
            _wait_for(lambda: _ready(served), timeout=180)
            askers.start(4)  # busy workers spread new connections over both
            workers = _until_every_worker(served.url, 2, lambda _, documents: documents == 6)
            assert len(workers) == 2

            # One conversation, each follow-up on a new connection: any worker answers it.
            conversation, turns = None, []
            for message in FOLLOW_UPS:
                body = {"message": message, "conversation_id": conversation}
                reply = httpx.post(f"{served.url}/api/chat", json=body, timeout=60)
                assert reply.status_code == 200, reply.text
                conversation, turn = reply.json()["conversation_id"], reply.json()["turn"]
                turns.append(turn)
            assert turns == [turns[0] + 2 * i for i in range(len(FOLLOW_UPS))]
            stored = httpx.get(f"{served.url}/api/conversations/{conversation}", timeout=30).json()
            assert [t["content"] for t in stored["turns"] if t["role"] == "user"] == FOLLOW_UPS

            # A reindex asked of one worker, while the clients keep asking.
            (corpus_copy / SECOND_DOC).write_text(SECOND_TEXT, encoding="utf-8")
            report = httpx.post(f"{served.url}/api/admin/reindex", headers=ADMIN, timeout=300)
            assert report.status_code == 200, report.text
            assert report.json()["written"] and report.json()["added"] == [SECOND_DOC]
            new_version = report.json()["version"]
            assert new_version == current_version(index_copy).name  # type: ignore[union-attr]
            swapped = _until_every_worker(served.url, 2, lambda version, _: version == new_version, timeout=30)
            assert swapped == workers  # the same two processes: the new version reached both
            answered = len(askers.statuses)
            _wait_for(lambda: len(askers.statuses) >= answered + 16)  # and they answer from it
        finally:
            askers.finish()
        for _ in range(12):  # new connections: any worker may answer
            answer = httpx.post(f"{served.url}/api/chat", json={"message": SECOND_QUESTION}, timeout=60).json()
            assert "Vilkas Photonics" in answer["answer"]
            assert answer["citations"][0]["doc"] == SECOND_DOC
    log = served.log_text()
    assert not askers.failures
    assert set(askers.statuses) == {200}
    assert len(askers.statuses) > 40
    # One start-up update (in the keeper) and one reindex, each a build; no worker built twice.
    assert len(re.findall(r"reindex written=True", log)) == 2, log
    assert len(re.findall(r"reindex written=", log)) == 2, log
    assert log.count("this one follows its builds") == 1
    # The worker that did not run the reindex swapped its version in.
    assert log.count(f"serving index version {new_version}, built by another process") == 1, log
    assert "Traceback" not in log and "ERROR" not in log
    lengths = {len(message) for message in FOLLOW_UPS}
    answers = re.findall(r"\[(\d+)\]: answer route=chat question_chars=(\d+) ", log)
    answered_by = {pid for pid, chars in answers if int(chars) in lengths}
    assert answered_by == {str(pid) for pid in workers}  # the conversation went on in both workers
    assert not list((tmp_path / "tmp").glob("assistant-worker-loads-*"))  # the supervisor cleaned up


def _ready(served: Served) -> bool:
    assert served.process.poll() is None, served.log_text()
    try:
        return httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


# -- coordination through the index folder, two apps in one process ----------------------


def test_a_version_another_process_builds_is_swapped_in_with_no_failed_request(
    tmp_path: Path, corpus_copy: Path, index_copy: Path, real_embedder: Embedder
) -> None:
    settings = Settings(corpus_dir=corpus_copy, index_dir=index_copy, data_dir=tmp_path / "data")
    old_version = current_version(index_copy).name  # type: ignore[union-attr]
    with live_server(create_app(Assistant(settings, embedder=real_embedder), settings)) as server:
        askers = Askers(server.url)
        askers.start(4)
        try:
            _wait_for(lambda: len(askers.statuses) >= 8)
            # `assistant index` in a terminal, or another worker: not this server's build.
            (corpus_copy / FIRST_DOC).parent.mkdir(parents=True)
            (corpus_copy / FIRST_DOC).write_text(FIRST_TEXT, encoding="utf-8")
            report = Assistant(settings, embedder=real_embedder).index()
            assert report.written

            def swapped() -> bool:
                ready = httpx.get(f"{server.url}/readyz").json()
                return bool(ready["index"]["version"] == report.version != old_version)

            _wait_for(swapped, timeout=10)
            answered = len(askers.statuses)
            _wait_for(lambda: len(askers.statuses) >= answered + 8)
        finally:
            askers.finish()
        answer = httpx.post(f"{server.url}/api/chat", json={"message": FIRST_QUESTION}, timeout=60).json()
        assert answer["citations"][0]["doc"] == FIRST_DOC
    assert not askers.failures
    assert set(askers.statuses) == {200}


def test_a_build_in_another_process_shows_in_readyz_and_503s_and_runs_once(
    tmp_path: Path, corpus_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="assistant.service.reindex")
    settings = Settings(corpus_dir=corpus_copy, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    embedder = GatedEmbedder(FakeEmbedder())
    keeper = create_app(Assistant(settings, embedder=embedder), settings, update_index=True)
    follower = create_app(Assistant(settings, embedder=FakeEmbedder()), settings, update_index=True)
    try:
        with (
            live_server(keeper, expected_5xx={503}) as first,
            live_server(follower, expected_5xx={503}) as second,
            second.client() as client,
        ):
            assert embedder.reached.wait(60), "the first build did not start"
            assert keeper.state.context.reindexer.keeper
            assert not follower.state.context.reindexer.keeper

            def says_building() -> bool:
                ready = client.get("/readyz")
                return ready.status_code == 503 and ready.json()["detail"].startswith(
                    "building the first index: 5 of 5 documents read, 0 of "
                )

            _wait_for(says_building, timeout=10)  # not "run `assistant index`": the other one builds
            chat = client.post("/api/chat", json={"message": LABEL_QUESTION})
            assert chat.status_code == 503 and chat.json()["detail"].startswith("building the first index")

            embedder.released.set()

            def built() -> bool:
                ready = client.get("/readyz")
                return ready.status_code == 200 and ready.json()["building"] is None

            _wait_for(built, timeout=60)
            mine, theirs = client.get("/readyz").json(), httpx.get(f"{first.url}/readyz").json()
            assert mine["index"] == theirs["index"] and mine["index"]["documents"] == 5
            assert client.post("/api/chat", json={"message": LABEL_QUESTION}).status_code == 200
    finally:
        embedder.released.set()
    assert caplog.text.count("reindex written=") == 1  # the follower ran no build of its own
    assert "this one follows its builds" in caplog.text


def test_reindexes_in_two_processes_take_turns(
    tmp_path: Path, corpus_copy: Path, index_copy: Path, real_embedder: Embedder
) -> None:
    settings = Settings(corpus_dir=corpus_copy, index_dir=index_copy, data_dir=tmp_path / "data")
    # Two reindexers over one folder: each opens the lock file itself, as two processes do.
    first = Reindexer(Assistant(settings, embedder=real_embedder))
    second = Reindexer(Assistant(settings, embedder=real_embedder))
    (corpus_copy / FIRST_DOC).parent.mkdir(parents=True)
    (corpus_copy / FIRST_DOC).write_text(FIRST_TEXT, encoding="utf-8")
    written: list[bool] = []
    errors: list[BaseException] = []

    def run(reindexer: Reindexer) -> None:
        try:
            written.append(reindexer.run().written)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    calls = [threading.Thread(target=run, args=(r,)) for r in (first, second)]
    for call in calls:
        call.start()
    for call in calls:
        call.join(300)
    # Without the shared lock the index's own write lock would refuse one of them.
    assert not errors
    assert sorted(written) == [False, True]


# -- the pieces -----------------------------------------------------------------------------


@contextlib.contextmanager
def _one_slow_request(app: SpreadConnections) -> Iterator[httpx.Client]:
    """Serves `app` with one request to /slow in flight until the block ends; yields a client."""
    with live_server(app) as server, server.client() as client:
        slow = threading.Thread(target=lambda: httpx.get(f"{server.url}/slow", timeout=30))
        slow.start()
        try:
            time.sleep(0.3)  # the slow request is in flight
            yield client
        finally:
            RELEASE.set()
            slow.join(30)
            RELEASE.clear()


RELEASE = threading.Event()


async def _slow_or_fast(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        while not RELEASE.is_set():
            await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _closes(client: httpx.Client) -> bool:
    return "close" in client.get("/fast").headers.get("connection", "")


def test_a_busy_worker_asks_clients_to_reconnect_and_an_idle_one_does_not() -> None:
    app = SpreadConnections(_slow_or_fast)  # without the other workers' loads
    with live_server(app) as server, server.client() as client:
        assert not _closes(client)
    with _one_slow_request(app) as client:
        assert _closes(client)


def test_a_worker_busier_than_another_asks_clients_to_reconnect_and_a_balanced_one_does_not(tmp_path: Path) -> None:
    loads = tmp_path / "loads"
    loads.write_bytes(bytes(WorkerLoads.SIZE))
    mine, other = WorkerLoads.join(loads), WorkerLoads.join(loads)
    assert mine is not None and other is not None and mine.slot != other.slot
    app = SpreadConnections(_slow_or_fast, mine)
    with _one_slow_request(app) as client:  # two requests in flight here, with this one
        other.publish(0)
        assert _closes(client)  # 2 > 0 + 1: the idle worker should take the next request
        other.publish(1)
        assert not _closes(client)  # as balanced as 3 requests can be: no reconnection
        other.publish(3)
        assert not _closes(client)
    # A worker that died leaves its slot behind: it counts for nothing, and a new worker takes it.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    other.pid = int(gone.stdout)
    other.publish(0)
    assert mine.least_other() is None
    assert WorkerLoads.join(loads).slot == other.slot  # type: ignore[union-attr]


def test_workers_default_to_one_per_core_and_onnx_threads_reach_both_models(tmp_path: Path) -> None:
    assert serve_workers(Settings(workers=0)) == cpu_cores()
    assert serve_workers(Settings(workers=3)) == 3
    settings = Settings(onnx_threads=1, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    assistant = Assistant(settings)
    assert assistant.embedder.threads == 1  # type: ignore[attr-defined]
    assert assistant.reader.threads == 1
    assert Assistant(Settings(index_dir=tmp_path / "index")).embedder.threads is None  # type: ignore[attr-defined]
