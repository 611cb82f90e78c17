from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from assistant.embedding import Embedder, SentenceTransformerEmbedder
from assistant.ingest import tokens
from assistant.ingest.chunking import (
    Chunker,
    _page_finder,
    _sections_at,
    _token_starts,
    embedding_text,
    split_sentences,
)
from assistant.ingest.documents import SourceFile, load_document, scan_corpus
from assistant.records import Document, Page, Section, Sentence
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


def test_list_markers_between_sentences_never_push_a_chunk_past_max_tokens() -> None:
    # Found by the property test (tests/hostile): the sentences fit, but the "- " markers, a
    # fragment too short to be a sentence and the spaces before numbers between them did not.
    text = "the the the the the the the the the. the the the 36,000 the\n- 1. 36,000 the\n- –. 36,000 "
    doc = Document(id="x.txt", title="X", text=text, sections=(), content_hash="0", language="en")
    chunks = Chunker(17, 25).chunk(doc)
    assert all(tokens.count_tokens(c.text) == c.tokens <= 25 for c in chunks), [(c.tokens, c.text) for c in chunks]
    assert "36,000 the\n- –. 36,000" in "".join(c.text for c in chunks)  # nothing is lost


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


class CountingText(str):
    """A text that counts the characters read through indexing and slicing: work on the text."""

    read = 0

    def __getitem__(self, key: int | slice) -> str:  # type: ignore[override]
        piece = super().__getitem__(key)
        CountingText.read += len(piece)
        return piece


def _characters_read(function: Callable[[], object]) -> int:
    CountingText.read = 0
    function()
    return CountingText.read


def test_a_paragraph_wrapped_over_thousands_of_lines_is_read_once() -> None:
    # Lower-case lines that carry on, as a PDF export wraps them: each line break used to copy
    # the whole paragraph so far to look at its last character (quadratic in its length).
    words = [f"word{i % 97}" for i in range(30_000)]
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    plain = "\n".join(lines)
    text = CountingText(plain)
    sentences: list[Sentence] = []
    read = _characters_read(lambda: sentences.extend(split_sentences(text)))
    assert sentences == split_sentences(plain) == [Sentence(0, len(plain))]
    assert read <= 2 * len(plain), read  # it was 1,250 times the text


def test_a_long_line_of_abbreviations_is_read_once() -> None:
    # Every "Dr." used to re-read the sentence from its start to find the word before the period.
    plain = "Dr. " * 20_000 + "Smith spoke. Then he left."
    text = CountingText(plain)
    sentences: list[Sentence] = []
    read = _characters_read(lambda: sentences.extend(split_sentences(text)))
    assert [plain[s.start : s.end] for s in sentences] == [plain[: -len(" Then he left.")], "Then he left."]
    assert sentences == split_sentences(plain)
    assert read <= 2 * len(plain), read  # it was 10,000 times the text


class CountingTuple(tuple):  # type: ignore[type-arg]
    """A tuple that counts how many of its items are read."""

    read = 0

    def __iter__(self) -> Iterator[object]:
        for item in super().__iter__():
            CountingTuple.read += 1
            yield item

    def __getitem__(self, key: object) -> object:  # type: ignore[override]
        CountingTuple.read += 1
        return super().__getitem__(key)  # type: ignore[index]


def _long_structured_document(headings: int, pages: int = 0) -> Document:
    # Chapters of sections of paragraphs: a heading every few hundred characters.
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    chapter: Section | None = None
    for k in range(headings):
        level = 1 if k % 10 == 0 else 2
        title = f"{'Chapter' if level == 1 else 'Part'} {k}"
        body = f"{title}\nThe part number {k} says what it says, once and plainly. It ends here.\n\n"
        path = (title,) if level == 1 else ((chapter.title,) if chapter else ()) + (title,)
        section = Section(title, level, offset, offset + len(body), path, title)
        sections.append(section)
        parts.append(body)
        offset += len(body)
        if level == 1:
            chapter = section
    # Chapters end where the next chapter begins.
    chapters = [s for s in sections if s.level == 1]
    ends = {c.start: (chapters[i + 1].start if i + 1 < len(chapters) else offset) for i, c in enumerate(chapters)}
    sections = [replace(s, end=ends[s.start]) if s.level == 1 else s for s in sections]
    text = "".join(parts)
    size = -(-len(text) // pages) if pages else 0
    page_list = tuple(Page(n + 1, n * size, min(len(text), (n + 1) * size)) for n in range(pages))
    return Document(
        id="long.txt",
        title="Long",
        text=text,
        sections=CountingTuple(sections),
        content_hash="0",
        language="en",
        pages=CountingTuple(page_list),
    )


def test_sections_and_pages_of_a_long_document_are_found_in_one_sweep() -> None:
    # section_at per leaf and page_at per chunk read every section (page) each time: with a
    # heading every hundred characters that was quadratic in the document's length.
    document = _long_structured_document(2_000, pages=500)
    CountingTuple.read = 0
    chunks = Chunker(200, 240).chunk(document)
    read = CountingTuple.read
    plain = replace(document, sections=tuple(document.sections), pages=tuple(document.pages))
    for chunk in chunks:
        section = plain.section_at(chunk.start)
        assert chunk.section_path == (section.path if section else ()), chunk.id
        assert chunk.page == plain.page_at(chunk.start), chunk.id
    assert {c.page for c in chunks} == set(range(1, 501))
    assert read <= 20 * (len(document.sections) + len(document.pages)), read  # it was 4.5 million


def test_section_sweep_agrees_with_section_at_on_any_sections() -> None:
    # Overlapping, unordered, same-level and empty sections: the sweep gives section_at's answer.
    rng = random.Random(5)
    for _ in range(200):
        sections = []
        for k in range(rng.randint(0, 12)):
            start = rng.randint(0, 60)
            sections.append(Section(f"s{k}", rng.randint(1, 3), start, start + rng.randint(0, 30), (f"s{k}",), ""))
        document = Document("x", "X", "x" * 100, tuple(sections), "0", "en")
        offsets = sorted(rng.sample(range(100), 20))
        assert _sections_at(document.sections, offsets) == [document.section_at(o) for o in offsets]


def test_page_finder_agrees_with_page_at_for_ordered_and_other_pages() -> None:
    rng = random.Random(6)
    for _ in range(200):
        pages: list[Page] = []
        offset = 0
        for n in range(rng.randint(0, 8)):
            offset += rng.randint(0, 3)  # gaps and empty pages, as blank PDF pages give
            end = offset + rng.randint(0, 10)
            pages.append(Page(n + 1, offset, end))
            offset = end
        if rng.random() < 0.3:
            rng.shuffle(pages)  # not in order: looked up as page_at does
        document = Document("x", "X", "x" * 100, (), "0", "en", tuple(pages))
        find = _page_finder(document.pages)
        assert [find(o) for o in range(-1, 100)] == [document.page_at(o) for o in range(-1, 100)]


def test_token_starts_are_the_offsets_tiktoken_decodes() -> None:
    # Multi-byte characters whose bytes are split across tokens (emoji, CJK, accents).
    encoding = tokens.encoding()
    text = "Smörgåsbord 🙂🙂 東京都 naïve café — x" * 50 + "🧑‍🤝‍🧑" * 30 + " plain words" * 40
    ids = encoding.encode_ordinary(text)
    _, offsets = encoding.decode_with_offsets(ids)
    for every in (1, 3, 7, 200):
        assert _token_starts(encoding, ids, every) == offsets[::every], every


def test_an_endless_line_is_cut_without_an_object_per_token() -> None:
    # A file of words without punctuation is one sentence of millions of tokens: cutting it
    # used to hold a bytes object and an offset per token (93 times the text for 1.3 MB).
    rng = random.Random(2)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)
    ]
    text = " ".join(rng.choice(vocabulary) for _ in range(200_000))
    document = Document("x.txt", "X", text, (), "0", "en")
    tokens.encoding()  # loaded before measuring
    tracemalloc.start()
    try:
        chunks = Chunker(200, 240).chunk(document)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(chunks) > 3000 and all(c.tokens <= 240 for c in chunks)
    assert peak <= 25 * len(text), peak / len(text)
