from __future__ import annotations

import pytest

from assistant.answering.citations import markers, renumber
from assistant.answering.extractive import (
    Evidence,
    ExtractiveAnswerer,
    _introduces_list,
    _type_signal,
    attributed,
    item_name,
    quoted_sentences,
    quoted_text,
    unmentioned_names,
)
from assistant.errors import QuestionError
from assistant.ingest.chunking import split_sentences
from assistant.pipeline import Assistant
from assistant.question import mentions, profile
from assistant.records import NOT_FOUND, Chunk, Citation, Hit, Sentence
from assistant.text import fold
from tests.conftest import (
    FACT,
    FACT_QUESTION,
    LIST_ITEMS,
    LIST_QUESTION,
    OUTSIDE_QUESTION,
    assert_citations_exact,
)

FOUR_MOTORS = "4-motors-industry-4-0-concept-note.txt"


def test_gold_label_partners_are_named_each_with_the_sentence_that_says_so(assistant: Assistant) -> None:
    answer = assistant.ask(LIST_QUESTION)
    assert not answer.abstained
    assert_citations_exact(assistant, answer)
    lead = answer.text.split("\n", 1)[0]
    by_name = {}
    for name in LIST_ITEMS:
        assert name in lead, answer.text
        cited = [c for c in answer.citations if c.quote and name.split()[0].lower() in (c.section + c.quote).lower()]
        assert cited, name
        by_name[name] = cited[0]
    for citation in by_name.values():
        assert citation.doc == FOUR_MOTORS
        assert "gold label" in citation.quote.lower()
    # The microTEC sentence says only "This cluster": the answer still names microTEC Südwest.
    micro = by_name["microTEC Südwest"]
    assert micro.quote.startswith("This cluster")
    assert "microTEC Südwest: This cluster" in answer.text
    assert micro.section == "A.3.3.3.1. microTEC Südwest"
    # No Silver or Bronze holder slips in.
    assert "Cluj" not in answer.text and "Bronze" not in answer.text


def test_off_topic_question_abstains(assistant: Assistant) -> None:
    answer = assistant.ask(OUTSIDE_QUESTION)
    assert answer.abstained
    assert answer.text == NOT_FOUND
    assert answer.citations == ()


@pytest.mark.parametrize(
    ("question", "expected", "doc"),
    [
        (FACT_QUESTION, FACT, FOUR_MOTORS),
        ("How many partners does MetaIndustry4 have?", "61", "metaindustry4-third-birthday.txt"),
        (
            "How many jobs does the manufacturing sector represent in Luxembourg?",
            "35,000",
            "luxembourg-materials-manufacturing-cluster-agm.txt",
        ),
        ("How many members does Clúster Digital de Catalunya have?", "40", FOUR_MOTORS),
        # "recognised" counts as fully as "recognition" would.
        ("Which recognition has AFIL received from I4MS?", "Digital Innovation Hub", FOUR_MOTORS),
        # The thesaurus: "Located in Oyonnax", "Together, ... 36 million inhabitants".
        ("Where is Plastipolis based?", "Oyonnax", FOUR_MOTORS),
        ("What is the total population of the Four Motors?", "36 million", FOUR_MOTORS),
    ],
)
def test_fact_questions_get_the_sentence_that_states_them(
    assistant: Assistant, question: str, expected: str, doc: str
) -> None:
    answer = assistant.ask(question)
    assert expected in answer.text, answer.text
    assert answer.citations[0].doc == doc
    assert expected in answer.citations[0].quote
    assert_citations_exact(assistant, answer)
    # One sentence, not a pasted passage.
    assert len(answer.text.split()) < 60


def test_a_sentence_introducing_a_list_brings_its_items(assistant: Assistant) -> None:
    answer = assistant.ask("What are the main missions of Plastipolis?")
    assert "stimulation of innovation" in answer.text
    assert "support of small and medium companies" in answer.text
    assert "Gold label" not in answer.text  # the paragraph after the list is not part of it
    assert_citations_exact(assistant, answer)


def test_empty_and_oversized_questions_are_errors(assistant: Assistant) -> None:
    with pytest.raises(QuestionError, match="empty"):
        assistant.ask("   ")
    with pytest.raises(QuestionError, match="limit is"):
        assistant.ask("why " * 1000)


def test_hits_and_timings_are_reported(assistant: Assistant) -> None:
    answer = assistant.ask("Which clusters are in Catalonia?", k=3)
    assert len(answer.hits) == 3
    assert [h.rank for h in answer.hits] == [1, 2, 3]
    assert set(answer.timings_ms) == {"retrieval", "answer", "total"}
    data = answer.to_dict()
    assert set(data) >= {"answer", "abstained", "citations", "hits", "timings_ms"}


def _chunk(text: str, subject: str) -> Chunk:
    return Chunk(
        id="d#0",
        doc_id="d",
        n=0,
        title="T",
        section_path=(subject,),
        subject=subject,
        start=0,
        end=len(text),
        text=text,
        sentences=(Sentence(0, len(text)),),
        tokens=10,
    )


def _sentenced(text: str, subject: str = "") -> Chunk:
    chunk = _chunk(text, subject)
    return Chunk(**{**chunk.__dict__, "sentences": tuple(split_sentences(text))})


def test_an_answer_quotes_the_sentence_it_leans_on_and_the_items_it_introduces() -> None:
    event = _sentenced("The fair opened in Lyon in March with 40 exhibitors. At this occasion the mayor spoke.")
    assert quoted_sentences(event, 1, max_items=8) == [0, 1]  # the occasion is the fair
    assert quoted_text(event, [0, 1], 1) == event.text
    # An existential "There is ..." does not point back at anything.
    existential = _sentenced("The fair opened in Lyon in March with 40 exhibitors. There is a second fair in May.")
    assert quoted_sentences(existential, 1, max_items=8) == [1]
    listing = _sentenced("The partners are:\n- Alpha Systems\n- Beta Works\n- Gamma Labs\nThe end came later.")
    assert quoted_sentences(listing, 0, max_items=8) == [0, 1, 2, 3]  # up to the first line that is no item
    assert quoted_sentences(listing, 0, max_items=2) == [0, 1, 2]  # at most max_items items
    assert quoted_text(listing, [0, 1, 2], 0) == "The partners are:\n- Alpha Systems\n- Beta Works"
    # An introduction with no items after it reads as a sentence, with no dangling line break.
    alone = _sentenced("The partners are:")
    assert quoted_text(alone, quoted_sentences(alone, 0, max_items=8), 0) == "The partners are:"
    # A sentence that only says "this cluster" is led by the subject, once.
    micro = _sentenced("This cluster holds the gold label. It has 90 members.", "microTEC Südwest")
    assert quoted_text(micro, [0, 1], 0) == "microTEC Südwest: " + micro.text


def test_subject_attribution_rules() -> None:
    poolnet = _chunk("Pool-Net been awarded the Gold Label.", "Poolnet")
    assert item_name(poolnet.text, poolnet) == "Pool-Net"  # the sentence's own spelling
    assert attributed(poolnet.text, poolnet) == poolnet.text
    micro = _chunk("This cluster has been awarded with the gold label.", "microTEC Südwest")
    assert attributed(micro.text, micro) == "microTEC Südwest: " + micro.text
    assert item_name(micro.text, micro) == "microTEC Südwest"


def test_renumber_drops_markers_that_point_to_nothing() -> None:
    cites = [Citation(n, "d", "T", "S", 0, 1, "x") for n in (1, 2, 3)]
    text, kept = renumber("B is true [3]. A too [1][7]. Unknown [9].", cites)
    assert text == "B is true [1]. A too [2]. Unknown."
    assert [c.n for c in kept] == [1, 2]
    assert markers(text) == [1, 2]


def test_a_question_about_a_name_no_document_mentions_abstains_and_says_so(
    assistant: Assistant,
) -> None:
    # "awarded" and "prize" pull in a sentence about an award: without the name check the
    # answer would be that unrelated award.
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


def test_a_name_may_be_translated_when_the_passages_found_are_in_another_language() -> None:
    # "Sweden" is nowhere in the index, but a Swedish passage was found: it may say "Sverige".
    q = profile("Which counties of Sweden take part in the Nordic Factory project?")
    english = Hit(Chunk(**{**_chunk("The Nordic Factory project.", "").__dict__, "doc_id": "en.txt"}), 1.0, 1)
    swedish = Hit(Chunk(**{**_chunk("Projektet Nordic Factory i Sverige.", "").__dict__, "doc_id": "sv.txt"}), 0.9, 2)
    languages = {"en.txt": "en", "sv.txt": "sv"}.__getitem__

    def knows(name: str) -> bool:
        return name == "Nordic Factory"

    assert unmentioned_names(q, knows, [english, swedish], languages) == []
    # Only Swedish passages found for an English question: "Swedish" may be "svenska" there.
    adjective = profile("Which Swedish counties take part in the Nordic Factory project?")
    assert unmentioned_names(adjective, knows, [swedish], languages) == []
    # Passages in the question's language only: a name none of the documents holds is still ruled out.
    assert unmentioned_names(q, knows, [english], languages) == ["Sweden"]
    assert unmentioned_names(adjective, knows, [english], languages) == ["Swedish"]
    assert unmentioned_names(q, knows, [english, swedish], None) == ["Sweden"]
    assert unmentioned_names(q, None, [english], languages) == []


def test_what_is_the_population_asks_for_a_number() -> None:
    assert profile("What is the combined population of the Nordic regions?").answer_type == "number"
    assert profile("What is the main goal of the cluster?").answer_type is None


@pytest.mark.parametrize(
    ("question", "sentence", "expected"),
    [
        # Years before 1500 are years too, and so are decades and years named by a preposition.
        ("When did Herve serve?", "One of the first Norman mercenaries was Hervé in the 1050s.", 1.0),
        ("In what year did they invade?", "In 1018, Roger de Tosny travelled to the Iberian Peninsula.", 1.0),
        ("When did the Duchy begin?", "The Duchy of Normandy began in 911 as a fiefdom.", 1.0),
        ("When was the cluster founded?", "The cluster has 300 members.", -1.0),
        # A question about money wants an amount of money, not any number.
        ("How much did Sky bid for the packages?", "Sky picked up the remaining four for £1.3bn.", 1.0),
        ("What is the yearly turnover of Eurecat?", "It generates a turnover of 36 M € yearly.", 1.0),
        ("How much did it cost to register?", "Registration was free of charge.", 1.0),
        ("How much did it cost to register?", "The workshop compared visions of Industry 4.0.", -1.0),
        ("What is the annual membership fee of the cluster?", "The AGM on 28 February is open to all.", -1.0),
        # "How many" is answered by a sentence that holds a number; whether it counts the right
        # thing is the reader's call (see the gate), not a word list's.
        ("How many people attended?", "The event gathered more than 600 participants in Lyon.", 1.0),
        ("How many people attended?", "The event gathered participants from all over Europe.", -1.0),
    ],
)
def test_the_sentence_holds_the_kind_of_answer_asked_for(question: str, sentence: str, expected: float) -> None:
    assert _type_signal(profile(question), sentence) == expected


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much did BSkyB pay for the Premier League rights?", "money"),
        ("What is Eurecat's annual research budget?", "money"),
        ("what is the fee range for accessing the EPG?", "money"),
        # "How many" asks for a count even when a turnover is asked for as well.
        ("How many researchers does Flanders Make employ, and what is its yearly turnover?", "number"),
        ("How much of the land is forest?", "number"),
        ("What channel lost advertising revenue due to their plans?", None),
    ],
)
def test_money_questions_are_told_from_other_number_questions(question: str, kind: str | None) -> None:
    assert profile(question).answer_type == kind


@pytest.mark.parametrize(
    "question",
    [
        "How much does it cost to become a member of Cluj IT Cluster?",
        "How much did the Composite Industry Luxembourg initiative cost?",
        # The rules alone answer with "R&D Project involving more than 75 million Euros of
        # investment"; the reader's gate finds no sentence that gives a fee.
        "What is the annual membership fee of Pool-Net?",
        # The rules alone answer with the sentence saying where and when the workshop was.
        "What was the ticket price for the Florence workshop at the Baglioni Hotel?",
    ],
)
def test_a_price_the_documents_never_give_is_not_answered_with_another_sentence(
    assistant: Assistant, question: str
) -> None:
    # The documents describe these clusters and events at length, but name no fee or price.
    answer = assistant.ask(question)
    assert answer.abstained, answer.text
    assert answer.citations == ()


@pytest.mark.parametrize(
    ("question", "items", "parent"),
    [
        (
            "Which Catalan clusters take part in the partnership?",
            ("Eurecat", "CEP", "Cluster Digital"),
            "3.3.4. Catalonia",
        ),
        # The items are retrieved, but the answer is the region's own sentence ("Located in
        # the north-eastern part ..."), not the clusters of its section.
        pytest.param(
            "Which clusters represent Catalonia in the partnership?",
            ("Eurecat", "CEP", "Cluster Digital"),
            "3.3.4. Catalonia",
            marks=pytest.mark.xfail(strict=True, reason="the region's sentence outranks the list of its clusters"),
        ),
        pytest.param(
            "Which clusters represent Baden-Württemberg in the partnership?",
            ("microTEC Südwest", "Bwcon"),
            "3.3.3. Baden-Wurttemberg",
            marks=pytest.mark.xfail(strict=True, reason="the region's sentence outranks the list of its clusters"),
        ),
    ],
)
def test_a_list_question_about_a_section_gets_its_subsections_as_items(
    assistant: Assistant, question: str, items: tuple[str, ...], parent: str
) -> None:
    # The item sentences never repeat the question's words ("Since 2005 ViaMéca labelled more
    # than 415 projects", "CEP ... was born in Barcelona"): the document's headings say which
    # clusters belong to the region.
    hits = assistant.engine.retriever.search(question, 5)
    found = [h for h in hits if h.item_of]
    assert {h.item_of for h in found} == {parent}
    assert len(found) == len(items)
    answer = assistant.ask(question)
    assert not answer.abstained
    assert_citations_exact(assistant, answer)
    lead = answer.text.split("\n", 1)[0]
    for item in items:
        assert item in lead, answer.text
    # Each item is cited from its own subsection ("A.3.3.1.2. Viameca" under "3.3.1. ...").
    number = parent.split(" ", 1)[0]
    assert len(answer.citations) == len(items)
    assert all(c.section.startswith(f"A.{number}") for c in answer.citations), answer.citations


@pytest.mark.parametrize(
    ("question", "subject", "quote"),
    [
        # "label", "excellence" and "cluster" fill other clusters' sections; the question is
        # about ViaMéca, which has a section of its own.
        ("Which cluster excellence label does ViaMéca hold?", "Viameca", "ViaMéca is devoted"),
        # Another country's name in the question ("Italy's GDP") does not lead elsewhere.
        ("What share of Italy's GDP does Baden-Württemberg produce?", "Baden-Württemberg", "15.2 percent"),
    ],
)
def test_the_section_about_the_name_asked_for_is_retrieved(
    assistant: Assistant, question: str, subject: str, quote: str
) -> None:
    hits = assistant.engine.retriever.search(question, 5)
    about = [h for h in hits if h.chunk.subject == subject]
    assert about, [h.chunk.subject for h in hits]
    assert any(quote in h.chunk.text for h in about), [h.chunk.text[:80] for h in about]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("It gathers four European regions: Auvergne-Rhône-Alpes, Baden-Württemberg, Catalonia and Lombardy.", True),
        ("The partner regions are Catalonia, Lombardy and Flanders.", True),
        ("Regions such as Catalonia and Lombardy joined later.", True),
        # The noun asked for, but no names after it; names, but not after the noun asked for.
        ("The regions of Europe have worked on this for years.", False),
        ("Catalonia, Lombardy and Flanders signed the letter with two regions.", False),
    ],
)
def test_a_sentence_introducing_the_names_asked_for_is_told(sentence: str, expected: bool) -> None:
    assert _introduces_list(sentence, profile("Which regions make up the partnership?").frame) is expected


def test_a_list_question_is_answered_by_the_sentence_that_lists_what_it_asks_for(assistant: Assistant) -> None:
    # The sentence is in a lower-ranked passage; the best-ranked one has sentences about the
    # Four Motors that name one region each.
    answer = assistant.ask("What regions belong to the Four Motors?")
    for region in ("Auvergne-Rhône-Alpes", "Baden-Württemberg", "Catalonia", "Lombardy"):
        assert region in answer.text, answer.text
    # That one sentence, not a list gathered from sentences naming one region each.
    assert len(answer.citations) == 1, answer.text
    assert "regions: Auvergne" in answer.citations[0].quote
    assert_citations_exact(assistant, answer)


def test_questions_that_ask_for_no_list_keep_their_ranking(assistant: Assistant) -> None:
    hits = assistant.engine.retriever.search("Which cluster represents Auvergne-Rhône-Alpes in Minalogic's field?", 5)
    assert not any(h.item_of for h in hits)


@pytest.mark.parametrize(
    ("passage", "name", "expected"),
    [
        ("the CEP and other members in Catalonia", "Catalan", True),
        ("the 4 Motors for Europe", "Four Motors", True),
        ("en australiensisk klusterexpert", "Australian", True),
        ("Smart Industri Norra Mellansverige", "Smart Industri", True),
        ("smart regions and the industry of the future", "Smart Industri", False),
        # A one-word name needs more than its first five letters.
        ('the event "Industrie 2020 First" was held in Lyon', "Industrinatten", False),
        ("konceptet ”Industrinatten” kommer att ske i Mora", "Industrinatten", True),
        # The word "region" may stand inside a place name, other words may not.
        ("Commission, Centro region Portugal, is glad", "Centro Portugal", True),
        ("Centro Regional Coordination of Portugal", "Centro Portugal", False),
        ("the Centro of northern Portugal", "Centro Portugal", False),
    ],
)
def test_a_passage_mentions_a_name_by_its_words_in_order(passage: str, name: str, expected: bool) -> None:
    assert mentions(fold(passage), name) is expected


def test_a_chunk_that_continues_the_one_before_is_read_with_its_last_sentence() -> None:
    # The chunker cut between "Sky Travel ..." and "However, this was replaced ...": the second
    # chunk never names Sky Travel, but its first sentence is about it.
    text = (
        "A channel showed programmes on resorts. Sky Travel was that channel about holidays. "
        "However, this was replaced by Sky Three on 31 October 2005. Sky Three later became Pick TV."
    )
    cut = text.index("However")
    first = Chunk("d#0", "d", 0, "Sky", (), "", 0, cut, text[:cut], tuple(split_sentences(text, 0, cut)), 20)
    second = Chunk("d#1", "d", 1, "Sky", (), "", cut, len(text), text[cut:], tuple(split_sentences(text, cut)), 20)
    hits = [Hit(chunk=first, score=1.0, rank=1), Hit(chunk=second, score=0.9, rank=2)]
    asked = profile("What replaced Sky Travel?")

    def replaced(answerer: ExtractiveAnswerer) -> tuple[int, Evidence]:
        ranked = answerer.candidates(asked, hits)
        place = next(i for i, c in enumerate(ranked) if c.text.startswith("However"))
        return place, ranked[place].evidence

    _, alone = replaced(ExtractiveAnswerer())
    assert alone.missing_name == 1.0  # without its lead the passage never names Sky Travel
    previous = {second.id: first}
    place, read = replaced(ExtractiveAnswerer(previous=lambda c: previous.get(c.id)))
    assert read.missing_name == 0.0 and read.lexical > alone.lexical
    assert place == 0


def test_the_store_gives_the_chunk_before_another(assistant: Assistant) -> None:
    store = assistant.store
    rows = store.rows_of_document(FOUR_MOTORS)
    first, second = store.chunk(rows[0]), store.chunk(rows[1])
    assert store.previous_chunk(first) is None
    before = store.previous_chunk(second)
    assert before is not None and before.id == first.id and before.end <= second.start
