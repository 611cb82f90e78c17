"""Property tests: offsets of chunks and sentences, and citation spans, hold for any input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.evaluation import normalise, quote_spans
from assistant.ingest import tokens
from assistant.ingest.chunking import Chunker, split_sentences
from assistant.ingest.documents import find_sections
from assistant.pipeline import Assistant
from assistant.records import Document
from assistant.text import words
from tests.conftest import CORPUS

WORDS = st.sampled_from(
    [
        "the",
        "cluster",
        "Plastipolis",
        "holds",
        "a",
        "Gold",
        "label",
        "since",
        "2013",
        "Pool-Net",
        "e.g.",
        "Dr.",
        "3.3.1.",
        "Catalonia",
        "Clúster",
        "Südwest",
        "36,000",
        "it",
        "This",
        "and",
        "or",
        "–",
        "«",
        "»",
        "“",
        "”",
        "✓",
        "•",
        "—",
        "1.",
        "A.",
        "Region",
        "Dalarna",
        "företag",
    ]
)
PUNCTUATION = st.sampled_from([" ", " ", " ", ". ", ", ", "! ", "? ", ": ", "\n", "\n\n", "\n- ", "\n# ", "\t", "\r\n"])
TEXT = st.lists(st.tuples(WORDS, PUNCTUATION), min_size=1, max_size=400).map(
    lambda pairs: "".join(w + p for w, p in pairs)
)


@settings(max_examples=150, deadline=None)
@given(TEXT)
def test_sentences_lie_in_order_inside_the_text(text: str) -> None:
    previous_end = 0
    for sentence in split_sentences(text):
        assert previous_end <= sentence.start < sentence.end <= len(text)
        assert text[sentence.start : sentence.end].strip() == text[sentence.start : sentence.end]
        previous_end = sentence.end


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.booleans(), st.integers(min_value=16, max_value=120))
def test_chunks_quote_their_document_and_respect_sections(text: str, markdown: bool, size: int) -> None:
    document = Document(
        id="p.md" if markdown else "p.txt",
        title="P",
        text=text,
        sections=find_sections(text, markdown=markdown, title="P"),
        content_hash="0",
        language="en",
    )
    chunks = Chunker(size, size + size // 2).chunk(document)
    previous_end = 0
    for n, chunk in enumerate(chunks):
        assert chunk.n == n and chunk.id == f"p.{'md' if markdown else 'txt'}#{n}"
        assert document.text[chunk.start : chunk.end] == chunk.text
        assert previous_end <= chunk.start < chunk.end
        assert tokens.count_tokens(chunk.text) == chunk.tokens <= size + size // 2
        for section in document.sections:
            assert not chunk.start < section.start < chunk.end
        for sentence in chunk.sentences:
            assert chunk.start <= sentence.start < sentence.end <= chunk.end
        previous_end = chunk.end
    for section in document.sections:
        assert 0 <= section.start < section.end <= len(text)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_quote_is_found_however_its_spacing_and_case_change(data: st.DataObject) -> None:
    text = (CORPUS / "metaindustry4-third-birthday.txt").read_text(encoding="utf-8")
    start = data.draw(st.integers(min_value=0, max_value=len(text) - 50))
    length = data.draw(st.integers(min_value=5, max_value=50))
    quote = text[start : start + length]
    if not quote.strip():
        return
    mangled = " ".join(quote.split()).upper()
    spans = quote_spans(text, mangled)
    assert spans
    assert any(normalise(text[s:e]) == normalise(quote) for s, e in spans)


VOCABULARY = sorted({w for w in words((CORPUS / "4-motors-industry-4-0-concept-note.txt").read_text()) if len(w) > 3})[
    :3000
]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=12),
    st.sampled_from(["Which", "How many", "What", "Who", ""]),
)
def test_every_citation_quotes_its_document_for_any_question(
    assistant: Assistant, terms: list[str], opener: str
) -> None:
    answer = assistant.ask(f"{opener} {' '.join(terms)}?".strip())
    for citation in answer.citations:
        text = assistant.store.document(citation.doc).text
        assert text[citation.start : citation.end] == citation.quote
        assert f"[{citation.n}]" in answer.text
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert answer.abstained == (not answer.citations)
