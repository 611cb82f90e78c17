"""Reranks the head of the fused list by its best sentence and by what its section is about.

Questions are usually answered by one sentence, so a chunk that states the question's terms
together beats one that scatters them: each chunk of the head gains the (idf-weighted) share of
the question's terms its best sentence states, and its best sentence's cosine similarity to the
question. A chunk whose section is about a name the question asks about ("Minalogic") gains a
fixed bonus: the question's other words ("cluster", "label") fill the sections about other names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.question import QuestionProfile, mentions
from assistant.retrieval.fusion import FusionWeights, Scored
from assistant.store.index_store import IndexStore
from assistant.text import analyze, fold


@dataclass(frozen=True)
class Reranked:
    """The candidates with their reranked scores, the new order, and the sentence similarities read."""

    scored: Scored
    order: np.ndarray  # positions in `scored`, best first
    similarity: dict[int, np.ndarray]  # row -> cosine of each of its sentences (the head's rows)


class SentenceReranker:
    """Reranks the best `depth` candidates by their best sentence and their section's subject.

    Args:
        store: the index the rows belong to.
        weights: the `sentence`, `sentence_vector` and `subject` weights are used.
        depth: how many of the best fused candidates are reranked.
        cache_size: chunks whose sentence terms are kept (the same chunks recur).
    """

    def __init__(self, store: IndexStore, weights: FusionWeights, depth: int, cache_size: int = 50_000) -> None:
        self.store = store
        self.weights = weights
        self.depth = depth
        self.cache_size = cache_size
        self._sentence_terms: OrderedDict[int, list[frozenset[str]]] = OrderedDict()

    def rerank(self, scored: Scored, asked: QuestionProfile, query_vector: np.ndarray) -> Reranked:
        """Returns the candidates with the head reranked; the tail keeps its fused order."""
        w = self.weights
        order = np.argsort(-scored.fused, kind="stable")
        head = order[: self.depth]
        fused = scored.fused.copy()
        term_weights = _term_weights(asked.terms, self.store.keyword.idf)
        similarity: dict[int, np.ndarray] = {}
        for i in head:
            row = scored.rows[i]
            similarity[row] = self.store.sentence_vectors(row) @ query_vector
            best_sentence = float(similarity[row].max()) if len(similarity[row]) else 0.0
            fused[i] += w.sentence * self.sentence_coverage(row, term_weights)
            fused[i] += w.sentence_vector * best_sentence
            if asked.names and about(self.store.chunk(row).subject, asked.names):
                fused[i] += w.subject
        order = np.concatenate([head[np.argsort(-fused[head], kind="stable")], order[self.depth :]])
        return Reranked(Scored(scored.rows, scored.keyword, scored.cosine, fused), order, similarity)

    def sentence_coverage(self, row: int, weights: dict[str, float]) -> float:
        """Returns the weighted share of the question's terms stated by the chunk's best sentence."""
        total = sum(weights.values())
        if total <= 0:
            return 0.0
        best = 0.0
        for terms in self.sentence_terms(row):
            best = max(best, sum(w for t, w in weights.items() if t in terms))
        return best / total

    def sentence_terms(self, row: int) -> list[frozenset[str]]:
        """Returns the index terms of each sentence of a chunk (cached: the same chunks recur)."""
        cached = self._sentence_terms.get(row)
        if cached is not None:
            self._sentence_terms.move_to_end(row)
            return cached
        chunk = self.store.chunk(row)
        terms = [frozenset(analyze(chunk.sentence_text(s))) for s in chunk.sentences]
        self._sentence_terms[row] = terms
        if len(self._sentence_terms) > self.cache_size:
            self._sentence_terms.popitem(last=False)
        return terms


def about(subject: str, names: tuple[str, ...]) -> bool:
    """Tells whether a section's subject is one of the names a question asks about.

    "Which label does Minalogic hold?" is asked about the section headed "Minalogic", and
    "Cluj" about the one headed "Cluj IT Cluster".
    """
    if not subject:
        return False
    folded = fold(subject)
    return any(mentions(folded, name) or mentions(fold(name), subject) for name in names)


def _term_weights(terms: tuple[str, ...], idf: Callable[[str], float] | None) -> dict[str, float]:
    return {t: float(idf(t)) for t in terms} if callable(idf) else {t: 1.0 for t in terms}
