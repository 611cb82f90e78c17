"""Text as received -> text as read: code points that are not text are taken out.

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
