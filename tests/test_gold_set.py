"""Checks the question sets (eval/gold.jsonl, eval/heldout.jsonl) against their format and the corpus.

eval/heldout.jsonl holds questions written by someone else after the answerers were built; it
is measured, never tuned on. Both sets must stay out of the tests.

The format is the contract of shared/design/EVAL.md; quotes are checked against the documents
with a normaliser written here (NFC, lower case, runs of whitespace collapsed to one space), so
that this test does not depend on the code it is meant to evaluate.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "gold.jsonl"
SETS = {"g": GOLD, "h": ROOT / "eval" / "heldout.jsonl"}  # id prefix -> file
CORPUS = ROOT / "corpus"

KINDS = {"fact", "number", "list", "multilingual", "unanswerable", "followup"}
MIN_PER_KIND = {
    "fact": 10,
    "number": 10,
    "list": 10,
    "multilingual": 8,
    "followup": 8,
    "unanswerable": 8,
}
MIN_QUESTIONS = 64
MIN_PER_DOCUMENT = 3
QUOTE_WORDS = (5, 25)
FIELDS = {"id", "kind", "question", "history", "answer", "key_facts", "sources"}


def normalise(text: str) -> str:
    """NFC, lower case, whitespace runs (no-break spaces included) collapsed to one space."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()


@cache
def document(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


@cache
def normalised_lines(name: str) -> tuple[str, ...]:
    return tuple(normalise(line) for line in document(name).splitlines())


def corpus_documents() -> list[str]:
    return sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and not p.name.startswith("."))


def load_lines(path: Path = GOLD) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module", params=sorted(SETS))
def questions(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return [json.loads(line) for line in load_lines(SETS[request.param])]


@pytest.fixture(scope="module")
def gold() -> list[dict[str, Any]]:
    return [json.loads(line) for line in load_lines()]


@pytest.mark.parametrize("path", SETS.values(), ids=SETS.keys())
def test_every_line_is_a_json_object(path: Path) -> None:
    lines = load_lines(path)
    assert lines, f"{path} is empty"
    for number, line in enumerate(lines, start=1):
        assert line.strip(), f"line {number} is blank"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"line {number} is not JSON: {exc}")
        assert isinstance(item, dict), f"line {number} is not a JSON object"


def test_fields_and_types(questions: list[dict[str, Any]]) -> None:
    for q in questions:
        where = q.get("id", "?")
        assert set(q) <= FIELDS, f"{where}: unknown fields {set(q) - FIELDS}"
        for key in ("id", "kind", "question", "answer"):
            assert isinstance(q.get(key), str), f"{where}: {key} must be a string"
            assert q[key].strip(), f"{where}: {key} is empty"
        assert isinstance(q.get("key_facts"), list), f"{where}: key_facts must be a list"
        assert isinstance(q.get("sources"), list), f"{where}: sources must be a list"
        for fact in q["key_facts"]:
            assert isinstance(fact, str), f"{where}: key fact {fact!r} is not a string"
            assert fact.strip(), f"{where}: empty key fact"
        for source in q["sources"]:
            assert isinstance(source, dict), f"{where}: source {source!r} is not an object"
            assert set(source) == {"doc", "quote"}, f"{where}: source fields {set(source)}"
            assert isinstance(source["doc"], str), f"{where}: source doc is not a string"
            assert isinstance(source["quote"], str), f"{where}: source quote is not a string"
            assert source["quote"].strip(), f"{where}: empty quote"


@pytest.mark.parametrize(("prefix", "path"), SETS.items(), ids=SETS.keys())
def test_ids_are_unique_and_numbered_in_order(prefix: str, path: Path) -> None:
    ids = [json.loads(line)["id"] for line in load_lines(path)]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"duplicate ids: {duplicates}"
    assert ids == [f"{prefix}{n:03d}" for n in range(1, len(ids) + 1)], f"ids are not {prefix}001, {prefix}002, ..."


def test_kinds_are_allowed(questions: list[dict[str, Any]]) -> None:
    bad = {q["id"]: q["kind"] for q in questions if q["kind"] not in KINDS}
    assert not bad, f"unknown kinds: {bad}"


def test_minimum_counts(gold: list[dict[str, Any]]) -> None:
    assert len(gold) >= MIN_QUESTIONS, f"only {len(gold)} questions"
    counts = Counter(q["kind"] for q in gold)
    short = {k: counts[k] for k, n in MIN_PER_KIND.items() if counts[k] < n}
    assert not short, f"too few questions of kind(s) {short}; minimums {MIN_PER_KIND}"


def test_every_document_is_covered(gold: list[dict[str, Any]]) -> None:
    documents = corpus_documents()
    assert documents, f"no documents in {CORPUS}"
    per_document: Counter[str] = Counter()
    for q in gold:
        for doc in {s["doc"] for s in q["sources"]}:
            per_document[doc] += 1
    thin = {d: per_document[d] for d in documents if per_document[d] < MIN_PER_DOCUMENT}
    assert not thin, f"documents with fewer than {MIN_PER_DOCUMENT} questions: {thin}"


def test_answerable_have_facts_and_sources_unanswerable_have_neither(
    questions: list[dict[str, Any]],
) -> None:
    for q in questions:
        if q["kind"] == "unanswerable":
            assert q["key_facts"] == [], f"{q['id']}: unanswerable with key facts"
            assert q["sources"] == [], f"{q['id']}: unanswerable with sources"
        else:
            assert q["key_facts"], f"{q['id']}: no key facts"
            assert q["sources"], f"{q['id']}: no sources"


def test_followups_have_an_alternating_history(questions: list[dict[str, Any]]) -> None:
    for q in questions:
        history = q.get("history", [])
        if q["kind"] != "followup":
            assert not history, f"{q['id']}: history on a {q['kind']} question"
            continue
        assert isinstance(history, list), f"{q['id']}: history must be a list"
        assert history, f"{q['id']}: follow-up without history"
        for i, turn in enumerate(history):
            assert isinstance(turn, dict), f"{q['id']}: turn {i} is not an object"
            assert set(turn) == {"role", "content"}, f"{q['id']}: turn {i} fields {set(turn)}"
            expected = "user" if i % 2 == 0 else "assistant"
            assert turn["role"] == expected, f"{q['id']}: turn {i} should be {expected}"
            assert isinstance(turn["content"], str), f"{q['id']}: turn {i} content not a string"
            assert turn["content"].strip(), f"{q['id']}: turn {i} is empty"
        assert history[-1]["role"] == "assistant", f"{q['id']}: history ends with a user turn"


def test_source_documents_exist(questions: list[dict[str, Any]]) -> None:
    documents = set(corpus_documents())
    missing = {(q["id"], s["doc"]) for q in questions for s in q["sources"] if s["doc"] not in documents}
    assert not missing, f"sources naming documents not in corpus/: {sorted(missing)}"


def test_quotes_are_exact_phrases_of_their_documents(questions: list[dict[str, Any]]) -> None:
    documents = set(corpus_documents())
    for q in questions:
        for s in q["sources"]:
            if s["doc"] not in documents:
                continue  # reported by test_source_documents_exist
            quote = normalise(s["quote"])
            where = f"{q['id']} ({s['doc']}): {s['quote']!r}"
            assert quote in normalise(document(s["doc"])), f"quote not in document: {where}"
            assert any(quote in line for line in normalised_lines(s["doc"])), f"quote spans a line break: {where}"
            low, high = QUOTE_WORDS
            assert low <= len(quote.split()) <= high, f"quote not {low}-{high} words: {where}"


def test_key_facts_are_written_as_the_documents_write_them(
    questions: list[dict[str, Any]],
) -> None:
    documents = set(corpus_documents())
    for q in questions:
        cited = [document(d) for d in {s["doc"] for s in q["sources"]} if d in documents]
        for fact in q["key_facts"]:
            assert any(normalise(fact) in normalise(text) for text in cited), (
                f"{q['id']}: key fact {fact!r} is not in its cited documents"
            )


def _string_literals(path: Path) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_test_copies_a_gold_question(questions: list[dict[str, Any]]) -> None:
    # Word for word, case and the question mark aside: a test that asks a gold question makes
    # the gate's figures a measure of what the tests were tuned on.
    def key(text: str) -> str:
        return normalise(text).rstrip(" ?.")

    gold = {key(t["content"]): q["id"] for q in questions for t in q.get("history", []) if t["role"] == "user"}
    gold.update({key(q["question"]): q["id"] for q in questions})
    copies = [
        f"{path.relative_to(ROOT)}:{line}: {gold[key(text)]} {text!r}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, text in _string_literals(path)
        if key(text) in gold
    ]
    assert not copies, "gold questions copied into tests:\n" + "\n".join(copies)
