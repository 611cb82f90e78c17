from __future__ import annotations

from assistant.text import analyze
from assistant.thesaurus import GROUPS, related_terms


def test_words_of_a_group_stand_for_one_another_as_index_terms() -> None:
    (based,) = analyze("based")
    (located,) = analyze("located")
    assert located in related_terms(based)
    assert based in related_terms(located)
    assert based not in related_terms(based)


def test_a_word_in_no_group_has_no_related_terms() -> None:
    (cluster,) = analyze("cluster")
    assert related_terms(cluster) == frozenset()


def test_every_group_keeps_at_least_two_distinct_terms() -> None:
    # Two words of a group that stem alike would make the group say nothing.
    for group in GROUPS:
        assert len(set(analyze(group))) >= 2, group
        assert len(set(analyze(group))) == len(analyze(group)), group
