"""Question + Hits -> Answer built from the documents' own sentences, chosen by the reader.

No model writes anything. The sentences of the retrieved passages are read against the
question by the reader (`assistant.answering.reader`, a cross-encoder trained on SQuAD), each in
its context (section heading, sentence before). The sentence the reader finds most likely to
answer is the answer, led by its short answer when the reader is sure of it ("Plastipolis
[1]"). When no sentence clears the reader's calibrated threshold, the answer says the
documents do not hold it instead of guessing. A list question gets every item the reader
accepts, each with its citation. A sentence that only says "this cluster" is attributed to the
subject of its section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from assistant.answering.citations import cite
from assistant.answering.reader import Candidate, Reader, Verdict
from assistant.documents import BOILERPLATE
from assistant.keyword_index import analyze, fold
from assistant.question import QuestionProfile, is_name_token, profile
from assistant.records import NOT_FOUND, Answer, Chunk, Citation, Hit, Sentence, Turn

# A sentence that refers to its subject without naming it: "This cluster ...", "It owns ...".
_ANAPHOR = re.compile(
    r"^(it|its|they|their|these|such|this|that|he|she|his|her)\b|"
    r"^the\s+(cluster|association|organi[sz]ation|cent(re|er)|network|entity|company|region|"
    r"project|initiative|group|partner|platform|programme|program|consortium|institute)\b",
    re.IGNORECASE,
)
# A sentence that points at something the sentence before it names: "At this occasion ...".
_REFERS_BACK = re.compile(
    r"^((at|on|in|for|during|after|since|from|with) )?(this|that|these|those|such)\b", re.IGNORECASE
)
_URL = re.compile(r"https?://\S+|www\.\S+")
_WEB_CUES = re.compile(r"\b(website|web site|url|link|profile|homepage|site)\b", re.IGNORECASE)
_LIST_PREFIX = re.compile(r"^\s*(?:[-*+•✓√○o·]|\(?\d{1,2}[.)]|[a-z][.)])\s*$")
_WORD = re.compile(r"[^\W_][\w'’&.+-]*[^\W_]|[^\W_]")
_FOOTNOTE = re.compile(r"\s*\[\d+\]")
_YES_NO = frozenset(["is", "are", "was", "were", "does", "do", "did", "has", "have", "had", "can", "could", "will"])


@dataclass(frozen=True)
class Read:
    """A candidate sentence of a hit with the reader's verdict on it and its answer score."""

    hit: Hit
    index: int  # position of the sentence in its chunk
    sentence: Sentence
    text: str
    verdict: Verdict
    coverage: float  # idf-weighted share of the question's terms the sentence and heading state
    similarity: float  # embedding similarity of the sentence to the question
    p: float = 0.0  # the answer score: how likely the sentence answers the question

    def features(self) -> dict[str, float]:
        """The evidence the calibration's combiner weighs (see `FEATURES`)."""
        p = min(max(self.verdict.p_answer, 1e-6), 1 - 1e-6)
        return {
            "reader": math.log(p / (1 - p)),
            "coverage": self.coverage,
            "similarity": self.similarity,
            "rank": 1.0 / self.hit.rank,
        }


FEATURES = ("reader", "coverage", "similarity", "rank")


def answer_score(read: Read, combiner: dict[str, float]) -> float:
    """Returns the reader's probability, or the combiner's when the calibration has one."""
    if not combiner:
        return read.verdict.p_answer
    values = read.features()
    z = combiner.get("bias", 0.0) + sum(w * values[name] for name, w in combiner.items() if name != "bias")
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class _Offered:
    hit: Hit
    index: int
    candidate: Candidate
    coverage: float
    similarity: float


@dataclass(frozen=True)
class ExtractiveSettings:
    """How many sentences the reader reads, and how answers are put together.

    The reader's thresholds (when to decline, when to lead with the short answer) are not
    here: they are data, fitted for the model and shipped beside it (`Reader.calibration`).
    """

    candidates: int = 16  # sentences read per question, the likeliest by a cheap first pass
    list_ratio: float = 0.5  # a list item's p_answer must reach this share of the best one's
    max_items: int = 10
    max_span_words: int = 12  # a longer short answer is no shorter than the sentence


class ExtractiveAnswerer:
    """Answers from retrieved passages by selecting and citing their sentences.

    Args:
        reader: reads (question, sentence) pairs; its calibration decides when to decline
            (the reader shipped with the package by default).
        settings: candidate count and composition limits.
        idf: term -> rarity in the index, for the cheap first pass (flat without an index).
        knows_name: name -> whether any indexed document may mention it.
        previous: chunk -> the chunk before it in its document (for a first sentence's context).
    """

    name = "extractive"

    def __init__(
        self,
        reader: Reader | None = None,
        settings: ExtractiveSettings | None = None,
        idf: Callable[[str], float] | None = None,
        knows_name: Callable[[str], bool] | None = None,
        previous: Callable[[Chunk], Chunk | None] | None = None,
    ) -> None:
        self.reader = reader or Reader()
        self.settings = settings or ExtractiveSettings()
        self._idf = idf
        self._knows_name = knows_name
        self._previous = previous

    @property
    def threshold(self) -> float:
        """The p_answer a sentence needs to be given as an answer."""
        return self.reader.calibration.answer_threshold

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Returns a grounded answer, or an abstention when the hits do not answer it.

        `history` is accepted for the `Answerer` protocol; follow-ups arrive already rewritten.
        """
        q = profile(question)
        unknown = [n for n in q.names if self._knows_name and not self._knows_name(n)]
        if unknown:
            # A question about something no document mentions ("the FIFA World Cup") has no
            # answer here, however well some sentence reads against its other words.
            return _declined(question, hits, 0.0, f"{NOT_FOUND} They never mention {_join_names(unknown)}.")
        reads = self.read(q, hits)
        confidence = reads[0].p if reads else 0.0
        if confidence < self.threshold:
            return _declined(question, hits, confidence)
        answer = None
        if q.wants_list and not _enumerates(reads[0].text):
            items = self._section_items(reads) or self._list_items(reads)
            if len(items) > 1:
                answer = self._list_answer(question, items, hits)
        answer = answer or self._fact_answer(question, reads[0], hits)
        return Answer(
            question=question,
            text=answer[0],
            citations=answer[1],
            abstained=False,
            hits=tuple(hits),
            confidence=confidence,
        )

    # -- reading ----------------------------------------------------------------------

    def read(self, q: QuestionProfile, hits: Sequence[Hit]) -> list[Read]:
        """Reads the likeliest sentences of the hits against the question, best first."""
        offered = self._offered(q, hits)
        ranked = sorted(offered, key=lambda o: -(o.coverage + o.similarity))[: self.settings.candidates]
        verdicts = self.reader.read(q.text, [o.candidate for o in ranked])
        combiner = self.reader.calibration.combiner
        reads = []
        for o, verdict in zip(ranked, verdicts, strict=True):
            sentence = o.hit.chunk.sentences[o.index]
            read = Read(o.hit, o.index, sentence, o.candidate.sentence, verdict, o.coverage, o.similarity)
            reads.append(replace(read, p=answer_score(read, combiner)))
        reads.sort(key=lambda r: (-r.p, r.hit.rank, r.sentence.start))
        return reads

    def _offered(self, q: QuestionProfile, hits: Sequence[Hit]) -> list[_Offered]:
        # The cheap first pass: the share of the question's (idf-weighted) terms a sentence and
        # its heading state, plus its embedding similarity to the question. It only decides
        # which sentences the reader reads, not which one answers.
        weights = {t: self._idf(t) if callable(self._idf) else 1.0 for t in q.terms}
        total = sum(weights.values()) or 1.0
        seen: set[tuple[str, int, int]] = set()
        offered = []
        for hit in hits:
            chunk = hit.chunk
            heading = chunk.subject or chunk.title
            lead = self._lead(chunk)
            around = set(analyze(f"{heading} {chunk.section}"))
            for index, sentence in enumerate(chunk.sentences):
                key = (chunk.doc_id, sentence.start, sentence.end)
                text = chunk.sentence_text(sentence)
                if key in seen or not _usable(text, chunk, q):
                    continue
                seen.add(key)
                previous = chunk.sentence_text(chunk.sentences[index - 1]) if index else lead
                present = set(analyze(text)) | around
                coverage = sum(w for t, w in weights.items() if t in present) / total
                similarity = (
                    hit.sentence_similarity[index] if index < len(hit.sentence_similarity) else hit.vector_score
                )
                candidate = Candidate(text.strip(), heading=heading, previous=previous.strip())
                offered.append(_Offered(hit, index, candidate, coverage, similarity))
        return offered

    def _lead(self, chunk: Chunk) -> str:
        # The last sentence before the chunk, when the chunk only continues its section's text.
        if not callable(self._previous):
            return ""
        before = self._previous(chunk)
        if before is None or before.section_path != chunk.section_path or not before.sentences:
            return ""
        return before.sentence_text(before.sentences[-1])

    # -- composing --------------------------------------------------------------------

    def _section_items(self, reads: list[Read]) -> list[Read]:
        # The retriever found the items as the subsections of a section the question names
        # ("3.3.1. Auvergne Rhône-Alpes" > "Plastipolis", "Viameca", "Minalogic"): each one the
        # reader accepts is an item, told by its best sentence.
        best: dict[tuple[str, int], Read] = {}
        for read in reads:  # best first
            hit = read.hit
            if hit.item_of and hit.chunk.subject and read.p >= self.threshold:
                best.setdefault((hit.chunk.doc_id, hit.chunk.start), read)
        return list(best.values()) if len(best) > 1 else []

    def _list_items(self, reads: list[Read]) -> list[Read]:
        # Every sentence the reader accepts nearly as well as the best names an item, once.
        floor = max(self.threshold, reads[0].p * self.settings.list_ratio)
        items: list[Read] = []
        names: set[str] = set()
        for read in reads:
            if read.p < floor:
                break
            name = item_name(read.text, read.hit.chunk)
            if not name or _key(name) in names:
                continue
            names.add(_key(name))
            items.append(read)
            if len(items) == self.settings.max_items:
                break
        return items

    def _list_answer(self, question: str, items: list[Read], hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
        hit_order = {h.chunk.doc_id: h.rank for h in reversed(hits)}
        items = sorted(
            items, key=lambda r: (hit_order.get(r.hit.chunk.doc_id, 99), r.hit.chunk.doc_id, r.sentence.start)
        )
        citations: list[Citation] = []
        names: list[str] = []
        lines: list[str] = []
        for n, item in enumerate(items, start=1):
            chunk = item.hit.chunk
            citations.append(cite(n, chunk, item.sentence))
            names.append(f"{item_name(item.text, chunk)} [{n}]")
            lines.append(f"- {_FOOTNOTE.sub('', attributed(item.text, chunk))} [{n}]")
        return _join_names(names) + ".\n\n" + "\n".join(lines), tuple(citations)

    def _fact_answer(self, question: str, best: Read, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
        chunk = best.hit.chunk
        sentences = chunk.sentences
        chosen = [best.index]
        if best.text.rstrip().endswith(":"):
            # The sentence introduces a list: the items that follow are the answer.
            for j in range(best.index + 1, len(sentences)):
                if not _is_list_item(chunk, sentences[j]) or len(chosen) > self.settings.max_items:
                    break
                chosen.append(j)
            body = best.text + "\n" + "\n".join(f"- {chunk.sentence_text(sentences[j])}" for j in chosen[1:])
        else:
            names_subject = bool(chunk.subject) and _ANAPHOR.match(best.text) is not None
            previous = best.index - 1
            if (
                _REFERS_BACK.match(best.text)
                and not names_subject
                and previous >= 0
                and _is_prose(chunk, sentences[previous])
            ):
                chosen.insert(0, previous)  # "At this occasion ..." needs the occasion
            body = attributed(" ".join(chunk.sentence_text(sentences[j]) for j in chosen), chunk)
        # A document's own footnote markers ("Stuttgart [5].") would read as citations.
        body = _FOOTNOTE.sub("", body)
        first, last = sentences[chosen[0]], sentences[chosen[-1]]
        citation = cite(1, chunk, Sentence(first.start, last.end))
        short = self._short_answer(best, body)
        text = f"{short} [1]\n\n{body} [1]" if short else f"{body} [1]"
        return text, (citation,)

    def _short_answer(self, best: Read, body: str) -> str:
        # The reader's span, when it is sure of it and it says less than the sentence does.
        verdict = best.verdict
        span = verdict.span(best.text)
        if verdict.p_span < self.reader.calibration.span_threshold or not span:
            return ""
        if len(span.split()) > self.settings.max_span_words or len(span) >= 0.8 * len(best.text.strip()):
            return ""
        return span.rstrip(".,;:")


def _declined(question: str, hits: Sequence[Hit], confidence: float, text: str = NOT_FOUND) -> Answer:
    return Answer(question=question, text=text, citations=(), abstained=True, hits=tuple(hits), confidence=confidence)


def _usable(text: str, chunk: Chunk, q: QuestionProfile) -> bool:
    stripped = text.strip()
    if len(stripped.split()) < 3 or BOILERPLATE.match(stripped):
        return False
    if len(stripped.split()) <= 5 and not stripped.endswith((".", "!", "?", ":", ")")):
        return False  # a label or caption ("Session 3: Thematic Workshops"), not a statement
    plain = re.sub(r"^[#*\s]+|[*\s]+$", "", stripped)  # a Markdown heading line
    if plain in chunk.section_path or plain == chunk.title:
        return False
    if _restates(stripped, q):
        return False
    if _URL.search(stripped) and not _WEB_CUES.search(q.text):
        return len(_URL.sub("", stripped).split()) >= 8
    return True


def _restates(sentence: str, q: QuestionProfile) -> bool:
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


def _enumerates(sentence: str) -> bool:
    """Tells whether a sentence is itself a list of names ("A, B, C and D")."""
    parts = re.split(r",|\band\b|;", sentence)
    capitalised = sum(1 for p in parts if re.search(r"\b[A-Z][\w-]", p.strip()[:40]))
    return len(parts) >= 4 and capitalised >= 3


def _is_list_item(chunk: Chunk, sentence: Sentence) -> bool:
    line_start = chunk.text.rfind("\n", 0, sentence.start - chunk.start) + 1
    prefix = chunk.text[line_start : sentence.start - chunk.start]
    return bool(_LIST_PREFIX.match(prefix))


def _is_prose(chunk: Chunk, sentence: Sentence) -> bool:
    text = chunk.sentence_text(sentence).strip()
    return len(text.split()) >= 4 and text not in chunk.section_path


def item_name(sentence: str, chunk: Chunk) -> str:
    """Returns what a sentence is about: its section's subject, as the sentence spells it."""
    subject = chunk.subject
    if subject:
        return _find_spelling(sentence, subject) or subject
    for i, match in enumerate(_WORD.finditer(sentence)):
        if is_name_token(match.group(0), at_sentence_start=i == 0):
            run = [match.group(0)]
            for following in list(_WORD.finditer(sentence[match.end() :]))[:4]:
                if not is_name_token(following.group(0)):
                    break
                run.append(following.group(0))
            return " ".join(run)
    return ""


def attributed(sentence: str, chunk: Chunk) -> str:
    """Prefixes a sentence with its subject when it only says "this cluster" or "it"."""
    if chunk.subject and _ANAPHOR.match(sentence) and not _find_spelling(sentence, chunk.subject):
        return f"{chunk.subject}: {sentence}"
    return sentence


def _find_spelling(sentence: str, subject: str) -> str:
    # "Poolnet" is spelt "Pool-Net" in the sentence: compare letters and digits only.
    target = re.sub(r"[\W_]+", "", fold(subject))
    if not target:
        return ""
    folded = _fold_aligned(sentence)
    pattern = r"[\W_]*".join(re.escape(ch) for ch in target)
    match = re.search(rf"(?<![^\W_]){pattern}(?![^\W_])", folded) or re.search(pattern, folded)
    return sentence[match.start() : match.end()] if match else ""


def _join_names(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "", fold(name))


def _fold_aligned(text: str) -> str:
    # Folds character by character so that offsets into the result are offsets into `text`.
    return "".join((fold(c) or " ")[0] for c in text)
