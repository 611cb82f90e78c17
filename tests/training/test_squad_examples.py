"""SQuAD articles -> reader training examples: positives with spans, hard negatives, swaps, negations."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from assistant.training import squad

PARAGRAPH = (
    "The Hanseatic League was a commercial confederation of merchant guilds. "
    "It was founded in 1356 in Lübeck. "
    "Its members traded timber, furs and grain across the Baltic Sea. "
    "The league declined after 1450."
)
OTHER = "Bergen was an important outpost of the league. Its Kontor closed in 1754."
SENTENCES = [s.strip() + "." for s in PARAGRAPH.split(".") if s.strip()]


def _article(title: str, context: str, qas: list[dict]) -> dict:  # type: ignore[type-arg]
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def _qa(qid: str, question: str, answer: str | None) -> dict:  # type: ignore[type-arg]
    if answer is None:
        return {"id": qid, "question": question, "is_impossible": True, "answers": []}
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": PARAGRAPH.find(answer)}]}


def _questions() -> list[squad.Question]:
    article = _article(
        "Hanseatic_League",
        PARAGRAPH,
        [
            _qa("q1", "When was the Hanseatic League founded?", "1356"),
            _qa("q2", "What did the members of the Hanseatic League trade?", "timber, furs and grain"),
            _qa("q3", "When was the Hanseatic League dissolved by Napoleon?", None),
        ],
    )
    return list(squad.questions([article]))


def test_the_answer_sentence_is_the_positive_with_the_answer_span_inside_it() -> None:
    q1 = _questions()[0]
    index, (start, end) = squad.answer_sentence(q1) or (None, (0, 0))
    sentence = q1.paragraph.sentences[index][2]  # type: ignore[index]
    assert sentence == "It was founded in 1356 in Lübeck."
    assert sentence[start:end] == "1356"


def test_a_question_gets_its_positive_and_hard_negatives_from_its_own_paragraph() -> None:
    q2 = _questions()[1]
    examples = squad.examples_for(q2, negatives=2, rng=random.Random(0))
    positives = [e for e in examples if e.label == 1]
    negatives = [e for e in examples if e.label == 0]
    assert len(positives) == 1 and len(negatives) == 2
    assert "timber" in positives[0].candidate.sentence
    # The context the reader sees: the heading and the sentence before.
    assert positives[0].candidate.heading == "Hanseatic League"
    assert positives[0].candidate.previous == "It was founded in 1356 in Lübeck."
    assert all("timber" not in e.candidate.sentence for e in negatives)


def test_an_unanswerable_question_makes_only_negatives() -> None:
    q3 = _questions()[2]
    examples = squad.examples_for(q3, negatives=2, rng=random.Random(0))
    assert examples and all(e.label == 0 and e.span is None for e in examples)


def test_a_swapped_name_turns_the_answer_sentence_into_a_negative() -> None:
    q1 = _questions()[0]
    example = squad.swapped(q1, names=["Bergen", "Hanseatic League"], numbers=[], rng=random.Random(0))
    # "Lübeck" is not in the question; "Hanseatic League" is, but not in the answer sentence:
    # nothing in the question that the sentence states can be swapped.
    assert example is None
    q = squad.Question(
        "q4", "What was founded in 1356 in Lübeck?", q1.paragraph, ((PARAGRAPH.find("It"), "It"),), "Hanseatic_League"
    )
    swapped = squad.swapped(q, names=["Bergen", "Lübeck"], numbers=["1356", "1754"], rng=random.Random(1))
    assert swapped is not None and swapped.label == 0
    assert swapped.question != q.text and ("Bergen" in swapped.question or "1754" in swapped.question)
    assert swapped.candidate.sentence == "It was founded in 1356 in Lübeck."


def test_a_negated_question_turns_its_answer_sentence_into_a_negative() -> None:
    q1, q2, _ = _questions()
    example = squad.negated(q1)
    assert example is not None and example.label == 0 and example.span is None
    assert example.question == "When wasn't the Hanseatic League founded?"
    assert example.candidate.sentence == "It was founded in 1356 in Lübeck."
    assert squad.negated(q2) is not None and squad.negated(q2).question.startswith("What didn't")  # type: ignore[union-attr]
    # A question already negative, or one whose answer sentence is, gives no clean label.
    not_q = squad.Question("q5", "When was the league not yet founded?", q1.paragraph, q1.answers, q1.article)
    assert squad.negated(not_q) is None
    paragraph = squad.Paragraph("Hanse", [(0, 33, "It was not founded before 1356.")])
    against_negative = squad.Question("q6", "When was it founded?", paragraph, ((26, "1356"),), "Hanse")
    assert squad.negated(against_negative) is None
    # With no auxiliary verb, "Who + verb-ed" takes "never"; anything else is left alone.
    who = squad.Question("q7", "Who founded the league in Lübeck?", q1.paragraph, ((PARAGRAPH.find("It"), "It"),), "H")
    assert squad.negated(who).question == "Who never founded the league in Lübeck?"  # type: ignore[union-attr]
    how = squad.Question("q8", "How old the league?", q1.paragraph, ((PARAGRAPH.find("1356"), "1356"),), "H")
    assert squad.negated(how) is None


def test_the_answer_sentence_does_not_depend_on_the_hash_seed() -> None:
    # Two annotators' answers, equally common and equally long, in different sentences: the tie
    # must be broken the same way in every process, or retraining gives other data.
    script = (
        "from assistant.training import squad\n"
        f"p = squad.Paragraph('H', [(0, 33, {SENTENCES[1]!r}), (34, 80, {OTHER!r})])\n"
        "for answers in [((0, '1356'), (34, '1754')), ((34, '1754'), (0, '1356'))]:\n"
        "    print(squad.answer_sentence(squad.Question('q', 'When was it?', p, answers, 'H')))\n"
    )
    runs = {
        seed: subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(set(runs.values())) == 1, runs
    first, reversed_order = runs["1"].splitlines()
    assert first == reversed_order  # nor on the order the answers are listed in


def test_articles_are_split_whole_and_the_same_way_every_time() -> None:
    articles = [_article(f"A{n}", PARAGRAPH, []) for n in range(10)]
    train, held_out = squad.split_by_article(articles, validation=3, seed=13)
    assert len(held_out) == 3 and len(train) == 7
    assert {a["title"] for a in train}.isdisjoint({a["title"] for a in held_out})
    again = squad.split_by_article(list(reversed(articles)), validation=3, seed=13)[1]
    assert [a["title"] for a in again] == [a["title"] for a in held_out]


def test_build_reads_the_squad_files_and_keeps_validation_articles_out(tmp_path: Path) -> None:
    v1 = {
        "data": [_article("Hanseatic_League", PARAGRAPH, [_qa("a1", "When was the Hanseatic League founded?", "1356")])]
    }
    v2 = {
        "data": [
            _article(f"Article_{n}", PARAGRAPH, [_qa(f"b{n}", "What did the members trade?", "timber, furs and grain")])
            for n in range(4)
        ]
    }
    for name, data in ((squad.SQUAD11, v1), (squad.SQUAD20, v2)):
        with gzip.open(tmp_path / name, "wt", encoding="utf-8") as handle:
            json.dump(data, handle)
    built = squad.build(tmp_path, squad11_questions=10, validation_articles=1, swap_rate=0.0)
    validation_ids = {q.id for q in built.validation}
    assert len(validation_ids) == 1
    assert validation_ids.isdisjoint({e.group for e in built.examples})
    assert {e.label for e in built.examples} == {0, 1}


def test_every_positive_span_is_its_answer_inside_its_sentence() -> None:
    for q, answer in zip(_questions()[:2], ("1356", "timber, furs and grain"), strict=True):
        spans = [e for e in squad.examples_for(q, negatives=1, rng=random.Random(0)) if e.span is not None]
        assert len(spans) == 1
        start, end = spans[0].span  # type: ignore[misc]
        assert spans[0].candidate.sentence[start:end] == answer


def test_the_focus_stage_puts_each_question_against_its_closest_look_alikes() -> None:
    q2, q3 = _questions()[1:]
    answerable = squad.focus_examples(q2, negatives=2)
    assert [e.label for e in answerable] == [1, 0, 0]
    assert answerable[0].span is not None and "timber" in answerable[0].candidate.sentence
    # An unanswerable question goes against every look-alike asked for, closest first: the
    # sentence about its founding shares the most words with "When was ... dissolved".
    unanswerable = squad.focus_examples(q3, negatives=3)
    assert len(unanswerable) == 3 and all(e.label == 0 for e in unanswerable)
    assert "League" in unanswerable[0].candidate.sentence


def test_a_focus_stage_leaves_the_first_stage_data_as_they_were(tmp_path: Path) -> None:
    v1 = {
        "data": [_article("Hanseatic_League", PARAGRAPH, [_qa("a1", "When was the Hanseatic League founded?", "1356")])]
    }
    v2 = {
        "data": [
            _article(f"Article_{n}", PARAGRAPH, [_qa(f"b{n}", "When was the league dissolved by Napoleon?", None)])
            for n in range(4)
        ]
    }
    for name, data in ((squad.SQUAD11, v1), (squad.SQUAD20, v2)):
        with gzip.open(tmp_path / name, "wt", encoding="utf-8") as handle:
            json.dump(data, handle)
    plain = squad.build(tmp_path, squad11_questions=10, validation_articles=1)
    focused = squad.build(tmp_path, squad11_questions=10, validation_articles=1, focus_negatives=2, focus_replay=0.5)
    assert plain.focus == [] and focused.examples == plain.examples
    # Three training articles, one unanswerable question each, against 3 look-alikes; plus half
    # as many first-stage examples replayed. Never a validation question.
    assert len(focused.focus) == 9 + 4
    assert {e.group for e in focused.focus} <= {e.group for e in plain.examples} | {"b0", "b1", "b2", "b3"}
    assert {q.id for q in focused.validation}.isdisjoint({e.group for e in focused.focus})


def test_the_focus_stage_also_puts_a_question_against_its_subject_in_other_paragraphs() -> None:
    elsewhere = (
        "Merchants of the Hanseatic League reached Bergen by 1356. "
        "The Hanseatic League kept a Kontor in Bergen. "
        "Bergen was an outpost on the coast."
    )
    article = {
        "title": "Hanseatic_League",
        "paragraphs": [
            {"context": PARAGRAPH, "qas": [_qa("q1", "When was the Hanseatic League founded?", "1356")]},
            {"context": elsewhere, "qas": [{"id": "q9", "question": "Where was an outpost?", "answers": []}]},
        ],
    }
    found = list(squad.questions([article]))
    sentences = squad.ArticleSentences([q.paragraph for q in found])
    picked = sentences.negatives(found[0], 3)
    # Not its own paragraph's sentences; not the one stating its answer ("1356"), which may answer
    # it too; not the one sharing fewer than two words with it.
    assert [e.candidate.sentence for e in picked] == ["The Hanseatic League kept a Kontor in Bergen."]
    assert picked[0].label == 0 and picked[0].span is None and picked[0].group == "q1"
