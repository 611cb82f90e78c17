"""Bad requests, API keys, CORS, body limits and path traversal: the right 4xx, always JSON."""

from __future__ import annotations

import json
import socket
import time

import pytest

from assistant.config import Settings
from tests.conftest import FACT_QUESTION
from tests.service.conftest import ADMIN_KEY, API_KEY, LiveServer


def _raw_get(server: LiveServer, target: str) -> tuple[int, dict]:
    """Sends a request line exactly as given (no client-side normalisation of `..`)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body) if body.strip().startswith(b"{") else {"raw": body.decode()}


def test_bad_chat_requests_get_a_4xx_with_a_message(server: LiveServer) -> None:
    with server.client() as client:
        empty = client.post("/api/chat", json={"message": ""})
        assert empty.status_code == 422
        assert "empty" in empty.json()["detail"]

        long = client.post("/api/chat", json={"message": "word " * 600})
        assert long.status_code == 422
        assert "limit is 2000" in long.json()["detail"]

        huge = client.post("/api/chat", json={"message": "x" * 100_000})
        assert huge.status_code == 413
        assert "64000 bytes" in huge.json()["detail"]

        def chunks():  # type: ignore[no-untyped-def]
            # No Content-Length: the limit applies while the body is read.
            body = json.dumps({"message": "y" * 100_000}).encode()
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        chunked = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413

        malformed = client.post("/api/chat", content=b'{"message": ', headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert "not valid JSON" in malformed.json()["detail"]

        missing = client.post("/api/chat", json={"question": "What?"})
        assert missing.status_code == 422
        detail = missing.json()["detail"]
        assert "message: Field required" in detail and "question: Extra inputs are not permitted" in detail

        not_json = client.post("/api/chat", content=b"message=hi", headers={"content-type": "text/plain"})
        assert not_json.status_code == 422
        assert "JSON object" in not_json.json()["detail"]

        wrong_type = client.post("/api/chat", json={"message": ["a"]})
        assert wrong_type.status_code == 422
        assert wrong_type.json()["detail"].startswith("invalid request: message:")


def test_unknown_routes_and_methods_are_json(server: LiveServer) -> None:
    with server.client() as client:
        missing = client.get("/api/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no such route: GET /api/nothing-here"
        method = client.delete("/api/chat")
        assert method.status_code == 405
        assert "DELETE" in method.json()["detail"] and "POST" in method.json()["detail"]
        v1 = client.get("/v1/nothing")
        assert v1.status_code == 404
        assert v1.json()["error"]["message"] == v1.json()["detail"]


def test_api_keys_are_required_when_set(start_server) -> None:  # type: ignore[no-untyped-def]
    with start_server(api_keys=[API_KEY]) as server, server.client() as client:
        question = {"message": FACT_QUESTION}
        missing = client.post("/api/chat", json=question)
        assert missing.status_code == 401
        assert "missing API key" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/api/chat", json=question, headers={"Authorization": "Bearer not-the-key-at-all"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "invalid API key"
        basic = client.get("/api/documents", headers={"Authorization": f"Basic {API_KEY}"})
        assert basic.status_code == 401
        right = client.post("/api/chat", json=question, headers={"Authorization": f"Bearer {API_KEY}"})
        assert right.status_code == 200
        # Probes stay open for orchestrators; the demo page too.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/v1/models").status_code == 401


def test_admin_is_refused_without_configured_keys(start_server) -> None:  # type: ignore[no-untyped-def]
    # API keys alone do not switch admin on: a widget page may carry one for all to read.
    with start_server(api_keys=[API_KEY]) as server, server.client() as client:
        for headers in ({}, {"Authorization": f"Bearer {API_KEY}"}):
            refused = client.post("/api/admin/reindex", headers=headers)
            assert refused.status_code == 403
            assert refused.json()["detail"] == "admin endpoints are disabled: set ASSISTANT_ADMIN_KEYS to enable them"


def test_admin_needs_an_admin_key_not_an_api_key(start_server) -> None:  # type: ignore[no-untyped-def]
    with start_server(api_keys=[API_KEY], admin_keys=[ADMIN_KEY]) as server, server.client() as client:
        missing = client.post("/api/admin/reindex")
        assert missing.status_code == 401
        assert missing.json()["detail"].startswith("missing admin key")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/api/admin/reindex", headers={"Authorization": "Bearer 0123456789abcdef-nope"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "invalid admin key"
        api_key = client.post("/api/admin/reindex", headers={"Authorization": f"Bearer {API_KEY}"})
        assert api_key.status_code == 403
        assert "ASSISTANT_ADMIN_KEYS" in api_key.json()["detail"]
        # Nor does the admin key open the API.
        chat = client.post("/api/chat", json={"message": "Hello?"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert chat.status_code == 401
        admin = client.post("/api/admin/reindex", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=300)
        assert admin.status_code == 200
        assert admin.json()["written"] is False  # the corpus has not changed


def test_admin_keys_alone_leave_the_api_open(start_server) -> None:  # type: ignore[no-untyped-def]
    with start_server(admin_keys=[ADMIN_KEY]) as server, server.client() as client:
        assert client.post("/api/chat", json={"message": FACT_QUESTION}).status_code == 200
        assert client.get("/api/documents").status_code == 200
        assert client.get("/v1/models").status_code == 200
        assert client.post("/api/admin/reindex").status_code == 401
        admin = client.post("/api/admin/reindex", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=300)
        assert admin.status_code == 200


def test_admin_keys_are_read_and_checked_like_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "another-admin-key-0123456789"
    monkeypatch.setenv("ASSISTANT_ADMIN_KEYS", f"{ADMIN_KEY}, {other}")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert [k.get_secret_value() for k in settings.admin_keys] == [ADMIN_KEY, other]
    assert ADMIN_KEY not in repr(settings)
    with pytest.raises(ValueError, match="admin key must be at least 16 characters"):
        Settings(_env_file=None, admin_keys=["short"])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="give admin its own key"):
        Settings(_env_file=None, api_keys=[API_KEY], admin_keys=[API_KEY])  # type: ignore[call-arg]


def test_cors_only_for_configured_origins(start_server) -> None:  # type: ignore[no-untyped-def]
    allowed, other = "https://intranet.example.org", "https://evil.example.com"
    with start_server(cors_origins=[allowed]) as server, server.client() as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        ok = client.options("/api/chat", headers={"Origin": allowed, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "POST" in ok.headers["access-control-allow-methods"]

        refused = client.options("/api/chat", headers={"Origin": other, **preflight})
        assert refused.status_code == 400
        assert "CORS" in refused.json()["detail"]
        assert not any(h.startswith("access-control-") for h in refused.headers)

        simple = client.get("/healthz", headers={"Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed
        foreign = client.get("/healthz", headers={"Origin": other})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers
        # Error responses carry CORS headers too, so that the widget can show the message.
        too_big = client.post("/api/chat", json={"message": "x" * 100_000}, headers={"Origin": allowed})
        assert too_big.status_code == 413
        assert too_big.headers["access-control-allow-origin"] == allowed


def test_wildcard_cors_origin_is_refused(start_server) -> None:  # type: ignore[no-untyped-def]
    from assistant.errors import ConfigError

    with pytest.raises(ConfigError, match="wildcard"), start_server(cors_origins=["*"]):
        pass


@pytest.mark.parametrize(
    "target",
    [
        "/api/documents/../../etc/passwd",
        "/api/documents/..%2f..%2fetc%2fpasswd",
        "/api/documents/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/documents/%2E%2E/%2E%2E/etc/passwd",
        "/api/documents/4-motors-industry-4-0-concept-note.txt/../../../etc/passwd",
        "/api/documents/..%5c..%5cetc%5cpasswd",
        "/api/documents/%2fetc%2fpasswd",
        "/api/documents/etc/passwd",
    ],
)
def test_path_traversal_is_rejected(server: LiveServer, target: str) -> None:
    status, body = _raw_get(server, target)
    assert status in {400, 404}, (status, body)
    # Refused with a message, and never anything read from the file system.
    assert "detail" in body
    assert "root:" not in json.dumps(body)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_gets_its_413_not_a_connection_reset(server: LiveServer, chunked: bool) -> None:
    # The client sends its whole body at once and reads the answer a moment later. Were the
    # server to refuse and close with the body unread, the kernel would answer with a reset
    # that wipes the 413 before the client reads it (seen in CI as "connection reset by peer").
    payload = json.dumps({"message": "z" * 200_000}).encode()
    if chunked:
        framing = b"Transfer-Encoding: chunked"
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _pieces(payload, 16_384)) + b"0\r\n\r\n"
    else:
        framing, body = b"Content-Length: %d" % len(payload), payload
    head = b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s\r\n\r\n" % framing
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(head + body)
        time.sleep(0.5)  # the server answers and closes meanwhile
        received = b""
        while chunk := raw.recv(65_536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert b"64000 bytes" in received


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
