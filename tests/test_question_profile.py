"""assistant.question.profile: the kind of answer a question wants, its names, terms and frame.

The questions are not those of the gold set (eval/gold.jsonl); several are about clusters
that exist in no document, since profiling reads the question alone.
"""

from __future__ import annotations

import pytest

from assistant.question import profile, proper_names
from assistant.text import analyze


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many patents does Eurecat hold?", "number"),
        ("What percentage of Spanish trade does Catalonia account for?", "number"),
        ("How much did the welding robot cost?", "money"),
        ("What is the yearly turnover of Eurecat?", "money"),
        ("When was Cluj IT Cluster established?", "date"),
        ("In what year did Pennard open its test hall?", "date"),
        ("Who chairs the jury of the Nordic Robotics Prize?", "name"),
        ("In which town is Quillmark based?", "name"),
        ("Why did companies from Baden-Württemberg open branch offices in Cluj?", "reason"),
        ("What is Eurecat?", None),
        ("Does Eurecat run a centre in Brazil?", None),
    ],
)
def test_the_kind_of_answer_follows_the_question_words(question: str, kind: str | None) -> None:
    asked = profile(question)
    assert asked.answer_type == kind
    assert asked.wants_number is (kind in ("number", "money"))
    assert asked.wants_date is (kind == "date")


@pytest.mark.parametrize(
    ("question", "wants_list"),
    [
        ("Which clusters hold a Silver label?", True),
        ("Which universities are members of Cluj IT Cluster?", True),
        ("What other regions joined in March 2017?", True),
        ("List the missions of Plastipolis.", True),
        ("Which cluster holds a Silver label?", False),
        ("Who finances the Pennard data platform?", False),  # a verb after the question word
        ("How many patents does Eurecat hold?", False),
        pytest.param(
            "Which partner holds a Silver label?",
            False,
            # "partner" is taken as a modifier ("Which partner regions ...") and the verb
            # "holds" as the plural noun, so a question about one partner asks for a list; a
            # follow-up then takes "Silver label" for its subject instead of the answer's name.
            marks=pytest.mark.xfail(strict=True, reason="'Which partner holds' is read as a list question"),
        ),
    ],
)
def test_a_list_is_wanted_when_the_noun_asked_for_is_plural(question: str, wants_list: bool) -> None:
    assert profile(question).wants_list is wants_list


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("How many patents does Eurecat hold?", ("Eurecat",)),
        # A run of name words, acronyms included, is one name; so is a name with inner capitals.
        ("When was Cluj IT Cluster established?", ("Cluj IT Cluster",)),
        ("Is microTEC Südwest a member of CEP?", ("microTEC Südwest", "CEP")),
        # Particles join the words of one name.
        (
            "How many members does the Associació Clúster Digital de Catalunya have?",
            ("Associació Clúster Digital de Catalunya",),
        ),
        # The capitalised first word of a question, and month names, name nothing.
        ("What other regions joined in March 2017?", ()),
        ("Which clusters hold a label?", ()),
    ],
)
def test_the_names_a_question_mentions(question: str, names: tuple[str, ...]) -> None:
    assert profile(question).names == names


def test_a_name_opening_a_text_counts_when_asked() -> None:
    answer = "Cluj IT Cluster holds the Silver Label [1]."
    assert proper_names(answer, skip_first=False)[0] == "Cluj IT Cluster"
    assert "Cluj IT Cluster" not in proper_names(answer)


def test_terms_are_the_content_words_stemmed_in_order_without_repeats() -> None:
    asked = profile("How many patents and how many patent families does Eurecat hold?")
    question_words = {t for w in ("how", "many", "does", "which", "what") for t in analyze(w)}
    assert not question_words & set(asked.terms)
    assert len(set(asked.terms)) == len(asked.terms)
    patent, eurecat = analyze("patents")[0], analyze("Eurecat")[0]
    assert asked.terms.index(patent) < asked.terms.index(eurecat)
    assert asked.text == "How many patents and how many patent families does Eurecat hold?"


@pytest.mark.parametrize(
    ("question", "frame"),
    [
        # The noun after "which" names the kind of answer: the answer shows a town, not the word.
        ("In which town is Quillmark based?", "town"),
        ("In what year did Pennard open its test hall?", "year"),
    ],
)
def test_the_noun_after_which_frames_the_answer(question: str, frame: str) -> None:
    assert profile(question).frame == tuple(analyze(frame))
