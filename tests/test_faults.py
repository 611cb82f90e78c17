"""Faults while indexing: killed processes, a full disk, corrupt files. The previous index serves."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import IndexCorruptError, IndexWriteError
from assistant.pipeline import Assistant
from assistant.store.index_store import IndexStore, current_version
from tests.conftest import CORPUS, FakeEmbedder

INDEX_FILES = [
    "manifest.json",
    "vectors.npy",
    "vectors.faiss",
    "sentences.npy",
    "sentence_offsets.npy",
    "chunks.sqlite",
    "keyword.npz",
    "keyword.json",
]


@pytest.mark.parametrize("name", INDEX_FILES)
@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_index_file_names_the_rebuild_command(fake_settings: Settings, name: str, damage: str) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    folder = current_version(fake_settings.index_dir)
    assert folder is not None
    path = folder / name
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    else:
        path.write_bytes(os.urandom(path.stat().st_size))
    with pytest.raises(IndexCorruptError, match=r"run `assistant index --rebuild`") as caught:
        IndexStore.load(fake_settings.index_dir).chunk(0)
    # The damaged file itself is named, never its neighbour (keyword.json is not keyword.npz).
    assert caught.value.path == path
    assert f"index file {path} " in str(caught.value)


@pytest.mark.parametrize("name", [n for n in INDEX_FILES if n != "manifest.json"])
def test_one_flipped_byte_inside_an_index_file_is_noticed_and_named(fake_settings: Settings, name: str) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assistant.index()
    folder = current_version(fake_settings.index_dir)
    assert folder is not None
    path = folder / name
    data = bytearray(path.read_bytes())
    # One bit in the last quarter of the file: in the data, past every header, so that the
    # file still parses and only the checksum can tell.
    data[len(data) * 3 // 4] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"sha256.*run `assistant index --rebuild`") as caught:
        IndexStore.load(fake_settings.index_dir)
    assert caught.value.path == path
    # The next indexing run, with nothing changed in the corpus, notices and rebuilds.
    report = assistant.index()
    assert report.written and "unusable" in report.rebuild_reason and name in report.rebuild_reason
    IndexStore.load(fake_settings.index_dir).close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not an object"])
def test_a_damaged_keyword_json_is_named_in_an_index_without_checksums(fake_settings: Settings, damage: str) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    folder = current_version(fake_settings.index_dir)
    assert folder is not None
    # An index written before checksums were recorded: only reading the file can tell.
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    del manifest["checksums"]
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    path = folder / "keyword.json"
    text = path.read_text(encoding="utf-8")
    damaged = {"truncate": text[: len(text) // 2], "garbage": "\x00\x9f garbage", "not an object": "[1, 2]"}
    path.write_text(damaged[damage], encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=r"run `assistant index --rebuild`") as caught:
        IndexStore.load(fake_settings.index_dir)
    assert caught.value.path == path


def test_a_damaged_index_is_a_one_line_error_in_the_cli(built_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(built_index, index, symlinks=True)
    folder = current_version(index)
    assert folder is not None
    (folder / "keyword.npz").write_bytes(b"not a zip")
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "ask", "Who?", "--index", str(index)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "assistant index --rebuild" in done.stderr and "keyword.npz" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_at_random_points_leaves_the_previous_index_serving(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = tmp_path / "index"
    env = {**os.environ, "ASSISTANT_CORPUS_DIR": str(corpus), "ASSISTANT_INDEX_DIR": str(index)}
    command = [sys.executable, "-m", "assistant.cli", "index", "--quiet"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    first = current_version(index)
    assert first is not None
    rng = random.Random(7)
    for attempt in range(5):
        (corpus / f"note-{attempt}.txt").write_text(
            f"Note {attempt}: welding robots, {uuid.uuid4()}.", encoding="utf-8"
        )
        process = subprocess.Popen(
            command + ["--rebuild"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.5, 8.0))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        # Whatever the moment of the kill, a complete index is in place and answers.
        folder = current_version(index)
        assert folder is not None and (folder / "manifest.json").is_file()
        store = IndexStore.load(index)
        assert store.size > 0 and store.chunk(0).text
        store.close()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    store = IndexStore.load(index)
    assert all(f"note-{n}.txt" in store.manifest.documents for n in range(5))
    assert not list((index / "versions").glob("*.partial"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem mounted for the test (needs root, as on CI and the dev machines)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_gives_a_clear_error_and_keeps_the_previous_index(small_disk: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "small.txt").write_text("Plastipolis holds the Gold label.", encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=small_disk / "index", data_dir=tmp_path / "data")
    assistant = Assistant(settings, embedder=FakeEmbedder())
    assistant.index()
    before = current_version(settings.index_dir)
    # A document big enough that its version cannot fit in what is left of the 3 MB.
    words = " ".join(f"word{i}" for i in range(60_000))
    (corpus / "big.txt").write_text(". ".join([words] * 3), encoding="utf-8")
    with pytest.raises(IndexWriteError, match="previous index is still in use"):
        assistant.index()
    assert current_version(settings.index_dir) == before
    assert not list((settings.index_dir / "versions").glob("*.partial"))
    answer = assistant.ask("Who holds the Gold label?")
    assert not answer.abstained and answer.citations[0].doc == "small.txt"
