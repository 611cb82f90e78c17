"""The OpenAI-compatible API, driven by the official openai SDK pointed at the live server."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from openai import OpenAI

from assistant.pipeline import Assistant
from tests.conftest import FACT, FACT_QUESTION, LIST_QUESTION, WHICH_ONE, WHICH_ONE_FOLLOW_UP
from tests.service.conftest import API_KEY, LiveServer

# Where people reach the service: behind a proxy that serves it under /help.
PUBLIC_URL = "https://intranet.example.org/help"
LINK_SECRET = "a-link-secret-0123456789abcdef"


def _client(server: LiveServer, api_key: str = "unused") -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=60)


def _assert_source_links_open(server: LiveServer, content: str, citations: list[dict[str, Any]]) -> None:
    """Opens the link of each source in an answer's Sources list, as a person would, and checks its page."""
    _, _, sources = content.partition("\n\nSources:\n")
    links = [line.rsplit(" ", 1)[-1] for line in sources.splitlines()]
    assert citations and len(links) == len(citations)
    # No Authorization header: the person reading the answer in a chat client has no API key.
    with server.client() as browser:
        for link, citation in zip(links, citations, strict=True):
            assert link.startswith(f"{PUBLIC_URL}/source/"), link
            url = urlsplit(link)
            page = browser.get(f"{url.path.removeprefix('/help')}?{url.query}")  # the proxy drops /help
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert f"<mark>{html.escape(citation['quote'])}</mark>" in page.text


def test_sdk_gets_an_answer_with_citations(server: LiveServer, assistant: Assistant) -> None:
    with _client(server) as client:
        models = client.models.list()
        assert [m.id for m in models.data] == ["assistant"]
        completion = client.chat.completions.create(
            model="assistant-extractive",
            messages=[
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": FACT_QUESTION},
            ],
        )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert message.role == "assistant"
    assert FACT in message.content
    answer, _, sources = message.content.partition("\n\nSources:\n")
    assert "[1]" in answer and sources.startswith("[1] ")
    citations = message.model_extra["citations"]
    assert citations == completion.model_extra["citations"]
    assert len(sources.splitlines()) == len(citations)
    for citation in citations:
        text = assistant.store.document(citation["doc"]).text
        assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_sdk_stream_ends_with_citations_and_done(server: LiveServer) -> None:
    with _client(server) as client:
        stream = client.chat.completions.create(
            model="anything",
            messages=[{"role": "user", "content": FACT_QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)  # the SDK stops at `data: [DONE]`
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert FACT in text and "\n\nSources:\n[1] " in text
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(final) == 1
    assert final[0].model_extra["citations"] and final[0].model_extra["abstained"] is False
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_sdk_follow_up_takes_earlier_messages_as_history(server: LiveServer) -> None:
    with _client(server) as client:
        first = client.chat.completions.create(
            model="assistant-extractive",
            messages=[{"role": "user", "content": LIST_QUESTION}],
        )
        follow = client.chat.completions.create(
            model="assistant-extractive",
            messages=[
                {"role": "user", "content": LIST_QUESTION},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": [{"type": "text", "text": WHICH_ONE_FOLLOW_UP}]},
            ],
        )
    assert WHICH_ONE in follow.choices[0].message.content


def test_sdk_abstains_without_sources(server: LiveServer) -> None:
    with _client(server) as client:
        completion = client.chat.completions.create(
            model="assistant-extractive",
            messages=[{"role": "user", "content": "What is the capital of Peru?"}],
        )
    assert "Sources:" not in completion.choices[0].message.content
    assert completion.model_extra["abstained"] is True


def test_sdk_sees_errors_with_their_message(start_server) -> None:  # type: ignore[no-untyped-def]
    with start_server(api_keys=[API_KEY]) as server:
        with (
            _client(server, api_key="wrong-key") as client,
            pytest.raises(openai.AuthenticationError) as denied,
        ):
            client.models.list()
        assert "invalid API key" in str(denied.value)
        with _client(server, api_key=API_KEY) as client:
            with pytest.raises(openai.UnprocessableEntityError) as empty:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": " "}])
            assert "empty" in empty.value.message
            with pytest.raises(openai.UnprocessableEntityError):
                client.chat.completions.create(model="m", messages=[{"role": "system", "content": "Hello"}])
            with pytest.raises(openai.NotFoundError):
                client.models.retrieve("gpt-4o")
            assert client.models.retrieve("assistant").id == "assistant"


def test_sources_link_to_readable_pages_that_open_without_an_api_key(start_server) -> None:  # type: ignore[no-untyped-def]
    # With API keys set, a link to /api/documents would answer the reader with 401.
    question = [{"role": "user", "content": LIST_QUESTION}]
    with start_server(api_keys=[API_KEY], public_url=PUBLIC_URL, link_secret=LINK_SECRET) as server:
        with _client(server, api_key=API_KEY) as client:
            completion = client.chat.completions.create(model="assistant", messages=question)
            chunks = list(client.chat.completions.create(model="assistant", messages=question, stream=True))
        message = completion.choices[0].message
        _assert_source_links_open(server, message.content, message.model_extra["citations"])
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
        _assert_source_links_open(server, streamed, final.model_extra["citations"])
