from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import threading

import pytest

from assistant.config import Settings
from assistant.errors import IndexWriteError
from assistant.pipeline import Assistant
from assistant.store.index_store import VERSIONS, IndexStore
from tests.conftest import FakeEmbedder

# A build under way, as `assistant index` runs one: it holds the index lock while it writes its
# partial version folder (and is killed with -9 by the test, as a user or the OOM killer would).
WRITER = """
import sys, time
from pathlib import Path
from assistant.store.index_store import VERSIONS, write_lock

index_dir = Path(sys.argv[1])
with write_lock(index_dir):
    partial = index_dir / VERSIONS / "20990101T000000000000-cafef00d.partial"
    partial.mkdir()
    (partial / "vectors.npy").write_bytes(b"being written")
    print("writing", flush=True)
    time.sleep(600)
"""


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


def test_a_partial_folder_left_by_a_killed_build_goes_at_the_next_index_or_load(fake_settings: Settings) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assistant.index()
    partial = fake_settings.index_dir / VERSIONS / "20990101T000000000000-deadbeef.partial"
    partial.mkdir()
    (partial / "vectors.npy").write_bytes(b"half")
    # Nothing changed in the corpus: nothing is written, but the leftover goes all the same.
    report = assistant.index()
    assert not report.written
    assert not partial.exists()
    # A server starting (no indexing run) removes it too.
    partial.mkdir()
    IndexStore.load(fake_settings.index_dir).close()
    assert not partial.exists()


def test_the_partial_folder_of_a_live_build_stays_until_its_process_is_killed(fake_settings: Settings) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assistant.index()
    index_dir = fake_settings.index_dir
    partial = index_dir / VERSIONS / "20990101T000000000000-cafef00d.partial"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(index_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        IndexStore.load(index_dir).close()  # a server starting meanwhile
        assert (partial / "vectors.npy").read_bytes() == b"being written"
        with pytest.raises(IndexWriteError, match="another `assistant index` is writing"):
            assistant.index()
        assert (partial / "vectors.npy").read_bytes() == b"being written"
    finally:
        writer.kill()
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()
    # Killed with -9: its lock went with its process, and its folder is now a leftover.
    IndexStore.load(index_dir).close()
    assert not partial.exists()
