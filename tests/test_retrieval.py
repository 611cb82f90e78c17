"""Retriever.search: fusion of keyword and vector scores, rerank, subject bonus, subsection
expansion and diversity, each checked as a property on a small corpus built here.

The synthetic corpora use the fast bag-of-words FakeEmbedder; the last tests run on the real
index with questions that are not in the gold set (eval/gold.jsonl).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.pipeline import Assistant
from assistant.records import Hit
from assistant.retrieval import FusionWeights, Retriever
from tests.conftest import FakeEmbedder

# Three clusters described in the same words, each in a section headed with its name: only the
# name tells them apart.
CLUSTERS = """# Clusters of the Northern Alliance

The Northern Alliance brings together regional clusters that work on advanced manufacturing.

## Alderwerk

The cluster Alderwerk holds a Bronze label for cluster management excellence and gathers
members from the machine building industry in the north.

## Birchnet

The cluster Birchnet holds a Bronze label for cluster management excellence and gathers
members from the plastics industry in the north.

## Cedarlink

The cluster Cedarlink holds a Bronze label for cluster management excellence and gathers
members from the electronics industry in the north.
"""

# A region whose clusters are its subsections; their text never repeats the question's words.
REGIONS = """# Regions of the Southern Partnership

The Southern Partnership joins regions that share a programme on smart factories.

## 1. Valdoria

Valdoria is a mountain region with a long industrial tradition and a strong export sector.
Its economy rests on machine building and on tourism in the valleys.

### 1.1. Quillmark

Quillmark designs robotic welding cells for shipyards and has opened a test hall in 2019.

### 1.2. Ostrava Works

Ostrava Works trains technicians in additive manufacturing for aerospace parts.

### 1.3. Pennard

Pennard runs a data platform that connects the sensors of forty foundries.

## 2. Lusitra

Lusitra is a coastal region whose ports handle most of the country's container traffic.
"""

SPARE_PARTS = """# Spare parts catalogue

Order the hydraulic pump seal under the code XR-7731-B from the central warehouse.
The filter cartridge for the same pump is listed under a separate code in the annex.
"""

# One long headed section about a single topic, and a short note elsewhere about it too.
PUMPS = "# Pump maintenance handbook\n\n## Pump maintenance\n\n" + "\n\n".join(
    f"Step {n}: the pump maintenance crew checks the pump seal number {n} and records the "
    f"pump pressure reading {n} in the maintenance log of the pump station."
    for n in range(1, 25)
)
PUMP_NOTE = """# Note from the harbour office

The harbour office asks that pump maintenance in the harbour be announced a day before,
because the pump station feeds the harbour cranes.
"""


def _index(tmp_path: Path, documents: dict[str, str]) -> Assistant:
    corpus = tmp_path / "corpus"
    for name, text in documents.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", data_dir=tmp_path / "data")
    assistant = Assistant(settings, embedder=FakeEmbedder())
    assistant.index()
    return assistant


def _retriever(assistant: Assistant, **options: object) -> Retriever:
    engine = assistant.engine
    return Retriever(engine.store, assistant.embedder, **options)  # type: ignore[arg-type]


def _subjects(hits: list[Hit]) -> list[str]:
    return [h.chunk.subject for h in hits]


@pytest.fixture
def corpus(tmp_path: Path) -> Assistant:
    """A small corpus of clusters, regions, a spare-parts list and a pump handbook."""
    return _index(
        tmp_path,
        {
            "clusters.md": CLUSTERS,
            "regions.md": REGIONS,
            "parts.md": SPARE_PARTS,
            "pumps.md": PUMPS,
            "harbour.md": PUMP_NOTE,
        },
    )


def test_hits_are_ranked_distinct_and_at_most_k(corpus: Assistant) -> None:
    hits = corpus.engine.retriever.search("Which cluster gathers members from the plastics industry?", 4)
    assert 1 <= len(hits) <= 4
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert len({h.chunk.id for h in hits}) == len(hits)
    with pytest.raises(ValueError, match="k must be at least 1"):
        corpus.engine.retriever.search("pump", 0)


@pytest.mark.parametrize("name", ["Alderwerk", "Birchnet", "Cedarlink"])
def test_the_section_named_by_the_question_ranks_first(corpus: Assistant, name: str) -> None:
    hits = corpus.engine.retriever.search(f"Which label does {name} hold?", 3)
    assert hits[0].chunk.subject == name, _subjects(hits)


def test_the_subject_bonus_lifts_the_section_about_the_name_asked_for(corpus: Assistant) -> None:
    # The bonus goes to the section about the name asked for, by exactly its weight, and to
    # no other; with it that section leads.
    question = "Which label does Birchnet hold?"
    plain = FusionWeights(keyword=0.6, vector=0.4, subject=0.0)
    with_bonus = FusionWeights(keyword=0.6, vector=0.4, subject=0.25)
    before = {h.chunk.id: h.score for h in _retriever(corpus, weights=plain).search(question, 5)}
    after = _retriever(corpus, weights=with_bonus).search(question, 5)
    assert after[0].chunk.subject == "Birchnet"
    for hit in after:
        bonus = 0.25 if hit.chunk.subject == "Birchnet" else 0.0
        assert hit.score == pytest.approx(before[hit.chunk.id] + bonus)


def test_an_exact_code_is_found_by_its_keywords_alone(corpus: Assistant) -> None:
    # A part code means nothing to an embedding model; BM25 matches it as written.
    for weights in (FusionWeights(), FusionWeights(keyword=1.0, vector=0.0, sentence_vector=0.0)):
        hits = _retriever(corpus, weights=weights).search("XR-7731-B", 3)
        assert hits[0].chunk.doc_id == "parts.md"
        assert "XR-7731-B" in hits[0].chunk.text
        assert hits[0].keyword_rank == 1


def test_with_vector_weight_zero_the_order_follows_bm25(corpus: Assistant) -> None:
    store = corpus.engine.store
    question = "pump seal pressure harbour"
    only_keywords = FusionWeights(keyword=1.0, vector=0.0, sentence=0.0, sentence_vector=0.0, subject=0.0)
    retriever = _retriever(corpus, weights=only_keywords, max_per_section=1000, duplicate_overlap=1.01)
    hits = retriever.search(question, 8)
    scores = store.keyword.scores(store.keyword.query(question, retriever.widen))
    best = float(scores.max())
    expected = sorted((r for r in range(len(scores)) if scores[r] > 0), key=lambda r: -scores[r])[: len(hits)]
    assert [h.keyword_score for h in hits] == pytest.approx([float(scores[r]) for r in expected])
    assert [h.score for h in hits] == pytest.approx([float(scores[r]) / best for r in expected])
    assert [h.keyword_rank for h in hits] == list(range(1, len(hits) + 1))


def test_with_keyword_weight_zero_the_order_follows_the_cosine(corpus: Assistant) -> None:
    store = corpus.engine.store
    question = "pump seal pressure harbour"
    only_vectors = FusionWeights(keyword=0.0, vector=1.0, sentence=0.0, sentence_vector=0.0, subject=0.0)
    retriever = _retriever(corpus, weights=only_vectors, max_per_section=1000, duplicate_overlap=1.01)
    hits = retriever.search(question, 6)
    query = corpus.embedder.embed([question])[0]
    cosine = store.vectors_of(np.arange(store.size)) @ query
    assert [h.score for h in hits] == pytest.approx(sorted(cosine, reverse=True)[: len(hits)], abs=1e-5)
    assert [h.vector_score for h in hits] == pytest.approx([h.score for h in hits], abs=1e-5)


def test_one_headed_section_fills_at_most_max_per_section_places(corpus: Assistant) -> None:
    question = "pump maintenance pump station"
    capped = corpus.engine.retriever.search(question, 6)
    places = [(h.chunk.doc_id, h.chunk.section_path) for h in capped]
    handbook = [p for p in places if p[0] == "pumps.md"]
    assert 1 <= len(handbook) <= corpus.engine.retriever.max_per_section
    assert "harbour.md" in {h.chunk.doc_id for h in capped}  # the other document gets a place
    # Without the cap the handbook's section takes more places than the cap allows.
    uncapped = _retriever(corpus, max_per_section=1000).search(question, 6)
    assert sum(h.chunk.doc_id == "pumps.md" for h in uncapped) > corpus.engine.retriever.max_per_section


def test_near_duplicate_chunks_are_held_back(tmp_path: Path) -> None:
    copy = CLUSTERS.replace("Northern Alliance", "Northern League")
    assistant = _index(tmp_path, {"clusters.md": CLUSTERS, "copy/clusters.md": copy})
    hits = assistant.engine.retriever.search("Which label does Cedarlink hold?", 4)
    cedar = [h for h in hits if h.chunk.subject == "Cedarlink"]
    assert len(cedar) == 1, [(h.chunk.doc_id, h.chunk.subject) for h in hits]
    both = _retriever(assistant, duplicate_overlap=1.01).search("Which label does Cedarlink hold?", 4)
    assert sum(h.chunk.subject == "Cedarlink" for h in both) == 2


def test_a_list_question_about_a_section_brings_the_first_chunk_of_each_subsection(corpus: Assistant) -> None:
    # "Which clusters are in Valdoria?": the subsections' text never says "cluster" or
    # "Valdoria"; the headings say the three belong to the region.
    hits = corpus.engine.retriever.search("Which clusters are based in Valdoria?", 5)
    items = [h for h in hits if h.item_of]
    assert {h.item_of for h in items} == {"1. Valdoria"}
    assert {h.chunk.section_path[-1] for h in items} == {"1.1. Quillmark", "1.2. Ostrava Works", "1.3. Pennard"}
    # Each item is its subsection's opening chunk, and the items follow the best hit at once.
    store = corpus.engine.store
    for hit in items:
        rows = store.rows_of_document(hit.chunk.doc_id)
        first = next(c for c in map(store.chunk, rows) if c.section_path == hit.chunk.section_path)
        assert hit.chunk.id == first.id
    assert max(h.rank for h in items) <= len(items) + 1
    # A question that asks for no list keeps the plain ranking.
    single = corpus.engine.retriever.search("Which cluster is based in Valdoria?", 5)
    assert not any(h.item_of for h in single)


def test_a_deleted_document_is_never_retrieved(tmp_path: Path) -> None:
    assistant = _index(tmp_path, {"parts.md": SPARE_PARTS, "clusters.md": CLUSTERS})
    assert assistant.engine.retriever.search("hydraulic pump seal XR-7731-B", 3)[0].chunk.doc_id == "parts.md"
    (tmp_path / "corpus" / "parts.md").unlink()
    assistant.index()
    for question in ("hydraulic pump seal XR-7731-B", "spare parts catalogue warehouse", "pump"):
        hits = assistant.engine.retriever.search(question, 5)
        assert all(h.chunk.doc_id != "parts.md" for h in hits), question


# -- on the real index, with questions outside the gold set ---------------------------------


@pytest.mark.parametrize(
    ("question", "subject", "fact"),
    [
        ("How many patents does Eurecat hold?", "Eurecat", "73 patents"),
        ("Which label does Cluj IT Cluster hold?", "Cluj IT Cluster", "Silver Label"),
        ("How many R&D projects has ViaMéca labelled since 2005?", "Viameca", "415"),
    ],
)
def test_the_section_about_the_cluster_asked_about_ranks_first(
    assistant: Assistant, question: str, subject: str, fact: str
) -> None:
    hits = assistant.engine.retriever.search(question, 5)
    assert hits[0].chunk.subject == subject, _subjects(hits)
    assert fact in hits[0].chunk.text


def test_a_list_question_about_a_region_brings_its_clusters_as_items(assistant: Assistant) -> None:
    hits = assistant.engine.retriever.search("Which clusters represent Catalonia in the partnership?", 5)
    items = {h.chunk.subject for h in hits if h.item_of}
    assert {h.item_of for h in hits if h.item_of} == {"3.3.4. Catalonia"}
    assert {"Eurecat", "CEP"} <= items
