"""Gold sets: the question file format of shared/design/EVAL.md, and matching facts and quotes.

A gold file holds one JSON question a line (`GoldQuestion`); `load_gold` names the line of any
malformed one. Facts and quotes match case-, accent- and whitespace-insensitively.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import AssistantError
from assistant.text import fold

Kind = Literal["fact", "number", "list", "multilingual", "unanswerable", "followup"]
KINDS: tuple[str, ...] = ("fact", "number", "list", "multilingual", "followup", "unanswerable")


class GoldError(AssistantError):
    """A gold file cannot be read; the message names the line."""


class GoldSource(BaseModel):
    """Where the answer is stated: a document and an exact phrase of it."""

    model_config = ConfigDict(extra="forbid")
    doc: str
    quote: str = Field(min_length=1)


class GoldTurn(BaseModel):
    """One earlier message of a follow-up's conversation."""

    role: Literal["user", "assistant"]
    content: str


class GoldQuestion(BaseModel):
    """One line of a gold file."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: Kind
    question: str = Field(min_length=1)
    history: list[GoldTurn] = Field(default_factory=list)
    answer: str = ""
    key_facts: list[str] = Field(default_factory=list)
    sources: list[GoldSource] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        """Unanswerable questions have neither key facts nor sources."""
        return self.kind != "unanswerable"


def load_gold(path: Path) -> list[GoldQuestion]:
    """Reads a gold file, naming the line of any malformed entry."""
    if not path.is_file():
        raise GoldError(f"gold file {path} does not exist")
    questions: list[GoldQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = GoldQuestion.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise GoldError(f"{path}:{number}: {where}: {first['msg']}") from exc
        if question.id in seen:
            raise GoldError(f"{path}:{number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise GoldError(f"gold file {path} holds no questions")
    return questions


# ------------------------------------------------------------------------------- matching


def normalise(text: str) -> str:
    """Lower-cases, strips accents and collapses whitespace, for fact and quote matching."""
    return re.sub(r"\s+", " ", fold(text)).strip()


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    # The normalised text, and for each of its characters the offset it came from.
    chars: list[str] = []
    offsets: list[int] = []
    previous_space = True
    for i, ch in enumerate(text):
        if ch.isspace():
            if not previous_space:
                chars.append(" ")
                offsets.append(i)
            previous_space = True
            continue
        previous_space = False
        for piece in fold(ch):
            chars.append(piece)
            offsets.append(i)
    return "".join(chars), offsets


def quote_spans(document_text: str, quote: str) -> list[tuple[int, int]]:
    """Returns every (start, end) in the document where the quote appears, normalised."""
    haystack, offsets = _normalised_with_offsets(document_text)
    needle = normalise(quote)
    spans = []
    start = haystack.find(needle)
    while start >= 0 and needle:
        end = start + len(needle) - 1
        spans.append((offsets[start], offsets[end] + 1))
        start = haystack.find(needle, start + 1)
    return spans


def contains(text: str, fact: str) -> bool:
    """Tells whether a fact appears in a text (case-, accent- and whitespace-insensitive)."""
    return normalise(fact) in normalise(text)
