"""Question + Hits -> Answer built from the documents' own sentences, with citations.

No model writes anything. Every sentence of the retrieved passages is scored on evidence that
it answers the question (see `Evidence`); the best one is the answer, with the sentence before
it when it only makes sense with it ("At this occasion ..."), or the list it introduces. For a
list question, a lead line names every item, each with its citation, then the sentence behind
each. A sentence that only says "this cluster" is attributed to the subject of its section.
When the evidence is too weak, the answer says the documents do not hold it instead of
guessing; the weights of that decision were fitted on the gold sets (eval/calibrate.py) and are
shipped as data beside this module (models/extractive/calibration.json).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol, TypeVar

from assistant.answering.citations import cite
from assistant.errors import ConfigError
from assistant.ingest.documents import BOILERPLATE, detect_language
from assistant.ingest.tables import sentence_reading
from assistant.question import QuestionProfile, is_name_token, mentions, profile
from assistant.records import NOT_FOUND, Answer, Chunk, Citation, Hit, Sentence, Turn
from assistant.text import LIST_MARKER, MONTHS, NAME_TOKEN, NEGATION, analyze, fold
from assistant.thesaurus import related_terms

# A sentence that refers to its subject without naming it: "This cluster ...", "It owns ...".
ANAPHOR = re.compile(
    r"^(it|its|they|their|these|such|this|that|he|she|his|her)\b|"
    r"^the\s+(cluster|association|organi[sz]ation|cent(re|er)|network|entity|company|region|"
    r"project|initiative|group|partner|platform|programme|program|consortium|institute)\b",
    re.IGNORECASE,
)
# A sentence that points at something the sentence before it names: "At this occasion ...".
# ("Afterwards ..." only follows on; it does not name its subject elsewhere.)
REFERS_BACK = re.compile(
    r"^((at|on|in|for|during|after|since|from|with) )?(this|that|these|those|such)\b", re.IGNORECASE
)
_NUMBER = re.compile(  # not the digits of a name: "Covid-19", "Industry-4"
    r"(?<![^\W_])(?<![^\W\d_]-)\d+(?:[.,]\d+)*(?![^\W\d_])|\b(one|two|three|four|five|six|seven|eight|nine|"
    r"ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|thousand|million|billion|"
    r"dozen|half)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(1\d\d\d|20\d\d)s?\b|\b(in|since|by|until|from|about|around|c\.|circa) [1-9]\d{2}\b|"
    rf"\b\d{{1,4}} ?(AD|BC|BCE|CE)\b|\b({'|'.join(MONTHS)}|spring|summer|autumn|winter|century)\b",
    re.IGNORECASE,
)
_REASON = re.compile(
    r"\b(because|since|as a result|due to|in order to|so that|thanks to|reason|"
    r"aim|objective|purpose|goal|interest)\b",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://\S+|www\.\S+")
_WEB_CUES = re.compile(r"\b(website|web site|url|link|profile|homepage|site)\b", re.IGNORECASE)
_LIST_PREFIX = re.compile(rf"^\s*{LIST_MARKER}\s*$")
_FOOTNOTE = re.compile(r"\s*\[\d+\]")
_YES_NO = frozenset(["is", "are", "was", "were", "does", "do", "did", "has", "have", "had", "can", "could", "will"])


@dataclass(frozen=True)
class Evidence:
    """How strongly one sentence answers the question, signal by signal (each about 0..1)."""

    lexical: float  # weighted share of the question's terms the sentence states
    attribute: float  # the same, for the terms outside the question's names ("founded")
    unmatched: float  # rarity of the rarest question term found nowhere (0: none missing)
    context: float  # weighted share found only in its heading, title or subject
    order: float  # 1 when the shared terms come in the question's order, -1 when reversed
    negation: float  # 1 when one of question and sentence is negated and the other not
    phrases: float  # share of the question's adjacent word pairs the sentence repeats
    similarity: float  # cosine similarity of the sentence to the question
    passage: float  # cosine similarity of the sentence's chunk to the question
    answer_type: float  # +1 it holds the kind of answer asked for, -1 it lacks it, 0 no kind
    missing_name: float  # 1 when a name in the question appears nowhere in the passage
    rank: float  # 1 / rank of the chunk in the retrieval


SIGNALS = tuple(f.name for f in fields(Evidence))  # the names a calibration weighs, in order


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with its evidence and score."""

    hit: Hit
    index: int  # position of the sentence in its chunk
    sentence: Sentence
    text: str
    evidence: Evidence
    score: float
    content: float  # the score without the retrieval rank: how well the sentence itself answers
    matched: frozenset[str]  # question terms found in the sentence itself


SHIPPED_CALIBRATION = Path(__file__).parent / "models" / "extractive" / "calibration.json"


@dataclass(frozen=True)
class ExtractiveCalibration:
    """The extractive answerer's fitted numbers: data written by eval/calibrate.py, not code.

    The signals they weigh include the embedding similarity, so they hold for the embedding
    model they were fitted with (`embedding_model`, as in the index manifest); another model
    needs a new fit (`stale_for`).
    """

    select: dict[str, float]  # sentence selection: score = sum of weight * signal
    answer: dict[str, float]  # answerability: logistic regression over the best sentence's signals
    threshold: float  # answer when the answerability probability reaches this
    embedding_model: str
    fitted_on: str
    path: Path
    sha256: str

    @classmethod
    def load(cls, path: Path = SHIPPED_CALIBRATION) -> ExtractiveCalibration:
        """Reads a calibration file; a missing or malformed one is a ConfigError naming it."""
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
            calibration = cls(
                select={str(k): float(v) for k, v in data["select"].items()},
                answer={str(k): float(v) for k, v in data["answer"].items()},
                threshold=float(data["threshold"]),
                embedding_model=str(data["embedding_model"]),
                fitted_on=str(data.get("fitted_on", "")),
                path=path,
                sha256=hashlib.sha256(raw).hexdigest(),
            )
            _check_signals(calibration)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"cannot read the extractive answerer's calibration {path} ({exc}); "
                "reinstall the package or refit it with eval/calibrate.py --write"
            ) from exc
        return calibration

    def stale_for(self, model_id: str) -> str:
        """Returns why these numbers do not hold for an index of `model_id` ("" when they do)."""
        if model_id == self.embedding_model:
            return ""
        return (
            f"the extractive answerer's weights ({self.path}) were fitted with the embedding model "
            f"{self.embedding_model}, and this index uses {model_id}: its answers and declines are "
            "uncalibrated; refit them with `python eval/calibrate.py --write`"
        )


def _check_signals(calibration: ExtractiveCalibration) -> None:
    # A file fitted for signals this version no longer computes would fail mid-answer.
    unknown = sorted({*calibration.select, *calibration.answer} - {*SIGNALS, "bias"})
    if unknown:
        raise ValueError(f"weights for signals the answerer does not compute: {', '.join(unknown)}")


@functools.cache
def shipped_calibration() -> ExtractiveCalibration:
    """The calibration shipped with the package (read once)."""
    return ExtractiveCalibration.load()


@dataclass
class ExtractiveSettings:
    """How the extractive answerer weighs and composes; its fitted numbers are `calibration`."""

    calibration: ExtractiveCalibration = field(default_factory=shipped_calibration)
    list_ratio: float = 0.75  # list items must score this share of the best sentence
    list_intro: float = 0.8  # bonus of "... four regions: A, B, C and D" for "Which regions ...?"
    pair_ratio: float = 0.8  # a neighbouring sentence this close to the best joins it
    max_items: int = 10
    widened_weight: float = 1.0  # a term met through a word of its root or the thesaurus ("located")


class ExtractiveAnswerer:
    """Answers from retrieved passages by selecting and citing their sentences."""

    name = "extractive"

    def __init__(
        self,
        settings: ExtractiveSettings | None = None,
        idf: Callable[[str], float] | None = None,
        similar: Callable[[str], list[str]] | None = None,
        knows_name: Callable[[str], bool] | None = None,
        previous: Callable[[Chunk], Chunk | None] | None = None,
        language_of: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings or ExtractiveSettings()
        self._language_of = language_of  # document id -> its language ("und" when unknown)
        # The keyword index's term -> inverse document frequency, term -> similar indexed
        # words and name -> whether any document may mention it, when an index is attached.
        self._idf = idf
        self._similar = similar
        self._knows_name = knows_name
        self._previous = previous  # chunk -> the chunk before it in its document

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Returns a grounded answer, or an abstention when the hits do not answer it.

        `history` is part of the answerers' protocol (the LLM answerer shows it to the model);
        here the question already stands alone: the pipeline rewrote any follow-up.
        """
        q = profile(question)
        never_mentioned = unmentioned_names(q, self._knows_name, hits, self._language_of)
        if never_mentioned:
            return never_mentioned_answer(question, hits, never_mentioned)
        candidates = self.candidates(q, hits)
        confidence = self.answerability(candidates[0]) if candidates else 0.0
        if confidence < self.settings.calibration.threshold:
            return declined(question, hits, confidence)
        best = candidates[0]
        answer = None
        if q.wants_list and not enumerates(best.text):
            items = self._section_items(candidates) or self._list_items(candidates)
            if len(items) > 1:
                answer = self._list_answer(question, items, hits)
        answer = answer or self._fact_answer(q, best, candidates, hits)
        return replace(answer, confidence=confidence)

    # -- evidence ---------------------------------------------------------------------

    def idf(self, term: str) -> float:
        """Returns a term's rarity; flat when no keyword index is attached."""
        return float(self._idf(term)) if callable(self._idf) else 1.0

    def candidates(self, q: QuestionProfile, hits: Sequence[Hit]) -> list[Scored]:
        """Scores every usable sentence of the hits, best first."""
        weights = {t: self.idf(t) for t in q.terms}
        total = sum(weights.values())
        rarest = max(weights.values(), default=1.0) or 1.0
        name_terms = set(analyze(" ".join(q.names)))
        attributes = [t for t in q.terms if t not in name_terms and t not in q.frame]
        attribute_total = sum(weights[t] for t in attributes)
        widened = self._widened(q.terms)
        pairs = list(zip(q.terms, q.terms[1:], strict=False))
        select = self.settings.calibration.select
        seen: set[tuple[str, int, int]] = set()
        scored: list[Scored] = []
        for hit in hits:
            chunk = hit.chunk
            context = set(analyze(" ".join([chunk.title, chunk.subject, *chunk.section_path])))
            lead = self._lead(chunk)
            passage = fold(f"{chunk.header} {lead} {chunk.text}")
            mentioned = [name for name in q.names if mentions(passage, name)]
            missing = len(mentioned) < len(q.names)
            # A name the passage mentions (in its heading, title or text) is what all its
            # sentences are about: "Now ... MetaIndustry4 has 61 partners" answers a question
            # about "the Advanced Manufacturing Cluster ... of Asturias" when the passage names it.
            context |= set(analyze(" ".join(mentioned)))
            for index, sentence in enumerate(chunk.sentences):
                key = (chunk.doc_id, sentence.start, sentence.end)
                text = sentence_reading(chunk, index, q.terms)  # a table row: the columns asked about
                if key in seen or text is None or not usable(text, chunk, q):
                    continue
                seen.add(key)
                terms = analyze(text)
                present = set(terms)
                direct = frozenset(t for t in q.terms if t in present)
                near = {t for t in q.terms if t not in direct and widened.get(t, set()) & present}
                credit = {t: 1.0 if t in direct else self.settings.widened_weight for t in direct | near}
                # A name the heading or title gives is as good as the sentence saying it: under
                # "Flanders Make", "We have establishments in Lommel" is about Flanders Make.
                credit.update({t: 1.0 for t in name_terms & context if t in weights and t not in direct})
                lexical = sum(weights[t] * c for t, c in credit.items())
                attribute = sum(weights[t] * credit.get(t, 0.0) for t in attributes)
                around = sum(weights[t] for t in q.terms if t not in credit and t in context)
                unmatched = max((weights[t] for t in attributes if t not in credit and t not in context), default=0.0)
                adjacent = set(zip(terms, terms[1:], strict=False))
                order = _concordance([t for t in q.terms if t in direct], terms)
                similarity = (
                    hit.sentence_similarity[index] if index < len(hit.sentence_similarity) else hit.vector_score
                )
                evidence = Evidence(
                    lexical=lexical / total if total else 0.0,
                    attribute=attribute / attribute_total if attribute_total else 1.0,
                    unmatched=unmatched / rarest,
                    context=around / total if total else 0.0,
                    order=order,
                    negation=1.0 if _negated(q.text) != _negated(text) else 0.0,
                    phrases=sum(1 for p in pairs if p in adjacent) / len(pairs) if pairs else 0.0,
                    similarity=similarity,
                    passage=hit.vector_score,
                    answer_type=_type_signal(q, text),
                    missing_name=1.0 if missing else 0.0,
                    rank=1.0 / hit.rank,
                )
                content = sum(w * getattr(evidence, name) for name, w in select.items() if name != "rank")
                if q.wants_list and _introduces_list(text, q.frame):
                    content += self.settings.list_intro
                score = content + select.get("rank", 0.0) * evidence.rank
                scored.append(Scored(hit, index, sentence, text, evidence, score, content, direct))
        scored.sort(key=lambda s: (-s.score, s.hit.rank, s.sentence.start))
        return scored

    def _lead(self, chunk: Chunk) -> str:
        return lead_sentence(chunk, self._previous)

    def answerability(self, best: Scored) -> float:
        """Returns the probability that the best sentence really answers the question."""
        w = self.settings.calibration.answer
        z = w.get("bias", 0.0) + sum(
            weight * getattr(best.evidence, name) for name, weight in w.items() if name != "bias"
        )
        return 1.0 / (1.0 + math.exp(-z))

    def _widened(self, terms: Sequence[str]) -> dict[str, set[str]]:
        # Words of the same root in the index ("recognised" for "recognition"), and words that
        # stand for the term in the thesaurus ("located" for "based").
        similar = self._similar if callable(self._similar) else lambda _t: []
        return {t: {*similar(t), *related_terms(t)} for t in terms}

    # -- composing --------------------------------------------------------------------

    @staticmethod
    def _section_items(candidates: list[Scored]) -> list[Scored]:
        # The retriever found the items as the subsections of a section the question names
        # ("3.3.1. Auvergne Rhône-Alpes" > "Plastipolis", "Viameca", "Minalogic"): each one is
        # an item, told by the best sentence of its opening chunk.
        best: dict[tuple[str, int], Scored] = {}
        for candidate in candidates:  # best first
            hit = candidate.hit
            if hit.item_of and hit.chunk.subject:
                best.setdefault((hit.chunk.doc_id, hit.chunk.start), candidate)
        return list(best.values()) if len(best) > 1 else []

    def _list_items(self, candidates: list[Scored]) -> list[Scored]:
        best = candidates[0]
        if not best.matched:
            return [best]
        # The rarest question term the best sentence states is what every item must state too:
        # "gold" in "which partners hold a Gold label?".
        anchor = max(best.matched, key=self.idf)
        threshold = best.content * self.settings.list_ratio
        accepted = (
            c
            for c in candidates
            if c.content >= threshold
            and anchor in c.matched
            and self.answerability(c) >= self.settings.calibration.threshold
        )
        return named_items(accepted, self.settings.max_items)

    def _list_answer(self, question: str, items: list[Scored], hits: Sequence[Hit]) -> Answer:
        text, citations = compose_list(items, hits)
        return Answer(question=question, text=text, citations=citations, abstained=False, hits=tuple(hits))

    def _fact_answer(self, q: QuestionProfile, best: Scored, candidates: list[Scored], hits: Sequence[Hit]) -> Answer:
        chunk = best.hit.chunk
        chosen = quoted_sentences(chunk, best.index, self.settings.max_items)
        if not best.text.rstrip().endswith(":"):
            for other in candidates[1:4]:
                # A neighbour nearly as good as the best carries the rest of the answer.
                if (
                    other.hit is best.hit
                    and abs(other.index - best.index) == 1
                    and other.index not in chosen
                    and other.score >= best.score * self.settings.pair_ratio
                ):
                    chosen.append(other.index)
                    chosen.sort()
                    break
        first, last = chunk.sentences[chosen[0]], chunk.sentences[chosen[-1]]
        return Answer(
            question=q.text,
            text=f"{strip_footnotes(quoted_text(chunk, chosen, best.index, q.terms))} [1]",
            citations=(cite(1, chunk, Sentence(first.start, last.end)),),
            abstained=False,
            hits=tuple(hits),
        )


def _concordance(question_order: list[str], sentence_terms: list[str]) -> float:
    # Kendall's tau between the question's order of shared terms and the sentence's: a question
    # built by swapping who does what to whom reverses them.
    position: dict[str, int] = {}
    for i, term in enumerate(sentence_terms):
        position.setdefault(term, i)
    ranks = [position[t] for t in question_order if t in position]
    pairs = [(a, b) for i, a in enumerate(ranks) for b in ranks[i + 1 :]]
    if not pairs:
        return 0.0
    return sum(1 if a < b else -1 if a > b else 0 for a, b in pairs) / len(pairs)


def _negated(text: str) -> bool:
    return bool(NEGATION.search(text))


def _type_signal(q: QuestionProfile, text: str) -> float:
    if q.answer_type is None:
        return 0.0
    if q.answer_type == "number":
        found = bool(_NUMBER.search(text))
    elif q.answer_type == "money":
        found = bool(_MONEY.search(text))
    elif q.answer_type == "date":
        found = bool(_DATE.search(text))
    elif q.answer_type == "reason":
        found = bool(_REASON.search(text))
    else:
        found = _has_new_name(text, q)
    return 1.0 if found else -1.0


# An amount of money: a currency sign or name, or a price of nothing ("free of charge").
_MONEY = re.compile(
    r"[€$£¥₹]|\b(euros?|eur|usd|gbp|dollars?|pounds?|sterling|kronor|krona|sek|msek|nok|dkk|francs?|chf|yen|"
    r"yuan|rupees?|cents?)\b|\d\s?(k|m|bn)€|\b(free of charge|for free|no charge|without charge|costs? nothing)\b",
    re.IGNORECASE,
)


def _has_new_name(text: str, q: QuestionProfile) -> bool:
    # A name in the sentence that the question does not already contain.
    asked = fold(q.text)
    for i, match in enumerate(NAME_TOKEN.finditer(text)):
        token = match.group(0)
        if is_name_token(token, at_sentence_start=i == 0) and fold(token) not in asked:
            return True
    return False


def _introduces_list(sentence: str, frame: Sequence[str]) -> bool:
    # "... gathers four European regions: Auvergne-Rhône-Alpes, Baden-Württemberg, Catalonia and
    # Lombardy" answers "Which regions ...?": the noun asked for, then the names it lists.
    if not frame:
        return False
    for match in re.finditer(r"[^\W\d_]+", sentence):
        if analyze(match.group(0)) != [frame[0]]:
            continue
        rest = sentence[match.end() :]
        opener = re.match(r"\s*(?::|,?\s+(?:are|were|include|included|includes|such as|namely|like)\b)", rest, re.I)
        if opener and len(re.findall(r"(?:^|,|\band\b)\s*[A-Z]", rest[opener.end() :])) >= 2:
            return True
    return False


def unmentioned_names(
    q: QuestionProfile,
    knows_name: Callable[[str], bool] | None,
    hits: Sequence[Hit] = (),
    language_of: Callable[[str], str] | None = None,
) -> list[str]:
    """Returns the question's names that no indexed document may mention.

    A question about something no document mentions ("the FIFA World Cup") has no answer here,
    however well some sentence matches its other words. When the passages found are in more than
    one language, or in another language than the question, a name may be there in translation
    ("Swedish" as "svenska", "Sweden" as "Sverige"): none is ruled out.
    """
    if knows_name is None:
        return []
    if language_of is not None:
        found = {language_of(h.chunk.doc_id) for h in hits} - {"und"}
        asked = detect_language(q.text)
        if len(found) > 1 or (asked != "und" and found - {asked}):
            return []
    return [n for n in q.names if not knows_name(n)]


def declined(question: str, hits: Sequence[Hit], confidence: float, text: str = NOT_FOUND) -> Answer:
    """Returns the answer that says the documents do not hold one."""
    return Answer(question=question, text=text, citations=(), abstained=True, hits=tuple(hits), confidence=confidence)


def never_mentioned_answer(question: str, hits: Sequence[Hit], names: list[str]) -> Answer:
    """Declines a question about names no document mentions, and says which."""
    return declined(question, hits, 0.0, f"{NOT_FOUND} They never mention {join_names(names)}.")


class ListItem(Protocol):
    """A sentence chosen as one item of a list answer."""

    @property
    def hit(self) -> Hit: ...
    @property
    def sentence(self) -> Sentence: ...
    @property
    def text(self) -> str: ...


def compose_list(items: Sequence[ListItem], hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
    """Returns a list answer: a lead line naming each item with its citation, then its sentence."""
    hit_order = {h.chunk.doc_id: h.rank for h in reversed(hits)}
    ordered = sorted(items, key=lambda s: (hit_order.get(s.hit.chunk.doc_id, 99), s.hit.chunk.doc_id, s.sentence.start))
    citations: list[Citation] = []
    names: list[str] = []
    lines: list[str] = []
    for n, item in enumerate(ordered, start=1):
        chunk = item.hit.chunk
        citations.append(cite(n, chunk, item.sentence))
        names.append(f"{item_name(item.text, chunk)} [{n}]")
        lines.append(f"- {strip_footnotes(attributed(item.text, chunk))} [{n}]")
    return join_names(names) + ".\n\n" + "\n".join(lines), tuple(citations)


def lead_sentence(chunk: Chunk, previous: Callable[[Chunk], Chunk | None] | None) -> str:
    """Returns the last sentence before a chunk that only continues its section's text, or ""."""
    before = previous(chunk) if callable(previous) else None
    if before is None or before.section_path != chunk.section_path or not before.sentences:
        return ""
    return before.sentence_text(before.sentences[-1])


def usable(text: str, chunk: Chunk, q: QuestionProfile) -> bool:
    """Tells whether a sentence can be an answer at all (not a label, heading, link or question)."""
    stripped = text.strip()
    if len(stripped.split()) < 3 or BOILERPLATE.match(stripped):
        return False
    if len(stripped.split()) <= 5 and not stripped.endswith((".", "!", "?", ":", ")")):
        return False  # a label or caption ("Session 3: Thematic Workshops"), not a statement
    plain = re.sub(r"^[#*\s]+|[*\s]+$", "", stripped)  # a Markdown heading line
    if plain in chunk.section_path or plain == chunk.title:
        return False
    if restates(stripped, q):
        return False
    if _URL.search(stripped) and not _WEB_CUES.search(q.text):
        return len(_URL.sub("", stripped).split()) >= 8
    return True


def restates(sentence: str, q: QuestionProfile) -> bool:
    """Tells whether a sentence is a question, or says nothing the question does not say.

    A document that repeats a question ("Which partners hold a Gold label?") would otherwise
    be its best match: it shares every word with it and answers nothing.
    """
    if sentence.rstrip(" \"'”’)").endswith("?"):
        return True
    if sentence.rstrip().endswith(":"):
        return False  # "The main missions of Plastipolis are:" introduces the list that answers
    if q.text.split(maxsplit=1)[0].lower() in _YES_NO:
        return False  # "Does X hold a label?" is answered by "X holds a label."
    terms = set(analyze(sentence))
    return bool(terms) and terms <= set(q.terms) | set(analyze(q.text))


def strip_footnotes(text: str) -> str:
    """Removes a document's own footnote markers ("Stuttgart [5].") that would read as citations."""
    return _FOOTNOTE.sub("", text)


def enumerates(sentence: str) -> bool:
    """Tells whether a sentence is itself a list of names ("A, B, C and D")."""
    parts = re.split(r",|\band\b|;", sentence)
    capitalised = sum(1 for p in parts if re.search(r"\b[A-Z][\w-]", p.strip()[:40]))
    return len(parts) >= 4 and capitalised >= 3


def is_list_item(chunk: Chunk, sentence: Sentence) -> bool:
    line_start = chunk.text.rfind("\n", 0, sentence.start - chunk.start) + 1
    prefix = chunk.text[line_start : sentence.start - chunk.start]
    return bool(_LIST_PREFIX.match(prefix))


def is_prose(chunk: Chunk, sentence: Sentence) -> bool:
    text = chunk.sentence_text(sentence).strip()
    return len(text.split()) >= 4 and text not in chunk.section_path


class _Sentence(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def hit(self) -> Hit: ...


S = TypeVar("S", bound=_Sentence)


def named_items(sentences: Iterable[S], max_items: int) -> list[S]:
    """Returns the sentences, in order, that each name an item no earlier one named (at most max_items)."""
    items: list[S] = []
    names: set[str] = set()
    for sentence in sentences:
        name = item_name(sentence.text, sentence.hit.chunk)
        if not name or name_key(name) in names:
            continue
        names.add(name_key(name))
        items.append(sentence)
        if len(items) == max_items:
            break
    return items


def item_name(sentence: str, chunk: Chunk) -> str:
    """Returns what a sentence is about: its section's subject, as the sentence spells it."""
    subject = chunk.subject
    if subject:
        return _find_spelling(sentence, subject) or subject
    for i, match in enumerate(NAME_TOKEN.finditer(sentence)):
        if is_name_token(match.group(0), at_sentence_start=i == 0):
            run = [match.group(0)]
            for following in list(NAME_TOKEN.finditer(sentence[match.end() :]))[:4]:
                if not is_name_token(following.group(0)):
                    break
                run.append(following.group(0))
            return " ".join(run)
    return ""


def quoted_sentences(chunk: Chunk, index: int, max_items: int) -> list[int]:
    """Returns the sentences (positions in the chunk, in order) an answer resting on sentence
    `index` quotes: the list items that follow when it introduces a list (ends with ":"), or the
    sentence before it when it leans on that one ("At this occasion ...") and names nothing itself."""
    sentences = chunk.sentences
    text = chunk.sentence_text(sentences[index])
    chosen = [index]
    if text.rstrip().endswith(":"):
        for j in range(index + 1, len(sentences)):
            if not is_list_item(chunk, sentences[j]) or len(chosen) > max_items:
                break
            chosen.append(j)
        return chosen
    names_subject = bool(chunk.subject) and ANAPHOR.match(text) is not None
    if REFERS_BACK.match(text) and not names_subject and index > 0 and is_prose(chunk, sentences[index - 1]):
        chosen.insert(0, index - 1)  # "At this occasion ..." needs the occasion
    return chosen


def quoted_text(chunk: Chunk, chosen: Sequence[int], best: int, wanted: Collection[str] = ()) -> str:
    """Returns an answer's body from its quoted sentences: a list's introduction and its items,
    or the sentences joined, led by the chunk's subject when the best one only says "it".

    A table row is told with its column names, those `wanted` (the question's terms) asks about.
    """
    said = {j: sentence_reading(chunk, j, wanted) or chunk.sentence_text(chunk.sentences[j]) for j in {*chosen, best}}
    lead = said[best]
    if len(chosen) > 1 and lead.rstrip().endswith(":"):
        return lead + "\n" + "\n".join(f"- {said[j]}" for j in chosen[1:])
    return attributed(" ".join(said[j] for j in chosen), chunk, opening=lead)


def attributed(text: str, chunk: Chunk, opening: str | None = None) -> str:
    """Prefixes text with its chunk's subject when its opening sentence (by default the text
    itself) only says "this cluster" or "it" and the text never names the subject."""
    if chunk.subject and ANAPHOR.match(opening or text) and not _find_spelling(text, chunk.subject):
        return f"{chunk.subject}: {text}"
    return text


def _find_spelling(sentence: str, subject: str) -> str:
    # "Poolnet" is spelt "Pool-Net" in the sentence: compare letters and digits only.
    target = re.sub(r"[\W_]+", "", fold(subject))
    if not target:
        return ""
    folded = _fold_aligned(sentence)
    pattern = r"[\W_]*".join(re.escape(ch) for ch in target)
    match = re.search(rf"(?<![^\W_]){pattern}(?![^\W_])", folded) or re.search(pattern, folded)
    return sentence[match.start() : match.end()] if match else ""


def join_names(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def name_key(name: str) -> str:
    return re.sub(r"[\W_]+", "", fold(name))


def _fold_aligned(text: str) -> str:
    # Folds character by character so that offsets into the result are offsets into `text`.
    return "".join((fold(c) or " ")[0] for c in text)
