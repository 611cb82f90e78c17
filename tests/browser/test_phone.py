"""The widget on phones: Playwright's device descriptors (mobile viewport, touch, pixel ratio).

A narrow desktop window is not a phone: on a phone, a page wider than the screen widens the
layout viewport, and everything fixed to its right or bottom edge (the launcher, a full-screen
panel's close and send buttons) moves off the screen with it. So these tests emulate phones
and check what is on the screen, the visual viewport: on the demo page, on a plain page that
only adds the widget's script tag, and on a careless page that is wider than the screen.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from assistant.service.links import source_path
from tests.browser.conftest import (
    SCREENSHOTS,
    Service,
    StartService,
    ask,
    embed_tag,
    host_site,
    widget,
)
from tests.conftest import LIST_QUESTION

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONES = ("iPhone 13", "Pixel 7")
MOBILE_META = '<meta name="viewport" content="width=device-width, initial-scale=1">'

# Host pages, {tag} being the widget's script tag. A page without a viewport tag is laid out
# 980 px wide and shown zoomed out, as phones show pages not made for them.
PLAIN_PAGE = "<!doctype html><html><head><title>Plain</title></head><body>{tag}</body></html>"
PLAIN_MOBILE_PAGE = (
    f"<!doctype html><html><head>{MOBILE_META}<title>Plain</title></head>"
    "<body><p>Our intranet.</p>{tag}</body></html>"
)
# A page that does scroll sideways (its own fault): the widget must stay on the screen anyway.
WIDE_PAGE = (
    f"<!doctype html><html><head>{MOBILE_META}<title>Wide</title></head><body>"
    f"<p><code>{'ASSISTANT_CORS_ORIGINS=https://intranet.example.org/' * 3}</code></p>{{tag}}</body></html>"
)

# Where an element is on the screen: its box relative to the visual viewport (what the phone
# shows), in CSS pixels, with the screen's size; getBoundingClientRect is relative to the
# layout viewport, which a page wider than the screen makes larger than the screen.
SCREEN_BOX = """el => {
    const r = el.getBoundingClientRect(), v = window.visualViewport;
    return {left: r.left - v.offsetLeft, top: r.top - v.offsetTop, right: r.right - v.offsetLeft,
            bottom: r.bottom - v.offsetTop, width: r.width, height: r.height,
            screen_width: v.width, screen_height: v.height};
}"""
PAGE_WIDTHS = """() => ({scroll_width: document.documentElement.scrollWidth,
    screen_width: window.visualViewport.width, scale: window.visualViewport.scale})"""


def _assert_on_screen(locator: Any, what: str) -> dict[str, float]:
    """Checks that an element is wholly on the phone's screen; returns its box there."""
    expect(locator).to_be_visible()
    box: dict[str, float] = locator.evaluate(SCREEN_BOX)
    inside = (
        box["width"] > 0
        and box["left"] >= -0.5
        and box["top"] >= -0.5
        and box["right"] <= box["screen_width"] + 0.5
        and box["bottom"] <= box["screen_height"] + 0.5
    )
    assert inside, f"{what} is not (wholly) on the screen: {box}"
    return box


def _assert_no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate(PAGE_WIDTHS)
    # + 1: a zoomed-out page's width is 980.00006 CSS pixels, its scroll width a whole number.
    assert widths["scroll_width"] <= widths["screen_width"] + 1, f"the page scrolls sideways: {widths}"


def _open_by_touch(page: Any) -> Any:
    """Taps the launcher (after checking it is on the screen) and waits for the panel."""
    launcher = widget(page, ".launcher")
    _assert_on_screen(launcher, "the launcher")
    launcher.tap()
    dialog = widget(page, "[role=dialog]")
    expect(dialog).to_be_visible()
    dialog.evaluate("el => Promise.all(el.getAnimations().map(a => a.finished))")
    return dialog


def _assert_panel_usable(page: Any, full_screen: bool) -> None:
    """The open panel: close and send on the screen; on a mobile page, the whole screen."""
    dialog = widget(page, "[role=dialog]")
    _assert_on_screen(widget(page, ".head [aria-label=Close]"), "the Close button")
    _assert_on_screen(widget(page, ".send"), "the Send button")
    _assert_on_screen(widget(page, "#aw-input"), "the question field")
    if full_screen:
        box = _assert_on_screen(dialog, "the panel")
        screen = page.viewport_size
        assert (box["left"], box["top"], box["width"], box["height"]) == (0, 0, screen["width"], screen["height"])


@pytest.mark.parametrize("device", PHONES)
def test_demo_page_on_a_phone_fits_the_screen(service: Service, new_page: Any, device: str) -> None:
    page = new_page(device=device)
    page.goto(service.url + "/")
    expect(page.locator("h1")).to_be_visible()
    # The page is laid out at the phone's width, not zoomed out, and nothing scrolls sideways.
    assert page.evaluate(PAGE_WIDTHS)["scale"] == 1
    _assert_no_sideways_scroll(page)
    _open_by_touch(page)
    _assert_panel_usable(page, full_screen=True)
    _assert_no_sideways_scroll(page)

    if device == PHONES[0]:
        # An answer with its source open fits too: nothing in the conversation scrolls sideways.
        answer = ask(page, LIST_QUESTION)
        answer.locator(".chip").first.tap()
        expect(answer.locator(".passage mark")).to_be_visible()
        log = widget(page, "[role=log]")
        assert log.evaluate("el => el.scrollWidth <= el.clientWidth")
        _assert_panel_usable(page, full_screen=True)
        widget(page, "[role=log]").evaluate(
            "log => { const q = log.querySelector('.msg-user'); log.scrollTop = q.offsetTop - log.offsetTop - 12; }"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # CSS pixels: a 390-pixel-wide picture, not the phone's 3x device pixels.
        page.screenshot(path=str(SCREENSHOTS / "widget-phone.png"), scale="css")

    # Closed again: the launcher is back, on the screen.
    widget(page, ".head [aria-label=Close]").tap()
    expect(widget(page, "[role=dialog]")).to_be_hidden()
    _assert_on_screen(widget(page, ".launcher"), "the launcher after closing")


@pytest.mark.parametrize("device", PHONES)
def test_plain_host_pages_on_a_phone(start_service: StartService, new_page: Any, device: str) -> None:
    with host_site() as site, start_service(cors_origins=[site.origin]) as service:
        tag = embed_tag(service.url)
        site.pages["/plain.html"] = PLAIN_PAGE.replace("{tag}", tag)
        site.pages["/mobile.html"] = PLAIN_MOBILE_PAGE.replace("{tag}", tag)
        site.pages["/wide.html"] = WIDE_PAGE.replace("{tag}", tag)

        # A page with only the script tag: shown zoomed out, the widget within the screen.
        page = new_page(device=device)
        page.goto(site.origin + "/plain.html")
        _assert_no_sideways_scroll(page)
        _open_by_touch(page)
        _assert_panel_usable(page, full_screen=False)
        _assert_no_sideways_scroll(page)

        # A mobile page (with a viewport tag): the panel takes the whole screen.
        page = new_page(device=device)
        page.goto(site.origin + "/mobile.html")
        _assert_no_sideways_scroll(page)
        _open_by_touch(page)
        _assert_panel_usable(page, full_screen=True)
        _assert_no_sideways_scroll(page)

        # A page wider than the screen scrolls sideways, but the widget stays on the screen.
        page = new_page(device=device)
        page.goto(site.origin + "/wide.html")
        widths = page.evaluate(PAGE_WIDTHS)
        assert widths["scroll_width"] > widths["screen_width"]  # the page's own overflow
        _open_by_touch(page)
        _assert_panel_usable(page, full_screen=True)
        widget(page, ".head [aria-label=Close]").tap()
        _assert_on_screen(widget(page, ".launcher"), "the launcher after closing")


def test_source_page_of_a_slack_link_reads_well_on_a_phone(service: Service, new_page: Any) -> None:
    with service.live.client() as client:
        citation = client.post("/api/chat", json={"message": LIST_QUESTION}).json()["citations"][0]
    page = new_page(device=PHONES[0])
    page.goto(f"{service.url}{source_path(citation['doc'])}?start={citation['start']}&end={citation['end']}")
    mark = page.locator("mark")
    expect(mark).to_have_text(citation["quote"])
    # The page's Content-Security-Policy lets its own stylesheet through (and nothing else).
    assert mark.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(255, 233, 168)"
    _assert_no_sideways_scroll(page)
    _assert_on_screen(page.locator("h1"), "the title")
