"""The CLI entry points that reach the service code: `assistant serve` and `feedback export`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.conversation.history import ConversationStore
from assistant.records import Answer
from tests.conftest import CORPUS, FACT, FACT_QUESTION, LIST_ITEMS, LIST_QUESTION, ROOT


def test_feedback_export_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ConversationStore(tmp_path / "data")
    saved = store.add_exchange(
        store.create(),
        "Who won?",
        Answer(question="Who won?", text="Nobody.", citations=(), abstained=False),
    )
    store.add_feedback(saved.answer_id, "down", "wrong")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "candidates.jsonl"
    result = CliRunner().invoke(app, ["feedback", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 1 candidate gold questions" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))["question"] == "Who won?"


@pytest.mark.slow
def test_serve_command_serves_the_index(built_index: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
        "ASSISTANT_CORPUS_DIR": str(CORPUS),
    }
    command = [
        sys.executable,
        "-m",
        "assistant.cli",
        "serve",
        "--port",
        str(port),
        "--index",
        str(built_index),
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready.status_code == 200
        assert ready.json()["index"]["documents"] == 5
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/chat",
            json={"message": LIST_QUESTION},
            timeout=60,
        )
        assert answer.status_code == 200 and LIST_ITEMS[0] in answer.json()["answer"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    logged = log.read_text()
    assert f"answer route=chat question_chars={len(LIST_QUESTION)}" in logged
    assert "Which clusters have" not in logged  # the question's text is never logged


@pytest.mark.slow
def test_serve_listens_at_once_and_answers_from_the_index_on_disk_while_a_newer_one_builds(
    built_index: Path, tmp_path: Path
) -> None:
    import shutil

    index = tmp_path / "index"
    shutil.copytree(built_index, index)
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    # A few MB of new text: the build takes many seconds, the server must not wait for it.
    paragraph = "The cooperative ran a depot for farm machinery near the harbour. " * 40
    (corpus / "depot.txt").write_text("Depot notes\n\n" + "\n\n".join([paragraph] * 800), encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path / "data"), "ASSISTANT_CORPUS_DIR": str(corpus)}
    command = [sys.executable, "-m", "assistant.cli", "serve", "--port", str(port), "--index", str(index)]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        # The server answers at once; the build starts just after the index on disk is loaded.
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                if ready.status_code == 200 and ready.json()["building"] is not None:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = ready.json()
        assert body["index"]["documents"] == 5, body  # the version on disk, without the new file
        answer = httpx.post(f"http://127.0.0.1:{port}/api/chat", json={"message": FACT_QUESTION}, timeout=60)
        assert answer.status_code == 200 and FACT in answer.json()["answer"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
