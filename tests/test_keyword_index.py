from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.store.keyword import KeywordIndex, with_phrases
from assistant.text import analyze, fold, words


def test_analysis_folds_accents_stems_and_joins_hyphenated_names() -> None:
    assert fold("Clúster Südwest") == "cluster sudwest"
    assert words("Pool-Net's members") == ["pool", "net", "poolnet", "members"]
    assert analyze("Which partners hold the Gold labels?") == ["partner", "hold", "gold", "label"]
    # "Poolnet" in a heading meets "Pool-Net" in the text.
    assert set(analyze("Poolnet")) <= set(analyze("Pool-Net"))


def test_bm25_ranks_rare_terms_higher() -> None:
    index = KeywordIndex.build(
        [analyze(t) for t in ["gold label for plastipolis", "silver label for cluj", "the label", "unrelated text"]]
    )
    rows, scores = index.search(analyze("gold label"), 10)
    assert rows.tolist()[0] == 0
    assert 3 not in rows.tolist()  # no shared term, no hit
    assert np.all(np.diff(scores) <= 0)
    assert index.idf("gold") > index.idf("label")


def test_update_equals_a_fresh_build(tmp_path: Path) -> None:
    texts = ["alpha beta", "beta gamma", "gamma delta", "delta epsilon"]
    old = KeywordIndex.build(analyze(t) for t in texts)
    updated = old.updated([0, 2], [analyze("epsilon zeta"), analyze("alpha zeta")])
    fresh = KeywordIndex.build(analyze(t) for t in ["alpha beta", "gamma delta", "epsilon zeta", "alpha zeta"])
    query = analyze("alpha zeta gamma")
    assert np.allclose(updated.scores(query), fresh.scores(query))
    updated.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    assert np.allclose(loaded.scores(query), fresh.scores(query))


def test_empty_query_scores_nothing() -> None:
    index = KeywordIndex.build([analyze("some words")])
    rows, _ = index.search([], 5)
    assert rows.size == 0


def test_names_are_known_by_phrase_most_words_typos_and_other_forms() -> None:
    texts = [
        "Smart Industri Norra Mellansverige is financed by the regions.",
        "The Premier League sold its rights; a australiensisk klusterexpert spoke.",
        "Western regions of Europe and the north.",
    ]
    index = KeywordIndex.build([with_phrases(analyze(t)) for t in texts])
    for name in (
        "Smart Industri project",  # an indexed phrase
        "Western Europe",  # every word indexed, though never together
        "Primier League",  # a typo
        "Australian",  # another language's form of the word
        "2026",  # numbers are not checked
    ):
        assert index.knows_name(name), name
    for name in ("FIFA World Cup", "Nordic Robotics Prize 2026", "Minalogic"):
        assert not index.knows_name(name), name
