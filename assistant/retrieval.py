"""Question -> ranked Hits: keyword and vector search fused by rank, with diversity.

Both searches return a deep candidate list; reciprocal rank fusion (weighted) merges them, so
neither score scale has to be calibrated against the other. Near-duplicate chunks and more
than `max_per_section` chunks of one section are held back, so that the top k cover more
places (a list question often needs several sections or documents).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from assistant.embedding import Embedder
from assistant.keyword_index import analyze
from assistant.records import Hit
from assistant.store import IndexStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionWeights:
    """How much each ranked list counts in the fusion."""

    keyword: float = 1.0
    vector: float = 1.0
    rrf_k: int = 60


class Retriever:
    """Finds the chunks that best match a question, by words and by meaning."""

    def __init__(
        self,
        store: IndexStore,
        embedder: Embedder,
        *,
        candidates: int = 50,
        weights: FusionWeights | None = None,
        max_per_section: int = 2,
        duplicate_overlap: float = 0.9,
    ) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {candidates}")
        if max_per_section < 1:
            raise ValueError(f"max_per_section must be at least 1, not {max_per_section}")
        self.store = store
        self.embedder = embedder
        self.candidates = candidates
        self.weights = weights or FusionWeights()
        self.max_per_section = max_per_section
        self.duplicate_overlap = duplicate_overlap

    def search(self, query: str, k: int) -> list[Hit]:
        """Returns the k best hits for `query`, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        depth = max(self.candidates, k * 4)
        keyword_rows, keyword_scores = self.store.keyword.search(analyze(query), depth)
        query_vector = self.embedder.embed([query])
        vector_scores, vector_rows = self.store.vector_index.search(query_vector, depth)
        return self.fuse(
            keyword_rows, keyword_scores, vector_rows[0], vector_scores[0], k, query_vector[0]
        )

    def fuse(
        self,
        keyword_rows: np.ndarray,
        keyword_scores: np.ndarray,
        vector_rows: np.ndarray,
        vector_scores: np.ndarray,
        k: int,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Merges the two ranked lists and returns the k best diverse hits."""
        w = self.weights
        fused: dict[int, float] = {}
        info: dict[int, dict[str, float]] = {}
        for rank, (row, score) in enumerate(zip(keyword_rows, keyword_scores, strict=True), 1):
            row = int(row)
            fused[row] = fused.get(row, 0.0) + w.keyword / (w.rrf_k + rank)
            info.setdefault(row, {})
            info[row]["keyword_rank"] = rank
            info[row]["keyword_score"] = float(score)
        for rank, (row, score) in enumerate(zip(vector_rows, vector_scores, strict=True), 1):
            row = int(row)
            if row < 0:  # FAISS pads with -1 when it has fewer vectors than asked for
                continue
            fused[row] = fused.get(row, 0.0) + w.vector / (w.rrf_k + rank)
            info.setdefault(row, {})
            info[row]["vector_rank"] = rank
            info[row]["vector_score"] = float(score)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        hits: list[Hit] = []
        per_section: dict[tuple[str, tuple[str, ...]], int] = {}
        kept_terms: list[set[str]] = []
        for row, score in ranked:
            chunk = self.store.chunk(row)
            place = (chunk.doc_id, chunk.section_path)
            if per_section.get(place, 0) >= self.max_per_section:
                continue
            terms = set(analyze(chunk.text))
            if any(_overlap(terms, other) >= self.duplicate_overlap for other in kept_terms):
                continue
            per_section[place] = per_section.get(place, 0) + 1
            kept_terms.append(terms)
            data = info[row]
            if "vector_score" not in data and query_vector is not None:
                # A hit found by keywords alone still gets its similarity to the question:
                # the answerer uses it to tell an on-topic passage from a chance word match.
                data["vector_score"] = float(np.dot(self.store.vectors[row], query_vector))
            hits.append(
                Hit(
                    chunk=chunk,
                    score=score,
                    rank=len(hits) + 1,
                    keyword_rank=int(data.get("keyword_rank", 0)),
                    vector_rank=int(data.get("vector_rank", 0)),
                    keyword_score=data.get("keyword_score", 0.0),
                    vector_score=data.get("vector_score", 0.0),
                )
            )
            if len(hits) == k:
                break
        return hits


def _overlap(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))

