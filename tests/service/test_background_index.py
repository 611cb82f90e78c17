"""Serving while the index builds: the server listens at once and answers from the version on
disk; without one, 503s that say how far the first build has got; the new version swaps in
without a failed request.

An embedder whose chunk embedding waits for the test holds each build in mid-flight, so what
the server does during a build is checked while the build is certainly running.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.pipeline import Assistant
from assistant.service import reindex
from assistant.service.app import create_app
from assistant.store.index_store import current_version
from tests.conftest import FACT, FACT_QUESTION, FakeEmbedder
from tests.service.conftest import live_server, sse_events

NEW_DOC = "news/nordic-robotics-prize.md"
NEW_TEXT = """# Nordic Robotics Prize 2026

The Nordic Robotics Prize 2026 was awarded to Fjordwerk Automation, a cluster member from Bergen,
for its collaborative welding robot. The jury was chaired by Ingrid Solheim.
"""
NEW_QUESTION = "Which company was awarded the Nordic Robotics Prize 2026?"


class GatedEmbedder:
    """Wraps an embedder: embedding chunks for an index waits for `release`; questions pass."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.reached = threading.Event()  # a build is waiting at the gate
        self.released = threading.Event()

    def fits(self, text: str) -> bool:
        return self.inner.fits(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        self.reached.set()
        assert self.released.wait(120), "the test never released the build"
        return self.inner.embed_spans(texts, spans)


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_first_index_builds_in_the_background_with_503s_that_say_so(
    tmp_path: Path, corpus_copy: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.service.reindex")
    monkeypatch.setattr(reindex, "PROGRESS_LOG_S", 0.0)  # a progress line at every step
    settings = Settings(corpus_dir=corpus_copy, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    embedder = GatedEmbedder(FakeEmbedder())
    assistant = Assistant(settings, embedder=embedder)
    app = create_app(assistant, settings, update_index=True)
    try:
        with live_server(app, expected_5xx={503}) as server, server.client() as client:
            assert embedder.reached.wait(60), "the first build did not start"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["detail"].startswith("building the first index: 5 of 5 documents read, 0 of ")
            assert ready.json()["detail"].endswith("questions are answered once it is done")

            chat = client.post("/api/chat", json={"message": FACT_QUESTION})
            assert chat.status_code == 503
            assert chat.json()["detail"].startswith("building the first index: 5 of 5 documents read")
            openai = client.post(
                "/v1/chat/completions",
                json={"model": "assistant", "messages": [{"role": "user", "content": FACT_QUESTION}]},
            )
            assert openai.status_code == 503
            assert openai.json()["error"]["message"].startswith("building the first index")
            with client.stream("POST", "/api/chat/stream", json={"message": FACT_QUESTION}) as stream:
                events = sse_events(stream.read().decode())
            error = json.loads(events[-1][1])
            assert events[-1][0] == "error" and error["status"] == 503
            assert error["detail"].startswith("building the first index")

            embedder.released.set()

            def built() -> bool:
                ready = client.get("/readyz")
                return ready.status_code == 200 and ready.json()["building"] is None

            _wait_for(built)
            ready = client.get("/readyz").json()
            assert ready["index"]["documents"] == 5
            # A server's log is where a long build shows its progress (there is no terminal).
            assert "indexing: 5 of 5 documents read" in caplog.text
            assert ready["index"]["version"] == current_version(settings.index_dir).name  # type: ignore[union-attr]
            answer = client.post("/api/chat", json={"message": FACT_QUESTION})
            assert answer.status_code == 200 and answer.json()["citations"]
    finally:
        embedder.released.set()


def test_a_failed_first_build_is_what_readyz_reports(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    assistant = Assistant(settings, embedder=FakeEmbedder())
    app = create_app(assistant, settings, update_index=True)
    with live_server(app, expected_5xx={503}) as server, server.client() as client:

        def reported() -> bool:
            return "no documents in" in client.get("/readyz").json()["detail"]

        _wait_for(reported, timeout=30)
        assert client.get("/readyz").status_code == 503


@pytest.mark.slow
def test_an_outdated_index_answers_at_once_and_the_new_version_swaps_in(
    corpus_copy: Path, index_copy: Path, tmp_path: Path, real_embedder: Embedder
) -> None:
    settings = Settings(corpus_dir=corpus_copy, index_dir=index_copy, data_dir=tmp_path / "data")
    old_version = current_version(index_copy).name  # type: ignore[union-attr]
    # A document added after the index was built: serving must not wait for it.
    (corpus_copy / NEW_DOC).parent.mkdir(parents=True)
    (corpus_copy / NEW_DOC).write_text(NEW_TEXT, encoding="utf-8")
    embedder = GatedEmbedder(real_embedder)
    assistant = Assistant(settings, embedder=embedder)
    app = create_app(assistant, settings, update_index=True)
    try:
        with live_server(app) as server, server.client() as client:
            assert embedder.reached.wait(60), "the update did not start"
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["index"]["version"] == old_version
            assert ready.json()["index"]["documents"] == 5
            building = ready.json()["building"]
            assert building["progress"].startswith("1 of 1 documents read, 0 of ")
            assert building["started_at"]

            old = client.post("/api/chat", json={"message": FACT_QUESTION})
            assert old.status_code == 200 and FACT in old.json()["answer"]
            assert NEW_DOC not in [
                c["doc"] for c in client.post("/api/chat", json={"message": NEW_QUESTION}).json()["citations"]
            ]

            # Clients keep asking while the build finishes and the new version is swapped in.
            stop = threading.Event()
            statuses: list[int] = []
            failures: list[BaseException] = []

            def ask_again_and_again() -> None:
                with server.client() as own:
                    while not stop.is_set():
                        try:
                            statuses.append(own.post("/api/chat", json={"message": FACT_QUESTION}).status_code)
                        except httpx.HTTPError as exc:
                            failures.append(exc)

            clients = [threading.Thread(target=ask_again_and_again) for _ in range(4)]
            for thread in clients:
                thread.start()
            _wait_for(lambda: len(statuses) >= 8)
            embedder.released.set()

            def swapped() -> bool:
                ready = client.get("/readyz").json()
                return bool(ready["index"]["version"] != old_version and ready["building"] is None)

            _wait_for(swapped)
            during = len(statuses)
            _wait_for(lambda: len(statuses) >= during + 8)  # and on the new version
            stop.set()
            for thread in clients:
                thread.join()
            assert not failures
            assert set(statuses) == {200}

            ready = client.get("/readyz").json()
            assert ready["building"] is None and ready["last_build_error"] is None
            assert ready["index"]["documents"] == 6
            assert ready["index"]["version"] == current_version(index_copy).name  # type: ignore[union-attr]
            answer = client.post("/api/chat", json={"message": NEW_QUESTION}).json()
            assert "Fjordwerk Automation" in answer["answer"]
            assert answer["citations"][0]["doc"] == NEW_DOC
    finally:
        embedder.released.set()
