"""The data model: the typed records handed from one stage to the next.

    Document -> Chunk -> Hit -> Citation / Answer

Records are frozen dataclasses; character offsets always refer to `Document.text`, the text
extracted from the file, so `document.text[start:end]` is what a chunk or a citation shows.
Embedding vectors stay out of the records: they live in a matrix whose row i is chunk i.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Section:
    """A heading and the span of text it governs (heading line included)."""

    title: str  # the heading as written, markup removed: "A.3.3.1.1. Plastipolis"
    level: int  # 1 is outermost
    start: int
    end: int
    path: tuple[str, ...]  # titles from the outermost heading down to this one
    subject: str  # what the section is about: the title without its number, "Plastipolis"


@dataclass(frozen=True)
class Page:
    """Where one PDF page's text lies in the extracted document text (1-based number)."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One file of the corpus, as text with its structure."""

    id: str  # path relative to the corpus folder, with forward slashes
    title: str
    text: str
    sections: tuple[Section, ...]
    content_hash: str  # sha256 of the file's bytes
    language: str  # ISO 639-1 code, "und" when unknown
    pages: tuple[Page, ...] = ()
    subject: str = ""  # the name the document is mostly about, when one stands out

    def section_at(self, offset: int) -> Section | None:
        """Returns the innermost section containing `offset`, if any."""
        found: Section | None = None
        for section in self.sections:
            if section.start <= offset < section.end and (found is None or section.level >= found.level):
                found = section
        return found

    def page_at(self, offset: int) -> int | None:
        """Returns the 1-based PDF page holding `offset`, or None for non-paginated files."""
        for page in self.pages:
            if page.start <= offset < page.end:
                return page.number
        return None


@dataclass(frozen=True)
class Sentence:
    """A sentence (or a list item, or a heading line) inside a chunk, as document offsets."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A piece of one section of a document, small enough for the embedding model."""

    id: str  # f"{doc_id}#{n}"
    doc_id: str
    n: int  # position of the chunk in its document
    title: str  # the document's title
    section_path: tuple[str, ...]
    subject: str  # the section's (or else the document's) subject
    start: int
    end: int
    text: str  # == document.text[start:end]
    sentences: tuple[Sentence, ...]
    tokens: int  # size in tiktoken tokens
    page: int | None = None
    # The column names of the table whose rows the chunk holds, when the table's header row lies
    # in an earlier chunk ("", "Size of the Network", "Number of SMEs", ...; see ingest.tables).
    columns: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        """The innermost heading, or "" for text before the first heading."""
        return self.section_path[-1] if self.section_path else ""

    @property
    def header(self) -> str:
        """The context line prepended to the chunk for embedding and keyword search."""
        parts = [self.title, *self.section_path]
        line = " > ".join(p for p in parts if p)
        # A row says what its cells are only through its columns: "240" is the "Number of SMEs".
        return f"{line} | {self.column_names}" if self.column_names else line

    @property
    def column_names(self) -> str:
        """The named columns of the chunk's table rows, "Size of the Network | Number of SMEs" ("" for none)."""
        return " | ".join(c for c in self.columns if c)

    def sentence_text(self, sentence: Sentence) -> str:
        """Returns the text of one of this chunk's sentences."""
        return self.text[sentence.start - self.start : sentence.end - self.start]


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with the scores that ranked it (ranks are 1-based, 0 = not found)."""

    chunk: Chunk
    score: float
    rank: int
    keyword_rank: int = 0
    vector_rank: int = 0
    keyword_score: float = 0.0
    vector_score: float = 0.0
    # Cosine similarity of the question to each of the chunk's sentences, in sentence order.
    sentence_similarity: tuple[float, ...] = ()
    # Set when the chunk opens a subsection of a section the question names (a list item found
    # by the document's structure): that section's heading.
    item_of: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON shape used by the CLI, the service and the eval reports."""
        c = self.chunk
        return {
            "rank": self.rank,
            "doc": c.doc_id,
            "title": c.title,
            "section": c.section,
            "start": c.start,
            "end": c.end,
            "score": round(self.score, 6),
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
            "text": c.text,
        }


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer: a span of a document, quoted exactly."""

    n: int
    doc: str
    title: str
    section: str
    start: int
    end: int
    quote: str  # == document.text[start:end]
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON shape of a citation."""
        data: dict[str, Any] = {
            "n": self.n,
            "doc": self.doc,
            "title": self.title,
            "section": self.section,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
        }
        if self.page is not None:
            data["page"] = self.page
        return data


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Literal["user", "assistant"]
    content: str


NOT_FOUND = "I could not find this in the documents."


@dataclass(frozen=True)
class Answer:
    """What the assistant says to a question, with the sources it rests on."""

    question: str
    text: str  # carries [n] markers that all point into `citations`
    citations: tuple[Citation, ...]
    abstained: bool
    hits: tuple[Hit, ...] = ()
    standalone_question: str = ""  # the question as searched, after follow-up rewriting
    timings_ms: dict[str, float] = field(default_factory=dict)
    answerer: str = "extractive"
    # How sure the answerer is that the documents answer the question (0..1), when it knows.
    confidence: float | None = None

    def to_dict(self, *, with_hits: bool = True) -> dict[str, Any]:
        """Returns the JSON shape shared by `ask --json`, the service and the eval runner."""
        data: dict[str, Any] = {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
        }
        if self.standalone_question and self.standalone_question != self.question:
            data["standalone_question"] = self.standalone_question
        if with_hits:
            data["hits"] = [h.to_dict() for h in self.hits]
        data["timings_ms"] = {k: round(v, 2) for k, v in self.timings_ms.items()}
        return data
