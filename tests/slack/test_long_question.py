"""The Slack bot answers a long pasted question, and takes a question of invisible characters for none."""

from __future__ import annotations

import json

from assistant.pipeline import Assistant
from assistant.service.slack import usage
from tests.service.test_long_and_odd_questions import LONG_QUESTION
from tests.slack.conftest import BOT_USER, POST_MESSAGE, SlackService


def test_a_mention_with_a_long_pasted_question_is_answered(slack: SlackService, assistant: Assistant) -> None:
    ts = "1700001000.000100"
    slack.event(
        {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER}> {LONG_QUESTION}",
            "ts": ts,
            "channel": "C0CHAN",
        },
        "Ev0LONG",
    )
    (call,) = slack.fake.expect(1)
    assert call.path == POST_MESSAGE
    assert call.body["thread_ts"] == ts
    assert "Something went wrong" not in call.body["text"]
    # The thread gets the answer the library gives to the same question, stored with it.
    blocks = call.body["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    (answer_id,) = {e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
    exchange = slack.store.exchange(answer_id)
    assert exchange.question == LONG_QUESTION
    assert exchange.answer.content == assistant.ask(LONG_QUESTION).text


def test_a_slash_command_of_zero_width_characters_gets_the_usage_hint(slack: SlackService) -> None:
    # As an empty /ask: how to use the command at once, and no answer (nor error) afterwards.
    response = slack.command("\u200b\u2060\ufeff", slack.fake.response_url("invisible"))
    assert response.status_code == 200
    assert response.json()["text"] == usage([])
    assert slack.fake.expect(0) == []
