"""The service under test: the real app under uvicorn on a free loopback port, in a thread.

Every response status the server sends is recorded; leaving a `live_server` block asserts that
none was a 5xx (other than those a test expects, such as /readyz's 503 without an index), so
no test passes over a server error unnoticed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.service.app import create_app

API_KEY = "test-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"  # ASSISTANT_ADMIN_KEYS: /api/admin only


@dataclass
class StatusRecorder:
    """ASGI wrapper that records (method, path, status) of every response."""

    app: ASGIApp
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)

    def server_errors(self, expected: Collection[int] = ()) -> list[tuple[str, str, int]]:
        """Responses with a 5xx status other than the expected ones."""
        return [s for s in self.seen if s[2] >= 500 and s[2] not in expected]


@dataclass
class LiveServer:
    """A running server: its base URL and the statuses it sent."""

    url: str
    port: int
    recorder: StatusRecorder

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this server."""
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


@contextlib.contextmanager
def live_server(
    app: ASGIApp, expected_5xx: Collection[int] = (), port: int = 0, grace_s: float = 30
) -> Iterator[LiveServer]:
    """Runs `app` under uvicorn on 127.0.0.1:`port` (0: a free one) until the block ends.

    A chosen port lets a test stop the service and start it again at the same address;
    `grace_s` bounds how long the stop waits for open connections. No response may be a 5xx.
    """
    recorder = StatusRecorder(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(recorder, log_level="warning", ws="none", lifespan="on", timeout_graceful_shutdown=grace_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", port, recorder)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
    errors = recorder.server_errors(expected_5xx)
    assert not errors, f"server errors: {errors}"


def service_settings(tmp: Path, base: Settings, **overrides: Any) -> Settings:
    """Settings for the service: the base assistant's paths, a fresh data folder, overrides."""
    values: dict[str, Any] = {
        "corpus_dir": base.corpus_dir,
        "index_dir": base.index_dir,
        "data_dir": tmp / "data",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start_server(
    assistant: Assistant, tmp_path: Path
) -> Iterator[Callable[..., contextlib.AbstractContextManager[LiveServer]]]:
    """Starts the app over the session's real index with a fresh data folder and overrides."""

    def start(**overrides: Any) -> contextlib.AbstractContextManager[LiveServer]:
        settings = service_settings(tmp_path, assistant.settings, **overrides)
        return live_server(create_app(assistant, settings))

    yield start


@pytest.fixture
def server(
    start_server: Callable[..., contextlib.AbstractContextManager[LiveServer]],
) -> Iterator[LiveServer]:
    """The app over the session's real index, no API keys, no CORS origins."""
    with start_server() as running:
        yield running


@pytest.fixture
def index_copy(built_index: Path, tmp_path: Path) -> Path:
    """A writable copy of the session's index (embedding cache included, so rebuilds are quick)."""
    target = tmp_path / "index"
    shutil.copytree(built_index, target, symlinks=True, ignore=shutil.ignore_patterns("data", ".lock"))
    return target


def sse_events(text: str) -> list[tuple[str, str]]:
    """Parses an SSE body into (event, data) pairs (event "message" when unnamed)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events
