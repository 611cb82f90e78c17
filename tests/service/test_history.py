"""ConversationStore: turns and feedback survive concurrent writers (threads and processes)."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from assistant.conversation.history import ConversationStore, guess_kind
from assistant.errors import NotFoundError
from assistant.records import Answer, Citation, Turn

CITATION = Citation(n=1, doc="a/b.txt", title="B", section="Intro", start=0, end=5, quote="Hello")


def _answer(text: str, abstained: bool = False) -> Answer:
    citations = () if abstained else (CITATION,)
    return Answer(question="q", text=text, citations=citations, abstained=abstained)


def _write_many(data_dir: str, conversation_id: str, worker: int, count: int) -> None:
    store = ConversationStore(Path(data_dir))
    for i in range(count):
        saved = store.add_exchange(conversation_id, f"q{worker}-{i}", _answer(f"a{worker}-{i} [1]"))
        store.add_feedback(saved.answer_id, "down" if i % 2 else "up", f"w{worker}", source="test")


def _check_complete(store: ConversationStore, conversation_id: str, workers: int, count: int) -> None:
    turns = store.conversation(conversation_id).turns
    assert [t.n for t in turns] == list(range(workers * count * 2))
    # Each question is directly followed by its own answer: exchanges never interleave.
    for question, answer in zip(turns[::2], turns[1::2], strict=True):
        assert question.role == "user" and answer.role == "assistant"
        assert answer.content == "a" + question.content[1:] + " [1]"
        assert answer.citations == (CITATION,)
    feedback = store.feedback()
    assert len(feedback) == workers * count
    assert len({f.answer_id for f in feedback}) == workers * count
    for item in feedback:
        assert item.answer == "a" + item.question[1:] + " [1]"


def test_concurrent_threads_lose_no_turn_or_feedback(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    conversation_id = store.create()
    threads = [threading.Thread(target=_write_many, args=(str(tmp_path), conversation_id, w, 25)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_complete(store, conversation_id, 8, 25)


def test_concurrent_processes_lose_no_turn_or_feedback(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    conversation_id = store.create()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_many, args=(str(tmp_path), conversation_id, w, 15)) for w in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
        assert p.exitcode == 0
    _check_complete(store, conversation_id, 4, 15)


def test_get_or_create_maps_one_key_to_one_conversation(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    key = "slack:T1:C1:1700000000.000100"
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(store.get_or_create(key))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1
    assert store.conversation(found[0]).key == key
    assert store.get_or_create("slack:T1:C1:1700000000.000200") != found[0]


def test_unknown_ids_raise_not_found(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    with pytest.raises(NotFoundError):
        store.conversation("missing")
    with pytest.raises(NotFoundError):
        store.add_exchange("missing", "q", _answer("a"))
    with pytest.raises(NotFoundError):
        store.add_feedback("missing", "down")


def test_export_writes_latest_thumbs_down_in_gold_format(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path)
    conversation = store.create()
    first = store.add_exchange(conversation, "Which clusters hold a Silver label?", _answer("C [1]"))
    second = store.add_exchange(conversation, "And a Bronze one?", _answer("I could not find this.", abstained=True))
    alone = store.add_exchange(store.create(), "How many members does Cluster X have?", _answer("12 [1]"))
    store.add_feedback(first.answer_id, "down", "missed Cluj IT Cluster")
    store.add_feedback(first.answer_id, "up", "my mistake")  # the latest rating counts
    store.add_feedback(second.answer_id, "down", "it is CEP", source="slack", user="U1")
    store.add_feedback(alone.answer_id, "down")

    out = tmp_path / "out" / "candidates.jsonl"
    assert store.export_feedback(out) == 2
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["question"] for line in lines] == [
        "And a Bronze one?",
        "How many members does Cluster X have?",
    ]
    follow = lines[0]
    assert set(follow) == {
        "id",
        "kind",
        "question",
        "history",
        "answer",
        "key_facts",
        "sources",
        "comment",
        "citations",
    }
    assert follow["kind"] == "followup"
    assert follow["history"] == [
        {"role": "user", "content": "Which clusters hold a Silver label?"},
        {"role": "assistant", "content": "C [1]"},
    ]
    assert follow["answer"] == "I could not find this."
    assert follow["comment"] == "it is CEP"
    assert lines[1]["kind"] == "number"
    assert lines[1]["citations"] == [CITATION.to_dict()]
    assert len({line["id"] for line in lines}) == 2


@pytest.mark.parametrize(
    ("question", "history", "kind"),
    [
        ("Which clusters hold a Silver label?", (), "list"),
        ("How many patents does it hold?", (Turn("user", "x"),), "followup"),
        ("When was Plastipolis founded?", (), "number"),
        ("¿Qué es el Clúster Digital de Catalunya y cuántos miembros tiene?", (), "multilingual"),
        ("What is Pool-Net?", (), "fact"),
    ],
)
def test_guess_kind(question: str, history: tuple[Turn, ...], kind: str) -> None:
    assert guess_kind(question, history) == kind
