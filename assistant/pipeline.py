"""The Assistant facade: wires settings into the stages and runs the line.

assistant = Assistant.from_settings(Settings())
assistant.index()                                  # corpus/ -> index/
answer = assistant.ask("Which partners hold a Gold label?")
print(answer.text, [c.quote for c in answer.citations])
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from assistant.answering import Answerer
from assistant.answering.extractive import (
    ExtractiveAnswerer,
    ExtractiveCalibration,
    ExtractiveSettings,
    shipped_calibration,
)
from assistant.answering.llm import LLMAnswerer, StreamingAnswerer
from assistant.answering.reader import CALIBRATION_FILE, SHIPPED_READER, Reader, sha256_of
from assistant.answering.reader_answerer import ReaderAnswerer, ReaderGate
from assistant.config import Settings
from assistant.conversation.rewrite import standalone_question
from assistant.embedding import CachedEmbedder, Embedder, EmbeddingCache, make_embedder
from assistant.errors import (
    IndexBuildingError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    QuestionError,
)
from assistant.indexing.indexer import Indexer, IndexLimits, IndexReport, Progress
from assistant.ingest.chunking import Chunker
from assistant.records import Answer, Hit, Turn
from assistant.retrieval import FusionWeights, Retriever
from assistant.store.index_store import CACHE_FILE, IndexStore, current_version
from assistant.store.milvus import MilvusConfig
from assistant.text import analyze, text_pieces, visible_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engine:
    """One index version with the retriever and answerer over it, swapped as a whole."""

    store: IndexStore
    retriever: Retriever
    answerer: Answerer

    def rarity(self, word: str) -> float:
        """Returns how rare a word is in the index (its rarest term's idf)."""
        return max((self.store.keyword.idf(t) for t in analyze(word)), default=0.0)


@dataclass(frozen=True)
class IndexingStatus:
    """A running `Assistant.index()` -> how far it has got, stage by stage (a new one per step)."""

    started: float = field(default_factory=time.time)  # epoch seconds
    stages: tuple[tuple[str, int, int], ...] = ()  # (stage, done, total), in the order they began

    def advanced(self, stage: str, done: int, total: int) -> IndexingStatus:
        """Returns this status with `stage` at `done` of `total`."""
        stages = {name: (d, t) for name, d, t in self.stages}  # dicts keep the stages' order
        stages[stage] = (done, total)
        return IndexingStatus(self.started, tuple((name, d, t) for name, (d, t) in stages.items()))

    def describe(self) -> str:
        """Returns the progress in words: "5 of 5 documents read, 40 of 160 chunks embedded"."""
        words = {"read": "documents read", "embed": "chunks embedded"}
        parts = [
            f"{done} of {total} {words.get(stage, stage)}" if stage != "write" else "writing the index"
            for stage, done, total in self.stages
        ]
        return ", ".join(parts) or "scanning the corpus"


class Assistant:
    """Indexes a corpus and answers questions about it."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or make_embedder(
            settings.model, settings.embedding_backend, settings.model_cache_dir, settings.onnx_threads or None
        )
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        # Set while index() runs: a question that finds no usable index meanwhile is told
        # that one is being built, and how far it has got, instead of "run assistant index".
        self.indexing: IndexingStatus | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Assistant:
        """Builds the assistant described by the settings (the model loads on first use)."""
        return cls(settings)

    # -- indexing ---------------------------------------------------------------------

    def chunker(self) -> Chunker:
        """Returns the chunker the settings describe, bound to the model's window."""
        return Chunker(self.settings.chunk_tokens, self.settings.chunk_max_tokens, fits=self.embedder.fits)

    def index(
        self,
        *,
        corpus_dir: Path | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
        ray: str | None = None,
    ) -> IndexReport:
        """Brings the index up to date with the corpus, then serves from the new index.

        `ray`: None indexes in this process; a Ray address ("" for a local Ray instance)
        reads, chunks and embeds the new documents with Ray Data on that cluster.
        """
        s = self.settings
        self.indexing = IndexingStatus()

        def tick(stage: str, done: int, total: int) -> None:
            if self.indexing is not None:
                self.indexing = self.indexing.advanced(stage, done, total)
            if progress is not None:
                progress(stage, done, total)

        try:
            return self._index(corpus_dir or s.corpus_dir, rebuild, tick, ray)
        finally:
            self.indexing = None

    def _index(self, corpus_dir: Path, rebuild: bool, progress: Progress, ray: str | None) -> IndexReport:
        s = self.settings
        cache = EmbeddingCache(s.index_dir / CACHE_FILE)
        try:
            embedder = CachedEmbedder(self.embedder, cache)
            chunker = self.chunker()
            limits = IndexLimits(s.max_file_mb, s.pdf_timeout_s, s.pdf_memory_mb)
            preparer = None
            if ray is not None:
                from assistant.indexing.ray import RayPreparer

                preparer = RayPreparer(
                    ray,
                    self.embedder,
                    chunker,
                    limits,
                    batch_size=s.ray_batch_size,
                    actors=s.ray_actors,
                )
            indexer = Indexer(
                corpus_dir,
                s.index_dir,
                embedder,
                chunker,
                limits,
                s.approximate_threshold,
                milvus=self.milvus_config() if s.store == "milvus" else None,
                preparer=preparer,
            )
            report = indexer.run(rebuild=rebuild, progress=progress)
        finally:
            cache.close()
        if report.written:
            self.reload()
        return report

    def milvus_config(self) -> MilvusConfig:
        """Returns how to reach Milvus, from the settings (used when an index lives there)."""
        s = self.settings
        return MilvusConfig(
            uri=s.milvus_uri,
            token=s.milvus_token.get_secret_value(),
            collection=s.milvus_collection,
            index=s.milvus_index,
            shards=s.milvus_shards,
            replicas=s.milvus_replicas,
            consistency=s.milvus_consistency,
        )

    def has_index(self) -> bool:
        """Tells whether an index exists in the configured folder."""
        return current_version(self.settings.index_dir) is not None

    # -- answering --------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The loaded index with its retriever and answerer (loaded once, on first use)."""
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._first_engine()
                engine = self._engine
        return engine

    def _first_engine(self) -> Engine:
        try:
            return self._load_engine()
        except (IndexNotFoundError, IndexMismatchError, IndexCorruptError) as exc:
            indexing = self.indexing
            if indexing is None:
                raise
            # The index being built replaces the missing or unusable one.
            first = "the first" if isinstance(exc, IndexNotFoundError) else "a new"
            raise IndexBuildingError(self.settings.index_dir, f"building {first} index: {indexing.describe()}") from exc

    @cached_property
    def reader(self) -> Reader:
        """The reader that chooses answer sentences (loaded once, shared by index versions)."""
        return Reader(self.settings.reader_dir or SHIPPED_READER, threads=self.settings.onnx_threads or None)

    @property
    def gated(self) -> bool:
        """Whether answers pass the reader's gate: the extractive answerer's (the default), and the
        LLM answerer's questions before a model call (its fallback, the extractive one, too)."""
        return self.settings.answerer in ("extractive", "llm") and self.settings.reader_gate

    @cached_property
    def extractive_calibration(self) -> ExtractiveCalibration:
        """The extractive answerer's fitted weights (the shipped ones unless configured)."""
        path = self.settings.extractive_calibration
        return ExtractiveCalibration.load(path) if path else shipped_calibration()

    def setup(self) -> dict[str, str]:
        """What answers depend on besides the code: the answerer, its fitted numbers, the model, the corpus.

        An eval baseline records it, so that a baseline made with other weights or documents is
        not compared as if nothing had changed.
        """
        s = self.settings
        manifest = self.store.manifest
        corpus = hashlib.sha256()
        for doc_id, entry in sorted(manifest.documents.items()):
            corpus.update(f"{doc_id}\0{entry['hash']}\n".encode())
        calibration = self.extractive_calibration.sha256
        if s.answerer == "reader" or self.gated:
            # Both answerers' fitted numbers count: the extractive one reads the languages the
            # reader does not, and the reader's gate checks the extractive one's answers.
            calibration = f"{sha256_of(self.reader.model_dir / CALIBRATION_FILE)}+{calibration}"
        answerer = f"llm:{s.llm_model}" if s.answerer == "llm" else s.answerer
        return {
            "answerer": f"{answerer}+reader-gate" if self.gated else answerer,
            "calibration_sha256": calibration,
            "embedding_model": manifest.model,
            "corpus_sha256": corpus.hexdigest(),
        }

    @property
    def store(self) -> IndexStore:
        """The loaded index."""
        return self.engine.store

    def _load_engine(self) -> Engine:
        s = self.settings
        store = IndexStore.load(s.index_dir, model=self.embedder.model_id, milvus=self.milvus_config())
        weights = FusionWeights(s.keyword_weight, s.vector_weight, s.sentence_weight)
        retriever = Retriever(store, self.embedder, weights=weights)
        return Engine(store, retriever, self._answerer(store))

    def _answerer(self, store: IndexStore) -> Answerer:
        """The answerer the settings name, over one loaded index."""
        s = self.settings
        calibration = self.extractive_calibration
        stale = calibration.stale_for(store.manifest.model)
        if stale:
            logger.warning(stale)
        documents = store.manifest.documents

        def language_of(doc_id: str) -> str:
            return str(documents.get(doc_id, {}).get("language", "und"))

        rules = ExtractiveAnswerer(
            ExtractiveSettings(calibration=calibration),
            idf=store.keyword.idf,
            similar=store.keyword.similar_terms,
            knows_name=store.keyword.knows_name,
            previous=store.previous_chunk,
            language_of=language_of,
        )
        if s.answerer != "reader" and not self.gated:
            return rules if s.answerer == "extractive" else self._llm(rules)
        reader = ReaderAnswerer(
            self.reader,
            idf=store.keyword.idf,
            knows_name=store.keyword.knows_name,
            previous=store.previous_chunk,
            language_of=language_of,
            other_languages=rules,
        )
        if s.answerer == "reader":
            return reader
        gate = ReaderGate(rules, reader)
        if gate.threshold <= 0:
            logger.warning(
                "%s has no gate threshold, so the reader's gate declines nothing: refit it with "
                "`assistant train-reader --calibrate-only --out %s`",
                self.reader.model_dir / CALIBRATION_FILE,
                self.reader.model_dir,
            )
        return gate if s.answerer == "extractive" else self._llm(gate, gate.answerable)

    def _llm(self, fallback: Answerer, answerable: Callable[[str, Sequence[Hit]], bool] | None = None) -> Answerer:
        s = self.settings
        return LLMAnswerer(
            s.llm_model,
            fallback=fallback,
            base_url=s.llm_base_url,
            api_key=s.llm_api_key,
            timeout_s=s.llm_timeout_s,
            max_tokens=s.llm_max_tokens,
            answerable=answerable,
        )

    def reload(self) -> None:
        """Switches to the index version on disk; requests in flight finish on the old one."""
        engine = self._load_engine()
        with self._lock:
            self._engine = engine

    def refresh(self) -> bool:
        """Switches to the index version on disk if another process made a new one current.

        How a server follows builds made elsewhere (another worker of `assistant serve`,
        `assistant index` in a terminal): returns True when it switched. Before the first
        load there is nothing to switch from: the index loads on first use, as always.
        """
        engine = self._engine
        if engine is None:
            return False
        folder = current_version(self.settings.index_dir)
        if folder is None or folder == engine.store.path:
            return False
        self.reload()
        return True

    def check_question(self, question: str) -> str:
        """Returns the question as read, or raises QuestionError when it is empty or too long.

        The one check every surface (HTTP, OpenAI, Slack, CLI) goes through: control, format
        and lone surrogate code points are taken out first, so "\\x00" or "\\u200b" is empty.
        """
        text = visible_text(question) if isinstance(question, str) else ""
        if not text:
            raise QuestionError("the question is empty: ask something about the documents")
        if len(text) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question has {len(text)} characters; the limit is "
                f"{self.settings.max_question_chars} (ASSISTANT_MAX_QUESTION_CHARS)"
            )
        return text

    def ask(self, question: str, history: Sequence[Turn] = (), k: int | None = None) -> Answer:
        """Answers a question (a follow-up of `history` if given) from the index."""
        started = time.perf_counter()
        text = self.check_question(question)
        # One consistent view: a reload during this call must not mix two indexes.
        engine = self.engine
        standalone, hits = self._retrieve(engine, text, history, k)
        retrieved = time.perf_counter()
        answer = engine.answerer.answer(standalone, hits, history)
        return _completed(answer, text, standalone, hits, started, retrieved)

    def stream(self, question: str, history: Sequence[Turn] = (), k: int | None = None) -> Iterator[str | Answer]:
        """Yields the answer text in pieces as it is produced, then the finished Answer.

        An answerer that streams (the LLM one) yields its text as it is written; its final
        Answer's text is authoritative. Otherwise the finished answer is cut into pieces.
        """
        started = time.perf_counter()
        text = self.check_question(question)
        engine = self.engine
        if not isinstance(engine.answerer, StreamingAnswerer):
            answer = self.ask(question, history, k)
            yield from text_pieces(answer.text)
            yield answer
            return
        standalone, hits = self._retrieve(engine, text, history, k)
        retrieved = time.perf_counter()
        for piece in engine.answerer.stream(standalone, hits, history):
            if isinstance(piece, Answer):
                yield _completed(piece, text, standalone, hits, started, retrieved)
            else:
                yield piece

    def _retrieve(self, engine: Engine, text: str, history: Sequence[Turn], k: int | None) -> tuple[str, list[Hit]]:
        """Returns the question as searched (follow-ups rewritten) and its hits."""
        standalone = standalone_question(text, history, rarity=engine.rarity)
        return standalone, engine.retriever.search(standalone, k or self.settings.k)


def _completed(
    answer: Answer,
    text: str,
    standalone: str,
    hits: Sequence[Hit],
    started: float,
    retrieved: float,
) -> Answer:
    """Returns the answerer's answer as the assistant gives it: the question asked, timings."""
    done = time.perf_counter()
    return Answer(
        question=text,
        text=answer.text,
        citations=answer.citations,
        abstained=answer.abstained,
        hits=tuple(hits),
        standalone_question=standalone,
        timings_ms={
            "retrieval": (retrieved - started) * 1000,
            "answer": (done - retrieved) * 1000,
            "total": (done - started) * 1000,
        },
        answerer=answer.answerer,
        confidence=answer.confidence,
    )
