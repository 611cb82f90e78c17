"""Table rows read with their column names: detection, the header, rows, ticks and chunks."""

from __future__ import annotations

import pytest

from assistant.ingest import tables
from assistant.ingest.chunking import Chunker, embedding_text, split_sentences
from assistant.ingest.tables import (
    HEADER,
    Row,
    cells,
    is_header,
    read_row,
    sentence_reading,
    table_columns,
    table_rows,
)
from assistant.records import Chunk, Document, Section
from assistant.text import analyze

HEADER_LINE = "\tMembers\tNumber of SMEs\tMain theme"
ROWS = [
    "Aeroclust\t120 members\t85\tAviation and space",
    "Brightworks\t64 members\t40\tLighting",
    "Corvane\t210 members\t150\tShipbuilding",
]


def test_cells_of_tab_and_pipe_rows_and_what_is_not_a_row() -> None:
    assert cells(ROWS[0]) == ["Aeroclust", "120 members", "85", "Aviation and space"]
    assert cells("| Cluster | Members | SMEs |") == ["Cluster", "Members", "SMEs"]
    assert cells("<u>ViaMéca</u>\t160 members\t**80**") == ["ViaMéca", "160 members", "80"]
    assert cells("1.\tIntroduction") is None  # one tab: a numbered heading, not a table
    assert cells("A sentence with | one pipe.") is None
    assert cells("Plain text.") is None


def test_a_header_names_columns_and_a_row_of_figures_does_not() -> None:
    assert is_header(cells(HEADER_LINE) or [])
    assert not is_header(cells(ROWS[0]) or [])  # "85" is a figure, not a column name
    assert not is_header(["Summary", "3", "4"])  # a table of contents: page numbers
    assert not is_header(["", "", "Members"])  # one name is not a header


def test_a_row_reads_with_its_column_names_and_only_those_asked_about() -> None:
    columns = tuple(cells(HEADER_LINE) or [])
    row = cells(ROWS[1]) or []
    assert read_row(row, columns) == ("Brightworks. Members: 64 members. Number of SMEs: 40. Main theme: Lighting.")
    # "How many SMEs does Brightworks have?": the column it asks about, not the whole row.
    assert read_row(row, columns, set(analyze("SMEs"))) == "Brightworks. Number of SMEs: 40."
    # No column is named as asked, but a short value says it: "Which cluster works on lighting?"
    assert (
        read_row(row, columns, set(analyze("Which cluster works on lighting?"))) == "Brightworks. Main theme: Lighting."
    )
    # A header without its first, empty cell (a sentence's text is trimmed) still lines up.
    assert read_row(row, columns[1:]) == read_row(row, columns)
    # A header with a name over the first column: every cell is a named value.
    assert read_row(["Brightworks", "40"], ("Cluster", "SMEs", "Theme")) == "Cluster: Brightworks. SMEs: 40."
    # Empty last cells dropped by the export count as empty; a row far longer than the header does not line up.
    assert read_row(["Brightworks", "64 members"], columns) == "Brightworks. Members: 64 members."
    assert read_row(["a", "b", "c", "d", "e", "f"], columns) is None
    # A row the export wrapped over several lines: its cells are cut inside brackets.
    assert read_row(["(Lombardy regional", "S34Growth (Interreg", "Adaptive", "x"], columns) is None
    assert read_row(["Alpine Space)", "", "Alpes),", ""], columns) is None
    assert read_row(["Brightworks (BW)", "64 [2]", "40", "Lighting"], columns) is not None
    # Only the last cell cut: a long row the chunker cut in pieces, still read.
    assert read_row(["Brightworks", "64 members", "40", "Lighting (LED, lam"], columns) is not None


def test_a_row_of_ticks_lists_the_columns_it_ticks() -> None:
    columns = ("", "Aeroclust", "Brightworks", "Corvane", "Dunmore")
    # Exports tick with "x", the Cyrillic "Х" or a bullet.
    assert read_row(["D1 Smart factories", "Х", "", "x", ""], columns) == "D1 Smart factories: Aeroclust, Corvane."
    assert read_row(["D2 Robotics", "", "•", "", "3 projects"], columns) == (
        "D2 Robotics. Dunmore: 3 projects. Brightworks."
    )
    assert read_row(["D3 Nothing", "", "", "", ""], columns) is None


def _document(text: str) -> Document:
    section = Section("Partners in figures", 1, 0, len(text), ("Partners in figures",), "Partners in figures")
    return Document(id="t.txt", title="Partners", text=text, sections=(section,), content_hash="", language="en")


def _table_text(rows: int) -> str:
    body = "\n".join(f"{ROWS[i % 3].split(chr(9))[0]}{i}\t{i} members\t{i * 3}\tTheme {i}" for i in range(rows))
    return f"Partners in figures\n\n{HEADER_LINE}\n{ROWS[0]}\n\n\n{body}\n\nThe figures date from 2019.\n"


def test_the_header_is_found_above_blank_lines_and_other_rows_and_not_past_other_text() -> None:
    text = _table_text(3)
    columns_at = table_columns(text)
    columns = tuple(cells(HEADER_LINE) or [])
    assert columns_at(text.index("Corvane2")) == columns  # past blank lines and rows
    assert columns_at(text.index("Aeroclust\t120")) == columns
    assert columns_at(text.index(HEADER_LINE)) == ()  # the header itself
    assert columns_at(text.index("The figures")) == ()  # not a row
    # Text between two tables ends the first one; more than a few blank lines do too.
    other = f"{HEADER_LINE}\n{ROWS[0]}\nSome prose.\n{ROWS[1]}\n"
    assert table_columns(other)(other.index("Brightworks")) == ()
    apart = f"{HEADER_LINE}\n{ROWS[0]}" + "\n" * 8 + f"{ROWS[1]}\n"
    assert table_columns(apart)(apart.index("Brightworks")) == ()
    # A Markdown table: the rule under the header is part of it.
    markdown = "| Cluster | Members | SMEs |\n|---|---|---|\n| Aeroclust | 120 | 85 |\n"
    assert table_columns(markdown)(markdown.index("| Aeroclust")) == ("Cluster", "Members", "SMEs")


def test_a_table_of_many_rows_is_swept_once() -> None:
    # Looking up each chunk's header by walking up from its first row read the table again for
    # every chunk: quadratic in its rows.
    rows = "\n".join(f"Cluster{i}\t{i} members\t{i}\tTheme {i}" for i in range(20_000))
    text = f"Figures\n{HEADER_LINE}\n{rows}\n"
    calls = 0
    real = tables.cells

    def counting(line: str) -> list[str] | None:
        nonlocal calls
        calls += 1
        return real(line)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tables, "cells", counting)
        columns_at = table_columns(text)
        assert all(columns_at(text.index(f"Cluster{i}\t")) for i in (0, 10_000, 19_999))
    assert calls <= 20_003, calls


def test_chunks_of_a_long_table_carry_its_column_names_and_read_their_rows_with_them() -> None:
    document = _document(_table_text(60))
    chunks = Chunker(target_tokens=60, max_tokens=80).chunk(document)
    first = next(c for c in chunks if HEADER_LINE.strip() in c.text)
    later = [c for c in chunks if c.start > first.end and "\t" in c.text]
    assert later, "the table should span several chunks"
    columns = tuple(cells(HEADER_LINE) or [])
    assert first.columns == ()  # its own text holds the header row
    assert all(c.columns == columns for c in later)
    # Keyword and vector search read the column names with the rows.
    assert "Number of SMEs" in embedding_text(later[0]) and "Number of SMEs" not in later[0].text
    roles = table_rows(first)
    header_at = next(i for i, s in enumerate(first.sentences) if first.sentence_text(s) == HEADER_LINE.strip())
    assert roles[header_at] == HEADER and sentence_reading(first, header_at) is None
    assert isinstance(roles[header_at + 1], Row)
    assert sentence_reading(first, header_at + 1) == (
        "Aeroclust. Members: 120 members. Number of SMEs: 85. Main theme: Aviation and space."
    )
    label, _, smes, *_ = later[0].text.split("\t")
    assert sentence_reading(later[0], 0, set(analyze("SMEs"))) == f"{label}. Number of SMEs: {smes}."
    # Text outside the table reads as itself.
    last = chunks[-1]
    assert sentence_reading(last, len(last.sentences) - 1) == "The figures date from 2019."


def test_a_markdown_table_reads_its_rows_and_hides_its_header_and_rule() -> None:
    text = "Figures\n\n| Cluster | Members | SMEs |\n|---|:---:|---|\n| Aeroclust | 120 | 85 |\n"
    sentences = tuple(split_sentences(text))
    chunk = Chunk(
        id="m#0",
        doc_id="m",
        n=0,
        title="M",
        section_path=(),
        subject="",
        start=0,
        end=len(text),
        text=text,
        sentences=sentences,
        tokens=30,
    )
    said = [sentence_reading(chunk, i) for i in range(len(sentences))]
    assert said[0] == "Figures" and said[-1] == "Cluster: Aeroclust. Members: 120. SMEs: 85."
    assert set(said[1:-1]) == {None}  # the header row (and the rule, when it is a sentence)
