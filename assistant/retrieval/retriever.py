"""Question -> ranked Hits: keyword and vector search fused by score, reranked by sentence.

1. BM25 and the vector index each return a deep candidate list (`fusion.top`, the store).
2. Every candidate gets both scores and their weighted sum (`fusion.fuse`).
3. The head of the list is reranked by its best sentence and its section's subject (`rerank`).
4. A list question about a name that heads a section with subsections gets the opening chunk of
   each subsection after the best hit (`structure`).
5. Near-duplicate chunks and more than `max_per_section` chunks of one headed section are held
   back, so that the top k cover more places (`diversity`).
"""

from __future__ import annotations

import logging

import numpy as np

from assistant.embedding import Embedder
from assistant.question import profile
from assistant.records import Hit
from assistant.retrieval.diversity import Diversity
from assistant.retrieval.fusion import FusionWeights, Scored, fuse, top
from assistant.retrieval.rerank import SentenceReranker
from assistant.retrieval.structure import subsections_first
from assistant.store.index_store import IndexStore

logger = logging.getLogger(__name__)


class Retriever:
    """Finds the chunks that best match a question, by words and by meaning.

    Args:
        store: the loaded index.
        embedder: embeds the question (the index's model).
        candidates: how deep each of keyword and vector search goes (at least 4 k).
        rerank: how many of the best fused candidates are reranked by sentence.
        weights: the fusion and rerank weights.
        max_per_section: hits kept from one headed section.
        duplicate_overlap: share of terms that makes a chunk a near duplicate of a kept one.
        widen: weight of vocabulary terms similar to the question's in keyword search (0: off).
    """

    def __init__(
        self,
        store: IndexStore,
        embedder: Embedder,
        *,
        candidates: int = 50,
        rerank: int = 30,
        weights: FusionWeights | None = None,
        max_per_section: int = 2,
        duplicate_overlap: float = 0.9,
        widen: float = 0.5,
    ) -> None:
        if candidates < 1 or rerank < 1:
            raise ValueError(f"candidates and rerank must be at least 1, not {candidates}, {rerank}")
        if max_per_section < 1:
            raise ValueError(f"max_per_section must be at least 1, not {max_per_section}")
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self.rerank = rerank
        self.weights = weights or FusionWeights()
        self.max_per_section = max_per_section
        self.duplicate_overlap = duplicate_overlap
        self.widen = widen
        self.reranker = SentenceReranker(store, self.weights, rerank)

    def search(self, query: str, k: int) -> list[Hit]:
        """Returns the k best hits for `query`, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        depth = max(self.candidates, k * 4)
        keyword_all = self.store.keyword.scores(self.store.keyword.query(query, self.widen))
        keyword_rows = top(keyword_all, depth)
        query_vector = self.embedder.embed([query])[0]
        _, vector_rows = self.store.vector_index.search(query_vector[None, :], depth)
        rows = tuple(dict.fromkeys([*keyword_rows.tolist(), *(int(r) for r in vector_rows[0] if r >= 0)]))
        if not rows:
            return []
        best_keyword = float(keyword_all[keyword_rows[0]]) if len(keyword_rows) else 0.0

        def scored(candidates: tuple[int, ...]) -> Scored:
            vectors = self.store.vectors_of(np.asarray(candidates, dtype=np.int64))
            return fuse(candidates, keyword_all, best_keyword, vectors, query_vector, self.weights)

        asked = profile(query)
        reranked = self.reranker.rerank(scored(rows), asked, query_vector)
        candidates, order = reranked.scored, reranked.order
        items: dict[int, str] = {}  # row -> heading of the section it is an item of
        if asked.wants_list and asked.names:
            listed = subsections_first(self.store, asked, rows, order, self.rerank, k)
            if listed is not None:
                order, items = listed.order, listed.items
                if listed.added:  # subsections that were no candidate: scored too
                    candidates = candidates + scored(listed.added)
        keyword_rank = {row: rank for rank, row in enumerate(keyword_rows.tolist(), 1)}
        vector_rank = {int(row): rank for rank, row in enumerate(vector_rows[0], 1)}
        diversity = Diversity(self.max_per_section, self.duplicate_overlap)
        hits: list[Hit] = []
        for i in order:
            row = candidates.rows[i]
            chunk = self.store.chunk(row)
            if not diversity.keep(chunk):
                continue
            similarity = reranked.similarity.get(row)
            if similarity is None:
                similarity = self.store.sentence_vectors(row) @ query_vector
            hits.append(
                Hit(
                    chunk=chunk,
                    score=float(candidates.fused[i]),
                    rank=len(hits) + 1,
                    keyword_rank=keyword_rank.get(row, 0),
                    vector_rank=vector_rank.get(row, 0),
                    keyword_score=float(candidates.keyword[i]),
                    vector_score=float(candidates.cosine[i]),
                    sentence_similarity=tuple(float(x) for x in similarity),
                    item_of=items.get(row, ""),
                )
            )
            if len(hits) == k:
                break
        return hits
