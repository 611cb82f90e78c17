"""`assistant index --ray`: Ray Data runs the indexer's own batch steps and gets its results.

Each test starts a local Ray instance (about 10 s on two cores); the index goes to whichever
store the run uses (`ASSISTANT_STORE`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data")

from assistant.config import Settings  # noqa: E402
from assistant.embedding import SentenceTransformerEmbedder  # noqa: E402
from assistant.indexing.ray import embedder_factory  # noqa: E402
from assistant.pipeline import Assistant  # noqa: E402
from assistant.store.index_store import IndexStore  # noqa: E402
from tests import pdf_factory  # noqa: E402
from tests.conftest import CORPUS, ROOT, FakeEmbedder, assert_citations_exact  # noqa: E402

# Ray Data warns about its own defaults when it builds its DataContext (ray 2.60).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

# What differs between two builds of the same corpus: when, and the version-named collection.
BUILD_FIELDS = {"built_at", "build_seconds", "collection"}


def same_index(a: IndexStore, b: IndexStore, atol: float = 1e-5) -> None:
    """Asserts two indexes hold the same documents, chunks, vectors and manifest."""
    assert [c for _, c in a.all_chunks()] == [c for _, c in b.all_chunks()]
    assert [d.id for d in a.documents()] == [d.id for d in b.documents()]
    rows = np.arange(a.size)
    assert np.abs(a.vectors_of(rows) - b.vectors_of(rows)).max() <= atol
    for row in rows:
        # Sentence vectors are stored as float16: equal to its rounding.
        assert np.allclose(a.sentence_vectors(row), b.sentence_vectors(row), atol=1e-3)
    assert np.array_equal(a.keyword.frequencies.toarray(), b.keyword.frequencies.toarray())
    differ = {k for k in vars(a.manifest) if getattr(a.manifest, k) != getattr(b.manifest, k)}
    assert differ <= BUILD_FIELDS, differ


@pytest.mark.slow
def test_index_with_ray_gives_the_single_process_chunks_vectors_and_manifest(built_index: Path, tmp_path: Path) -> None:
    ray_index = tmp_path / "ray-index"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "index",
            "--ray",
            "--corpus",
            str(CORPUS),
            "--index",
            str(ray_index),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Indexed 5 documents" in done.stdout
    single, distributed = IndexStore.load(built_index), IndexStore.load(ray_index)
    assert distributed.manifest.engine == single.manifest.engine == (os.environ.get("ASSISTANT_STORE") or "faiss")
    same_index(single, distributed)


@pytest.mark.slow
def test_ray_indexing_is_incremental_skips_bad_files_and_matches_the_local_path(
    fake_settings: Settings, tmp_path: Path
) -> None:
    corpus = fake_settings.corpus_dir
    pdf_factory.write(corpus / "broken.pdf", pdf_factory.corrupt_pdf())
    local = Assistant(fake_settings.model_copy(update={"index_dir": tmp_path / "local"}), embedder=FakeEmbedder())
    ray = Assistant(fake_settings.model_copy(update={"index_dir": tmp_path / "ray"}), embedder=FakeEmbedder())

    first = ray.index(ray="")
    assert first.written and first.embedded == first.chunks
    assert "not a readable PDF" in dict(first.skipped)["broken.pdf"]
    local.index()
    same_index(local.store, ray.store, atol=0)

    # One document changed, one deleted: Ray reads and embeds only the changed one.
    luxembourg = corpus / "luxembourg-materials-manufacturing-cluster-agm.txt"
    luxembourg.write_text(luxembourg.read_text(encoding="utf-8") + "\n\nA hydrogen day in June.\n", encoding="utf-8")
    (corpus / "metaindustry4-third-birthday.txt").unlink()
    second = ray.index(ray="")
    assert second.changed == [luxembourg.name] and second.removed == ["metaindustry4-third-birthday.txt"]
    assert second.embedded == ray.store.manifest.documents[luxembourg.name]["chunks"]
    assert dict(second.skipped).keys() == {"broken.pdf"}
    local.index()
    same_index(local.store, ray.store, atol=0)
    answer = ray.ask("How many partners does MetaIndustry4 have?", k=20)
    assert all(h.chunk.doc_id != "metaindustry4-third-birthday.txt" for h in answer.hits)
    assert_citations_exact(ray, ray.ask("What happens in June?"))

    # Nothing changed: Ray is not even started.
    assert not ray.index(ray="not-a-ray-address").written


def test_workers_build_the_embedder_from_its_recipe_not_a_shipped_model() -> None:
    recipe = embedder_factory(SentenceTransformerEmbedder("all-MiniLM-L6-v2", batch_size=8))
    rebuilt = recipe()
    assert isinstance(rebuilt, SentenceTransformerEmbedder)
    assert (rebuilt.model_id, rebuilt.batch_size, rebuilt._model) == ("all-MiniLM-L6-v2", 8, None)
    fake = embedder_factory(FakeEmbedder())()
    assert isinstance(fake, FakeEmbedder) and fake.calls == 0
