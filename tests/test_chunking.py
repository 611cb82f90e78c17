from __future__ import annotations

import hashlib

import pytest

from assistant import tokens
from assistant.chunking import Chunker, embedding_text, split_sentences
from assistant.documents import SourceFile, load_document, scan_corpus
from assistant.embedding import Embedder, SentenceTransformerEmbedder
from assistant.records import Document
from tests.conftest import CORPUS


def _corpus() -> list[Document]:
    files, _ = scan_corpus(CORPUS)
    return [load_document(f) for f in files]


def _texts(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


def test_sentences_respect_abbreviations_numbers_and_list_items() -> None:
    text = (
        "Dr. Jan Zutavern spoke, e.g. on learning. GDP was 1.249 billion Euros. Next one!\n"
        "- To learn from each other,\n"
        "- To create the framework.\n"
        "3.3.1. Catalonia\n"
        "It is wrapped across\n"
        "two lines."
    )
    assert _texts(text) == [
        "Dr. Jan Zutavern spoke, e.g. on learning.",
        "GDP was 1.249 billion Euros.",
        "Next one!",
        "To learn from each other,",
        "To create the framework.",
        "3.3.1. Catalonia",
        "It is wrapped across\ntwo lines.",
    ]


def test_encoding_is_offline_cl100k() -> None:
    assert tokens.encoding().name == "cl100k_base"
    assert tokens.count_tokens("hello world") == 2


def test_chunks_cover_sections_without_crossing_headings() -> None:
    chunker = Chunker(160, 200)
    for doc in _corpus():
        chunks = chunker.chunk(doc)
        assert chunks, doc.id
        for n, chunk in enumerate(chunks):
            assert chunk.id == f"{doc.id}#{n}" and chunk.n == n
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert chunk.tokens == tokens.count_tokens(chunk.text)
            assert chunk.tokens <= 200
            # No heading starts strictly inside a chunk.
            for section in doc.sections:
                assert not chunk.start < section.start < chunk.end, (chunk.id, section.title)
            section = doc.section_at(chunk.start)
            assert chunk.section_path == (section.path if section else ())
            for sentence in chunk.sentences:
                assert chunk.start <= sentence.start < sentence.end <= chunk.end


def test_chunks_end_at_sentence_ends() -> None:
    chunker = Chunker(120, 160)
    doc = _corpus()[0]
    for chunk in chunker.chunk(doc):
        last = chunk.sentences[-1]
        assert last.end == chunk.end
        boundaries = {s.end for s in split_sentences(doc.text, chunk.start, chunk.end)}
        assert chunk.end in boundaries


def test_overlong_sentence_is_cut_by_tokens() -> None:
    text = "word " * 1000
    doc = Document(id="x.txt", title="X", text=text, sections=(), content_hash="0", language="en")
    chunks = Chunker(100, 120).chunk(doc)
    assert len(chunks) >= 8
    assert all(c.tokens <= 120 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        Chunker(200, 100)
    with pytest.raises(ValueError, match="at least 16"):
        Chunker(4, 100)


def test_every_corpus_chunk_fits_the_real_model_window(real_embedder: Embedder) -> None:
    """No chunk may be truncated by the embedder: its header and text fit in 256 word pieces."""
    window = real_embedder.window  # type: ignore[attr-defined]
    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2")  # the model as torch runs it
    assert window.max_tokens == reference.model.max_seq_length == 256
    # Our count is the model's own tokenizer's count.
    sample = "Clúster Digital de Catalunya has more than 40 members."
    assert window.count(sample) == len(reference.model.tokenizer(sample)["input_ids"])
    chunker = Chunker(200, 240, fits=real_embedder.fits)
    for doc in _corpus():
        for chunk in chunker.chunk(doc):
            assert window.count(embedding_text(chunk)) <= 256, chunk.id


def test_chunker_splits_what_the_model_cannot_read_whole(real_embedder: Embedder) -> None:
    # Swedish words cost the English word-piece vocabulary many pieces per tiktoken token.
    text = ("Kompetensförsörjningen och jämställdhetsarbetet inom basindustrin fortsätter. " * 40).strip()
    doc = Document(
        id="sv.txt",
        title="Sv",
        text=text,
        sections=(),
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        language="sv",
    )
    unbounded = Chunker(400, 800).chunk(doc)
    assert any(not real_embedder.fits(embedding_text(c)) for c in unbounded)
    bounded = Chunker(400, 800, fits=real_embedder.fits).chunk(doc)
    assert all(real_embedder.fits(embedding_text(c)) for c in bounded)
    assert [c.n for c in bounded] == list(range(len(bounded)))


def test_embedder_refuses_to_truncate(real_embedder: Embedder) -> None:
    # A passage to index must fit; a long question is read in windows (test_embedding_long_text).
    with pytest.raises(ValueError, match="would be truncated"):
        real_embedder.embed_spans(["token " * 400], [[(0, 5)]])


def test_sources_unchanged_by_loading() -> None:
    files, _ = scan_corpus(CORPUS)
    source: SourceFile = files[0]
    doc = load_document(source)
    assert doc.content_hash == source.content_hash
