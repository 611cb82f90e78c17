"""The reader answerer (ASSISTANT_ANSWERER=reader): the reader chooses the sentence, cites it, or declines.

The questions here are not those of the gold set (eval/gold.jsonl): each test checks a
property of the answer (it holds the fact, cites the sentence that states it, stays short),
never a tuned string.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering.citations import markers
from assistant.answering.extractive import restates
from assistant.answering.reader_answerer import ReaderAnswerer
from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.ingest.chunking import split_sentences
from assistant.pipeline import Assistant
from assistant.question import profile
from assistant.records import NOT_FOUND, Answer, Chunk, Hit
from tests.conftest import CORPUS, LIST_QUESTION, OUTSIDE_QUESTION, assert_citations_exact

FOUR_MOTORS = "4-motors-industry-4-0-concept-note.txt"


@pytest.fixture(scope="module")
def assistant(built_index: Path, real_embedder: Embedder) -> Assistant:
    """An assistant answering with the reader from the session's real index."""
    settings = Settings(corpus_dir=CORPUS, index_dir=built_index, data_dir=built_index / "data", answerer="reader")
    return Assistant(settings, embedder=real_embedder)


@pytest.mark.parametrize(
    ("question", "fact", "doc"),
    [
        ("How many municipalities make up Portugal's Centro Region?", "100 municipalities", FOUR_MOTORS),
        ("How many researchers were expected to work at Flanders Make by 2018?", "300", FOUR_MOTORS),
        (
            "Who organised the workshop held at the Baglioni Hotel?",
            "ASEV",
            "florence-industrial-modernisation-workshop.txt",
        ),
        (
            "On which day was the act of constitution of the Asturian metal cluster signed?",
            "July 25, 2016",
            "metaindustry4-third-birthday.txt",
        ),
    ],
)
def test_a_fact_is_answered_by_the_sentence_that_states_it(
    assistant: Assistant, question: str, fact: str, doc: str
) -> None:
    answer = assistant.ask(question)
    assert not answer.abstained, answer.text
    assert fact in answer.text, answer.text
    cited = answer.citations[0]
    assert cited.doc == doc and fact in cited.quote
    assert_citations_exact(assistant, answer)
    assert len(answer.text.split()) < 80  # a sentence or two, not a pasted passage


def test_the_short_answer_leads_only_when_it_is_inside_the_cited_sentence(assistant: Assistant) -> None:
    for question in (
        "How many municipalities make up Portugal's Centro Region?",
        "Who organised the workshop held at the Baglioni Hotel?",
    ):
        answer = assistant.ask(question)
        first, _, rest = answer.text.partition("\n\n")
        if rest:  # a short answer leads: it is a piece of the sentence cited below it
            short = first.removesuffix(" [1]")
            assert short and short in answer.citations[0].quote, answer.text
            assert len(short.split()) <= 12


@pytest.mark.parametrize(
    "question",
    [
        OUTSIDE_QUESTION,
        "Who is the chief executive of Luxinnovation?",
        pytest.param(
            "How many employees does Eurecat have in Brazil?",
            # The reader takes "nine centres in Catalonia and one in Brazil" for a count of
            # employees: telling the counted thing apart is still beyond it (issue 17).
            marks=pytest.mark.xfail(strict=True, reason="the reader answers with a count of centres"),
        ),
    ],
)
def test_a_question_the_documents_do_not_answer_is_declined(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    assert answer.abstained, answer.text
    assert answer.text.startswith(NOT_FOUND) and answer.citations == ()


def test_a_list_question_names_each_item_with_its_own_citation(assistant: Assistant) -> None:
    answer = assistant.ask(LIST_QUESTION)
    assert not answer.abstained
    assert_citations_exact(assistant, answer)
    lead = answer.text.split("\n", 1)[0]
    named = [name for name in ("Plastipolis", "microTEC", "Pool-Net") if name in lead]
    assert len(named) >= 2, answer.text
    assert len(answer.citations) >= 2
    assert all("gold" in c.quote.lower() for c in answer.citations), answer.citations


def test_a_sentence_introducing_a_list_brings_its_items(assistant: Assistant) -> None:
    answer = assistant.ask("What are the main missions of Plastipolis?")
    assert "stimulation of innovation" in answer.text
    assert "support of small and medium companies" in answer.text
    assert "Gold label" not in answer.text  # the paragraph after the list is not part of it
    assert_citations_exact(assistant, answer)


def test_hits_timings_and_confidence_are_reported(assistant: Assistant) -> None:
    answer = assistant.ask("Which clusters are in Catalonia?", k=3)
    assert len(answer.hits) == 3
    assert [h.rank for h in answer.hits] == [1, 2, 3]
    assert set(answer.timings_ms) == {"retrieval", "answer", "total"}
    assert answer.confidence is not None and 0.0 <= answer.confidence <= 1.0
    data = answer.to_dict()
    assert set(data) >= {"answer", "abstained", "citations", "hits", "timings_ms"}


def test_a_question_about_a_name_no_document_mentions_abstains_and_says_so(assistant: Assistant) -> None:
    answer = assistant.ask("Which company was awarded the Nordic Robotics Prize 2026?")
    assert answer.abstained and answer.citations == ()
    assert answer.text.startswith(NOT_FOUND) and not markers(answer.text)
    # The abstention names the name no document mentions, and only that one.
    said = answer.text.removeprefix(NOT_FOUND)
    assert "never mention" in said and "Nordic Robotics Prize" in said, answer.text
    assert said.strip().count(".") == 1  # one short sentence, not a quote from a document
    # A misspelt name the documents do hold is not taken for an unknown one.
    typo = assistant.ask(LIST_QUESTION.replace("?", " in Frence?"))
    assert "never mention" not in typo.text


@pytest.mark.parametrize(
    ("sentence", "question", "expected"),
    [
        ("Which clusters hold a Silver label?", "Which clusters hold a Silver label?", True),
        ("Clusters hold a Silver label.", "Which clusters hold a Silver label?", True),
        ("Cluj IT Cluster holds the Silver label.", "Which clusters hold a Silver label?", False),
        # A yes/no question is answered by the sentence that states it.
        ("Cluj IT Cluster holds a Silver label.", "Does Cluj IT Cluster hold a Silver label?", False),
        ("Does anyone hold a Silver label?", "Does Cluj IT Cluster hold a Silver label?", True),
        # A sentence that introduces a list introduces the answer.
        ("The main missions of Plastipolis are:", "What are the main missions of Plastipolis?", False),
    ],
)
def test_a_sentence_that_only_restates_the_question_is_no_answer(sentence: str, question: str, expected: bool) -> None:
    assert restates(sentence, profile(question)) is expected


def test_a_documents_own_footnote_markers_never_read_as_citations() -> None:
    text = "Bwcon was founded in 1997 in Stuttgart [5]. It runs CyberOne [6]."
    chunk = Chunk("d#0", "d", 0, "Bwcon", (), "", 0, len(text), text, tuple(split_sentences(text)), 20)
    answer = ReaderAnswerer().answer("When and where was Bwcon founded?", [Hit(chunk=chunk, score=1.0, rank=1)])
    assert not answer.abstained, answer.text
    assert "1997" in answer.text
    assert markers(answer.text) == [1]


def test_a_chunk_that_continues_the_one_before_is_read_with_its_last_sentence() -> None:
    # The chunker cut between "Sky Travel ..." and "However, this was replaced ...": the second
    # chunk never names Sky Travel, but the reader reads its first sentence after the lead.
    text = (
        "A channel showed programmes on resorts. Sky Travel was that channel about holidays. "
        "However, this was replaced by Sky Three on 31 October 2005. Sky Three later became Pick TV."
    )
    cut = text.index("However")
    first = Chunk("d#0", "d", 0, "Sky", (), "", 0, cut, text[:cut], tuple(split_sentences(text, 0, cut)), 20)
    second = Chunk("d#1", "d", 1, "Sky", (), "", cut, len(text), text[cut:], tuple(split_sentences(text, cut)), 20)
    hits = [Hit(chunk=second, score=1.0, rank=1)]
    previous = {second.id: first}
    answerer = ReaderAnswerer(previous=lambda c: previous.get(c.id))
    reads = answerer.read(profile("What replaced Sky Travel?"), hits)
    assert reads[0].text.startswith("However")
    answer = answerer.answer("What replaced Sky Travel?", hits)
    assert "Sky Three" in answer.text and not answer.abstained


def test_a_passage_in_a_language_the_reader_was_not_trained_on_is_read_by_the_other_answerer() -> None:
    swedish = "Stefan Jansson och Kjell Grundström hälsade inspiratören för dagen, Rodin Genoff, välkommen."
    english = "Nordlys Labs was founded in 1997 in Bergen. It runs the Aurora award."
    chunks = {
        doc: Chunk(f"{doc}#0", doc, 0, doc, (), "", 0, len(t), t, tuple(split_sentences(t)), 20)
        for doc, t in (("sv.txt", swedish), ("en.txt", english))
    }
    languages = {"sv.txt": "sv", "en.txt": "en"}
    asked: list[str] = []

    class Other:
        name = "other"

        def answer(self, question: str, hits: list[Hit], history: object = ()) -> Answer:
            asked.append(hits[0].chunk.doc_id)
            return Answer(question=question, text="other", citations=(), abstained=False, hits=tuple(hits))

    answerer = ReaderAnswerer(language_of=languages.__getitem__, other_languages=Other())
    swedish_first = [Hit(chunk=chunks["sv.txt"], score=1.0, rank=1), Hit(chunk=chunks["en.txt"], score=0.5, rank=2)]
    assert answerer.answer("Who welcomed Rodin Genoff?", swedish_first).text == "other"
    assert asked == ["sv.txt"]
    # An English passage first: the reader itself answers, whatever else was retrieved.
    english_first = list(reversed(swedish_first))
    answer = answerer.answer("In which year was Nordlys Labs founded?", english_first)
    assert "1997" in answer.text and asked == ["sv.txt"]
    # Without a language for the documents (or an unknown one) the reader reads them all.
    unknown = ReaderAnswerer(other_languages=Other())
    assert unknown.answer("In which year was Nordlys Labs founded?", english_first).text != "other"


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("Which company did Rodin Genoff found?", "Rodin Genoff & Associates"),
        ("Who organised the June 2018 workshop at Dalarna Science Park?", "Vanguard ADMA"),
    ],
)
def test_a_question_about_a_swedish_document_is_answered_from_it(
    assistant: Assistant, question: str, fact: str
) -> None:
    answer = assistant.ask(question)
    assert not answer.abstained, answer.text
    assert fact in answer.text, answer.text
    assert answer.citations[0].doc == "smart-industri-norra-mellansverige.txt"
    assert fact in answer.citations[0].quote
    assert_citations_exact(assistant, answer)
