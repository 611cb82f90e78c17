"""OpenAI chat completion requests -> answers, so that existing OpenAI clients work unchanged.

    POST /v1/chat/completions   {"model", "messages": [...], "stream": bool}
    GET  /v1/models             the one model: "assistant" (its former name "assistant-extractive"
                                or "assistant-llm" is still accepted)

The last user message is the question; the user and assistant messages before it are the
history (system messages are ignored). Any model name is accepted. Citations travel twice:
in the message text, as [n] markers followed by a "Sources:" list, and as structured
`citations` on the response, on its message, and on the final stream chunk. With
ASSISTANT_PUBLIC_URL set, each source in the list links to its readable source page, signed like
the Slack bot's links (links.py), so that a person can open it without an API key. Streams are
`data: {chunk}` lines ending with `data: [DONE]`; an error after the stream started, whatever
it is, is sent as `data: {"error": {...}}` (which the OpenAI SDK raises as APIError) before
`[DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, format_sse_event

from assistant.errors import AssistantError, NotFoundError, QuestionError
from assistant.ingest.tokens import count_tokens
from assistant.records import Answer, Citation, Turn
from assistant.service.context import Context, ServiceContext, finished, log_answer
from assistant.service.handlers import error_body, status_for, unexpected_error_detail
from assistant.service.links import LinkSigner, source_url
from assistant.service.models import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    ChunkDelta,
    CompletionChoice,
    CompletionMessage,
    ModelList,
    ModelOut,
    OpenAIMessage,
    Usage,
    citations_out,
)
from assistant.service.security import require_api_key
from assistant.text import visible_text

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])

SOURCES_HEADING = "Sources:"
_DONE = format_sse_event(data_str="[DONE]")


@dataclass(frozen=True)
class CompletionInput:
    """The question and history read from OpenAI messages."""

    question: str
    history: tuple[Turn, ...]


def completion_input(messages: Sequence[OpenAIMessage], context: ServiceContext) -> CompletionInput:
    """Takes the last user message as the question and the dialogue before it as history."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise QuestionError("no user message: the last user message is the question")
    question = context.assistant.check_question(messages[last_user].text())
    # Earlier turns are read like the question: a lone surrogate there would fail the tokenizer.
    history = tuple(
        Turn(m.role, visible_text(_without_sources(m.text()) if m.role == "assistant" else m.text()))
        for m in messages[:last_user]
        if m.role in ("user", "assistant")
    )
    return CompletionInput(question, history)


def _without_sources(text: str) -> str:
    # Our own earlier answers come back with their Sources list: keep the answer only.
    head, _, _ = text.partition(f"\n\n{SOURCES_HEADING}\n")
    return head


def sources_text(citations: Sequence[Citation], public_url: str | None, signer: LinkSigner | None = None) -> str:
    """Renders the citations as the "Sources:" list that follows an answer's text.

    With a `public_url` each source ends in a link to its readable source page, signed by
    `signer`: the list is read by people in a chat client, who hold no API key for /api.
    """
    lines = [SOURCES_HEADING]
    for c in citations:
        where = f" › {c.section}" if c.section else ""
        page = f", page {c.page}" if c.page else ""
        line = f"[{c.n}] {c.title}{where}{page} ({c.doc}:{c.start}-{c.end})"
        if public_url:
            line += " " + source_url(public_url, c.doc, c.start, c.end, signer)
        lines.append(line)
    return "\n".join(lines)


def _sources(citations: Sequence[Citation], context: ServiceContext) -> str:
    settings = context.settings
    return sources_text(citations, settings.public_url, LinkSigner.from_settings(settings))


def _usage(request: CompletionInput, content: str) -> Usage:
    prompt = count_tokens(request.question) + sum(count_tokens(t.content) for t in request.history)
    completion = count_tokens(content)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@router.post(
    "/chat/completions",
    response_model=None,
    responses={200: {"model": ChatCompletion, "description": "A completion, or an SSE stream of chunks."}},
)
def chat_completions(
    body: ChatCompletionRequest, context: Context, http: Request
) -> dict[str, Any] | EventSourceResponse:
    """Answers the last user message, as one completion or as a stream of chunks."""
    started = time.perf_counter()
    request = completion_input(body.messages, context)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _stream(context, request, completion_id, created, include_usage, started, http)
        return EventSourceResponse(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    answer = context.assistant.ask(request.question, request.history)
    log_answer("openai", request.question, answer, started)
    content = answer.text
    if answer.citations:
        content += "\n\n" + _sources(answer.citations, context)
    citations = citations_out(answer.citations)
    completion = ChatCompletion(
        id=completion_id,
        created=created,
        model=context.model_id,
        choices=[CompletionChoice(message=CompletionMessage(content=content, citations=citations))],
        usage=_usage(request, content),
        citations=citations,
        abstained=answer.abstained,
    )
    return completion.model_dump(exclude_none=True)


def _stream(
    context: ServiceContext,
    request: CompletionInput,
    completion_id: str,
    created: int,
    include_usage: bool,
    started: float,
    http: Request,
) -> Iterator[bytes]:
    """Yields the answer as OpenAI `chat.completion.chunk` SSE lines, then `[DONE]`."""

    def chunk(**fields: Any) -> bytes:
        data = ChatCompletionChunk(id=completion_id, created=created, model=context.model_id, **fields)
        return format_sse_event(data_str=data.model_dump_json(exclude_none=True))

    yield chunk(choices=[ChunkChoice(delta=ChunkDelta(role="assistant", content=""))])
    content: list[str] = []
    answer: Answer | None = None
    try:
        for piece in context.assistant.stream(request.question, request.history):
            if isinstance(piece, Answer):
                answer = piece
            else:
                content.append(piece)
                yield chunk(choices=[ChunkChoice(delta=ChunkDelta(content=piece))])
        answer = finished(answer)
    except AssistantError as exc:
        error = error_body("/v1/", status_for(exc), str(exc))
        yield format_sse_event(data_str=json.dumps(error))
        yield _DONE
        return
    except Exception as exc:  # noqa: BLE001
        # The 200 is sent: no exception handler can answer any more. Say it failed, with a reference.
        detail = unexpected_error_detail(exc, http.method, http.url.path)
        yield format_sse_event(data_str=json.dumps(error_body("/v1/", 500, detail)))
        yield _DONE
        return
    log_answer("openai_stream", request.question, answer, started)
    if answer.citations:
        sources = "\n\n" + _sources(answer.citations, context)
        content.append(sources)
        yield chunk(choices=[ChunkChoice(delta=ChunkDelta(content=sources))])
    yield chunk(
        choices=[ChunkChoice(delta=ChunkDelta(), finish_reason="stop")],
        citations=citations_out(answer.citations),
        abstained=answer.abstained,
    )
    if include_usage:
        yield chunk(choices=[], usage=_usage(request, "".join(content)))
    yield _DONE


@router.get("/models", response_model=ModelList)
def models(context: Context) -> ModelList:
    """Lists the one model this service answers as."""
    return ModelList(data=[ModelOut(id=context.model_id, created=int(context.started_at))])


@router.get("/models/{model}", response_model=ModelOut)
def model(model: str, context: Context) -> ModelOut:
    """Describes the model, or 404 for another name."""
    if not context.is_model(model):
        raise NotFoundError(f"no model {model!r}: this service answers as {context.model_id!r}")
    return ModelOut(id=context.model_id, created=int(context.started_at))
