"""Hostile and broken corpus files: each is skipped with a reason, quickly, and the rest indexed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import CorpusError
from assistant.ingest.documents import SourceFile, load_document
from assistant.pipeline import Assistant
from tests import pdf_factory
from tests.conftest import FakeEmbedder


def _source(path: Path) -> SourceFile:
    data = path.read_bytes()
    return SourceFile(path, path.name, len(data), hashlib.sha256(data).hexdigest())


HOSTILE = {
    "truncated.pdf": (pdf_factory.truncated_pdf, "PDF"),
    "broken-xref.pdf": (pdf_factory.broken_xref_pdf, ""),
    "bomb.pdf": (lambda: pdf_factory.bomb_pdf(2000), ""),
    "6000-pages.pdf": (pdf_factory.many_pages_pdf, "pages, more than"),
    "page-loop.pdf": (pdf_factory.page_tree_loop_pdf, ""),
    "garbage.pdf": (pdf_factory.corrupt_pdf, "not a readable PDF"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "bomb.pdf" else n for n in sorted(HOSTILE)]
)
def test_each_hostile_pdf_is_skipped_within_the_limits(tmp_path: Path, name: str) -> None:
    make, reason = HOSTILE[name]
    path = pdf_factory.write(tmp_path / name, make())
    started = time.monotonic()
    try:
        document = load_document(_source(path), pdf_timeout_s=20, pdf_memory_mb=512)
    except CorpusError as exc:
        assert reason in str(exc), exc
    else:
        # pypdf repairs some damage; then the file must at least yield sane text.
        assert document.text.strip() or document.pages
    # A bomb or a loop must not run to the wall-clock limit of the child (20 s here) or beyond.
    assert time.monotonic() - started < 25


@pytest.mark.timeout(120)
def test_a_parser_that_hangs_is_killed_at_the_time_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand in for a PDF that sends the parser into an endless loop.
    path = pdf_factory.write(tmp_path / "hang.pdf", pdf_factory.text_pdf([["Hello."]]))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "sitecustomize.py").write_text(
        "import pypdf\npypdf.PdfReader.__init__ = lambda self, *a, **k: __import__('time').sleep(3600)\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    with pytest.raises(CorpusError, match="longer than 2 s"):
        load_document(_source(path), pdf_timeout_s=2, pdf_memory_mb=512)
    assert time.monotonic() - started < 10


@pytest.mark.timeout(120)
def test_a_parser_that_eats_memory_is_stopped_at_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pdf_factory.write(tmp_path / "hog.pdf", pdf_factory.text_pdf([["Hello."]]))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    (tmp_path / "sitecustomize.py").write_text(
        "import pypdf\npypdf.PdfReader.__init__ = lambda self, *a, **k: bytearray(4 * 1024 ** 3)\n",
        encoding="utf-8",
    )
    with pytest.raises(CorpusError, match="more than 300 MB"):
        load_document(_source(path), pdf_timeout_s=30, pdf_memory_mb=300)


def test_oversized_and_deeply_nested_text_files(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    with pytest.raises(CorpusError, match="over the 1 MB limit"):
        load_document(_source(big), max_file_mb=1)
    nested = tmp_path / "nested.md"
    nested.write_text(
        "# Top\n\n"
        + "".join(">" * i + " level\n" for i in range(1, 3000))
        + "\n"
        + "- " * 5000
        + "item\n"
        + "".join("#" * (1 + i % 6) + f" Heading {i}\n\nText {i}.\n\n" for i in range(2000)),
        encoding="utf-8",
    )
    started = time.monotonic()
    document = load_document(_source(nested))
    assert len(document.sections) >= 2000
    assert time.monotonic() - started < 20


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_indexing_survives_a_folder_of_hostile_files(fake_settings: Settings) -> None:
    corpus = fake_settings.corpus_dir
    for name, (make, _) in HOSTILE.items():
        pdf_factory.write(corpus / name, make())
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 100)
    (corpus / "empty.md").write_text("", encoding="utf-8")
    settings = fake_settings.model_copy(update={"pdf_timeout_s": 20, "pdf_memory_mb": 512})
    report = Assistant(settings, embedder=FakeEmbedder()).index()
    skipped = dict(report.skipped)
    assert {"binary.txt", "empty.md", "garbage.pdf", "truncated.pdf", "6000-pages.pdf"} <= skipped.keys()
    assert report.documents >= 5  # the real documents are all indexed
    for reason in skipped.values():
        assert reason and "Traceback" not in reason
