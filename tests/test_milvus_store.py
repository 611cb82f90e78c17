"""The Milvus store: same answers as FAISS, a collection per version, the switch, deletes, cleanup.

These run on Milvus Lite files (`<tmp>/milvus.db`, the embedded engine) whatever store the
rest of the run uses; `ASSISTANT_STORE=milvus` runs the other tests on Milvus too.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from assistant import evaluation  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.embedding import Embedder  # noqa: E402
from assistant.errors import IndexCorruptError, IndexWriteError  # noqa: E402
from assistant.pipeline import Assistant  # noqa: E402
from assistant.store import milvus as milvus_store  # noqa: E402
from assistant.store.index_store import CACHE_FILE, IndexStore, current_version  # noqa: E402
from tests.conftest import CORPUS, LIST_QUESTION, OUTSIDE_QUESTION, ROOT, FakeEmbedder, assert_citations_exact  # noqa: E402

QUESTIONS = [
    LIST_QUESTION,
    "How many partners does MetaIndustry4 have?",
    "How many people attended the workshop in Florence?",
    "Which regions cooperate in Smart Industri Norra Mellansverige?",
    OUTSIDE_QUESTION,
]


def settings_for(base: Settings, store: str, name: str, **extra: object) -> Settings:
    """The base settings with their own index folder and store; Milvus as a Lite file there."""
    index_dir = base.index_dir.parent / name
    values: dict[str, object] = {"index_dir": index_dir, "store": store}
    if store == "milvus":
        values["milvus_uri"] = str(index_dir / "milvus.db")
    values.update(extra)
    return base.model_copy(update=values)


def client_of(assistant: Assistant) -> object:
    return milvus_store.connect(assistant.store.manifest.milvus_uri)


def collections(assistant: Assistant) -> set[str]:
    owner = milvus_store.owner_tag(assistant.settings.index_dir)
    prefix = f"{assistant.settings.milvus_collection}_{owner}_"
    return {n for n in client_of(assistant).list_collections() if n.startswith(prefix)}


def test_milvus_answers_exactly_like_faiss(fake_settings: Settings) -> None:
    faiss = Assistant(settings_for(fake_settings, "faiss", "faiss"), embedder=FakeEmbedder())
    milvus = Assistant(settings_for(fake_settings, "milvus", "milvus"), embedder=FakeEmbedder())
    faiss.index()
    milvus.index()
    assert milvus.store.manifest.engine == "milvus" and milvus.store.vectors is None
    assert not (current_version(milvus.settings.index_dir) / "vectors.npy").exists()
    assert milvus.store.manifest.vector_index == faiss.store.manifest.vector_index == "flat"
    rows = np.arange(faiss.store.size)
    assert np.array_equal(milvus.store.vectors_of(rows[::-1]), faiss.store.vectors_of(rows[::-1]))
    queries = FakeEmbedder().embed(QUESTIONS)
    f_scores, f_rows = faiss.store.vector_index.search(queries, 20)
    m_scores, m_rows = milvus.store.vector_index.search(queries, 20)
    assert np.allclose(f_scores, m_scores, atol=1e-5)
    # Ties may come back in either order; the sets of rows per score level agree.
    for f_row, m_row, scores in zip(f_rows, m_rows, f_scores, strict=True):
        ties = np.isclose(scores[:, None], scores[None, :], atol=1e-6).sum(axis=1) > 1
        assert np.array_equal(f_row[~ties], m_row[~ties])
    for question in QUESTIONS:
        f, m = faiss.ask(question, k=8), milvus.ask(question, k=8)
        assert [h.chunk.id for h in m.hits] == [h.chunk.id for h in f.hits], question
        assert m.text == f.text
        assert_citations_exact(milvus, m)
    # More neighbours than rows: padded with -1, as FAISS does.
    scores, found = milvus.store.vector_index.search(queries[:1], 10_000)
    assert found.shape == (1, milvus.store.size) and (found >= 0).all()


def test_each_version_has_its_collection_the_alias_follows_and_old_ones_go(
    fake_settings: Settings,
) -> None:
    assistant = Assistant(settings_for(fake_settings, "milvus", "index"), embedder=FakeEmbedder())
    assistant.index()
    first = assistant.store
    client = client_of(assistant)
    assert first.manifest.collection.endswith(current_version(assistant.settings.index_dir).name.replace("-", "_"))
    assert client.describe_alias("assistant")["collection_name"] == first.manifest.collection

    extra = fake_settings.corpus_dir / "extra.txt"
    extra.write_text("The welding robots arrive in March.", encoding="utf-8")
    report = assistant.index()
    assert report.added == ["extra.txt"] and report.embedded == 1
    second = assistant.store
    assert second.manifest.collection != first.manifest.collection
    assert client.describe_alias("assistant")["collection_name"] == second.manifest.collection
    # A reader that opened the previous version keeps its own collection, not the alias's.
    assert first.vector_index.search(FakeEmbedder().embed(["welding robots"]), 200)[1].max() < first.size
    assert "extra.txt" not in {first.chunk(r).doc_id for r in range(first.size)}

    for n in range(3):
        extra.write_text(f"The welding robots arrive in month {n}.", encoding="utf-8")
        assistant.index()
    # The current version and two before it are kept, folders and collections alike.
    versions = sorted(p.name for p in (assistant.settings.index_dir / "versions").iterdir())
    assert len(versions) == 3
    assert collections(assistant) == {
        milvus_store.collection_name("assistant", assistant.settings.index_dir, v) for v in versions
    }
    assert first.manifest.collection not in client.list_collections()


def test_a_deleted_document_is_gone_from_the_collection(fake_settings: Settings) -> None:
    assistant = Assistant(settings_for(fake_settings, "milvus", "index"), embedder=FakeEmbedder())
    assistant.index()
    question = "How many partners does MetaIndustry4 have?"
    assert any(c.doc == "metaindustry4-third-birthday.txt" for c in assistant.ask(question).citations)
    (fake_settings.corpus_dir / "metaindustry4-third-birthday.txt").unlink()
    report = assistant.index()
    assert report.removed == ["metaindustry4-third-birthday.txt"] and report.embedded == 0
    store = assistant.store
    answer = assistant.ask(question, k=20)
    assert all(h.chunk.doc_id != "metaindustry4-third-birthday.txt" for h in answer.hits)
    assert all(c.doc != "metaindustry4-third-birthday.txt" for c in answer.citations)
    # The new collection holds exactly the remaining chunks, keyed by their rows.
    count = client_of(assistant).query(store.manifest.collection, filter="", output_fields=["count(*)"])
    assert count[0]["count(*)"] == store.size
    _, rows = store.vector_index.search(FakeEmbedder().embed([question]), store.size)
    assert sorted(rows[0].tolist()) == list(range(store.size))


def test_a_failed_milvus_write_keeps_the_previous_index(
    fake_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymilvus import MilvusException

    assistant = Assistant(settings_for(fake_settings, "milvus", "index"), embedder=FakeEmbedder())
    assistant.index()
    before = current_version(assistant.settings.index_dir)
    kept = collections(assistant)
    (fake_settings.corpus_dir / "new.txt").write_text("A brand new document about robots.", encoding="utf-8")
    client = client_of(assistant)
    original_flush = client.flush

    def broken_flush(*args: object, **kwargs: object) -> None:
        raise MilvusException(message="disk quota exceeded")

    monkeypatch.setattr(client, "flush", broken_flush)
    with pytest.raises(IndexWriteError, match="disk quota exceeded.*previous index is still in use"):
        assistant.index()
    assert current_version(assistant.settings.index_dir) == before
    assert not list((assistant.settings.index_dir / "versions").glob("*.partial"))
    assert collections(assistant) == kept  # the half-written collection is gone
    monkeypatch.setattr(client, "flush", original_flush)
    assert assistant.index().added == ["new.txt"]


def test_a_missing_collection_names_the_rebuild_command_and_the_next_run_rebuilds(
    fake_settings: Settings,
) -> None:
    settings = settings_for(fake_settings, "milvus", "index")
    Assistant(settings, embedder=FakeEmbedder()).index()
    manifest = IndexStore.load(settings.index_dir).manifest
    client = milvus_store.connect(manifest.milvus_uri)
    client.drop_alias("assistant")
    client.drop_collection(manifest.collection)
    with pytest.raises(IndexCorruptError, match=r"does not exist.*assistant index --rebuild"):
        IndexStore.load(settings.index_dir)
    report = Assistant(settings, embedder=FakeEmbedder()).index()
    assert report.written and "unusable" in report.rebuild_reason
    assert IndexStore.load(settings.index_dir).size == report.chunks


def test_switching_the_store_moves_the_vectors_without_embedding_again(
    fake_settings: Settings,
) -> None:
    faiss_settings = settings_for(fake_settings, "faiss", "index")
    first = Assistant(faiss_settings, embedder=FakeEmbedder())
    first.index()
    vectors = np.array(first.store.vectors)
    milvus_settings = faiss_settings.model_copy(
        update={"store": "milvus", "milvus_uri": str(faiss_settings.index_dir / "milvus.db")}
    )
    embedder = FakeEmbedder()
    moved = Assistant(milvus_settings, embedder=embedder)
    report = moved.index()
    assert report.written and not report.rebuild_reason and embedder.calls == 0
    assert moved.store.manifest.engine == "milvus"
    assert np.array_equal(moved.store.vectors_of(np.arange(len(vectors))), vectors)
    assert not moved.index().written  # and then it is up to date
    back = Assistant(faiss_settings, embedder=embedder).index()
    assert back.written and embedder.calls == 0
    assert np.array_equal(IndexStore.load(faiss_settings.index_dir).vectors, vectors)


def test_a_copied_index_folder_never_drops_the_original_collections(fake_settings: Settings, tmp_path: Path) -> None:
    # Collections carry their index folder's path hash: a copy (or a second index sharing the
    # server) cleans up only what it wrote itself.
    settings = settings_for(fake_settings, "milvus", "index")
    original = Assistant(settings, embedder=FakeEmbedder())
    original.index()
    copy_dir = tmp_path / "copy"
    shutil.copytree(settings.index_dir, copy_dir, symlinks=True, ignore=shutil.ignore_patterns("milvus.db"))
    copy = Assistant(settings.model_copy(update={"index_dir": copy_dir}), embedder=FakeEmbedder())
    assert copy.ask(LIST_QUESTION).citations  # reads the original's collection
    for n in range(4):
        (fake_settings.corpus_dir / "extra.txt").write_text(f"Extra text number {n}.", encoding="utf-8")
        copy.index()
    assert original.store.manifest.collection in client_of(original).list_collections()
    assert original.ask(LIST_QUESTION).citations


def test_settings_and_missing_packages_say_what_to_do(fake_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="milvus_collection"):
        Settings(milvus_collection="my-index")
    with pytest.raises(ValueError, match="must start with a letter"):
        milvus_store.MilvusConfig(collection="9lives")
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(ImportError, match=r"pip install 'assistant\[milvus\]'"):
        milvus_store.connect(str(fake_settings.index_dir / "milvus.db"))
    monkeypatch.undo()
    from assistant.errors import ConfigError

    with pytest.raises(ConfigError, match="neither a Milvus Lite file"):
        milvus_store.connect(str(fake_settings.index_dir / "milvus"))


@pytest.mark.slow
def test_gold_set_scores_the_same_on_milvus_and_faiss(tmp_path: Path, real_embedder: Embedder) -> None:
    gold = evaluation.load_gold(ROOT / "eval" / "gold.jsonl")
    summaries = {}
    hits = {}
    for store in ("faiss", "milvus"):
        index_dir = tmp_path / store
        index_dir.mkdir()
        if store == "milvus":  # the same embeddings: only the engine differs
            shutil.copy(tmp_path / "faiss" / CACHE_FILE, index_dir / CACHE_FILE)
        settings = Settings(
            corpus_dir=CORPUS,
            index_dir=index_dir,
            data_dir=tmp_path / "data",
            store=store,
            milvus_uri=str(index_dir / "milvus.db"),
        )
        assistant = Assistant(settings, embedder=real_embedder)
        assistant.index()
        answers: list[list[str]] = []

        def ask(
            question: str,
            history: object,
            k: int,
            assistant: Assistant = assistant,
            answers: list[list[str]] = answers,
        ) -> object:
            answer = assistant.ask(question, history, k)  # type: ignore[arg-type]
            answers.append([h.chunk.id for h in answer.hits])
            return answer

        report = evaluation.evaluate(ask, lambda d, a=assistant: a.store.document(d).text, gold, k=5)
        summaries[store], hits[store] = report.summary, answers
    for metric in ("hit_at_k", "mrr"):
        assert summaries["milvus"][metric] == pytest.approx(summaries["faiss"][metric], abs=0.01), metric
    assert hits["milvus"] == hits["faiss"]


def test_bench_measures_milvus_next_to_faiss_on_the_same_vectors(tmp_path: Path) -> None:
    from assistant.bench.benchmark import measure_store_retrieval

    uri = str(tmp_path / "bench.db")
    rows = measure_store_retrieval(2000, uri=uri, queries=30, dim=32)
    by_engine = {row["what"]: row for row in rows}
    assert set(by_engine) == {"FAISS flat", "FAISS hnsw", "Milvus FLAT (milvus-lite)", "Milvus HNSW (milvus-lite)"}
    # FAISS flat is the ground truth; Milvus' exact search must find the same neighbours.
    assert by_engine["FAISS flat"]["recall_at_10"] == 1.0
    assert by_engine["Milvus FLAT (milvus-lite)"]["recall_at_10"] >= 0.99
    assert by_engine["Milvus HNSW (milvus-lite)"]["recall_at_10"] > 0.8
    for row in rows:
        assert row["build_s"] >= 0 and 0 < row["query_ms_p50"] <= row["query_ms_p95"]
    # The bench leaves no collection behind.
    assert not [n for n in milvus_store.connect(uri).list_collections() if n.startswith("bench_")]
