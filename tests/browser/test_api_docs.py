"""The API docs in Chromium with no way out to the internet: Swagger UI and ReDoc still render."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Service

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_docs_render_without_the_internet(service: Service, page: Any) -> None:
    elsewhere: list[str] = []

    def offline(route: Any) -> None:
        # Anything not on this service would need the internet: refuse it, and remember it.
        if route.request.url.startswith(service.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto(f"{service.url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/chat/stream")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/v1/chat/completions")).to_be_visible()
    page.goto(f"{service.url}/redoc")
    expect(page.get_by_text("/api/chat/stream").first).to_be_attached()
    # The side menu ends in "API docs by Redocly", whose logo lives on Redocly's CDN and is asked
    # for by a React effect just after the menu renders: wait for the menu, then a moment more.
    expect(page.get_by_role("link", name="API docs by Redocly")).to_be_attached()
    page.wait_for_timeout(1000)
    assert elsewhere == []
