"""Keyword scores + vector similarities -> one fused score per candidate chunk.

BM25 is divided by the question's best BM25 score, so it lies in [0, 1] like the cosine
similarity, and the two are summed with weights. A weighted sum of normalised scores beats
reciprocal rank fusion here: rank fusion throws away how much better the best keyword match is,
and keyword matching is the stronger signal on names and numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    """How much each signal counts in a candidate's score."""

    keyword: float = 0.6
    vector: float = 0.4
    sentence: float = 0.3  # the best sentence's weighted share of the question's terms
    sentence_vector: float = 0.2  # the best sentence's cosine similarity to the question
    subject: float = 0.25  # the chunk's section (or document) is about a name the question asks about


@dataclass(frozen=True)
class Scored:
    """Candidate rows of the index with their keyword score, cosine and fused score."""

    rows: tuple[int, ...]
    keyword: np.ndarray
    cosine: np.ndarray
    fused: np.ndarray

    def __add__(self, other: Scored) -> Scored:
        return Scored(
            self.rows + other.rows,
            np.concatenate([self.keyword, other.keyword]),
            np.concatenate([self.cosine, other.cosine]),
            np.concatenate([self.fused, other.fused]),
        )


def fuse(
    rows: tuple[int, ...],
    keyword_scores: np.ndarray,
    best_keyword: float,
    vectors: np.ndarray,
    query_vector: np.ndarray,
    weights: FusionWeights,
) -> Scored:
    """Scores `rows`: keyword score (divided by the question's best), cosine, their weighted sum.

    Args:
        rows: the candidates' rows in the index.
        keyword_scores: BM25 score of every row of the index for this question.
        best_keyword: the question's best BM25 score (0: no keyword matched).
        vectors: the candidates' unit vectors, one row per candidate.
        query_vector: the question's unit vector.
        weights: the keyword and vector weights (the others are the reranker's).
    """
    keyword = keyword_scores[np.asarray(rows, dtype=np.int64)]
    cosine = vectors @ query_vector
    keyword_norm = keyword / best_keyword if best_keyword > 0 else keyword * 0
    return Scored(rows, keyword, cosine, weights.keyword * keyword_norm + weights.vector * cosine)


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Returns the rows of the k highest positive scores, best first (ties by row)."""
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.argsort(-scores[positive], kind="stable")]
