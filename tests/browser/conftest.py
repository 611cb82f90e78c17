"""The widget under test: the real app under uvicorn, host pages on other origins, Chromium.

Playwright drives Debian's Chromium (`/usr/bin/chromium`, or `ASSISTANT_CHROMIUM`): Playwright's
own browser download needs the internet. `make browser` installs it.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from assistant.config import Settings
from assistant.conversation.history import ConversationStore
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from tests.service.conftest import LiveServer, live_server, service_settings

# Answers take a second or two on a 2-core machine, more while the model warms up.
expect.set_options(timeout=20_000)

CHROMIUM = Path(os.environ.get("ASSISTANT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The README's screenshots: `ASSISTANT_SCREENSHOTS=docs/screenshots pytest tests/browser` refreshes
# them; other runs keep theirs out of the working tree.
SCREENSHOTS = Path(os.environ.get("ASSISTANT_SCREENSHOTS") or Path(tempfile.gettempdir()) / "assistant-screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WIDGET = "assistant-widget"  # the widget's host element; Playwright's CSS pierces its shadow root


@dataclass
class Service:
    """A running assistant service and what a test checks behind the widget's back."""

    live: LiveServer
    settings: Settings

    @property
    def url(self) -> str:
        """The service's base URL, such as http://127.0.0.1:41234."""
        return self.live.url

    @property
    def conversations(self) -> ConversationStore:
        """The service's stored conversations and feedback."""
        return ConversationStore(self.settings.data_dir)


StartService = Callable[..., contextlib.AbstractContextManager[Service]]


@pytest.fixture
def start_service(assistant: Assistant, tmp_path: Path) -> StartService:
    """Starts the app over the session's real index; keyword arguments override its settings.

    `port=` picks the port (to restart a service where it was); every start shares the test's
    data folder, so a restarted service knows the conversations of the first one.
    """

    @contextlib.contextmanager
    def start(port: int = 0, **overrides: Any) -> Iterator[Service]:
        settings = service_settings(tmp_path, assistant.settings, **overrides)
        # A short grace: the widget keeps connections open that a restart must not wait out.
        with live_server(create_app(assistant, settings), port=port, grace_s=5) as live:
            yield Service(live, settings)

    return start


@pytest.fixture
def service(start_service: StartService) -> Iterator[Service]:
    """The app over the session's real index: no API keys, no CORS origins."""
    with start_service() as running:
        yield running


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class HostSite:
    """A static web site on its own loopback origin, standing in for a customer's intranet."""

    origin: str
    pages: dict[str, str]


@contextlib.contextmanager
def host_site() -> Iterator[HostSite]:
    """Serves the pages put into `HostSite.pages` (path -> HTML) on http://127.0.0.1:<free port>."""
    pages: dict[str, str] = {}
    handler = type("Handler", (_QuietHandler,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HostSite(f"http://127.0.0.1:{server.server_address[1]}", pages)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Any]:
    """Playwright, started once for the browser tests (its device descriptors included).

    Not once per session: Playwright's sync API keeps an asyncio loop running in this thread
    until it stops, and the async tests that run later need the thread without one.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make browser` or set ASSISTANT_CHROMIUM")
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="package")
def browser(playwright: Any) -> Iterator[Any]:
    """Headless Debian Chromium, launched once for the browser tests."""
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def new_page(playwright: Any, browser: Any) -> Iterator[Callable[..., Any]]:
    """Opens pages in fresh browser contexts (own storage); fails the test on a JavaScript error.

    `viewport` sizes a desktop browser window; `device` names one of Playwright's device
    descriptors ("iPhone 13", "Pixel 7"): a phone's screen, pixel ratio, touch, user agent and
    mobile viewport handling, where a page wider than the screen widens the layout viewport.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(viewport: dict[str, int] | None = None, device: str | None = None) -> Any:
        if device is not None:
            descriptor = dict(playwright.devices[device])
            descriptor.pop("default_browser_type", None)  # always Debian's Chromium here
            context = browser.new_context(**descriptor)
        else:
            context = browser.new_context(viewport=viewport or DESKTOP, device_scale_factor=1)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A desktop-sized page (1280x800)."""
    return new_page()


def embed_tag(service_url: str, **attributes: str) -> str:
    """The one-tag embed of the README, with extra data-* attributes."""
    extra = "".join(f' data-{name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return f'<script src="{service_url}/widget.js" data-assistant-url="{service_url}"{extra} async></script>'


# -- driving the widget -------------------------------------------------------------------


def widget(page: Any, selector: str) -> Any:
    """A locator inside the widget's shadow root."""
    return page.locator(f"{WIDGET} {selector}")


def open_panel(page: Any) -> None:
    """Clicks the launcher and waits for the chat panel."""
    widget(page, ".launcher").click()
    dialog = widget(page, "[role=dialog]")
    expect(dialog).to_be_visible()
    # Measurements and screenshots after the opening animation.
    dialog.evaluate("el => Promise.all(el.getAnimations().map(a => a.finished))")


def ask(page: Any, question: str) -> Any:
    """Types a question, sends it with Enter and returns the finished answer's locator."""
    answers = widget(page, ".msg-bot")
    before = answers.count()
    box = widget(page, "#aw-input")
    box.fill(question)
    box.press("Enter")
    answer = answers.nth(before)
    # The feedback row appears when the `done` event has arrived.
    expect(answer.locator(".feedback")).to_be_visible()
    return answer


def active_element(page: Any) -> str:
    """Describes the focused element inside the widget (id, else aria-label), or "" outside it."""
    return str(
        page.evaluate(
            """() => {
                const host = document.querySelector('assistant-widget');
                if (document.activeElement !== host) return '';
                const el = host.shadowRoot.activeElement;
                return el ? (el.id || el.getAttribute('aria-label') || el.className) : '';
            }"""
        )
    )


def stored_conversation_id(page: Any, service_url: str) -> str | None:
    """The conversation id the widget keeps in the page's localStorage for `service_url`."""
    key = f"assistant-widget:{service_url}:conversation"
    value = page.evaluate("key => localStorage.getItem(key)", key)
    return str(value) if value is not None else None
