"""The LLM answerer's rules for what it serves, checked exactly against the scripted server.

An answer that cites no passage is replaced by the fallback's, and the request caps the
answer's length. tests/answering/test_llm_real_server.py meets both on a real server; here the
replies are scripted, so every case is certain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from assistant.answering.extractive import ExtractiveAnswerer
from assistant.answering.llm import INTERRUPTED_NOTE, UNCITED_NOTE, LLMAnswerer
from assistant.records import Answer
from tests.answering.test_llm import HITS, KEY, MODEL, QUESTION, extractive
from tests.fake_openai import FakeOpenAI, Reply


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, models=[MODEL]) as server:
        yield server


def answerer(fake: FakeOpenAI, **kwargs: Any) -> LLMAnswerer:
    return LLMAnswerer(MODEL, ExtractiveAnswerer(), base_url=fake.url, api_key=KEY, timeout_s=5.0, **kwargs)


def streamed(stream: Iterator[str | Answer]) -> tuple[str, Answer]:
    items = list(stream)
    final = items.pop()
    assert isinstance(final, Answer) and all(isinstance(item, str) for item in items)
    return "".join(str(item) for item in items), final


@pytest.mark.parametrize(
    "reply",
    [
        "Bwcon was founded in 1997 in Stuttgart.",  # no marker at all
        "Bwcon was founded in 1997 [7], in Stuttgart [0].",  # only markers naming no passage
        "Bwcon was founded in 1997 (see the sources).",
    ],
)
def test_an_answer_citing_no_passage_serves_the_extractive_answer(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture, reply: str
) -> None:
    fake.reply(Reply(reply), Reply(reply))
    llm = answerer(fake)
    expected = extractive(QUESTION)
    with caplog.at_level(logging.WARNING, logger="assistant"):
        answer = llm.answer(QUESTION, HITS)
        text, final = streamed(llm.stream(QUESTION, HITS))
    assert caplog.text.count("the model's answer cites no source") == 2
    for served in (answer, final):
        assert served.answerer == "extractive"
        assert (served.text, served.citations) == (expected.text, expected.citations)
    # The stream had shown the uncited text: the note says why the documents' answer follows.
    assert text.startswith("Bwcon was founded in 1997")
    assert text.endswith(UNCITED_NOTE + expected.text) and INTERRUPTED_NOTE not in text


def test_one_valid_citation_is_enough_to_keep_the_answer(fake: FakeOpenAI) -> None:
    fake.reply(Reply("Bwcon was founded in 1997 [1]. It is old [9]. Its office is near the university."))
    answer = answerer(fake).answer(QUESTION, HITS)
    assert answer.answerer == "llm"
    assert answer.text == "Bwcon was founded in 1997 [1]. It is old. Its office is near the university."


def test_the_request_caps_the_answer_at_max_tokens(fake: FakeOpenAI) -> None:
    fake.reply(*[Reply("Bwcon was founded in 1997 [1].")] * 3)
    answerer(fake).answer(QUESTION, HITS)
    streamed(answerer(fake, max_tokens=64).stream(QUESTION, HITS))
    answerer(fake, max_tokens=None).answer(QUESTION, HITS)
    bodies = [request.body for request in fake.completions]
    assert [body.get("max_tokens") for body in bodies] == [512, 64, None]
    assert "max_tokens" not in bodies[2]
    with pytest.raises(ValueError, match="max_tokens"):
        answerer(fake, max_tokens=0)
