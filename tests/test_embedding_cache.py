"""The embedding cache is disposable: a damaged one is set aside with one line, and rebuilt."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embedding import EmbeddingCache
from assistant.pipeline import Assistant
from assistant.store.index_store import CACHE_FILE
from tests.conftest import CORPUS, LIST_QUESTION, FakeEmbedder


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _other_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE vectors (text TEXT, embedding BLOB)")
    db.commit()
    db.close()


def _smashed_pages(path: Path) -> None:
    # A real cache whose table survives but whose key index does not: it opens (the first row
    # reads fine), and the damage shows only when vectors are looked up, in the middle of a run.
    cache = EmbeddingCache(path)
    cache.put_many("m", {f"k{i}": np.full(384, i, dtype=np.float32) for i in range(2000)})
    cache.close()
    db = sqlite3.connect(path)
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    pages = [
        number
        for name, number, kind in db.execute("SELECT name, pageno, pagetype FROM dbstat")
        if name == "sqlite_autoindex_vectors_1" and kind == "leaf"
    ]
    db.close()
    data = bytearray(path.read_bytes())
    for number in pages:
        data[(number - 1) * page_size : number * page_size] = os.urandom(page_size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage, _other_schema, _smashed_pages])
def test_an_unreadable_cache_is_set_aside_and_replaced_by_an_empty_one(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / CACHE_FILE
    damage(path)  # type: ignore[operator]
    before = path.read_bytes()
    cache = EmbeddingCache(path)
    with caplog.at_level(logging.WARNING, logger="assistant.embedding"):
        assert cache.get_many("m", [f"k{i}" for i in range(2000)]) == {}
        cache.put_many("m", {"k1": np.ones(4, dtype=np.float32)})
        assert cache.get_many("m", ["k1"])["k1"].tolist() == [1.0, 1.0, 1.0, 1.0]
    cache.close()
    (aside,) = tmp_path.glob(f"{CACHE_FILE}.corrupt-*")
    assert aside.read_bytes() == before  # kept as it was, for whoever wants to look
    (record,) = caplog.records
    message = record.getMessage()
    assert str(path) in message and aside.name in message and "\n" not in message
    # The new cache is a real one: it serves the next process.
    assert EmbeddingCache(path).get_many("m", ["k1"])["k1"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_a_cache_another_process_has_replaced_is_not_set_aside_again(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    _smashed_pages(path)
    keys = [f"k{i}" for i in range(2000)]
    # Two processes (a server and an `assistant index`) both open the damaged file.
    first, second = EmbeddingCache(path), EmbeddingCache(path)
    assert first.get_many("m", []) == second.get_many("m", []) == {}
    assert not list(tmp_path.glob(f"{CACHE_FILE}.corrupt-*"))
    # The first to read a damaged page sets the file aside and starts a new cache.
    assert first.get_many("m", keys) == {}
    first.put_many("m", {"k": np.ones(4, dtype=np.float32)})
    # The second meets the damage later, in the file it still has open: the file now at the
    # path is the first one's new cache, which it joins instead of setting it aside too.
    assert second.get_many("m", keys) == {}
    assert second.get_many("m", ["k"])["k"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert len(list(tmp_path.glob(f"{CACHE_FILE}.corrupt-*"))) == 1
    first.close()
    second.close()


def test_indexing_over_a_damaged_cache_rebuilds_it_and_answers(
    fake_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    cache = fake_settings.index_dir / CACHE_FILE
    _garbage(cache)
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    with caplog.at_level(logging.WARNING, logger="assistant.embedding"):
        report = assistant.index(rebuild=True)
    assert report.written and report.embedded == report.chunks  # every vector computed again
    assert [
        r.getMessage().split(" is unreadable")[0] for r in caplog.records if r.name == "assistant.embedding.cache"
    ] == [f"the embedding cache {cache}"]
    answer = assistant.ask(LIST_QUESTION)
    assert answer.citations
    # The new cache holds this run's vectors: the next rebuild embeds nothing.
    assert Assistant(fake_settings, embedder=FakeEmbedder()).index(rebuild=True).embedded == 0


@pytest.mark.slow
def test_index_rebuild_over_a_damaged_cache_says_so_in_one_line(built_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(built_index, index, symlinks=True)
    _garbage(index / CACHE_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "index", "--rebuild", "--corpus", str(CORPUS), "--index", str(index)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if CACHE_FILE in line]
    assert len(lines) == 1, done.stderr
    assert str(index / CACHE_FILE) in lines[0] and ".corrupt-" in lines[0]
    assert "Indexed 5 documents" in done.stdout
    asked = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ask", LIST_QUESTION, "--index", str(index)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert asked.returncode == 0 and "Plastipolis" in asked.stdout, asked.stderr
