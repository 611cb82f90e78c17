"""Chat routes: a message (and a conversation id) -> an answer with citations, stored as turns.

    POST /api/chat                 {"message", "conversation_id": null | id} -> ChatResponse
    POST /api/chat/stream          the same answer as Server-Sent Events (see `chat_stream`)
    GET  /api/conversations/{id}   the stored turns
    POST /api/feedback             {"answer_id", "rating": "up" | "down", "comment"}

A conversation id makes the message a follow-up: the earlier turns go to `Assistant.ask` as
history. Feedback names an answer by the `answer_id` that /api/chat (or the stream's `done`
event) returned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from assistant.conversation.history import SavedAnswer
from assistant.errors import AssistantError
from assistant.records import Answer, Turn
from assistant.service.context import Context, ServiceContext, finished, log_answer
from assistant.service.handlers import status_for, unexpected_error_detail
from assistant.service.models import (
    ID_PATTERN,
    ChatRequest,
    ChatResponse,
    ConversationOut,
    FeedbackRequest,
    FeedbackResponse,
    TurnOut,
    citations_out,
)
from assistant.service.security import require_api_key

router = APIRouter(prefix="/api", tags=["chat"], dependencies=[Depends(require_api_key)])

# Follow-up rewriting only needs the recent turns; this bounds the work for endless threads.
MAX_HISTORY_TURNS = 40


@dataclass(frozen=True)
class ChatInput:
    """A checked question with the history of its conversation (empty for a new one)."""

    question: str
    conversation_id: str | None
    history: tuple[Turn, ...]


def chat_input(body: ChatRequest, context: Context) -> ChatInput:
    """Turns a chat request into a checked question and its history, before any answering.

    Runs as a dependency so that a bad question (422) or an unknown conversation (404) is an
    HTTP error even for the stream, whose status is sent before its first event.
    """
    question = context.assistant.check_question(body.message)
    history: list[Turn] = []
    if body.conversation_id is not None:
        history = context.conversations.history(body.conversation_id)
    return ChatInput(question, body.conversation_id, tuple(history[-MAX_HISTORY_TURNS:]))


Input = Annotated[ChatInput, Depends(chat_input)]


def _save(context: ServiceContext, asked: ChatInput, answer: Answer) -> SavedAnswer:
    # A new conversation is created only now, once there is an answer to put in it.
    return context.conversations.add_exchange(asked.conversation_id, asked.question, answer)


@router.post("/chat", response_model=ChatResponse, response_model_exclude_none=True)
def chat(asked: Input, context: Context) -> ChatResponse:
    """Answers a message, as a follow-up when a conversation id is given."""
    started = time.perf_counter()
    answer = context.assistant.ask(asked.question, asked.history)
    saved = _save(context, asked, answer)
    log_answer("chat", asked.question, answer, started)
    return ChatResponse(
        conversation_id=saved.conversation_id,
        answer_id=saved.answer_id,
        turn=saved.turn,
        answer=answer.text,
        abstained=answer.abstained,
        citations=citations_out(answer.citations),
    )


STREAM_EVENTS = """Events, in this order (each `data` is JSON):

- `delta`: `{"text": "..."}`, a piece of the answer text; concatenated they are the answer.
- `citations`: `{"citations": [...]}`, the citations the [n] markers point at.
- `done`: `{"conversation_id", "answer_id", "turn", "abstained", "answer"}`; the answer is
  stored. `answer` is the final text, authoritative: it differs from the deltas only when a
  generated answer broke off midway and the answer from the documents replaced it.
- `error`: `{"status", "detail"}` instead of `citations` and `done` when answering fails
  after the stream started, whatever the failure; nothing is stored.
"""


@router.post(
    "/chat/stream",
    response_class=EventSourceResponse,
    description="Answers like POST /api/chat, as Server-Sent Events.\n\n" + STREAM_EVENTS,
)
def chat_stream(asked: Input, context: Context, request: Request) -> Iterator[ServerSentEvent]:
    """Streams an answer as SSE events: `delta`*, `citations`, `done` (or `error`)."""
    started = time.perf_counter()
    answer: Answer | None = None
    try:
        for piece in context.assistant.stream(asked.question, asked.history):
            if isinstance(piece, Answer):
                answer = piece
            else:
                yield ServerSentEvent(event="delta", data={"text": piece})
        answer = finished(answer)
        saved = _save(context, asked, answer)
    except AssistantError as exc:
        yield ServerSentEvent(event="error", data={"status": status_for(exc), "detail": str(exc)})
        return
    except Exception as exc:  # noqa: BLE001
        # The 200 and the headers are sent: no exception handler can answer any more, and a
        # stream that just stops reads as an empty answer. Say it failed, with a reference.
        detail = unexpected_error_detail(exc, request.method, request.url.path)
        yield ServerSentEvent(event="error", data={"status": 500, "detail": detail})
        return
    log_answer("chat_stream", asked.question, answer, started)
    yield ServerSentEvent(event="citations", data={"citations": [c.to_dict() for c in answer.citations]})
    yield ServerSentEvent(
        event="done",
        data={
            "conversation_id": saved.conversation_id,
            "answer_id": saved.answer_id,
            "turn": saved.turn,
            "abstained": answer.abstained,
            "answer": answer.text,
        },
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationOut,
    response_model_exclude_none=True,
)
def conversation(conversation_id: Annotated[str, Path(pattern=ID_PATTERN)], context: Context) -> ConversationOut:
    """Returns a conversation's turns: role, content, citations, abstained, created_at."""
    stored = context.conversations.conversation(conversation_id)
    return ConversationOut(
        id=stored.id,
        created_at=stored.created_at,
        turns=[
            TurnOut(
                index=t.n,
                role=t.role,
                content=t.content,
                citations=citations_out(t.citations),
                abstained=t.abstained,
                answer_id=t.answer_id,
                created_at=t.created_at,
            )
            for t in stored.turns
        ],
    )


@router.post("/feedback", response_model=FeedbackResponse, status_code=201)
def feedback(body: FeedbackRequest, context: Context) -> FeedbackResponse:
    """Stores a thumbs up or down on an answer, with the exchange as it was."""
    stored = context.conversations.add_feedback(body.answer_id, body.rating, body.comment, source="api")
    return FeedbackResponse(
        id=stored.id,
        answer_id=stored.answer_id,
        conversation_id=stored.conversation_id,
        rating=stored.rating,
    )
