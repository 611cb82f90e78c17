"""Probes and a server started before any index exists: 503 with the reason, then ready."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.requests import Request

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from assistant.service.handlers import _unexpected_error
from tests.conftest import FACT_QUESTION, FakeEmbedder
from tests.service.conftest import ADMIN_KEY, API_KEY, LiveServer, live_server, sse_events


def test_not_ready_without_an_index_then_ready_after_reindex(tmp_path: Path, corpus_copy: Path) -> None:
    settings = Settings(
        corpus_dir=corpus_copy,
        index_dir=tmp_path / "index",
        data_dir=tmp_path / "data",
        api_keys=[API_KEY],
        admin_keys=[ADMIN_KEY],
    )
    assistant = Assistant(settings, embedder=FakeEmbedder())
    auth = {"Authorization": f"Bearer {API_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with (
        live_server(create_app(assistant, settings), expected_5xx={503}) as server,
        server.client() as client,
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "run `assistant index`" in ready.json()["detail"]
        chat = client.post("/api/chat", json={"message": FACT_QUESTION}, headers=auth)
        assert chat.status_code == 503
        # The stream has started when the answer fails: the failure is an `error` event.
        with client.stream(
            "POST",
            "/api/chat/stream",
            json={"message": FACT_QUESTION},
            headers=auth,
        ) as stream:
            events = sse_events(stream.read().decode())
        assert [name for name, _ in events] == ["error"]
        assert json.loads(events[0][1])["status"] == 503

        report = client.post("/api/admin/reindex", headers=admin, timeout=300)
        assert report.status_code == 200
        assert report.json()["documents"] == 5 and report.json()["written"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["index"]["model"] == "fake-hash-64"
        assert ready.json()["index"]["documents"] == 5
        answer = client.post("/api/chat", json={"message": FACT_QUESTION}, headers=auth)
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


def test_api_docs_load_their_scripts_and_styles_from_this_server(server: LiveServer) -> None:
    # Offline (an intranet, a laptop on a train) a CDN-hosted Swagger UI leaves /docs blank.
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    with server.client() as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page)
            assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
            assert "://" not in html.text, f"{page} names another host"
            urls = re.findall(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""", html.text)
            assert any(u.endswith(".js") for u in urls), urls
            for url in urls:
                assert url.startswith("/") and not url.startswith("//"), url
                asset = client.get(url)
                assert asset.status_code == 200, url
                assert kinds[Path(url).suffix] in asset.headers["content-type"], url
                assert len(asset.content) > 1000, url
