"""Long questions, odd characters and failing streams, on every HTTP route, in a live server.

A question under ASSISTANT_MAX_QUESTION_CHARS but past the embedder's window is answered; a
question made only of code points nobody reads gets the empty question's 422; a stream that
fails ends with an error event; and the server's log never holds the question's text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.pipeline import Assistant
from assistant.records import Answer
from assistant.service.app import create_app
from tests.conftest import FACT_QUESTION
from tests.fake_openai import FakeOpenAI, Reply
from tests.service.conftest import LiveServer, live_server, service_settings, sse_events

EMPTY = "the question is empty: ask something about the documents"

# A pasted paragraph, then the question: 1,800 characters, under the 2,000-character limit and
# about 340 MiniLM tokens, past the model's window of 256.
PASTED = (
    "I am preparing a briefing for our regional development agency. Over the past weeks I have "
    "read reports on how companies share workshops, how universities train apprentices, how "
    "local councils fund broadband in villages, and how harbours plan their logistics. Our "
    "board meets next month and wants a short, clear summary with sources it can check. "
)
LONG_QUESTION = PASTED * 5 + "So my question is: which partners hold a Gold label?"

# Code points that carry no text, alone or together: each is asked as a whole question.
NOTHING_READABLE = ["\ud800", "\x00\x00", "\u200b\u200c\u200d\ufeff\u2060", "\u200b \x00 \ud83d\n"]


def _raw_json(value: dict[str, Any]) -> bytes:
    """The body as a client escapes it: lone surrogates as "\\ud800" (httpx's json= cannot)."""
    return json.dumps(value).encode("ascii")


def _post(client: httpx.Client, route: str, question: str, **extra: Any) -> httpx.Response:
    """Asks `question` on /api/chat, /api/chat/stream or /v1/chat/completions, as raw JSON."""
    if route.startswith("/v1/"):
        body: dict[str, Any] = {"model": "assistant", "messages": [{"role": "user", "content": question}], **extra}
    else:
        body = {"message": question, **extra}
    return client.post(route, content=_raw_json(body), headers={"Content-Type": "application/json"})


ROUTES = [
    ("/api/chat", {}),
    ("/api/chat/stream", {}),
    ("/v1/chat/completions", {}),
    ("/v1/chat/completions", {"stream": True}),
]
ROUTE_IDS = ["chat", "chat-stream", "openai", "openai-stream"]


def _answer_text(route: str, extra: dict[str, Any], response: httpx.Response) -> str:
    """The answer a route sent, checking that its body is complete (no error, a proper end)."""
    assert response.status_code == 200, response.text
    if route == "/api/chat":
        return str(response.json()["answer"])
    if route == "/api/chat/stream":
        events = sse_events(response.text)
        names = [name for name, _ in events]
        assert names[-2:] == ["citations", "done"], events
        return str(json.loads(events[-1][1])["answer"])
    if not extra.get("stream"):
        return str(response.json()["choices"][0]["message"]["content"])
    lines = [data for _, data in sse_events(response.text)]
    assert lines[-1] == "[DONE]", lines
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all("error" not in chunk for chunk in chunks), chunks
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Everything the server logs during the test, from every logger, uvicorn's included.

    Call it inside the `live_server` block: uvicorn configures its own (non-propagating)
    loggers when it starts, so the capture is attached to them then.
    """
    caplog.set_level(logging.DEBUG)
    attached: list[logging.Logger] = []

    def read() -> str:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            log = logging.getLogger(name)
            if caplog.handler not in log.handlers:
                log.addHandler(caplog.handler)
                attached.append(log)
        out, err = capfd.readouterr()
        return caplog.text + out + err

    yield read
    for log in attached:
        log.removeHandler(caplog.handler)


def _assert_not_in_log(question: str, log: str) -> None:
    """No 30-character piece of the question appears in the log (the old leak was 60)."""
    pieces = {question[i : i + 30] for i in range(0, max(len(question) - 30, 1), 10)}
    leaked = [p for p in pieces if p in log]
    assert not leaked, f"the log holds the question: {leaked[:3]}"


@pytest.mark.parametrize(("route", "extra"), ROUTES, ids=ROUTE_IDS)
def test_a_question_longer_than_the_embedders_window_is_answered(
    server: LiveServer, assistant: Assistant, server_log: Callable[[], str], route: str, extra: dict[str, Any]
) -> None:
    assert len(LONG_QUESTION) <= assistant.settings.max_question_chars
    assert not assistant.embedder.fits(LONG_QUESTION)
    with server.client() as client:
        server_log()
        text = _answer_text(route, extra, _post(client, route, LONG_QUESTION, **extra))
    assert text.strip()
    # The service relays the library's answer to the same long question.
    assert text.startswith(assistant.ask(LONG_QUESTION).text)
    _assert_not_in_log(LONG_QUESTION, server_log())


def _failing_stream(after: int) -> Callable[..., Iterator[str | Answer]]:
    """An Assistant.stream that yields `after` pieces of text, then fails as a bug would."""

    def stream(question: str, *args: Any, **kwargs: Any) -> Iterator[str | Answer]:
        for n in range(after):
            yield f"piece {n} "
        raise RuntimeError("the answerer fell over")

    return stream


@pytest.mark.parametrize("after", [0, 2], ids=["before-any-text", "mid-answer"])
def test_a_chat_stream_that_fails_ends_with_an_error_event(
    server: LiveServer,
    assistant: Assistant,
    server_log: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    after: int,
) -> None:
    monkeypatch.setattr(assistant, "stream", _failing_stream(after))
    question = "Which partners hold a Gold label, and since when do they hold it?"
    with server.client() as client:
        server_log()
        response = _post(client, "/api/chat/stream", question)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["delta"] * after + ["error"]
    error = json.loads(events[-1][1])
    assert error["status"] == 500
    assert error["detail"].startswith("internal error (reference ")
    assert "fell over" not in error["detail"]  # the details go to the log only
    reference = error["detail"].split("reference ")[1].split(")")[0]
    log = server_log()
    assert reference in log and "the answerer fell over" in log
    _assert_not_in_log(question, log)


@pytest.mark.parametrize("after", [0, 2], ids=["before-any-text", "mid-answer"])
def test_an_openai_stream_that_fails_ends_with_an_error_then_done(
    server: LiveServer,
    assistant: Assistant,
    server_log: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    after: int,
) -> None:
    monkeypatch.setattr(assistant, "stream", _failing_stream(after))
    question = "Which partners hold a Gold label, and since when do they hold it?"
    with server.client() as client:
        server_log()
        response = _post(client, "/v1/chat/completions", question, stream=True)
    assert response.status_code == 200
    lines = [data for _, data in sse_events(response.text)]
    assert lines[-1] == "[DONE]"
    error = json.loads(lines[-2])["error"]
    assert error["code"] == 500
    assert error["message"].startswith("internal error (reference ")
    assert len(lines) == 1 + after + 2  # role chunk, text chunks, error, [DONE]
    _assert_not_in_log(question, server_log())


@pytest.mark.parametrize(("route", "extra"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("question", NOTHING_READABLE, ids=["surrogate", "nul", "zero-width", "mixed"])
def test_a_question_of_nothing_readable_is_refused_like_an_empty_one(
    server: LiveServer, question: str, route: str, extra: dict[str, Any]
) -> None:
    with server.client() as client:
        empty = _post(client, route, "", **extra)
        odd = _post(client, route, question, **extra)
    assert empty.status_code == 422
    assert empty.json()["detail"] == EMPTY
    assert (odd.status_code, odd.json()) == (empty.status_code, empty.json())


@pytest.mark.parametrize(("route", "extra"), ROUTES, ids=ROUTE_IDS)
def test_a_lone_surrogate_is_taken_out_and_the_question_answered(
    server: LiveServer, assistant: Assistant, route: str, extra: dict[str, Any]
) -> None:
    # Half an emoji, as a client that cut "... 😀" between its two UTF-16 halves sends it.
    question = f"{FACT_QUESTION} \ud83d"
    with server.client() as client:
        text = _answer_text(route, extra, _post(client, route, question, **extra))
    assert text.startswith(assistant.ask(FACT_QUESTION).text)


def test_the_conversation_stores_the_question_as_read(server: LiveServer) -> None:
    with server.client() as client:
        answered = _post(client, "/api/chat", "\ufeffHow many members\u200b does Bwcon have?\x00 \ud83d")
        assert answered.status_code == 200, answered.text
        stored = client.get(f"/api/conversations/{answered.json()['conversation_id']}")
    assert stored.json()["turns"][0]["content"] == FACT_QUESTION


def test_odd_characters_in_openai_history_are_read_like_the_question(assistant: Assistant, tmp_path: Path) -> None:
    # The earlier turns go to the LLM server as JSON: a lone surrogate there cannot even be
    # encoded, and the generated answer would be lost to the extractive fallback.
    messages = [
        {"role": "system", "content": "Answer briefly.\ud800"},
        {"role": "user", "content": "Tell me about Bwcon\x00 \udc00"},
        {"role": "assistant", "content": "Bwcon is a high tech \u200bcluster.\ud83d"},
        {"role": "user", "content": "When was it founded?"},
    ]
    with FakeOpenAI(api_key="sk-test", models=["small"]) as llm:
        llm.reply(Reply("Bwcon was founded in 1997 [1]."))
        settings = service_settings(
            tmp_path, assistant.settings, answerer="llm", llm_base_url=llm.url, llm_model="small", llm_api_key="sk-test"
        )
        app = create_app(Assistant(settings, embedder=assistant.embedder), settings)
        with live_server(app) as server, server.client() as client:
            response = client.post(
                "/v1/chat/completions",
                content=_raw_json({"model": "assistant", "messages": messages}),
                headers={"Content-Type": "application/json"},
            )
        (sent,) = llm.requests
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("Bwcon was founded in 1997 [1]")
    said = [(m["role"], m["content"]) for m in sent.messages if m["role"] != "system"]
    assert ("user", "Tell me about Bwcon") in said
    assert ("assistant", "Bwcon is a high tech cluster.") in said
