"""The Slack bot over HTTP: signed events, commands and clicks in, Slack Web API calls out.

Each test sends what Slack would send to the running service and checks the calls the bot
then makes to the fake Slack: which ones, how many (no extra call within a grace period),
and what they say.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.conftest import LIST_QUESTION, PRONOUN_FACT, PRONOUN_FOLLOW_UP, SUBJECT_QUESTION
from tests.slack.conftest import (
    AUTH_TEST,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    POST_MESSAGE,
    SIGNING_SECRET,
    TEAM,
    SlackCall,
    SlackService,
    assert_source_links_open,
    block_texts,
)


def _buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """The message's buttons: action_id -> value."""
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def _blocks(call: SlackCall) -> list[dict[str, Any]]:
    blocks = call.body["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def _assert_list_answer(slack: SlackService, call: SlackCall) -> str:
    """Checks an answer message to LIST_QUESTION; returns its answer id."""
    blocks = _blocks(call)
    texts = block_texts(blocks)
    answer = "\n".join(texts)
    assert "Plastipolis" in call.body["text"]
    assert "Plastipolis" in answer and "microTEC" in answer
    assert "[1]" in answer
    sources = next(t for t in texts if t.startswith("*Sources*"))
    assert "4 Motors for the European Industry 4.0" in sources
    assert "Plastipolis" in sources  # the cited section's title
    buttons = _buttons(blocks)
    assert set(buttons) == {"feedback_up", "feedback_down"}
    assert buttons["feedback_up"] == buttons["feedback_down"]
    # Every source links to its readable source page, which highlights the cited quote.
    citations = slack.store.exchange(buttons["feedback_up"]).answer.citations
    assert_source_links_open(slack, sources, citations)
    return buttons["feedback_up"]


def test_url_verification_returns_the_challenge(slack: SlackService) -> None:
    body = json.dumps({"token": "legacy", "challenge": "ch4llenge", "type": "url_verification"})
    response = slack.post("/slack/events", body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "ch4llenge"}
    assert slack.fake.expect(0, grace=0.5) == []


def test_mention_is_answered_in_its_thread_with_sources(slack: SlackService) -> None:
    ts = "1700000000.000100"
    response = slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> {LIST_QUESTION}",
            "ts": ts,
            "channel": "C0CHAN",
        },
        "Ev0MENTION",
    )
    assert response.status_code == 200
    (call,) = slack.fake.expect(1)
    assert call.path == POST_MESSAGE
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.body["channel"] == "C0CHAN"
    assert call.body["thread_ts"] == ts
    answer_id = _assert_list_answer(slack, call)
    # The mention was stripped and the exchange stored under the thread's key.
    exchange = slack.store.exchange(answer_id)
    assert exchange.question == LIST_QUESTION
    assert "Plastipolis" in exchange.answer.content
    thread = slack.store.get_or_create(f"slack:{TEAM}:C0CHAN:{ts}")
    assert thread == exchange.conversation_id


def test_reply_in_a_thread_is_answered_in_that_thread(slack: SlackService) -> None:
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> {LIST_QUESTION}",
            "ts": "1700000000.000300",
            "thread_ts": "1700000000.000200",
            "channel": "C0CHAN",
        },
        "Ev0THREADED",
    )
    (call,) = slack.fake.expect(1)
    assert call.body["thread_ts"] == "1700000000.000200"


def test_direct_message_follow_up_is_answered_in_context(slack: SlackService) -> None:
    first_ts = "1700000100.000100"
    slack.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "U0ALICE",
            "text": SUBJECT_QUESTION,
            "ts": first_ts,
            "channel": "D0ALICE",
        },
        "Ev0DM1",
    )
    (first,) = slack.fake.wait_for(1)
    assert first.body["channel"] == "D0ALICE"
    assert first.body["thread_ts"] == first_ts
    assert "Eurecat" in first.dump()

    slack.event(
        {
            "type": "message",
            "channel_type": "im",
            "user": "U0ALICE",
            "text": PRONOUN_FOLLOW_UP,
            "ts": "1700000100.000500",
            "thread_ts": first_ts,
            "channel": "D0ALICE",
        },
        "Ev0DM2",
    )
    calls = slack.fake.expect(2)
    second = calls[1]
    assert second.body["thread_ts"] == first_ts
    assert PRONOUN_FACT in "\n".join(block_texts(_blocks(second)))
    # Both exchanges are one conversation: the thread's.
    conversation = slack.store.get_or_create(f"slack:{TEAM}:D0ALICE:{first_ts}")
    turns = slack.store.history(conversation)
    assert [t.content for t in turns if t.role == "user"] == [
        SUBJECT_QUESTION,
        PRONOUN_FOLLOW_UP,
    ]


def test_a_question_outside_the_documents_gets_the_not_found_look(slack: SlackService) -> None:
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> What is the capital of Peru?",
            "ts": "1700000200.000100",
            "channel": "C0CHAN",
        },
        "Ev0PERU",
    )
    (call,) = slack.fake.expect(1)
    texts = block_texts(_blocks(call))
    assert texts[0] == ":mag: *Not in the documents*"
    assert not any(t.startswith("*Sources*") for t in texts)
    assert call.body["text"].startswith("Not in the documents")
    assert set(_buttons(_blocks(call))) == {"feedback_up", "feedback_down"}


# Nothing to read: what remains is empty, NUL, or zero-width and other invisible characters.
INVISIBLE = {
    "nothing": "",
    "zero-width space": " \u200b ",
    "NUL": "\x00",
    "BOM and word joiner": "\ufeff\u2060\u200b",
    "joiners": "\u200d \u200c",
}


@pytest.mark.parametrize("after", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_mention_without_a_question_gets_a_hint(slack: SlackService, after: str) -> None:
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}>{after}",
            "ts": "1700000300.000100",
            "channel": "C0CHAN",
        },
        "Ev0EMPTY",
    )
    (call,) = slack.fake.expect(1)
    assert "Ask me a question" in call.body["text"]
    assert not _buttons(_blocks(call))


def test_a_retried_event_is_answered_once_even_after_a_restart(start_slack: Any) -> None:
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": f"<@{BOT_USER}> {LIST_QUESTION}",
        "ts": "1700000400.000100",
        "channel": "C0CHAN",
    }
    with start_slack() as slack:
        assert slack.event(event, "Ev0RETRIED").status_code == 200
        slack.fake.wait_for(1)
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert slack.event(event, "Ev0RETRIED", headers=retry).status_code == 200
        slack.fake.expect(1)
    # A new process on the same data folder still knows the event.
    with start_slack() as slack:
        retry = {"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}
        assert slack.event(event, "Ev0RETRIED", headers=retry).status_code == 200
        assert slack.fake.expect(1)[0].path == POST_MESSAGE


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(
            {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": "an answer"},
            id="own-message",
        ),
        pytest.param(
            {
                "type": "message",
                "subtype": "bot_message",
                "bot_id": "B0OTHER",
                "username": "otherbot",
                "text": "What is Clúster Digital de Catalunya?",
            },
            id="other-bot",
        ),
        pytest.param(
            {
                "type": "message",
                "user": "U0OTHERBOT",
                "bot_id": "B0OTHER",
                "text": "What is Clúster Digital de Catalunya?",
            },
            id="other-bot-user",
        ),
        pytest.param(
            {
                "type": "message",
                "subtype": "message_changed",
                "message": {"type": "message", "user": "U0ALICE", "text": LIST_QUESTION},
                "previous_message": {"type": "message", "user": "U0ALICE", "text": "Gold?"},
            },
            id="edit",
        ),
        pytest.param(
            {
                "type": "app_mention",
                "user": "U0OTHERBOT",
                "bot_id": "B0OTHER",
                "text": f"<@{BOT_USER}> {LIST_QUESTION}",
            },
            id="other-bot-mention",
        ),
        pytest.param(
            {"type": "message", "channel_type": "channel", "user": "U0ALICE", "text": LIST_QUESTION},
            id="channel-message-without-mention",
        ),
    ],
)
def test_bots_edits_and_channel_chatter_are_not_answered(slack: SlackService, event: dict[str, Any]) -> None:
    event = {"channel_type": "im", "channel": "D0ALICE", "ts": f"{time.time():.6f}", **event}
    response = slack.event(event, "Ev0IGNORED")
    assert response.status_code == 200  # acknowledged, so that Slack does not retry
    assert slack.fake.expect(0, grace=2.0) == []


@pytest.mark.parametrize(
    "how",
    ["unsigned", "wrong-secret", "stale", "future", "not-a-timestamp", "tampered"],
)
@pytest.mark.parametrize("path", ["/slack/events", "/slack/interactions"])
def test_requests_without_a_valid_signature_are_refused(slack: SlackService, how: str, path: str) -> None:
    event = {
        "type": "event_callback",
        "team_id": TEAM,
        "event_id": f"Ev0BAD{how}",
        "event": {
            "type": "app_mention",
            "user": "U0MALLORY",
            "text": f"<@{BOT_USER}> {LIST_QUESTION}",
            "ts": "1700000500.000100",
            "channel": "C0CHAN",
        },
    }
    body = json.dumps(event)
    kwargs: dict[str, Any] = {"content_type": "application/json"}
    if how == "unsigned":
        kwargs["signed"] = False
    elif how == "wrong-secret":
        kwargs["secret"] = "not-the-signing-secret"
    elif how == "stale":
        kwargs["timestamp"] = int(time.time()) - 6 * 60
    elif how == "future":
        kwargs["timestamp"] = int(time.time()) + 6 * 60
    elif how == "not-a-timestamp":
        kwargs["signed"] = False
        kwargs["headers"] = {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}
    response = (
        slack.client.post(
            path,
            content=body.replace("U0MALLORY", "U0ALICE").encode(),
            headers={
                "Content-Type": "application/json",
                **_signature_headers(body),
            },
        )
        if how == "tampered"
        else slack.post(path, body, **kwargs)
    )
    assert response.status_code == 401
    # Nothing was done: no answer, not even bolt's auth.test.
    time.sleep(1.0)
    assert slack.fake.calls == []
    assert slack.store.claim_event(f"Ev0BAD{how}")  # the event id was never claimed


def test_malformed_unsigned_bodies_are_refused_not_crashed_on(slack: SlackService) -> None:
    for body, content_type in [
        (b"{not json", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"payload=%7B", "application/x-www-form-urlencoded"),
    ]:
        response = slack.client.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": str(int(time.time())),
                "X-Slack-Signature": "v0=deadbeef",
            },
        )
        assert response.status_code == 401
    assert slack.fake.calls == []


def _signature_headers(body: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": str(signature)}


def test_slash_command_answers_privately_and_posts_to_the_channel_on_request(
    slack: SlackService,
) -> None:
    response = slack.command(LIST_QUESTION, slack.fake.response_url("command"))
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert "Looking in the documents" in response.json()["text"]

    (private,) = slack.fake.expect(1)
    assert private.path == "/response/command"
    assert private.body["response_type"] == "ephemeral"
    blocks = _blocks(private)
    assert block_texts(blocks)[0] == f"You asked: _{LIST_QUESTION}_"
    buttons = _buttons(blocks)
    assert set(buttons) == {"post_answer", "feedback_up", "feedback_down"}
    answer_id = buttons["post_answer"]
    assert "Plastipolis" in "\n".join(block_texts(blocks))

    # "Post to channel": the answer goes to the channel, the private copy is deleted.
    response = slack.click("post_answer", answer_id, slack.fake.response_url("post"), ephemeral=True)
    assert response.status_code == 200
    public, delete = slack.fake.expect(3)[1:]
    assert public.path == delete.path == "/response/post"
    assert public.body["response_type"] == "in_channel"
    assert public.body["replace_original"] is False
    public_blocks = _blocks(public)
    assert block_texts(public_blocks)[0] == f"<@U0ASKER> asked: _{LIST_QUESTION}_"
    assert set(_buttons(public_blocks)) == {"feedback_up", "feedback_down"}
    assert "Plastipolis" in public.body["text"]
    assert any(t.startswith("*Sources*") for t in block_texts(public_blocks))
    assert delete.body["delete_original"] is True
    assert "blocks" not in delete.body
    assert not [c for c in slack.fake.calls if c.path == POST_MESSAGE]


@pytest.mark.parametrize("text", ["  ", *INVISIBLE.values()], ids=["spaces", *INVISIBLE])
def test_empty_slash_command_shows_how_to_use_it(slack: SlackService, text: str) -> None:
    response = slack.command(text, slack.fake.response_url("command"))
    assert response.status_code == 200
    assert "`/ask your question`" in response.json()["text"]
    assert slack.fake.expect(0) == []


def test_the_usage_hint_quotes_the_first_configured_example_question(
    start_slack: Callable[..., contextlib.AbstractContextManager[SlackService]],
) -> None:
    with start_slack(example_questions="Who chairs the board?|When was it founded?") as slack:
        response = slack.command(" ", slack.fake.response_url("command"))
    assert response.status_code == 200
    assert "`/ask Who chairs the board?`" in response.json()["text"]


def test_feedback_buttons_store_feedback_and_thank_the_user(slack: SlackService) -> None:
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> {LIST_QUESTION}",
            "ts": "1700000600.000100",
            "channel": "C0CHAN",
        },
        "Ev0FEEDBACK",
    )
    (answer,) = slack.fake.wait_for(1)
    answer_id = _buttons(_blocks(answer))["feedback_down"]

    response = slack.click("feedback_down", answer_id, slack.fake.response_url("down"), user="U0BOB")
    assert response.status_code == 200
    note = slack.fake.expect(2)[1]
    assert note.path == "/response/down"
    assert note.body["response_type"] == "ephemeral"
    assert note.body["replace_original"] is False
    assert "feedback was recorded" in note.body["text"]

    slack.click("feedback_up", answer_id, slack.fake.response_url("up"), user="U0ALICE")
    assert slack.fake.expect(3)[2].path == "/response/up"

    stored = slack.store.feedback()
    assert [(f.rating, f.source, f.user) for f in stored] == [
        ("down", "slack", "U0BOB"),
        ("up", "slack", "U0ALICE"),
    ]
    assert stored[0].answer_id == answer_id
    assert stored[0].question == LIST_QUESTION
    assert "Plastipolis" in stored[0].answer


def test_a_click_on_an_unknown_answer_says_so(slack: SlackService) -> None:
    slack.click("feedback_up", "0" * 32, slack.fake.response_url("gone"))
    (note,) = slack.fake.expect(1)
    assert "no longer stored" in note.body["text"]
    assert slack.store.feedback() == []


def test_the_bot_learns_its_identity_once(slack: SlackService) -> None:
    for n in range(2):
        slack.event(
            {
                "type": "app_mention",
                "user": "U0ALICE",
                "text": f"<@{BOT_USER}> {LIST_QUESTION}",
                "ts": f"170000070{n}.000100",
                "channel": "C0CHAN",
            },
            f"Ev0IDENTITY{n}",
        )
    slack.fake.expect(2)
    assert [c.path for c in slack.fake.calls].count(AUTH_TEST) == 1


@pytest.mark.slow
def test_slack_is_acknowledged_at_once_and_answered_afterwards(
    start_slack: Any, assistant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask = assistant.ask

    def slow_ask(*args: Any, **kwargs: Any) -> Any:
        time.sleep(4)  # a cold model, a slow LLM: longer than Slack's 3 seconds
        return ask(*args, **kwargs)

    monkeypatch.setattr(assistant, "ask", slow_ask)
    with start_slack() as slack:
        started = time.monotonic()
        response = slack.event(
            {
                "type": "app_mention",
                "user": "U0ALICE",
                "text": f"<@{BOT_USER}> {LIST_QUESTION}",
                "ts": "1700000800.000100",
                "channel": "C0CHAN",
            },
            "Ev0SLOW",
        )
        assert response.status_code == 200
        command = slack.command(LIST_QUESTION, slack.fake.response_url("slow"))
        assert command.status_code == 200
        assert time.monotonic() - started < 2.5
        assert slack.fake.answer_calls() == []
        calls = slack.fake.expect(2)
        assert {c.path for c in calls} == {POST_MESSAGE, "/response/slow"}
        assert all("Plastipolis" in c.body["text"] for c in calls)


def test_api_keys_do_not_apply_to_slack_routes(start_slack: Any) -> None:
    with start_slack(api_keys=["an-api-key-0123456789"]) as slack:
        assert slack.client.get("/api/documents").status_code == 401
        body = json.dumps({"token": "legacy", "challenge": "c", "type": "url_verification"})
        response = slack.post("/slack/interactions", body, content_type="application/json")
        assert response.status_code == 200
        assert response.json() == {"challenge": "c"}


def test_a_question_that_cannot_be_answered_gets_the_reason(slack: SlackService) -> None:
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> " + "why " * 700,
            "ts": "1700000900.000100",
            "channel": "C0CHAN",
        },
        "Ev0TOOLONG",
    )
    (call,) = slack.fake.expect(1)
    assert "the limit is" in call.body["text"]
    assert not _buttons(_blocks(call))


def test_an_unexpected_failure_is_apologised_for(
    slack: SlackService, assistant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_ask(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(assistant, "ask", broken_ask)
    slack.command(LIST_QUESTION, slack.fake.response_url("broken"))
    (call,) = slack.fake.expect(1)
    assert call.path == "/response/broken"
    assert "Something went wrong (reference " in call.body["text"]
    assert "boom" not in call.dump()


def test_slacks_unsigned_certificate_check_is_answered_and_nothing_else(
    slack: SlackService,
) -> None:
    response = slack.post(
        "/slack/events",
        "ssl_check=1&token=legacy-token",
        content_type="application/x-www-form-urlencoded",
        signed=False,
    )
    assert response.status_code == 200
    assert response.content == b""
    assert slack.fake.expect(0, grace=0.5) == []
    assert slack.fake.calls == []
