"""The LLM answerer against a real OpenAI-compatible server: llama.cpp's, serving Gemma 3 270M.

The server is started for real (`python -m llama_cpp.server`, tests/llm_server.py), once for
the session, and the assistant talks to it as configured by ASSISTANT_ANSWERER=llm. The model
is a small base model: it does not follow the rules, it mostly echoes its prompt. So these
tests check the protocol and our handling, not the answers' quality: what the real server
streams, the [n] checks, the extractive fallback when no valid citation comes back, timeouts,
the server's own way of cutting a stream short, and the service's stream on top.

Two small corpora steer what the model's reply holds: in CITED each passage carries footnote
markers, in its title too, and the echoed source block brings them into the reply within its
first few dozen tokens; PLAIN has no bracket anywhere, so the reply cites nothing (the
server's Gemma chat format drops the system message, the only other place with a "[1]").
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.answering.citations import markers
from assistant.answering.llm import INTERRUPTED_NOTE, UNCITED_NOTE, LLMAnswerer
from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.pipeline import Assistant
from assistant.records import Answer
from assistant.service.app import create_app
from tests.conftest import assert_citations_exact
from tests.llm_server import LlamaServer, gguf_model, llama_server, require_llama_server
from tests.service.conftest import live_server, service_settings, sse_events

pytestmark = pytest.mark.llm_server

KEY = "sk-llama-test-5d0c2b9e7a41f3"
# Answers are capped short: each token costs tens of milliseconds on one core, and what is
# tested lies in the first sentences.
MAX_TOKENS = 64
QUESTION = "When and where was Bwcon founded?"

CITED = {
    "bwcon.txt": "Bwcon [1]\n\nBwcon was founded in 1997 in Stuttgart [2]. It has about 600 member companies [3].\n",
    "meta.txt": "MetaIndustry4 [1]\n\nMetaIndustry4 has 61 partners [2]. It was created in 2019 in Asturias [3].\n",
}
PLAIN = {
    "bwcon.txt": "Bwcon\n\nBwcon was founded in 1997 in Stuttgart. It has about 600 member companies.\n",
    "meta.txt": "MetaIndustry4\n\nMetaIndustry4 has 61 partners. It was created in 2019 in Asturias.\n",
}


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The real server, with an API key, for the whole session."""
    require_llama_server()
    with llama_server(gguf_model(tmp_path_factory.mktemp("llama")), api_key=KEY) as server:
        yield server


def _index(root: Path, documents: dict[str, str], embedder: Embedder) -> Settings:
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in documents.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index", data_dir=root / "data")
    Assistant(settings, embedder=embedder).index()
    return settings


@pytest.fixture(scope="session")
def cited(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Settings:
    """Settings of an index of CITED (extractive answerer)."""
    return _index(tmp_path_factory.mktemp("cited"), CITED, real_embedder)


@pytest.fixture(scope="session")
def plain(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Settings:
    """Settings of an index of PLAIN (extractive answerer)."""
    return _index(tmp_path_factory.mktemp("plain"), PLAIN, real_embedder)


def llm_assistant(base: Settings, server: LlamaServer, embedder: Embedder, **overrides: Any) -> Assistant:
    """An assistant over `base`'s index whose answerer is the LLM one, on the real server."""
    values: dict[str, Any] = {
        "answerer": "llm",
        "llm_base_url": server.url,
        "llm_model": server.model,
        "llm_api_key": KEY,
        "llm_timeout_s": 60,
    }
    values.update(overrides)
    settings = Settings(corpus_dir=base.corpus_dir, index_dir=base.index_dir, data_dir=base.data_dir, **values)
    assistant = Assistant(settings, embedder=embedder)
    answerer = assistant.engine.answerer
    assert isinstance(answerer, LLMAnswerer)
    # No ASSISTANT_* setting carries the cap: set it on the answerer the engine built.
    answerer.max_tokens = MAX_TOKENS
    return assistant


def collect(stream: Iterator[str | Answer]) -> tuple[list[str], Answer]:
    """The text pieces of a stream and its final Answer, checking that the Answer comes last."""
    pieces: list[str] = []
    final: Answer | None = None
    for item in stream:
        assert final is None, "nothing after the Answer"
        if isinstance(item, Answer):
            final = item
        else:
            assert item, "no empty pieces"
            pieces.append(item)
    assert final is not None
    return pieces, final


def assert_well_formed(assistant: Assistant, answer: Answer) -> None:
    """A cited answer: every marker names a citation, numbered by first use, quotes exact."""
    assert answer.text.strip() and not answer.abstained
    assert answer.citations, answer.text
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert set(markers(answer.text)) == {c.n for c in answer.citations}, answer.text
    first_use = list(dict.fromkeys(markers(answer.text)))
    assert first_use == sorted(first_use), answer.text
    assert_citations_exact(assistant, answer)
    assert answer.hits and answer.timings_ms["total"] >= answer.timings_ms["answer"]


def test_the_real_server_answers_and_streams_with_checked_citations(
    llama: LlamaServer, cited: Settings, real_embedder: Embedder
) -> None:
    assistant = llm_assistant(cited, llama, real_embedder)
    answer = assistant.ask(QUESTION)
    assert answer.answerer == "llm", answer.text
    assert_well_formed(assistant, answer)

    pieces, final = collect(assistant.stream(QUESTION))
    assert final.answerer == "llm", final.text
    # The server's deltas, checked as they came: several pieces, and together the final text.
    assert len(pieces) > 3 and "".join(pieces) == final.text
    assert_well_formed(assistant, final)


def test_an_answer_citing_no_passage_serves_the_extractive_answer(
    llama: LlamaServer, plain: Settings, real_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    expected = Assistant(plain, embedder=real_embedder).ask(QUESTION)
    assert expected.answerer == "extractive" and "1997" in expected.text
    assistant = llm_assistant(plain, llama, real_embedder)
    with caplog.at_level(logging.WARNING, logger="assistant"):
        answer = assistant.ask(QUESTION)
        pieces, final = collect(assistant.stream(QUESTION))
    assert caplog.text.count("the model's answer cites no source") == 2, caplog.text
    for served in (answer, final):
        assert served.answerer == "extractive"
        assert (served.text, served.citations) == (expected.text, expected.citations)
    # The stream showed the model's uncited text as it came, then the note and the fallback.
    streamed = "".join(pieces)
    assert streamed.endswith(UNCITED_NOTE + expected.text)
    assert streamed != UNCITED_NOTE + expected.text, "some of the model's text came first"


def test_the_answer_is_capped_at_max_tokens(
    llama: LlamaServer, plain: Settings, real_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    # Uncapped, the server writes until its context is full: minutes of a rambling echo here.
    assistant = llm_assistant(plain, llama, real_embedder)
    assert isinstance(assistant.engine.answerer, LLMAnswerer)
    assistant.engine.answerer.max_tokens = 6
    with caplog.at_level(logging.INFO, logger="assistant"):
        pieces, final = collect(assistant.stream(QUESTION))
    model_text = "".join(pieces).partition(UNCITED_NOTE)[0]
    assert model_text and len(model_text.split()) <= 6, model_text
    assert "cut short by the server's token limit" in caplog.text
    assert final.answerer == "extractive"


def test_a_timeout_serves_the_extractive_answer(
    llama: LlamaServer, cited: Settings, real_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    expected = Assistant(cited, embedder=real_embedder).ask(QUESTION)
    # No server can produce a token within a millisecond: the first read times out.
    assistant = llm_assistant(cited, llama, real_embedder, llm_timeout_s=0.001)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="assistant"):
        answer = assistant.ask(QUESTION)
        pieces, final = collect(assistant.stream(QUESTION))
    assert time.monotonic() - started < 5
    assert caplog.text.count("no response within 0.001 s") == 2, caplog.text
    for served in (answer, final):
        assert served.answerer == "extractive"
        assert (served.text, served.citations) == (expected.text, expected.citations)
    assert "".join(pieces) == expected.text  # nothing of the model's was sent


def test_a_wrong_key_is_refused_by_the_server_and_never_logged(
    llama: LlamaServer, cited: Settings, real_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-8e1f0a6b2c"
    assistant = llm_assistant(cited, llama, real_embedder, llm_api_key=wrong)
    with caplog.at_level(logging.DEBUG):
        answer = assistant.ask(QUESTION)
    assert answer.answerer == "extractive"
    assert "HTTP 401" in caplog.text
    assert wrong not in caplog.text and KEY not in caplog.text


def test_a_stream_the_server_cuts_for_another_request_ends_with_the_extractive_answer(
    llama: LlamaServer, cited: Settings, real_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    # llama-cpp-python serves one request at a time; when another one waits, it ends the
    # stream in progress with `[DONE]` and no finish_reason: an answer cut short.
    assistant = llm_assistant(cited, llama, real_embedder)
    # The same prompt as before is cached by the server, so the answer is not an echo of
    # the first test's: a question of its own.
    stream = assistant.stream("How many member companies does Bwcon have?")
    with caplog.at_level(logging.WARNING, logger="assistant"):
        first = next(stream)
        assert isinstance(first, str) and first
        other = threading.Thread(
            target=httpx.post,
            args=(f"{llama.url}/chat/completions",),
            kwargs={
                "json": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1},
                "headers": {"Authorization": f"Bearer {KEY}"},
                "timeout": 60,
            },
        )
        other.start()
        pieces, final = collect(stream)
        other.join(60)
    expected = Assistant(cited, embedder=real_embedder).ask("How many member companies does Bwcon have?")
    assert "the stream ended before its last chunk" in caplog.text, caplog.text
    assert final.answerer == "extractive" and final.text == expected.text
    assert (first + "".join(pieces)).endswith(INTERRUPTED_NOTE + expected.text)


def test_the_chat_service_streams_the_real_answer_with_its_citations(
    llama: LlamaServer, cited: Settings, real_embedder: Embedder, tmp_path: Path
) -> None:
    assistant = llm_assistant(cited, llama, real_embedder)
    with (
        live_server(create_app(assistant, service_settings(tmp_path, assistant.settings))) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        response = client.post("/api/chat/stream", json={"message": "Where was Bwcon founded?"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.text)
        names = [name for name, _ in events]
        assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"delta"}, names
        deltas = "".join(json.loads(data)["text"] for name, data in events if name == "delta")
        citations = json.loads(events[-2][1])["citations"]
        done = json.loads(events[-1][1])
        # The model's text, as it was streamed, is the answer stored and announced by `done`.
        assert done["answer"] == deltas and not done["abstained"]
        assert citations and {c["n"] for c in citations} == set(markers(deltas)), deltas
        for citation in citations:
            document = assistant.store.document(citation["doc"])
            assert document.text[citation["start"] : citation["end"]] == citation["quote"]
        stored = client.get(f"/api/conversations/{done['conversation_id']}").json()
        assert stored["turns"][-1]["content"] == deltas
