"""The app manifest matches the bot's routes and events; the store's Slack additions."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.conversation import history
from assistant.conversation.history import ConversationStore
from assistant.errors import NotFoundError
from assistant.records import Answer, Citation

MANIFEST = Path(__file__).resolve().parents[2] / "slack-app-manifest.yml"


def test_manifest_points_slack_at_the_bot_routes() -> None:
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith("/slack/interactions")
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/ask"
    assert command["url"].endswith("/slack/events")
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
    }
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    # Slack's own limits on the texts.
    assert len(manifest["display_information"]["description"]) <= 140
    assert 175 <= len(manifest["display_information"]["long_description"]) <= 4000


def test_an_event_id_is_claimed_once_and_remembered_across_instances(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    assert store.claim_event("Ev1")
    assert not store.claim_event("Ev1")
    assert store.claim_event("Ev2")
    assert not ConversationStore(tmp_path).claim_event("Ev1")


def test_old_event_ids_are_forgotten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ConversationStore(tmp_path)
    assert store.claim_event("Ev1")
    monkeypatch.setattr(history, "SEEN_EVENTS_KEPT_S", -1)
    assert store.claim_event("Ev2")  # prunes Ev1 (older than "now + 1 s")
    monkeypatch.undo()
    assert store.claim_event("Ev1")


def test_exchange_returns_an_answer_with_its_question(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    citation = Citation(1, "a.txt", "A", "Intro", 0, 5, "Hello")
    answer = Answer(question="Hi?", text="Hello [1].", citations=(citation,), abstained=False)
    conversation = store.get_or_create("slack:T:C:1.2")
    store.add_exchange(conversation, "First?", answer)
    saved = store.add_exchange(conversation, "Hi?", answer)
    exchange = store.exchange(saved.answer_id)
    assert exchange.conversation_id == conversation
    assert exchange.question == "Hi?"
    assert exchange.answer.content == "Hello [1]."
    assert exchange.answer.citations == (citation,)
    with pytest.raises(NotFoundError):
        store.exchange("nope")
