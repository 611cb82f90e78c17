"""Question + Hits -> Answer built from the documents' own sentences, with citations.

No model writes anything: the answer is the sentence that states the fact, or for a list
question a lead line naming every item followed by the sentence behind each. A sentence that
only says "this cluster" is attributed to the subject of its section. When no sentence covers
the question well enough, the answer says so instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.answering.citations import cite
from assistant.question import QuestionProfile, profile
from assistant.documents import BOILERPLATE
from assistant.keyword_index import analyze
from assistant.records import NOT_FOUND, Answer, Chunk, Citation, Hit, Sentence, Turn

# A sentence that refers to its subject without naming it: "This cluster ...", "It owns ...".
_ANAPHOR = re.compile(
    r"^(it|its|they|their|these|such|this|that|he|she|his|her)\b|"
    r"^the\s+(cluster|association|organi[sz]ation|cent(re|er)|network|entity|company|region|"
    r"project|initiative|group|partner|platform|programme|program|consortium|institute)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?<![^\W\d_])\d+(?:[.,]\d+)*(?![^\W\d_])|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b|\b(january|february|march|april|may|june|july|"
                   r"august|september|october|november|december)\b", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+")
_WEB_CUES = re.compile(r"\b(website|web site|url|link|profile|homepage|site)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with the evidence that it answers the question."""

    hit: Hit
    sentence: Sentence
    text: str
    score: float
    coverage: float  # weighted share of the question's terms found in or around the sentence
    matched: frozenset[str]  # question terms found in the sentence itself


@dataclass
class ExtractiveSettings:
    """The knobs of the extractive answerer, calibrated on the gold set."""

    min_coverage: float = 0.5  # below this share of the question's terms: not found
    min_similarity: float = 0.2  # below this question-passage cosine: off-topic
    list_ratio: float = 0.75  # list items must score this share of the best sentence
    max_items: int = 10
    context_weight: float = 0.6  # a term in the heading or title counts this much
    similarity_weight: float = 0.3


class ExtractiveAnswerer:
    """Answers from retrieved passages by selecting and citing their sentences."""

    name = "extractive"

    def __init__(self, settings: ExtractiveSettings | None = None, idf: object | None = None) -> None:
        self.settings = settings or ExtractiveSettings()
        # A callable term -> inverse document frequency (the keyword index's), if available.
        self._idf = idf

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Returns a grounded answer, or an abstention when the hits do not answer it."""
        q = profile(question)
        candidates = self._candidates(q, hits)
        if not candidates or not self._answerable(q, candidates, hits):
            return Answer(question=question, text=NOT_FOUND, citations=(), abstained=True, hits=tuple(hits))
        best = candidates[0]
        if q.wants_list:
            items = self._list_items(q, candidates)
            if len(items) > 1:
                return self._list_answer(question, items, hits)
        return self._fact_answer(question, best, hits)

    # -- scoring ----------------------------------------------------------------------

    def idf(self, term: str) -> float:
        """Returns a term's rarity; flat when no keyword index is attached."""
        if callable(self._idf):
            return float(self._idf(term))
        return 1.0

    def _candidates(self, q: QuestionProfile, hits: Sequence[Hit]) -> list[Scored]:
        weights = {t: self.idf(t) for t in q.terms}
        total = sum(weights.values())
        if total <= 0:
            return []
        seen: set[tuple[str, int, int]] = set()
        scored: list[Scored] = []
        for hit in hits:
            chunk = hit.chunk
            context = set(analyze(" ".join([chunk.title, chunk.subject, *chunk.section_path])))
            for sentence in chunk.sentences:
                key = (chunk.doc_id, sentence.start, sentence.end)
                if key in seen:
                    continue
                seen.add(key)
                text = chunk.sentence_text(sentence)
                if not self._usable(text, chunk, q):
                    continue
                terms = analyze(text)
                term_set = set(terms)
                direct = frozenset(t for t in q.terms if t in term_set)
                around = [t for t in q.terms if t not in term_set and t in context]
                coverage = (
                    sum(weights[t] for t in direct)
                    + self.settings.context_weight * sum(weights[t] for t in around)
                ) / total
                score = coverage + self._shape_bonus(q, text, terms)
                score += self.settings.similarity_weight * max(hit.vector_score, 0.0)
                score += 0.05 / hit.rank
                if len(text.split()) > 60:
                    score -= 0.05
                scored.append(Scored(hit, sentence, text, score, coverage, direct))
        scored.sort(key=lambda s: (-s.score, s.hit.rank, s.sentence.start))
        return scored

    def _usable(self, text: str, chunk: Chunk, q: QuestionProfile) -> bool:
        stripped = text.strip()
        if len(stripped.split()) < 4 or BOILERPLATE.match(stripped):
            return False
        if stripped in chunk.section_path or stripped == chunk.title:
            return False
        if _URL.search(stripped) and not _WEB_CUES.search(q.text):
            return len(_URL.sub("", stripped).split()) >= 8
        return True

    def _shape_bonus(self, q: QuestionProfile, text: str, terms: list[str]) -> float:
        bonus = 0.0
        # Question words that stand next to each other in the sentence too ("gold label").
        pairs = set(zip(terms, terms[1:], strict=False))
        bonus += 0.1 * min(2, sum(1 for pair in zip(q.terms, q.terms[1:], strict=False) if pair in pairs))
        if q.wants_number:
            bonus += 0.15 if _NUMBER.search(text) else -0.25
        if q.wants_date:
            bonus += 0.15 if _YEAR.search(text) else -0.1
        return bonus

    def _answerable(self, q: QuestionProfile, candidates: list[Scored], hits: Sequence[Hit]) -> bool:
        best = candidates[0]
        similarity = max((h.vector_score for h in hits), default=0.0)
        if similarity < self.settings.min_similarity:
            return False
        return best.coverage >= self.settings.min_coverage

    # -- composing --------------------------------------------------------------------

    def _list_items(self, q: QuestionProfile, candidates: list[Scored]) -> list[Scored]:
        best = candidates[0]
        if not best.matched:
            return [best]
        # The rarest question term the best sentence states is what every item must state too:
        # "gold" in "which partners hold a Gold label?".
        anchor = max(best.matched, key=self.idf)
        threshold = max(self.settings.min_coverage, best.score * self.settings.list_ratio)
        items: list[Scored] = []
        names: set[str] = set()
        for candidate in candidates:
            if candidate.score < threshold or anchor not in candidate.matched:
                continue
            name = _key(item_name(candidate.text, candidate.hit.chunk))
            if name in names:
                continue
            names.add(name)
            items.append(candidate)
            if len(items) == self.settings.max_items:
                break
        return items

    def _list_answer(self, question: str, items: list[Scored], hits: Sequence[Hit]) -> Answer:
        hit_order = {h.chunk.doc_id: h.rank for h in reversed(hits)}
        items = sorted(items, key=lambda s: (hit_order.get(s.hit.chunk.doc_id, 99), s.hit.chunk.doc_id, s.sentence.start))
        citations: list[Citation] = []
        names: list[str] = []
        lines: list[str] = []
        for n, item in enumerate(items, start=1):
            chunk = item.hit.chunk
            citations.append(cite(n, chunk, item.sentence))
            name = item_name(item.text, chunk)
            names.append(f"{name} [{n}]")
            lines.append(f"- {attributed(item.text, chunk)} [{n}]")
        lead = _join_names(names) + "."
        text = lead + "\n\n" + "\n".join(lines)
        return Answer(question=question, text=text, citations=tuple(citations), abstained=False, hits=tuple(hits))

    def _fact_answer(self, question: str, best: Scored, hits: Sequence[Hit]) -> Answer:
        chunk = best.hit.chunk
        span = best.sentence
        body = attributed(best.text, chunk)
        if best.text.rstrip().endswith(":"):
            # The sentence introduces a list: the items that follow are the answer.
            following = []
            for s in chunk.sentences:
                if s.start <= span.start:
                    continue
                if not _is_list_item(chunk, s) or len(following) == self.settings.max_items:
                    break
                following.append(s)
            if following:
                span = Sentence(span.start, following[-1].end)
                body += "\n" + "\n".join(f"- {chunk.sentence_text(s)}" for s in following)
        citation = cite(1, chunk, span)
        return Answer(
            question=question, text=f"{body} [1]", citations=(citation,), abstained=False, hits=tuple(hits)
        )


def _is_list_item(chunk: Chunk, sentence: Sentence) -> bool:
    line_start = chunk.text.rfind("\n", 0, sentence.start - chunk.start) + 1
    prefix = chunk.text[line_start : sentence.start - chunk.start]
    return bool(_LIST_PREFIX.match(prefix))


_LIST_PREFIX = re.compile(r"^\s*(?:[-*+•✓√○o·]|\(?\d{1,2}[.)]|[a-z][.)])\s*$")


def item_name(sentence: str, chunk: Chunk) -> str:
    """Returns what a sentence is about: its section's subject, as the sentence spells it."""
    subject = chunk.subject
    if not subject:
        return _first_name(sentence) or chunk.title
    spelled = _find_spelling(sentence, subject)
    return spelled or subject


def attributed(sentence: str, chunk: Chunk) -> str:
    """Prefixes a sentence with its subject when it only says "this cluster" or "it"."""
    if chunk.subject and _ANAPHOR.match(sentence) and not _find_spelling(sentence, chunk.subject):
        return f"{chunk.subject}: {sentence}"
    return sentence


def _find_spelling(sentence: str, subject: str) -> str:
    # "Poolnet" is spelt "Pool-Net" in the sentence: compare letters and digits only.
    target = re.sub(r"[\W_]+", "", _fold(subject))
    if not target:
        return ""
    folded = _fold_aligned(sentence)
    pattern = r"[\W_]*".join(re.escape(ch) for ch in target)
    match = re.search(rf"(?<![^\W_]){pattern}(?![^\W_])", folded) or re.search(pattern, folded)
    return sentence[match.start() : match.end()] if match else ""


def _first_name(sentence: str) -> str:
    match = re.search(r"(?<!^)(?<![.!?]\s)\b([A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)", sentence)
    return match.group(1) if match else ""


def _join_names(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "", _fold(name))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _fold_aligned(text: str) -> str:
    # Folds character by character so that offsets into the result are offsets into `text`.
    return "".join((_fold(c) or " ")[0] for c in text)

