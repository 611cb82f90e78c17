"""The Slack bot under test: the real service (uvicorn, real index) with Slack settings, a fake
Slack Web API on a loopback port that records every call, and correctly signed requests.

The fake stands in for https://slack.com/api/ (the bolt WebClient's base URL points at it) and
for the response_url addresses that Slack puts in commands and button clicks, as slack_bolt's
own tests do with their mock Web API server.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from assistant.config import Settings
from assistant.conversation.history import ConversationStore
from assistant.pipeline import Assistant
from assistant.records import Citation
from assistant.service.app import create_app
from tests.service.conftest import LiveServer, live_server

BOT_TOKEN = "xoxb-test-0123456789"
SIGNING_SECRET = "test-signing-secret-0123456789"
PUBLIC_URL = "https://docs.example.org/assistant"
TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
AUTH_TEST = "/api/auth.test"
POST_MESSAGE = "/api/chat.postMessage"


class SlackTestSettings(Settings):
    """The settings with the Slack Web API address the bot reads when the field exists."""

    slack_api_url: str | None = None


@dataclass(frozen=True)
class SlackCall:
    """One request the fake Slack received: its path, parsed body and headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    def dump(self) -> str:
        """The whole body as JSON text, for assertions on what a message mentions."""
        return json.dumps(self.body, ensure_ascii=False)


@dataclass
class FakeSlack:
    """A local stand-in for the Slack Web API and response_urls, recording every call."""

    url: str = ""
    calls: list[SlackCall] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def api_url(self) -> str:
        """The Web API base address, like https://slack.com/api/."""
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url address under the fake."""
        return f"{self.url}/response/{name}"

    def record(self, call: SlackCall) -> None:
        """Stores a call and wakes up whoever waits for one."""
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def answer_calls(self) -> list[SlackCall]:
        """Every call but auth.test (which bolt makes once, to learn the bot's own ids)."""
        with self._changed:
            return [c for c in self.calls if c.path != AUTH_TEST]

    def wait_for(self, count: int, timeout: float = 90.0) -> list[SlackCall]:
        """Waits until at least `count` answer calls arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                calls = [c for c in self.calls if c.path != AUTH_TEST]
                if len(calls) >= count:
                    return calls
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} Slack calls, got {calls}")
                self._changed.wait(left)

    def expect(self, count: int, grace: float = 1.5, timeout: float = 90.0) -> list[SlackCall]:
        """Waits for exactly `count` answer calls, then checks no other one comes in `grace` s."""
        calls = self.wait_for(count, timeout) if count else []
        time.sleep(grace)
        after = self.answer_calls()
        assert len(after) == count, f"expected {count} Slack calls, got {len(after)}: {after}"
        return calls


class _Handler(BaseHTTPRequestHandler):
    server: _FakeServer

    def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        body = json.loads(raw) if raw.startswith("{") else {k: v[0] for k, v in parse_qs(raw).items()}
        path = self.path.split("?")[0]
        self.server.fake.record(SlackCall(path, body, dict(self.headers.items())))
        reply: dict[str, Any] = {"ok": True}
        if path == AUTH_TEST:
            reply |= {"team_id": TEAM, "team": "Test", "user_id": BOT_USER, "bot_id": BOT_ID}
            reply |= {"user": "assistant", "url": "https://test.slack.com/"}
        elif path == POST_MESSAGE:
            reply |= {"channel": body.get("channel"), "ts": f"{time.time():.6f}"}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API, on a free loopback port."""
    fake = FakeSlack()
    server = _FakeServer(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def slack_settings(tmp: Path, base: Settings, fake: FakeSlack, **overrides: Any) -> Settings:
    """Service settings with Slack enabled and its Web API pointed at the fake."""
    values: dict[str, Any] = {
        "corpus_dir": base.corpus_dir,
        "index_dir": base.index_dir,
        "data_dir": tmp / "data",
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "public_url": PUBLIC_URL,
    }
    values.update(overrides)
    return SlackTestSettings(**values)


@dataclass
class SlackService:
    """The running service with the Slack bot, and the means to talk to it as Slack does."""

    server: LiveServer
    fake: FakeSlack
    settings: Settings
    client: httpx.Client

    @property
    def store(self) -> ConversationStore:
        """The service's conversation store (same SQLite file)."""
        return ConversationStore(self.settings.data_dir)

    def post(
        self,
        path: str,
        body: str,
        *,
        content_type: str,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Sends a body to the service, signed like Slack signs (unless told otherwise)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"Content-Type": content_type, **(headers or {})}
        if signed:
            signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
            sent |= {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": str(signature)}
        return self.client.post(path, content=body.encode(), headers=sent)

    def event(self, event: dict[str, Any], event_id: str, **kwargs: Any) -> httpx.Response:
        """Delivers an Events API event_callback to /slack/events."""
        payload = {
            "token": "legacy-token",
            "team_id": TEAM,
            "api_app_id": "A0APP",
            "event": {"team": TEAM, "event_ts": event.get("ts", ""), **event},
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }
        return self.post("/slack/events", json.dumps(payload), content_type="application/json", **kwargs)

    def command(self, text: str, response_url: str, **kwargs: Any) -> httpx.Response:
        """Sends a /ask slash command to /slack/events."""
        form = {
            "token": "legacy-token",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": "C0CHAN",
            "channel_name": "general",
            "user_id": "U0ASKER",
            "user_name": "asker",
            "command": "/ask",
            "text": text,
            "api_app_id": "A0APP",
            "response_url": response_url,
            "trigger_id": "123.456.abc",
        }
        return self.post(
            "/slack/events",
            urlencode(form),
            content_type="application/x-www-form-urlencoded",
            **kwargs,
        )

    def click(
        self,
        action_id: str,
        value: str,
        response_url: str,
        *,
        user: str = "U0ASKER",
        ephemeral: bool = False,
    ) -> httpx.Response:
        """Sends a block_actions button click to /slack/interactions."""
        container: dict[str, Any] = {"type": "message", "channel_id": "C0CHAN"}
        container |= {"is_ephemeral": ephemeral, "message_ts": "1700000000.000900"}
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": "someone", "team_id": TEAM},
            "api_app_id": "A0APP",
            "token": "legacy-token",
            "container": container,
            "trigger_id": "123.456.def",
            "team": {"id": TEAM, "domain": "test"},
            "channel": {"id": "C0CHAN", "name": "general"},
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "answer_actions",
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return self.post(
            "/slack/interactions",
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
        )


@pytest.fixture
def start_slack(
    assistant: Assistant, tmp_path: Path, fake_slack: FakeSlack
) -> Callable[..., contextlib.AbstractContextManager[SlackService]]:
    """Starts the service with the Slack bot over the session's real index (fresh data folder)."""

    @contextlib.contextmanager
    def start(**overrides: Any) -> Iterator[SlackService]:
        settings = slack_settings(tmp_path, assistant.settings, fake_slack, **overrides)
        with live_server(create_app(assistant, settings)) as server, server.client() as client:
            yield SlackService(server, fake_slack, settings, client)

    return start


@pytest.fixture
def slack(
    start_slack: Callable[..., contextlib.AbstractContextManager[SlackService]],
) -> Iterator[SlackService]:
    """The service with the Slack bot, running."""
    with start_slack() as service:
        yield service


def block_texts(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """The mrkdwn texts of a message's sections and context elements, in order."""
    texts = []
    for block in blocks:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(e["text"] for e in block["elements"])
    return texts


@dataclass
class SourcePage:
    """What a source page shows: its title, headline, the highlighted passage, the whole text."""

    title: str = ""
    headline: str = ""
    marked: list[str] = field(default_factory=list)
    text: str = ""
    tags: set[str] = field(default_factory=set)
    links: list[str] = field(default_factory=list)


class _SourcePageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = SourcePage()
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.add(tag)
        if tag == "mark":
            self.page.marked.append("")
        if tag == "a":
            self.page.links.append(dict(attrs).get("href") or "")
        if tag not in {"meta", "br"}:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        where = self._open[-1] if self._open else ""
        if where == "title":
            self.page.title += data
        elif where == "h1":
            self.page.headline += data
        elif where == "mark":
            self.page.marked[-1] += data
        if where not in {"title", "style"}:
            self.page.text += data


def parse_source_page(markup: str) -> SourcePage:
    """Reads a source page's HTML as a browser would (character references decoded)."""
    parser = _SourcePageParser()
    parser.feed(markup)
    parser.close()
    return parser.page


def assert_source_links_open(slack: SlackService, sources: str, citations: Sequence[Citation]) -> None:
    """Opens each link of a Sources section, as a person would, and checks its page."""
    links = [part.split("|")[0] for part in sources.split("<")[1:] if part.startswith(PUBLIC_URL + "/source/")]
    assert len(links) == len(citations)
    for link, citation in zip(links, citations, strict=True):
        url = urlsplit(link.replace("&amp;", "&"))
        path = url.path.removeprefix(urlsplit(PUBLIC_URL).path)  # the proxy's prefix
        # No Authorization header: people clicking a link in Slack have no API key.
        response = slack.client.get(f"{path}?{url.query}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        page = parse_source_page(response.text)
        assert page.marked == [citation.quote]
        assert page.headline == citation.title
        assert citation.section in page.text
