from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.errors import CorpusError, IndexCorruptError, IndexNotFoundError, IndexWriteError
from assistant.indexing.indexer import embed_chunks, sentence_spans
from assistant.ingest.chunking import Chunker, embedding_text
from assistant.ingest.documents import load_document, scan_corpus
from assistant.pipeline import Assistant
from assistant.store.index_store import IndexStore, current_version
from tests import pdf_factory
from tests.conftest import CORPUS, ROOT, CountingEmbedder, FakeEmbedder, assert_citations_exact


@pytest.mark.slow
def test_reindex_embeds_only_what_changed_and_forgets_deleted_documents(
    fake_settings: Settings, real_embedder: Embedder
) -> None:
    counting = CountingEmbedder(real_embedder)
    assistant = Assistant(fake_settings, embedder=counting)
    first = assistant.index()
    assert first.written and first.embedded == first.chunks == len(counting.texts)
    assert sorted(first.added) == sorted(p.name for p in fake_settings.corpus_dir.iterdir())

    # Nothing changed: nothing embedded, nothing written.
    counting.texts.clear()
    again = assistant.index()
    assert not again.written and counting.texts == [] and again.embedded == 0

    # One document changed: only its new or changed chunks are embedded.
    luxembourg = fake_settings.corpus_dir / "luxembourg-materials-manufacturing-cluster-agm.txt"
    chunks_before = assistant.store.manifest.documents[luxembourg.name]["chunks"]
    luxembourg.write_text(
        luxembourg.read_text(encoding="utf-8") + "\n\nThe cluster will host a hydrogen day in June.\n",
        encoding="utf-8",
    )
    changed = assistant.index()
    assert changed.changed == [luxembourg.name] and changed.added == [] and changed.unchanged == 4
    assert 0 < len(counting.texts) <= chunks_before + 1
    assert all(t.startswith("Luxembourg Materials Manufacturing Cluster AGM") for t in counting.texts)
    answer = assistant.ask("What will the cluster host in June?")
    assert "hydrogen day" in answer.text
    assert_citations_exact(assistant, answer)

    # A deleted document can no longer be retrieved or cited.
    question = "How many partners does MetaIndustry4 have?"
    assert any(c.doc == "metaindustry4-third-birthday.txt" for c in assistant.ask(question).citations)
    (fake_settings.corpus_dir / "metaindustry4-third-birthday.txt").unlink()
    counting.texts.clear()
    removed = assistant.index()
    assert removed.removed == ["metaindustry4-third-birthday.txt"] and counting.texts == []
    answer = assistant.ask(question, k=20)
    assert all(h.chunk.doc_id != "metaindustry4-third-birthday.txt" for h in answer.hits)
    assert all(c.doc != "metaindustry4-third-birthday.txt" for c in answer.citations)
    assert "metaindustry4-third-birthday.txt" not in assistant.store.manifest.documents


@pytest.mark.slow
def test_bad_files_are_skipped_and_everything_else_stays_answerable(
    fake_settings: Settings, real_embedder: Embedder
) -> None:
    corpus = fake_settings.corpus_dir
    pdf_factory.write(corpus / "broken.pdf", pdf_factory.corrupt_pdf())
    (corpus / "minutes-latin1.txt").write_bytes("Réunion du comité, procès-verbal.".encode("latin-1"))
    assistant = Assistant(fake_settings, embedder=real_embedder)
    report = assistant.index()
    reasons = dict(report.skipped)
    assert "not a readable PDF" in reasons["broken.pdf"]
    assert "not UTF-8" in reasons["minutes-latin1.txt"]
    assert report.documents == 5
    questions = {
        "4-motors-industry-4-0-concept-note.txt": "Which cluster organisations were granted a Gold label?",
        "florence-industrial-modernisation-workshop.txt": "How many people attended the workshop in Florence?",
        "luxembourg-materials-manufacturing-cluster-agm.txt": (
            "How many companies are in the manufacturing sector in Luxembourg?"
        ),
        "metaindustry4-third-birthday.txt": "How many partners does MetaIndustry4 have?",
        "smart-industri-norra-mellansverige.txt": "Which regions cooperate in Smart Industri Norra Mellansverige?",
    }
    for doc_id, question in questions.items():
        answer = assistant.ask(question)
        assert not answer.abstained, question
        assert any(c.doc == doc_id for c in answer.citations), (question, answer.text)
        assert_citations_exact(assistant, answer)
    # The broken files stay skipped on the next run without being parsed again.
    again = assistant.index()
    assert not again.written and dict(again.skipped).keys() == reasons.keys()


def test_changed_model_or_chunker_rebuilds_and_says_why(fake_settings: Settings) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    other = FakeEmbedder()
    other.model_id = "fake-hash-64-v2"
    report = Assistant(fake_settings, embedder=other).index()
    assert report.written and "embedding model changed" in report.rebuild_reason

    resized = fake_settings.model_copy(update={"chunk_tokens": 120, "chunk_max_tokens": 150})
    report = Assistant(resized, embedder=other).index()
    assert "chunker settings changed" in report.rebuild_reason
    assert "max_tokens" in report.rebuild_reason and "target_tokens" in report.rebuild_reason

    report = Assistant(resized, embedder=other).index(rebuild=True)
    assert report.written and report.rebuild_reason == "--rebuild was asked for"


def test_a_failed_write_keeps_the_previous_index(fake_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assistant.index()
    before = current_version(fake_settings.index_dir)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    (fake_settings.corpus_dir / "new.txt").write_text("A brand new document about robots.", encoding="utf-8")
    monkeypatch.setattr("assistant.store.index_store._write_db", disk_full)
    with pytest.raises(IndexWriteError, match="No space left on device.*previous index is still in use"):
        assistant.index()
    assert current_version(fake_settings.index_dir) == before
    assert not list((fake_settings.index_dir / "versions").glob("*.partial"))
    store = IndexStore.load(fake_settings.index_dir)
    assert "new.txt" not in store.manifest.documents

    monkeypatch.undo()
    assert assistant.index().added == ["new.txt"]


def test_an_interrupted_build_leaves_a_partial_folder_that_the_next_build_removes(fake_settings: Settings) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assistant.index()
    partial = fake_settings.index_dir / "versions" / "20990101T000000-deadbeef.partial"
    partial.mkdir()
    (partial / "vectors.npy").write_bytes(b"half")
    (fake_settings.corpus_dir / "extra.txt").write_text("Extra text about welding robots.", encoding="utf-8")
    assistant.index()
    assert not partial.exists()
    for n in range(3):
        (fake_settings.corpus_dir / "extra.txt").write_text(f"Extra text number {n}.", encoding="utf-8")
        assistant.index()
    # The current version and the two before it are kept (a request may still read them).
    versions = sorted(p.name for p in (fake_settings.index_dir / "versions").iterdir())
    assert len(versions) == 3
    assert current_version(fake_settings.index_dir).name == versions[-1]


def test_corrupt_index_names_the_rebuild_command(fake_settings: Settings) -> None:
    Assistant(fake_settings, embedder=FakeEmbedder()).index()
    folder = current_version(fake_settings.index_dir)
    assert folder is not None
    data = (folder / "vectors.faiss").read_bytes()
    (folder / "vectors.faiss").write_bytes(data[: len(data) // 3])
    with pytest.raises(IndexCorruptError, match=r"assistant index --rebuild"):
        IndexStore.load(fake_settings.index_dir)
    # The next indexing run notices and rebuilds.
    report = Assistant(fake_settings, embedder=FakeEmbedder()).index()
    assert report.written and "unusable" in report.rebuild_reason
    IndexStore.load(fake_settings.index_dir)


def test_missing_index_and_empty_corpus(tmp_path: Path) -> None:
    settings = Settings(corpus_dir=tmp_path / "empty", index_dir=tmp_path / "index")
    (tmp_path / "empty").mkdir()
    assistant = Assistant(settings, embedder=FakeEmbedder())
    with pytest.raises(IndexNotFoundError, match="run `assistant index` first"):
        assistant.ask("anything?")
    with pytest.raises(CorpusError, match="no documents in"):
        assistant.index()


def test_manifest_counts_each_documents_chunks(fake_settings: Settings) -> None:
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    report = assistant.index()
    counts: dict[str, int] = {}
    for _, chunk in assistant.store.all_chunks():
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    documents = assistant.store.manifest.documents
    assert {doc_id: entry["chunks"] for doc_id, entry in documents.items()} == counts
    assert len(counts) == report.documents == 5 and sum(counts.values()) == report.chunks


def _scaling_script() -> ModuleType:
    path = ROOT / "eval" / "bench" / "indexing_scaling.py"
    spec = importlib.util.spec_from_file_location("indexing_scaling", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_benchmark_corpora_hold_the_same_prose_and_hostile_text(tmp_path: Path) -> None:
    # eval/bench/indexing_scaling.py compares one file with many files of the same text.
    paragraphs = [
        {"context": f"Paragraph {i} of article {a}, about topic {a * 7 + i}."} for a in range(3) for i in range(4)
    ]
    articles = [{"title": f"Article_{a}", "paragraphs": paragraphs[a * 4 : a * 4 + 4]} for a in range(3)]
    squad = tmp_path / "squad.json.gz"
    squad.write_bytes(gzip.compress(json.dumps({"data": articles}).encode()))
    folders = _scaling_script().write_corpora(tmp_path / "corpora", 0.0005, squad)
    many = [p.read_text(encoding="utf-8") for p in sorted(folders["many"].iterdir())]
    (single,) = [p.read_text(encoding="utf-8") for p in folders["single"].iterdir()]
    (hostile,) = [p.read_text(encoding="utf-8") for p in folders["hostile"].iterdir()]
    assert len(many) == 3 and single == "\n".join(many) and many[0].startswith("Article 0\n\nParagraph 0")
    assert len(hostile.encode()) >= len(single.encode()) - 2
    assert re.fullmatch(r"[a-z]+( [a-z]+)*", hostile)  # words only: no punctuation, no line break
    (wrapped,) = [p.read_text(encoding="utf-8") for p in folders["wrapped"].iterdir()]
    assert wrapped.replace("\n", " ") == hostile and max(len(line) for line in wrapped.splitlines()) <= 80
    (headings,) = [p.read_text(encoding="utf-8") for p in folders["headings"].iterdir()]
    assert headings.startswith("# Article 0\n\n## Paragraph 0 of article (1)\n\nParagraph 0 of article 0")
    assert headings.count("\n## ") == 6


def test_sentence_vectors_are_kept_at_the_precision_the_index_stores() -> None:
    # float16 from the start: half the memory of a build, the same bytes in sentences.npy.
    embedder = FakeEmbedder()
    document = load_document(scan_corpus(CORPUS)[0][0])
    chunks = Chunker(200, 240).chunk(document)
    _, sentence_vectors = embed_chunks(chunks, embedder, batch=8)
    _, computed = embedder.embed_spans([embedding_text(c) for c in chunks], [sentence_spans(c) for c in chunks])
    assert len(sentence_vectors) == len(chunks)
    for kept, full in zip(sentence_vectors, computed, strict=True):
        assert kept.dtype == np.float16
        assert np.array_equal(kept, full.astype(np.float16))
