"""The project's text tools: what a question or document reads as, and its terms.

`analyze` turns text into the terms every stage matches on (the keyword index, the question
profile, the rerank, the answerers): words lower-cased, accent-folded, without stop words,
Snowball-stemmed. `fold` is the one accent folding.

Text as received -> text as read (`visible_text`): code points that are not text are taken out.

Questions arrive from browsers, OpenAI clients, Slack and a terminal. Some carry code points
that no person typed and no reader sees: NUL and other control characters, zero-width and
other format characters (U+200B, U+FEFF, U+2060 ...), and lone surrogates, the half of a
character that a client cut in two (a JSON `"\\ud83d"` is half an emoji; a terminal's
undecodable byte arrives in `sys.argv` as one too). A lone surrogate cannot even be encoded as
UTF-8, so left in, it fails the tokenizer, SQLite and the response.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

import Stemmer

# Format characters that shape text rather than hide in it: the zero-width non-joiner and
# joiner spell words in Persian and Indic scripts and build emoji sequences. Kept inside text,
# yet on their own they are nothing to read.
_JOINERS = "\u200c\u200d"
_UNREAD = frozenset(["Cc", "Cf", "Cs"])
_EDGES = re.compile(rf"^[\s{_JOINERS}]+|[\s{_JOINERS}]+$")


def _kept(char: str) -> bool:
    return char.isspace() or char in _JOINERS or unicodedata.category(char) not in _UNREAD


def visible_text(text: str) -> str:
    """Returns `text` without control, format and lone surrogate code points, edges trimmed.

    Whitespace (tab, line breaks) and the zero-width joiners inside words are kept. The result
    is empty when nothing readable is left: "\\x00", "\\u200b\\ufeff" or "\\ud800" alone.
    """
    if text.isascii() and text.isprintable():  # most text: nothing to take out
        return text.strip()
    return _EDGES.sub("", "".join(c for c in text if _kept(c)))


# ------------------------------------------------------------------------------- shapes

# A word as names are spelt: inner apostrophes, ampersands, dots, pluses and hyphens kept
# ("AT&T", "Pool-Net", "e.V.", "C++"), edge punctuation left out.
NAME_TOKEN = re.compile(r"[^\W_][\w'’&.+-]*[^\W_]|[^\W_]")
# What opens a list item: a bullet, "1." / "(2)" / "3)", or "a)" / "b.".
LIST_MARKER = r"(?:[-*+•✓√○o·]|\(?\d{1,2}[.)]|[a-z][.)])"
# A negation: "not", "never", "failed" ... or a contracted "n't" ("didn't", which has no word
# boundary before its "n").
NEGATION = re.compile(r"\b(?:not|no|never|none|nor|neither|without|cannot|lack|fail(?:ed|s)?)\b|n't\b", re.IGNORECASE)


# ------------------------------------------------------------------------------- terms

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
    ]
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


class _Unaccent(dict[int, str | None]):
    """A str.translate table that drops combining marks, filled as characters are first seen."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        value = None if unicodedata.combining(char) else char
        self[code] = value
        return value


_UNACCENT = _Unaccent()


def fold(text: str) -> str:
    """Lower-cases and strips accents: "Clúster Südwest" -> "cluster sudwest"."""
    lowered = text.lower()
    if lowered.isascii():  # most text: nothing to decompose (and this runs on every query)
        return lowered
    return unicodedata.normalize("NFKD", lowered).translate(_UNACCENT)


def words(text: str) -> list[str]:
    """Splits folded text into words, splitting and joining hyphenated ones."""
    out: list[str] = []
    for match in _WORD.finditer(fold(text)):
        word = match.group(0).replace("’", "'")
        if "'" in word:
            word = word.split("'")[0]  # "cluster's" -> "cluster"
        if "-" in word:
            parts = [p for p in word.split("-") if p]
            out.extend(parts)
            out.append("".join(parts))
        elif word:
            out.append(word)
    return out


def analyze(text: str) -> list[str]:
    """Returns the terms of a text: words without stopwords, stemmed."""
    if len(text) <= _REMEMBERED_CHARS:
        return list(_remembered(text))
    return _analyzed(text)


def _analyzed(text: str) -> list[str]:
    kept = [w for w in words(text) if w not in STOPWORDS]
    return list(_stemmer().stemWords(kept))


# Answering analyses the same sentences of the same passages question after question (the
# extractive answerer's evidence, the reader's first pass): remembered, they cost a lookup.
# Only short texts (sentences, headings, questions): whole chunks pass once, when indexed.
# A few MB at most: 4,096 texts of at most 300 characters.
_REMEMBERED_CHARS = 300


@lru_cache(maxsize=4096)
def _remembered(text: str) -> tuple[str, ...]:
    return tuple(_analyzed(text))


MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


def text_pieces(text: str, words: int = 4) -> Iterator[str]:
    """Cuts a finished text into small pieces (a few words each), as streamed text arrives."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    for i in range(0, len(tokens), words):
        yield "".join(tokens[i : i + words])
