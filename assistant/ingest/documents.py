"""Corpus files -> Document records: text, title, sections with offsets, language, hash.

One loader per format, chosen by file suffix (`.txt`, `.md`/`.markdown`, `.pdf`). A file that
cannot be used raises `CorpusError` with the reason and what to do; the indexer reports it and
goes on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import resource
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from assistant.errors import CorpusError
from assistant.records import Document, Page, Section

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | PDF_SUFFIXES

# Lines that web pages and exported files carry but that say nothing.
BOILERPLATE = re.compile(
    r"^\s*(scroll to top|back to top|skip to (main )?content|no comments|\d+ comments?|"
    r"read more|related posts|all news|share( this)?|print|menu|home|next|previous|"
    r"leave a (comment|reply)|posted in .*|tags?:.*)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SourceFile:
    """A corpus file before parsing: enough to tell whether it changed."""

    path: Path
    doc_id: str
    size: int
    content_hash: str


def scan_corpus(corpus_dir: Path) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Lists the corpus files with their hashes, and the files skipped before parsing."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {corpus_dir} does not exist: create it and put documents in it, "
            "or set ASSISTANT_CORPUS_DIR",
            corpus_dir,
        )
    files: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(_walk(corpus_dir)):
        doc_id = path.relative_to(corpus_dir).as_posix()
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            skipped.append((doc_id, f"unsupported file type '{suffix or path.name}'"))
            continue
        data = path.read_bytes()
        files.append(SourceFile(path, doc_id, len(data), hashlib.sha256(data).hexdigest()))
    return files, skipped


def _walk(folder: Path) -> Iterator[Path]:
    for path in folder.iterdir():
        if path.name.startswith("."):  # .DS_Store, .git, editor swap files
            continue
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)
        elif path.is_file():
            yield path


def load_document(
    source: SourceFile,
    *,
    max_file_mb: float = 50.0,
    pdf_timeout_s: float = 60.0,
    pdf_memory_mb: int = 1024,
) -> Document:
    """Reads one corpus file into a Document, or raises CorpusError saying why it can't."""
    path = source.path
    if source.size == 0:
        raise CorpusError("empty file", path)
    if source.size > max_file_mb * 1024 * 1024:
        raise CorpusError(
            f"{source.size / 1024 / 1024:.0f} MB, over the {max_file_mb:g} MB limit (ASSISTANT_MAX_FILE_MB)",
            path,
        )
    suffix = path.suffix.lower()
    pages: tuple[Page, ...] = ()
    if suffix in PDF_SUFFIXES:
        page_texts = extract_pdf(path, timeout_s=pdf_timeout_s, memory_mb=pdf_memory_mb)
        text, pages = _join_pages(page_texts)
        if not text.strip():
            raise CorpusError("no extractable text (a scanned or image-only PDF?)", path)
    else:
        text = _decode_text(path.read_bytes(), path)
    markdown = suffix in MARKDOWN_SUFFIXES
    title = find_title(text, path.stem, markdown=markdown)
    sections = find_sections(text, markdown=markdown, title=title)
    return Document(
        id=source.doc_id,
        title=title,
        text=text,
        sections=sections,
        content_hash=source.content_hash,
        language=detect_language(text),
        pages=pages,
        subject=find_subject(title, text),
    )


def _decode_text(data: bytes, path: Path) -> str:
    if b"\x00" in data[:8192]:
        raise CorpusError("binary file, not text (it has NUL bytes)", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"not UTF-8 text (invalid byte at offset {exc.start}): convert it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name}`",
            path,
        ) from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CorpusError("empty file (only whitespace)", path)
    return text


def extract_pdf(path: Path, *, timeout_s: float, memory_mb: int) -> list[str]:
    """Returns the text of each page, parsed in a child process under time and memory limits."""

    def limit() -> None:  # runs in the child before exec
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
        cpu = int(timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.ingest.pdf", str(path)],
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=limit,  # noqa: PLW1509 - no threads are started before the fork
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CorpusError(f"PDF parsing took longer than {timeout_s:g} s (ASSISTANT_PDF_TIMEOUT_S)", path) from exc
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        if "MemoryError" in stderr or done.returncode in (-9, 137):
            reason = f"PDF parsing needed more than {memory_mb} MB (ASSISTANT_PDF_MEMORY_MB)"
        elif done.returncode in (-24, 152):  # SIGXCPU
            reason = f"PDF parsing took longer than {timeout_s:g} s of CPU"
        else:
            last = stderr.strip().splitlines()[-1:] or ["no message"]
            reason = f"PDF parser failed ({last[0][:160]})"
        raise CorpusError(reason, path)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CorpusError("PDF parser returned no result", path) from exc
    if "error" in result:
        raise CorpusError(str(result["error"]), path)
    return [str(page) for page in result["pages"]]


def _join_pages(page_texts: list[str]) -> tuple[str, tuple[Page, ...]]:
    parts: list[str] = []
    pages: list[Page] = []
    offset = 0
    for number, raw in enumerate(page_texts, start=1):
        page_text = raw.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        if parts:
            parts.append("\n\n")
            offset += 2
        pages.append(Page(number, offset, offset + len(page_text)))
        parts.append(page_text)
        offset += len(page_text)
    return "".join(parts), tuple(pages)


# ---------------------------------------------------------------------------------- title

_TITLE_MAX_WORDS = 15


def find_title(text: str, stem: str, *, markdown: bool = False) -> str:
    """Returns the document's title: its first title-like line, else one made from the name."""
    for raw in text.split("\n", 40)[:40]:
        line = _clean_markup(raw).strip()
        if markdown and raw.lstrip().startswith("#"):
            return line
        if len(line) < 3 or BOILERPLATE.match(line) or _is_url(line):
            continue
        # Split no further than the limit: the first line of a file may be millions of words.
        words = line.split(None, _TITLE_MAX_WORDS + 1)
        if len(words) <= _TITLE_MAX_WORDS and not line.endswith((".", ",", ";", ":")):
            return line
        break  # the first meaningful line is a sentence: there is no title line
    return _title_from_name(stem, text)


def _title_from_name(stem: str, text: str) -> str:
    # "luxembourg-materials-manufacturing-cluster-agm" -> "Luxembourg Materials Manufacturing
    # Cluster AGM": each word takes the casing the document itself uses most.
    words = [w for w in re.split(r"[-_\s]+", stem) if w]
    spellings = {m.group() for m in re.finditer(r"\w+", text)}  # no list of every word of a long file
    out = []
    for i, word in enumerate(words):
        # Prefer the most capitalised spelling the text uses: "agm" -> "AGM".
        variants = [v for v in spellings if v.lower() == word.lower()] or [word]
        best = max(variants, key=lambda v: (sum(c.isupper() for c in v), v))
        if best.islower() and (i == 0 or best not in _SMALL_WORDS):
            best = best[:1].upper() + best[1:]
        out.append(best)
    return " ".join(out) if out else stem


_SMALL_WORDS = {"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with"}


def find_subject(title: str, text: str) -> str:
    """Returns the name the document is mostly about: the title's most repeated proper phrase."""
    words = re.findall(r"[\w][\w'.-]*[\w]|\w", title)
    best, best_score = "", 0.0
    for i in range(len(words)):
        for j in range(i + 1, min(len(words), i + 6) + 1):
            phrase_words = words[i:j]
            if not all(_is_proper(w) for w in phrase_words) or not any(c.isalpha() for w in phrase_words for c in w):
                continue
            if len(phrase_words) == 1 and _used_as_common_word(phrase_words[0], text):
                continue  # "Cluster" in a title is not a name when the text says "cluster"
            # Words may be joined by "&", "and" or "-" in the text but not in the title.
            joiner = r"(?:\s*(?:&|and|-)\s*|\s+)"
            pattern = joiner.join(re.escape(w) for w in phrase_words)
            found = re.findall(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE)
            score = len(found) * len(phrase_words) ** 1.5
            if len(found) >= 2 and score > best_score:
                # The text's own spelling: "Luxembourg Materials & Manufacturing Cluster".
                best, best_score = Counter(found).most_common(1)[0][0], score
    return best


def _used_as_common_word(word: str, text: str) -> bool:
    return word.lower() != word and re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text) is not None


def _is_proper(word: str) -> bool:
    return word[:1].isupper() or any(c.isdigit() for c in word) or word[1:] != word[1:].lower()


def _is_url(line: str) -> bool:
    return bool(re.match(r"^(https?://|www\.)\S+$", line.strip()))


def _clean_markup(line: str) -> str:
    line = re.sub(r"</?[a-zA-Z][^>]*>", "", line)  # <u>Consortium</u>
    line = re.sub(r"^\s*#{1,6}\s+", "", line)
    line = re.sub(r"\s+#+\s*$", "", line)
    line = line.replace("**", "").replace("__", "")
    # Runs of blanks become one space; single spaces are left alone, so that a line of a
    # million words is not rebuilt from a million pieces.
    return re.sub(r"[ \t]{2,}|\t", " ", line).strip()


# ------------------------------------------------------------------------------- sections

# "3.3.1. Catalonia", "A.3.3.1.1. Plastipolis", "3.1 Scope", "A. Ambition"
_NUMBERED = re.compile(
    r"^[ \t]*(?P<num>(?:[A-Z]\.)?\d{1,2}(?:\.\d{1,2})+\.?|(?:[A-Z]\.)?\d{1,2}\.|[A-Z]\.)"
    r"[ \t]+(?P<title>\S.*?)[ \t]*$"
)
_ATX = re.compile(r"^[ \t]{0,3}(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_LIST_ITEM = re.compile(r"^\s*([-*+•✓√o]|\d+[.)])\s")
_HEADING_MAX_WORDS = 12
_PLAIN_HEADING_MAX_WORDS = 8


@dataclass(frozen=True)
class _Heading:
    start: int  # offset of the heading line
    level: int
    title: str
    number: str  # "3.3.1." or "" for unnumbered headings


def find_sections(text: str, *, markdown: bool = False, title: str = "") -> tuple[Section, ...]:
    """Finds numbered, Markdown and plain headings and returns the sections they open."""
    lines = _lines_with_offsets(text)
    repeated = _repeated_lines(lines)
    headings: list[_Heading] = []
    in_fence = False
    numbered_level = 0
    title_seen = False
    for i, (offset, line) in enumerate(lines):
        stripped = line.strip()
        if markdown and stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence or not stripped:
            continue
        prev_blank = i == 0 or not lines[i - 1][1].strip()
        heading = None
        if markdown:
            heading = _markdown_heading(lines, i)
        if heading is None and prev_blank:
            heading = _numbered_heading(line)
        if heading is not None:
            level, head_title, number = heading
            if number:
                numbered_level = level
            headings.append(_Heading(offset, level, head_title, number))
            continue
        if not title_seen and _clean_markup(stripped) == title:
            title_seen = True  # the title line opens no section
            continue
        if not markdown and prev_blank and stripped not in repeated and _is_plain_heading(lines, i):
            headings.append(_Heading(offset, numbered_level + 1, _clean_markup(stripped), ""))
    sections = _nest(headings, len(text))
    named = names_used({s.subject for s in sections}, text)
    return tuple(replace(s, subject=s.subject if s.subject in named else "") for s in sections)


def names_something(name: str, text: str) -> bool:
    """Tells whether a heading names something: the text uses it as a name, mid-sentence.

    "Plastipolis" and "Catalonia" are written inside sentences ("... cluster Plastipolis has");
    "Summary" or "Cross-sectoral approach" only ever stand as headings.
    """
    return name in names_used([name], text)


# Where a name stands inside a sentence: after a lower-case word or a comma ("... cluster
# Plastipolis has"), or after an opening bracket or quote. Matched on the two characters before.
_NAME_CONTEXT = re.compile(r"[a-zà-ÿ,;] |.?[(\"“'‘«]")
_KEY = 4  # letters of a name that pick the places to compare it with


def names_used(names: Iterable[str], text: str) -> set[str]:
    """Returns which of the names the text uses as names, mid-sentence (see names_something).

    A name's letters are compared ignoring spaces and punctuation ("Poolnet" is "Pool-Net"),
    and only where a name can stand: the places in the text that start with a name's first
    character after a lower-case word or an opening quote, found in one pass for all the names
    and grouped by their first letters. So the work grows with the text, not with the text
    times the number of headings (a long document has thousands).
    """
    wanted: dict[str, tuple[str, str]] = {}  # name -> (its letters, folded; its first character)
    for name in names:
        target = "".join(c for c in _fold(name.lower()) if c.isalnum())
        if target and len(name.split()) <= 6:
            wanted[name] = (target, name.lstrip()[0])
    if not wanted:
        return set()
    folded = _folded_chars(text)
    alnum = {c: c.isalnum() for c in set(folded)}
    # mask[i] == "1" where folded[i] is a letter or digit; compact holds those, in order.
    mask = folded.translate({ord(c): "1" if a else "0" for c, a in alnum.items()})
    compact = folded.translate({ord(c): None for c, a in alnum.items() if not a})
    firsts = re.escape("".join(sorted({first for _, first in wanted.values()})))
    # Every place _NAME_CONTEXT allows, and a few it doesn't ("\n(" before), which the exact
    # check drops; the context is consumed and the name's first character only looked at, so
    # that consecutive places are all found.
    places = re.compile(rf"(?:[a-zà-ÿ,;] |[(\"“'‘«])(?=[{firsts}])")
    candidates: list[tuple[int, int]] = []  # (offset in text, offset in compact)
    letters, counted = 0, 0
    for match in places.finditer(text):
        start = match.end()
        if mask[start] != "1" or not _NAME_CONTEXT.fullmatch(text, max(0, start - 2), start):
            continue
        letters += mask.count("1", counted, start)
        counted = start
        candidates.append((start, letters))
    groups: dict[int, dict[str, list[tuple[int, int]]]] = {}
    used: set[str] = set()
    for name, (target, first) in wanted.items():
        size = min(len(target), _KEY)
        if size not in groups:
            groups[size] = {}
            for start, letter in candidates:
                groups[size].setdefault(compact[letter : letter + size], []).append((start, letter))
        for start, letter in groups[size].get(target[:size], ()):
            # "Ambition" is no name when written "ambition"; a name stands inside a sentence.
            if text[start] != first or not compact.startswith(target, letter):
                continue
            end = start
            for _ in range(len(target)):  # just after the name's last letter
                end = mask.index("1", end) + 1
            whole_word = (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
            if whole_word:
                used.add(name)
                break
    return used


def _folded_chars(text: str) -> str:
    # Each character lower-cased and without its accent ("É" -> "e"), one for one.
    return text.translate({ord(c): (_fold(c.lower()) or " ")[0] for c in set(text)})


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    out = []
    offset = 0
    for line in text.split("\n"):
        out.append((offset, line))
        offset += len(line) + 1
    return out


def _repeated_lines(lines: list[tuple[int, str]]) -> set[str]:
    # Page headers and footers of exported documents ("Concept note") repeat; headings don't.
    counts = Counter(line.strip() for _, line in lines if line.strip())
    return {line for line, n in counts.items() if n > 1}


def _markdown_heading(lines: list[tuple[int, str]], i: int) -> tuple[int, str, str] | None:
    line = lines[i][1]
    match = _ATX.match(line)
    if match:
        return len(match["hashes"]), _clean_markup(match["title"]), ""
    if i + 1 < len(lines) and _SETEXT.match(lines[i + 1][1]) and not _LIST_ITEM.match(line):
        level = 1 if lines[i + 1][1].strip().startswith("=") else 2
        return level, _clean_markup(line), ""
    return None


def _numbered_heading(line: str) -> tuple[int, str, str] | None:
    match = _NUMBERED.match(line)
    if not match:
        return None
    number, title = match["num"], _clean_markup(match["title"])
    if re.search(r"\t\s*\d+\s*$", match["title"]):  # a table-of-contents entry with its page
        return None
    first = title[:1]
    letter_only = re.fullmatch(r"[A-Z]\.", number) is not None
    compound = letter_only or number.rstrip(".").count(".") >= 1  # "B." or "3.2."
    if not (first.isalpha() or first in "\"'«“<" or (compound and first.isdigit())):
        return None
    if len(title) > 100:  # before splitting it into words: a line may be millions of them
        return None
    words = title.split()
    if len(words) > _HEADING_MAX_WORDS or title.endswith((",", ";")):
        return None
    if title.endswith(".") and len(words) > 10:
        return None
    if letter_only:
        return 1, f"{number} {title}", number
    parts = [p for p in number.split(".") if p.isdigit()]
    return len(parts) + 1, f"{number} {title}", number


def _is_plain_heading(lines: list[tuple[int, str]], i: int) -> bool:
    line = _clean_markup(lines[i][1])
    if len(line) > 70 or len(line) < 3:  # before splitting it into words, as above
        return False
    if not 1 <= len(line.split()) <= _PLAIN_HEADING_MAX_WORDS:
        return False
    if not line[:1].isupper() or line.endswith((".", ",", ";", ":", "!", "?", ")")):
        return False
    if BOILERPLATE.match(line) or _is_url(line) or _LIST_ITEM.match(lines[i][1]):
        return False
    if "\t" in lines[i][1]:  # a table row or a table-of-contents entry
        return False
    # The next non-empty line must be running text: a heading introduces a paragraph, while
    # signature blocks and addresses are runs of short lines.
    for _, following in lines[i + 1 : i + 4]:
        nxt = following.strip()
        if nxt:
            n_words = len(nxt.split(None, 12))  # 13 stands for "more than 12"
            sentence = n_words >= 6 and nxt.endswith((".", "!", "?", ":"))
            return (n_words >= 12 or sentence) and not _LIST_ITEM.match(following)
    return False


def _nest(headings: list[_Heading], text_end: int) -> tuple[Section, ...]:
    # One pass with a stack: a heading's section ends where the next heading of its level or
    # above begins (linear, so a document with thousands of headings stays fast).
    ends = [text_end] * len(headings)
    open_sections: list[int] = []
    paths: list[tuple[str, ...]] = []
    for k, heading in enumerate(headings):
        while open_sections and headings[open_sections[-1]].level >= heading.level:
            ends[open_sections.pop()] = heading.start
        parent = paths[open_sections[-1]] if open_sections else ()
        paths.append((*parent, heading.title))
        open_sections.append(k)
    sections = []
    for k, heading in enumerate(headings):
        subject = heading.title[len(heading.number) :].strip() if heading.number else heading.title
        sections.append(Section(heading.title, heading.level, heading.start, ends[k], paths[k], subject))
    return tuple(sections)


# ------------------------------------------------------------------------------- language

_STOPWORDS = {
    "en": [
        "the",
        "and",
        "of",
        "to",
        "in",
        "is",
        "that",
        "for",
        "are",
        "with",
        "as",
        "on",
        "by",
        "this",
        "it",
        "be",
        "from",
        "has",
        "have",
        "was",
        "an",
    ],
    "sv": [
        "och",
        "att",
        "det",
        "som",
        "en",
        "på",
        "är",
        "av",
        "för",
        "med",
        "till",
        "den",
        "har",
        "de",
        "inte",
        "om",
        "ett",
        "vi",
        "kan",
    ],
    "de": [
        "der",
        "die",
        "und",
        "in",
        "den",
        "von",
        "zu",
        "das",
        "mit",
        "sich",
        "des",
        "auf",
        "für",
        "ist",
        "im",
        "dem",
        "nicht",
        "ein",
        "eine",
    ],
    "fr": [
        "le",
        "la",
        "les",
        "de",
        "des",
        "et",
        "en",
        "un",
        "une",
        "du",
        "est",
        "pour",
        "que",
        "dans",
        "qui",
        "au",
        "sur",
        "par",
        "pas",
    ],
    "es": [
        "el",
        "la",
        "los",
        "las",
        "de",
        "y",
        "en",
        "que",
        "un",
        "una",
        "por",
        "con",
        "para",
        "es",
        "del",
        "se",
        "al",
        "su",
    ],
    "it": [
        "il",
        "la",
        "di",
        "che",
        "e",
        "un",
        "una",
        "per",
        "in",
        "del",
        "della",
        "sono",
        "con",
        "non",
        "gli",
        "le",
        "si",
    ],
    "pt": [
        "o",
        "a",
        "os",
        "as",
        "de",
        "e",
        "do",
        "da",
        "em",
        "um",
        "uma",
        "para",
        "com",
        "que",
        "não",
        "se",
        "por",
        "no",
        "na",
    ],
    "nl": ["de", "het", "een", "en", "van", "in", "is", "op", "dat", "te", "voor", "met", "zijn", "niet", "aan", "er"],
}


def detect_language(text: str) -> str:
    """Guesses the text's language from its most common function words ("und" if unsure)."""
    words = Counter(_fold(w) for w in re.findall(r"\w+", text[:20000].lower()))
    scores = {lang: sum(words[w] for w in stop) for lang, stop in _folded_stopwords().items()}
    lang, best = max(scores.items(), key=lambda kv: kv[1])
    total = sum(words.values())
    return lang if total and best / total > 0.05 else "und"


@lru_cache(maxsize=1)
def _folded_stopwords() -> dict[str, list[str]]:
    return {lang: [_fold(w) for w in stop] for lang, stop in _STOPWORDS.items()}


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
