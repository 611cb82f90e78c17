"""assistant.conversation.standalone_question: a follow-up rewritten with its conversation's subject.

The conversations are not those of the gold set (eval/gold.jsonl); each test states a
property of the rewrite (it names the subject, it leaves a question that needs nothing alone).
"""

from __future__ import annotations

import re

import pytest

from assistant.conversation.rewrite import standalone_question
from assistant.pipeline import Assistant
from assistant.records import Turn
from tests.conftest import assert_citations_exact


def user(text: str) -> Turn:
    return Turn("user", text)


def bot(text: str) -> Turn:
    return Turn("assistant", text)


EURECAT = (user("What is Eurecat?"), bot("Eurecat is the main Technology Centre in Catalonia [1]."))
GOLD_LIST = (
    user("Which clusters have been awarded a Gold label?"),
    bot("Plastipolis [1], microTEC Südwest [2] and Pool-Net [3]."),
)
PRONOUN = re.compile(r"\b(it|its|they|there)\b", re.IGNORECASE)


def test_without_an_earlier_question_nothing_changes() -> None:
    question = "How many patents does it hold?"
    assert standalone_question(question, ()) == question
    assert standalone_question(question, (bot("Hello, ask me about the documents."),)) == question
    assert standalone_question(question, (user("   "),)) == question


@pytest.mark.parametrize(
    "question",
    [
        "How many patents does Flanders Make hold?",
        "Who organised the workshop held at the Baglioni Hotel in Florence?",
        # Long enough to stand alone, though it names nothing.
        "How many companies took part in the programme on process maturity last year?",
    ],
)
def test_a_question_without_pronouns_that_stands_alone_is_left_as_it_is(question: str) -> None:
    assert standalone_question(question, EURECAT) == question


@pytest.mark.parametrize(
    ("question", "rewritten"),
    [
        ("How many patents does it hold?", "How many patents does Eurecat hold?"),
        ("What is its yearly turnover?", "What is Eurecat's yearly turnover?"),
        ("Who works there?", "Who works in Eurecat?"),
    ],
)
def test_a_pronoun_is_replaced_by_the_name_the_earlier_question_asked_about(question: str, rewritten: str) -> None:
    assert standalone_question(question, EURECAT) == rewritten


def test_a_short_question_without_a_subject_gets_the_earlier_one() -> None:
    rewritten = standalone_question("Founded when?", EURECAT)
    assert "Eurecat" in rewritten and rewritten.startswith("Founded when")


def test_after_a_question_asking_which_one_it_is_the_answer() -> None:
    # "Which cluster ...?" asked for a thing: "it" is what the answer named, not the label.
    history = (
        user("Which cluster holds the Silver Label?"),
        bot("Cluj IT Cluster holds the Silver Label in cluster management excellence [1]."),
    )
    assert standalone_question("When was it established?", history) == "When was Cluj IT Cluster established?"


@pytest.mark.xfail(strict=True, reason="'Which partner holds' is profiled as a list question (test_question_profile)")
def test_after_a_question_asking_which_partner_it_is_the_answer() -> None:
    history = (
        user("Which partner holds a Silver label?"),
        bot("Cluj IT Cluster holds the Silver Label in cluster management excellence [1]."),
    )
    assert "Cluj IT Cluster" in standalone_question("When was it established?", history)


def test_they_after_a_list_answer_are_the_items() -> None:
    rewritten = standalone_question("When were they awarded it?", GOLD_LIST)
    for name in ("Plastipolis", "microTEC Südwest", "Pool-Net"):
        assert name in rewritten
    assert not re.search(r"\bthey\b", rewritten, re.IGNORECASE)


def test_which_one_takes_the_noun_of_the_earlier_question() -> None:
    assert standalone_question("and which one is based in Oyonnax?", GOLD_LIST) == "which cluster is based in Oyonnax?"


@pytest.mark.parametrize("follow_up", ["What about Pool-Net?", "And Flanders Make?"])
def test_what_about_repeats_the_earlier_question_about_the_new_name(follow_up: str) -> None:
    history = (user("How many members does Cluj IT Cluster have?"), bot("More than 45 members [1]."))
    name = follow_up.removeprefix("What about ").removeprefix("And ").rstrip("?")
    assert standalone_question(follow_up, history) == f"How many members does {name} have?"


def test_an_earlier_question_naming_nothing_gives_its_rarest_word() -> None:
    # "bwcon" written in lower case is no name by its spelling; it is the rarest word.
    idf = {"bwcon": 5.0, "members": 1.0, "many": 0.5}
    history = (user("How many members does bwcon have?"), bot("600 members [1]."))
    rewritten = standalone_question("Who runs it?", history, rarity=lambda word: idf.get(word, 0.1))
    assert rewritten == "Who runs bwcon?"
    assert standalone_question("Who runs it?", history) == "Who runs it?"  # no rarity, no guess


def test_a_chain_of_follow_ups_keeps_its_subject() -> None:
    history = (*EURECAT, user("Who works there?"), bot("450 professionals [1]."))
    rewritten = standalone_question("How many centres does it run in Catalonia?", history)
    assert rewritten == "How many centres does Eurecat run in Catalonia?"


@pytest.mark.xfail(strict=True, reason="the words after the name are taken for the noun it qualifies")
@pytest.mark.parametrize(
    "history",
    [
        # "Eurecat hold": the verb after the name joins it.
        (user("How many patents does Eurecat hold?"), bot("73 patents [1].")),
        # "Eurecat's yearly turnover": so does the thing the name owns, down a chain.
        (*EURECAT, user("What is its yearly turnover?"), bot("36 M € [1].")),
    ],
)
def test_the_subject_is_the_name_not_the_words_after_it(history: tuple[Turn, ...]) -> None:
    assert standalone_question("Who runs it?", history) == "Who runs Eurecat?"


@pytest.mark.xfail(strict=True, reason="'And <question>' is read as an ellipsis and glued to the earlier question")
@pytest.mark.parametrize("follow_up", ["And how many centres does it have?", "And when was it founded?"])
def test_a_follow_up_opening_with_and_is_a_question_of_its_own(follow_up: str) -> None:
    rewritten = standalone_question(follow_up, EURECAT)
    assert "Eurecat" in rewritten
    assert rewritten.count("?") == 1 and rewritten.lower().count("how many") <= follow_up.lower().count("how many")
    assert "What is" not in rewritten


@pytest.mark.xfail(strict=True, reason="a pronoun is replaced even when the question names what it refers to")
def test_a_pronoun_that_refers_to_a_name_in_the_same_question_is_left_alone() -> None:
    question = "What does the Luxembourg cluster plan for its members next year?"
    assert standalone_question(question, EURECAT) == question


def test_a_rewritten_follow_up_names_no_pronoun_left_unresolved() -> None:
    for question in ("How many patents does it hold?", "What is its yearly turnover?", "Who works there?"):
        assert not PRONOUN.search(standalone_question(question, EURECAT)), question


def test_the_assistant_answers_a_follow_up_about_the_earlier_subject(assistant: Assistant) -> None:
    first = assistant.ask("What is Eurecat?")
    history = (user("What is Eurecat?"), bot(first.text))
    answer = assistant.ask("How many patents does it hold?", history)
    assert answer.standalone_question == "How many patents does Eurecat hold?"
    assert not answer.abstained and "73" in answer.text, answer.text
    assert answer.citations[0].section == "A.3.3.4.1. Eurecat"
    assert_citations_exact(assistant, answer)
