"""/api/chat, its SSE stream, stored conversations and feedback, over HTTP, on the real index."""

from __future__ import annotations

import json
from pathlib import Path

from assistant import evaluation
from assistant.conversation.history import ConversationStore
from assistant.pipeline import Assistant
from assistant.service.app import create_app
from tests.conftest import (
    LIST_ITEMS,
    LIST_QUESTION,
    OUTSIDE_QUESTION,
    PRONOUN_FACT,
    PRONOUN_FOLLOW_UP,
    SUBJECT_QUESTION,
    WHICH_ONE,
    WHICH_ONE_FOLLOW_UP,
)
from tests.service.conftest import LiveServer, live_server, service_settings, sse_events


def _ask(client, message: str, conversation_id: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/api/chat", json={"message": message, "conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_answers_with_citations_that_match_the_documents(server: LiveServer, assistant: Assistant) -> None:
    with server.client() as client:
        body = _ask(client, LIST_QUESTION)
    assert set(body) == {"conversation_id", "answer_id", "turn", "answer", "abstained", "citations"}
    assert not body["abstained"]
    assert LIST_ITEMS[0] in body["answer"]
    # The service relays the library's answer unchanged.
    assert body["answer"] == assistant.ask(LIST_QUESTION).text
    assert body["citations"]
    for citation in body["citations"]:
        assert set(citation) >= {"n", "doc", "title", "section", "start", "end", "quote"}
        text = assistant.store.document(citation["doc"]).text
        assert text[citation["start"] : citation["end"]] == citation["quote"]
        assert f"[{citation['n']}]" in body["answer"]


def test_follow_up_is_answered_in_context_and_survives_a_restart(assistant: Assistant, tmp_path: Path) -> None:
    settings = service_settings(tmp_path, assistant.settings)
    with live_server(create_app(assistant, settings)) as server, server.client() as client:
        first = _ask(client, LIST_QUESTION)
        conversation_id = first["conversation_id"]
        second = _ask(client, WHICH_ONE_FOLLOW_UP, conversation_id)
        assert second["conversation_id"] == conversation_id
        assert WHICH_ONE in second["answer"]
        assert any(WHICH_ONE in c["section"] or WHICH_ONE in c["quote"] for c in second["citations"])

    # A new app instance on the same data folder: the conversation is still there.
    with live_server(create_app(assistant, settings)) as server, server.client() as client:
        stored = client.get(f"/api/conversations/{conversation_id}")
        assert stored.status_code == 200
        turns = stored.json()["turns"]
        assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
        assert turns[0]["content"] == LIST_QUESTION
        assert turns[3]["citations"] and not turns[3]["abstained"]
        assert all(t["created_at"] for t in turns)

        third = _ask(client, SUBJECT_QUESTION)
        fourth = _ask(client, PRONOUN_FOLLOW_UP, third["conversation_id"])
        assert PRONOUN_FACT in fourth["answer"]
        assert fourth["citations"]


def test_unknown_conversation_is_a_404_with_a_clear_detail(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/api/chat", json={"message": "How many members?", "conversation_id": "nope"})
        assert response.status_code == 404
        assert "no conversation 'nope'" in response.json()["detail"]
        assert client.get("/api/conversations/nope").status_code == 404


def test_unanswerable_question_abstains(server: LiveServer) -> None:
    with server.client() as client:
        body = _ask(client, OUTSIDE_QUESTION)
    assert body["abstained"]
    assert body["citations"] == []


def test_stream_sends_deltas_then_citations_then_done(server: LiveServer) -> None:
    with server.client() as client:
        with client.stream("POST", "/api/chat/stream", json={"message": LIST_QUESTION}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response.read().decode())
        names = [name for name, _ in events]
        assert names[-2:] == ["citations", "done"]
        assert set(names[:-2]) == {"delta"} and len(names) > 3
        text = "".join(json.loads(data)["text"] for name, data in events if name == "delta")
        citations = json.loads(events[-2][1])["citations"]
        done = json.loads(events[-1][1])
        assert LIST_ITEMS[0] in text and citations
        assert all(f"[{c['n']}]" in text for c in citations)
        assert done["abstained"] is False
        assert done["answer"] == text  # the final text, the same as the deltas here

        # The streamed answer is stored like any other, and a follow-up can continue it.
        stored = client.get(f"/api/conversations/{done['conversation_id']}").json()
        assert stored["turns"][1]["content"] == text
        assert stored["turns"][1]["answer_id"] == done["answer_id"]
        follow = _ask(client, WHICH_ONE_FOLLOW_UP, done["conversation_id"])
        assert WHICH_ONE in follow["answer"]


def test_stream_refuses_bad_input_before_streaming(server: LiveServer) -> None:
    with server.client() as client:
        empty = client.post("/api/chat/stream", json={"message": "  "})
        assert empty.status_code == 422
        assert "empty" in empty.json()["detail"]
        unknown = client.post("/api/chat/stream", json={"message": "Hi?", "conversation_id": "missing"})
        assert unknown.status_code == 404


def test_feedback_is_stored_with_the_exchange_and_exported_as_gold(server: LiveServer, tmp_path: Path) -> None:
    with server.client() as client:
        first = _ask(client, SUBJECT_QUESTION)
        second = _ask(client, PRONOUN_FOLLOW_UP, first["conversation_id"])
        up = client.post("/api/feedback", json={"answer_id": first["answer_id"], "rating": "up"})
        down = client.post(
            "/api/feedback",
            json={
                "answer_id": second["answer_id"],
                "rating": "down",
                "comment": "should say since when",
            },
        )
        assert up.status_code == 201 and down.status_code == 201
        assert down.json()["conversation_id"] == first["conversation_id"]
        unknown = client.post("/api/feedback", json={"answer_id": "nope", "rating": "down"})
        assert unknown.status_code == 404
        bad = client.post("/api/feedback", json={"answer_id": first["answer_id"], "rating": "meh"})
        assert bad.status_code == 422 and "rating" in bad.json()["detail"]

    store = ConversationStore(tmp_path / "data")
    stored = store.feedback("down")
    assert len(stored) == 1
    assert stored[0].question == PRONOUN_FOLLOW_UP
    assert stored[0].answer == second["answer"]
    assert [t.content for t in stored[0].history] == [
        SUBJECT_QUESTION,
        first["answer"],
    ]

    out = tmp_path / "candidates.jsonl"
    assert store.export_feedback(out) == 1
    line = json.loads(out.read_text(encoding="utf-8"))
    assert line["kind"] == "followup"
    assert line["question"] == PRONOUN_FOLLOW_UP
    assert line["answer"] == second["answer"]
    assert line["history"][0] == {
        "role": "user",
        "content": SUBJECT_QUESTION,
    }
    assert line["key_facts"] == [] and line["sources"] == []
    assert line["comment"] == "should say since when"
    # The gold loader of the eval runner reads the file as it is.
    assert evaluation.load_gold(out)[0].question == line["question"]
