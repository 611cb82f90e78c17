"""SQuAD files -> labelled (question, sentence, context) examples for training the reader.

Each SQuAD paragraph is split into sentences with the same splitter the answerer uses on the
corpus, so the reader trains on the sentences it will see. For a question:

- the sentence holding the answer is a positive, with the answer's character span inside it;
- the other sentences of the paragraph are hard negatives (they are about the same thing), the
  ones sharing most words with the question first;
- an unanswerable SQuAD 2.0 question makes its best-matching sentences negatives: they look
  like answers and are not;
- a SQuAD 1.1 question with one of its names or numbers swapped for another of the same article
  ("When did Beyoncé ..." -> "When did Jay Z ...") makes its own answer sentence a negative:
  the swap the SQuAD 2.0 crowd workers made by hand, made in bulk;
- a SQuAD 1.1 question turned negative ("When did she become famous?" -> "When didn't she
  become famous?") makes its own answer sentence a negative too, unless that sentence is
  itself negative: the other edit SQuAD 2.0's crowd workers made most often;
- in the focus stage, a question also goes against the sentences of its article's *other*
  paragraphs that share most words with it: about the same subject, written elsewhere, not the
  answer. The kind of sentence retrieval brings for a question the documents do not answer
  ("Who is the CEO of X?" against sentences about X).

Splits are by article, never by question: questions about one paragraph are near-duplicates.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant.answering.reader import Candidate
from assistant.ingest.chunking import split_sentences
from assistant.text import NEGATION, analyze

SQUAD11 = "squad11-train.json.gz"
SQUAD20 = "squad20-dev-30-articles.json.gz"

_NAME = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of|de|the|von|van|du|la|al)?\s*[A-Z][\w'’.-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
# An auxiliary verb and its negative form; the first one in a question is negated.
_NEGATIVE = {
    "did": "didn't", "does": "doesn't", "do": "don't", "is": "isn't", "was": "wasn't",
    "were": "weren't", "are": "aren't", "can": "can't", "could": "couldn't", "has": "hasn't",
    "have": "haven't", "had": "hadn't", "will": "won't", "would": "wouldn't", "should": "shouldn't",
}  # fmt: skip
_AUXILIARY = re.compile(r"\b(" + "|".join(_NEGATIVE) + r")\b", re.IGNORECASE)
# "Who founded ...?": a question word straight before a verb in the past takes "never".
_WH_PAST = re.compile(r"^(who|what|which \w+)\s+(?=\w+ed\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Example:
    """One labelled triple: does `candidate.sentence` answer `question`, and where."""

    question: str
    candidate: Candidate
    label: int  # 1: the sentence answers the question
    span: tuple[int, int] | None  # the answer's character span within the sentence (positives)
    group: str  # the question's id: examples of one question are scored together


@dataclass(frozen=True)
class Paragraph:
    """A paragraph's sentences (as text) and the article it is from."""

    title: str
    sentences: list[tuple[int, int, str]]  # start, end, text within the paragraph

    def candidate(self, i: int) -> Candidate:
        """Returns sentence i with its context, as the answerer builds it for the corpus."""
        previous = self.sentences[i - 1][2] if i > 0 else ""
        return Candidate(self.sentences[i][2], heading=self.title, previous=previous)


@dataclass(frozen=True)
class Question:
    """A SQuAD question about one paragraph."""

    id: str
    text: str
    paragraph: Paragraph
    answers: tuple[tuple[int, str], ...]  # (start in paragraph, text); empty when unanswerable
    article: str


def load_articles(path: Path) -> list[dict]:  # type: ignore[type-arg]
    """Reads a gzipped SQuAD JSON file into its list of articles."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return list(json.load(handle)["data"])


def questions(articles: list[dict]) -> Iterator[Question]:  # type: ignore[type-arg]
    """Yields every question of the articles with its split paragraph."""
    for article in articles:
        title = article["title"].replace("_", " ")
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            sentences = [(s.start, s.end, context[s.start : s.end]) for s in split_sentences(context)]
            if not sentences:
                continue
            para = Paragraph(title, sentences)
            for qa in paragraph["qas"]:
                answers = (
                    () if qa.get("is_impossible") else tuple((a["answer_start"], a["text"]) for a in qa["answers"])
                )
                yield Question(qa["id"], qa["question"].strip(), para, answers, article["title"])


def split_by_article(articles: list[dict], validation: int, seed: int) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    """Splits articles into (training, validation), `validation` articles held out."""
    order = sorted(articles, key=lambda a: a["title"])
    random.Random(seed).shuffle(order)
    return order[validation:], order[:validation]


def answer_sentence(question: Question) -> tuple[int, tuple[int, int]] | None:
    """Returns (sentence index, answer span within it) for the answer most annotators gave.

    SQuAD offsets here are the answer text's first occurrence, so when the text occurs in
    several sentences the one sharing most words with the question is taken.
    """
    if not question.answers:
        return None
    texts = [t for _, t in question.answers]
    # Sorted first: ties would otherwise go by set order, which changes with PYTHONHASHSEED.
    text = max(sorted(set(texts)), key=lambda t: (texts.count(t), -len(t)))
    q_terms = set(analyze(question.text))
    best: tuple[float, int, tuple[int, int]] | None = None
    for i, (_, _, sentence) in enumerate(question.paragraph.sentences):
        at = sentence.find(text)
        if at < 0:
            continue
        overlap = len(q_terms & set(analyze(sentence)))
        if best is None or overlap > best[0]:
            best = (overlap, i, (at, at + len(text)))
    if best is None:  # the answer crosses a sentence boundary
        return None
    return best[1], best[2]


def ranked_by_overlap(question: Question, exclude: set[int]) -> list[int]:
    """Returns the paragraph's sentence indexes, most words shared with the question first."""
    q_terms = set(analyze(question.text))
    scored = [
        (len(q_terms & set(analyze(text))), -i, i)
        for i, (_, _, text) in enumerate(question.paragraph.sentences)
        if i not in exclude
    ]
    return [i for *_, i in sorted(scored, reverse=True)]


def _positive(question: Question) -> tuple[list[Example], set[int]] | None:
    """Returns the question's positive example (none if unanswerable) and the sentences that
    are no safe negatives; None when its answer cannot be placed in one sentence."""
    found = answer_sentence(question)
    if found is None:
        return None if question.answers else ([], set())
    i, span = found
    texts = {t for _, t in question.answers}
    # A sentence that also holds the answer text may answer too: neither label is safe.
    unsafe = {j for j, (_, _, s) in enumerate(question.paragraph.sentences) if any(t in s for t in texts)}
    return [Example(question.text, question.paragraph.candidate(i), 1, span, question.id)], unsafe


def examples_for(question: Question, negatives: int, rng: random.Random) -> list[Example]:
    """Returns a question's positive (if any) and up to `negatives` hard negatives."""
    positive = _positive(question)
    if positive is None:
        return []
    out, exclude = positive
    para = question.paragraph
    ranked = ranked_by_overlap(question, exclude)
    # Mostly the closest look-alikes, sometimes any other sentence of the paragraph.
    chosen = ranked[:negatives] if rng.random() < 0.7 else rng.sample(ranked, min(negatives, len(ranked)))
    out.extend(Example(question.text, para.candidate(j), 0, None, question.id) for j in chosen)
    return out


def article_names(article: dict) -> tuple[list[str], list[str]]:  # type: ignore[type-arg]
    """Returns the names and the numbers written in an article."""
    names: set[str] = set()
    numbers: set[str] = set()
    for paragraph in article["paragraphs"]:
        names.update(m.group(0).strip() for m in _NAME.finditer(paragraph["context"]) if m.start() > 0)
        numbers.update(_NUMBER.findall(paragraph["context"]))
    return sorted(names), sorted(numbers)


def swapped(question: Question, names: list[str], numbers: list[str], rng: random.Random) -> Example | None:
    """Returns the question with one name or number swapped, against its own answer sentence.

    Only a name or number the answer sentence states is swapped, for one the sentence (and the
    paragraph) does not contain: the sentence then no longer answers the question.
    """
    found = answer_sentence(question)
    if found is None:
        return None
    i, _ = found
    sentence = question.paragraph.sentences[i][2]
    paragraph_text = " ".join(s for _, _, s in question.paragraph.sentences)
    answer_texts = {t for _, t in question.answers}
    spots = [
        (m.start(), m.end(), m.group(0).strip(), pool)
        for pattern, pool in ((_NAME, names), (_NUMBER, numbers))
        for m in pattern.finditer(question.text)
        if (m.start() > 0 or pattern is _NUMBER) and m.group(0).strip() in sentence
    ]
    spots = [s for s in spots if not any(s[2] in t for t in answer_texts)]
    if not spots:
        return None
    start, end, word, pool = rng.choice(spots)
    options = [w for w in pool if w not in paragraph_text and w.lower() != word.lower() and len(w) > 1]
    if not options:
        return None
    text = question.text[:start] + rng.choice(options) + question.text[end:]
    return Example(text, question.paragraph.candidate(i), 0, None, question.id + "-swapped")


def negated(question: Question) -> Example | None:
    """Returns the question made negative, against its own answer sentence.

    The first auxiliary verb takes its negative form ("did" -> "didn't"); a question with none
    that starts "Who/What + verb-ed" takes "never". A question or sentence that already holds a
    negation is left alone: negating it twice, or against a negative fact, makes no clean label.
    """
    found = answer_sentence(question)
    if found is None or NEGATION.search(question.text):
        return None
    sentence = question.paragraph.sentences[found[0]][2]
    if NEGATION.search(sentence):
        return None
    auxiliary = _AUXILIARY.search(question.text)
    if auxiliary is not None:
        word = auxiliary.group(1)
        negative = _NEGATIVE[word.lower()]
        negative = negative[0].upper() + negative[1:] if word[0].isupper() else negative
        text = question.text[: auxiliary.start()] + negative + question.text[auxiliary.end() :]
    else:
        wh = _WH_PAST.match(question.text)
        if wh is None:
            return None
        text = question.text[: wh.end()] + "never " + question.text[wh.end() :]
    return Example(text, question.paragraph.candidate(found[0]), 0, None, question.id + "-negated")


def focus_examples(question: Question, negatives: int) -> list[Example]:
    """Returns a SQuAD 2.0 question's examples for the focus stage: more look-alikes per question.

    An unanswerable question goes against its `negatives` best-matching sentences (the ones its
    crowd worker made it look answered by); an answerable one against its answer sentence and
    its closest look-alikes. Closest first, no random draw: the stage sees the hard cases.
    """
    positive = _positive(question)
    if positive is None:
        return []
    out, exclude = positive
    chosen = ranked_by_overlap(question, exclude)[:negatives]
    return out + [Example(question.text, question.paragraph.candidate(j), 0, None, question.id) for j in chosen]


class ArticleSentences:
    """Every sentence of an article's paragraphs with its terms, to find look-alikes elsewhere."""

    def __init__(self, paragraphs: list[Paragraph]) -> None:
        self.entries = [
            (p, i, frozenset(analyze(text))) for p in paragraphs for i, (_, _, text) in enumerate(p.sentences)
        ]

    def negatives(self, question: Question, negatives: int) -> list[Example]:
        """Returns the question against the `negatives` sentences of other paragraphs sharing most
        words with it (at least two). A sentence holding one of its answers is skipped: SQuAD
        articles repeat facts, and such a sentence may answer the question too."""
        q_terms = frozenset(analyze(question.text))
        texts = [t for _, t in question.answers]
        overlaps = (
            (len(q_terms & terms), -n, p, i)
            for n, (p, i, terms) in enumerate(self.entries)
            if p is not question.paragraph
        )
        scored = sorted((s for s in overlaps if s[0] >= 2), key=lambda s: (s[0], s[1]), reverse=True)
        out: list[Example] = []
        for _, _, p, i in scored:
            if len(out) == negatives:
                break
            if not any(t in p.sentences[i][2] for t in texts):
                out.append(Example(question.text, p.candidate(i), 0, None, question.id))
        return out


@dataclass(frozen=True)
class TrainingSet:
    """The examples to train on, and the validation questions (held-out articles).

    `focus` is the second stage's data (empty unless asked for): SQuAD 2.0's training
    questions against more of their look-alike sentences, with first-stage examples replayed.
    """

    examples: list[Example]
    validation: list[Question]
    focus: list[Example]


def build(
    squad_dir: Path,
    *,
    seed: int = 13,
    squad11_questions: int = 90000,
    validation_articles: int = 10,
    swap_rate: float = 0.35,
    negation_rate: float = 0.0,
    focus_negatives: int = 0,
    focus_replay: float = 0.5,
    focus_article_negatives: int = 0,
) -> TrainingSet:
    """Builds the shuffled training examples and the validation questions from SQuAD files."""
    rng = random.Random(seed)
    v1 = load_articles(squad_dir / SQUAD11)
    v2_train, v2_val = split_by_article(load_articles(squad_dir / SQUAD20), validation_articles, seed)
    v2_questions = list(questions(v2_train))
    examples: list[Example] = []
    # All of SQuAD 2.0's training articles: its hand-made unanswerables are the scarce kind.
    for q in v2_questions:
        examples.extend(examples_for(q, negatives=2 if not q.answers else 1, rng=rng))
    pool = list(questions(v1))
    rng.shuffle(pool)
    pool = pool[:squad11_questions]
    entities = {a["title"]: article_names(a) for a in v1}
    for q in pool:
        examples.extend(examples_for(q, negatives=1, rng=rng))
        if rng.random() < swap_rate:
            names, numbers = entities[q.article]
            example = swapped(q, names, numbers, rng)
            if example is not None:
                examples.append(example)
        # No draw at rate 0: the data (and so the shipped model) stay what they were before negations.
        if negation_rate and rng.random() < negation_rate:
            example = negated(q)
            if example is not None:
                examples.append(example)
    rng.shuffle(examples)
    focus: list[Example] = []
    if focus_negatives:
        # Its own generator: the first stage's data stay what they are with or without a focus.
        focus_rng = random.Random(seed + 1)
        articles: dict[str, ArticleSentences] = {}
        if focus_article_negatives:
            paragraphs: dict[str, dict[int, Paragraph]] = {}
            for q in v2_questions:
                paragraphs.setdefault(q.article, {})[id(q.paragraph)] = q.paragraph
            articles = {title: ArticleSentences(list(ps.values())) for title, ps in paragraphs.items()}
        for q in v2_questions:
            examples_of_q = focus_examples(q, negatives=focus_negatives + 1 if not q.answers else focus_negatives)
            focus.extend(examples_of_q)
            if examples_of_q and focus_article_negatives:
                focus.extend(articles[q.article].negatives(q, focus_article_negatives))
        # Replayed first-stage examples keep SQuAD 1.1's answers from being forgotten.
        focus.extend(focus_rng.sample(examples, int(focus_replay * len(focus))))
        focus_rng.shuffle(focus)
    return TrainingSet(examples, list(questions(v2_val)), focus)
