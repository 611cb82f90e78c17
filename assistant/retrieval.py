"""Question -> ranked Hits: keyword and vector search fused by score, reranked by sentence.

1. BM25 and the vector index each return a deep candidate list.
2. Every candidate gets both scores (BM25 divided by the best BM25 score of the question, so it
   lies in [0, 1] like the cosine similarity) and a weighted sum of the two. A weighted sum of
   normalised scores beats reciprocal rank fusion here: rank fusion throws away how much better
   the best keyword match is, and keyword matching is the stronger signal on names and numbers.
3. The best candidates are reranked with one more signal: how much of the question the best
   single sentence of the chunk covers. Questions are usually answered by one sentence, so a
   chunk that states the question's terms together beats one that scatters them. A chunk whose
   section is about a name the question asks about ("Minalogic") gains a fixed bonus: the
   question's other words ("cluster", "label") fill the sections about other names.
4. Near-duplicate chunks and more than `max_per_section` chunks of one headed section are held
   back, so that the top k cover more places (a list question often needs several).
5. A list question about a name that heads a section with subsections ("Which clusters represent
   Auvergne-Rhône-Alpes?" and "3.3.1. Auvergne Rhône-Alpes" > "Plastipolis", "Viameca", ...)
   gets the opening chunk of each subsection, after the best hit: the document's own structure
   lists the items, even when their text never repeats the question's words.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from assistant.embedding import Embedder
from assistant.keyword_index import analyze, fold
from assistant.question import QuestionProfile, mentions, profile
from assistant.records import Chunk, Hit
from assistant.store import IndexStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionWeights:
    """How much each signal counts in a candidate's score."""

    keyword: float = 0.6
    vector: float = 0.4
    sentence: float = 0.3  # the best sentence's weighted share of the question's terms
    sentence_vector: float = 0.2  # the best sentence's cosine similarity to the question
    subject: float = 0.25  # the chunk's section (or document) is about a name the question asks about


class Retriever:
    """Finds the chunks that best match a question, by words and by meaning."""

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
        self.widen = widen  # weight of vocabulary terms similar to the question's (0: off)
        self._sentence_terms: OrderedDict[int, list[frozenset[str]]] = OrderedDict()

    def search(self, query: str, k: int) -> list[Hit]:
        """Returns the k best hits for `query`, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        depth = max(self.candidates, k * 4)
        keyword_all = self.store.keyword.scores(self.store.keyword.query(query, self.widen))
        keyword_rows = _top(keyword_all, depth)
        query_vector = self.embedder.embed([query])[0]
        _, vector_rows = self.store.vector_index.search(query_vector[None, :], depth)
        rows = list(dict.fromkeys([*keyword_rows.tolist(), *(int(r) for r in vector_rows[0] if r >= 0)]))
        if not rows:
            return []
        w = self.weights
        best_keyword = float(keyword_all[keyword_rows[0]]) if len(keyword_rows) else 0.0

        def fuse(candidates: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # Keyword score (divided by the question's best), cosine, and their weighted sum.
            array = np.asarray(candidates, dtype=np.int64)
            keyword = keyword_all[array]
            cosine = self.store.vectors_of(array) @ query_vector
            keyword_norm = keyword / best_keyword if best_keyword > 0 else keyword * 0
            return keyword, cosine, w.keyword * keyword_norm + w.vector * cosine

        keyword, cosine, fused = fuse(rows)
        order = np.argsort(-fused, kind="stable")
        # Rerank the head of the list with the best single sentence's coverage of the question.
        head = order[: self.rerank]
        asked = profile(query)
        weights = _term_weights(asked.terms, self.store.keyword.idf)
        similarity: dict[int, np.ndarray] = {}
        for i in head:
            row = rows[i]
            similarity[row] = self.store.sentence_vectors(row) @ query_vector
            best_sentence = float(similarity[row].max()) if len(similarity[row]) else 0.0
            fused[i] += w.sentence * self._sentence_coverage(row, weights)
            fused[i] += w.sentence_vector * best_sentence
            if asked.names and _about(self.store.chunk(row).subject, asked.names):
                fused[i] += w.subject
        order = np.concatenate([head[np.argsort(-fused[head], kind="stable")], order[self.rerank :]])
        items: dict[int, str] = {}  # row -> heading of the section it is an item of
        if asked.wants_list and asked.names:
            order = self._subsections_first(asked, rows, order, k, items)
            if len(rows) > len(fused):  # subsections that were no candidate: score them too
                extra = fuse(rows[len(fused) :])
                keyword, cosine, fused = (
                    np.concatenate(pair) for pair in zip((keyword, cosine, fused), extra, strict=True)
                )
        keyword_rank = {row: rank for rank, row in enumerate(keyword_rows.tolist(), 1)}
        vector_rank = {int(row): rank for rank, row in enumerate(vector_rows[0], 1)}
        hits: list[Hit] = []
        per_section: dict[tuple[str, tuple[str, ...]], int] = {}
        kept_terms: list[set[str]] = []
        for i in order:
            row = rows[i]
            chunk = self.store.chunk(row)
            if not self._diverse(chunk, per_section, kept_terms):
                continue
            hits.append(
                Hit(
                    chunk=chunk,
                    score=float(fused[i]),
                    rank=len(hits) + 1,
                    keyword_rank=keyword_rank.get(row, 0),
                    vector_rank=vector_rank.get(row, 0),
                    keyword_score=float(keyword[i]),
                    vector_score=float(cosine[i]),
                    sentence_similarity=tuple(
                        float(x) for x in similarity.get(row, self.store.sentence_vectors(row) @ query_vector)
                    ),
                    item_of=items.get(row, ""),
                )
            )
            if len(hits) == k:
                break
        return hits

    def _subsections_first(
        self, asked: QuestionProfile, rows: list[int], order: np.ndarray, k: int, items: dict[int, str]
    ) -> np.ndarray:
        # The deepest section among the best candidates' ancestors whose heading names what the
        # question names, with 2 to k - 1 subsections: the first chunk of each subsection follows
        # the best hit.
        best: tuple[int, str, tuple[str, ...]] | None = None
        for i in order[: self.rerank]:
            chunk = self.store.chunk(rows[i])
            for depth in range(1, len(chunk.section_path)):
                heading = fold(chunk.section_path[depth - 1])
                if any(mentions(heading, name) for name in asked.names) and (best is None or depth > best[0]):
                    best = (depth, chunk.doc_id, chunk.section_path[:depth])
        if best is None:
            return order
        depth, doc_id, parent = best
        children: dict[tuple[str, ...], int] = {}  # subsection -> its first row
        for row in self.store.rows_of_document(doc_id):
            path = self.store.chunk(row).section_path
            if len(path) > depth and path[:depth] == parent:
                children.setdefault(path[: depth + 1], row)
        if not 2 <= len(children) < k:
            return order
        position = {row: i for i, row in enumerate(rows)}
        chosen: list[int] = []
        for first_row in children.values():
            # A subsection's first chunk introduces its item ("Plastipolis is the only ...").
            if first_row not in position:
                position[first_row] = len(rows)
                rows.append(first_row)
            chosen.append(position[first_row])
            items[first_row] = parent[-1]
        first = int(order[0])
        picked = {first, *chosen}
        return np.asarray([first, *(i for i in chosen if i != first), *(int(i) for i in order if int(i) not in picked)])

    def _diverse(
        self,
        chunk: Chunk,
        per_section: dict[tuple[str, tuple[str, ...]], int],
        kept_terms: list[set[str]],
    ) -> bool:
        # Only headed sections are capped: a document without headings is one long "section",
        # and capping it would hide most of it.
        place = (chunk.doc_id, chunk.section_path)
        if chunk.section_path and per_section.get(place, 0) >= self.max_per_section:
            return False
        terms = set(analyze(chunk.text))
        if any(_overlap(terms, other) >= self.duplicate_overlap for other in kept_terms):
            return False
        per_section[place] = per_section.get(place, 0) + 1
        kept_terms.append(terms)
        return True

    def _sentence_coverage(self, row: int, weights: dict[str, float]) -> float:
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
        if len(self._sentence_terms) > 50_000:
            self._sentence_terms.popitem(last=False)
        return terms


def _about(subject: str, names: tuple[str, ...]) -> bool:
    # "Which label does Minalogic hold?" is asked about the section headed "Minalogic", and
    # "Cluj" about the one headed "Cluj IT Cluster".
    if not subject:
        return False
    folded = fold(subject)
    return any(mentions(folded, name) or mentions(fold(name), subject) for name in names)


def _term_weights(terms: tuple[str, ...], idf: object) -> dict[str, float]:
    return {t: float(idf(t)) for t in terms} if callable(idf) else {t: 1.0 for t in terms}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    positive = np.flatnonzero(scores > 0)
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.argsort(-scores[positive], kind="stable")]


def _overlap(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
