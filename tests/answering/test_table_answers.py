"""Questions about the cells of a table in the real corpus, answered by the default answerer.

The concept note's annex gives each partner's figures in a table whose header row ("Size of the
Network", "Number of SMEs", ...) lies chunks away from most rows, and its domains mapping ticks
the clusters active in each domain.
"""

from __future__ import annotations

from assistant.pipeline import Assistant
from tests.conftest import assert_citations_exact

HEADER_OF_THE_DOMAINS_MAPPING = "Minalogic\tViaméca\tPlastipolis\tAFIL"


def test_a_figure_in_a_row_is_answered_with_its_column_and_cites_the_row(assistant: Assistant) -> None:
    answer = assistant.ask("How many SMEs does Minalogic have?")
    assert not answer.abstained, answer.text
    assert "Number of SMEs: 240" in answer.text, answer.text
    assert "\t" not in answer.text  # the row as a statement, not its raw cells
    assert answer.citations[0].quote.startswith("Minalogic\t330 Members"), answer.citations
    assert_citations_exact(assistant, answer)


def test_a_row_of_ticks_answers_with_the_columns_it_ticks(assistant: Assistant) -> None:
    answer = assistant.ask("Which clusters work on collaborative and mobile enterprises?")
    assert not answer.abstained, answer.text
    assert "Minalogic, EURECAT" in answer.text, answer.text
    assert answer.citations[0].quote.startswith("D4 Collaborative and mobile enterprises")
    assert_citations_exact(assistant, answer)


def test_a_header_row_is_never_the_answer(assistant: Assistant) -> None:
    # The domains mapping's header is a row of cluster names: a "who" question about one of
    # them once got "Viaméca Plastipolis" from it.
    for question in ("Who leads Minalogic?", "Who runs Viaméca?", "Which cluster heads the domains mapping?"):
        answer = assistant.ask(question)
        assert all(HEADER_OF_THE_DOMAINS_MAPPING not in c.quote for c in answer.citations), (question, answer.text)
