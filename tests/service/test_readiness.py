"""Probes and a server started before any index exists: 503 with the reason, then ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.requests import Request

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from assistant.service.handlers import _unexpected_error
from tests.conftest import FakeEmbedder
from tests.service.conftest import API_KEY, live_server, sse_events


def test_not_ready_without_an_index_then_ready_after_reindex(tmp_path: Path, corpus_copy: Path) -> None:
    settings = Settings(
        corpus_dir=corpus_copy,
        index_dir=tmp_path / "index",
        data_dir=tmp_path / "data",
        api_keys=[API_KEY],
    )
    assistant = Assistant(settings, embedder=FakeEmbedder())
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with (
        live_server(create_app(assistant, settings), expected_5xx={503}) as server,
        server.client() as client,
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "run `assistant index`" in ready.json()["detail"]
        chat = client.post("/api/chat", json={"message": "Which partners hold a Gold label?"}, headers=auth)
        assert chat.status_code == 503
        # The stream has started when the answer fails: the failure is an `error` event.
        with client.stream(
            "POST",
            "/api/chat/stream",
            json={"message": "Which partners hold a Gold label?"},
            headers=auth,
        ) as stream:
            events = sse_events(stream.read().decode())
        assert [name for name, _ in events] == ["error"]
        assert json.loads(events[0][1])["status"] == 503

        report = client.post("/api/admin/reindex", headers=auth, timeout=300)
        assert report.status_code == 200
        assert report.json()["documents"] == 5 and report.json()["written"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["index"]["model"] == "fake-hash-64"
        assert ready.json()["index"]["documents"] == 5
        answer = client.post("/api/chat", json={"message": "Which partners hold a Gold label?"}, headers=auth)
        assert answer.status_code == 200


@pytest.mark.anyio
async def test_unexpected_errors_never_show_their_message() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/api/x", "headers": [], "query_string": b""})
    response = await _unexpected_error(request, RuntimeError("secret database password in message"))
    body = json.loads(bytes(response.body))
    assert response.status_code == 500
    assert "secret" not in body["detail"]
    assert body["detail"].startswith("internal error (reference ")


def test_openapi_schema_documents_the_routes(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    paths = schema["paths"]
    for path in (
        "/api/chat",
        "/api/chat/stream",
        "/v1/chat/completions",
        "/api/documents/{doc_id}",
    ):
        assert path in paths
    assert "`citations`" in paths["/api/chat/stream"]["post"]["description"]
