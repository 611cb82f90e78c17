"""Text as received -> text as read, and the one question check every surface goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import QuestionError
from assistant.pipeline import Assistant
from assistant.text import NEGATION, analyze, visible_text
from tests.conftest import FakeEmbedder

EMPTY = "the question is empty: ask something about the documents"

# Code points nobody reads: NUL and other controls, zero-width and other format characters,
# lone surrogates (half a character, as a client that cut a string in two sends it).
UNREAD = [
    "\x00",
    "\x07",
    "\x7f",
    "\x9b",
    "\u200b",
    "\u200c",
    "\u200d",
    "\ufeff",
    "\u2060",
    "\u202e",
    "\u00ad",
    "\ud800",
]


@pytest.fixture
def assistant(tmp_path: Path) -> Assistant:
    """An assistant whose question check needs no index or model."""
    return Assistant(Settings(index_dir=tmp_path / "index", data_dir=tmp_path / "data"), embedder=FakeEmbedder())


def test_plain_text_is_only_trimmed() -> None:
    assert visible_text("  How many members does Bwcon have?\n") == "How many members does Bwcon have?"
    assert visible_text("Clúster Digital:\n\t120 members?") == "Clúster Digital:\n\t120 members?"


@pytest.mark.parametrize("char", UNREAD)
def test_a_code_point_nobody_reads_alone_is_nothing(char: str) -> None:
    assert visible_text(char) == ""
    assert visible_text(f" {char}{char} \n") == ""


def test_unread_code_points_are_taken_out_of_a_question() -> None:
    assert visible_text("How many members does Bw\u200bcon\x00 have? \ud83d") == "How many members does Bwcon have?"
    assert visible_text("\ufeffWhich clusters hold a Silver label?\u2060") == "Which clusters hold a Silver label?"


def test_joiners_inside_words_are_kept() -> None:
    # Persian spells "mi-khaham" with a zero-width non-joiner; emoji sequences use the joiner.
    assert (
        visible_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645")
        == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    )
    assert visible_text("\u200d team \U0001f469\u200d\U0001f4bb \u200c") == "team \U0001f469\u200d\U0001f4bb"


@pytest.mark.parametrize("question", ["", "   ", "\x00\x00", "\u200b\u200c\u200d\ufeff\u2060", "\ud800", "\t\u200b\n"])
def test_a_question_of_nothing_readable_is_the_empty_question(assistant: Assistant, question: str) -> None:
    with pytest.raises(QuestionError) as refused:
        assistant.check_question(question)
    assert str(refused.value) == EMPTY


def test_the_question_checked_is_the_question_read(assistant: Assistant) -> None:
    assert (
        assistant.check_question("\ufeff How many members does Bwcon have? \ud83d")
        == "How many members does Bwcon have?"
    )
    # The limit counts what is read: invisible padding does not push a question over it.
    limit = assistant.settings.max_question_chars
    assert assistant.check_question("a" * limit + "\u200b" * 50) == "a" * limit
    with pytest.raises(QuestionError, match="the limit is"):
        assistant.check_question("a" * (limit + 1))


def test_negation_is_found_in_contractions_and_not_inside_other_words() -> None:
    for said in ("It did not close.", "It didn't close.", "The plan failed.", "It never closed.", "No member left."):
        assert NEGATION.search(said), said
    for said in ("Nothing closed in Knowle.", "The notes are known.", "Nora chaired it."):
        assert not NEGATION.search(said), said


def test_remembered_terms_are_the_same_and_never_shared() -> None:
    sentence = "Plastipolis was awarded the Gold label in 2013."
    first = analyze(sentence)
    first.append("changed")  # a caller may change its list: the next one does not see it
    assert analyze(sentence) == ["plastipoli", "award", "gold", "label", "2013"]
    long_text = " ".join([sentence] * 20)  # past what is remembered: the same terms all the same
    assert analyze(long_text) == analyze(sentence) * 20
