"""The OpenAI-compatible API's model is called "assistant", the name the README's example uses."""

from __future__ import annotations

from openai import OpenAI

from tests.conftest import FACT, FACT_QUESTION
from tests.service.conftest import LiveServer

QUESTION = [{"role": "user", "content": FACT_QUESTION}]


def test_the_readme_model_name_is_listed_and_answers(server: LiveServer) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        assert [m.id for m in client.models.list().data] == ["assistant"]
        assert client.models.retrieve("assistant").id == "assistant"
        completion = client.chat.completions.create(model="assistant", messages=QUESTION)
        assert completion.model == "assistant"
        assert FACT in (completion.choices[0].message.content or "")
        chunks = list(client.chat.completions.create(model="assistant", messages=QUESTION, stream=True))
        assert {chunk.model for chunk in chunks} == {"assistant"}
        assert FACT in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_former_model_name_still_works(server: LiveServer) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60) as client:
        assert client.models.retrieve("assistant-extractive").id == "assistant"
        completion = client.chat.completions.create(model="assistant-extractive", messages=QUESTION)
        assert FACT in (completion.choices[0].message.content or "")
