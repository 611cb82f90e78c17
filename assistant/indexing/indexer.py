"""Corpus folder -> index, incrementally: only added or changed documents are parsed and embedded.

Unchanged documents keep their chunks, vectors and keyword rows; deleted ones disappear; a
change of model or chunker settings rebuilds everything and says why. Nothing is written when
nothing changed.

Reading, chunking and embedding the new documents are plain functions over batches
(`read_documents`, `chunk_documents`, `embed_chunks`). A `Preparer` runs them: `LocalPreparer`
in this process, or `distributed.RayPreparer` with Ray Data over a cluster; either way the
indexer gets the same records back in corpus order and writes the same version.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.embedding import Embedder
from assistant.errors import CorpusError, IndexCorruptError, IndexMismatchError
from assistant.ingest.chunking import Chunker, embedding_text
from assistant.ingest.documents import SourceFile, load_document, scan_corpus
from assistant.records import Chunk, Document
from assistant.store.index_store import (
    FORMAT_VERSION,
    IndexStore,
    Manifest,
    read_manifest,
    write_lock,
    write_version,
)
from assistant.store.keyword import KeywordIndex, index_terms
from assistant.store.milvus import MilvusConfig, default_uri

logger = logging.getLogger(__name__)

# progress(stage, done, total): stages are "read", "embed", "write".
Progress = Callable[[str, int, int], None]


@dataclass
class IndexReport:
    """What an indexing run did."""

    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0  # texts the model had to embed (cache misses)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (doc id, reason)
    rebuild_reason: str = ""
    written: bool = False
    seconds: float = 0.0
    version: str = ""


@dataclass(frozen=True)
class IndexLimits:
    """Per-file limits that keep one bad file from stalling a run."""

    max_file_mb: float = 50.0
    pdf_timeout_s: float = 60.0
    pdf_memory_mb: int = 1024


def sentence_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """Returns where each sentence of a chunk lies in the chunk's embedding text."""
    base = len(embedding_text(chunk)) - len(chunk.text)
    return [(s.start - chunk.start + base, s.end - chunk.start + base) for s in chunk.sentences]


def keyword_text(chunk: Chunk) -> str:
    """Returns what the keyword index reads for a chunk: the same header as the embedder."""
    return embedding_text(chunk)


# -- the batch steps, shared by every preparer ------------------------------------------------


def read_documents(sources: Sequence[SourceFile], limits: IndexLimits) -> list[Document | str]:
    """Parses corpus files into Documents; a file that cannot be used gives its reason instead."""
    out: list[Document | str] = []
    for source in sources:
        try:
            out.append(
                load_document(
                    source,
                    max_file_mb=limits.max_file_mb,
                    pdf_timeout_s=limits.pdf_timeout_s,
                    pdf_memory_mb=limits.pdf_memory_mb,
                )
            )
        except CorpusError as exc:
            out.append(str(exc))
    return out


def chunk_documents(documents: Sequence[Document], chunker: Chunker) -> list[Chunk]:
    """Cuts documents into chunks, in document order."""
    return [chunk for document in documents for chunk in chunker.chunk(document)]


def embed_chunks(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Turns chunks into their vectors and, per chunk, its late-chunked sentence vectors.

    The sentence vectors come as float16, the precision the index stores them in: kept so from
    the start, the largest part of a build's memory takes half the room.
    """
    vectors = []
    sentence_vectors: list[np.ndarray] = []
    for i in range(0, len(chunks), batch):
        if progress:
            progress(i, len(chunks))
        part = chunks[i : i + batch]
        texts = [embedding_text(c) for c in part]
        spans = [sentence_spans(c) for c in part]
        chunk_vectors, span_vectors = embedder.embed_spans(texts, spans)
        vectors.append(chunk_vectors)
        sentence_vectors.extend(v.astype(np.float16) for v in span_vectors)
    if progress:
        progress(len(chunks), len(chunks))
    if not vectors:
        return np.zeros((0, embedder.dimension), dtype=np.float32), []
    return np.vstack(vectors), sentence_vectors


@dataclass
class Prepared:
    """New documents read, chunked and embedded, in corpus order; and the files skipped."""

    documents: list[Document]
    skipped: list[tuple[SourceFile, str]]  # (file, reason)
    chunks: list[Chunk]
    vectors: np.ndarray  # row i = chunks[i]
    sentence_vectors: list[np.ndarray]  # one (sentences, dimension) matrix per chunk, stored as float16
    embedded: int  # texts the model had to embed (cache misses)


class Preparer(Protocol):
    """Runs the batch steps over the files to (re)index."""

    def prepare(self, sources: Sequence[SourceFile], progress: Progress) -> Prepared:
        """Returns the files' documents, chunks and vectors in the order of `sources`."""
        ...


class LocalPreparer:
    """Reads, chunks and embeds in this process (the embedded default)."""

    def __init__(self, embedder: Embedder, chunker: Chunker, limits: IndexLimits, batch: int = 64) -> None:
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits
        self.batch = batch

    def prepare(self, sources: Sequence[SourceFile], progress: Progress) -> Prepared:
        """Returns the files' documents, chunks and vectors in the order of `sources`."""
        documents: list[Document] = []
        skipped: list[tuple[SourceFile, str]] = []
        for i, source in enumerate(sources):
            progress("read", i, len(sources))
            (loaded,) = read_documents([source], self.limits)
            if isinstance(loaded, str):
                skipped.append((source, loaded))
            else:
                documents.append(loaded)
        progress("read", len(sources), len(sources))
        chunks = chunk_documents(documents, self.chunker)
        computed_before = getattr(self.embedder, "computed", 0)
        vectors, sentence_vectors = embed_chunks(
            chunks, self.embedder, self.batch, lambda done, total: progress("embed", done, total)
        )
        embedded = getattr(self.embedder, "computed", len(chunks)) - computed_before
        return Prepared(documents, skipped, chunks, vectors, sentence_vectors, embedded)


class Indexer:
    """Builds and updates the index of one corpus folder."""

    def __init__(
        self,
        corpus_dir: Path,
        index_dir: Path,
        embedder: Embedder,
        chunker: Chunker,
        limits: IndexLimits | None = None,
        approximate_threshold: int = 200_000,
        *,
        milvus: MilvusConfig | None = None,
        preparer: Preparer | None = None,
    ) -> None:
        # The embedder loads its model on first use, so a run with nothing to do stays fast.
        self.corpus_dir = corpus_dir
        self.index_dir = index_dir
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits or IndexLimits()
        self.approximate_threshold = approximate_threshold
        self.milvus = milvus  # None: the vectors go to FAISS files; else to this Milvus
        self.preparer = preparer or LocalPreparer(embedder, chunker, self.limits)

    def run(self, *, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Brings the index up to date with the corpus folder."""
        started = time.perf_counter()
        report = IndexReport()
        tick = progress or (lambda stage, done, total: None)
        if not self.corpus_dir.is_dir():
            # Before the lock, which creates the index folder: a wrong folder leaves nothing behind.
            raise CorpusError(
                f"the corpus folder {os.path.abspath(self.corpus_dir)} does not exist: create it and put "
                "documents in it, or point ASSISTANT_CORPUS_DIR (or --corpus) at your documents",
                self.corpus_dir,
            )
        with write_lock(self.index_dir):
            files, report.skipped = scan_corpus(self.corpus_dir)
            if not files:
                raise CorpusError(
                    f"no documents in {self.corpus_dir} (.txt, .md or .pdf): add some, or set ASSISTANT_CORPUS_DIR",
                    self.corpus_dir,
                )
            old = read_manifest(self.index_dir)
            if old is not None:
                report.rebuild_reason = self._rebuild_reason(old, rebuild)
            if old is None:
                report.rebuild_reason = "no index yet"
            full = bool(report.rebuild_reason)
            previous = None
            if not full:
                try:
                    # The previous version's vectors are where its manifest says they were
                    # written, even when this build writes elsewhere (a move to a cluster).
                    reader = self.milvus.with_uri(None) if self.milvus else None
                    previous = IndexStore.load(self.index_dir, milvus=reader)
                except (IndexCorruptError, IndexMismatchError) as exc:
                    report.rebuild_reason = f"the previous index is unusable ({exc})"
                    full = True
            known = {} if full or old is None else old.documents
            known_skips = {} if full or old is None else old.skipped

            kept_ids: list[str] = []
            skipped_now: dict[str, dict[str, str]] = {}
            to_read: list[SourceFile] = []
            for source in files:
                entry = known.get(source.doc_id)
                if entry and entry["hash"] == source.content_hash:
                    kept_ids.append(source.doc_id)
                    continue
                skip = known_skips.get(source.doc_id)
                if skip and skip["hash"] == source.content_hash:
                    report.skipped.append((source.doc_id, skip["reason"]))
                    skipped_now[source.doc_id] = skip
                    continue
                to_read.append(source)
            # Nothing to read: the embedder (and a Ray cluster) is not even started.
            prepared = self.preparer.prepare(to_read, tick) if to_read else _nothing(self.embedder)
            for source, reason in prepared.skipped:
                report.skipped.append((source.doc_id, reason))
                skipped_now[source.doc_id] = {"hash": source.content_hash, "reason": reason}
                logger.warning("skipped %s: %s", source.doc_id, reason)
            fresh = prepared.documents
            for document in fresh:
                (report.changed if document.id in known else report.added).append(document.id)
            present = {f.doc_id for f in files}
            report.removed = sorted(d for d in known if d not in present or d in skipped_now)
            report.unchanged = len(kept_ids)
            moved = old is not None and self._store_moved(old)
            if not full and not moved and not fresh and not report.removed and skipped_now.keys() == known_skips.keys():
                report.documents = len(kept_ids)
                report.chunks = old.chunks if old else 0
                report.seconds = time.perf_counter() - started
                return report
            if not kept_ids and not fresh:
                raise CorpusError(
                    f"none of the {len(files)} files in {self.corpus_dir} could be read; see the reasons above",
                    self.corpus_dir,
                )

            embedder, chunker = self.embedder, self.chunker
            new_chunks = prepared.chunks
            new_vectors, new_sentence_vectors = prepared.vectors, prepared.sentence_vectors

            kept_docs, kept_chunks, kept_rows = self._carry_over(previous, kept_ids)
            chunks = kept_chunks + new_chunks
            documents = kept_docs + fresh
            kept_sentences = [previous.sentence_vectors(r).astype(np.float16) for r in kept_rows] if previous else []
            sentence_vectors = kept_sentences + new_sentence_vectors
            if previous is not None and kept_rows:
                vectors = np.vstack([previous.vectors_of(kept_rows), new_vectors])
                keyword = previous.keyword.updated(kept_rows, [index_terms(keyword_text(c)) for c in new_chunks])
            else:
                vectors = new_vectors
                keyword = KeywordIndex.build(index_terms(keyword_text(c)) for c in new_chunks)
            # Counted in one pass: counting per document reads every chunk once per document.
            chunk_counts = Counter(c.doc_id for c in chunks)
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                model=embedder.model_id,
                dimension=embedder.dimension,
                chunker=chunker.settings(),
                documents={
                    d.id: {
                        "hash": d.content_hash,
                        "title": d.title,
                        "language": d.language,
                        "chunks": chunk_counts[d.id],
                    }
                    for d in documents
                },
                skipped=skipped_now,
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                build_seconds=round(time.perf_counter() - started, 3),
            )
            tick("write", 0, 1)
            folder = write_version(
                self.index_dir,
                manifest,
                documents,
                chunks,
                vectors,
                sentence_vectors,
                keyword,
                self.approximate_threshold,
                self.milvus,
            )
            tick("write", 1, 1)
            if previous is not None:
                previous.close()
        report.documents = len(documents)
        report.chunks = len(chunks)
        report.written = True
        report.version = folder.name
        report.embedded = prepared.embedded
        report.seconds = time.perf_counter() - started
        return report

    def _rebuild_reason(self, old: Manifest, requested: bool) -> str:
        if requested:
            return "--rebuild was asked for"
        if old.format_version != FORMAT_VERSION:
            return f"the index format changed ({old.format_version} -> {FORMAT_VERSION})"
        if old.model != self.embedder.model_id:
            return f"the embedding model changed ({old.model} -> {self.embedder.model_id})"
        settings = self.chunker.settings()
        if old.chunker != settings:
            changed = sorted(k for k in settings if old.chunker.get(k) != settings.get(k))
            return f"the chunker settings changed ({', '.join(changed)})"
        return ""

    def _store_moved(self, old: Manifest) -> bool:
        # A switch of vector engine (or of Milvus server) rewrites the index without
        # re-embedding: the vectors are carried over from the previous engine.
        if self.milvus is None:
            return old.engine != "faiss"
        uri = self.milvus.uri or default_uri(self.index_dir)
        return old.engine != "milvus" or uri != old.milvus_uri

    @staticmethod
    def _carry_over(
        previous: IndexStore | None, kept_ids: Sequence[str]
    ) -> tuple[list[Document], list[Chunk], list[int]]:
        if previous is None or not kept_ids:
            return [], [], []
        documents = [previous.document(d) for d in kept_ids]
        keep = set(kept_ids)
        chunks: list[Chunk] = []
        rows: list[int] = []
        for row, chunk in previous.all_chunks():
            if chunk.doc_id in keep:
                chunks.append(chunk)
                rows.append(row)
        return documents, chunks, rows


def _nothing(embedder: Embedder) -> Prepared:
    return Prepared([], [], [], np.zeros((0, embedder.dimension), dtype=np.float32), [], 0)
