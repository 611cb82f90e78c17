from __future__ import annotations

import hashlib
import random
import re
import tracemalloc
from pathlib import Path

import pytest

from assistant.errors import CorpusError
from assistant.ingest.documents import (
    SourceFile,
    _clean_markup,
    _fold,
    detect_language,
    find_sections,
    find_title,
    load_document,
    names_used,
    scan_corpus,
)
from tests import pdf_factory
from tests.conftest import CORPUS, ROOT
from tests.test_chunking import CountingText


def _source(path: Path, corpus: Path | None = None) -> SourceFile:
    data = path.read_bytes()
    doc_id = path.relative_to(corpus).as_posix() if corpus else path.name
    return SourceFile(path, doc_id, len(data), hashlib.sha256(data).hexdigest())


def _load(name: str):
    return load_document(_source(CORPUS / name, CORPUS))


def test_scan_lists_every_corpus_file_with_a_stable_id_and_hash() -> None:
    files, skipped = scan_corpus(CORPUS)
    assert [f.doc_id for f in files] == sorted(p.name for p in CORPUS.iterdir())
    assert skipped == []
    first = files[0]
    assert first.content_hash == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_titles_skip_boilerplate_and_fall_back_to_the_file_name() -> None:
    assert _load("4-motors-industry-4-0-concept-note.txt").title == "4 Motors for the European Industry 4.0"
    # "Scroll to top" comes first in the file.
    assert _load("metaindustry4-third-birthday.txt").title == "Third birthday of MetaIndustry4"
    assert _load("smart-industri-norra-mellansverige.txt").title == "Smart Industri Norra Mellansverige"
    # The first line is a sentence, so the title comes from the name, cased as the text cases it.
    assert _load("luxembourg-materials-manufacturing-cluster-agm.txt").title == (
        "Luxembourg Materials Manufacturing Cluster AGM"
    )
    assert find_title("# Handbook\n\nText.", "x", markdown=True) == "Handbook"


def test_numbered_headings_nest_into_section_paths() -> None:
    doc = _load("4-motors-industry-4-0-concept-note.txt")
    by_title = {s.title: s for s in doc.sections}
    plastipolis = by_title["A.3.3.1.1. Plastipolis"]
    assert plastipolis.subject == "Plastipolis"
    assert plastipolis.path == (
        "A. Ambition",
        "3. Background of the partnership",
        "3.3. Consortium",
        "3.3.1. Auvergne Rhône-Alpes",
        "A.3.3.1.1. Plastipolis",
    )
    assert doc.text[plastipolis.start :].startswith("A.3.3.1.1. Plastipolis")
    catalonia = by_title["3.1.3. Catalonia"]
    assert catalonia.level == 4 and catalonia.path[-2] == "3.1. Involved regions"
    # A section ends where the next heading of its level or above begins.
    assert plastipolis.end == by_title["A.3.3.1.2. Viameca"].start
    # Table-of-contents lines ("3\t.1. Involved regions\t6") open no section.
    assert all("\t" not in s.title for s in doc.sections)
    section = doc.section_at(doc.text.index("has been awarded with the gold label"))
    assert section is not None and section.subject == "microTEC Südwest"


def test_markdown_headings_and_fenced_code() -> None:
    text = "# Guide\n\nIntro.\n\n## Setup\n\nRun it.\n\n```\n# not a heading\n```\n\nSettings\n--------\n\nMore."
    sections = find_sections(text, markdown=True)
    assert [(s.title, s.level) for s in sections] == [("Guide", 1), ("Setup", 2), ("Settings", 2)]
    assert sections[1].path == ("Guide", "Setup")
    assert text[sections[1].start : sections[1].end].startswith("## Setup")


def test_plain_headings_in_web_articles_but_not_signature_lines() -> None:
    doc = _load("smart-industri-norra-mellansverige.txt")
    titles = [s.title for s in doc.sections]
    assert "Samverkan" in titles and "Aktiviteter" in titles
    letters = _load("4-motors-industry-4-0-concept-note.txt")
    assert "Joan Romero" not in [s.title for s in letters.sections]
    # A running page footer is not a heading.
    assert "Concept note" not in [s.title for s in letters.sections]


def test_language_and_subject() -> None:
    assert _load("smart-industri-norra-mellansverige.txt").language == "sv"
    assert _load("florence-industrial-modernisation-workshop.txt").language == "en"
    assert detect_language("12 34 56") == "und"
    assert _load("metaindustry4-third-birthday.txt").subject == "MetaIndustry4"


def test_markdown_file_and_pdf_pages(tmp_path: Path) -> None:
    md = tmp_path / "guide.md"
    md.write_text("# Travel policy\n\n## Trains\n\nFirst class is allowed over 4 hours.\n", encoding="utf-8")
    doc = load_document(_source(md))
    assert doc.title == "Travel policy" and doc.sections[1].title == "Trains"

    pdf = pdf_factory.write(
        tmp_path / "report.pdf",
        pdf_factory.text_pdf([["Annual report 2024", "Revenue grew by 12 percent."], ["The board met four times."]]),
    )
    doc = load_document(_source(pdf))
    assert [p.number for p in doc.pages] == [1, 2]
    second = doc.text.index("The board met")
    assert doc.page_at(second) == 2 and doc.page_at(0) == 1
    assert doc.title == "Annual report 2024"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("corrupt.pdf", pdf_factory.corrupt_pdf(), "not a readable PDF"),
        ("truncated.pdf", pdf_factory.truncated_pdf(), "PDF"),
        ("locked.pdf", pdf_factory.encrypted_pdf(), "encrypted"),
        ("scan.pdf", pdf_factory.image_only_pdf(), "no extractable text"),
        ("latin1.txt", "Café crème, façade".encode("latin-1"), "not UTF-8"),
        ("blob.txt", b"\x00\x01\x02binary\x00", "binary"),
        ("empty.md", b"", "empty"),
        ("blank.txt", b"   \n\n  ", "empty"),
    ],
)
def test_unusable_files_raise_with_the_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = pdf_factory.write(tmp_path / name, data)
    with pytest.raises(CorpusError) as caught:
        load_document(_source(path))
    assert reason in str(caught.value)
    assert caught.value.path == path


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_bytes(b"word " * 300_000)
    with pytest.raises(CorpusError, match="over the 1 MB limit"):
        load_document(_source(path), max_file_mb=1)


def test_unsupported_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("Alpha text.", encoding="utf-8")
    files, skipped = scan_corpus(tmp_path)
    assert [f.doc_id for f in files] == ["sub/a.txt"]
    assert skipped == [("notes.docx", "unsupported file type '.docx'")]


def test_missing_corpus_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        scan_corpus(tmp_path / "nowhere")


def _names_something_before(name: str, text: str) -> bool:
    # The per-name search names_used replaced (one scan of the whole text per heading), kept
    # to check that the one-pass search decides every name alike.
    target = "".join(c for c in _fold(name.lower()) if c.isalnum())
    if not target or len(name.split()) > 6:
        return False
    folded = "".join((_fold(c.lower()) or " ")[0] for c in text)
    positions = [i for i, c in enumerate(folded) if c.isalnum()]
    compact = "".join(folded[i] for i in positions)
    first = name.lstrip()[0]
    found = compact.find(target)
    while found >= 0:
        start, end = positions[found], positions[found + len(target) - 1] + 1
        whole_word = (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
        before = text[max(0, start - 2) : start]
        if whole_word and text[start] == first and re.fullmatch(r"[a-zà-ÿ,;] |.?[(\"“'‘«]", before):
            return True
        found = compact.find(target, found + 1)
    return False


def test_names_used_decides_every_name_as_the_per_name_search_did() -> None:
    squad = ROOT.parent / "shared" / "bench" / "squad2" / "corpus"
    folders = [CORPUS] + ([squad] if squad.is_dir() else [])
    for folder in folders:
        for source in scan_corpus(folder)[0]:
            text = load_document(source).text
            # Every heading of the document, and every capitalised run of one to three words.
            names = {s.title for s in find_sections(text)} | {s.subject for s in find_sections(text)}
            names |= set(re.findall(r"\b[A-ZÀ-Þ][\w-]*(?: [A-Z][\w-]*){0,2}", text)[:400])
            expected = {name for name in names if _names_something_before(name, text)}
            assert names_used(names, text) == expected, source.doc_id
            assert expected and expected != names  # both kinds are there
    # Odd texts: names at either end, after a line break and a bracket, folded letters, names
    # split by punctuation, names inside longer words, characters that fold to letters.
    rng = random.Random(7)
    pieces = ["Pool", "Net", "pool", "-", " ", "\n", "(", "“", "'", ",", ";", "a", "É", "é", "e", "™", "_", "1", "x"]
    names = ["Pool", "PoolNet", "Poolnet", "Pool-Net", "É", "Ée", "(Pool", "  Pool", "Net 1", "E", "1x", "A", "™x", ""]
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        expected = {name for name in names if _names_something_before(name, text)}
        assert names_used(names, text) == expected, repr(text)


def test_many_headings_do_not_each_rescan_the_text() -> None:
    # A heading whose letters occur all over the text ("Ation" in "nation") used to be compared
    # at every occurrence, for every heading: work of headings times text.
    body = "the nation and the station gave a mention of that notion, in rotation. " * 2_000
    words = ("nation", "station", "mention", "notion", "rotation")
    names = {w[i:j].capitalize() for w in words for i in range(len(w)) for j in range(i + 2, len(w) + 1)}
    text = CountingText("Preface\n\n" + body + "They met Rotation Group there.")
    CountingText.read = 0
    used = names_used(names, text)
    assert used == {"Rotation"}
    assert CountingText.read <= 100, CountingText.read  # it was 700,000 characters


def test_a_file_of_one_endless_line_is_read_without_a_copy_per_word(tmp_path: Path) -> None:
    # The title, heading and spacing checks split or rebuilt the whole line word by word (21
    # times the file's size for a 1.3 MB line); they need only its first words, or its length.
    rng = random.Random(2)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)
    ]
    path = tmp_path / "endless-line.txt"
    path.write_text(" ".join(rng.choice(vocabulary) for _ in range(200_000)), encoding="utf-8")
    source = _source(path)
    tracemalloc.start()
    try:
        document = load_document(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert document.title == "Endless Line" and document.sections == ()
    assert peak <= 5 * source.size, peak / source.size


def test_markup_cleaning_turns_every_run_of_blanks_into_one_space() -> None:
    rng = random.Random(8)
    for _ in range(3000):
        line = "".join(
            rng.choice([" ", "\t", "a", "B", "**", "#", "<u>", "</u>", "."]) for _ in range(rng.randint(0, 14))
        )
        expected = re.sub(
            r"[ \t]+",
            " ",
            re.sub(r"\s+#+\s*$", "", re.sub(r"^\s*#{1,6}\s+", "", re.sub(r"</?[a-zA-Z][^>]*>", "", line)))
            .replace("**", "")
            .replace("__", ""),
        ).strip()
        assert _clean_markup(line) == expected, repr(line)
