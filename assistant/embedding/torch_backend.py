"""The sentence-transformers backend (torch; the torch extra)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.embedding.base import (
    WindowCounter,
    check_spans,
    embed_in_windows,
    model_window,
    pool_spans,
    require_torch_extra,
    resolve_model_dir,
    window_error,
)

logger = logging.getLogger(__name__)


class SentenceTransformerEmbedder:
    """Embeds texts with a sentence-transformers model on the CPU, offline."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        require_torch_extra("the torch embedding backend", ("torch", "sentence_transformers"))
        self.model_dir = resolve_model_dir(model)
        self.model_id = model
        self.batch_size = batch_size
        self.window = WindowCounter(self.model_dir, model_window(self.model_dir))
        self._model: Any = None
        self._lock = threading.Lock()
        self.dimension = self._read_dimension()

    def _read_dimension(self) -> int:
        import json

        pooling = self.model_dir / "1_Pooling" / "config.json"
        if pooling.is_file():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded on first use (importing torch is slow)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

                    self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        return self._model

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.window.fits(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length float32 vectors; a text longer than the window is read in windows."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed_in_windows(texts, self.window.count, self.window.max_tokens, self._embed_fitting)

    def _embed_fitting(self, texts: Sequence[str]) -> np.ndarray:
        self._check_window(texts)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns text vectors (mean of all token vectors) and late-chunked span vectors."""
        if not check_spans(texts, spans):
            return np.zeros((0, self.dimension), dtype=np.float32), []
        self._check_window(texts)
        tokens = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            output_value="token_embeddings",
            convert_to_numpy=False,
            show_progress_bar=False,
        )
        encodings = self.model.tokenizer(list(texts), return_offsets_mapping=True)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors: list[np.ndarray] = []
        for i, token_matrix in enumerate(tokens):
            matrix = token_matrix.float().cpu().numpy()
            offsets = np.asarray(encodings["offset_mapping"][i], dtype=np.int64)
            if len(offsets) != len(matrix):
                raise RuntimeError(f"tokenizer and model disagree on the tokens of text {i}")
            vectors[i], pooled = pool_spans(matrix, offsets, spans[i])
            span_vectors.append(pooled)
        return vectors, span_vectors

    def _check_window(self, texts: Sequence[str]) -> None:
        for text in texts:
            if not self.window.fits(text):
                raise window_error(self.window.count(text), self.window.max_tokens, "truncated")
