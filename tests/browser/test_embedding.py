"""The widget embedded in other sites: CORS, isolation from the host page's CSS, API keys."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    StartService,
    active_element,
    ask,
    embed_tag,
    host_site,
    open_panel,
    stored_conversation_id,
    widget,
)
from tests.conftest import LIST_ITEMS, LIST_QUESTION
from tests.service.conftest import API_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RED = "rgb(255, 0, 0)"

# A host page whose CSS tries hard to reach everything, the widget's host element included.
HOST_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Intranet</title>
<style>
  * { color: red !important; font-size: 40px !important; font-family: serif !important;
      line-height: 3 !important; letter-spacing: 3px !important;
      text-transform: uppercase !important; }
  button { display: none !important; }
  div, section, textarea, mark, p { background: lime !important; border: 6px solid red !important;
      padding: 30px !important; }
  assistant-widget { display: none !important; opacity: 0 !important; }
</style>
</head>
<body>
  <h1>Our intranet</h1>
  <button id="host-button">A host button</button>
  <div class="panel chip launcher" id="host-box">Host content with the widget's class names</div>
  <mark id="host-mark">host mark</mark>
  {tag}
</body>
</html>
"""


def _styles(page: Any, selector: str) -> dict[str, str]:
    return dict(
        widget(page, selector).first.evaluate(
            """el => { const s = getComputedStyle(el); return {
                color: s.color, fontSize: s.fontSize, display: s.display, position: s.position,
                background: s.backgroundColor, textTransform: s.textTransform,
                letterSpacing: s.letterSpacing, borderTop: s.borderTopWidth,
                opacity: s.opacity}; }"""
        )
    )


def test_widget_works_on_an_allowed_origin_untouched_by_its_css(start_service: StartService, new_page: Any) -> None:
    with (
        host_site() as allowed,
        host_site() as refused,
        start_service(cors_origins=[allowed.origin]) as service,
    ):
        page_html = HOST_PAGE.replace("{tag}", embed_tag(service.url))
        allowed.pages["/"] = page_html
        refused.pages["/"] = page_html
        # Without data-assistant-url, the service's URL comes from the script's own src.
        allowed.pages["/src-only.html"] = HOST_PAGE.replace(
            "{tag}", f'<script src="{service.url}/widget.js" async></script>'
        )

        page = new_page()
        page.goto(allowed.origin + "/")
        # The host page's rules are in force on the host page.
        expect(page.locator("#host-button")).to_be_hidden()
        host_color = page.locator("h1").evaluate("el => getComputedStyle(el).color")
        assert host_color == RED
        # ... and do not reach into the widget (CSS `button { display: none }` included).
        expect(widget(page, ".launcher")).to_be_visible()
        open_panel(page)
        answer = ask(page, LIST_QUESTION)
        for partner in LIST_ITEMS:
            expect(answer.locator(".answer")).to_contain_text(partner)
        chips = answer.locator(".chip")
        expect(chips).to_have_count(3)
        conversation_id = stored_conversation_id(page, service.url)
        assert conversation_id is not None
        cited = service.conversations.conversation(conversation_id).turns[-1].citations[0]
        chips.first.click()
        mark = answer.locator(".passage mark")
        expect(mark).to_be_visible()
        assert mark.text_content() == cited.quote
        # The passage's context came through CORS from /api/documents.
        expect(answer.locator(".passage-text")).not_to_have_text(cited.quote)

        for selector in (".answer p", ".chip", ".send", ".launcher", "#aw-input", "h2", "mark"):
            style = _styles(page, selector)
            assert style["color"] != RED, (selector, style)
            assert style["fontSize"] != "40px", (selector, style)
            assert style["display"] != "none", (selector, style)
            assert style["textTransform"] == "none", (selector, style)
            assert style["letterSpacing"] != "3px", (selector, style)
            assert style["background"] != "rgb(0, 255, 0)", (selector, style)
        assert _styles(page, ".answer p")["fontSize"] == "14.5px"
        assert _styles(page, ".answer p")["color"] == "rgb(28, 36, 48)"
        assert _styles(page, ".answer p")["borderTop"] == "0px"
        assert _styles(page, ".launcher")["position"] == "fixed"
        assert _styles(page, ".send")["background"] == "rgb(36, 88, 214)"
        # Nor does the widget's CSS leak out onto the host page's elements of the same names.
        host_box = page.locator("#host-box").evaluate(
            "el => { const s = getComputedStyle(el); return [s.position, s.borderTopLeftRadius]; }"
        )
        assert host_box == ["static", "0px"]
        host_mark = page.locator("#host-mark").evaluate("el => getComputedStyle(el).backgroundColor")
        assert host_mark == "rgb(0, 255, 0)"

        # Esc and focus work there too.
        widget(page, "#aw-input").focus()
        page.keyboard.press("Escape")
        expect(widget(page, "[role=dialog]")).to_be_hidden()
        assert active_element(page) == "Open the document assistant"

        # The script's src alone tells the widget where the service is.
        derived = new_page()
        derived.goto(allowed.origin + "/src-only.html")
        open_panel(derived)
        expect(ask(derived, LIST_QUESTION).locator(".chip")).to_have_count(3)
        assert stored_conversation_id(derived, service.url) is not None

        # An origin the service does not allow: the widget loads, but says it cannot answer.
        outsider = new_page()
        outsider.goto(refused.origin + "/")
        open_panel(outsider)
        box = widget(outsider, "#aw-input")
        box.fill(LIST_QUESTION)
        box.press("Enter")
        error = widget(outsider, ".msg-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("Can\u2019t reach the assistant")
        expect(error).to_contain_text("this website may not be allowed")
        expect(error.locator("button.retry")).to_be_visible()
        expect(widget(outsider, ".msg-bot")).to_have_count(0)
        assert ("OPTIONS", "/api/chat/stream", 400) in service.live.recorder.seen


def test_api_key_from_the_script_tag_is_sent_as_a_bearer_token(start_service: StartService, new_page: Any) -> None:
    with (
        host_site() as site,
        start_service(cors_origins=[site.origin], api_keys=[API_KEY]) as service,
    ):
        site.pages["/"] = HOST_PAGE.replace("{tag}", embed_tag(service.url, api_key=API_KEY))
        site.pages["/no-key.html"] = HOST_PAGE.replace("{tag}", embed_tag(service.url))

        page = new_page()
        page.goto(site.origin + "/")
        open_panel(page)
        with page.expect_request("**/api/chat/stream") as sent:
            answer = ask(page, LIST_QUESTION)
        assert sent.value.headers["authorization"] == f"Bearer {API_KEY}"
        # Passages, feedback and the restored conversation use the key too.
        answer.locator(".chip").first.click()
        expect(answer.locator(".passage-text")).not_to_have_text(answer.locator(".passage mark").text_content() or "")
        answer.locator(".thumb[data-rating=up]").click()
        expect(answer.locator(".feedback-status")).to_have_text("Thanks for your feedback")
        assert [f.rating for f in service.conversations.feedback()] == ["up"]
        page.reload()
        expect(widget(page, ".msg-bot .chip")).to_have_count(3)

        keyless = new_page()
        keyless.goto(site.origin + "/no-key.html")
        open_panel(keyless)
        box = widget(keyless, "#aw-input")
        box.fill(LIST_QUESTION)
        box.press("Enter")
        error = widget(keyless, ".msg-error")
        expect(error).to_contain_text("The assistant refused this website")
        # The service's own message, and no Retry: without a key, asking again fails again.
        expect(error).to_contain_text("missing API key: send the header Authorization: Bearer <key> (HTTP 401)")
        expect(error.locator("button.retry")).to_have_count(0)
