"""Rebuilding the index while serving: no request fails, new documents become answerable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from tests.conftest import LIST_QUESTION
from tests.service.conftest import ADMIN_KEY, API_KEY, live_server

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NEW_DOC = "news/2026/nordic-robotics-prize.md"
NEW_TEXT = """# Nordic Robotics Prize 2026

The Nordic Robotics Prize 2026 was awarded to Fjordwerk Automation, a cluster member from Bergen,
for its collaborative welding robot. The jury was chaired by Ingrid Solheim.
"""
NEW_QUESTION = "Which company was awarded the Nordic Robotics Prize 2026?"
QUESTIONS = [
    LIST_QUESTION,
    "How many members does Clúster Digital de Catalunya have?",
    "What is the capital of Peru?",
    NEW_QUESTION,
]


@pytest.fixture
def own_index(
    corpus_copy: Path, index_copy: Path, tmp_path: Path, real_embedder: Embedder
) -> Iterator[tuple[Assistant, Settings]]:
    """An assistant over a writable corpus copy and its own copy of the index."""
    settings = Settings(
        corpus_dir=corpus_copy,
        index_dir=index_copy,
        data_dir=tmp_path / "data",
        api_keys=[API_KEY],
        admin_keys=[ADMIN_KEY],
    )
    yield Assistant(settings, embedder=real_embedder), settings


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _ask(client: httpx.Client, question: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/chat", json={"message": question}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_reindex_under_load_loses_no_request(own_index: tuple[Assistant, Settings]) -> None:
    assistant, settings = own_index
    with live_server(create_app(assistant, settings)) as server, server.client() as client:
        assert _ask(client, NEW_QUESTION)["abstained"]

        stop = threading.Event()
        results: list[int] = []
        failures: list[BaseException] = []

        def loop(worker: int) -> None:
            with server.client() as own:
                i = worker
                while not stop.is_set():
                    try:
                        response = own.post(
                            "/api/chat",
                            json={"message": QUESTIONS[i % len(QUESTIONS)]},
                            headers=AUTH,
                        )
                        results.append(response.status_code)
                    except httpx.HTTPError as exc:
                        failures.append(exc)
                    i += 1

        clients = [threading.Thread(target=loop, args=(w,)) for w in range(8)]
        for t in clients:
            t.start()
        _wait_for(lambda: len(results) >= 16)  # the clients are busy before the rebuild starts
        target = settings.corpus_dir / NEW_DOC
        target.parent.mkdir(parents=True)
        target.write_text(NEW_TEXT, encoding="utf-8")
        before = len(results)
        report = client.post("/api/admin/reindex", headers=ADMIN, timeout=300)
        during = len(results) - before
        after = len(results)
        _wait_for(lambda: len(results) >= after + 16)  # and after it, on the new index
        stop.set()
        for t in clients:
            t.join()

        assert report.status_code == 200, report.text
        assert report.json()["written"] and report.json()["added"] == [NEW_DOC]
        assert not failures
        assert during > 0, "no request was answered while the index was rebuilt"
        assert set(results) == {200}

        answer = _ask(client, NEW_QUESTION)
        assert "Fjordwerk Automation" in answer["answer"]
        assert answer["citations"][0]["doc"] == NEW_DOC
        ready = client.get("/readyz").json()
        assert ready["index"]["documents"] == 6
        # Nested ids go through the path converter.
        assert NEW_DOC in [d["id"] for d in client.get("/api/documents", headers=AUTH).json()["documents"]]
        document = client.get(f"/api/documents/{NEW_DOC}", headers=AUTH)
        assert document.status_code == 200 and "Fjordwerk" in document.json()["text"]
        c = answer["citations"][0]
        passage = client.get(f"/api/documents/{NEW_DOC}", params={"start": c["start"], "end": c["end"]}, headers=AUTH)
        assert passage.json()["quote"] == c["quote"]


def test_concurrent_reindex_calls_are_serialised(own_index: tuple[Assistant, Settings]) -> None:
    assistant, settings = own_index
    with live_server(create_app(assistant, settings)) as server:
        (settings.corpus_dir / "prize.md").write_text(NEW_TEXT, encoding="utf-8")
        responses: list[httpx.Response] = []

        def reindex() -> None:
            with server.client() as client:
                responses.append(client.post("/api/admin/reindex", headers=ADMIN, json={"rebuild": False}, timeout=300))

        calls = [threading.Thread(target=reindex) for _ in range(3)]
        for t in calls:
            t.start()
        for t in calls:
            t.join()
        # Without the service's lock the index's own write lock would refuse the second call.
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert sorted(r.json()["written"] for r in responses) == [False, False, True]


def test_file_watch_reindexes_on_corpus_change(own_index: tuple[Assistant, Settings]) -> None:
    assistant, settings = own_index
    settings = settings.model_copy(update={"reindex_watch": True})
    with live_server(create_app(assistant, settings)) as server, server.client() as client:
        time.sleep(0.5)  # let the watcher start before the change
        (settings.corpus_dir / "prize.md").write_text(NEW_TEXT, encoding="utf-8")
        deadline = time.monotonic() + 120
        while client.get("/readyz").json()["index"]["documents"] != 6:
            assert time.monotonic() < deadline, "the watcher did not reindex"
            time.sleep(0.25)
        assert "Fjordwerk Automation" in _ask(client, NEW_QUESTION)["answer"]
