from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant import evaluation
from assistant.evaluation import GoldError, GoldQuestion, check_baseline, evaluate, quote_spans
from assistant.records import Answer, Chunk, Citation, Hit, Sentence, Turn
from tests.conftest import ROOT

DOC = "Intro line.\nPlastipolis  has awarded the Gold label in 2013.\nCluj IT holds the Silver Label.\n"


def _hit(start: int, end: int, rank: int) -> Hit:
    chunk = Chunk(
        id=f"d.txt#{rank}",
        doc_id="d.txt",
        n=rank,
        title="D",
        section_path=(),
        subject="",
        start=start,
        end=end,
        text=DOC[start:end],
        sentences=(Sentence(start, end),),
        tokens=5,
    )
    return Hit(chunk=chunk, score=1.0 / rank, rank=rank)


def _gold(**fields: object) -> GoldQuestion:
    base = {
        "id": "q",
        "kind": "fact",
        "question": "Who holds Gold?",
        "key_facts": ["Plastipolis"],
        "sources": [{"doc": "d.txt", "quote": "plastipolis has awarded the GOLD label"}],
    }
    return GoldQuestion.model_validate(base | fields)


def test_quotes_match_across_case_whitespace_and_accents() -> None:
    spans = quote_spans(DOC, "plastipolis has awarded")
    assert len(spans) == 1
    start, end = spans[0]
    assert DOC[start:end] == "Plastipolis  has awarded"
    assert quote_spans("Clúster Digital", "cluster digital") == [(0, 15)]
    assert quote_spans(DOC, "absent words") == []


def test_metrics_for_a_correct_answer_cited_on_the_gold_quote() -> None:
    gold_span = quote_spans(DOC, "Plastipolis has awarded the Gold label")[0]
    hits = (_hit(36, 70, 1), _hit(12, 60, 2))
    citation = Citation(1, "d.txt", "D", "", gold_span[0], gold_span[1], DOC[gold_span[0] : gold_span[1]])
    answer = Answer("Who holds Gold?", "Plastipolis [1]", (citation,), False, hits)

    report = evaluate(lambda q, h, k: answer, lambda d: DOC, [_gold()], k=2)
    s = report.summary
    assert s["hit_at_k"] == 1.0 and s["mrr"] == 0.5  # the gold quote lies wholly in the 2nd hit only
    assert s["key_fact_recall"] == 1.0 and s["all_facts_rate"] == 1.0
    assert s["citation_precision"] == 1.0 and s["answer_rate_answerable"] == 1.0
    assert s["hits_chars_mean"] == 34 + 48
    assert s["answer_words_mean"] == 1.0  # "[1]" is not a word
    assert report.failures == []


def test_metrics_for_a_wrong_answer_and_an_unanswerable_question() -> None:
    silver = Citation(1, "d.txt", "D", "", 61, 91, DOC[61:91])
    wrong = Answer("Who holds Gold?", "Cluj IT [1]", (silver,), False, (_hit(61, 91, 1),))
    made_up = Answer("Capital?", "Canberra [1]", (silver,), False, (_hit(61, 91, 1),))
    answers = {"Who holds Gold?": wrong, "Capital?": made_up}
    gold = [_gold(), _gold(id="u", kind="unanswerable", question="Capital?", key_facts=[], sources=[])]
    report = evaluate(lambda q, h, k: answers[q], lambda d: DOC, gold, k=5)
    s = report.summary
    assert s["hit_at_k"] == 0.0 and s["mrr"] == 0.0 and s["key_fact_recall"] == 0.0
    assert s["citation_precision"] == 0.0
    assert s["abstention_accuracy_unanswerable"] == 0.0
    assert report.by_kind["unanswerable"]["hit_at_k"] is None
    assert [r.gold.id for r in report.failures] == ["q", "u"]
    assert "no gold source retrieved" in report.failures[0].failure


def test_followups_are_asked_with_their_history() -> None:
    seen: list[Sequence[Turn]] = []

    def ask(question: str, history: Sequence[Turn], k: int) -> Answer:
        seen.append(history)
        return Answer(question, "I could not find this in the documents.", (), True)

    gold = _gold(
        kind="followup",
        history=[{"role": "user", "content": "About Plastipolis?"}, {"role": "assistant", "content": "Yes."}],
    )
    evaluate(ask, lambda d: DOC, [gold])
    assert seen == [[Turn("user", "About Plastipolis?"), Turn("assistant", "Yes.")]]


def test_baseline_check_names_the_metric_and_respects_direction() -> None:
    report = evaluation.EvalReport("g", 5, [])
    report.summary = {"hit_at_k": 0.90, "answer_words_mean": 50.0, "latency_ms_p50": 900.0}
    report.by_kind = {"list": {"all_facts_rate": 0.5}}
    baseline = {
        "summary": {
            "hit_at_k": {"value": 0.95, "tolerance": 0.02},
            "answer_words_mean": {"value": 40.0, "tolerance": 5.0, "direction": "lower"},
            "latency_ms_p50": {"value": 10.0, "tolerance": 0.0},
        },
        "by_kind": {"list": {"all_facts_rate": {"value": 0.5, "tolerance": 0.0}}},
    }
    regressions = check_baseline(report, baseline)
    assert [(r.scope, r.metric) for r in regressions] == [("summary", "hit_at_k"), ("summary", "answer_words_mean")]
    assert "hit_at_k is 0.9000, baseline 0.9500 - tolerance 0.0200" in str(regressions[0])
    report.summary["hit_at_k"] = 0.93
    report.summary["answer_words_mean"] = 45.0
    assert check_baseline(report, baseline) == []


def test_gold_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"id": "a", "kind": "fact", "question": "Q?"}\n{"id": "b", "kind": "story", "question": "Q?"}\n')
    with pytest.raises(GoldError, match=r"g.jsonl:2: kind"):
        evaluation.load_gold(path)
    path.write_text('{"id": "a", "kind": "fact", "question": "Q?"}\n{"id": "a", "kind": "fact", "question": "R?"}\n')
    with pytest.raises(GoldError, match="duplicate id 'a'"):
        evaluation.load_gold(path)


def _eval(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", "eval", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=900,
        check=False,
    )


@pytest.mark.slow
def test_gold_suite_passes_its_baseline_and_a_weakened_retriever_trips_the_gate(
    built_index: Path, tmp_path: Path
) -> None:
    gold = ROOT / "eval" / "gold.jsonl"
    baseline = ROOT / "eval" / "baseline.json"
    report = tmp_path / "report.md"
    common = ["--gold", str(gold), "--index", str(built_index), "--check", str(baseline), "--report", str(report)]

    done = _eval(*common, "--json", str(tmp_path / "out.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No regression" in done.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(evaluation.SUMMARY_KEYS) <= set(data["summary"])
    assert set(data["by_kind"]) == set(evaluation.KINDS)
    assert report.read_text().startswith("# Eval report") and report.with_suffix(".png").stat().st_size > 10_000

    shallow = _eval(*common, "--k", "1")
    assert shallow.returncode == 1
    assert "regression: hit_at_k" in shallow.stderr or "regression:" in shallow.stderr

    vectors_only = _eval(*common, env={"ASSISTANT_KEYWORD_WEIGHT": "0"})
    assert vectors_only.returncode == 1, vectors_only.stdout
    assert "regression:" in vectors_only.stderr


def test_abstention_tradeoff_counts_what_each_threshold_would_keep() -> None:
    def answer(confidence: float) -> Answer:
        return Answer("q", "x", (), False, (), confidence=confidence)

    gold = [_gold(id="a1"), _gold(id="a2"), _gold(id="u1", kind="unanswerable", key_facts=[], sources=[])]
    answers = iter([answer(0.9), answer(0.3), answer(0.4)])
    report = evaluate(lambda q, h, k: next(answers), lambda d: DOC, gold)
    rows = {t: (a, d) for t, a, d in evaluation.abstention_tradeoff(report, thresholds=(0.25, 0.35, 0.5))}
    assert rows == {0.25: (1.0, 0.0), 0.35: (0.5, 0.0), 0.5: (0.5, 1.0)}
    # 0.9 beats 0.4 and 0.3 loses to it: one of the two pairs is ordered right.
    assert report.summary["answerability_auc"] == 0.5


def test_answerability_auc_is_one_when_every_answerable_question_is_surer() -> None:
    def answer(confidence: float | None) -> Answer:
        return Answer("q", "x", (), False, (), confidence=confidence)

    unanswerable = {"kind": "unanswerable", "key_facts": [], "sources": []}
    gold = [_gold(id="a1"), _gold(id="a2"), _gold(id="u1", **unanswerable), _gold(id="u2", **unanswerable)]
    answers = iter([answer(0.9), answer(0.6), answer(0.5), answer(0.1)])
    assert evaluate(lambda q, h, k: next(answers), lambda d: DOC, gold).summary["answerability_auc"] == 1.0
    # An answerer that reports no confidence has no AUC.
    blind = iter([answer(None)] * 4)
    assert evaluate(lambda q, h, k: next(blind), lambda d: DOC, gold).summary["answerability_auc"] is None
