"""The reader's gate on the default answerer: answers the reader finds no support for are declined."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.answering.citations import cite
from assistant.answering.reader import CALIBRATION_FILE, SHIPPED_READER, Candidate, Reader, Verdict
from assistant.answering.reader_answerer import ReaderAnswerer, ReaderGate
from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.ingest.chunking import split_sentences
from assistant.pipeline import Assistant
from assistant.question import profile
from assistant.records import NOT_FOUND, Answer, Chunk, Hit, Turn
from tests.conftest import CORPUS, assert_citations_exact

NORDLYS = "Nordlys Labs was founded in 1997 in Bergen. It runs the Aurora award for young engineers."
SWEDISH = "Nordlys Labs grundades 1997 i Bergen. Företaget delar ut Aurorapriset till unga ingenjörer."


def _hit(doc: str, text: str, rank: int = 1) -> Hit:
    chunk = Chunk(f"{doc}#0", doc, 0, doc, (), "", 0, len(text), text, tuple(split_sentences(text)), 20)
    return Hit(chunk=chunk, score=1.0 / rank, rank=rank)


class FirstSentence:
    """An answerer that always answers with the first sentence of the best hit (as rules that guess)."""

    name = "rules"

    def __init__(self) -> None:
        self.asked = 0

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        self.asked += 1
        chunk = hits[0].chunk
        citation = cite(1, chunk, chunk.sentences[0])
        text = f"{citation.quote} [1]"
        return Answer(question, text, (citation,), False, tuple(hits), answerer=self.name, confidence=0.9)


class Declines:
    name = "rules"

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        return Answer(question, NOT_FOUND, (), True, tuple(hits), answerer=self.name, confidence=0.2)


LANGUAGES = {"en.txt": "en", "sv.txt": "sv"}


@pytest.fixture(scope="module")
def reader() -> ReaderAnswerer:
    return ReaderAnswerer(language_of=LANGUAGES.__getitem__)


def test_an_answer_the_reader_supports_passes_as_it_was_given(reader: ReaderAnswerer) -> None:
    gate = ReaderGate(FirstSentence(), reader)
    question, hits = "In which year was Nordlys Labs founded?", [_hit("en.txt", NORDLYS)]
    answer = gate.answer(question, hits)
    assert answer == FirstSentence().answer(question, hits)
    assert "1997" in answer.text and answer.confidence == 0.9
    assert gate.name == "rules"


def test_the_gate_decides_as_reading_every_candidate_would(reader: ReaderAnswerer) -> None:
    # It stops at the first sentence that clears the threshold; the decision is the full read's.
    hits = [_hit("en.txt", NORDLYS)]
    for question in ("In which year was Nordlys Labs founded?", "Who is the chief executive of Nordlys Labs?"):
        q = profile(question)
        best = reader.read(q, hits)[0].p
        support = reader.support(q, hits, enough=0.045)
        assert (support >= 0.045) == (best >= 0.045)
        assert support <= best and (support == best or support >= 0.045)


def test_an_answer_the_passages_do_not_support_is_declined(reader: ReaderAnswerer) -> None:
    # The rules would answer with the founding sentence; nothing retrieved names a chief executive.
    gate = ReaderGate(FirstSentence(), reader)
    question, hits = "Who is the chief executive of Nordlys Labs?", [_hit("en.txt", NORDLYS)]
    assert not FirstSentence().answer(question, hits).abstained  # the guess the gate stops
    answer = gate.answer(question, hits)
    assert answer.abstained, answer.text
    assert answer.text == NOT_FOUND and answer.citations == ()
    assert answer.confidence is not None and answer.confidence < gate.threshold
    assert answer.answerer == "rules"


def test_an_answer_citing_a_sentence_that_does_not_answer_gives_way_to_the_one_that_does(
    reader: ReaderAnswerer,
) -> None:
    # The rules cite the founding sentence, about the same company; the reader finds the award.
    question, hits = "Which award does Nordlys Labs run?", [_hit("en.txt", NORDLYS)]
    rules = FirstSentence()
    assert "Aurora" not in rules.answer(question, hits).text
    answer = ReaderGate(rules, reader).answer(question, hits)
    assert not answer.abstained
    assert [c.quote for c in answer.citations] == ["It runs the Aurora award for young engineers."]
    assert "Aurora" in answer.text and "[1]" in answer.text
    assert all(NORDLYS[c.start : c.end] == c.quote and c.doc == "en.txt" for c in answer.citations)
    # The rules' confidence (that the passages answer at all) and name stay with the answer.
    assert answer.confidence == 0.9 and answer.answerer == "rules"


def test_an_answer_is_not_replaced_while_a_passage_the_reader_cannot_read_was_found(
    reader: ReaderAnswerer,
) -> None:
    # The Swedish passage may hold the answer the rules saw: the reader only checks that
    # something it reads answers, as before.
    question = "Which award does Nordlys Labs run?"
    hits = [_hit("en.txt", NORDLYS), _hit("sv.txt", SWEDISH, 2)]
    answer = ReaderGate(FirstSentence(), reader).answer(question, hits)
    assert answer == FirstSentence().answer(question, hits)


def test_a_declined_answer_reads_each_sentence_once() -> None:
    # The cited sentence, then the full read, which takes the cited one's verdict as it is: its
    # best score decides the gate too, unread again.
    class Counting(Reader):
        sentences_read = 0

        def read(self, question: str, candidates: Sequence[Candidate]) -> list[Verdict]:
            Counting.sentences_read += len(candidates)
            return super().read(question, candidates)

    counting = ReaderAnswerer(Counting(), language_of=LANGUAGES.__getitem__)
    question, hits = "Who is the chief executive of Nordlys Labs?", [_hit("en.txt", NORDLYS)]
    answer = ReaderGate(FirstSentence(), counting).answer(question, hits)
    assert answer.abstained
    assert Counting.sentences_read == 1 + 1  # the cited sentence, then the other one


def test_the_gate_reads_as_many_sentences_at_once_as_the_reader_has_cores_and_stops_at_support() -> None:
    class Counting(Reader):
        reads: list[int] = []

        def read(self, question: str, candidates: Sequence[Candidate]) -> list[Verdict]:
            Counting.reads.append(len(candidates))
            return super().read(question, candidates)

    text = (
        "Nordlys Labs was founded in 1997 in Bergen. It runs the Aurora award for young engineers. "
        "Its workshop repairs fishing boats. The canteen serves soup on Fridays. Visitors park by the pier."
    )
    answerer = ReaderAnswerer(Counting(threads=2), language_of=LANGUAGES.__getitem__)
    q, hits = profile("In which year was Nordlys Labs founded?"), [_hit("en.txt", text)]
    assert len(answerer.read(q, hits)) == 5 and Counting.reads == [5]  # one call: all side by side
    Counting.reads.clear()
    assert answerer.support(q, hits, enough=0.045) >= 0.045
    assert Counting.reads == [2]  # the founding sentence comes first: no second step
    Counting.reads.clear()
    assert answerer.support(q, hits, enough=1.0) < 1.0
    assert Counting.reads == [2, 2, 1]  # nothing is enough: every sentence, two at a time


def test_the_gate_threshold_is_below_the_readers_own(reader: ReaderAnswerer) -> None:
    # The gate stacks on the other answerer's own abstentions, so it keeps more answers.
    gate = ReaderGate(FirstSentence(), reader)
    assert 0.0 < gate.threshold < reader.threshold


def test_an_abstention_is_passed_on_without_reading(reader: ReaderAnswerer) -> None:
    class Unread(ReaderAnswerer):
        def read(self, *args: object, **kwargs: object) -> list:  # type: ignore[override,type-arg]
            raise AssertionError("the reader was asked to read")

    answer = ReaderGate(Declines(), Unread()).answer("Who is it?", [_hit("en.txt", NORDLYS)])
    assert answer.abstained and answer.confidence == 0.2


def test_an_answer_from_a_passage_in_a_language_the_reader_does_not_read_passes_unchecked(
    reader: ReaderAnswerer,
) -> None:
    # The reader's verdict on a Swedish sentence says nothing, so it does not stop the answer.
    question = "Who is the chief executive of Nordlys Labs?"
    rules = FirstSentence()
    answer = ReaderGate(rules, reader).answer(question, [_hit("sv.txt", SWEDISH), _hit("en.txt", NORDLYS, 2)])
    assert not answer.abstained and answer.citations[0].doc == "sv.txt"
    assert rules.asked == 1


def test_before_any_answer_the_gate_says_whether_the_passages_answer(reader: ReaderAnswerer) -> None:
    # What the LLM answerer asks before spending a model call.
    gate = ReaderGate(FirstSentence(), reader)
    english = [_hit("en.txt", NORDLYS)]
    assert gate.answerable("In which year was Nordlys Labs founded?", english)
    assert not gate.answerable("Who is the chief executive of Nordlys Labs?", english)
    # A passage it cannot read may hold the answer: it does not stand in the way.
    assert gate.answerable("Who is the chief executive of Nordlys Labs?", [*english, _hit("sv.txt", SWEDISH, 2)])


@pytest.fixture(scope="module")
def default_assistant(built_index: Path, real_embedder: Embedder) -> Assistant:
    """The assistant as shipped: the extractive answerer behind the reader's gate."""
    return Assistant(Settings(corpus_dir=CORPUS, index_dir=built_index, data_dir=built_index / "data"), real_embedder)


@pytest.fixture(scope="module")
def ungated_assistant(built_index: Path, real_embedder: Embedder) -> Assistant:
    settings = Settings(corpus_dir=CORPUS, index_dir=built_index, data_dir=built_index / "data", reader_gate=False)
    return Assistant(settings, real_embedder)


def test_the_default_assistant_checks_its_answers_with_the_reader(
    default_assistant: Assistant, ungated_assistant: Assistant
) -> None:
    assert isinstance(default_assistant.engine.answerer, ReaderGate)
    assert default_assistant.setup()["answerer"] == "extractive+reader-gate"
    assert ungated_assistant.setup()["answerer"] == "extractive"
    # The reader's calibration is part of what the default's answers depend on.
    assert default_assistant.setup()["calibration_sha256"] != ungated_assistant.setup()["calibration_sha256"]


@pytest.mark.parametrize(
    "question",
    [
        "Who is the mayor of Stuttgart?",
        "Who is the director of Flanders Make?",
        "Which bank finances Plastipolis?",
    ],
)
def test_a_realistic_question_the_documents_do_not_answer_is_declined_by_default(
    default_assistant: Assistant, ungated_assistant: Assistant, question: str
) -> None:
    # The rules alone answer with a passage about the organisation or place asked about.
    assert not ungated_assistant.ask(question).abstained
    answer = default_assistant.ask(question)
    assert answer.abstained, answer.text
    assert answer.text.startswith(NOT_FOUND) and answer.citations == ()


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("How many municipalities are there in Portugal's Centro Region?", "100"),
        ("Which hotel hosted the Florence workshop?", "Baglioni"),
    ],
)
def test_a_question_the_documents_answer_keeps_its_answer_by_default(
    default_assistant: Assistant, question: str, fact: str
) -> None:
    answer = default_assistant.ask(question)
    assert not answer.abstained, answer.text
    assert fact in answer.text
    assert_citations_exact(default_assistant, answer)


def test_a_reader_calibrated_before_the_gate_existed_is_reported(
    built_index: Path, real_embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("reader-int8.onnx", "tokenizer.json", CALIBRATION_FILE):
        shutil.copyfile(SHIPPED_READER / name, tmp_path / name)
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    del data["gate_threshold"]
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    settings = Settings(corpus_dir=CORPUS, index_dir=built_index, data_dir=tmp_path / "data", reader_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.pipeline"):
        assert isinstance(Assistant(settings, real_embedder).engine.answerer, ReaderGate)
    assert "no gate threshold" in caplog.text and "--calibrate-only" in caplog.text
