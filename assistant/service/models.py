"""HTTP schemas: JSON bodies <-> pydantic models (the routers translate them to core records)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.records import Citation

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


class CitationOut(BaseModel):
    """A numbered source of an answer: `Citation.to_dict()` (`page` only for PDFs)."""

    n: int
    doc: str
    title: str
    section: str
    start: int
    end: int
    quote: str
    page: int | None = None


# -- /api/chat --------------------------------------------------------------------------


class ChatRequest(BaseModel):
    """A question, new or a follow-up of the conversation `conversation_id`."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="The question (at most ASSISTANT_MAX_QUESTION_CHARS characters).")
    conversation_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Continue this conversation; null starts a new one."
    )


class ChatResponse(BaseModel):
    """An answer with its citations, and the ids to continue the conversation or rate the answer."""

    conversation_id: str
    answer_id: str = Field(description="Identifies this answer for POST /api/feedback.")
    turn: int = Field(description="Index of this answer among the conversation's turns.")
    answer: str = Field(description="The answer; [n] markers point at citations.")
    abstained: bool = Field(description="True when the documents do not say.")
    citations: list[CitationOut]


class TurnOut(BaseModel):
    """One message of a conversation."""

    index: int
    role: Literal["user", "assistant"]
    content: str
    citations: list[CitationOut]
    abstained: bool
    answer_id: str | None = None
    created_at: str


class ConversationOut(BaseModel):
    """A stored conversation and its turns in order."""

    id: str
    created_at: str
    turns: list[TurnOut]


class FeedbackRequest(BaseModel):
    """A thumbs up or down on one answer, identified by the `answer_id` /api/chat returned."""

    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(pattern=ID_PATTERN)
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=4000)


class FeedbackResponse(BaseModel):
    """The stored feedback."""

    id: int
    answer_id: str
    conversation_id: str
    rating: Literal["up", "down"]


# -- /api/documents ---------------------------------------------------------------------


class DocumentSummaryOut(BaseModel):
    """A document in the index listing."""

    id: str
    title: str
    language: str
    sections: list[str]
    chunks: int
    chars: int


class DocumentListOut(BaseModel):
    """All indexed documents."""

    documents: list[DocumentSummaryOut]


class SectionOut(BaseModel):
    """A heading and the span of text it governs."""

    title: str
    level: int
    start: int
    end: int


class DocumentOut(BaseModel):
    """A document's full extracted text and its sections."""

    id: str
    title: str
    language: str
    text: str
    sections: list[SectionOut]


class PassageOut(BaseModel):
    """A cited span with some text around it, for "show the source"."""

    doc: str
    title: str
    section: str
    start: int
    end: int
    quote: str = Field(description="The document's text from start to end.")
    before: str = Field(description="Up to a few hundred characters before the quote.")
    after: str = Field(description="Up to a few hundred characters after the quote.")
    page: int | None = None


# -- admin ------------------------------------------------------------------------------


class ReindexRequest(BaseModel):
    """Options of a rebuild."""

    model_config = ConfigDict(extra="forbid")

    rebuild: bool = Field(False, description="Re-embed every document instead of the changed ones.")


class SkippedOut(BaseModel):
    """A corpus file left out of the index, and why."""

    doc: str
    reason: str


class ReindexResponse(BaseModel):
    """What a rebuild did."""

    written: bool
    documents: int
    chunks: int
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int
    embedded: int
    skipped: list[SkippedOut]
    rebuild_reason: str
    seconds: float
    version: str


class IndexSummaryOut(BaseModel):
    """The loaded index, from its manifest."""

    version: str
    model: str
    dimension: int
    documents: int
    chunks: int
    vector_index: str
    built_at: str


class BuildingOut(BaseModel):
    """An index build under way: since when, and how far it has got."""

    started_at: str
    progress: str  # "5 of 5 documents read, 40 of 160 chunks embedded"


class ReadyOut(BaseModel):
    """Readiness: the index version that answers, and a newer one being built meanwhile."""

    status: Literal["ready"]
    index: IndexSummaryOut
    building: BuildingOut | None = None  # swapped in, between two requests, once complete
    last_build_error: str | None = None  # why the last build failed; the version above still serves
    # The process that answered: each worker of `assistant serve --workers N` answers for itself.
    worker_pid: int


# -- OpenAI-compatible /v1 --------------------------------------------------------------


class ContentPart(BaseModel):
    """A part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class OpenAIMessage(BaseModel):
    """A chat message as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """Returns the message's text, joining text parts."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    """OpenAI `stream_options`."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request: the last user message is the question.

    Sampling options (temperature, max_tokens, ...) are accepted and ignored: answers are
    built from the documents.
    """

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class Usage(BaseModel):
    """Token counts (cl100k tokens)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionMessage(BaseModel):
    """The answer as an assistant message, with its citations as an extra field."""

    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[CitationOut]


class CompletionChoice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """An OpenAI chat completion, with `citations` and `abstained` as extra fields."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[CitationOut]
    abstained: bool


class ChunkDelta(BaseModel):
    """The new part of the message in one stream chunk."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The one choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One streamed piece; the last one carries `citations` and `abstained`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    citations: list[CitationOut] | None = None
    abstained: bool | None = None


class ModelOut(BaseModel):
    """A model as /v1/models lists it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "assistant"


class ModelList(BaseModel):
    """The models this service answers as."""

    object: Literal["list"] = "list"
    data: list[ModelOut]


def citations_out(citations: Iterable[Citation]) -> list[CitationOut]:
    """Converts core Citation records to their HTTP shape."""
    return [CitationOut(**c.to_dict()) for c in citations]
