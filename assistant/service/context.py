"""A request -> the ServiceContext its route needs; an answer -> one request log line."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from assistant.config import Settings
from assistant.conversation.history import ConversationStore
from assistant.errors import AssistantError
from assistant.pipeline import Assistant
from assistant.records import Answer
from assistant.service.reindex import Reindexer

logger = logging.getLogger("assistant.service")

# The model name the OpenAI-compatible API lists and answers as, whichever answerer runs (the
# README's examples use it). Earlier versions said "assistant-<answerer>": still accepted.
MODEL_ID = "assistant"


@dataclass(frozen=True)
class ServiceContext:
    """What the routes share: the assistant, the settings, the conversation store, the reindexer."""

    assistant: Assistant
    settings: Settings
    conversations: ConversationStore
    reindexer: Reindexer
    started_at: float = field(default_factory=time.time)

    @property
    def model_id(self) -> str:
        """The model name the OpenAI-compatible API lists and answers as."""
        return MODEL_ID

    def is_model(self, name: str) -> bool:
        """Tells whether `name` is this service's model: "assistant", or its former name."""
        return name in (MODEL_ID, f"{MODEL_ID}-{self.assistant.settings.answerer}")


def get_context(request: Request) -> ServiceContext:
    """Returns the context `create_app` stored on the application."""
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(get_context)]


def log_answer(route: str, question: str, answer: Answer, started: float) -> None:
    """Logs one line per answer: sizes, latency and outcome, never the question's text."""
    logger.info(
        "answer route=%s question_chars=%d latency_ms=%.1f abstained=%s citations=%d",
        route,
        len(question),
        (time.perf_counter() - started) * 1000,
        answer.abstained,
        len(answer.citations),
    )


def finished(answer: Answer | None) -> Answer:
    """Returns the Answer that ends `Assistant.stream`, or raises if the stream had none."""
    if answer is None:
        raise AssistantError("the answer stream ended without an answer")
    return answer
