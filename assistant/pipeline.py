"""The Assistant facade: wires settings into the stages and runs the line.

    assistant = Assistant.from_settings(get_settings())
    assistant.index()                                  # corpus/ -> index/
    answer = assistant.ask("Which partners hold a Gold label?")
    print(answer.text, [c.quote for c in answer.citations])
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.answering import Answerer
from assistant.answering.extractive import ExtractiveAnswerer
from assistant.chunking import Chunker
from assistant.config import Settings
from assistant.conversation import standalone_question
from assistant.embedding import CachedEmbedder, EmbeddingCache, Embedder, SentenceTransformerEmbedder
from assistant.errors import QuestionError
from assistant.keyword_index import analyze
from assistant.indexer import IndexLimits, Indexer, IndexReport, Progress
from assistant.records import Answer, Turn
from assistant.retrieval import FusionWeights, Retriever
from assistant.store import CACHE_FILE, IndexStore, current_version

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


class Assistant:
    """Indexes a corpus and answers questions about it."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(settings.model)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

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
    ) -> IndexReport:
        """Brings the index up to date with the corpus, then serves from the new index."""
        s = self.settings
        cache = EmbeddingCache(s.index_dir / CACHE_FILE)
        try:
            indexer = Indexer(
                corpus_dir or s.corpus_dir,
                s.index_dir,
                CachedEmbedder(self.embedder, cache),
                self.chunker(),
                IndexLimits(s.max_file_mb, s.pdf_timeout_s, s.pdf_memory_mb),
                s.approximate_threshold,
            )
            report = indexer.run(rebuild=rebuild, progress=progress)
        finally:
            cache.close()
        if report.written:
            self.reload()
        return report

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
                    self._engine = self._load_engine()
                engine = self._engine
        return engine

    @property
    def store(self) -> IndexStore:
        """The loaded index."""
        return self.engine.store

    def _load_engine(self) -> Engine:
        s = self.settings
        store = IndexStore.load(s.index_dir, model=self.embedder.model_id)
        weights = FusionWeights(s.keyword_weight, s.vector_weight, s.sentence_weight)
        retriever = Retriever(store, self.embedder, weights=weights)
        answerer = ExtractiveAnswerer(idf=store.keyword.idf, similar=store.keyword.similar_terms)
        return Engine(store, retriever, answerer)

    def reload(self) -> None:
        """Switches to the index version on disk; requests in flight finish on the old one."""
        engine = self._load_engine()
        with self._lock:
            self._engine = engine

    def check_question(self, question: str) -> str:
        """Returns the question stripped, or raises QuestionError when it is empty or too long."""
        text = question.strip() if isinstance(question, str) else ""
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
        depth = k or self.settings.k
        # One consistent view: a reload during this call must not mix two indexes.
        engine = self.engine
        standalone = standalone_question(text, history, rarity=engine.rarity)
        hits = engine.retriever.search(standalone, depth)
        retrieved = time.perf_counter()
        answer = engine.answerer.answer(standalone, hits, history)
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

    def stream(self, question: str, history: Sequence[Turn] = (), k: int | None = None) -> Iterator[str | Answer]:
        """Yields the answer text in pieces as it is produced, then the finished Answer."""
        answer = self.ask(question, history, k)
        yield from text_pieces(answer.text)
        yield answer


def text_pieces(text: str, words: int = 4) -> Iterator[str]:
    """Cuts a finished text into small pieces (a few words each) for streaming."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    for i in range(0, len(tokens), words):
        yield "".join(tokens[i : i + words])
