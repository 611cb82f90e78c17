"""The chat widget on the service's demo page, driven in headless Chromium over the real index."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    PHONE,
    SCREENSHOTS,
    Service,
    StartService,
    active_element,
    ask,
    open_panel,
    stored_conversation_id,
    widget,
)
from tests.conftest import LIST_ITEMS, LIST_QUESTION, OUTSIDE_QUESTION, WHICH_ONE, WHICH_ONE_FOLLOW_UP
from tests.service.conftest import sse_events

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ABSTENTION = "I could not find this in the documents."

# Records, from the moment it is installed, whether the widget ever showed its busy state.
WATCH_BUSY = """() => {
    const root = document.querySelector('assistant-widget').shadowRoot;
    window.__busySeen = {typing: false, sendDisabled: false, logBusy: false};
    new MutationObserver(() => {
        const seen = window.__busySeen;
        seen.typing ||= !!root.querySelector('.typing');
        seen.sendDisabled ||= root.querySelector('.send').disabled;
        seen.logBusy ||= root.querySelector('[role=log]').getAttribute('aria-busy') === 'true';
    }).observe(root, {subtree: true, childList: true, attributes: true});
}"""


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _as_displayed(answer_text: str) -> str:
    """The answer text as the widget shows it: bullets as list items, [n] as chips, no spaces."""
    text = re.sub(r"^\s*- ", "", answer_text, flags=re.MULTILINE)
    return _squash(re.sub(r"\[(\d+)\]", r"\1", text))


def _screenshot(page: Any, name: str) -> None:
    """Saves the page for the README."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_demo_page_streams_a_cited_answer_and_keeps_the_conversation(service: Service, page: Any) -> None:
    page.goto(service.url + "/")
    # The demo page embeds the widget the way any site does: one tag.
    tags = page.locator("script[src]")
    expect(tags).to_have_count(1)
    assert tags.get_attribute("src") == "/widget.js"
    assert tags.get_attribute("async") is not None
    launcher = widget(page, ".launcher")
    expect(launcher).to_have_attribute("aria-expanded", "false")

    open_panel(page)
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert active_element(page) == "aw-input"
    page.evaluate(WATCH_BUSY)
    with page.expect_response("**/api/chat/stream") as streamed:
        answer = ask(page, LIST_QUESTION)

    # The widget read a real stream of several `delta` events and shows their text.
    events = sse_events(streamed.value.text())
    deltas = [json.loads(data)["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 1
    streamed_text = "".join(deltas)
    shown = answer.locator(".answer").inner_text()
    assert _squash(shown) == _as_displayed(streamed_text)
    for partner in LIST_ITEMS:
        assert partner in shown, f"{partner} is missing from the answer: {shown!r}"
    busy = page.evaluate("() => window.__busySeen")
    assert busy == {"typing": True, "sendDisabled": True, "logBusy": True}
    expect(widget(page, ".send")).to_be_enabled()

    # The conversation is the one the service stored; its citations are the chips.
    done = json.loads(next(data for name, data in events if name == "done"))
    conversation_id = stored_conversation_id(page, service.url)
    assert conversation_id is not None
    assert conversation_id == done["conversation_id"]
    stored = service.conversations.conversation(conversation_id)
    citations = stored.turns[-1].citations
    assert len(citations) == 3
    chips = answer.locator(".chip")
    expect(chips).to_have_count(3)
    expect(chips.locator(".chip-n")).to_have_text([str(c.n) for c in citations])
    # Every [n] marker of the text is a clickable chip too.
    markers = re.findall(r"\[(\d+)\]", streamed_text)
    expect(answer.locator(".ref[data-n]")).to_have_text(markers)

    # A source chip opens the passage: title, section, the quote highlighted in its context.
    cited = citations[1]
    chips.nth(1).click()
    expect(chips.nth(1)).to_have_attribute("aria-expanded", "true")
    passage = answer.locator(".passage")
    expect(passage.locator(".passage-title")).to_have_text(cited.title)
    expect(passage.locator(".passage-section")).to_have_text(cited.section)
    expect(passage.locator(".passage-doc")).to_have_text(cited.doc)
    mark = passage.locator("mark")
    expect(mark).to_be_visible()
    assert mark.text_content() == cited.quote
    # The context arrives from /api/documents: text before and after the highlighted quote.
    context = passage.locator(".passage-text")
    expect(context).not_to_have_text(cited.quote)
    full = context.text_content() or ""
    assert 0 < full.index(cited.quote) < len(full) - len(cited.quote)
    _screenshot(page, "widget-desktop.png")

    # An inline [n] marker opens its passage as well.
    first = citations[0]
    answer.locator(f".ref[data-n='{first.n}']").first.click()
    expect(passage.locator("mark")).to_have_text(first.quote)
    assert passage.locator("mark").text_content() == first.quote
    expect(chips.nth(0)).to_have_attribute("aria-expanded", "true")
    expect(chips.nth(1)).to_have_attribute("aria-expanded", "false")

    # Reloaded while open: the panel opens again with the conversation restored from the service.
    page.reload()
    expect(widget(page, "[role=dialog]")).to_be_visible()
    expect(widget(page, ".msg-user")).to_have_count(1)
    expect(widget(page, ".msg-user")).to_contain_text(LIST_QUESTION)
    restored = widget(page, ".msg-bot")
    expect(restored).to_have_count(1)
    expect(restored.locator(".chip")).to_have_count(3)
    assert _squash(restored.locator(".answer").inner_text()) == _squash(shown)
    restored.locator(".chip").nth(2).click()
    assert restored.locator(".passage mark").text_content() == citations[2].quote

    # A follow-up continues the same conversation.
    follow_up = ask(page, WHICH_ONE_FOLLOW_UP)
    expect(follow_up.locator(".answer")).to_contain_text(WHICH_ONE)
    assert stored_conversation_id(page, service.url) == conversation_id
    assert len(service.conversations.conversation(conversation_id).turns) == 4

    # Reloaded while closed: the panel stays closed and restores the conversation when opened.
    widget(page, ".head [aria-label=Close]").click()
    page.reload()
    expect(widget(page, ".launcher")).to_be_visible()
    expect(widget(page, "[role=dialog]")).to_be_hidden()
    open_panel(page)
    expect(widget(page, ".msg-user")).to_have_count(2)
    expect(widget(page, ".msg-bot")).to_have_count(2)

    # "New conversation" starts afresh and forgets the old one.
    widget(page, "[aria-label='New conversation']").click()
    expect(widget(page, ".welcome")).to_be_visible()
    expect(widget(page, ".msg-bot")).to_have_count(0)
    assert stored_conversation_id(page, service.url) is None
    assert active_element(page) == "aw-input"
    fresh = ask(page, LIST_QUESTION)
    expect(fresh.locator(".chip")).to_have_count(3)
    assert stored_conversation_id(page, service.url) not in (None, conversation_id)


def test_keyboard_focus_aria_and_the_abstention_style(service: Service, page: Any) -> None:
    page.goto(service.url + "/")
    dialog = widget(page, "[role=dialog]")
    log = widget(page, "[role=log]")
    expect(dialog).to_have_attribute("aria-labelledby", "aw-title")
    expect(widget(page, "#aw-title")).to_have_text("Ask the documents")
    expect(log).to_have_attribute("aria-live", "polite")

    # The launcher opens the panel from the keyboard and focus moves to the question field.
    widget(page, ".launcher").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    assert active_element(page) == "aw-input"

    # Shift+Enter is a new line; Enter sends.
    first_line, second_line = LIST_QUESTION.split(" a ", 1)
    page.keyboard.type(first_line)
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("a " + second_line)
    assert widget(page, "#aw-input").input_value() == f"{first_line}\na {second_line}"
    expect(widget(page, ".msg-user")).to_have_count(0)
    page.keyboard.press("Enter")
    answer = widget(page, ".msg-bot").first
    expect(answer.locator(".feedback")).to_be_visible()
    expect(answer.locator(".chip")).to_have_count(3)
    assert widget(page, "#aw-input").input_value() == ""

    # "Not in the documents" looks different from an answer: a label, an icon, another style.
    outside = ask(page, OUTSIDE_QUESTION)
    expect(outside).to_have_class(re.compile(r"\babstained\b"))
    expect(outside.locator(".abstain-label")).to_have_text("Not in the documents")
    expect(outside.locator(".abstain-label svg")).to_be_visible()
    expect(outside.locator(".answer")).to_contain_text(ABSTENTION)
    expect(outside.locator(".chip")).to_have_count(0)
    expect(answer.locator(".abstain-label")).to_have_count(0)

    def style(locator: Any) -> dict[str, str]:
        return dict(
            locator.evaluate(
                "el => { const s = getComputedStyle(el); return "
                "{background: s.backgroundColor, border: s.borderTopStyle}; }"
            )
        )

    assert style(outside) != style(answer)
    assert style(outside)["border"] == "dashed"

    # Every control is reachable with Tab, and the focused one shows a ring.
    widget(page, "#aw-input").focus()
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        label = active_element(page)
        reached.add(label)
        if label.startswith("Source 1"):
            ring = page.evaluate(
                "() => { const el = document.querySelector('assistant-widget').shadowRoot"
                ".activeElement; const s = getComputedStyle(el); "
                "return [s.outlineStyle, s.outlineWidth]; }"
            )
            assert ring == ["solid", "2px"], ring
    expected = {
        "New conversation",
        "Close",
        "Helpful",
        "Not helpful",
        "Send",
        "aw-input",
        "Close the document assistant",
    }
    assert expected <= reached, reached
    assert any(label.startswith("Source 3: ") for label in reached), reached

    # Esc closes the panel and gives the focus back to the launcher.
    widget(page, "#aw-input").focus()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(widget(page, ".launcher")).to_have_attribute("aria-expanded", "false")
    assert active_element(page) == "Open the document assistant"


def test_feedback_is_sent_confirmed_and_remembered(service: Service, page: Any) -> None:
    page.goto(service.url + "/")
    open_panel(page)
    answer = ask(page, LIST_QUESTION)
    up = answer.locator(".thumb[data-rating=up]")
    up.click()
    expect(answer.locator(".feedback-status")).to_have_text("Thanks for your feedback")
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(up).to_be_disabled()
    conversation_id = stored_conversation_id(page, service.url)
    assert conversation_id is not None
    answer_turn = service.conversations.conversation(conversation_id).turns[1]
    [feedback] = service.conversations.feedback()
    assert (feedback.answer_id, feedback.rating, feedback.question) == (
        answer_turn.answer_id,
        "up",
        LIST_QUESTION,
    )

    # Thumbs down asks what was wrong (optional) before sending.
    outside = ask(page, OUTSIDE_QUESTION)
    outside.locator(".thumb[data-rating=down]").click()
    comment = outside.locator(".feedback-form textarea")
    expect(comment).to_be_visible()
    assert active_element(page).startswith("aw-why-")
    comment.fill("The intranet has a page on Peru.")
    outside.locator(".feedback-form button[type=submit]").click()
    expect(outside.locator(".feedback-status")).to_have_text("Thanks for your feedback")
    expect(comment).to_be_hidden()
    down = service.conversations.feedback("down")
    assert [(f.comment, f.abstained, f.question) for f in down] == [
        ("The intranet has a page on Peru.", True, OUTSIDE_QUESTION)
    ]

    # After a reload the ratings are still shown as given, and cannot be given twice.
    page.reload()
    expect(widget(page, ".msg-bot")).to_have_count(2)
    for n, rating in enumerate(("up", "down")):
        thumb = widget(page, ".msg-bot").nth(n).locator(f".thumb[data-rating={rating}]")
        expect(thumb).to_have_attribute("aria-pressed", "true")
        expect(thumb).to_be_disabled()
    assert len(service.conversations.feedback()) == 2


def test_unreachable_service_shows_an_error_and_retry_resends(start_service: StartService, page: Any) -> None:
    with start_service() as first:
        page.goto(first.url + "/")
        open_panel(page)
    # The service has stopped: the question fails with a clear error and a Retry button.
    box = widget(page, "#aw-input")
    box.fill(LIST_QUESTION)
    box.press("Enter")
    error = widget(page, ".msg-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("Can\u2019t reach the assistant")
    expect(widget(page, ".msg-bot")).to_have_count(0)
    expect(widget(page, ".send")).to_be_enabled()

    with start_service(port=first.live.port) as second:
        error.locator("button.retry").click()
        answer = widget(page, ".msg-bot").first
        expect(answer.locator(".feedback")).to_be_visible()
        expect(error).to_have_count(0)
        expect(answer.locator(".chip")).to_have_count(3)
        # Retry sent the same question again, without asking it twice in the conversation.
        expect(widget(page, ".msg-user")).to_have_count(1)
        conversation_id = stored_conversation_id(page, second.url)
        assert conversation_id is not None
        turns = second.conversations.conversation(conversation_id).turns
        assert [t.content for t in turns if t.role == "user"] == [LIST_QUESTION]

        # While an answer streams, the widget is busy and a second question waits in the field.
        held: list[Any] = []
        page.route("**/api/chat/stream", lambda route: held.append(route))
        box.fill(OUTSIDE_QUESTION)
        box.press("Enter")
        expect(widget(page, ".typing")).to_be_visible()
        expect(widget(page, ".send")).to_be_disabled()
        expect(widget(page, "[role=log]")).to_have_attribute("aria-busy", "true")
        box.fill(LIST_QUESTION)
        box.press("Enter")
        expect(widget(page, ".msg-user")).to_have_count(2)
        assert box.input_value() == LIST_QUESTION
        assert len(held) == 1
        held[0].continue_()
        page.unroute("**/api/chat/stream")
        outside = widget(page, ".msg-bot").nth(1)
        expect(outside.locator(".feedback")).to_be_visible()
        expect(outside).to_have_class(re.compile(r"\babstained\b"))
        box.press("Enter")
        expect(widget(page, ".msg-bot").nth(2).locator(".feedback")).to_be_visible()
        expect(widget(page, ".msg-user")).to_have_count(3)


def test_stream_errors_bad_questions_and_crlf_events(service: Service, page: Any) -> None:
    page.goto(service.url + "/")
    open_panel(page)

    # An `error` event mid-stream: the service's message and its status, but no Retry (the
    # service answered; the same question again gets the same); the question is back in the box.
    failed = 'event: error\ndata: {"status": 502, "detail": "the language model did not answer"}\n\n'
    page.route(
        "**/api/chat/stream",
        lambda route: route.fulfill(
            status=200,
            content_type="text/event-stream",
            body='event: delta\ndata: {"text": "Partial "}\n\n' + failed,
        ),
    )
    box = widget(page, "#aw-input")
    box.fill(LIST_QUESTION)
    box.press("Enter")
    error = widget(page, ".msg-error")
    expect(error).to_contain_text("The assistant ran into a problem")
    expect(error).to_contain_text("the language model did not answer (HTTP 502)")
    expect(error.locator("button.retry")).to_have_count(0)
    expect(widget(page, ".msg-bot")).to_have_count(0)  # the partial answer is gone
    assert box.input_value() == LIST_QUESTION
    page.unroute("**/api/chat/stream")
    box.press("Enter")  # sent again, by the user, when the service is well again
    expect(widget(page, ".msg-bot").first.locator(".chip")).to_have_count(3)

    # Events with CRLF line ends, comments and multi-line data are read like the service's own.
    citation = {
        "n": 1,
        "doc": "4-motors-industry-4-0-concept-note.txt",
        "title": "4 Motors",
        "section": "A.3.3.1.1. Plastipolis",
        "start": 0,
        "end": 10,
        "quote": "4 Motors f",
    }
    body = "\r\n".join(
        [
            ": ping",
            "",
            "event: delta",
            'data: {"text":',
            'data:  "Two lines:\\n- <b>not bold</b> [1]"}',
            "",
            "event: citations",
            "data: " + json.dumps({"citations": [citation]}),
            "",
            "event: done",
            'data: {"conversation_id": "c-fake", "answer_id": "a-fake", "turn": 1,',
            'data:  "abstained": false}',
            "",
            "",
        ]
    )
    page.route(
        "**/api/chat/stream",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body),
    )
    answer = ask(page, "Anything")
    page.unroute("**/api/chat/stream")
    # Server text is shown as text, never parsed as HTML.
    expect(answer.locator(".answer li")).to_have_text("<b>not bold</b> 1")
    expect(answer.locator(".answer b")).to_have_count(0)
    expect(answer.locator(".chip")).to_have_count(1)

    # A question the service refuses before streaming (longer than ASSISTANT_MAX_QUESTION_CHARS):
    # the service's own reason is shown, without a Retry that could only fail again, and the
    # question is back in the box to be shortened.
    widget(page, "[aria-label='New conversation']").click()
    too_long = "x" * 2100
    with service.live.client() as client:
        refused = client.post("/api/chat", json={"message": too_long})
    assert refused.status_code == 422
    box.fill(too_long)
    box.press("Enter")
    expect(error).to_contain_text("This question could not be answered")
    expect(error).to_contain_text(refused.json()["detail"])
    expect(error).to_contain_text("Your question is back in the box")
    expect(error.locator("button.retry")).to_have_count(0)
    assert box.input_value() == too_long


def test_retry_is_offered_for_network_errors_only(service: Service, page: Any) -> None:
    page.goto(service.url + "/")
    open_panel(page)
    box = widget(page, "#aw-input")
    error = widget(page, ".msg-error")

    # The request fails at the network level (connection refused, reset, offline): Retry.
    page.route("**/api/chat/stream", lambda route: route.abort("connectionrefused"))
    box.fill(LIST_QUESTION)
    box.press("Enter")
    expect(error).to_contain_text("Can\u2019t reach the assistant")
    expect(error.locator("button.retry")).to_have_count(1)
    assert box.input_value() == ""  # Retry resends it: nothing to type again
    page.unroute("**/api/chat/stream")
    error.locator("button.retry").click()
    expect(widget(page, ".msg-bot").first.locator(".chip")).to_have_count(3)
    expect(error).to_have_count(0)

    # The connection drops while the answer arrives (no `done`, no `error` event): Retry.
    page.route(
        "**/api/chat/stream",
        lambda route: route.fulfill(
            status=200, content_type="text/event-stream", body='event: delta\ndata: {"text": "Plasti"}\n\n'
        ),
    )
    box.fill(LIST_QUESTION)
    box.press("Enter")
    expect(error).to_contain_text("The answer was interrupted")
    expect(error.locator("button.retry")).to_have_count(1)
    page.unroute("**/api/chat/stream")
    error.locator("button.retry").click()
    expect(widget(page, ".msg-bot").nth(1).locator(".chip")).to_have_count(3)


def test_phone_layout_is_full_screen_and_readable(service: Service, new_page: Any) -> None:
    # A narrow desktop window; phones themselves (and the README's phone screenshot) are in
    # test_phone.py.
    page = new_page(PHONE)
    page.goto(service.url + "/")
    open_panel(page)
    box = widget(page, "[role=dialog]").bounding_box()
    assert box == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
    expect(widget(page, ".launcher")).to_be_hidden()  # the panel covers it; Close is in the header
    answer = ask(page, LIST_QUESTION)
    answer.locator(".chip").first.click()
    expect(answer.locator(".passage mark")).to_be_visible()
    expect(answer.locator(".passage-text")).not_to_have_text(re.compile(r"^\S+$"))
    log = widget(page, "[role=log]")
    assert log.evaluate("el => el.scrollWidth <= el.clientWidth")  # nothing scrolls sideways
    font = answer.locator(".answer p").first.evaluate("el => getComputedStyle(el).fontSize")
    assert font == "14.5px"

    widget(page, ".head [aria-label=Close]").click()
    expect(widget(page, ".launcher")).to_be_visible()
    assert active_element(page) == "Open the document assistant"
