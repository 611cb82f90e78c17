"""Texts -> terms -> a BM25 index over chunks (sparse matrices, so it stays fast at a million).

Terms are lower-cased, accent-folded and Snowball-stemmed; a hyphenated name also yields its
joined form ("Pool-Net" -> pool, net, poolnet) so that "Poolnet" finds it. Adjacent terms are
indexed as phrases too ("gold label", "smart industri"): a name made of common words is rare
as a phrase. The index keeps raw term frequencies, so an update carries unchanged chunks over
and only analyses new ones.

A query can be widened over the vocabulary: a term also matches, with less weight, the
indexed words that share its first six letters or end with it. That bridges inflections the
stemmer misses and, across languages, cognates and compounds: "australian" meets "australien",
"strategy" meets the Swedish "nyindustrialiseringsstrategi", "expert" meets "klusterexpert".
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from assistant.text import analyze
from assistant.thesaurus import related_terms


def with_phrases(terms: Sequence[str]) -> list[str]:
    """Adds each pair of adjacent terms as a phrase term ("gold label")."""
    return [*terms, *(f"{a} {b}" for a, b in zip(terms, terms[1:], strict=False) if a != b)]


def index_terms(text: str) -> list[str]:
    """Returns what the keyword index stores for a text: its terms and their phrases."""
    return with_phrases(analyze(text))


def _one_edit_away(word: str) -> Iterator[str]:
    """Yields the strings one deletion, transposition, substitution or insertion from a word."""
    letters = set("abcdefghijklmnopqrstuvwxyz") | set(word)
    for i in range(len(word) + 1):
        head, tail = word[:i], word[i:]
        if tail:
            yield head + tail[1:]
            if len(tail) > 1:
                yield head + tail[1] + tail[0] + tail[2:]
            for c in letters:
                yield head + c + tail[1:]
        for c in letters:
            yield head + c + tail


class KeywordIndex:
    """Okapi BM25 over a fixed list of chunks (row i is chunk i)."""

    def __init__(
        self,
        vocabulary: dict[str, int],
        frequencies: sparse.csr_matrix,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"k1 must be >= 0 and b in [0, 1], not k1={k1}, b={b}")
        self.vocabulary = vocabulary
        self.frequencies = frequencies  # rows: chunks, columns: terms, values: counts
        self.k1 = k1
        self.b = b
        self._sorted: list[str] | None = None
        self._reversed: list[str] = []
        self._prepare()

    def _prepare(self) -> None:
        tf = self.frequencies.tocsc().astype(np.float32)
        n_docs, n_terms = tf.shape
        self.size = n_docs
        lengths = np.asarray(self.frequencies.sum(axis=1)).ravel().astype(np.float32)
        average = float(lengths.mean()) if n_docs else 1.0
        df = np.diff(tf.indptr).astype(np.float32)
        # Lucene's BM25 idf, always positive.
        self.idf_values = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = self.k1 * (1 - self.b + self.b * lengths / max(average, 1e-9))
        # Scale each stored frequency into its BM25 term weight, column by column.
        rows = tf.indices
        counts = tf.data
        term_of_value = np.repeat(np.arange(n_terms), np.diff(tf.indptr))
        weights = self.idf_values[term_of_value] * counts * (self.k1 + 1) / (counts + norm[rows])
        self.weights = sparse.csc_matrix((weights, rows, tf.indptr), shape=tf.shape).T.tocsr()

    @classmethod
    def build(cls, term_lists: Iterable[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> KeywordIndex:
        """Indexes one term list per chunk."""
        vocabulary: dict[str, int] = {}
        frequencies = cls._count(term_lists, vocabulary)
        return cls(vocabulary, frequencies, k1, b)

    @staticmethod
    def _count(term_lists: Iterable[Sequence[str]], vocabulary: dict[str, int]) -> sparse.csr_matrix:
        data: list[int] = []
        indices: list[int] = []
        indptr = [0]
        for terms in term_lists:
            counts = Counter(terms)
            for term, n in counts.items():
                column = vocabulary.setdefault(term, len(vocabulary))
                indices.append(column)
                data.append(n)
            indptr.append(len(indices))
        shape = (len(indptr) - 1, len(vocabulary))
        return sparse.csr_matrix(
            (np.asarray(data, dtype=np.int32), np.asarray(indices, dtype=np.int32), indptr),
            shape=shape,
        )

    def updated(self, keep_rows: Sequence[int], new_term_lists: Sequence[Sequence[str]]) -> KeywordIndex:
        """Returns a new index of the kept rows (in that order) followed by new chunks."""
        vocabulary = dict(self.vocabulary)
        kept = self.frequencies[np.asarray(keep_rows, dtype=np.int64)]
        added = self._count(new_term_lists, vocabulary)
        width = len(vocabulary)
        kept.resize((kept.shape[0], width))
        added.resize((added.shape[0], width))
        frequencies = sparse.vstack([kept, added], format="csr")
        return KeywordIndex(vocabulary, frequencies, self.k1, self.b)

    def idf(self, term: str) -> float:
        """Returns a term's inverse document frequency; an unknown term counts as the rarest."""
        column = self.vocabulary.get(term)
        if column is None:
            # Like a term seen once: in a small corpus an unseen everyday word ("go") must not
            # outweigh every word the corpus does contain.
            return float(np.log1p((self.size - 1 + 0.5) / 1.5))
        return float(self.idf_values[column])

    def knows_name(self, name: str) -> bool:
        """Tells whether the indexed chunks may mention a name ("FIFA World Cup": no).

        Known: one of its adjacent word pairs is an indexed phrase ("Smart Industri" for
        "Smart Industri project"), or at least half of its words are known. A word is known
        when it is indexed, one typo away from an indexed word ("Primier"), or shares its start
        or end with one (another language's form: "Australian" in "australiensisk", "Facebook"
        in "Facebooksida"). Numbers are not checked; a name of nothing else counts as known.
        """
        terms = [t for t in analyze(name) if not any(c.isdigit() for c in t)]
        if not terms:
            return True
        if any(f"{a} {b}" in self.vocabulary for a, b in zip(terms, terms[1:], strict=False)):
            return True
        # Most of its words known: a name the documents may word differently ("Western Europe").
        return 2 * sum(self._knows_word(t) for t in terms) >= len(terms)

    def _knows_word(self, term: str) -> bool:
        """An indexed word, one a typo away from it ("primier"), or one sharing its start or end."""
        if term in self.vocabulary or self.similar_terms(term, limit=1):
            return True
        return len(term) >= 4 and any(v in self.vocabulary for v in _one_edit_away(term))

    def scores(self, terms: Sequence[str] | dict[str, float]) -> np.ndarray:
        """Returns the BM25 score of every chunk for the query terms (optionally weighted)."""
        weighted: dict[int, float] = {}
        items = terms.items() if isinstance(terms, dict) else ((t, 1.0) for t in terms)
        for term, weight in items:
            column = self.vocabulary.get(term)
            if column is not None:
                weighted[column] = weighted.get(column, 0.0) + weight
        if not weighted or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        ids = np.fromiter(weighted.keys(), dtype=np.int64)
        multiplicity = np.fromiter(weighted.values(), dtype=np.float32)
        rows = self.weights[ids]
        return np.asarray(rows.T @ multiplicity, dtype=np.float32).ravel()

    def query(self, text: str, widen: float = 0.4) -> dict[str, float]:
        """Returns a question's weighted query: its terms and phrases, and widened terms.

        Widened terms (weight `widen`) are indexed words of the same root ("recognised" for
        "recognition") and the thesaurus's words for a term ("located" for "based").
        """
        terms = analyze(text)
        query = dict.fromkeys(with_phrases(terms), 1.0)
        if widen > 0:
            for term in terms:
                for other in [*self.similar_terms(term), *related_terms(term)]:
                    query.setdefault(other, widen)
        return query

    def similar_terms(self, term: str, limit: int = 8) -> list[str]:
        """Returns indexed words sharing the term's first six letters, or ending with it."""
        if len(term) < 5 or not term.isalpha():
            return []
        if self._sorted is None:
            words_only = [t for t in self.vocabulary if " " not in t]
            self._sorted = sorted(words_only)
            self._reversed = sorted(t[::-1] for t in words_only)
        prefix = term[:6]
        found: list[str] = []
        i = bisect.bisect_left(self._sorted, prefix)
        while i < len(self._sorted) and self._sorted[i].startswith(prefix) and len(found) < limit:
            if self._sorted[i] != term:
                found.append(self._sorted[i])
            i += 1
        # Compounds put their head last: "klusterexpert" ends with "expert".
        backwards = term[::-1]
        j = bisect.bisect_left(self._reversed, backwards)
        while j < len(self._reversed) and self._reversed[j].startswith(backwards) and len(found) < limit * 2:
            word = self._reversed[j][::-1]
            if len(word) >= len(term) + 3:
                found.append(word)
            j += 1
        return found

    def search(self, terms: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns the rows and scores of the k best chunks with a positive score."""
        scores = self.scores(terms)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = positive[np.argpartition(-scores[positive], k - 1)[:k]] if positive.size > k else positive
        order = top[np.argsort(-scores[top], kind="stable")]
        return order, scores[order]

    def save(self, folder: Path) -> None:
        """Writes keyword.npz and keyword.json into `folder`."""
        tf = self.frequencies
        np.savez(
            folder / "keyword.npz",
            data=tf.data,
            indices=tf.indices,
            indptr=tf.indptr,
            shape=np.asarray(tf.shape),
        )
        meta = {"k1": self.k1, "b": self.b, "vocabulary": self.vocabulary}
        (folder / "keyword.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        """Reads an index written by `save`."""
        meta = json.loads((folder / "keyword.json").read_text(encoding="utf-8"))
        # Open the file ourselves: np.load leaks its handle when the archive is damaged.
        with open(folder / "keyword.npz", "rb") as handle, np.load(handle) as arrays:
            shape = tuple(int(x) for x in arrays["shape"])
            tf = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        return cls(meta["vocabulary"], tf, float(meta["k1"]), float(meta["b"]))
