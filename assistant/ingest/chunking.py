"""Documents -> Chunks: pieces of one section each, sized in tiktoken tokens, cut at sentences.

A chunk never crosses a heading, prefers to end at a paragraph, never cuts a sentence unless
the sentence alone is too long, and always fits the embedding model's window together with
its context header (title and section path), so the embedder never truncates it silently.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import tiktoken

from assistant.ingest import tokens
from assistant.ingest.tables import table_columns
from assistant.records import Chunk, Document, Page, Section, Sentence
from assistant.text import LIST_MARKER, MONTHS

# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = {
    "e.g",
    "i.e",
    "etc",
    "vs",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "no",
    "nr",
    "fig",
    "approx",
    "incl",
    "inc",
    "ltd",
    "co",
    "corp",
    "jr",
    "sr",
    "dept",
    "univ",
    "ca",
    "cf",
    "resp",
    "bl",
    "bla",
    "mm",
    "t.ex",
    "s.k",
    "z.b",
    "bzw",
    "p",
    "pp",
    "vol",
    "ed",
    "eds",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "p.zza",
}
_MONTH = re.compile(rf"\s+({'|'.join(m.capitalize() for m in MONTHS)})\b")
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[\w])")
_LIST_MARKER = re.compile(rf"^{LIST_MARKER}\s+")
# The same marker, matched where a sentence starts inside the text (no slice copied).
_LIST_MARKER_AT = re.compile(_LIST_MARKER.pattern.removeprefix("^"))
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_VISIBLE = re.compile(r"\S")
_ALNUM = re.compile(r"[^\W_]")  # what str.isalnum() accepts, one character


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Sentence]:
    """Splits text[start:end] into sentences (list items and headings are sentences too)."""
    end = len(text) if end is None else end
    sentences: list[Sentence] = []
    for line_start, line_end in _logical_lines(text, start, end):
        s = line_start
        for match in _END.finditer(text, line_start, line_end):
            stop = match.end()
            if _is_abbreviation(text, s, match.start()):
                continue
            sentences.append(Sentence(s, stop))
            s = stop
        sentences.append(Sentence(s, line_end))
    return [t for t in (_trim(text, x) for x in sentences) if t is not None]


def _logical_lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    # A line break ends a sentence unless the next line carries on in lower case, as
    # paragraphs wrapped by a PDF export do.
    line_start = start
    pos = start
    while pos < end:
        newline = text.find("\n", pos, end)
        if newline < 0:
            break
        following = text[newline + 1 : newline + 2]
        # The last visible character of the line so far, found backwards from the break: a
        # paragraph wrapped over thousands of lines is not copied again at every break.
        last = _last_visible(text, line_start, newline)
        continues = (
            following.islower()
            and last
            and last not in ".!?:;"
            and not _LIST_MARKER.match(text[newline + 1 : newline + 5])
        )
        if not continues:
            yield line_start, newline
            line_start = newline + 1
        pos = newline + 1
    if line_start < end:
        yield line_start, end


def _last_visible(text: str, start: int, end: int) -> str:
    # text[start:end].rstrip()[-1:], reading only the trailing whitespace.
    while end > start and text[end - 1].isspace():
        end -= 1
    return text[end - 1] if end > start else ""


def _word_before(text: str, start: int, end: int) -> str | None:
    # re.search(r"([\w.]+)$", text[start:end]).group(1), reading only the word: a window
    # growing backwards from `end`, so a long line full of periods is not rescanned from its
    # start at every one of them.
    window = 32
    while True:
        low = max(start, end - window)
        match = _WORD_BEFORE.search(text, low, end)
        if match is None:
            return None
        if match.start() > low or low == start:
            return match.group(1)
        window *= 4


def _is_abbreviation(text: str, sentence_start: int, period: int) -> bool:
    if text[period] != ".":
        return False
    word = _word_before(text, sentence_start, period)
    if word is None:
        return False
    if word.lower().rstrip(".") in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isupper():  # an initial: "J. Smith"
        return True
    if re.fullmatch(r"\d{1,2}(st|nd|rd|th)", word) and _MONTH.match(text, period + 1):
        return True  # a date written "28th. February"
    # A heading or list number such as "3.3.1." at the start of a line.
    return bool(re.fullmatch(r"(?:[A-Z]\.)?[\d.]+", word)) and not _VISIBLE.search(
        text, sentence_start, period - len(word)
    )


def _trim(text: str, sentence: Sentence) -> Sentence | None:
    s, e = sentence.start, sentence.end
    while s < e and text[s].isspace():
        s += 1
    marker = _LIST_MARKER_AT.match(text, s, e)
    if marker and e - s > marker.end() - s + 1:
        s = marker.end()
    while e > s and text[e - 1].isspace():
        e -= 1
    if e <= s or not _ALNUM.search(text, s, e):
        return None
    return Sentence(s, e)


def embedding_text(chunk: Chunk) -> str:
    """Returns what the embedder reads for a chunk: its context header, then its text."""
    return f"{chunk.header}\n{chunk.text}"


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


class Chunker:
    """Cuts documents into section-bound, sentence-aligned chunks of about `target_tokens`."""

    def __init__(
        self,
        target_tokens: int = 200,
        max_tokens: int = 240,
        fits: Callable[[str], bool] | None = None,
    ) -> None:
        if target_tokens < 16:
            raise ValueError(f"target_tokens must be at least 16, not {target_tokens}")
        if max_tokens < target_tokens:
            raise ValueError(f"max_tokens ({max_tokens}) must be at least target_tokens ({target_tokens})")
        self.target_tokens = target_tokens
        self.max_tokens = max_tokens
        # Whether the embedding model reads a text whole; None when no model is involved.
        self.fits = fits

    def settings(self) -> dict[str, object]:
        """Returns what the manifest records so that a change triggers a rebuild."""
        return {
            "target_tokens": self.target_tokens,
            "max_tokens": self.max_tokens,
            "tokenizer": "cl100k_base",
            "version": 5,
        }

    def chunk(self, document: Document) -> list[Chunk]:
        """Cuts one document into chunks, in document order."""
        chunks: list[Chunk] = []
        leaves = self._leaves(document)
        # Looked up in one sweep, not by Document.section_at per leaf (and page_at per chunk),
        # which reads every section each time: a long document has thousands.
        page_at = _page_finder(document.pages)
        columns_at = table_columns(document.text)
        for leaf, section in zip(leaves, _sections_at(document.sections, [leaf.start for leaf in leaves]), strict=True):
            path = section.path if section else ()
            subject = section.subject if section else document.subject
            sentences = split_sentences(document.text, leaf.start, leaf.end)
            if section and section.start == leaf.start:
                heading_end = document.text.find("\n", leaf.start, leaf.end)
                if heading_end < 0 or all(s.end <= heading_end for s in sentences):
                    continue  # only the heading: its title lives on in the children's paths
            for group in self._pack(document.text, sentences):
                chunk = self._make(document, group, path, subject, len(chunks), page_at, columns_at)
                for piece in self._fit(document, chunk, path, subject, page_at, columns_at):
                    chunks.append(self._renumber(piece, len(chunks)))
        return chunks

    def _leaves(self, document: Document) -> list[_Span]:
        cuts = sorted({0, len(document.text), *(s.start for s in document.sections)})
        return [_Span(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]

    def _pack(self, text: str, sentences: list[Sentence]) -> list[list[Sentence]]:
        groups: list[list[Sentence]] = []
        current: list[Sentence] = []
        size = 0
        for sentence, n in self._bounded(text, sentences):
            paragraph_break = bool(current) and "\n\n" in text[current[-1].end : sentence.start]
            # Close the chunk when the sentence would overflow it, or at a paragraph break
            # once the chunk is already well filled.
            if current and (size + n > self.target_tokens or (paragraph_break and size >= self.target_tokens * 0.6)):
                groups.append(current)
                current, size = [], 0
            current.append(sentence)
            size += n
        if current:
            groups.append(current)
        return groups

    def _bounded(self, text: str, sentences: list[Sentence]) -> Iterator[tuple[Sentence, int]]:
        # Each sentence with its size in tokens; one longer than max_tokens (a table row, a
        # run-on list, a file without punctuation) is cut every target_tokens tokens.
        encoding = tokens.encoding()
        for sentence in sentences:
            piece = text[sentence.start : sentence.end]
            ids = encoding.encode_ordinary(piece)
            if len(ids) <= self.max_tokens:
                yield sentence, len(ids)
                continue
            cuts = [*_token_starts(encoding, ids, self.target_tokens), len(piece)]
            for a, b in zip(cuts, cuts[1:], strict=False):
                trimmed = _trim(text, Sentence(sentence.start + a, sentence.start + b))
                if trimmed:
                    yield trimmed, tokens.count_tokens(text[trimmed.start : trimmed.end])

    def _make(
        self,
        document: Document,
        group: list[Sentence],
        path: tuple[str, ...],
        subject: str,
        n: int,
        page_at: Callable[[int], int | None],
        columns_at: Callable[[int], tuple[str, ...]],
    ) -> Chunk:
        start, end = group[0].start, group[-1].end
        text = document.text[start:end]
        return Chunk(
            id=f"{document.id}#{n}",
            doc_id=document.id,
            n=n,
            title=document.title,
            section_path=path,
            subject=subject,
            start=start,
            end=end,
            text=text,
            sentences=tuple(group),
            tokens=tokens.count_tokens(text),
            page=page_at(start),
            columns=columns_at(start),
        )

    def _fit(
        self,
        document: Document,
        chunk: Chunk,
        path: tuple[str, ...],
        subject: str,
        page_at: Callable[[int], int | None],
        columns_at: Callable[[int], tuple[str, ...]],
    ) -> list[Chunk]:
        # Split in two at a sentence until each piece is within max_tokens (packing counts the
        # sentences, not what lies between them: list markers, dropped fragments) and the
        # model reads it whole.
        if chunk.tokens <= self.max_tokens and (self.fits is None or self.fits(embedding_text(chunk))):
            return [chunk]
        sentences = list(chunk.sentences)
        if len(sentences) == 1:
            halves = _halve(document.text, sentences[0])
            if halves is None:
                raise ValueError(f"cannot make {chunk.id} fit max_tokens and the embedding model's window")
            sentences = list(halves)
        middle = len(sentences) // 2
        out = []
        for part in (sentences[:middle], sentences[middle:]):
            piece = self._make(document, part, path, subject, chunk.n, page_at, columns_at)
            out.extend(self._fit(document, piece, path, subject, page_at, columns_at))
        return out

    @staticmethod
    def _renumber(chunk: Chunk, n: int) -> Chunk:
        if chunk.n == n:
            return chunk
        return Chunk(
            id=f"{chunk.doc_id}#{n}",
            doc_id=chunk.doc_id,
            n=n,
            title=chunk.title,
            section_path=chunk.section_path,
            subject=chunk.subject,
            start=chunk.start,
            end=chunk.end,
            text=chunk.text,
            sentences=chunk.sentences,
            tokens=chunk.tokens,
            page=chunk.page,
            columns=chunk.columns,
        )


_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))  # UTF-8 bytes that carry on a character


def _token_starts(encoding: tiktoken.Encoding, ids: Sequence[int], every: int) -> list[int]:
    """Returns where tokens 0, every, 2 * every... start in the text, in characters.

    The offsets `encoding.decode_with_offsets(ids)` gives for those tokens, computed from the
    bytes of each run of `every` tokens instead of a bytes object and an offset per token: a
    10 MB line without punctuation is millions of tokens.
    """
    starts = []
    characters = 0
    for i in range(0, len(ids), every):
        data = encoding.decode_bytes(ids[i : i + every])
        # A token that begins inside a character starts at that character (as decode_with_offsets).
        starts.append(max(0, characters - (0x80 <= data[0] < 0xC0)))
        characters += len(data.translate(None, _CONTINUATION_BYTES))
    return starts


def _halve(text: str, sentence: Sentence) -> tuple[Sentence, Sentence] | None:
    middle = (sentence.start + sentence.end) // 2
    cut = text.rfind(" ", sentence.start, middle)
    if cut <= sentence.start:
        cut = middle
    if cut <= sentence.start or cut >= sentence.end:
        return None
    first, second = _trim(text, Sentence(sentence.start, cut)), _trim(text, Sentence(cut, sentence.end))
    if first is None or second is None:
        return None
    return first, second


def _sections_at(sections: Sequence[Section], offsets: Sequence[int]) -> list[Section | None]:
    """Returns `Document.section_at(offset)` for ascending offsets, in one sweep.

    section_at keeps, of the sections containing the offset, the one of the highest level
    and, among equals, the last: the top of a heap of the sections begun so far, ordered so,
    once those that ended are dropped.
    """
    order = sorted(range(len(sections)), key=lambda k: sections[k].start)
    begun: list[tuple[int, int]] = []  # (-level, -k)
    out: list[Section | None] = []
    i = 0
    for offset in offsets:
        while i < len(order) and sections[order[i]].start <= offset:
            heapq.heappush(begun, (-sections[order[i]].level, -order[i]))
            i += 1
        while begun and sections[-begun[0][1]].end <= offset:
            heapq.heappop(begun)  # ended before this offset, so before every later one
        out.append(sections[-begun[0][1]] if begun else None)
    return out


def _page_finder(pages: Sequence[Page]) -> Callable[[int], int | None]:
    """Returns `Document.page_at` as a binary search when the pages are in order, as PDFs give them."""
    starts = [page.start for page in pages]
    ordered = all(a.end <= b.start for a, b in zip(pages, pages[1:], strict=False)) and all(
        page.start <= page.end for page in pages
    )
    if not ordered:
        return lambda offset: next((p.number for p in pages if p.start <= offset < p.end), None)

    def page_at(offset: int) -> int | None:
        k = bisect_right(starts, offset) - 1
        return pages[k].number if k >= 0 and offset < pages[k].end else None

    return page_at
