"""The index on disk: vectors (FAISS or Milvus), keyword index (BM25), chunk metadata, manifest.

    index/
      current -> versions/<id>        symlink, replaced atomically when a build completes
      versions/<id>/
        manifest.json                 format, model and dimension, chunker settings, documents,
                                      and the sha256 of every other file of the version
        vectors.npy                   float32 matrix, row i = chunk i (the source of truth)
        vectors.faiss                 the search index over those rows (flat, or HNSW when large)
        sentences.npy                 float16 late-chunked vector of every sentence, chunk by chunk
        sentence_offsets.npy          chunk i's sentences are rows offsets[i]:offsets[i + 1]
        chunks.sqlite                 documents and chunks (text, sections, offsets, table columns)
        keyword.npz, keyword.json     BM25 term frequencies and vocabulary
      embeddings.sqlite               cache of vectors by text hash, shared by all versions

A build writes a new version folder (`<id>.partial` until complete), then swaps the symlink:
readers see the old index or the new one, never half of one. A crash leaves only a partial
folder, removed by the next `assistant index` or the next load, whichever comes first; both
remove it only while holding the index lock, which a build holds from start to end, so the
folder of a build under way is never touched. Loading checks every file against the sha256
its manifest recorded: a damaged file is named, with the command that rebuilds the index.

The vector engine sits behind `VectorIndex`. FAISS (the default) keeps vectors.npy and
vectors.faiss in the version folder. Milvus (`milvus_store.py`) keeps the vectors in a
collection per version, named in the manifest, instead; everything else stays in the folder.
The collection is complete before the symlink moves, and is dropped when no version folder
names it any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
import weakref
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.errors import (
    REBUILD_HINT,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    NotFoundError,
)
from assistant.records import Chunk, Document, Page, Section, Sentence
from assistant.store import milvus as milvus_store
from assistant.store.keyword import KeywordIndex
from assistant.store.milvus import MilvusConfig

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4
CURRENT = "current"
VERSIONS = "versions"
CACHE_FILE = "embeddings.sqlite"


@dataclass
class Manifest:
    """What an index holds and how it was built; loading checks it."""

    format_version: int
    model: str
    dimension: int
    chunker: dict[str, Any]
    documents: dict[str, dict[str, Any]]  # doc id -> {"hash", "title", "chunks", "language"}
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)  # doc id -> hash, reason
    chunks: int = 0
    vector_index: str = "flat"
    engine: str = "faiss"  # where the vectors are: "faiss" (files here) or "milvus"
    collection: str = ""  # the Milvus collection of this version
    milvus_uri: str = ""  # where it was written (a reader's own setting wins)
    built_at: str = ""
    build_seconds: float = 0.0
    # File name -> sha256 of its bytes, for every file of the version but the manifest. Empty
    # in an index written before checksums were recorded: such an index loads unchecked.
    checksums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialises the manifest."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parses a manifest written by `to_json`."""
        data = json.loads(text)
        return cls(**data)


class VectorIndex(Protocol):
    """The seam where vector engines plug in: nearest-neighbour search over unit vectors by
    inner product, and the stored vectors themselves (row i = chunk i)."""

    kind: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (scores, rows), each of shape (len(queries), k); missing rows are -1."""
        ...

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Returns the float32 vectors of the given rows."""
        ...


class FaissIndex:
    """A FAISS index: exact (flat) for small collections, HNSW past a threshold."""

    def __init__(self, index: Any, kind: str, matrix: np.ndarray | None = None) -> None:
        self.index = index
        self.kind = kind
        # The vectors as stored (vectors.npy, memory-mapped): HNSW cannot give them back exactly.
        self.matrix = matrix

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Returns the float32 vectors of the given rows."""
        if self.matrix is None:
            return np.vstack([self.index.reconstruct(int(r)) for r in rows]).astype(np.float32)
        return np.asarray(self.matrix[rows], dtype=np.float32)

    @classmethod
    def build(cls, vectors: np.ndarray, approximate_threshold: int = 200_000) -> FaissIndex:
        """Builds an exact index, or an HNSW graph when there are more vectors than the threshold."""
        import faiss

        dimension = vectors.shape[1]
        index: Any
        if len(vectors) > approximate_threshold:
            index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            # Measured on 1M synthetic sentence-like vectors (eval/bench/synthetic.py, 2 cores):
            # efSearch 96 gives recall@10 0.92, 256 gives 0.97 at a p50 of 0.5 ms.
            index.hnsw.efSearch = 256
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(dimension)
            kind = "flat"
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, kind, vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (scores, rows) of the k nearest rows to each query."""
        k = min(k, self.index.ntotal)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows

    def save(self, path: Path) -> None:
        """Writes the index file."""
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, matrix: np.ndarray | None = None) -> FaissIndex:
        """Reads an index file."""
        import faiss

        return cls(faiss.read_index(str(path)), kind, matrix)


@dataclass(frozen=True)
class DocumentSummary:
    """A document as listed by the service: id, title, sections and chunk count."""

    id: str
    title: str
    language: str
    sections: tuple[str, ...]
    chunks: int
    chars: int


_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT, text TEXT, sections TEXT, pages TEXT,
    content_hash TEXT, language TEXT, subject TEXT);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, id TEXT UNIQUE, doc_id TEXT, n INTEGER, title TEXT,
    section_path TEXT, subject TEXT, start INTEGER, "end" INTEGER, text TEXT,
    sentences TEXT, tokens INTEGER, page INTEGER, columns TEXT);
CREATE INDEX chunks_doc ON chunks (doc_id);
"""


def _document_row(doc: Document) -> tuple[Any, ...]:
    sections = [[s.title, s.level, s.start, s.end, list(s.path), s.subject] for s in doc.sections]
    pages = [[p.number, p.start, p.end] for p in doc.pages]
    return (
        doc.id,
        doc.title,
        doc.text,
        json.dumps(sections, ensure_ascii=False),
        json.dumps(pages),
        doc.content_hash,
        doc.language,
        doc.subject,
    )


def _document_from_row(row: sqlite3.Row) -> Document:
    sections = tuple(
        Section(t, lvl, s, e, tuple(path), subj) for t, lvl, s, e, path, subj in json.loads(row["sections"])
    )
    pages = tuple(Page(n, s, e) for n, s, e in json.loads(row["pages"]))
    return Document(
        id=row["id"],
        title=row["title"],
        text=row["text"],
        sections=sections,
        content_hash=row["content_hash"],
        language=row["language"],
        pages=pages,
        subject=row["subject"],
    )


def _chunk_row(row: int, c: Chunk) -> tuple[Any, ...]:
    return (
        row,
        c.id,
        c.doc_id,
        c.n,
        c.title,
        json.dumps(list(c.section_path), ensure_ascii=False),
        c.subject,
        c.start,
        c.end,
        c.text,
        json.dumps([[s.start, s.end] for s in c.sentences]),
        c.tokens,
        c.page,
        json.dumps(list(c.columns), ensure_ascii=False),
    )


def _chunk_from_row(row: sqlite3.Row) -> Chunk:
    return Chunk(
        id=row["id"],
        doc_id=row["doc_id"],
        n=row["n"],
        title=row["title"],
        section_path=tuple(json.loads(row["section_path"])),
        subject=row["subject"],
        start=row["start"],
        end=row["end"],
        text=row["text"],
        sentences=tuple(Sentence(s, e) for s, e in json.loads(row["sentences"])),
        tokens=row["tokens"],
        page=row["page"],
        columns=tuple(json.loads(row["columns"])),
    )


class IndexStore:
    """A built index, read-only: chunk lookups, vector search, keyword search."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        vectors: np.ndarray | None,
        vector_index: VectorIndex,
        keyword: KeywordIndex,
        sentences: np.ndarray,
        sentence_offsets: np.ndarray,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.vectors = vectors  # the local matrix (FAISS engine); None when Milvus holds them
        self.sentences = sentences
        self.sentence_offsets = sentence_offsets
        self.vector_index = vector_index
        self.keyword = keyword
        self._local = threading.local()
        # Every thread's connection, so that all close when the store is dropped (a server
        # swaps in a new store at each reindex and must not leak the old one's connections).
        self._connections: list[sqlite3.Connection] = []
        self._finalizer = weakref.finalize(self, _close_all, self._connections)
        self._chunk_cache: dict[int, Chunk] = {}
        self._doc_cache: dict[str, Document] = {}
        self._previous_cache: dict[str, Chunk | None] = {}  # chunk id -> the chunk before it

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, index_dir: Path, *, model: str | None = None, milvus: MilvusConfig | None = None) -> IndexStore:
        """Opens the current version of the index, checking it matches `model` if given.

        The manifest says which engine holds the vectors; `milvus` says how to reach Milvus
        (its URI, when set, wins over the one the manifest recorded).
        """
        folder = current_version(index_dir)
        if folder is None:
            raise IndexNotFoundError(index_dir)
        remove_stale_partials(index_dir)
        manifest_path = folder / "manifest.json"
        try:
            manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise IndexCorruptError(manifest_path, str(exc)) from exc
        if manifest.format_version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"the index in {index_dir} has format {manifest.format_version}, this version "
                f"reads format {FORMAT_VERSION}: {REBUILD_HINT}"
            )
        if model is not None and manifest.model != model:
            raise IndexMismatchError(
                f"the index in {index_dir} was built with the model {manifest.model}, but the "
                f"setting is {model}: {REBUILD_HINT}"
            )
        verify_checksums(folder, manifest)
        vectors, vector_index = _open_vectors(folder, manifest, milvus)
        keyword = _read_keyword(folder)
        if keyword.size != manifest.chunks:
            raise IndexCorruptError(folder / "keyword.npz", "row count does not match the manifest")
        sentences = _read(folder / "sentences.npy", lambda p: np.load(p, mmap_mode="r"))
        offsets = _read(folder / "sentence_offsets.npy", lambda p: np.load(p))
        if len(offsets) != manifest.chunks + 1 or offsets[-1] != len(sentences):
            raise IndexCorruptError(folder / "sentence_offsets.npy", "does not match the sentences")
        store = cls(folder, manifest, vectors, vector_index, keyword, sentences, offsets)
        _read(folder / "chunks.sqlite", lambda _: store._check_db())
        return store

    def _check_db(self) -> None:
        (count,) = self._db().execute("SELECT COUNT(*) FROM chunks").fetchone()
        if count != self.manifest.chunks:
            raise ValueError(f"{count} chunks, the manifest says {self.manifest.chunks}")

    def _db(self) -> sqlite3.Connection:
        # One read-only connection per thread: the server answers on several threads.
        db = getattr(self._local, "db", None)
        if db is None:
            uri = f"file:{self.path / 'chunks.sqlite'}?mode=ro"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            db.row_factory = sqlite3.Row
            self._local.db = db
            self._connections.append(db)
        return db

    # -- reading ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of chunks."""
        return self.manifest.chunks

    def chunk(self, row: int) -> Chunk:
        """Returns chunk number `row`."""
        cached = self._chunk_cache.get(row)
        if cached is not None:
            return cached
        found = self._db().execute("SELECT * FROM chunks WHERE row = ?", (int(row),)).fetchone()
        if found is None:
            raise NotFoundError(f"no chunk at row {row}")
        chunk = _chunk_from_row(found)
        if len(self._chunk_cache) < 100_000:
            self._chunk_cache[row] = chunk
        return chunk

    def previous_chunk(self, chunk: Chunk) -> Chunk | None:
        """Returns the chunk before `chunk` in its document, or None for the first one."""
        if chunk.n == 0:
            return None
        if chunk.id in self._previous_cache:
            return self._previous_cache[chunk.id]
        found = self._db().execute("SELECT * FROM chunks WHERE id = ?", (f"{chunk.doc_id}#{chunk.n - 1}",)).fetchone()
        before = _chunk_from_row(found) if found is not None else None
        if len(self._previous_cache) < 100_000:
            self._previous_cache[chunk.id] = before
        return before

    def vectors_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Returns the chunk vectors of the given rows (float32)."""
        return self.vector_index.vectors(np.asarray(rows, dtype=np.int64))

    def sentence_vectors(self, row: int) -> np.ndarray:
        """Returns the vectors of chunk `row`'s sentences (float32, one row per sentence)."""
        start, end = int(self.sentence_offsets[row]), int(self.sentence_offsets[row + 1])
        return np.asarray(self.sentences[start:end], dtype=np.float32)

    def all_chunks(self) -> Iterator[tuple[int, Chunk]]:
        """Yields every (row, chunk) in row order."""
        for found in self._db().execute("SELECT * FROM chunks ORDER BY row"):
            yield found["row"], _chunk_from_row(found)

    def document(self, doc_id: str) -> Document:
        """Returns one document with its full text."""
        cached = self._doc_cache.get(doc_id)
        if cached is not None:
            return cached
        found = self._db().execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if found is None:
            raise NotFoundError(f"no document {doc_id!r} in the index")
        doc = _document_from_row(found)
        if len(self._doc_cache) < 256:
            self._doc_cache[doc_id] = doc
        return doc

    def documents(self) -> list[DocumentSummary]:
        """Lists the indexed documents."""
        rows = self._db().execute(
            "SELECT d.id, d.title, d.language, d.sections, length(d.text) AS chars, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.id) AS n FROM documents d "
            "ORDER BY d.id"
        )
        return [
            DocumentSummary(
                r["id"],
                r["title"],
                r["language"],
                tuple(s[0] for s in json.loads(r["sections"])),
                r["n"],
                r["chars"],
            )
            for r in rows
        ]

    def rows_of_document(self, doc_id: str) -> list[int]:
        """Returns the rows of a document's chunks."""
        rows = self._db().execute("SELECT row FROM chunks WHERE doc_id = ? ORDER BY row", (doc_id,))
        return [r[0] for r in rows]

    def close(self) -> None:
        """Closes every database connection this store opened."""
        self._finalizer()


def _open_vectors(
    folder: Path, manifest: Manifest, milvus: MilvusConfig | None
) -> tuple[np.ndarray | None, VectorIndex]:
    """Opens the vector engine the manifest names: the local FAISS files, or Milvus."""
    if manifest.engine == "milvus":
        config = milvus or MilvusConfig()
        uri = config.uri or manifest.milvus_uri
        index = _read(
            folder / "manifest.json",
            lambda _: milvus_store.MilvusIndex.open(
                config,
                uri,
                manifest.collection,
                manifest.vector_index,
                manifest.chunks,
                manifest.dimension,
            ),
        )
        return None, index
    if manifest.engine != "faiss":
        raise IndexMismatchError(f"the index in {folder} uses the unknown engine {manifest.engine!r}: {REBUILD_HINT}")
    vectors = _read(folder / "vectors.npy", lambda p: np.load(p, mmap_mode="r"))
    if vectors.shape != (manifest.chunks, manifest.dimension):
        raise IndexCorruptError(folder / "vectors.npy", f"shape {vectors.shape} does not match the manifest")
    faiss_index = _read(folder / "vectors.faiss", lambda p: FaissIndex.load(p, manifest.vector_index, vectors))
    return vectors, faiss_index


def verify_checksums(folder: Path, manifest: Manifest) -> None:
    """Checks a version's files against the sha256 its manifest recorded; names a damaged one.

    Hashing reads every file once: 1.3 ms for the seed corpus's 1.8 MB index, 0.8 s per GB (2
    cores); the reads that follow then come from the page cache.
    """
    for name, expected in manifest.checksums.items():
        path = folder / name
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise IndexCorruptError(path, exc.strerror or type(exc).__name__) from exc
        if actual != expected:
            raise IndexCorruptError(path, "damaged: its sha256 differs from the one manifest.json recorded")


def file_sha256(path: Path) -> str:
    """Returns the sha256 of a file's bytes, in hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _read_keyword(folder: Path) -> KeywordIndex:
    """Opens the keyword index, naming which of its two files is unreadable."""
    try:
        return KeywordIndex.load(folder)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        # keyword.json is read first, and is the only text of the two: a JSON or text decoding
        # error, or its metadata missing a field, is its fault; anything else is keyword.npz's.
        filename = getattr(exc, "filename", None)
        if filename:
            culprit = Path(filename)
        elif isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, TypeError)) or (
            isinstance(exc, KeyError) and exc.args and exc.args[0] in {"vocabulary", "k1", "b"}
        ):
            culprit = folder / "keyword.json"
        else:
            culprit = folder / "keyword.npz"
        raise IndexCorruptError(culprit, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _close_all(connections: list[sqlite3.Connection]) -> None:
    for connection in connections:
        connection.close()
    connections.clear()


def _read(path: Path, reader: Any) -> Any:
    try:
        return reader(path)
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, sqlite3.Error, zipfile.BadZipFile) as exc:
        raise IndexCorruptError(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def current_version(index_dir: Path) -> Path | None:
    """Returns the folder of the index version in use, or None when there is none."""
    link = index_dir / CURRENT
    if not link.is_symlink() and not link.is_dir():
        return None
    folder = link.resolve()
    return folder if folder.is_dir() else None


def read_manifest(index_dir: Path) -> Manifest | None:
    """Returns the manifest of the current version, or None if missing or unreadable."""
    folder = current_version(index_dir)
    if folder is None:
        return None
    try:
        return Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def write_lock(index_dir: Path) -> Iterator[None]:
    """Holds the index folder's lock so that two builds never write at once.

    Whoever holds it may also remove the partial folders that interrupted builds left behind:
    no build can be writing one meanwhile.
    """
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexWriteError(f"another `assistant index` is writing {index_dir}; wait for it to finish") from exc
        try:
            _remove_partials(index_dir / VERSIONS)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_partials(index_dir: Path) -> None:
    """Removes the partial version folders of interrupted builds, unless a build is running.

    A build holds the index lock from start to end (a killed one releases it with its
    process), so a partial folder found while the lock is free belongs to no one. When the
    lock is taken, by another process or by this one's own build, nothing is touched.
    """
    import fcntl

    versions = index_dir / VERSIONS
    if not versions.is_dir() or not any(versions.glob("*.partial")):
        return  # the common case: nothing to clean, nothing opened for writing
    with contextlib.suppress(OSError), open(index_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            _remove_partials(versions)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_version(
    index_dir: Path,
    manifest: Manifest,
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    sentence_vectors: Sequence[np.ndarray],
    keyword: KeywordIndex,
    approximate_threshold: int = 200_000,
    milvus: MilvusConfig | None = None,
) -> Path:
    """Writes a complete new index version and makes it current, atomically.

    The vectors go to FAISS files in the folder, or with `milvus` to a new Milvus collection
    that is filled, indexed and loaded before the switch; the alias follows after it.
    """
    if not len(chunks) == len(vectors) == len(sentence_vectors) == keyword.size:
        raise ValueError(
            f"{len(chunks)} chunks, {len(vectors)} vectors, {len(sentence_vectors)} sentence "
            f"vector lists and {keyword.size} keyword rows differ"
        )
    versions = index_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    _remove_partials(versions)
    # Microseconds in the name: versions sort by age even when builds finish within a second
    # (old-version cleanup keeps the newest by name).
    now = time.time()
    micros = f"{int(now * 1e6) % 1_000_000:06d}"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + micros
    name = stamp + "-" + uuid.uuid4().hex[:8]
    partial = versions / f"{name}.partial"
    uri = ""
    try:
        partial.mkdir()
        manifest.chunks = len(chunks)
        if milvus is None:
            vector_index = FaissIndex.build(vectors, approximate_threshold)
            manifest.vector_index = vector_index.kind
            manifest.engine, manifest.collection, manifest.milvus_uri = "faiss", "", ""
            np.save(partial / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
            vector_index.save(partial / "vectors.faiss")
        else:
            uri = milvus.uri or milvus_store.default_uri(index_dir)
            manifest.engine, manifest.milvus_uri = "milvus", uri
            manifest.collection = milvus_store.collection_name(milvus.collection, index_dir, name)
            manifest.vector_index = milvus_store.build_collection(
                milvus, uri, manifest.collection, vectors, approximate_threshold
            )
        offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(v) for v in sentence_vectors])
        dimension = vectors.shape[1] if len(vectors) else manifest.dimension
        stacked = (np.vstack(sentence_vectors) if sentence_vectors else np.zeros((0, dimension))).astype(np.float16)
        np.save(partial / "sentences.npy", stacked)
        np.save(partial / "sentence_offsets.npy", offsets)
        keyword.save(partial)
        _write_db(partial / "chunks.sqlite", documents, chunks)
        manifest.checksums = {path.name: file_sha256(path) for path in sorted(partial.iterdir())}
        (partial / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
        _fsync_tree(partial)
        final = versions / name
        os.rename(partial, final)
        _switch(index_dir, final)
    except (OSError, IndexWriteError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if milvus is not None and manifest.collection:
            milvus_store.drop_unused(milvus, uri, index_dir, keep=_collections(versions))
        if isinstance(exc, IndexWriteError):
            raise
        raise IndexWriteError(
            f"could not write the new index in {index_dir} ({exc.strerror or exc}); the previous index is still in use"
        ) from exc
    _remove_old_versions(versions, keep={final.name})
    if milvus is not None:
        # After the local switch: a reader pairs a manifest with the collection it names, and
        # the alias only ever points at a complete collection.
        milvus_store.publish(milvus, uri, manifest.collection)
        milvus_store.drop_unused(milvus, uri, index_dir, keep=_collections(versions))
    return final


def _collections(versions: Path) -> set[str]:
    """Returns the Milvus collections that the finished version folders name."""
    names = set()
    for folder in versions.iterdir():
        if folder.is_dir() and not folder.name.endswith(".partial"):
            with contextlib.suppress(OSError, ValueError, TypeError):
                text = (folder / "manifest.json").read_text(encoding="utf-8")
                collection = Manifest.from_json(text).collection
                if collection:
                    names.add(collection)
    return names


def _write_db(path: Path, documents: Sequence[Document], chunks: Sequence[Chunk]) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(_SCHEMA)
        db.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?)", map(_document_row, documents))
        db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (_chunk_row(i, c) for i, c in enumerate(chunks)),
        )
        db.commit()
    except sqlite3.Error as exc:
        raise OSError(str(exc)) from exc
    finally:
        db.close()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _switch(index_dir: Path, target: Path) -> None:
    # Replace the symlink with rename(2), which is atomic: no moment without an index.
    temporary = index_dir / f".current-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(target, index_dir), temporary)
    os.replace(temporary, index_dir / CURRENT)
    fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_partials(versions: Path) -> None:
    # Only under the index lock (see remove_stale_partials).
    for path in versions.glob("*.partial"):
        logger.info("removing %s, left by an interrupted build", path)
        shutil.rmtree(path, ignore_errors=True)


def _remove_old_versions(versions: Path, keep: set[str]) -> None:
    # Keep the two newest previous versions too: a server may still be answering from them
    # (a long request can span two quick reindexes).
    finished = sorted(p for p in versions.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
    older = [p.name for p in finished if p.name not in keep]
    survivors = set(keep) | set(older[-2:])
    for path in finished:
        if path.name not in survivors:
            shutil.rmtree(path, ignore_errors=True)
