"""Embeddings cached in SQLite by content hash, so that an unchanged chunk is never embedded twice."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from assistant.embedding.base import Embedder

logger = logging.getLogger(__name__)


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
