from __future__ import annotations

import gc
import sqlite3
import threading

import pytest

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.store import IndexStore
from tests.conftest import FakeEmbedder


def test_a_dropped_store_closes_the_connections_of_every_thread(fake_settings: Settings) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    store = IndexStore.load(fake_settings.index_dir)
    store.chunk(0)
    worker = threading.Thread(target=store.chunk, args=(1,))  # run() drops its target
    worker.start()
    worker.join()
    connections = list(store._connections)
    assert len(connections) == 2
    del store
    gc.collect()
    for connection in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")


def test_vectors_of_returns_the_stored_rows(fake_settings: Settings) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    store = IndexStore.load(fake_settings.index_dir)
    rows = [3, 0, 2]
    assert (store.vectors_of(rows) == store.vectors[rows]).all()
    assert store.sentence_vectors(0).shape == (len(store.chunk(0).sentences), store.manifest.dimension)
    store.close()
