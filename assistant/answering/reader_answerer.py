"""Question + Hits -> Answer built from the documents' own sentences, chosen by the trained reader.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from assistant.answering import Answerer
from assistant.answering.citations import cite
from assistant.answering.extractive import (
    compose_list,
    declined,
    enumerates,
    lead_sentence,
    named_items,
    never_mentioned_answer,
    quoted_sentences,
    quoted_text,
    strip_footnotes,
    unmentioned_names,
    usable,
)
from assistant.answering.reader import Candidate, Reader, Verdict
from assistant.ingest.tables import sentence_reading
from assistant.question import QuestionProfile, profile
from assistant.records import Answer, Chunk, Citation, Hit, Sentence, Turn
from assistant.text import analyze


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
# The languages of the reader's training data (SQuAD): elsewhere its verdicts are noise.
READER_LANGUAGES = frozenset({"en"})


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


def _key(offered: _Offered) -> tuple[str, int]:
    """Where an offered sentence is: its document and start."""
    return offered.hit.chunk.doc_id, offered.hit.chunk.sentences[offered.index].start


@dataclass(frozen=True)
class ReaderSettings:
    """How many sentences the reader reads, and how answers are put together.

    The reader's thresholds (when to decline, when to lead with the short answer) are not
    here: they are data, fitted for the model and shipped beside it (`Reader.calibration`).
    """

    # Sentences read per question, the likeliest by a cheap first pass. 8, 10 and 12 give the same
    # figures on both dev sets; 16 finds one more seed fact (kfr 0.702 vs 0.695) at twice the cost;
    # 6 loses two SQuAD facts (0.873 -> 0.868) and 4 loses seed ones too (0.679 -> 0.626).
    candidates: int = 8
    list_ratio: float = 0.5  # a list item's reader probability must reach this share of the best one's
    max_items: int = 10
    max_span_words: int = 12  # a longer short answer is no shorter than the sentence


class ReaderAnswerer:
    """Answers from retrieved passages with the sentences the reader finds to answer, cited.

    Args:
        reader: reads (question, sentence) pairs; its calibration decides when to decline
            (the reader shipped with the package by default).
        settings: candidate count and composition limits.
        idf: term -> rarity in the index, for the cheap first pass (flat without an index).
        knows_name: name -> whether any indexed document may mention it.
        previous: chunk -> the chunk before it in its document (for a first sentence's context).
        language_of: document id -> its language (ISO 639-1, "und" when unknown).
        other_languages: answers when the best passage is in a language the reader was not
            trained on (SQuAD is English): its verdicts there say nothing, so another
            answerer (the extractive one) reads those passages.
    """

    name = "reader"

    def __init__(
        self,
        reader: Reader | None = None,
        settings: ReaderSettings | None = None,
        idf: Callable[[str], float] | None = None,
        knows_name: Callable[[str], bool] | None = None,
        previous: Callable[[Chunk], Chunk | None] | None = None,
        language_of: Callable[[str], str] | None = None,
        other_languages: Answerer | None = None,
    ) -> None:
        self.reader = reader or Reader()
        self.settings = settings or ReaderSettings()
        self._idf = idf
        self._knows_name = knows_name
        self._previous = previous
        self._language_of = language_of
        self._other_languages = other_languages

    @property
    def threshold(self) -> float:
        """The p_answer a sentence needs to be given as an answer."""
        return self.reader.calibration.answer_threshold

    def answer(
        self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = (), known: Sequence[Read] = ()
    ) -> Answer:
        """Returns a grounded answer, or an abstention when the hits do not answer it.

        `history` is accepted for the `Answerer` protocol; follow-ups arrive already rewritten.
        `known`: sentences already read against this question (not read again).
        """
        if self._other_languages is not None and hits and not self.reads(hits[0].chunk.doc_id):
            return self._other_languages.answer(question, hits, history)
        q = profile(question)
        never_mentioned = unmentioned_names(q, self._knows_name, hits, self._language_of)
        if never_mentioned:
            return never_mentioned_answer(question, hits, never_mentioned)
        reads = self.read(q, hits, known)
        confidence = reads[0].p if reads else 0.0
        if confidence < self.threshold:
            return declined(question, hits, confidence)
        answer = None
        if q.wants_list and not enumerates(reads[0].text):
            items = self._section_items(reads) or self._list_items(reads)
            if len(items) > 1:
                answer = compose_list(items, hits)
        answer = answer or self._fact_answer(q, reads[0], hits)
        return Answer(
            question=question,
            text=answer[0],
            citations=answer[1],
            abstained=False,
            hits=tuple(hits),
            confidence=confidence,
        )

    # -- reading ----------------------------------------------------------------------

    def reads(self, doc_id: str) -> bool:
        """Tells whether the reader reads a document's language (unknown languages it tries)."""
        language = self._language_of(doc_id) if self._language_of is not None else "und"
        return language in READER_LANGUAGES or language == "und"

    def read(self, q: QuestionProfile, hits: Sequence[Hit], known: Sequence[Read] = ()) -> list[Read]:
        """Reads the likeliest sentences of the hits against the question, best first.

        A sentence among `known` (read against the same question) is taken from there.
        """
        done = {(r.hit.chunk.doc_id, r.sentence.start): r for r in known}
        ranked = self._ranked(q, hits)
        fresh = iter(self._read_all(q, [o for o in ranked if _key(o) not in done]))
        reads = [done[_key(o)] if _key(o) in done else next(fresh) for o in ranked]
        reads.sort(key=lambda r: (-r.p, r.hit.rank, r.sentence.start))
        return reads

    def cited_reads(self, q: QuestionProfile, hits: Sequence[Hit], citation: Citation) -> list[Read]:
        """Reads the hits' sentences a citation quotes (none when it quotes no usable sentence)."""
        cited = [
            o
            for o in self._offered(q, hits)
            if o.hit.chunk.doc_id == citation.doc and citation.start <= _key(o)[1] < citation.end
        ]
        return self._read_all(q, cited)

    def support(self, q: QuestionProfile, hits: Sequence[Hit], enough: float) -> float:
        """Returns the best answer score among the sentences `read` would read, up to `enough`.

        Reads them in the first pass's order, as many at once as the reader reads side by side,
        and stops once one reaches `enough`: whether any does is decided as `read` would, mostly
        after the first few.
        """
        ranked, step, best = self._ranked(q, hits), self.reader.threads, 0.0
        for first in range(0, len(ranked), step):
            best = max([best, *(read.p for read in self._read_all(q, ranked[first : first + step]))])
            if best >= enough:
                break
        return best

    def _ranked(self, q: QuestionProfile, hits: Sequence[Hit]) -> list[_Offered]:
        offered = self._offered(q, hits)
        return sorted(offered, key=lambda o: -(o.coverage + o.similarity))[: self.settings.candidates]

    def _read_all(self, q: QuestionProfile, offered: Sequence[_Offered]) -> list[Read]:
        verdicts = self.reader.read(q.text, [o.candidate for o in offered])
        combiner = self.reader.calibration.combiner
        reads = []
        for o, verdict in zip(offered, verdicts, strict=True):
            read = Read(
                o.hit, o.index, o.hit.chunk.sentences[o.index], o.candidate.sentence, verdict, o.coverage, o.similarity
            )
            reads.append(replace(read, p=answer_score(read, combiner)))
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
                text = sentence_reading(chunk, index, q.terms)  # a table row: the columns asked about
                if key in seen or text is None or not usable(text, chunk, q):
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
        return lead_sentence(chunk, self._previous)

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
        # Every answerable sentence the reader itself accepts nearly as well as the best names an
        # item, once. Nearly as well by the reader's own probability, not the answer score: that
        # one also weighs the hit's rank, and a list's items lie in different, lower-ranked hits.
        floor = reads[0].verdict.p_answer * self.settings.list_ratio
        accepted = (r for r in reads if r.p >= self.threshold and r.verdict.p_answer >= floor)
        return named_items(accepted, self.settings.max_items)

    def _fact_answer(self, q: QuestionProfile, best: Read, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
        chunk = best.hit.chunk
        chosen = quoted_sentences(chunk, best.index, self.settings.max_items)
        # A document's own footnote markers ("Stuttgart [5].") would read as citations.
        body = strip_footnotes(quoted_text(chunk, chosen, best.index, q.terms))
        first, last = chunk.sentences[chosen[0]], chunk.sentences[chosen[-1]]
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


class ReaderGate:
    """Another answerer's answers, checked by the reader: kept, replaced by the reader's, or declined.

    The other answerer (the extractive one) chooses and composes the answer; the reader checks it:

    - a one-source answer (not a list) whose cited sentence the reader finds to answer, by its
      own answer threshold, is kept as it is;
    - when it does not, but another retrieved sentence does, the reader's answer replaces it
      (the rules chose a sentence about the same thing, the reader the one that answers);
    - any other answer stands when some retrieved sentence reaches the gate threshold, and is
      declined when none does. The gate threshold is the calibration's too, set lower than the
      reader's own so that it keeps 98% of answerable questions answered on the validation
      articles: it stacks on the other answerer's own abstentions.

    Lists keep the other answerer's own handling. An answer citing a passage in a language the
    reader was not trained on passes unchecked: its verdicts there say nothing. An answer given
    keeps the other answerer's confidence (how likely the passages answer the question at all,
    replaced or not); a declined one carries the reader's best score.

    Args:
        answerer: chooses and composes the answers.
        reader: reads the hits' sentences against the question (its calibration holds the gate).
    """

    def __init__(self, answerer: Answerer, reader: ReaderAnswerer) -> None:
        self.answerer = answerer
        self.reader = reader
        self.name = answerer.name

    @property
    def threshold(self) -> float:
        """The answer score some sentence of the hits needs for an answer to be given."""
        return self.reader.reader.calibration.gate_threshold

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Returns the other answerer's answer, or an abstention when the reader finds no answer."""
        answer = self.answerer.answer(question, hits, history)
        if answer.abstained or not all(self.reader.reads(c.doc) for c in answer.citations):
            return answer
        q = profile(question)
        support: float | None = None
        if len(answer.citations) == 1 and not q.wants_list:
            # The reader's own threshold is above the gate's: a cited sentence that clears it
            # is support enough.
            enough = max(self.reader.threshold, self.threshold)
            cited = self.reader.cited_reads(q, hits, answer.citations[0])
            if max((r.p for r in cited), default=0.0) >= enough:
                return answer
            # Only where it reads every passage: one it cannot read may hold the answer.
            if all(self.reader.reads(hit.chunk.doc_id) for hit in hits):
                own = self.reader.answer(question, hits, history, known=cited)
                if not own.abstained:
                    return replace(own, answerer=answer.answerer, confidence=answer.confidence)
                support = own.confidence  # the best score of the full read: no need to read again
        if support is None:
            support = self.support(question, hits)
        if support < self.threshold:
            return replace(declined(question, hits, support), answerer=answer.answerer)
        return answer

    def answerable(self, question: str, hits: Sequence[Hit]) -> bool:
        """Tells whether some retrieved sentence answers the question, before any answer is written.

        Hits in a language the reader was not trained on may hold the answer: then it cannot say.
        """
        if not all(self.reader.reads(hit.chunk.doc_id) for hit in hits):
            return True
        return self.support(question, hits) >= self.threshold

    def support(self, question: str, hits: Sequence[Hit]) -> float:
        """The best answer score among the hits' sentences, read until one reaches the threshold."""
        return self.reader.support(profile(question), hits, enough=self.threshold)
