"""Hits -> Answer: the extractive answerer (the embedded default) and the LLM answerer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from assistant.records import Answer, Hit, Turn


class Answerer(Protocol):
    """Composes a grounded answer with citations from retrieved hits."""

    name: str

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Returns the answer to `question` from `hits` (or an abstention)."""
        ...
