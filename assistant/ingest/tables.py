"""Rows of a table -> what they say, with the names of their columns.

A table row on its own says little: "Minalogic\t330 Members\t...\t240" does not say that 240 is
the number of SMEs; the table's first row, which names the columns, does. Documents give tables
as lines of cells separated by tabs (text exported from PDFs and office files) or by pipes
(Markdown). Here a body row is read with its column names, as a statement:

    Minalogic. Size of the Network: 330 Members. ... Number of SMEs: 240.

and a row of ticks reads as the columns it ticks ("D4 Collaborative and mobile enterprises:
Minalogic, EURECAT."). The chunker gives a chunk whose rows' header lies in an earlier chunk
those column names (`Chunk.columns`), so that keyword and vector search find "How many SMEs does
Minalogic have?" in Minalogic's row; the answerers read rows as statements, and never offer a
header row (a list of column names) as an answer.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from assistant.records import Chunk
from assistant.text import analyze

# A cell that only ticks its row and column ("x", the Cyrillic "х" of some exports, "•").
TICKS = frozenset({"x", "X", "х", "Х", "×", "•", "✓", "✔"})
_MARKDOWN_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_NUMBER = re.compile(r"^[\d\s.,%/+-]*$")
_MARKUP = re.compile(r"</?[a-zA-Z][^<>]{0,40}>|\*\*|__")
MAX_HEADER_WORDS = 8  # a column name is short
MAX_BLANK_LINES = 5  # blank lines a table may hold between two rows


def cells(line: str) -> list[str] | None:
    """Returns the cells of a table row (tabs or Markdown pipes), or None for other text.

    A row has at least three cells; a line with one tab ("1.\tIntroduction") is not a table.
    """
    line = line.strip("\r\n")
    if "\t" in line:
        parts = line.split("\t")
    elif line.lstrip().startswith("|") and line.count("|") >= 3:
        parts = line.strip().strip("|").split("|")
    else:
        return None
    # Exports keep inline markup in cells: "<u>ViaMéca</u>", "**Plastipolis**".
    parts = [_MARKUP.sub("", c).strip() for c in parts]
    return parts if len(parts) >= 3 else None


def is_rule(line: str) -> bool:
    """Tells whether a line is Markdown's rule under a table's header ("|---|:--:|")."""
    return bool(_MARKDOWN_RULE.match(line)) and "-" in line


def is_header(row: list[str]) -> bool:
    """Tells whether a row can name columns: two or more short names, none a bare number."""
    named = [c for c in row if c]
    return (
        len(named) >= 2
        and all(len(c.split()) <= MAX_HEADER_WORDS for c in named)
        and not any(_NUMBER.match(c) for c in named)
    )


def read_row(row: Sequence[str], columns: tuple[str, ...], wanted: Collection[str] = ()) -> str | None:
    """Returns a body row as a statement with its column names, or None when they do not line up.

    A header whose first cell is empty names the other columns; the row's first cell is then
    what the row is about. Ticked cells list their columns; empty cells say nothing. A row the
    export wrapped over several lines (a cell, not the last, cut inside brackets) is a fragment,
    not read. When some column names share a term with `wanted` (a question's terms), only
    those columns are told: "Minalogic. Number of SMEs: 240." for "How many SMEs does Minalogic
    have?"; else when some short values do ("Minalogic. Size of the Network: 330 Members." for
    "How many members ...?").
    """
    filled = [c for c in row if c]
    # The last cell may be cut by the chunker (a row longer than a chunk is cut in pieces).
    if not columns or len(row) > len(columns) + 1 or any(_cut(c) for c in filled[:-1]):
        return None
    if len(row) == len(columns) + 1 and columns[0]:
        columns = ("", *columns)  # the header leaves the rows' first column unnamed (or lost its tab)
    row = [*row, *[""] * (len(columns) - len(row))]  # exports drop a row's empty last cells
    label = ""
    pairs = list(zip(columns, row, strict=False))
    if not columns[0]:
        label, pairs = row[0], pairs[1:]
    if wanted:
        wanted = set(wanted)
        asked = [(n, v) for n, v in pairs if v and set(analyze(n)) & wanted] or [
            # Or a short value that says what it counts: "330 Members" for "How many members ...?".
            (n, v)
            for n, v in pairs
            if len(v.split()) <= MAX_HEADER_WORDS and set(analyze(v)) & wanted
        ]
        pairs = asked or pairs
    ticked = [name for name, value in pairs if value in TICKS and name]
    stated = [f"{name}: {value}." if name else f"{value}." for name, value in pairs if value and value not in TICKS]
    if not stated and not ticked:
        return None
    parts = [*stated, f"{', '.join(ticked)}."] if ticked else stated
    if label:
        return f"{label}{':' if ticked and not stated else '.'} {' '.join(parts)}"
    return " ".join(parts)


def _cut(cell: str) -> bool:
    # A cell that opens a bracket it does not close, or closes one it did not open, was wrapped
    # over several lines by the export ("S34Growth (Interreg" / "Europe)"): its row is a fragment.
    depth = 0
    for c in cell:
        depth += (c in "([") - (c in ")]")
        if depth < 0:
            return True
    return depth != 0


def table_columns(text: str) -> Callable[[int], tuple[str, ...]]:
    """Returns a function: offset of a table's body row in `text` -> the column names its header
    row gives (() for other offsets, the header row itself included). One sweep over the lines.

    The header is a table's first row. Blank lines between rows (page breaks of an export) do
    not end a table; any other text does.
    """
    bodies: list[tuple[int, int, tuple[str, ...]]] = []  # (first offset after the header, end, columns)
    columns: tuple[str, ...] | None = None  # None: not in a table
    body_start = body_end = blanks = 0
    position = 0
    while position <= len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        line = text[position:end]
        blank, rule = not line.strip(), is_rule(line)
        row = None if blank or rule else cells(line)
        if columns is not None and (blank or rule):
            blanks += blank
        elif row is not None and columns is not None and blanks <= MAX_BLANK_LINES:
            body_end, blanks = end, 0
        else:
            if columns:
                bodies.append((body_start, body_end, columns))
            columns = None
            if row is not None:
                columns = tuple(row) if is_header(row) else ()
                body_start = body_end = end + 1
                blanks = 0
        position = end + 1
    if columns:
        bodies.append((body_start, body_end, columns))
    starts = [b[0] for b in bodies]

    def columns_at(offset: int) -> tuple[str, ...]:
        k = bisect_right(starts, offset) - 1
        return bodies[k][2] if k >= 0 and offset < bodies[k][1] else ()

    return columns_at


@dataclass(frozen=True)
class Row:
    """A table's body row: its cells, and the names of its columns (() when unknown)."""

    cells: tuple[str, ...]
    columns: tuple[str, ...]


HEADER = "header"  # the role of a table's header row: column names, not a statement


@lru_cache(maxsize=4096)
def table_rows(chunk: Chunk) -> tuple[Row | str | None, ...]:
    """Returns, per sentence of a chunk, its place in a table: a body `Row`, `HEADER`, or None
    for text outside tables (a Markdown rule under a header counts as part of the header)."""
    out: list[Row | str | None] = []
    columns: tuple[str, ...] = chunk.columns
    in_table = False
    for index, sentence in enumerate(chunk.sentences):
        text = chunk.sentence_text(sentence)
        row = cells(text)
        if is_rule(text):
            out.append(HEADER)
            continue
        if row is None:
            out.append(None)
            in_table = False
            continue
        if not in_table and not (index == 0 and columns):
            # The first row of a table that begins inside the chunk names its columns.
            columns = tuple(row) if is_header(row) else ()
            if columns:
                in_table = True
                out.append(HEADER)
                continue
        in_table = True
        out.append(Row(tuple(row), columns))
    return tuple(out)


def sentence_reading(chunk: Chunk, index: int, wanted: Collection[str] = ()) -> str | None:
    """Returns what sentence `index` of a chunk says: its text, or a table row read with its
    column names (those `wanted` asks about, when some are); None for a table's header row."""
    if not chunk.columns and "\t" not in chunk.text and "|" not in chunk.text:
        return chunk.sentence_text(chunk.sentences[index])  # no table here
    role = table_rows(chunk)[index]
    if role == HEADER:
        return None
    text = chunk.sentence_text(chunk.sentences[index])
    if isinstance(role, Row):
        return read_row(role.cells, role.columns, wanted) or text
    return text
